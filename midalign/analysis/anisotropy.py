"""Anisotropy of pooled states: how much a few dimensions dominate them, and what a cosine loss sees there.

Per layer: the mean cosine of translations and of non-parallel sentence pairs, the share of the squared norm
(summed over sentences) held by the largest dimension and by the largest five, and which dimensions those are.
When every pair of sentences has cosine ~1 (gemma-3-270m at block 11: 0.996-0.998, translations or not), raw-cosine
retrieval and an InfoNCE loss on raw cosine see almost nothing of the meaning: the "rogue dimensions" of Timkey &
van Schijndel (EMNLP 2021). midalign-analyze writes this table (`anisotropy.csv`); midalign-train logs it for the
aligned layer before it starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from midalign.analysis.tables import ANISOTROPY_COLUMNS

TOP = 5


@dataclass(frozen=True)
class Anisotropy:
    """One set of pooled states: their cosines and how much of their squared norm a few dimensions hold."""

    n_sentences: int
    mean_norm: float
    cosine_parallel: float  # mean cosine of translations
    cosine_nonparallel: float  # mean cosine of pairs of different sentences
    top1_share: float  # share of the squared norm, summed over sentences, held by the largest dimension
    top5_share: float
    top_dims: tuple[int, ...]  # the largest dimensions, largest first

    def logit_gap(self, temperature: float) -> float:
        """Mean positive minus mean negative logit of InfoNCE at `temperature`."""
        return (self.cosine_parallel - self.cosine_nonparallel) / temperature

    def bound_to_chance(self, temperature: float) -> bool:
        """Whether an InfoNCE loss starts within ~0.1 nat of ln B: its positives stand out by under 0.1 logit."""
        return math.isfinite(self.cosine_parallel) and self.logit_gap(temperature) < 0.1


def _shares(values: torch.Tensor) -> tuple[float, float, float, tuple[int, ...]]:
    """(mean norm, top-1 share, top-5 share, top dims) of states [M, H] (float64)."""
    energy = values.pow(2).sum(dim=0)  # [H]
    share = energy / energy.sum().clamp(min=1e-300)
    top = torch.argsort(share, descending=True, stable=True)[:TOP]
    return float(values.norm(dim=-1).mean()), float(share[top[0]]), float(share[top].sum()), tuple(map(int, top))


def anisotropy(states: torch.Tensor) -> Anisotropy:
    """Anisotropy of multi-way parallel states [n_langs, N, H] (row s of every language is sentence s).

    Cosine sums come from summed unit vectors: sum over ordered pairs of distinct rows = |sum u|^2 - count, and the
    same per sentence id for the translations, so no [nN, nN] matrix is formed."""
    n_langs, n, _ = states.shape
    values = states.double()  # [n, N, H]
    unit = torch.nn.functional.normalize(values, dim=-1)  # [n, N, H]
    every = unit.sum(dim=(0, 1)).pow(2).sum() - n_langs * n  # every ordered pair of distinct rows
    parallel = (unit.sum(dim=0).pow(2).sum(dim=-1) - n_langs).sum()  # same sentence, other language
    n_parallel = n * n_langs * (n_langs - 1)
    n_nonparallel = (n_langs * n) ** 2 - n_langs * n - n_parallel
    norm, top1, top5, dims = _shares(values.reshape(n_langs * n, -1))
    return Anisotropy(
        n_sentences=n_langs * n,
        mean_norm=norm,
        cosine_parallel=float(parallel / n_parallel) if n_parallel else math.nan,
        cosine_nonparallel=float((every - parallel) / n_nonparallel) if n_nonparallel else math.nan,
        top1_share=top1,
        top5_share=top5,
        top_dims=dims,
    )


def pair_anisotropy(x: torch.Tensor, en: torch.Tensor) -> Anisotropy:
    """Anisotropy of translation pairs x, en [N, H] as InfoNCE sees them: cosines in the x-by-English matrix,
    translations on its diagonal; shares over both sides."""
    n = len(x)
    unit_x = torch.nn.functional.normalize(x.double(), dim=-1)  # [N, H]
    unit_en = torch.nn.functional.normalize(en.double(), dim=-1)  # [N, H]
    scores = unit_x @ unit_en.T  # [N, N]
    diagonal = scores.diagonal().sum()
    norm, top1, top5, dims = _shares(torch.cat([x, en]).double())
    return Anisotropy(
        n_sentences=2 * n,
        mean_norm=norm,
        cosine_parallel=float(diagonal / n),
        cosine_nonparallel=float((scores.sum() - diagonal) / (n * n - n)) if n > 1 else math.nan,
        top1_share=top1,
        top5_share=top5,
        top_dims=dims,
    )


def anisotropy_table(states: torch.Tensor, layers: list[int]) -> pd.DataFrame:
    """Tidy per-layer anisotropy (ANISOTROPY_COLUMNS) of states [n_langs, N, n_layers, H]."""
    rows = []
    for position, layer in enumerate(layers):
        found = anisotropy(states[:, :, position])
        rows.append((
            layer, found.n_sentences, found.mean_norm, found.cosine_parallel, found.cosine_nonparallel,
            found.top1_share, found.top5_share, found.top_dims[0], ";".join(map(str, found.top_dims)),
        ))  # fmt: skip
    return pd.DataFrame(rows, columns=list(ANISOTROPY_COLUMNS))


def anisotropy_layers(states: dict, languages: list[str], layers: list[int]) -> pd.DataFrame:
    """Tidy per-layer anisotropy (ANISOTROPY_COLUMNS) of a run's states {lang: [N, n_layers, H]}, one layer stacked
    at a time (a 442-language run's every layer at once would not fit a laptop in float64)."""
    rows = []
    for position, layer in enumerate(layers):
        stacked = torch.from_numpy(np.stack([np.asarray(states[lang][:, position]) for lang in languages]))
        rows.append(anisotropy_table(stacked.unsqueeze(2), [layer]))
    return pd.concat(rows, ignore_index=True)
