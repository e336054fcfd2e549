"""Benchmark: all-pairs metrics at 442 languages x all layers vs the bare matrix products and a per-pair loop.

Run: python analysis/bench_metrics.py [--quick] [--langs 442] [--layers 19] [--device cuda] [--fused]
Writes analysis/benchmarks/metrics.csv. Ratios are measured in one run, so machine speed cancels out. With
--device cuda the states, the reference products and the loop all run on the GPU (timers synchronise).
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from midalign.analysis.metrics import MEMORY_BYTES, Workspace, _block_size, pair_metrics
from midalign.benchmarking import DEVICES, check_device, environment, synchronize

logger = logging.getLogger("bench_metrics")
OUT = Path(__file__).parent / "benchmarks" / "metrics.csv"  # --out overrides


def significant(value: float) -> float:
    """Four significant digits: timings span microseconds (smoke runs) to hours (extrapolated loops)."""
    return float(f"{value:.4g}")


def synthetic_states(
    n_langs: int, n_sentences: int, hidden: int, seed: int = 0, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Parallel-looking states: a shared sentence signal plus language-specific offset and noise."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(1, n_sentences, hidden))
    offsets = rng.normal(scale=2.0, size=(n_langs, 1, hidden))
    noise = rng.normal(scale=1.5, size=(n_langs, n_sentences, hidden))
    return torch.from_numpy((shared + offsets + noise).astype(np.float32)).to(device)


def bare_products(states: torch.Tensor, symmetric: bool, workspace: Workspace, dtype: torch.dtype) -> float:
    """Seconds for only the similarity matrix products, into a reused output buffer whose pages are already mapped.

    symmetric: exactly the blocks pair_metrics multiplies (each language block against itself and every later
    language: the products the metrics need); otherwise the full [nN, nN] square of a per-direction scheme.
    dtype: bfloat16 times what products in reduced precision would cost (an exact bf16 scheme's floor).
    """
    n_langs, n_sentences, hidden = states.shape
    unit = torch.nn.functional.normalize(states, dim=-1).to(dtype)
    step = _block_size(n_langs, n_sentences, MEMORY_BYTES)
    out = workspace.get(f"bare_{dtype}", (step * n_sentences * n_langs * n_sentences,), unit)
    out.zero_()  # faults the pages in before the clock starts, as the metrics' reused workspace has them
    synchronize(states.device)
    start = time.perf_counter()
    for first in range(0, n_langs, step):
        last = min(first + step, n_langs)
        keys = unit[first if symmetric else 0 :].reshape(-1, hidden)
        queries = unit[first:last].reshape(-1, hidden)
        torch.mm(queries, keys.T, out=out[: len(queries) * len(keys)].view(len(queries), len(keys)))
    synchronize(states.device)
    return time.perf_counter() - start


def per_pair_loop(states: torch.Tensor, pairs: list[tuple[int, int]]) -> float:
    """Seconds per directed pair for what peers write: per pair, each source row queries the target by cosine and
    takes the argmax (retrieval accuracy only: the cheapest of the four metrics). NumPy on the CPU, as peers write
    it there; torch on an accelerator, one small product per row, each hit read back as peers' `.item()` does."""
    if states.device.type == "cpu":
        array = states.numpy()
        unit = array / np.linalg.norm(array, axis=-1, keepdims=True)
        start = time.perf_counter()
        for s, t in pairs:
            hits = 0
            for i, row in enumerate(unit[s]):
                hits += int(np.argmax(unit[t] @ row) == i)
        return (time.perf_counter() - start) / len(pairs)
    unit = torch.nn.functional.normalize(states, dim=-1)
    synchronize(states.device)
    start = time.perf_counter()
    for s, t in pairs:
        hits = 0
        for i, row in enumerate(unit[s]):
            hits += int(torch.argmax(unit[t] @ row).item() == i)
    return (time.perf_counter() - start) / len(pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="result table (CSV)")
    parser.add_argument("--langs", type=int, default=442)
    parser.add_argument("--layers", type=int, default=19)
    parser.add_argument("--sentences", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=640)
    parser.add_argument("--quick", action="store_true", help="3 layers instead of 19 (a few minutes less)")
    parser.add_argument("--device", default="cpu", choices=DEVICES, help="where states and products live")
    parser.add_argument("--profile", type=Path, default=None, help="also write a torch.profiler table of one layer")
    parser.add_argument("--fused", action="store_true", help="also time the compiled scorer (pair_metrics fused=True)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = check_device(args.device)
    layers = min(3, args.layers) if args.quick else args.layers
    n_pairs = args.langs * (args.langs - 1)
    timings = {"metrics_s": 0.0, "bare_gemm_s": 0.0, "full_square_gemm_s": 0.0, "bare_bf16_gemm_s": 0.0}
    workspace = Workspace()  # as all_layer_metrics does: one set of buffers for every layer
    references = Workspace()
    fused = {}
    if args.fused:  # the first call compiles (less what inductor's cache holds); later calls reuse the code
        warm_up = synthetic_states(args.langs, args.sentences, args.hidden, seed=layers, device=device)
        start = time.perf_counter()
        pair_metrics(warm_up, workspace=workspace, fused=True)
        synchronize(device)
        fused["compile_s"] = time.perf_counter() - start
        fused["fused_metrics_s"] = 0.0
    for layer in range(layers):
        states = synthetic_states(args.langs, args.sentences, args.hidden, seed=layer, device=device)
        synchronize(device)
        start = time.perf_counter()
        eager = pair_metrics(states, workspace=workspace)
        synchronize(device)
        timings["metrics_s"] += time.perf_counter() - start
        if args.fused:
            start = time.perf_counter()
            compiled = pair_metrics(states, workspace=workspace, fused=True)
            synchronize(device)
            fused["fused_metrics_s"] += time.perf_counter() - start
            if any(not torch.equal(compiled[name], eager[name]) for name in eager):
                raise SystemExit(f"layer {layer}: the fused scorer's metrics differ from eager's")
        timings["bare_gemm_s"] += bare_products(states, True, references, torch.float32)
        timings["full_square_gemm_s"] += bare_products(states, False, references, torch.float32)
        timings["bare_bf16_gemm_s"] += bare_products(states, True, references, torch.bfloat16)
    if args.profile:  # where one layer's time goes, op by op (the gap to the bare products, if any)
        with torch.profiler.profile() as profiler:
            pair_metrics(synthetic_states(args.langs, args.sentences, args.hidden, device=device), workspace=workspace)
            synchronize(device)
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        args.profile.write_text(profiler.key_averages().table(sort_by=sort, row_limit=15) + "\n")
        logger.info("wrote %s", args.profile)
    sample = [(s, (s * 7 + 1) % args.langs) for s in range(0, args.langs, max(1, args.langs // 200))]
    loop_per_pair = per_pair_loop(synthetic_states(args.langs, args.sentences, args.hidden, device=device), sample)
    loop_s = loop_per_pair * n_pairs * layers  # extrapolated: the loop would take hours at full size
    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    flops = 2 * (args.langs * args.sentences) ** 2 * args.hidden * layers  # of the full square
    if device.type == "cuda":
        peak_gpu_gb = torch.cuda.max_memory_allocated(device) / 2**30
    row = {
        **environment(device),
        "langs": args.langs,
        "directed_pairs": n_pairs,
        "layers": layers,
        "sentences": args.sentences,
        "hidden": args.hidden,
        "metrics_s": significant(timings["metrics_s"]),
        "bare_gemm_s": significant(timings["bare_gemm_s"]),
        "full_square_gemm_s": significant(timings["full_square_gemm_s"]),
        "gemm_gflops": significant(flops / timings["full_square_gemm_s"] / 1e9),
        "efficiency_vs_bare_gemm": significant(timings["bare_gemm_s"] / timings["metrics_s"]),
        "efficiency_vs_full_square_gemm": significant(timings["full_square_gemm_s"] / timings["metrics_s"]),
        "per_pair_loop_s_extrapolated": significant(loop_s),
        "speedup_vs_per_pair_loop": significant(loop_s / timings["metrics_s"]),
        **(
            {
                "fused_compile_s": significant(fused["compile_s"] - timings["metrics_s"] / layers),
                "fused_metrics_s": significant(fused["fused_metrics_s"]),
                "fused_efficiency_vs_bare_gemm": significant(timings["bare_gemm_s"] / fused["fused_metrics_s"]),
            }
            if args.fused
            else {}
        ),
        "bare_bf16_gemm_s": significant(timings["bare_bf16_gemm_s"]),
        # The most any bf16-products scheme could gain, even with its re-scoring free: only the products shrink.
        "bf16_speedup_bound": significant(
            timings["metrics_s"] / (timings["metrics_s"] - timings["bare_gemm_s"] + timings["bare_bf16_gemm_s"])
        ),
        "peak_rss_gb": significant(peak_rss_gb),
        **({"peak_gpu_gb": significant(peak_gpu_gb)} if device.type == "cuda" else {}),
    }
    for name, value in row.items():
        logger.info("%-30s %s", name, value)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(args.out, index=False)
    logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
