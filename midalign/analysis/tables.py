"""Tidy result tables from metric matrices: per pair, per language, per layer (overall and by language group)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

GROUPINGS = ("script", "family", "resource_level")


def pairs_frame(matrices: Mapping[str, np.ndarray], languages: Sequence[str], layers: Sequence[int]) -> pd.DataFrame:
    """Long table `layer, src, tgt, metric, value` over directed pairs src != tgt."""
    n = len(languages)
    src_index, tgt_index = np.nonzero(~np.eye(n, dtype=bool))  # row-major: src-major order
    codes = pd.Categorical(languages, categories=list(languages))
    frames = []
    for metric, values in matrices.items():
        for position, layer in enumerate(layers):
            frames.append(
                pd.DataFrame(
                    {
                        "layer": np.full(len(src_index), layer, dtype=np.int16),
                        "src": codes[src_index],
                        "tgt": codes[tgt_index],
                        "metric": metric,
                        "value": values[position][src_index, tgt_index],
                    }
                )
            )
    table = pd.concat(frames, ignore_index=True)
    table["metric"] = table["metric"].astype("category")
    return table


def per_language_frame(
    matrices: Mapping[str, np.ndarray], languages: Sequence[str], layers: Sequence[int]
) -> pd.DataFrame:
    """Per layer and language: mean over every directed pair in which the language is source or target."""
    n = len(languages)
    rows = []
    for metric, values in matrices.items():
        masked = values.astype(np.float64).copy()
        masked[:, np.arange(n), np.arange(n)] = 0.0  # drop self pairs
        means = (masked.sum(axis=2) + masked.sum(axis=1)) / (2 * max(n - 1, 1))  # [len(layers), n]
        for position, layer in enumerate(layers):
            rows.append(
                pd.DataFrame({"layer": layer, "lang": list(languages), "metric": metric, "value": means[position]})
            )
    return pd.concat(rows, ignore_index=True)


def _stats(values: pd.core.groupby.SeriesGroupBy) -> pd.DataFrame:
    return values.agg(["mean", "std", "min", "max", "count"]).rename(columns={"count": "n"})


def layer_summary(pairs: pd.DataFrame, per_language: pd.DataFrame, languages: pd.DataFrame) -> pd.DataFrame:
    """Per layer and metric: stats over all pairs, and over per-language means within each language group."""
    overall = _stats(pairs.groupby(["layer", "metric"], observed=True)["value"]).reset_index()
    overall.insert(2, "group_by", "all")
    overall.insert(3, "group", "all")
    parts = [overall]
    for grouping in GROUPINGS:
        groups = languages.set_index("code")[grouping].replace("", np.nan).fillna("unknown")
        labelled = per_language.assign(group=per_language["lang"].map(groups))
        stats = _stats(labelled.groupby(["layer", "metric", "group"], observed=True)["value"]).reset_index()
        stats.insert(2, "group_by", grouping)
        parts.append(stats)
    summary = pd.concat(parts, ignore_index=True)
    return summary[["layer", "metric", "group_by", "group", "mean", "std", "min", "max", "n"]]
