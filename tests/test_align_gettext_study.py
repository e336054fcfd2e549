"""The committed alignment study (analysis/align_gettext) and the corpus figures the README quotes are what the
committed runs and corpus files give: the summary is regenerated from the runs and compared, and every study row
the README quotes is a row of the regenerated summary."""

from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import assert_quotes_summary_rows, run_study_summary

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "analysis" / "align_gettext"
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    return run_study_summary(STUDY / "summarize.py", tmp_path_factory.mktemp("align_gettext"))


@pytest.mark.parametrize("name", ["layers", "per_run", "per_language", "curves"])
def test_committed_tables_are_what_the_runs_give(regenerated, name) -> None:
    committed, again = pd.read_csv(STUDY / f"{name}.csv"), pd.read_csv(regenerated / f"{name}.csv")
    pd.testing.assert_frame_equal(committed, again, check_exact=False, atol=1e-4)
    assert (regenerated / "align_gettext_curves.png").is_file() and (regenerated / "align_gettext_layers.png").is_file()


def test_readme_quotes_rows_of_the_regenerated_summary(regenerated) -> None:
    summary = (regenerated / "summary.md").read_text(encoding="utf-8").splitlines()
    assert_quotes_summary_rows(README, "align_gettext", summary, at_least=4)


def test_readme_corpus_counts_match_the_shipped_corpus() -> None:
    counts = pd.read_csv(ROOT / "midalign" / "corpora" / "gettext" / "counts.csv")
    per_language = counts.groupby("lang").pairs.sum()
    facts = {
        f"{round(counts.pairs.sum() / 1000)}k X↔English pairs": True,
        f"in {len(per_language)} languages": True,
        f"({(per_language >= 1000).sum()} with ≥ 1,000": True,
        f"{(per_language >= 200).sum()} with ≥ 200)": True,
        f"of {counts.source.nunique()} pinned": True,
    }
    for fact in facts:
        assert fact in README.replace("\n  ", " "), fact
