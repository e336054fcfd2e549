"""Batched greedy generation of short answers: left padding, length-sorted batches, stop at a newline or EOS.

Prompts are tokenized exactly as `midalign-train` tokenizes task prompts (`tokenizer(prompt)`, special tokens
added), so a trained adapter sees at test time the token sequence it learnt to continue. A decoder continues
from its last position, so batches are padded on the left; sorting prompts by length keeps that padding small.
A row stops at EOS or once its text holds a stop string (a newline by default: every answer is one line); the
answer is the text before the first stop string, stripped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

logger = logging.getLogger(__name__)


class StopOnText(StoppingCriteria):
    """Per-row stop once the text generated after `start` contains one of `stops`."""

    def __init__(self, tokenizer, start: int, stops: Sequence[str]) -> None:
        self.tokenizer, self.start, self.stops = tokenizer, start, tuple(stops)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.start :], skip_special_tokens=True)  # [B] strings
        return torch.tensor([any(s in t for s in self.stops) for t in texts], device=input_ids.device)  # [B] bool


def cut(text: str, stops: Sequence[str]) -> str:
    """The text before the first stop string, stripped."""
    for stop in stops:
        text = text.split(stop, 1)[0]
    return text.strip()


def _contiguous_input(module: torch.nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(), *args[1:])


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask [B, T], padded on the left."""
    width = max(len(row) for row in rows)
    ids = torch.tensor([[pad_id] * (width - len(row)) + list(row) for row in rows])  # [B, T]
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])  # [B, T]
    return ids, mask


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int = 32,
    batch_size: int = 16,
    stops: Sequence[str] = ("\n",),
    autocast: contextlib.AbstractContextManager | None = None,
    progress: bool = True,
) -> list[str]:
    """Greedy answers to `prompts`, in their order."""
    if not prompts:
        return []
    encoded = [tokenizer(prompt)["input_ids"] for prompt in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))  # longest first: a too-big batch fails early
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad, bos_token_id=tokenizer.bos_token_id,
    )  # fmt: skip
    answers: list[str] = [""] * len(prompts)
    started, new_tokens = time.perf_counter(), 0
    # The LM head reads hidden states sliced to the last position (a non-contiguous [B, 1, H] view). With a frozen
    # weight (a peft model, merged or not), torch 2.13 on CPU multiplies such an input through an unfolded bmm that
    # copies the 262k x 640 weight once per row: 40 s instead of 0.1 s per step for gemma-3-270m. A contiguous
    # input takes the plain GEMM.
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    hook = head.register_forward_pre_hook(_contiguous_input) if head is not None else None
    try:
        with tqdm(total=len(prompts), desc="generate", unit="ex", disable=not progress, dynamic_ncols=True) as bar:
            for first in range(0, len(order), batch_size):
                rows = order[first : first + batch_size]
                ids, mask = left_pad([encoded[i] for i in rows], pad)
                stop = StoppingCriteriaList([StopOnText(tokenizer, ids.shape[1], stops)])
                with autocast or contextlib.nullcontext():
                    out = model.generate(
                        input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=config,
                        stopping_criteria=stop,
                    )  # fmt: skip
                generated = out[:, ids.shape[1] :]  # [B, new]
                new_tokens += int((generated != pad).sum())
                for row, text in zip(rows, tokenizer.batch_decode(generated, skip_special_tokens=True), strict=True):
                    answers[row] = cut(text, stops)
                bar.update(len(rows))
    finally:
        if hook is not None:
            hook.remove()
    seconds = time.perf_counter() - started
    logger.info("generated %d answers (%d new tokens) in %.1f s", len(prompts), new_tokens, seconds)
    return answers
