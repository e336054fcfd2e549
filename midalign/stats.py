"""Intervals for paired comparisons of conditions scored over seeds and test items.

A study that trains each condition with several seeds and scores every run on the same test items has two sources
of chance: the seed (initialisation, data order, dropout) and the sample of test items. Seeds and items are
*crossed*, not nested (every seed is scored on every item), so `crossed_bootstrap` resamples both independently in
each draw: seeds with replacement, and items with replacement within their stratum (a language, so that a group
mean keeps its languages). The same item draw applies to every seed, and the values are already paired differences
(condition minus baseline of the same seed and item), so the pairing is kept. `seed_t_interval` is the Student t
interval over the per-seed means, which treats the items as fixed. A difference is called distinguishable from zero
("≠0") when both intervals exclude it (`excludes_zero`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

N_DRAWS = 10_000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with its interval at `level`."""

    estimate: float
    low: float
    high: float
    level: float = LEVEL

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def item_weights(strata: Sequence[str] | None, n_items: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each item's weight in the statistic (strata weigh equally, items equally within their stratum) and the item
    indices of each stratum."""
    labels = (
        np.zeros(n_items, dtype=np.int64) if strata is None else np.unique(np.asarray(strata), return_inverse=True)[1]
    )
    if len(labels) != n_items:
        raise ValueError(f"{len(labels)} strata labels for {n_items} items")
    groups = [np.flatnonzero(labels == k) for k in range(labels.max() + 1)]
    weights = np.zeros(n_items)
    for members in groups:
        weights[members] = 1.0 / (len(members) * len(groups))
    return weights, groups


def crossed_statistic(values: np.ndarray, strata: Sequence[str] | None = None) -> float:
    """The mean over seeds of each seed's stratified item mean (strata weigh equally): what the bootstrap resamples."""
    weights, _ = item_weights(strata, values.shape[1])
    return float(values.mean(axis=0) @ weights)


def crossed_bootstrap(
    values: np.ndarray,
    strata: Sequence[str] | None = None,
    n_draws: int = N_DRAWS,
    level: float = LEVEL,
    seed: int = 0,
    chunk: int = 500,
) -> Interval:
    """Percentile interval of `crossed_statistic` for values [seeds, items] of paired differences, resampling seeds
    and (within strata) items independently in each draw."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or min(values.shape) < 1:
        raise ValueError(f"values must be [seeds, items], got shape {values.shape}")
    n_seeds, n_items = values.shape
    weights, groups = item_weights(strata, n_items)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_draws)
    for start in range(0, n_draws, chunk):
        size = min(chunk, n_draws - start)
        seed_counts = np.zeros((size, n_seeds))  # how often each seed is drawn, per bootstrap draw
        np.add.at(seed_counts, (np.arange(size)[:, None], rng.integers(0, n_seeds, (size, n_seeds))), 1.0)
        item_counts = np.zeros((size, n_items))
        for members in groups:  # resampled within the stratum: the group keeps each language's share
            picked = members[rng.integers(0, len(members), (size, len(members)))]
            np.add.at(item_counts, (np.arange(size)[:, None], picked), 1.0)
        seed_means = (seed_counts / n_seeds) @ values  # [size, items]: the resampled seeds' mean per item
        draws[start : start + size] = np.einsum("bi,bi->b", seed_means, item_counts * weights)
    tail = (1 - level) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return Interval(crossed_statistic(values, strata), float(low), float(high), level)


def seed_t_interval(seed_means: Sequence[float], level: float = LEVEL) -> Interval:
    """Student t interval of the mean of per-seed values (n - 1 degrees of freedom); needs two seeds or more."""
    from scipy import stats

    values = np.asarray(seed_means, dtype=np.float64)
    if len(values) < 2:
        raise ValueError("a t interval over seeds needs at least two seeds")
    mean, sem = values.mean(), values.std(ddof=1) / np.sqrt(len(values))
    half = stats.t.ppf(1 - (1 - level) / 2, df=len(values) - 1) * sem
    return Interval(float(mean), float(mean - half), float(mean + half), level)


def distinguishable(*intervals: Interval) -> bool:
    """The rule the study tables mark "≠0": every interval excludes zero."""
    return all(interval.excludes_zero() for interval in intervals)
