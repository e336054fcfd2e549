"""The bf16-vs-fp32 validation (analysis/dtype_validation): its comparison on a known answer, and the README's and
the folder README's numbers against the committed tables."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "analysis" / "dtype_validation"


def _compare_module():
    spec = importlib.util.spec_from_file_location("dtype_compare", HERE / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pairs(values: dict[tuple[int, str, str], float], metric: str = "retrieval_acc") -> pd.DataFrame:
    rows = [{"layer": k[0], "src": k[1], "tgt": k[2], "metric": metric, "value": v} for k, v in values.items()]
    return pd.DataFrame(rows)


def test_compare_on_a_known_answer() -> None:
    compare = _compare_module()
    fp32 = _pairs({(1, "a", "b"): 0.30, (1, "b", "a"): 0.50, (2, "a", "b"): 0.40, (2, "b", "a"): 0.40})
    bf16 = _pairs({(1, "a", "b"): 0.34, (1, "b", "a"): 0.50, (2, "a", "b"): 0.40, (2, "b", "a"): 0.38})
    curves, pairs = compare.compare(fp32, bf16)
    layer1 = curves.set_index("layer").loc[1]
    assert layer1["fp32"] == pytest.approx(0.40) and layer1["bf16"] == pytest.approx(0.42)
    row = pairs.set_index("layer").loc[1]
    assert row["max_abs_difference"] == pytest.approx(0.04) and row["share_moved_over_0.02"] == 0.5
    assert pairs.set_index("layer").loc[2]["share_moved_over_0.02"] == 0.0  # exactly one sentence is not "moved"
    # Selection over blocks 1..L-1 of a 3-block model: fp32 ties (0.40, 0.40) go to layer 1; bf16 prefers 1 too.
    chosen = compare.selected(curves, n_blocks=3).iloc[0]
    assert (chosen["layer_fp32"], chosen["layer_bf16"], chosen["same"]) == (1, 1, True)
    with pytest.raises(SystemExit, match="same pairs"):
        compare.compare(fp32, bf16.iloc[:3])


def test_committed_validation_backs_the_readmes() -> None:
    curves = pd.read_csv(HERE / "curves.csv")
    pairs = pd.read_csv(HERE / "pairs.csv")
    selection = pd.read_csv(HERE / "selection.csv")
    assert selection["same"].all() and len(selection) == 6
    worst = curves.assign(a=curves["difference"].abs()).groupby("metric")["a"].max()
    assert worst.max() <= 0.004  # "moves no layer's mean by more than 0.004" (README and loading.extraction_dtype)
    text = " ".join((HERE / "README.md").read_text().split())  # one line: README lines wrap anywhere
    labels = {"retrieval_acc": "retrieval", "margin_retrieval_acc": "margin retrieval", "cosine": "cosine",
              "cosine_gap": "cosine gap", "mexa": "MEXA", "cka": "CKA"}  # fmt: skip
    for metric, label in labels.items():
        assert f"{label} {worst[metric]:.4f}" in text, metric
    moved = pairs.groupby("metric")["share_moved_over_0.02"].mean()
    for metric, label in [("retrieval_acc", "3.3 %"), ("margin_retrieval_acc", "4.8 %"), ("mexa", "1.8 %")]:
        assert f"{100 * moved[metric]:.1f} %" == label and label in text
    smooth = pairs.loc[pairs["metric"].isin(["cosine", "cosine_gap", "cka"]), "max_abs_difference"].max()
    assert f"CKA move by at most {smooth:.4f}." in text
    assert pairs["max_abs_difference"].max() == pytest.approx(0.08)
    at11 = curves[(curves["metric"] == "retrieval_acc") & (curves["layer"] == 11)].iloc[0]
    assert f"{at11['fp32']:.4f} in fp32, {at11['bf16']:.4f} in bf16" in text
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"moves no\s+layer's mean by more than 0\.004", readme)
