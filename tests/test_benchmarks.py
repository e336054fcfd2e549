"""The benchmark scripts under analysis/ run end to end and write their tables (numbers are not asserted: speed
targets live in the committed tables, never in timed tests)."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(script: str, *args: str, out: Path) -> pd.DataFrame:
    """Run analysis/<script> as users do (from the repository root) and return the table it wrote."""
    command = [sys.executable, str(ROOT / "analysis" / script), *args, "--out", str(out)]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"wrote {out}" in completed.stderr
    return pd.read_csv(out)


def test_bench_metrics_small(tmp_path: Path) -> None:
    # --fused: the script itself stops if the compiled scorer's metrics differ from eager's.
    table = run_benchmark(
        "bench_metrics.py", "--langs", "12", "--layers", "2", "--sentences", "6", "--hidden", "16", "--fused",
        out=tmp_path / "metrics.csv",
    )  # fmt: skip
    row = table.iloc[0]
    assert (row.langs, row.directed_pairs, row.layers) == (12, 132, 2)
    columns = ("metrics_s", "bare_gemm_s", "efficiency_vs_bare_gemm", "speedup_vs_per_pair_loop", "peak_rss_gb")
    for column in (*columns, "fused_metrics_s", "fused_efficiency_vs_bare_gemm", "bare_bf16_gemm_s"):
        assert row[column] > 0, column


def test_bench_metrics_pivot_small(tmp_path: Path) -> None:
    table = run_benchmark(
        "bench_metrics.py", "--pairs", "pivot", "--langs", "9", "--layers", "2", "--sentences", "20", "--hidden",
        "16", "--all-langs", "4", "--all-layers", "1", out=tmp_path / "metrics_pivot.csv",
    )  # fmt: skip
    row = table.iloc[0]
    assert (row.langs, row.pivot_directed_pairs, row.all_directed_pairs, row.all_subset_langs) == (9, 16, 72, 4)
    for column in ("gemm_peak_gflops", "pivot_s", "pivot_fraction_of_gemm_peak", "pivot_peak_rss_gb", "all_subset_s"):
        assert row[column] > 0, column
    # the extrapolation scales the 4-language run by 9 * 10 / (4 * 5) pairs and 2 / 1 layers
    assert row.all_s_extrapolated == pytest.approx(row.all_subset_s * 9 * 10 / 20 * 2, rel=1e-3)


@pytest.mark.real_model
def test_bench_align_step_quick(tmp_path: Path) -> None:
    table = run_benchmark("bench_align_step.py", "--quick", "--batch-size", "2", out=tmp_path / "align.csv")
    row = table.iloc[0]
    assert (row.n_blocks, row.layer) == (18, 9)
    assert min(row.stopped_s, row.full_body_s, row.full_lm_s) > 0


@pytest.mark.real_model
def test_bench_extraction_quick(tmp_path: Path) -> None:
    table = run_benchmark("bench_extraction.py", "--quick", "--dtypes", "fp32", out=tmp_path / "extraction.csv")
    row = table.iloc[0]
    assert row["dtype"] == "fp32" and row["languages"] == 2  # row.dtype would be the Series dtype
    assert min(row.limit_tok_s, row.ours_tok_s, row.loop_tok_s) > 0


def test_bench_loading(tmp_path: Path) -> None:
    row = run_benchmark("bench_loading.py", "--sample", "2", out=tmp_path / "loading.csv").iloc[0]
    assert (row.languages, row.sentences, row.datasets_sample) == (442, 50, 2)
    assert min(row.load_all_s, row.datasets_per_language_ms, row.speedup) > 0


@pytest.mark.slow  # all three benchmark scripts through gpu.sh, on the CPU (~15 s)
def test_gpu_script_cpu_smoke(tmp_path: Path, tiny_gemma_dir: Path) -> None:
    """gpu.sh end to end in its CPU mode, tiny sizes and a tiny model: the three tables land in --out, each naming
    the device and the load average it ran under."""
    command = ["bash", str(ROOT / "analysis" / "benchmarks" / "gpu.sh"), "--device", "cpu", "--quick",
               "--out", str(tmp_path), "--model", str(tiny_gemma_dir)]  # fmt: skip
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    for name in ("extraction", "metrics", "align_step"):
        table = pd.read_csv(tmp_path / f"{name}.csv")
        assert (table["device"] == "cpu").all() and table["device_name"].str.len().gt(0).all(), name
        assert (table["loadavg_1min"] >= 0).all(), name
    extraction = pd.read_csv(tmp_path / "extraction.csv").iloc[0]
    assert extraction["languages"] == 1 and min(extraction.ours_tok_s, extraction.limit_tok_s) > 0
    align = pd.read_csv(tmp_path / "align_step.csv").iloc[0]
    assert (align.n_blocks, align.layer) == (4, 2)


@pytest.mark.slow  # compiles with inductor, twice (~40 s)
def test_bench_extraction_compiled_with_freezing_on_a_tiny_model(tmp_path: Path, tiny_gemma_dir: Path) -> None:
    """--compile --freezing (the inductor-freezing arm the benchmark README reports) runs and records its arm."""
    table = run_benchmark(
        "bench_extraction.py", "--model", str(tiny_gemma_dir), "--dtypes", "fp32", "--languages", "1",
        "--sentences", "4", "--loop-sentences", "2", "--batch-size", "4", "--repeats", "1", "--compile", "--freezing",
        out=tmp_path / "extraction.csv",
    )  # fmt: skip
    row = table.iloc[0]
    assert bool(row.freezing) and min(row.compiled_tok_s, row.ours_tok_s) > 0
