"""midalign.stats: the crossed (seeds x items) bootstrap and the t interval over seeds, against known answers and a
naive loop."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from midalign.stats import Interval, crossed_bootstrap, crossed_statistic, distinguishable, seed_t_interval


def naive_crossed(values: np.ndarray, strata: list[str], n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """One draw at a time: seeds with replacement, items with replacement within each stratum, then the mean over
    the drawn seeds of the mean over strata of each stratum's mean over its drawn items."""
    n_seeds = values.shape[0]
    groups = {label: [i for i, s in enumerate(strata) if s == label] for label in dict.fromkeys(strata)}
    out = []
    for _ in range(n_draws):
        seeds = rng.integers(0, n_seeds, n_seeds)
        items = {label: rng.choice(members, len(members)) for label, members in groups.items()}
        out.append(np.mean([np.mean([values[s, items[g]].mean() for g in groups]) for s in seeds]))
    return np.array(out)


def test_statistic_weighs_strata_equally() -> None:
    values = np.array([[1.0, 1.0, 1.0, 4.0], [3.0, 3.0, 3.0, 6.0]])  # stratum a: 3 items, b: 1 item
    assert crossed_statistic(values, ["a", "a", "a", "b"]) == pytest.approx(((1 + 4) / 2 + (3 + 6) / 2) / 2)
    assert crossed_statistic(values) == pytest.approx(values.mean())


def test_constant_values_give_a_point() -> None:
    interval = crossed_bootstrap(np.full((5, 40), 0.25), n_draws=200)
    assert (interval.estimate, interval.low, interval.high) == pytest.approx((0.25, 0.25, 0.25))


def test_agrees_with_a_naive_loop() -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(0.5, 1.0, (5, 1)) + rng.normal(0, 2.0, (1, 60)) + rng.normal(0, 0.5, (5, 60))  # seed+item+noise
    strata = ["deu"] * 20 + ["rus"] * 25 + ["fra"] * 15
    fast = crossed_bootstrap(values, strata, n_draws=4000, seed=1)
    slow = np.quantile(naive_crossed(values, strata, 4000, np.random.default_rng(2)), [0.025, 0.975])
    width = slow[1] - slow[0]
    assert fast.low == pytest.approx(slow[0], abs=0.08 * width)
    assert fast.high == pytest.approx(slow[1], abs=0.08 * width)
    assert fast.estimate == pytest.approx(crossed_statistic(values, strata))


def test_each_source_of_chance_is_resampled() -> None:
    """Values that differ only between seeds get the seed-only bootstrap's width; only between items, the item-only
    one: neither source is dropped, and neither is counted twice."""
    rng = np.random.default_rng(0)
    by_seed = np.repeat(rng.normal(0, 1, (6, 1)), 50, axis=1)
    by_item = np.repeat(rng.normal(0, 1, (1, 50)), 6, axis=0)
    for values, spread in ((by_seed, by_seed[:, 0]), (by_item, by_item[0])):
        interval = crossed_bootstrap(values, n_draws=4000)
        means = [rng.choice(spread, len(spread)).mean() for _ in range(4000)]
        low, high = np.quantile(means, [0.025, 0.975])
        assert interval.high - interval.low == pytest.approx(high - low, rel=0.1)


def test_seed_t_interval_is_students() -> None:
    seeds = [0.1, 0.3, -0.05, 0.2, 0.15]
    interval = seed_t_interval(seeds)
    low, high = scipy_stats.t.interval(0.95, df=4, loc=np.mean(seeds), scale=scipy_stats.sem(seeds))
    assert (interval.low, interval.high) == pytest.approx((low, high))
    with pytest.raises(ValueError, match="two seeds"):
        seed_t_interval([0.1])


def test_distinguishable_needs_every_interval_to_exclude_zero() -> None:
    above, across = Interval(0.2, 0.05, 0.3), Interval(0.2, -0.01, 0.4)
    assert distinguishable(above, Interval(0.1, 0.01, 0.2)) and not distinguishable(above, across)
    assert distinguishable(Interval(-0.2, -0.3, -0.1))
