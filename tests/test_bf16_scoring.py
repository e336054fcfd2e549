"""analysis/bf16_scoring.py: its error bound holds, its counts are right on known cases, and it runs on a run."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from midalign.analyze import main as analyze_main

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bf16_scoring", ROOT / "analysis" / "bf16_scoring.py")
bf16_scoring = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bf16_scoring)


def test_error_bound_bounds_the_bf16_products_and_is_not_vacuous() -> None:
    rng = np.random.default_rng(0)
    for offset in (0.0, 20.0):  # isotropic, and raw-LLM-like (one large shared direction: every cosine near 1)
        states = rng.normal(size=(600, 640)) + offset * rng.normal(size=(1, 640))
        unit = torch.nn.functional.normalize(torch.from_numpy(states).float(), dim=-1)
        exact = unit.double() @ unit.double().T
        low = (unit.bfloat16() @ unit.bfloat16().T).double()
        bound = bf16_scoring.error_bound(unit)
        assert (low - exact).abs().max().item() <= bound < 0.02


def test_gaps_and_margins_against_a_loop() -> None:
    rng = np.random.default_rng(1)
    sim = rng.uniform(-1, 1, size=(3, 5, 5))
    rows, columns = bf16_scoring.gaps(sim, -1), bf16_scoring.gaps(sim, -2)
    for p in range(3):
        for i in range(5):
            assert rows[p, i] == sim[p, i, i] - max(sim[p, i, j] for j in range(5) if j != i)
            assert columns[p, i] == sim[p, i, i] - max(sim[p, j, i] for j in range(5) if j != i)
    margins, _ = bf16_scoring.margin_matrix(sim, 2)
    row_density = np.sort(sim[0, 1])[-2:].mean()
    column_density = np.sort(sim[0, :, 3])[-2:].mean()
    assert np.isclose(margins[0, 1, 3], sim[0, 1, 3] / (row_density + column_density))


def test_layer_decisions_counts_near_ties_as_uncertain() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(size=(20, 64))
    far = bf16_scoring.layer_decisions(np.stack([base, base, base]), 0)
    assert far["retrieval_uncertain"] == far["margin_uncertain"] == far["mexa_uncertain"] == 0
    assert far["retrieval_flipped_by_low"] == far["pairs_needing_fp32"] == 0
    tied = base.copy()
    tied[0] = base[1] + 1e-4 * rng.normal(size=64)  # sentence 0 of this language is almost sentence 1
    near = bf16_scoring.layer_decisions(np.stack([base, tied, base]), 0)
    assert near["retrieval_uncertain"] > 0 and near["mexa_uncertain"] > 0 and near["pairs_needing_fp32"] > 0


def test_script_on_an_analysis_run(tiny_model_dir: Path, flores_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["--model", str(tiny_model_dir), "--dataset", str(flores_dir), "--langs", "en", "de", "fr", "ru"]
    assert analyze_main([*args, "--no-figures", "--no-report", "--out", str(run)]) == 0
    out = tmp_path / "bf16.csv"
    command = [sys.executable, str(ROOT / "analysis" / "bf16_scoring.py"), str(run), "--out", str(out)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    table = pd.read_csv(out)
    assert table["layer"].tolist() == list(range(len(table))) and len(table) > 1
    assert (table["max_observed_error"] <= table["error_bound"]).all()
    assert table[["retrieval_uncertain", "margin_uncertain", "mexa_uncertain"]].stack().between(0, 1).all()
