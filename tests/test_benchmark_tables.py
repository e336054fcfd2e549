"""The figures analysis/benchmarks/README.md reports are the ones in the committed tables beside it (each table is
rewritten by the command the README names next to it)."""

from pathlib import Path

import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "analysis" / "benchmarks"


@pytest.fixture(scope="module")
def readme() -> str:
    return (BENCHMARKS / "README.md").read_text()


def row_of(readme: str, start: str) -> str:
    """The README table row that begins with `start`."""
    rows = [line for line in readme.splitlines() if line.startswith(start)]
    assert len(rows) == 1, (start, rows)
    return rows[0]


def test_metrics_tables(readme: str) -> None:
    for name, label in (("metrics.csv", "| full, 19 layers"), ("metrics_quick.csv", "| quick, 3 layers")):
        table = pd.read_csv(BENCHMARKS / name).iloc[0]
        row = row_of(readme, label)
        assert f"**{table.efficiency_vs_bare_gemm:.2f}**" in row
        assert f"**{table.fused_efficiency_vs_bare_gemm:.2f}**" in row
        assert f"{table.speedup_vs_per_pair_loop:.0f}×" in row
        assert f"{table.bf16_speedup_bound:.2f}" in row
        assert f"{table.bare_gemm_s:.3g} s" in row or f"{table.bare_gemm_s:.1f} s" in row


def test_extraction_table(readme: str) -> None:
    table = pd.read_csv(BENCHMARKS / "extraction.csv").set_index("dtype")
    for dtype in ("fp32", "bf16"):
        row = row_of(readme, f"| {dtype} | {table.loc[dtype, 'peak_matmul_gflops']:.0f} |")
        assert f"| {table.loc[dtype, 'fraction_of_limit']:.2f} |" in row
        assert f"**{table.loc[dtype, 'compiled_fraction_of_limit']:.2f}**" in row
        assert f"**{table.loc[dtype, 'speedup_vs_loop']:.1f}**" in row


def test_alignment_step_table(readme: str) -> None:
    table = pd.read_csv(BENCHMARKS / "align_step.csv").set_index("layer")
    row = row_of(readme, "| **9** |")
    assert f"**{table.loc[9, 'stopped_over_full_lm']:.2f}**" in row
    assert f"| {table.loc[9, 'stopped_over_full_body']:.2f} (" in row


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("bf16_scoring.csv", "| raw, bf16 | 11 (selected) |"),
        ("bf16_scoring_centered.csv", "| centred, bf16 | 11 |"),
        ("fp16_scoring.csv", "| raw, fp16 | 11 |"),
    ],
)
def test_reduced_precision_tables(readme: str, name: str, label: str) -> None:
    layer = pd.read_csv(BENCHMARKS / name).set_index("layer").loc[11]
    flipped = layer.filter(like="retrieval_flipped").iloc[0]
    cells = [cell.strip(" *") for cell in row_of(readme, label).split("|")[3:-1]]
    shares = [layer.retrieval_uncertain, flipped, layer.margin_uncertain, layer.mexa_uncertain]
    shares.append(layer.pairs_needing_fp32)
    for cell, share in zip(cells, shares, strict=True):
        assert float(cell.rstrip(" %")) == pytest.approx(100 * share, abs=0.55 if share > 0.1 else 0.055), cell


def test_freezing_comparison(readme: str) -> None:
    plain = pd.read_csv(BENCHMARKS / "compile" / "extraction_quick_bf16.csv").iloc[0]
    frozen = pd.read_csv(BENCHMARKS / "compile" / "extraction_quick_bf16_freezing.csv").iloc[0]
    assert not plain.freezing and frozen.freezing
    text = " ".join(readme.split())  # the paragraph wraps across lines
    assert f"compiled / eager was {plain.compiled_speedup_vs_eager:.2f} without freezing and " \
        f"{frozen.compiled_speedup_vs_eager:.2f} with it" in text  # fmt: skip
    assert f"took {plain.compile_s:.1f} s (warm cache) without and {frozen.compile_s:.0f} s with it" in text
    assert f"compiled bf16 reached {plain.compiled_fraction_of_limit:.2f} of its limit" in text
