"""Benchmark: one alignment training step with the forward stopped at block k vs full-depth forwards.

Run: python analysis/bench_align_step.py [--quick] [--layers K ...] [--device cuda] [--dtype bf16]
Writes analysis/benchmarks/align_step.csv. Every variant runs the same LoRA model, batch and loss (forward of both
sides of a pair batch, pooling at layer k, contrastive loss, backward); they differ only in what runs above k:
- stopped: midalign's forward, which raises out of block k (no upper blocks, no LM head);
- full_body: the whole decoder body (all blocks and the final norm, no LM head) with every hidden state kept;
- full_lm: the causal LM as peers call it, `model(..., output_hidden_states=True)`: every block and the logits.
Backward only reaches the blocks below k in every variant (the loss depends on nothing above). Target: stopped
<= 0.6x full at k = L/2. Ratios are taken within one run, best of N repeats.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd
import torch

from midalign.benchmarking import DEVICES, check_device, environment, timed
from midalign.corpora.parallel import load_parallel
from midalign.models.loading import load_model
from midalign.models.representations import forward_layers, num_blocks, pool, unwrap_decoder
from midalign.training.losses import AlignmentLoss
from midalign.training.trainer import attach_lora, resolve_target_modules

logger = logging.getLogger("bench_align_step")
OUT = Path(__file__).parent / "benchmarks" / "align_step.csv"  # --out overrides
VARIANTS = ("stopped", "full_body", "full_lm")


def hidden_at(model: torch.nn.Module, batch: dict[str, torch.Tensor], layer: int, variant: str) -> torch.Tensor:
    """hidden_states[layer] of the batch, computed the way the variant says."""
    if variant == "stopped":
        return forward_layers(model, batch["input_ids"], batch["attention_mask"], [layer])[layer]
    runner = unwrap_decoder(model) if variant == "full_body" else model
    return runner(**batch, output_hidden_states=True).hidden_states[layer]


def step(model, loss_fn, batches, layer: int, variant: str) -> float:
    """Seconds for forward + backward of the alignment loss on both sides of the pair batch."""
    model.zero_grad(set_to_none=True)
    seconds: list[float] = []
    with timed(batches[0]["input_ids"].device, seconds):
        pooled = [pool(hidden_at(model, batch, layer, variant), batch["attention_mask"]) for batch in batches]
        loss_fn(pooled[0], pooled[1]).backward()
    return seconds[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="result table (CSV)")
    parser.add_argument("--quick", action="store_true", help="2 repeats instead of 5, k = L/2 only")
    parser.add_argument("--layers", type=int, nargs="+", default=None, help="values of k; default L/4, L/2, 3L/4")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--model", default=None, help="hub id or local folder (default: the embedded gemma-3-270m)")
    parser.add_argument("--device", default="cpu", choices=DEVICES, help="where the model and batches live")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (default 5; --quick 2)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    device = check_device(args.device)
    model, tokenizer = load_model(args.model, dtype=args.dtype, device=args.device)
    n_blocks = num_blocks(model)
    layers = args.layers or ([n_blocks // 2] if args.quick else [n_blocks // 4, n_blocks // 2, 3 * n_blocks // 4])
    model = attach_lora(model, 8, 16, 0.0, resolve_target_modules(model))
    model.train()
    corpus = load_parallel("udhr", ["deu_Latn", "eng_Latn"], max_sentences=args.batch_size)
    batches = [
        tokenizer(corpus.sentences[lang], padding=True, return_tensors="pt").to(device) for lang in corpus.languages
    ]
    loss_fn = AlignmentLoss()
    repeats = args.repeats or (2 if args.quick else 5)
    rows = []
    for layer in layers:
        seconds = {}
        for variant in VARIANTS:
            step(model, loss_fn, batches, layer, variant)  # warm-up
            seconds[variant] = min(step(model, loss_fn, batches, layer, variant) for _ in range(repeats))
        rows.append(
            {
                **environment(device),
                "dtype": args.dtype,
                "n_blocks": n_blocks,
                "layer": layer,
                "batch_pairs": args.batch_size,
                "tokens": int(sum(b["attention_mask"].sum() for b in batches)),
                **{f"{variant}_s": round(value, 3) for variant, value in seconds.items()},
                "stopped_over_full_body": round(seconds["stopped"] / seconds["full_body"], 3),
                "stopped_over_full_lm": round(seconds["stopped"] / seconds["full_lm"], 3),
            }
        )
        logger.info("%s", rows[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False)
    logger.info("\n%s\nwrote %s", table.to_string(index=False), args.out)


if __name__ == "__main__":
    main()
