"""What predicts cross-lingual transfer: a language's alignment with English in the base model against how well a
task learned in other languages works in it, and against what alignment training adds there.

Liu & Niehues (2025) report that a language's base-model retrieval with English predicts its transfer score
(Pearson r 0.56 for Llama 3, 0.70 for Qwen 2.5). Here, per transfer language (every group but `supervised`):
x = the base model's retrieval accuracy between the language and the pivot at one layer (the mean of both
directions, from a `midalign-analyze` run, at its selected layer unless told otherwise); y = the reference run's
task score (`target = score`) or another run's difference to the reference (`target = gain`). Pearson and Spearman
correlations come with percentile bootstrap 95 % intervals over languages.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from midalign.analysis.runs import AnalysisRun
from midalign.corpora.languages import UnknownLanguageError, resolve_language
from midalign.errors import MidalignError

logger = logging.getLogger(__name__)

LANGUAGE_COLUMNS = ["language", "group", "retrieval", "metric", "run", "score", "gain"]
CORRELATION_COLUMNS = ["metric", "run", "target", "statistic", "value", "ci_low", "ci_high", "n_languages"]
STATISTICS = ("pearson", "spearman")


@dataclass(frozen=True)
class Correlation:
    """One correlation with its percentile bootstrap interval over the paired observations."""

    statistic: str
    value: float
    ci_low: float
    ci_high: float
    n: int


def base_retrieval(
    run: AnalysisRun,
    languages: Sequence[str],
    pivot: str = "eng_Latn",
    layer: int | None = None,
    metric: str = "retrieval_acc",
) -> pd.Series:
    """Each language's mean of X->pivot and pivot->X `metric` at `layer` (default: the run's selected layer),
    indexed by the codes as given; languages the run lacks are left out with a warning."""
    layer = run.selected_layer if layer is None else layer
    try:
        pivot_code = resolve_language(pivot, run.codes)
    except UnknownLanguageError as error:
        raise MidalignError(f"the analysis run {run.path} has no pivot {pivot}: {error}") from error
    pairs = run.pairs
    at = pairs[(pairs.layer == layer) & (pairs.metric == metric)]
    if at.empty:
        raise MidalignError(f"the analysis run {run.path} has no {metric} at layer {layer}")
    values, missing = {}, []
    for language in languages:
        try:
            code = resolve_language(language, run.codes)
        except UnknownLanguageError:
            missing.append(language)
            continue
        both = at[((at.src == code) & (at.tgt == pivot_code)) | ((at.src == pivot_code) & (at.tgt == code))]
        if code != pivot_code and len(both):
            values[language] = float(both.value.mean())
    if missing:
        logger.warning("the analysis run %s lacks %s: left out of the predictors", run.path, missing)
    return pd.Series(values, name="retrieval", dtype=float)


def correlation(
    x: Sequence[float], y: Sequence[float], statistic: str, n_boot: int = 10_000, seed: int = 0
) -> Correlation:
    """Pearson or Spearman correlation of paired observations, with a percentile bootstrap 95 % interval
    (pairs resampled with replacement; draws where either side is constant are skipped). NaN below 3 pairs."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Correlation(statistic, float("nan"), float("nan"), float("nan"), n)

    point = stats.pearsonr(x, y)[0] if statistic == "pearson" else stats.spearmanr(x, y)[0]
    rows = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    xs, ys = x[rows], y[rows]  # all draws at once: Pearson of the values, or of their (average) ranks
    keep = (np.ptp(xs, axis=1) > 0) & (np.ptp(ys, axis=1) > 0)
    xs, ys = xs[keep], ys[keep]
    if statistic == "spearman":
        xs, ys = stats.rankdata(xs, axis=1), stats.rankdata(ys, axis=1)
    xs, ys = xs - xs.mean(axis=1, keepdims=True), ys - ys.mean(axis=1, keepdims=True)
    draws = (xs * ys).sum(axis=1) / np.sqrt((xs**2).sum(axis=1) * (ys**2).sum(axis=1))
    low, high = np.percentile(draws, [2.5, 97.5]) if len(draws) else (float("nan"), float("nan"))
    return Correlation(statistic, float(point), float(low), float(high), n)


def transfer_table(retrieval: pd.Series, scores: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Per transfer language, metric and run: base retrieval, score and the gain over the `reference` run.

    `scores` is tidy (`language, group, metric, run, value`; midalign-evaluate's scores.csv with a `run` column).
    Supervised languages, languages without a retrieval value and the `n_examples` count are left out."""
    frame = scores[(scores.group != "supervised") & (scores.metric != "n_examples")]
    frame = frame[frame.language.isin(retrieval.index)]
    if reference not in set(frame.run):
        raise MidalignError(f"no transfer-language scores for the reference run {reference!r}")
    base = frame[frame.run == reference].set_index(["language", "metric"]).value
    table = frame.rename(columns={"value": "score"}).assign(retrieval=frame.language.map(retrieval))
    keys = pd.MultiIndex.from_frame(table[["language", "metric"]])
    table["gain"] = table.score.to_numpy() - base.reindex(keys).to_numpy()
    table.loc[table.run == reference, "gain"] = np.nan
    return table[LANGUAGE_COLUMNS].reset_index(drop=True)


def transfer_predictors(table: pd.DataFrame, reference: str, n_boot: int = 10_000) -> pd.DataFrame:
    """Correlations of base retrieval with the reference run's score and with every other run's gain, per metric
    (`transfer_table`'s output in; one row per metric, run, target and statistic out)."""
    rows = []
    for (metric, run), part in table.groupby(["metric", "run"], sort=False):
        target = "score" if run == reference else "gain"
        part = part.dropna(subset=["retrieval", target])
        for statistic in STATISTICS:
            found = correlation(part.retrieval, part[target], statistic, n_boot)
            rows.append([metric, run, target, statistic, found.value, found.ci_low, found.ci_high, found.n])
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)
