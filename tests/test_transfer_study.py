"""studies/transfer/summarize.py on synthetic evaluation folders with known differences."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
ITEMS = {"deu_Latn": ("supervised", ["a", "b", "c", "d"]), "spa_Latn": ("alignment", ["a", "b", "e"])}


def _summarize():
    spec = importlib.util.spec_from_file_location("transfer_summary", ROOT / "studies" / "transfer" / "summarize.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(root: Path, name: str, shift: dict[str, float], seed_offset: float, finished: bool = True) -> None:
    folder = root / "eval" / "translation" / name
    folder.mkdir(parents=True)
    rows = []
    for lang, (group, ids) in ITEMS.items():
        for k, item in enumerate(ids):
            value = 40 + 5 * k + seed_offset + shift.get(lang, 0.0)  # items differ; a seed moves every item
            rows.append({"id": item, "language": lang, "group": group, "metric": "x2en_chrf", "value": value})
    pd.DataFrame(rows).to_csv(folder / "item_scores.csv", index=False)
    if finished:
        (folder / "groups.csv").write_text("group,metric,value,n_languages\n")


def test_paired_differences_intervals_and_the_rule(tmp_path: Path) -> None:
    seed_effects = {0: 0.0, 1: 2.0, 2: -1.0}
    control = {0: 0.5, 1: -0.8, 2: 0.1}  # a control whose per-seed differences straddle 0
    for seed, offset in seed_effects.items():
        _write(tmp_path, f"task-s{seed}", {}, offset)
        _write(tmp_path, f"align-s{seed}", {"spa_Latn": 3.0}, offset)  # +3 on every alignment-group item
        _write(tmp_path, f"control-s{seed}", {"deu_Latn": control[seed], "spa_Latn": control[seed]}, offset)
    _write(tmp_path, "raw-s0", {"spa_Latn": 1.0}, 0.0, finished=False)  # still running: not read
    _write(tmp_path, "merged-s7", {"spa_Latn": 1.0}, 0.0)  # no task-only run of seed 7: no pair
    summarize = _summarize()
    summarize.main(["--root", str(tmp_path), "--figures", str(tmp_path / "figures"), "--draws", "500"])
    results = pd.read_csv(tmp_path / "results.csv")
    row = results.set_index(["group", "condition"])
    assert set(results.condition) == {"task", "align", "control"}  # raw unfinished, merged unpaired
    align = row.loc[("alignment", "align")]
    assert (align.difference, align.ci_low, align.ci_high, align.t_low, align.t_high) == pytest.approx((3,) * 5)
    assert align.distinguishable and align.seeds_better == 3 and align.n_items == 3
    assert (
        row.loc[("supervised", "align")].difference == pytest.approx(0)
        and not row.loc[("supervised", "align")].distinguishable
    )
    # transfer = the alignment group here; all = both languages, each weighing half
    assert row.loc[("all", "align")].difference == pytest.approx(1.5)
    ctrl = row.loc[("all", "control")]
    low, high = stats.t.interval(0.95, 2, loc=np.mean(list(control.values())), scale=stats.sem(list(control.values())))
    assert (ctrl.t_low, ctrl.t_high) == pytest.approx((low, high), rel=1e-5)  # 6 digits in the CSV
    assert not ctrl.distinguishable
    task = row.loc[("supervised", "task")]
    assert task["mean"] == pytest.approx(40 + 7.5 + np.mean(list(seed_effects.values())))  # item mean 47.5 + seed mean
    assert (task.seed_min, task.seed_max) == pytest.approx((46.5, 49.5))
    summary = (tmp_path / "summary.md").read_text()
    assert "+3.000 [+3.000, +3.000] **≠0**" in summary and summarize.RULE in summary
    assert (tmp_path / "figures" / "transfer_effects.png").stat().st_size > 10_000
    per_seed = pd.read_csv(tmp_path / "per_seed.csv")
    assert len(per_seed[(per_seed.group == "all") & (per_seed.condition == "control")]) == 3


def test_without_finished_evaluations_it_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"run studies/transfer/run_all\.sh first"):
        _summarize().main(["--root", str(tmp_path), "--figures", str(tmp_path)])
