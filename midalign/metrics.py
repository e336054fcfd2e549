"""Cross-lingual alignment metrics for every directed language pair at once, blocked to bound memory.

For one layer, `states` is [n_langs, N, H] with row i of every language the same sentence. For source s and
target t, every source sentence queries all N target sentences by cosine:
- retrieval_acc: share of source sentences whose nearest target is their translation (top-1);
- margin_retrieval_acc: the same with the ratio margin of Artetxe & Schwenk (2019), k = 4 as LASER/XTREME:
  margin(x, y) = cos(x, y) / ((mean top-k cos of x over targets + mean top-k cos of y over sources) / 2);
- cosine: mean cosine of the N parallel pairs;
- cosine_gap: that mean minus the mean cosine of the N (N - 1) non-parallel pairs.
All pairs of a block of source languages come from one matrix product against every target sentence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

METRICS = ("retrieval_acc", "margin_retrieval_acc", "cosine", "cosine_gap")


def prepare(states: torch.Tensor, center: bool = False) -> torch.Tensor:
    """Unit-normalise [n_langs, N, H] states in fp32, optionally after removing each language's mean vector."""
    states = states.float()
    if center:  # removes the few huge shared dimensions and each language's offset (DESIGN.md §4)
        states = states - states.mean(dim=1, keepdim=True)
    return torch.nn.functional.normalize(states, dim=-1)


def _block_size(n_langs: int, n_sentences: int, memory_bytes: int) -> int:
    # Each source language in a block holds a few [N, n_langs, N] fp32 tensors (similarities, margins, ...).
    per_language = 4 * n_sentences * n_langs * n_sentences * 4
    return max(1, min(n_langs, memory_bytes // max(per_language, 1)))


@torch.no_grad()
def pair_metrics(
    states: torch.Tensor, margin_k: int = 4, center: bool = False, memory_bytes: int = 512 * 2**20
) -> dict[str, torch.Tensor]:
    """Every metric as an [n_langs, n_langs] matrix (row = source, column = target; diagonal = self pairs)."""
    n_langs, n_sentences, _ = states.shape
    unit = prepare(states, center)  # [n, N, H]
    keys = unit.reshape(n_langs * n_sentences, -1)  # [n*N, H]
    k = min(margin_k, n_sentences)
    arange = torch.arange(n_sentences, device=unit.device)
    out = {name: torch.empty(n_langs, n_langs, device=unit.device) for name in METRICS}
    step = _block_size(n_langs, n_sentences, memory_bytes)
    for start in range(0, n_langs, step):
        stop = min(start + step, n_langs)
        queries = unit[start:stop].reshape(-1, keys.shape[1])  # [B*N, H]
        sim = (queries @ keys.T).view(stop - start, n_sentences, n_langs, n_sentences)  # [B, N(src), n, N(tgt)]
        parallel = torch.diagonal(sim, dim1=1, dim2=3)  # [B, n, N]: cos of each translation pair
        out["retrieval_acc"][start:stop] = (sim.argmax(dim=-1) == arange[None, :, None]).float().mean(dim=1)
        source_density = sim.topk(k, dim=3).values.mean(dim=3)  # [B, N(src), n]
        target_density = sim.topk(k, dim=1).values.mean(dim=1)  # [B, n, N(tgt)]
        margin = sim / ((source_density[..., None] + target_density[:, None]) / 2)  # [B, N, n, N]
        out["margin_retrieval_acc"][start:stop] = (margin.argmax(dim=-1) == arange[None, :, None]).float().mean(dim=1)
        parallel_sum = parallel.sum(dim=-1)  # [B, n]
        out["cosine"][start:stop] = parallel_sum / n_sentences
        off_diagonal = (sim.sum(dim=(1, 3)) - parallel_sum) / max(n_sentences * (n_sentences - 1), 1)  # [B, n]
        out["cosine_gap"][start:stop] = out["cosine"][start:stop] - off_diagonal
    return out


def all_layer_metrics(
    states: Mapping[str, np.ndarray],
    languages: Sequence[str],
    layers: Sequence[int],
    margin_k: int = 4,
    center: bool = False,
    device: str | torch.device = "cpu",
) -> dict[str, np.ndarray]:
    """Every metric as [n_layers, n_langs, n_langs] from per-language arrays [N, L + 1, H]."""
    results = {name: np.empty((len(layers), len(languages), len(languages)), dtype=np.float32) for name in METRICS}
    for position, layer in enumerate(tqdm(layers, desc="metrics", unit="layer", leave=False)):
        # Gathered one layer at a time so memory holds [n_langs, N, H], not every layer of every language.
        layer_states = torch.from_numpy(np.stack([np.asarray(states[lang][:, layer, :]) for lang in languages]))
        matrices = pair_metrics(layer_states.to(device), margin_k=margin_k, center=center)
        for name, matrix in matrices.items():
            results[name][position] = matrix.cpu().numpy()
    return results
