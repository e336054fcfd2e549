"""Benchmark: extraction tokens/s on gemma-3-270m over UDHR vs the GEMM limit and a one-sentence-per-forward loop.

Run: python analysis/bench_extraction.py [--quick] [--dtypes fp32 bf16] [--device cuda] [--compile]
Writes analysis/benchmarks/extraction.csv. Every ratio compares numbers measured in the same run.
The limit is peak matmul FLOP/s (measured here, on --device) divided by the body's FLOP per token: 2 x
non-embedding parameters plus the attention score and value products at the batches' mean padded length.
--compile adds an arm: the same extraction with each decoder block's forward compiled (midalign-analyze --compile),
with the compile seconds (the first compiled pass over one language minus its best eager time). The eager and
compiled passes alternate, --repeats times each, and each language's fastest pass counts: on a shared CPU the load
changes within a run, and alternating exposes both arms to the same load. Inductor caches compiled kernels
under TORCHINDUCTOR_CACHE_DIR (default: a folder in /tmp), so a second run's compile seconds show what the cache
saves.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import time
from pathlib import Path

import pandas as pd
import torch

from midalign.benchmarking import DEVICES, check_device, environment, synchronize, timed
from midalign.corpora.languages import PRESETS
from midalign.corpora.parallel import load_parallel
from midalign.models.extract import extract_states, length_sorted_batches, tokenize
from midalign.models.fused import compile_blocks
from midalign.models.loading import load_model
from midalign.models.representations import num_blocks

logger = logging.getLogger("bench_extraction")
OUT = Path(__file__).parent / "benchmarks" / "extraction.csv"  # --out overrides
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def peak_matmul_flops(dtype: torch.dtype, device: torch.device, size: int = 2048, repeats: int = 5) -> float:
    """Best-of-N FLOP/s of a square GEMM at this dtype on this device (and thread count, on the CPU)."""
    if device.type == "cuda":
        size, repeats = 8192, 20  # a 2048 GEMM takes microseconds on a GPU: launch overhead would dominate
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    a @ b  # warm-up
    seconds: list[float] = []
    for _ in range(repeats):
        with timed(device, seconds):
            a @ b
    return 2 * size**3 / min(seconds)


def flop_per_token(model: torch.nn.Module, mean_length: float) -> float:
    """Forward FLOP per token of the decoder body (no LM head): weights plus attention over the sequence."""
    config = model.config.get_text_config()
    embedding = model.get_input_embeddings().weight.numel()
    body = sum(p.numel() for p in model.parameters()) - embedding
    if getattr(config, "tie_word_embeddings", True) is False:
        body -= model.get_output_embeddings().weight.numel()
    attention = 2 * 2 * mean_length * config.num_attention_heads * config.head_dim * num_blocks(model)
    return 2 * body + attention


@torch.inference_mode()
def one_sentence_loop(model: torch.nn.Module, tokenizer, sentences: list[str]) -> float:
    """Seconds for what peers do: the full causal LM (logits included) on one sentence at a time, each sentence's
    vectors copied to the host as peers then save them."""
    device = next(model.parameters()).device
    synchronize(device)
    start = time.perf_counter()
    for sentence in sentences:
        batch = tokenizer(sentence, return_tensors="pt").to(device)
        hidden = model(**batch, output_hidden_states=True).hidden_states
        torch.stack([h[0].mean(0) for h in hidden]).float().cpu()
    return time.perf_counter() - start


def extraction_seconds(model, tokenizer, tokenized: dict, layers: list[int], batch_size: int) -> dict[str, float]:
    """Wall-clock seconds of extract_states per language (it copies every batch's states to the host, so on CUDA
    each call ends synchronised)."""
    device = next(model.parameters()).device
    seconds: dict[str, float] = {}
    for lang, tokens in tokenized.items():
        spent: list[float] = []
        with timed(device, spent):
            extract_states(model, tokenizer, tokens, layers, "mean", batch_size)
        seconds[lang] = spent[0]
    return seconds


def best_seconds(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per language, the fastest of the repeats: on a shared machine the minimum is the least disturbed run."""
    return {lang: min(run[lang] for run in runs) for lang in runs[0]}


def eager_stance(compiled: bool) -> contextlib.AbstractContextManager:
    """Run compiled blocks as plain eager code (torch's force_eager stance), so both arms time one model."""
    return torch.compiler.set_stance("force_eager") if compiled else contextlib.nullcontext()


def write_profile(
    path: Path, title: str, model, tokenizer, tokenized: dict, layers: list[int], batch_size: int, eager: bool
) -> None:
    """Append an op table of one extraction pass (sorted by device time on CUDA, CPU time otherwise)."""
    device = next(model.parameters()).device
    with torch.profiler.profile() as profiler, eager_stance(eager):
        extraction_seconds(model, tokenizer, tokenized, layers, batch_size)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = profiler.key_averages().table(sort_by=sort, row_limit=15)
    with path.open("a") as file:
        file.write(f"{title}, {', '.join(tokenized)}, batch size {batch_size}\n{table}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="result table (CSV)")
    parser.add_argument("--quick", action="store_true", help="2 languages instead of 8, 25 loop sentences")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=list(TORCH_DTYPES))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default=None, help="hub id or local folder (default: the embedded gemma-3-270m)")
    parser.add_argument("--device", default="cpu", choices=DEVICES, help="where the model and reference GEMM run")
    parser.add_argument("--languages", type=int, default=None, help="UDHR languages (default 8; --quick 2)")
    parser.add_argument("--sentences", type=int, default=None, help="paragraphs per language (default all 50)")
    parser.add_argument("--loop-sentences", type=int, default=None, help="one-sentence loop size (default 100)")
    parser.add_argument("--compile", action="store_true", help="also time the compiled forward (see above)")
    parser.add_argument(
        "--freezing",
        action="store_true",
        help="with --compile: inductor freezing (weights as constants, oneDNN weight prepacking on the CPU)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed passes per arm (default 3; --quick 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--profile", type=Path, default=None, help="also write op tables (one language per dtype)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = check_device(args.device)
    if args.freezing:  # inference only, as extraction is; each block's weights become constants of its own graph
        import torch._inductor.config  # only here: importing inductor costs seconds that plain runs should not pay

        torch._inductor.config.freezing = True
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (2 if args.quick else 3)
    n_languages = args.languages or (2 if args.quick else 8)
    preset = PRESETS["udhr48"]
    languages = preset[:: max(1, len(preset) // n_languages)][:n_languages]  # spread over scripts and families
    corpus = load_parallel("udhr", languages, max_sentences=args.sentences)
    n_loop = args.loop_sentences or (25 if args.quick else 100)
    rows = []
    if args.profile:
        args.profile.write_text("")
    for dtype_name in args.dtypes:
        model, tokenizer = load_model(args.model, dtype=dtype_name, device=args.device)
        layers = list(range(num_blocks(model) + 1))
        tokenized = {lang: tokenize(tokenizer, corpus.sentences[lang], 512, "mean") for lang in languages}
        n_tokens = sum(t.n_tokens for t in tokenized.values())
        padded = sum(
            len(rows) * max(len(t.input_ids[i]) for i in rows)
            for t in tokenized.values()
            for rows in length_sorted_batches([len(ids) for ids in t.input_ids], args.batch_size)
        )
        first = {languages[0]: tokenized[languages[0]]}
        extraction_seconds(model, tokenizer, first, layers, args.batch_size)  # warm-up
        if args.compile:
            # The first compiled pass pays tracing and code generation (less what the inductor cache holds); the
            # pass over every language adds any recompiles for other shapes (batch size 1 is specialised).
            compile_blocks(model)
            first_compiled_s = extraction_seconds(model, tokenizer, first, layers, args.batch_size)[languages[0]]
            extraction_seconds(model, tokenizer, tokenized, layers, args.batch_size)
        eager_runs, compiled_runs = [], []
        for _ in range(repeats):
            with eager_stance(args.compile):
                eager_runs.append(extraction_seconds(model, tokenizer, tokenized, layers, args.batch_size))
            if args.compile:
                compiled_runs.append(extraction_seconds(model, tokenizer, tokenized, layers, args.batch_size))
        eager = best_seconds(eager_runs)
        ours_s = sum(eager.values())
        if args.profile:  # where the time goes, op by op: matmuls vs everything else
            for arm in ("eager", "compiled") if args.compile else ("eager",):
                title = f"{dtype_name} {arm}"
                as_eager = args.compile and arm == "eager"
                write_profile(args.profile, title, model, tokenizer, first, layers, args.batch_size, as_eager)
        loop_sentences = [s for lang in languages for s in corpus.sentences[lang]][:n_loop]
        loop_tokens = sum(len(tokenizer(s)["input_ids"]) for s in loop_sentences)
        with eager_stance(args.compile):
            loop_s = one_sentence_loop(model, tokenizer, loop_sentences)
        peak = peak_matmul_flops(TORCH_DTYPES[dtype_name], device)
        mean_length = padded / sum(len(t.input_ids) for t in tokenized.values())
        limit = peak / flop_per_token(model, mean_length)
        ours_rate, loop_rate = n_tokens / ours_s, loop_tokens / loop_s
        compiled = {}
        if args.compile:
            rate = n_tokens / sum(best_seconds(compiled_runs).values())
            compiled = {
                "freezing": args.freezing,
                "compile_s": round(first_compiled_s - eager[languages[0]], 1),
                "compiled_tok_s": round(rate),
                "compiled_fraction_of_limit": round(rate / limit, 3),
                "compiled_speedup_vs_eager": round(rate / ours_rate, 3),
            }
        rows.append(
            {
                **environment(device),
                "dtype": dtype_name,
                "languages": len(languages),
                "tokens": n_tokens,
                "padding_overhead": round(padded / n_tokens - 1, 3),
                "peak_matmul_gflops": round(peak / 1e9, 1),
                "gflop_per_token": round(flop_per_token(model, mean_length) / 1e9, 3),
                "limit_tok_s": round(limit),
                "ours_tok_s": round(ours_rate),
                "loop_tok_s": round(loop_rate),
                "fraction_of_limit": round(ours_rate / limit, 3),
                "speedup_vs_loop": round(ours_rate / loop_rate, 2),
                "repeats": repeats,
                **compiled,
            }
        )
        logger.info("%s", rows[-1])
        del model
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False)
    logger.info("\n%s\nwrote %s", table.to_string(index=False), args.out)


if __name__ == "__main__":
    main()
