"""Tidy result tables from metric matrices: per pair, per language, per layer (overall and by language group).

A matrix entry that is NaN at every layer is an undefined pair (a pivot metric is defined only for X -> pivot) and
gets no row; NaN never counts as 0 in a mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from midalign.options import PIVOT_METRICS

# Written by midalign.analysis.anisotropy (torch); named here so that reading a run never imports torch.
ANISOTROPY_FILE = "anisotropy.csv"
ANISOTROPY_COLUMNS = (
    "layer", "n_sentences", "mean_norm", "cosine_parallel", "cosine_nonparallel", "top1_share", "top5_share",
    "top1_dim", "top5_dims",
)  # fmt: skip

GROUPINGS = ("script", "family", "resource_level")


def pairs_frame(matrices: Mapping[str, np.ndarray], languages: Sequence[str], layers: Sequence[int]) -> pd.DataFrame:
    """Long table `layer, src, tgt, metric, value` over the defined directed pairs src != tgt."""
    n = len(languages)
    codes = pd.Categorical(languages, categories=list(languages))
    frames = []
    for metric, values in matrices.items():
        defined = ~np.eye(n, dtype=bool) & ~np.isnan(values).all(axis=0)
        src_index, tgt_index = np.nonzero(defined)  # row-major: src-major order
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
    """Per layer and language: mean over every directed pair in which the language is source or target (in a
    --pairs pivot run, every pair scored: a language's two pairs with the pivot; the pivot's pairs with all).

    A pivot metric's value for language X is its X -> pivot value; the pivot has no row (its mean over every
    language would describe the others, not the pivot).
    """
    n = len(languages)
    rows = []
    for metric, values in matrices.items():
        masked = values.astype(np.float64).copy()
        masked[:, np.arange(n), np.arange(n)] = np.nan  # drop self pairs
        # [len(layers), n]: as source only (pivot metrics), else as source and as target
        means = _nanmean(masked, axes=(2,) if metric in PIVOT_METRICS else (2, 1))
        for position, layer in enumerate(layers):
            frame = pd.DataFrame({"layer": layer, "lang": list(languages), "metric": metric, "value": means[position]})
            rows.append(frame[frame["value"].notna()])
    return pd.concat(rows, ignore_index=True)


def _nanmean(values: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Mean over the defined entries along each of `axes` together (NaN where none is defined), without warnings."""
    total = sum(np.nansum(values, axis=axis) for axis in axes)
    count = sum((~np.isnan(values)).sum(axis=axis) for axis in axes)
    return np.divide(total, count, out=np.full(np.shape(total), np.nan), where=count > 0)


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
