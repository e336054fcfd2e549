"""Benchmark: extraction tokens/s on gemma-3-270m over UDHR vs the GEMM limit and a one-sentence-per-forward loop.

Run: python analysis/bench_extraction.py [--quick] [--dtypes fp32 bf16]
Writes analysis/benchmarks/extraction.csv. Every ratio compares numbers measured in the same run.
The limit is peak matmul FLOP/s (measured here) divided by the body's FLOP per token: 2 x non-embedding
parameters plus the attention score and value products at the batches' mean padded length.
"""

from __future__ import annotations

import argparse
import logging
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from midalign.corpora.languages import PRESETS
from midalign.corpora.parallel import load_parallel
from midalign.models.extract import extract_states, length_sorted_batches, tokenize
from midalign.models.loading import load_model
from midalign.models.representations import num_blocks

logger = logging.getLogger("bench_extraction")
OUT = Path(__file__).parent / "benchmarks" / "extraction.csv"  # --out overrides
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def peak_matmul_flops(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """Best-of-N FLOP/s of a square GEMM at this dtype and thread count."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


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
    """Seconds for what peers do: the full causal LM (logits included) on one sentence at a time."""
    start = time.perf_counter()
    for sentence in sentences:
        batch = tokenizer(sentence, return_tensors="pt")
        hidden = model(**batch, output_hidden_states=True).hidden_states
        torch.stack([h[0].mean(0) for h in hidden])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="result table (CSV)")
    parser.add_argument("--quick", action="store_true", help="2 languages instead of 8")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=list(TORCH_DTYPES))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--profile", type=Path, default=None, help="also write op tables (one language per dtype)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    languages = PRESETS["udhr48"][:: 24 if args.quick else 6]
    corpus = load_parallel("udhr", languages)
    rows = []
    if args.profile:
        args.profile.write_text("")
    for dtype_name in args.dtypes:
        model, tokenizer = load_model(dtype=dtype_name)
        layers = list(range(num_blocks(model) + 1))
        tokenized = {lang: tokenize(tokenizer, corpus.sentences[lang], 512, "mean") for lang in languages}
        n_tokens = sum(t.n_tokens for t in tokenized.values())
        padded = sum(
            len(rows) * max(len(t.input_ids[i]) for i in rows)
            for t in tokenized.values()
            for rows in length_sorted_batches([len(ids) for ids in t.input_ids], args.batch_size)
        )
        extract_states(model, tokenizer, tokenized[languages[0]], layers, "mean", args.batch_size)  # warm-up
        start = time.perf_counter()
        for lang in languages:
            extract_states(model, tokenizer, tokenized[lang], layers, "mean", args.batch_size)
        ours_s = time.perf_counter() - start
        if args.profile:  # where the time goes, op by op: matmuls vs everything else
            with torch.profiler.profile() as profiler:
                extract_states(model, tokenizer, tokenized[languages[0]], layers, "mean", args.batch_size)
            table = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
            with args.profile.open("a") as file:
                file.write(f"{dtype_name}, {languages[0]}, batch size {args.batch_size}\n{table}\n")
        loop_sentences = [s for lang in languages for s in corpus.sentences[lang]][: 25 if args.quick else 100]
        loop_tokens = sum(len(tokenizer(s)["input_ids"]) for s in loop_sentences)
        loop_s = one_sentence_loop(model, tokenizer, loop_sentences)
        peak = peak_matmul_flops(TORCH_DTYPES[dtype_name])
        mean_length = padded / sum(len(t.input_ids) for t in tokenized.values())
        limit = peak / flop_per_token(model, mean_length)
        ours_rate, loop_rate = n_tokens / ours_s, loop_tokens / loop_s
        rows.append(
            {
                "device": platform.processor() or platform.machine(),
                "threads": torch.get_num_threads(),
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
