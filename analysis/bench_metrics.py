"""Benchmark: all-pairs metrics at 442 languages x all layers vs the bare matrix products and a per-pair loop.

Run: python analysis/bench_metrics.py [--quick] [--langs 442] [--layers 19] [--device cuda] [--fused]
Writes analysis/benchmarks/metrics.csv. Ratios are measured in one run, so machine speed cancels out. With
--device cuda the states, the reference products and the loop all run on the GPU (timers synchronise).

--pairs pivot (midalign-analyze --pairs pivot) times `pivot_pair_metrics` on synthetic states of FLORES' shape
(200 languages x 1012 sentences x 19 layers, hidden 640; --langs etc. override), its peak memory, and the square
fp32 GEMM rate measured in the same run beside the fraction of it reached; the all-pairs scorer is timed on the
first --all-langs languages and extrapolated to all of them (it would take hours here). Writes
analysis/benchmarks/metrics_pivot.csv.
"""

from __future__ import annotations

import argparse
import logging
import math
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from midalign.analysis.metrics import MEMORY_BYTES, Workspace, _block_size, pair_metrics, pivot_pair_metrics
from midalign.benchmarking import DEVICES, check_device, environment, synchronize

logger = logging.getLogger("bench_metrics")
OUT = Path(__file__).parent / "benchmarks" / "metrics.csv"  # --out overrides
PIVOT_OUT = Path(__file__).parent / "benchmarks" / "metrics_pivot.csv"  # --pairs pivot
# FLORES-200 devtest: 1012 sentences in 200 languages (gemma-3-270m's 18 blocks: 19 layers, hidden 640)
FLORES_SHAPE = {"langs": 200, "sentences": 1012, "layers": 19, "hidden": 640}


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


def synthetic_states_fp32(n_langs: int, n_sentences: int, hidden: int, seed: int = 0) -> torch.Tensor:
    """The same kind of states built in fp32 in place, so that FLORES' shape (0.5 GB a layer) needs no float64
    copies that would set the peak memory instead of the metrics."""
    rng = np.random.default_rng(seed)
    states = rng.standard_normal(size=(n_langs, n_sentences, hidden), dtype=np.float32)
    states *= 1.5
    states += 2.0 * rng.standard_normal(size=(n_langs, 1, hidden), dtype=np.float32)
    states += rng.standard_normal(size=(1, n_sentences, hidden), dtype=np.float32)
    return torch.from_numpy(states)


def gemm_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The machine's fp32 square-GEMM rate, the best of `repeats` products (measured, never assumed)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux: clear_refs 5), so that the next reading is the
    peak of what follows alone; False where that is not possible (the reading then covers the whole process)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_gb() -> float:
    """The peak resident memory since the last reset (VmHWM), or of the whole process."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def pivot_product_flop(n_langs: int, n_sentences: int, hidden: int, pivot: int, memory_bytes: int) -> int:
    """FLOP of the similarity products pivot_pair_metrics runs for one layer: the pivot against the languages from
    its all-pairs block on, and every language up to its block's end against the pivot."""
    step = _block_size(n_langs, n_sentences, memory_bytes)
    block_start = pivot // step * step
    block_stop = min(block_start + step, n_langs)
    return 2 * n_sentences**2 * hidden * ((n_langs - block_start) + block_stop)


def all_product_flop(n_langs: int, n_sentences: int, hidden: int) -> int:
    """FLOP of pair_metrics' products for one layer: each unordered pair (and each language with itself) once."""
    return 2 * n_sentences**2 * hidden * n_langs * (n_langs + 1) // 2


def pivot_benchmark(args: argparse.Namespace) -> dict[str, object]:
    """--pairs pivot: one row of measured pivot figures, the all-pairs cost measured on a subset and extrapolated."""
    shape = {name: getattr(args, name) or default for name, default in FLORES_SHAPE.items()}
    n_langs, n_sentences, layers, hidden = shape["langs"], shape["sentences"], shape["layers"], shape["hidden"]
    pivot = args.pivot_index if args.pivot_index is not None else n_langs // 4
    peak = gemm_peak_gflops()
    logger.info("fp32 square-GEMM peak of this machine: %.1f GFLOP/s", peak)
    workspace = Workspace()
    pivot_s, baseline_gb, peak_gb, resettable = 0.0, 0.0, 0.0, True
    for layer in range(layers):
        states = synthetic_states_fp32(n_langs, n_sentences, hidden, seed=layer)
        resettable &= reset_peak_rss()  # from here the mark covers this layer's scoring alone
        baseline_gb = max(baseline_gb, peak_rss_gb())  # what it starts from: the states (and the workspace)
        start = time.perf_counter()
        pivot_pair_metrics(states, pivot, workspace=workspace)
        pivot_s += time.perf_counter() - start
        peak_gb = max(peak_gb, peak_rss_gb())
        logger.info("layer %d: pivot metrics %.2f s in all (peak RSS %.2f GB)", layer, pivot_s, peak_gb)
        del states
    pivot_flop = pivot_product_flop(n_langs, n_sentences, hidden, pivot, MEMORY_BYTES) * layers
    subset = min(args.all_langs, n_langs)
    all_s = 0.0
    for layer in range(args.all_layers):
        states = synthetic_states_fp32(subset, n_sentences, hidden, seed=layer)
        start = time.perf_counter()
        pair_metrics(states, workspace=workspace)
        all_s += time.perf_counter() - start
        logger.info("all pairs of %d languages, layer %d: %.2f s", subset, layer, all_s)
    # pair_metrics' work is one block per unordered pair (self pairs included): time scales with n (n + 1) / 2.
    scale = (n_langs * (n_langs + 1)) / (subset * (subset + 1)) * layers / args.all_layers
    all_flop = all_product_flop(n_langs, n_sentences, hidden) * layers
    return {
        **environment("cpu"),
        "langs": n_langs,
        "sentences": n_sentences,
        "layers": layers,
        "hidden": hidden,
        "pivot_index": pivot,
        "pivot_directed_pairs": 2 * (n_langs - 1),
        "all_directed_pairs": n_langs * (n_langs - 1),
        "gemm_peak_gflops": significant(peak),
        "pivot_s": significant(pivot_s),
        "pivot_product_flop": float(f"{pivot_flop:.4g}"),
        "pivot_gflops": significant(pivot_flop / pivot_s / 1e9),
        "pivot_fraction_of_gemm_peak": significant(pivot_flop / pivot_s / 1e9 / peak),
        "pivot_peak_rss_gb": significant(peak_gb),
        "pivot_peak_rss_is_scoring_only": bool(resettable),
        "rss_before_scoring_gb": significant(baseline_gb),
        "all_subset_langs": subset,
        "all_subset_layers": args.all_layers,
        "all_subset_s": significant(all_s),
        "all_s_extrapolated": significant(all_s * scale),
        "all_product_flop": float(f"{all_flop:.4g}"),
        "all_over_pivot_s": significant(all_s * scale / pivot_s),
        "peak_rss_gb": significant(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20),
    }


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
    parser.add_argument("--out", type=Path, default=None, help="result table (CSV; default by --pairs)")
    parser.add_argument("--langs", type=int, default=None, help="default 442 (--pairs pivot: 200)")
    parser.add_argument("--layers", type=int, default=None, help="default 19")
    parser.add_argument("--sentences", type=int, default=None, help="default 50 (--pairs pivot: 1012)")
    parser.add_argument("--hidden", type=int, default=None, help="default 640")
    parser.add_argument("--pairs", default="all", choices=("all", "pivot"), help="which scorer (see above)")
    parser.add_argument("--pivot-index", type=int, default=None, help="--pairs pivot: the pivot (default n / 4)")
    parser.add_argument("--all-langs", type=int, default=20, help="--pairs pivot: languages of the timed all run")
    parser.add_argument("--all-layers", type=int, default=2, help="--pairs pivot: layers of the timed all run")
    parser.add_argument("--quick", action="store_true", help="3 layers instead of 19 (a few minutes less)")
    parser.add_argument("--device", default="cpu", choices=DEVICES, help="where states and products live")
    parser.add_argument("--profile", type=Path, default=None, help="also write a torch.profiler table of one layer")
    parser.add_argument("--fused", action="store_true", help="also time the compiled scorer (pair_metrics fused=True)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.pairs == "pivot":
        if args.device != "cpu":
            raise SystemExit("--pairs pivot measures this CPU; its GPU figure is derived in docs/scaling.md")
        write_row(pivot_benchmark(args), args.out or PIVOT_OUT)
        return
    args.out = args.out or OUT
    for name, default in (("langs", 442), ("layers", 19), ("sentences", 50), ("hidden", 640)):
        setattr(args, name, getattr(args, name) or default)
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
    write_row(row, args.out)


def write_row(row: dict[str, object], out: Path) -> None:
    for name, value in row.items():
        logger.info("%-30s %s", name, value)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(out, index=False)
    logger.info("wrote %s", out)


if __name__ == "__main__":
    main()
