"""What the interactive report shows, read from analysis run folders as typed records.

The report is generic over metric names: whatever `pairs.parquet` / `per_language.csv` hold is shown. A metric is
one of three kinds, found from the tables themselves rather than from a list of names, so that metrics added later
(MEXA, CKA, ...) need no change here:
- `pairs`: scored for every directed pair (retrieval, cosine, ...): layer curves, both heatmaps;
- `pivot`: scored only against one pivot language (every row has the same target, or the same source): layer
  curves and the layer x language heatmap; a language x language matrix would be one row;
- `language`: only in `per_language.csv` (or `probe.csv`): layer curves and the layer x language heatmap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from midalign.analysis.runs import GROUP_KEYS, METRICS, UNKNOWN_GROUP, AnalysisRun, load_run

logger = logging.getLogger(__name__)

PROBE_FILE = "probe.csv"
OVERALL_PROBE = "all"  # probe.csv's row of every language (midalign.analysis.probe.OVERALL)
ANISOTROPY_PREFIX = "anisotropy_"  # anisotropy.csv's columns join the per-layer curves as anisotropy_<column>
PROBE_PREFIX = "probe_"  # probe.csv's value columns join the metrics as probe_<column>
MetricKind = Literal["pairs", "pivot", "language"]


@dataclass(frozen=True)
class MetricInfo:
    """One metric of a run and what it is defined over."""

    name: str
    kind: MetricKind
    pivot: str | None = None  # the language every pair of a `pivot` metric shares

    @property
    def describe(self) -> str:
        # Only the pivot is worth saying: a run without its pair table reads every metric as `language`.
        return f"{self.name} (against {self.pivot} only)" if self.kind == "pivot" else self.name


@dataclass(frozen=True)
class ReportRun:
    """One analysis run as the report draws it."""

    run: AnalysisRun
    label: str
    metrics: tuple[MetricInfo, ...]
    pair_layers: tuple[int, ...]  # layers in the pair table (none without one)
    per_language: pd.DataFrame  # layer, lang, metric, value: per_language.csv plus probe.csv's per-language rows
    overall: pd.DataFrame  # layer, metric, value: the mean over pairs (layers.csv), or over languages

    @property
    def pair_metrics(self) -> list[str]:
        """Metrics scored for every directed pair: the ones a language x language matrix can show."""
        return [info.name for info in self.metrics if info.kind == "pairs"]

    def metric(self, name: str) -> MetricInfo:
        return next(info for info in self.metrics if info.name == name)


def _metric_order(names: set[str]) -> list[str]:
    """The four classic metrics in their usual order first, then any others alphabetically."""
    return [m for m in METRICS if m in names] + sorted(names - set(METRICS))


def _pair_layers(run: AnalysisRun) -> tuple[int, ...]:
    """Layers present in the pair table (a large run may keep pairs at the selected layer only)."""
    if run.pairs_path is None:
        return ()
    if run.pairs_path.suffix == ".parquet":  # one column: a 442-language table has ~15 M rows
        layers = pd.read_parquet(run.pairs_path, columns=["layer"])["layer"]
    else:
        layers = run.pairs["layer"]
    return tuple(sorted(int(layer) for layer in layers.unique()))


def _pair_kinds(run: AnalysisRun, layers: tuple[int, ...]) -> dict[str, MetricInfo]:
    """Kind of every metric in the pair table, from the pairs at one layer (the selected one if present)."""
    if not layers:
        return {}
    layer = run.selected_layer if run.selected_layer in layers else layers[0]
    pairs = run._pairs_for(layer=layer)  # one layer is enough to tell which pairs a metric covers
    kinds: dict[str, MetricInfo] = {}
    for metric, rows in pairs.groupby("metric", observed=True):
        src, tgt = rows["src"].astype(str), rows["tgt"].astype(str)
        # A pivot metric: one language takes part in every row (X -> pivot, and maybe pivot -> X too). With two
        # languages every pair has one in common, so that says nothing.
        common = [code for code in (src.iloc[0], tgt.iloc[0]) if ((src == code) | (tgt == code)).all()]
        if common and len(run.codes) > 2:
            kinds[str(metric)] = MetricInfo(str(metric), "pivot", common[0])
        else:
            kinds[str(metric)] = MetricInfo(str(metric), "pairs")
    return kinds


def read_probe(probe: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """probe.csv (`layer, lang, accuracy, n, chance`; lang `all` = every language, as `load_run` reads it) as
    (per-language rows, per-layer rows), both tidy with metric names `probe_accuracy` / `probe_chance`."""
    overall = probe["lang"].astype(str) == OVERALL_PROBE
    per_lang = probe[~overall].assign(metric=PROBE_PREFIX + "accuracy", value=lambda rows: rows["accuracy"])
    per_layer = probe[overall].melt(id_vars=["layer"], value_vars=["accuracy", "chance"], var_name="metric")
    per_layer["metric"] = PROBE_PREFIX + per_layer["metric"]
    return per_lang[["layer", "lang", "metric", "value"]], per_layer[["layer", "metric", "value"]]


def read_anisotropy(table: pd.DataFrame) -> pd.DataFrame:
    """anisotropy.csv as tidy per-layer rows (`layer, metric, value`), metrics named anisotropy_<column>."""
    columns = ["cosine_parallel", "cosine_nonparallel", "top1_share", "top5_share"]
    rows = table.melt(id_vars=["layer"], value_vars=columns, var_name="metric")
    rows["metric"] = ANISOTROPY_PREFIX + rows["metric"]
    return rows[["layer", "metric", "value"]]


def read_report_run(path: str | Path, label: str | None = None) -> ReportRun:
    """Load an analysis run for the report (its pair table is optional: without it, no language x language map)."""
    run = load_run(path, require_pairs=False)
    pair_layers = _pair_layers(run)
    kinds = _pair_kinds(run, pair_layers)
    per_language = run.per_language[["layer", "lang", "metric", "value"]].copy()
    overall = run.layers[run.layers["group_by"] == "all"][["layer", "metric", "mean"]].rename(columns={"mean": "value"})
    probe_path = run.path / PROBE_FILE
    if run.probe is not None:
        probe_langs, probe_layers = read_probe(run.probe)
        per_language = pd.concat([per_language, probe_langs], ignore_index=True)
        overall = pd.concat([overall, probe_layers], ignore_index=True)
        logger.info("%s: probe metrics %s", probe_path, ", ".join(sorted(set(probe_langs["metric"]) |
                                                                          set(probe_layers["metric"]))))  # fmt: skip
    if run.anisotropy is not None:  # per-layer curves only: anisotropy is a property of all languages together
        overall = pd.concat([overall, read_anisotropy(run.anisotropy)], ignore_index=True)
    # A metric with per-language rows but no overall row (a probe per language): its mean over languages.
    missing = set(per_language["metric"]) - set(overall["metric"])
    if missing:
        means = per_language[per_language["metric"].isin(missing)].groupby(["layer", "metric"], as_index=False)
        overall = pd.concat([overall, means["value"].mean()], ignore_index=True)
    for metric in set(kinds) - set(overall["metric"]):  # only in the pair table: its mean over pairs
        means = run._pairs_for(metric=metric).groupby("layer", as_index=False)["value"].mean()
        overall = pd.concat([overall, means.assign(metric=metric)], ignore_index=True)
    names = set(kinds) | set(per_language["metric"]) | set(overall["metric"])
    metrics = tuple(kinds.get(name, MetricInfo(name, "language")) for name in _metric_order(names))
    per_language["layer"] = per_language["layer"].astype(int)
    per_language["lang"] = per_language["lang"].astype(str)
    overall["layer"] = overall["layer"].astype(int)
    return ReportRun(
        run=run,
        label=label or run.path.resolve().name,
        metrics=metrics,
        pair_layers=pair_layers,
        per_language=per_language,
        overall=overall,
    )


def language_table(runs: list[ReportRun]) -> pd.DataFrame:
    """Every language of the runs (first run's order, then the second's new ones): name and group columns."""
    frames = [item.run.languages for item in runs]
    table = pd.concat(frames)
    table = table[~table.index.duplicated()]
    columns = ["name", *GROUP_KEYS]
    table = table[columns].fillna("").astype(str)
    for key in GROUP_KEYS:
        table[key] = table[key].replace("", UNKNOWN_GROUP)
    return table


def describe_language(languages: pd.DataFrame, code: str) -> str:
    """`Name · script · family · resource level` for hover text."""
    row = languages.loc[code]
    return f"{row['name']} · {row['script']} · {row['family']} · {row['resource_level']}"
