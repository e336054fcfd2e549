"""Fused forward (opt-in, `midalign-analyze --compile`): each decoder block's forward through `torch.compile`.

Why per block and not the whole model: the stopped forward (representations.forward_layers) captures layers with
hooks on the blocks and raises out of the deepest one. Compiling each block's own `forward` keeps those hooks in
eager Python around compiled code, so the stop, the captured layers and any transform stay exactly as they are, and
nothing has to be traced across the exception. Inside a block, inductor fuses the elementwise work that eager runs
as separate kernels (RMSNorm's upcasts and powers, rotary embeddings, GELU, residual adds), which is what eager loses
next to the GEMMs (analysis/benchmarks/README.md).

Shapes are dynamic from the first call (`dynamic=True`): batches vary in rows and length, and without it every new
shape would recompile. Blocks of one architecture share compiled code; sliding-window and full-attention blocks
(Gemma 3) get one graph each. Compiled kernels are cached by inductor under TORCHINDUCTOR_CACHE_DIR (default
/tmp/torchinductor_<user>), so a later process on the same machine skips most code generation.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import torch
from torch import nn

from midalign.models.representations import decoder_blocks, pool

logger = logging.getLogger(__name__)

_MARK = "_midalign_compiled"


def compile_blocks(model: nn.Module, mode: str | None = None) -> nn.Module:
    """Replace each decoder block's forward with its compiled version, in place (idempotent); returns `model`.

    Compilation itself is lazy: it happens in the first forward, once per graph (tens of seconds on a CPU)."""
    blocks = decoder_blocks(model)
    # Blocks of one model share the compiled code; each block instance and each specialisation (batch size 1,
    # sliding vs full attention) is one cache entry, so allow at least one per block.
    limit = max(torch._dynamo.config.recompile_limit, 2 * len(blocks) + 8)
    torch._dynamo.config.recompile_limit = limit
    torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit, 4 * limit)
    for block in blocks:
        if getattr(block, _MARK, False):
            continue
        block.forward = torch.compile(block.forward, dynamic=True, mode=mode)
        setattr(block, _MARK, True)
    logger.info("compiling the forward of %d decoder blocks (torch.compile, dynamic shapes)", len(blocks))
    return model


def is_compiled(model: nn.Module) -> bool:
    """Whether compile_blocks has compiled this model's blocks."""
    return getattr(decoder_blocks(model)[0], _MARK, False)


@functools.cache
def _compiled_pool() -> Callable[..., torch.Tensor]:
    # Built on first use: torch.compile imports dynamo, seconds that runs without --compile should not pay.
    return torch.compile(pool, dynamic=True)


def pooling_for(model: nn.Module) -> Callable[..., torch.Tensor]:
    """The pooling to run in the capture hooks: compiled beside compiled blocks, else the eager one.

    Pooling runs in the hooks, outside the blocks' graphs: an fp32 upcast, a product and a sum per layer, 11 % of a
    compiled bf16 forward when left eager. Compiled, it is one fused kernel per layer."""
    return _compiled_pool() if is_compiled(model) else pool
