"""The committed alignment-space study (analysis/align_space) is what its committed runs give: the summary is
regenerated from the runs and compared, and every study row the README quotes is a row of the regenerated summary;
the README's anisotropy figures for the aligned pairs are the runs' own records."""

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import assert_quotes_summary_rows, run_study_summary

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "analysis" / "align_space"
README = (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    return run_study_summary(STUDY / "summarize.py", tmp_path_factory.mktemp("align_space"))


@pytest.mark.parametrize("name", ["curves", "runs", "settings"])
def test_committed_tables_are_what_the_runs_give(regenerated, name) -> None:
    committed, again = pd.read_csv(STUDY / f"{name}.csv"), pd.read_csv(regenerated / f"{name}.csv")
    pd.testing.assert_frame_equal(committed, again, check_exact=False, atol=1e-5)
    assert (regenerated / "align_space_dev_curves.png").is_file()


def test_readme_quotes_rows_of_the_regenerated_summary(regenerated) -> None:
    summary = (regenerated / "summary.md").read_text(encoding="utf-8").splitlines()
    for text in (README, (STUDY / "README.md").read_text(encoding="utf-8")):
        assert_quotes_summary_rows(text, "align_space", summary, at_least=3)


def test_readme_anisotropy_of_the_aligned_pairs_is_the_runs_record() -> None:
    """README (Train): at block 11 the gettext pairs' raw states put 98.5 % of the squared norm in one dimension and
    99.8 % in five; translations 0.9971, other pairs 0.9961; the same sample in every run."""
    records = [json.loads(path.read_text())["resolved"]["anisotropy_at_layer"]["raw"]
               for path in sorted(STUDY.glob("runs/*/config.json"))]  # fmt: skip
    assert records and all(record == records[0] for record in records)
    raw = records[0]
    assert (round(100 * raw["top1_share"], 1), round(100 * raw["top5_share"], 1)) == (98.5, 99.8)
    assert (round(raw["cosine_parallel"], 4), round(raw["cosine_nonparallel"], 4)) == (0.9971, 0.9961)
    assert f"at T = 0.1 a translation's logit stands out by {round(raw['logit_gap'], 2)}" in README.replace("\n", " ")
