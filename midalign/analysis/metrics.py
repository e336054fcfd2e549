"""Cross-lingual alignment metrics for every directed language pair at once, blocked to bound memory.

For one layer, `states` is [n_langs, N, H] with row i of every language the same sentence. For source s and
target t, every source sentence queries all N target sentences by cosine:
- retrieval_acc: share of source sentences whose nearest target is their translation (top-1);
- margin_retrieval_acc: the same with the ratio margin of Artetxe & Schwenk (2019), k = 4 as LASER/XTREME:
  margin(x, y) = cos(x, y) / ((mean top-k cos of x over targets + mean top-k cos of y over sources) / 2);
- cosine: mean cosine of the N parallel pairs;
- cosine_gap: that mean minus the mean cosine of the N (N - 1) non-parallel pairs.
Each unordered pair's similarities come from one matrix product that serves both directions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

METRICS = ("retrieval_acc", "margin_retrieval_acc", "cosine", "cosine_gap")


def prepare(states: torch.Tensor, center: bool = False) -> torch.Tensor:
    """Unit-normalise [n_langs, N, H] states in fp32, optionally after removing each language's mean vector."""
    states = states.float()
    if center:  # removes the few huge shared dimensions and each language's offset (README: per-language centring)
        states = states - states.mean(dim=1, keepdim=True)
    return torch.nn.functional.normalize(states, dim=-1)


def _block_size(n_langs: int, n_sentences: int, memory_bytes: int) -> int:
    # Each source language in a block holds three [N, n_langs, N] fp32 tensors (similarities, their transposed
    # copy, margins) plus temporaries. At least 8 blocks: the first block meets every language, so with fewer the
    # symmetric scheme below would compute most pairs in both orientations.
    per_language = 4 * n_sentences * n_langs * n_sentences * 4
    return max(1, min(-(-n_langs // 8), memory_bytes // max(per_language, 1)))


class Workspace:
    """Grow-only scratch buffers reused across blocks and layers.

    Large fresh allocations are expensive here: every block would fault in hundreds of MB of new pages (measured
    up to 1 s per 128 MB on a VM), more than the arithmetic on them.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        numel = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < numel or buffer.device != like.device or buffer.dtype != like.dtype:
            buffer = self._buffers[name] = torch.empty(numel, dtype=like.dtype, device=like.device)
        return buffer[:numel].view(shape)


def top_k_mean(values: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of the k largest entries along dim 0 of [M, ...], as a sorting network over M contiguous slices.

    On CPU, `torch.topk` over many short rows is as slow per element as the similarity GEMM itself; inserting each
    slice into k running maxima is elementwise work on large contiguous tensors and ~8x faster, with equal results.
    """
    best = [torch.full_like(values[0], -torch.inf) for _ in range(k)]  # best[0] >= best[1] >= ... >= best[k-1]
    scratch = torch.empty_like(values[0])
    for candidate in values:
        for rank in range(k - 1, 0, -1):  # best[rank] = max(best[rank], min(best[rank - 1], candidate))
            torch.minimum(best[rank - 1], candidate, out=scratch)
            torch.maximum(best[rank], scratch, out=best[rank])
        torch.maximum(best[0], candidate, out=best[0])
    return torch.stack(best).mean(dim=0)


def _hits(scores: torch.Tensor, parallel: torch.Tensor, dim: int) -> torch.Tensor:
    # A query is retrieved when its translation scores at least as high as every candidate (ties need duplicate
    # sentences; they count as hits). Comparing with the max is a contiguous reduction, unlike argmax along dim 1.
    return (parallel >= scores.amax(dim=dim)).float()


@torch.no_grad()
def pair_metrics(
    states: torch.Tensor,
    margin_k: int = 4,
    center: bool = False,
    memory_bytes: int = 512 * 2**20,
    workspace: Workspace | None = None,
) -> dict[str, torch.Tensor]:
    """Every metric as an [n_langs, n_langs] matrix (row = source, column = target; diagonal = self pairs).

    The similarity matrix of (t, s) is that of (s, t) transposed, so each unordered pair is computed once: a block
    of source languages meets only itself and the languages after it, and both directions are read from the same
    [B, N(src), m, N(tgt)] block: along the last axis for s -> t, along axis 1 for t -> s.
    """
    n_langs, n_sentences, _ = states.shape
    unit = prepare(states, center)  # [n, N, H]
    k = min(margin_k, n_sentences)
    out = {name: torch.empty(n_langs, n_langs, device=unit.device) for name in METRICS}
    step = _block_size(n_langs, n_sentences, memory_bytes)
    workspace = workspace or Workspace()
    for start in range(0, n_langs, step):
        stop = min(start + step, n_langs)
        block, rest = stop - start, n_langs - start
        shape = (block, n_sentences, rest, n_sentences)  # [B, N(src), m, N(tgt)]
        queries = unit[start:stop].reshape(block * n_sentences, -1)
        keys = unit[start:].reshape(rest * n_sentences, -1)
        sim = workspace.get("sim", shape, unit)
        torch.mm(queries, keys.T, out=sim.view(block * n_sentences, rest * n_sentences))
        parallel = torch.diagonal(sim, dim1=1, dim2=3)  # [B, m, N]: cos of each translation pair
        # Density of each source sentence among the target's sentences (top-k along the last axis: made the
        # leading axis by one transposed copy) and of each target sentence among the source's (axis 1, in place).
        by_target = workspace.get("by_target", (n_sentences, block, n_sentences, rest), unit)
        by_target.view(n_sentences, -1).copy_(sim.view(-1, n_sentences).T)
        source_density = top_k_mean(by_target, k)  # [B, N(src), m]
        target_density = top_k_mean(sim.transpose(0, 1), k)  # [B, m, N(tgt)]
        margin = workspace.get("margin", shape, unit)
        torch.add(source_density[..., None], target_density[:, None], out=margin)
        torch.div(sim, margin, out=margin)  # the /2 of the definition changes no maximum
        margin_parallel = parallel / (source_density.transpose(1, 2) + target_density)  # [B, m, N]
        forward = {  # s -> t: each source sentence queries the target's sentences (max over the last axis)
            "retrieval_acc": _hits(sim, parallel.transpose(1, 2), 3).mean(dim=1),
            "margin_retrieval_acc": _hits(margin, margin_parallel.transpose(1, 2), 3).mean(dim=1),
        }
        backward = {  # t -> s: each target sentence queries the source's sentences (max over axis 1)
            "retrieval_acc": _hits(sim, parallel, 1).mean(dim=2),
            "margin_retrieval_acc": _hits(margin, margin_parallel, 1).mean(dim=2),
        }
        parallel_sum = parallel.sum(dim=-1)  # [B, m]
        cosine = parallel_sum / n_sentences
        off_diagonal = (sim.sum(dim=(1, 3)) - parallel_sum) / max(n_sentences * (n_sentences - 1), 1)
        forward["cosine"] = backward["cosine"] = cosine  # symmetric in s and t
        forward["cosine_gap"] = backward["cosine_gap"] = cosine - off_diagonal
        for name in METRICS:  # the block's rows, then its columns (the diagonal block is written twice, equal)
            out[name][start:stop, start:] = forward[name]
            out[name][start:, start:stop] = backward[name].T
    return out


def all_layer_metrics(
    states: Mapping[str, np.ndarray],
    languages: Sequence[str],
    layers: Sequence[int],
    margin_k: int = 4,
    center: bool = False,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """Every metric as [len(layers), n_langs, n_langs] from per-language arrays [N, L + 1, H]."""
    results = {name: np.empty((len(layers), len(languages), len(languages)), dtype=np.float32) for name in METRICS}
    workspace = Workspace()
    for position, layer in enumerate(tqdm(layers, desc="metrics", unit="layer", leave=False)):
        # Gathered one layer at a time so memory holds [n_langs, N, H], not every layer of every language.
        layer_states = torch.from_numpy(np.stack([np.asarray(states[lang][:, layer, :]) for lang in languages]))
        matrices = pair_metrics(layer_states.to(device), margin_k=margin_k, center=center, workspace=workspace)
        for name, matrix in matrices.items():
            results[name][position] = matrix.cpu().numpy()
    return results
