"""On the real model: is the merged adapter exactly W + w_task dW_task + w_align dW_align?

The reference adds each adapter's update, taken from peft's own merge_and_unload, to the base weights; the merged
adapter (midalign-merge) is folded by peft too. Prints the largest weight difference and the largest difference of
the hidden states and logits on two UDHR sentences, and writes them to analysis/merge_cldr/exactness-s{SEED}.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from peft import PeftModel

from midalign.corpora.parallel import load_parallel
from midalign.models.loading import load_model
from midalign.training.adapters import merge_adapters

TASK, ALIGN = "runs/transfer_cldr/baseline-s{seed}/adapter", "analysis/merge_cldr/align_matched-s{seed}/adapter"


def folded(adapter: str | Path) -> dict[str, torch.Tensor]:
    """The projection weights (every module both adapters target) with one adapter merged in by peft."""
    model, _ = load_model(None, dtype="fp32", device="cpu")
    state = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload().state_dict()
    return {k: v for k, v in state.items() if k.endswith("_proj.weight")}  # the rest (embeddings) is untouched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--w-align", type=float, default=0.5)
    args = parser.parse_args()
    task, align = TASK.format(seed=args.seed), ALIGN.format(seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        merged = folded(merge_adapters(task, align, Path(tmp) / "merged", 1.0, args.w_align))
    base, tokenizer = load_model(None, dtype="fp32", device="cpu")
    weights = {k: v.clone() for k, v in base.state_dict().items() if k.endswith("_proj.weight")}
    deltas = [folded(task), folded(align)]  # W + dW_task, W + dW_align
    reference = {k: deltas[0][k] + args.w_align * (deltas[1][k] - v) for k, v in weights.items()}
    weight_diff = max(float((merged[k] - reference[k]).abs().max()) for k in reference)
    changed = sum(int(not torch.equal(deltas[0][k], weights[k])) for k in weights)
    sentences = load_parallel("udhr", ["eng_Latn", "deu_Latn"], "train").sentences
    batch = tokenizer([sentences["eng_Latn"][0], sentences["deu_Latn"][0]], return_tensors="pt", padding=True)
    outputs = []
    for state in (merged, reference):
        base.load_state_dict(state, strict=False)
        with torch.no_grad():
            out = base(**batch, output_hidden_states=True)
        outputs.append([out.logits, *out.hidden_states])
    output_diff = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(*outputs, strict=True))
    result = {"w_task": 1.0, "w_align": args.w_align, "tensors_changed_by_task_adapter": changed,
              "max_abs_weight_difference": weight_diff, "max_relative_output_difference": output_diff}  # fmt: skip
    print(json.dumps(result, indent=2))
    Path(f"analysis/merge_cldr/exactness-s{args.seed}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
