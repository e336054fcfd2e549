"""The committed transfer study (analysis/transfer) is what its evaluations give: the summary is regenerated from
the committed evaluation folders and compared, the paired differences are recomputed naively from the per-language
scores, and every row the README quotes is a row of the regenerated summary."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.helpers import run_study_summary

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "analysis" / "transfer"
README = (ROOT / "README.md").read_text(encoding="utf-8")
TABLES = ["results", "per_seed", "per_language", "predictors", "predictors_languages", "merge_weights", "base_model"]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    return run_study_summary(STUDY / "summarize.py", tmp_path_factory.mktemp("transfer"))


@pytest.mark.parametrize("name", TABLES)
def test_committed_tables_are_what_the_evaluations_give(regenerated, name) -> None:
    committed, again = pd.read_csv(STUDY / f"{name}.csv"), pd.read_csv(regenerated / f"{name}.csv")
    pd.testing.assert_frame_equal(committed, again, check_exact=False, atol=1e-6)


def test_figures_are_written(regenerated) -> None:
    for name in ("transfer_effects.png", "transfer_predictors_cldr.png", "transfer_predictors_translation.png"):
        assert (regenerated / name).stat().st_size > 20_000, name


def test_paired_differences_recomputed_naively() -> None:
    results = pd.read_csv(STUDY / "results.csv")
    checked = 0
    for row in results[results.group.isin(["alignment", "unseen"]) & (results.condition != "task")].itertuples():
        differences = []
        for seed in range(20):
            paths = [STUDY / "eval" / row.task / f"{name}-s{seed}" / "scores.csv" for name in (row.condition, "task")]
            if not all(path.is_file() for path in paths):
                continue
            means = []
            for path in paths:
                scores = pd.read_csv(path)
                chosen = scores[(scores.metric == row.metric) & (scores.group == row.group)]
                means.append(chosen.value.mean())
            differences.append(means[0] - means[1])
        assert len(differences) == row.n_seeds
        assert sum(differences) / len(differences) == pytest.approx(row.difference, abs=1e-9)
        assert row.ci_low <= row.difference + 1e-9 and row.difference <= row.ci_high + 1e-9
        if np.ptp(differences) == 0:  # every seed agrees (a merge that chose w_align = 0): no spread, no width
            low = high = differences[0]
        else:
            low, high = stats.t.interval(0.95, len(differences) - 1, loc=np.mean(differences),
                                         scale=stats.sem(differences))  # fmt: skip
        assert (row.t_low, row.t_high) == pytest.approx((low, high))
        excludes = (row.ci_low > 0 or row.ci_high < 0) and (low > 0 or high < 0)
        assert row.distinguishable == (row.condition != "task" and excludes)
        checked += 1
    assert checked >= 2 * 2 * 2 * 4  # tasks x metrics x groups x conditions


def test_every_condition_is_paired_on_every_seed_of_its_task() -> None:
    results = pd.read_csv(STUDY / "results.csv")
    assert set(results.task) == {"cldr", "translation"}
    assert set(results.condition) == {"task", "k11", "k4", "k18", "merged"}
    seeds = results[results.condition == "task"].groupby("task").n_seeds.max()
    assert (results.n_seeds == results.task.map(seeds)).all(), "a condition lacks a seed its task-only run has"
    assert seeds.min() >= 5, "the study promises at least 5 seeds per condition"


def test_readme_quotes_rows_of_the_regenerated_summary(regenerated) -> None:
    summary = (regenerated / "summary.md").read_text(encoding="utf-8").splitlines()
    quoted = re.search(r"<!-- transfer -->\n(.*?)<!-- /transfer -->", README, re.S)
    assert quoted, "the README's study tables are marked with <!-- transfer --> ... <!-- /transfer -->"
    rows = [line for line in quoted.group(1).splitlines() if line.startswith("| ") and "---" not in line]
    quoted_rows = [row for row in rows if not row.startswith("| group") and not row.startswith("| task |")]
    assert len(quoted_rows) >= 6
    for row in quoted_rows:
        assert row in summary, row
