"""Where the alignment loss takes its cosine: the paper's raw pooled states, or a better-conditioned space.

Why. Mean-pooled residual streams of many LLMs are dominated by a few "rogue" dimensions (Timkey & van Schijndel,
EMNLP 2021; Ethayarajh, EMNLP 2019; Sun et al. 2024, "massive activations"). In the embedded gemma-3-270m at block
11, five of 640 dimensions hold 99.4 % of the squared norm and any two sentences have cosine 0.996-0.998,
translations or not. InfoNCE on raw cosine at T = 0.1 then sees logits that differ by ~0.02, its softmax is
uniform, the loss sits at ln B, and when it finally moves it moves through the rogue dimensions, which destroys
retrieval. Each space below removes that shared offset before the cosine; they differ in what else they remove.

Spaces (`--align-space`), for pooled states v [B, H] of either side:
- `raw`: v itself: the paper's loss, bit-identical to it.
- `batch-centered`: each side of the batch minus its own mean (x - mean x, en - mean en). No statistics; the
  X side mixes languages, so part of their identity offsets remains.
- `centered`: v - mu, mu the base model's mean at layer k over the alignment data (every language equally),
  frozen before training. Removes the shared offset only: language offsets stay, and an English anchor can
  prefer candidates of languages close to English.
- `language-centered`: v - mu_lang, the base model's mean of v's own language (English's for English), frozen.
  Removes each language's offset, so language identity cannot be the easiest cue (midalign-analyze's `--center`
  does the same with each language's mean over the analysed sentences).
- `standardized`: (v - mu) / sigma per dimension, sigma the base model's standard deviation, frozen: the rogue
  dimensions are scaled down to unit variance instead of removed.
- `language-standardized`: (v - mu_lang) / sigma_within, sigma_within the per-dimension standard deviation of the
  base states around their own language's mean, frozen. It removes language offsets like `language-centered`
  and scales every dimension to unit within-language spread like `standardized`: in gemma-3-270m, one dimension
  still holds 96.5 % of the squared norm after language centring, so language-centred cosines mostly compare that
  one coordinate.
- `top-removed`: v - mu with its projection on the top r principal directions of the base states removed
  ("all-but-the-top", Mu & Viswanath, ICLR 2018), frozen; r = `--space-rank`.

The statistics are estimated once from the base model (the LoRA update starts at zero) on a fixed sample of the
training pairs, before the first step; they belong to the run: saved as `alignment_space.safetensors` in the run
folder, every checkpoint and the adapter folder, so a resumed run, midalign-merge and midalign-evaluate use the
same ones.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from midalign.errors import MidalignError
from midalign.options import AlignSpace as Space

SPACES: tuple[str, ...] = get_args(Space)
# Spaces whose transform needs the base model's statistics.
NEEDS_STATS = {"centered", "language-centered", "standardized", "language-standardized", "top-removed"}
SPACE_FILE = "alignment_space.safetensors"
_EPS = 1e-6  # floor on a dimension's standard deviation (relative to the largest): a constant dimension stays finite


@dataclass
class SpaceStats:
    """The base model's pooled-state statistics at the aligned layer, frozen for the run."""

    layer: int
    languages: list[str]  # row order of `language_means`; English first
    mean: torch.Tensor  # [H] mean of the language means (every language counted once)
    std: torch.Tensor  # [H] per-dimension standard deviation around `mean`, over every sampled sentence
    language_means: torch.Tensor  # [n_langs, H]
    directions: torch.Tensor  # [r_max, H] orthonormal principal directions of the centred states, largest first
    n_sentences: int
    within_std: torch.Tensor | None = None  # [H] per-dimension std around each sentence's own language mean

    @classmethod
    def estimate(cls, states: dict[str, torch.Tensor], layer: int, max_rank: int = 32) -> SpaceStats:
        """Statistics of pooled states {lang: [N_lang, H]} (English first)."""
        languages = list(states)
        if not languages or any(len(v) == 0 for v in states.values()):
            raise MidalignError("alignment space statistics need at least one sentence per language")
        float_states = {lang: v.detach().double() for lang, v in states.items()}
        language_means = torch.stack([v.mean(dim=0) for v in float_states.values()])  # [n_langs, H]
        mean = language_means.mean(dim=0)  # [H]
        centred = torch.cat(list(float_states.values())) - mean  # [N, H]
        std = centred.pow(2).mean(dim=0).sqrt()  # [H]
        within = torch.cat([v - m for v, m in zip(float_states.values(), language_means, strict=True)])  # [N, H]
        within_std = within.pow(2).mean(dim=0).sqrt()  # [H]
        # Right singular vectors of the centred states: the principal directions, largest variance first.
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)  # vh [min(N, H), H]
        return cls(
            layer=layer,
            languages=languages,
            mean=mean.float(),
            std=std.float(),
            language_means=language_means.float(),
            directions=vh[:max_rank].float(),
            n_sentences=len(centred),
            within_std=within_std.float(),
        )

    def save(self, folder: Path) -> Path:
        """Write the statistics to folder/alignment_space.safetensors."""
        path = Path(folder) / SPACE_FILE
        tensors = {
            "mean": self.mean,
            "std": self.std,
            "language_means": self.language_means,
            "directions": self.directions,
        }
        if self.within_std is not None:
            tensors["within_std"] = self.within_std
        metadata = {
            "layer": str(self.layer),
            "languages": json.dumps(self.languages),
            "n_sentences": str(self.n_sentences),
        }
        # Atomic: a resumed run, merge or evaluation never reads a half-written file (temp file, then rename).
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(partial), metadata=metadata)
            os.replace(partial, path)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise MidalignError(f"cannot write {path}: {error.strerror or error}") from error
        return path

    @classmethod
    def load(cls, folder: Path) -> SpaceStats:
        """Read folder/alignment_space.safetensors."""
        path = Path(folder) / SPACE_FILE
        if not path.is_file():
            raise MidalignError(f"{path} not found: the alignment space statistics of this run are missing")
        try:
            with safe_open(str(path), "pt") as handle:
                metadata = handle.metadata() or {}
            tensors = load_file(str(path))
            int(metadata["layer"])
        except Exception as error:  # safetensors raises its own types for a truncated or foreign file
            raise MidalignError(f"{path} is not a readable alignment space file ({error})") from error
        return cls(
            layer=int(metadata["layer"]),
            languages=json.loads(metadata["languages"]),
            mean=tensors["mean"],
            std=tensors["std"],
            language_means=tensors["language_means"],
            directions=tensors["directions"],
            n_sentences=int(metadata["n_sentences"]),
            within_std=tensors.get("within_std"),  # absent from files written before it existed
        )


class AlignmentSpace(torch.nn.Module):
    """Maps pooled states of both sides of a batch into the space the loss takes its cosine in."""

    def __init__(self, space: str = "raw", stats: SpaceStats | None = None, rank: int = 5) -> None:
        super().__init__()
        if space not in SPACES:
            raise MidalignError(f"unknown alignment space {space!r}; choose from {', '.join(SPACES)}")
        if space in NEEDS_STATS and stats is None:
            raise MidalignError(f"alignment space {space!r} needs the base model's statistics")
        if space == "language-standardized" and stats is not None and stats.within_std is None:
            raise MidalignError("alignment space 'language-standardized' needs statistics with a within-language std")
        if space == "top-removed" and not 1 <= rank <= (0 if stats is None else len(stats.directions)):
            raise MidalignError(f"--space-rank {rank}: must be 1..{0 if stats is None else len(stats.directions)}")
        self.space, self.rank, self.stats = space, rank, stats
        self.languages = stats.languages if stats is not None else []
        if stats is not None:  # buffers: they follow the module to its device and never get a gradient
            self.register_buffer("mean", stats.mean.clone(), persistent=False)
            floor = stats.std.max().clamp(min=1e-30) * _EPS
            self.register_buffer("std", stats.std.clamp(min=floor), persistent=False)
            within = stats.within_std if stats.within_std is not None else stats.std
            self.register_buffer("within_std", within.clamp(min=within.max().clamp(min=1e-30) * _EPS), persistent=False)
            self.register_buffer("language_means", stats.language_means.clone(), persistent=False)
            self.register_buffer("directions", stats.directions[:rank].clone(), persistent=False)

    def language_index(self, lang: str) -> int:
        """Row of `lang` in the statistics; an error naming the languages they hold."""
        if lang not in self.languages:
            raise MidalignError(f"the alignment space statistics hold no {lang!r}; they hold {self.languages}")
        return self.languages.index(lang)

    def forward(
        self,
        x: torch.Tensor,
        en: torch.Tensor,
        x_langs: torch.Tensor | None = None,
        en_langs: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, en) [B, H] each mapped into the space; `*_langs` [B] are rows of the statistics' languages."""
        if self.space == "raw":
            return x, en
        if self.space == "batch-centered":
            return x - x.mean(dim=0, keepdim=True), en - en.mean(dim=0, keepdim=True)  # [B, H] each
        return self._frozen(x, x_langs), self._frozen(en, en_langs)

    def _frozen(self, v: torch.Tensor, langs: torch.Tensor | None) -> torch.Tensor:
        v = v.float()
        if self.space in ("language-centered", "language-standardized"):
            if langs is None or bool((langs < 0).any()):
                raise MidalignError(f"alignment space {self.space!r} needs each row's language among {self.languages}")
            centred = v - self.language_means[langs]  # [B, H]
            return centred if self.space == "language-centered" else centred / self.within_std
        centred = v - self.mean  # [B, H]
        if self.space == "centered":
            return centred
        if self.space == "standardized":
            return centred / self.std
        return centred - (centred @ self.directions.T) @ self.directions  # top-removed: [B, r] @ [r, H]

    def extra_repr(self) -> str:
        return f"space={self.space!r}" + (f", rank={self.rank}" if self.space == "top-removed" else "")
