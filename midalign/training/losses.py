"""The middle-layer alignment loss of Liu & Niehues (2025): InfoNCE with in-batch negatives on cosine similarity.

For a batch of B parallel pairs with pooled states x (the non-English side) and en (English), both [B, H]:
    logits[i, j] = cos(x_j, en_i) / T,    loss = cross_entropy(logits, targets = diagonal)
i.e. every English anchor i picks its own translation among the B non-English sentences (softmax over the
non-English side). `symmetric` averages this with the other direction (every x_i picks among the English side).
Gradients flow into both sides. As in sentence-transformers, the module only holds settings; the maths is the
pure function `alignment_loss`. The module first maps both sides into its `AlignmentSpace`
(`midalign.training.spaces`: `raw`, the paper's, passes them through untouched).

One addition to the paper: pairs resampled over languages can put two translations of the same sentence in one
batch (deu #5 and fra #5 both paired with eng #5). Given `ids`, an off-diagonal entry whose sentence id equals
the anchor's is a false negative and is left out of the softmax instead of being pushed away.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from midalign.training.spaces import AlignmentSpace


def cos_sim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity matrix [A, B] of [A, H] and [B, H] (computed in fp32)."""
    a_unit = F.normalize(a.float(), dim=-1)  # [A, H]
    b_unit = F.normalize(b.float(), dim=-1)  # [B, H]
    return a_unit @ b_unit.T  # [A, B]


def _masked_cross_entropy(logits: torch.Tensor, ids: torch.Tensor | None) -> torch.Tensor:
    """Cross entropy with the diagonal as target; off-diagonal entries sharing the row's id are excluded."""
    targets = torch.arange(logits.shape[0], device=logits.device)  # [B]
    if ids is not None:
        same = ids[:, None] == ids[None, :]  # [B, B]
        false_negative = same & ~torch.eye(len(ids), dtype=torch.bool, device=logits.device)  # [B, B]
        logits = logits.masked_fill(false_negative, float("-inf"))  # [B, B]
    return F.cross_entropy(logits, targets)


def alignment_loss(
    x: torch.Tensor,
    en: torch.Tensor,
    temperature: float = 0.1,
    symmetric: bool = False,
    ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE of pooled states x [B, H] (non-English) against their English translations en [B, H]."""
    if x.shape != en.shape or x.ndim != 2:
        raise ValueError(f"expected two [B, H] tensors of the same shape, got {tuple(x.shape)} and {tuple(en.shape)}")
    logits = cos_sim(en, x) / temperature  # [B(en anchors), B(x candidates)]: logits[i, j] = cos(x_j, en_i) / T
    loss = _masked_cross_entropy(logits, ids)
    if symmetric:
        loss = (loss + _masked_cross_entropy(logits.T, ids)) / 2  # logits.T[i, j] = cos(x_i, en_j) / T
    return loss


class AlignmentLoss(nn.Module):
    """Holds the loss settings (temperature, symmetric, space); forward(x, en, ids, ...) returns the scalar loss."""

    def __init__(self, temperature: float = 0.1, symmetric: bool = False, space: AlignmentSpace | None = None) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.symmetric = symmetric
        self.space = space if space is not None else AlignmentSpace("raw")

    def forward(
        self,
        x: torch.Tensor,
        en: torch.Tensor,
        ids: torch.Tensor | None = None,
        x_langs: torch.Tensor | None = None,
        en_langs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss of pooled non-English states x [B, H] against English en [B, H], taken in the module's space;
        `*_langs` [B] are each row's language (rows of the space's statistics), needed by the
        language-centred spaces."""
        x, en = self.space(x, en, x_langs, en_langs)  # [B, H] each
        return alignment_loss(x, en, self.temperature, self.symmetric, ids)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, symmetric={self.symmetric}"
