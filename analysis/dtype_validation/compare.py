"""Does extracting in bf16 change what midalign-analyze reports? fp32 and bf16 runs of the same analysis, compared.

For every metric: the per-layer curve (mean over directed pairs, as the selection uses it) in both precisions, the
layer each would select, and per-pair differences at every layer (mean and largest absolute difference, the share
of pairs that moved by more than 0.02, i.e. one sentence of 50 in retrieval). Reads the two runs' `pairs.parquet`
and `selection.json` only, so it shares no code with the pipeline that wrote them.

    python analysis/dtype_validation/compare.py analysis/gemma-3-270m_udhr runs/udhr48-bf16/run \
        --out analysis/dtype_validation
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

logger = logging.getLogger("dtype_validation")
MOVED = 0.02  # one sentence in 50 for retrieval: the smallest change a UDHR retrieval score can make


def load(run: Path) -> tuple[pd.DataFrame, dict, str]:
    pairs = pd.read_parquet(run / "pairs.parquet")
    pairs["metric"] = pairs["metric"].astype(str)
    selection = json.loads((run / "selection.json").read_text())
    dtype = json.loads((run / "config.json").read_text())["resolved"]["dtype"]
    return pairs, selection, dtype


def compare(reference: pd.DataFrame, other: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves: metric, layer, fp32, bf16, difference), (pairs: metric, layer, n, mean/max abs difference, moved)."""
    keys = ["metric", "layer", "src", "tgt"]
    both = reference.merge(other, on=keys, suffixes=("_fp32", "_bf16"), validate="one_to_one")
    if len(both) != len(reference) or len(both) != len(other):
        raise SystemExit(f"the runs do not cover the same pairs ({len(reference)} vs {len(other)} rows)")
    both["abs_difference"] = (both["value_bf16"] - both["value_fp32"]).abs()
    grouped = both.groupby(["metric", "layer"], observed=True)
    curves = grouped[["value_fp32", "value_bf16"]].mean().rename(columns=lambda c: c.removeprefix("value_"))
    curves["difference"] = curves["bf16"] - curves["fp32"]
    pairs = grouped["abs_difference"].agg(n="size", mean_abs_difference="mean", max_abs_difference="max")
    pairs[f"share_moved_over_{MOVED}"] = grouped["abs_difference"].apply(lambda d: float((d > MOVED + 1e-9).mean()))
    return curves.reset_index(), pairs.reset_index()


def selected(curves: pd.DataFrame, n_blocks: int) -> pd.DataFrame:
    """The layer each precision's curve selects per metric (blocks 1..L-1, ties to the lower: the pipeline's rule)."""
    inner = curves[(curves["layer"] >= 1) & (curves["layer"] <= n_blocks - 1)]
    rows = []
    for metric, group in inner.groupby("metric"):
        group = group.sort_values("layer")
        fp32, bf16 = (int(group.loc[group[c].idxmax(), "layer"]) for c in ("fp32", "bf16"))
        rows.append({"metric": metric, "layer_fp32": fp32, "layer_bf16": bf16, "same": fp32 == bf16})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fp32", type=Path, help="the run extracted in fp32")
    parser.add_argument("bf16", type=Path, help="the same analysis extracted in bf16")
    parser.add_argument("--out", type=Path, default=Path("analysis/dtype_validation"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    (reference, reference_selection, reference_dtype), (other, other_selection, other_dtype) = map(
        load, (args.fp32, args.bf16)
    )
    if (reference_dtype, other_dtype) != ("float32", "bfloat16"):
        raise SystemExit(f"expected a float32 and a bfloat16 run, got {reference_dtype} and {other_dtype}")
    curves, pairs = compare(reference, other)
    selection = selected(curves, reference_selection["n_blocks"])
    args.out.mkdir(parents=True, exist_ok=True)
    curves.to_csv(args.out / "curves.csv", index=False, float_format="%.6g")
    pairs.to_csv(args.out / "pairs.csv", index=False, float_format="%.6g")
    selection.to_csv(args.out / "selection.csv", index=False)
    for name in ("config.json", "selection.json"):  # the bf16 run's record, beside what it was compared with
        (args.out / f"bf16_{name}").write_text((args.bf16 / name).read_text())
    worst = pairs.loc[pairs.groupby("metric")["max_abs_difference"].idxmax()]
    logger.info("selected layer: fp32 %s, bf16 %s", reference_selection["layer"], other_selection["layer"])
    logger.info("largest curve difference per metric:\n%s", curves.assign(a=curves["difference"].abs())
                .sort_values("a").groupby("metric").tail(1).drop(columns="a").to_string(index=False))  # fmt: skip
    logger.info("largest per-pair difference per metric:\n%s", worst.to_string(index=False))


if __name__ == "__main__":
    main()
