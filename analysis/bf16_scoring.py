"""Can similarity products in bf16 find the answers and fp32 re-score only the few that can still change? Measured
on a real run's states, layer by layer.

For every directed pair and query sentence, the decisions the metrics make are comparisons of cosines: retrieval
(the translation's cosine against the best other), margin retrieval (the same in margin space, with densities
from the top-4 cosines) and MEXA (a strict maximum in row and column of the pivot x X matrix). An exact scheme
computes all products in bf16, bounds their error, keeps every decision whose bf16 gap to the competitor exceeds
that bound, and re-scores the rest in fp32. This script measures, per layer:

- the bf16 products' error against fp32: the largest observed, and the rigorous bound an exact scheme must use
  (input rounding of the unit vectors, measured per vector; bf16 rounding of the product; fp32 accumulation);
- how many decisions are closer than the bound (they would need fp32 re-scoring), and how many pairs hold at
  least one such decision (a margin decision depends on the densities of every sentence of the pair, so the
  re-scoring unit is the pair);
- how many decisions plain bf16 products get wrong (what re-scoring would have to repair).

`--low fp16` measures the same for fp16 products (11 significant bits instead of 8: GPUs run them as fast as bf16;
CPUs without AMX-FP16 do not).

It shares no code with midalign.analysis.metrics and reads the cache's .npy files directly.

    python analysis/bf16_scoring.py analysis/gemma-3-270m_udhr --cache-dir /work/cache-udhr48 [--center]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from midalign.models.cache import run_states  # where the states are; no metric code

logger = logging.getLogger("bf16_scoring")
OUT = Path(__file__).parent / "benchmarks" / "bf16_scoring.csv"  # --out overrides
UNIT_ROUNDOFF = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}  # 8 and 11 significant bits
LOW_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
FP32_UNIT_ROUNDOFF = 2.0**-24


def error_bound(unit: torch.Tensor, low: torch.dtype = torch.bfloat16) -> float:
    """A rigorous bound on |low-precision product - exact cosine| for the unit vectors `unit` [M, H] (fp32).

    |x^ . y^ - x . y| <= |x^ - x| |y^| + |x| |y^ - y| from the inputs' rounding, measured per vector; the fp32
    accumulation adds gamma_H |x^| |y^|; rounding the result to `low` (as CPU GEMMs return it) adds u |result|.
    The fp32 products the exact answers come from carry their own gamma_H, added too, so the bound holds against
    them rather than against exact arithmetic."""
    hidden = unit.shape[1]
    rounded = unit.to(low).float()
    r = float(torch.linalg.vector_norm(rounded - unit, dim=1).max())
    gamma = hidden * FP32_UNIT_ROUNDOFF / (1 - hidden * FP32_UNIT_ROUNDOFF)
    product = (1 + r) ** 2 * (1 + gamma)  # the largest |x^ . y^| accumulated in fp32
    return r * (2 + r) + gamma * (1 + r) ** 2 + UNIT_ROUNDOFF[low] * product + gamma


def top_k_mean(values: np.ndarray, k: int, axis: int) -> np.ndarray:
    return -np.mean(np.sort(-values, axis=axis).take(range(k), axis=axis), axis=axis)


def gaps(sim: np.ndarray, axis: int) -> np.ndarray:
    """For [N, N] blocks stacked as [..., N, N]: each query's translation minus its best other candidate.

    axis = -1: query = row i, candidates along the row; axis = -2: query = column i."""
    n = sim.shape[-1]
    diagonal = np.diagonal(sim, axis1=-2, axis2=-1)
    others = np.where(np.eye(n, dtype=bool), -np.inf, sim)
    return diagonal - others.max(axis=axis)


def margin_matrix(sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Margins [..., N, N] and their denominators (source density + target density)."""
    denominator = top_k_mean(sim, k, -1)[..., :, None] + top_k_mean(sim, k, -2)[..., None, :]
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero density sum: that margin is undefined (inf/NaN)
        return sim / denominator, denominator


def layer_decisions(
    states: np.ndarray, pivot: int, k: int = 4, low_dtype: torch.dtype = torch.bfloat16
) -> dict[str, float]:
    """Counts for one layer of [n_langs, N, H] states (see the module docstring)."""
    n_langs, n_sentences, _ = states.shape
    unit = torch.nn.functional.normalize(torch.from_numpy(states).float(), dim=-1).reshape(n_langs * n_sentences, -1)
    exact = (unit @ unit.T).numpy()
    low = (unit.to(low_dtype) @ unit.to(low_dtype).T).float().numpy()
    bound = error_bound(unit, low_dtype)
    blocks = {  # [n, n, N, N]: (source, target, source sentence, target sentence); the self pairs dropped below
        name: matrix.reshape(n_langs, n_sentences, n_langs, n_sentences).transpose(0, 2, 1, 3)
        for name, matrix in (("exact", exact), ("low", low))
    }
    off = ~np.eye(n_langs, dtype=bool)
    exact_blocks, low_blocks = blocks["exact"][off], blocks["low"][off]  # [P, N, N] directed pairs
    retrieval_exact, retrieval_low = gaps(exact_blocks, -1), gaps(low_blocks, -1)  # [P, N]: source queries
    uncertain_retrieval = np.abs(retrieval_low) <= 2 * bound
    margin_exact, _ = margin_matrix(exact_blocks, k)
    margin_low, denominator = margin_matrix(low_blocks, k)
    # |m^ - m| <= (e D^ + |S^| 2e) / (D^ (D^ - 2e)) with each density within e (a top-k mean moves by at most e)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = (bound * denominator + np.abs(low_blocks) * 2 * bound) / (denominator * (denominator - 2 * bound))
    spread = np.where(denominator > 2 * bound, spread, np.inf).max(axis=-1)  # the worst entry of each query's row
    margin_gap_exact, margin_gap_low = gaps(margin_exact, -1), gaps(margin_low, -1)
    uncertain_margin = np.abs(margin_gap_low) <= 2 * spread
    pivot_exact = blocks["exact"][pivot][np.arange(n_langs) != pivot]  # [n-1, N(pivot), N(X)]
    pivot_low = blocks["low"][pivot][np.arange(n_langs) != pivot]
    mexa_exact = np.minimum(gaps(pivot_exact, -1), gaps(pivot_exact, -2))
    mexa_low = np.minimum(gaps(pivot_low, -1), gaps(pivot_low, -2))
    uncertain_mexa = np.abs(mexa_low) <= 2 * bound
    return {
        "error_bound": bound,
        "max_observed_error": float(np.abs(low - exact).max()),
        "retrieval_uncertain": float(uncertain_retrieval.mean()),
        "retrieval_flipped_by_low": float(((retrieval_low >= 0) != (retrieval_exact >= 0)).mean()),
        "margin_uncertain": float(uncertain_margin.mean()),
        "margin_flipped_by_low": float(((margin_gap_low >= 0) != (margin_gap_exact >= 0)).mean()),
        "mexa_uncertain": float(uncertain_mexa.mean()),
        "mexa_flipped_by_low": float(((mexa_low > 0) != (mexa_exact > 0)).mean()),
        "pairs_needing_fp32": float((uncertain_retrieval | uncertain_margin).any(axis=-1).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a midalign-analyze output folder")
    parser.add_argument("--cache-dir", type=Path, help="its state cache (default: the one config.json names)")
    parser.add_argument("--out", type=Path, default=OUT, help="result table (CSV)")
    parser.add_argument("--center", action="store_true", help="centre each language first (midalign's --center)")
    parser.add_argument("--low", default="bf16", choices=list(LOW_DTYPES), help="the reduced precision to measure")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config, cache = run_states(args.run, args.cache_dir)
    resolved = config["resolved"]
    languages = resolved["languages"]
    states = np.stack([np.load(cache / f"{lang}.npy") for lang in languages])  # [n, N, L + 1, H]
    if args.center or config.get("center"):
        states = states - states.mean(axis=1, keepdims=True)
    pivot = languages.index(resolved["pivot"])
    rows = []
    for layer in range(states.shape[2]):
        rows.append({"layer": layer, **layer_decisions(states[:, :, layer], pivot, low_dtype=LOW_DTYPES[args.low])})
        logger.info("layer %2d: %s", layer, {name: round(value, 4) for name, value in rows[-1].items()})
    table = pd.DataFrame(rows)
    table.insert(0, "run", args.run.name)
    table.insert(1, "center", args.center or bool(config.get("center")))
    table.insert(2, "low", args.low)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.4g")
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
