"""Per-layer hidden states of a decoder LM, pooled per sentence, without running more of the model than needed.

Layer convention (the one HF's `hidden_states` uses, stated once here and used everywhere): layer 0 is the
embedding output (the input to block 1), layer i is the residual stream after decoder block i, and layer L
(the last block) is what the model returns, which for most decoders is already final-normed.

The forward runs the decoder body only (never the LM head, whose 262k-vocab logits cost gemma-3-270m 3x the
body) and stops after the deepest layer asked for: a hook on that block raises `_StopForward` once its output
is captured. That works for any decoder whose blocks are an `nn.ModuleList`, without patching transformers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from midalign.errors import MidalignError
from midalign.options import POOLINGS, Pooling


class LayerOutOfRangeError(MidalignError, ValueError):
    """A requested layer index outside 0..L (L = num_blocks)."""


class _StopForward(Exception):  # noqa: N818 - control flow, not an error
    """Raised by the hook on the deepest requested block so that no block above it runs."""


def unwrap_decoder(model: nn.Module) -> nn.Module:
    """The decoder body (embeddings + blocks + final norm) of a causal LM, a peft model or a bare body."""
    if hasattr(model, "get_base_model"):  # peft.PeftModel
        model = model.get_base_model()
    body = getattr(model, "base_model", model)
    return model if body is None else body


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The ModuleList of decoder blocks: the longest one of length `num_hidden_layers`."""
    body = unwrap_decoder(model)
    config = body.config.get_text_config() if hasattr(body.config, "get_text_config") else body.config
    n_blocks = config.num_hidden_layers
    lists = [module for module in body.modules() if isinstance(module, nn.ModuleList) and len(module) == n_blocks]
    if not lists:
        raise MidalignError(f"cannot find the {n_blocks} decoder blocks of {type(model).__name__}")
    return lists[0]  # modules() walks parents first, so the outermost list of blocks comes first


def num_blocks(model: nn.Module) -> int:
    """Number of decoder blocks L; valid layer indices are 0..L."""
    return len(decoder_blocks(model))


def check_layers(layers: Sequence[int], n_blocks: int) -> None:
    """Raise a clear error for layer indices outside 0..n_blocks."""
    bad = [layer for layer in layers if not 0 <= layer <= n_blocks]
    if bad:
        raise LayerOutOfRangeError(
            f"layer(s) {bad} out of range: this model has {n_blocks} blocks, so layers are 0 (embeddings) "
            f"to {n_blocks} (last block)"
        )


def _first_tensor(output: object) -> torch.Tensor:
    # Blocks return a tensor in transformers 5 and a tuple (hidden, ...) in older versions and other models.
    return output[0] if isinstance(output, tuple) else output  # type: ignore[index,return-value]


def forward_layers(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    layers: Sequence[int],
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[int, torch.Tensor]:
    """Hidden states [B, T, H] (or `transform` of them) at `layers`, running blocks up to max(layers) only."""
    blocks = decoder_blocks(model)
    n_blocks = len(blocks)
    check_layers(layers, n_blocks)
    wanted = set(layers)
    deepest = max(wanted)
    captured: dict[int, torch.Tensor] = {}
    apply = transform or (lambda hidden: hidden)

    def capture_input(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]
        captured[0] = apply(hidden)
        if deepest == 0:
            raise _StopForward

    def capture_output(index: int) -> Callable:
        def hook(_module: nn.Module, _args: tuple, output: object) -> None:
            captured[index] = apply(_first_tensor(output))
            if index == deepest:
                raise _StopForward

        return hook

    handles = []
    if 0 in wanted:
        handles.append(blocks[0].register_forward_pre_hook(capture_input, with_kwargs=True))
    # The hook on block `deepest` raises after capturing, so nothing above it runs; layer L instead comes
    # from the body's own output below (it is final-normed there, as in HF's hidden_states).
    for index in range(1, min(deepest, n_blocks - 1) + 1):
        if index in wanted:
            handles.append(blocks[index - 1].register_forward_hook(capture_output(index)))
    body = unwrap_decoder(model)
    try:
        output = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        # Only reached when the last block was requested: the model's own output is HF's hidden_states[L].
        captured[n_blocks] = apply(output.last_hidden_state)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return {layer: captured[layer] for layer in sorted(wanted)}


def pool(
    hidden: torch.Tensor,
    attention_mask: torch.Tensor,
    pooling: Pooling = "mean",
    special_tokens_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pool [B, T, H] hidden states to [B, H] over real tokens; correct for left and right padding."""
    mask = attention_mask.to(hidden.dtype)  # [B, T]
    if pooling == "mean_no_special":
        if special_tokens_mask is None:
            raise ValueError("pooling 'mean_no_special' needs the tokenizer's special_tokens_mask")
        content = mask * (1 - special_tokens_mask.to(hidden.dtype))  # [B, T]
        # A sentence that is nothing but special tokens falls back to all its tokens rather than to zeros.
        mask = torch.where(content.sum(1, keepdim=True) > 0, content, mask)
    elif pooling == "weighted_mean":
        mask = mask * torch.cumsum(mask, dim=1)  # weight = position among real tokens (1, 2, ...), as MEXA/SGPT
    elif pooling == "last":
        positions = torch.arange(mask.shape[1], device=mask.device)  # [T]
        last = (attention_mask.long() * positions).argmax(dim=1)  # [B] index of the last real token
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # [B, H]
    elif pooling != "mean":
        raise ValueError(f"unknown pooling {pooling!r}; choose from {POOLINGS}")
    # Sum in fp32: bf16 sums over hundreds of tokens lose the digits the cosine metrics need.
    weights = mask.unsqueeze(-1).float()  # [B, T, 1]
    summed = (hidden.float() * weights).sum(dim=1)  # [B, H]
    return summed / weights.sum(dim=1).clamp(min=1e-9)  # [B, H]
