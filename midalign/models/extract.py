"""Extraction: one forward per length-sorted batch yields every requested layer's pooled sentence vectors."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from midalign.corpora.parallel import ParallelCorpus
from midalign.errors import MidalignError
from midalign.models.cache import CacheKey, StateCache
from midalign.models.fused import compile_blocks, pooling_for
from midalign.models.representations import Pooling, forward_layers, num_blocks

logger = logging.getLogger(__name__)


class NonFiniteStatesError(MidalignError):
    """The model produced NaN or inf hidden states (often fp16 overflow)."""


@dataclass
class Tokenized:
    """Token ids per sentence (unpadded) and, when pooling needs it, their special-token masks."""

    input_ids: list[list[int]]
    special_tokens_mask: list[list[int]] | None

    @property
    def n_tokens(self) -> int:
        """Total real tokens over all sentences."""
        return sum(len(ids) for ids in self.input_ids)


def tokenize(
    tokenizer: PreTrainedTokenizerBase, sentences: Sequence[str], max_length: int, pooling: Pooling, name: str = ""
) -> Tokenized:
    """Tokenize raw sentences (no chat template, special tokens added as the paper's code does)."""
    need_special = pooling == "mean_no_special"
    encoded = tokenizer(list(sentences), return_special_tokens_mask=need_special, truncation=False)
    too_long = [i for i, ids in enumerate(encoded["input_ids"]) if len(ids) > max_length]
    if too_long:
        logger.warning(
            "%s: %d sentence(s) longer than max_length=%d tokens are truncated (first: #%d)",
            name,
            len(too_long),
            max_length,
            too_long[0],
        )
        encoded = tokenizer(
            list(sentences), return_special_tokens_mask=need_special, truncation=True, max_length=max_length
        )
    return Tokenized(encoded["input_ids"], encoded["special_tokens_mask"] if need_special else None)


def length_sorted_batches(
    lengths: Sequence[int], batch_size: int, max_padding: float = 0.25, min_tokens: int = 512
) -> list[list[int]]:
    """Row indices grouped so each batch holds sentences of similar length, longest first.

    A batch closes at `batch_size` rows, or earlier when the next sentence is more than `max_padding` shorter than
    the batch's longest one, so no row is more than that share padding. Fixed-size batches of parallel paragraphs
    (10 to 500 tokens within one language) were 40 % padding on UDHR, computed and thrown away. Batches under
    `min_tokens` stay open: for them the cost of one more forward call outweighs the padding.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for index in order:
        batch = batches[-1] if batches else None
        if batch is not None:
            longest = lengths[batch[0]]
            too_short = lengths[index] < (1 - max_padding) * longest and len(batch) * longest >= min_tokens
            if len(batch) < batch_size and not too_short:
                batch.append(index)
                continue
        batches.append([index])
    return batches


@torch.inference_mode()
def extract_batches(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    tokenized: Tokenized,
    batches: Sequence[Sequence[int]],
    layers: Sequence[int],
    pooling: Pooling = "mean",
    progress: tqdm | None = None,
    name: str = "",
) -> np.ndarray:
    """Pooled states [sum of batch sizes, len(layers), hidden] in float32 of the rows in `batches`, in batch order.

    One forward per batch. A sentence's vector depends on which rows share its batch only through padding work, so
    giving a process some of `length_sorted_batches` (multi-process extraction) reproduces a single process's bits.
    """
    device = next(model.parameters()).device
    hidden_size = model.config.get_text_config().hidden_size
    states = np.empty((sum(len(rows) for rows in batches), len(layers), hidden_size), dtype=np.float32)
    pool_states = pooling_for(model)
    start = 0
    for rows in batches:
        batch = tokenizer.pad({"input_ids": [tokenized.input_ids[i] for i in rows]}, return_tensors="pt")
        input_ids = batch["input_ids"].to(device)  # [B, T]
        attention_mask = batch["attention_mask"].to(device)  # [B, T]
        special = None
        if tokenized.special_tokens_mask is not None:
            special = tokenizer.pad(
                {"input_ids": [tokenized.special_tokens_mask[i] for i in rows]}, return_tensors="pt"
            )["input_ids"].to(device)  # [B, T]; padded positions are masked out by attention_mask anyway

        def pool_batch(hidden: torch.Tensor, mask: torch.Tensor = attention_mask, spec=special) -> torch.Tensor:
            return pool_states(hidden, mask, pooling, spec)  # [B, H]

        pooled = forward_layers(model, input_ids, attention_mask, layers, transform=pool_batch)
        block = torch.stack([pooled[layer] for layer in layers], dim=1).float().cpu().numpy()  # [B, len(layers), H]
        if not np.isfinite(block).all():
            bad_layer = layers[int(np.nonzero(~np.isfinite(block).all(axis=(0, 2)))[0][0])]
            raise NonFiniteStatesError(
                f"{name}: non-finite hidden states at layer {bad_layer}; if the model runs in fp16, try --dtype "
                "bf16 or fp32"
            )
        states[start : start + len(rows)] = block
        start += len(rows)
        if progress is not None:
            progress.update(int(attention_mask.sum()))
    return states


def extract_states(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    tokenized: Tokenized,
    layers: Sequence[int],
    pooling: Pooling = "mean",
    batch_size: int = 32,
    progress: tqdm | None = None,
    name: str = "",
) -> np.ndarray:
    """Pooled states [n_sentences, len(layers), hidden] in float32, rows in input order."""
    batches = length_sorted_batches([len(ids) for ids in tokenized.input_ids], batch_size)
    if not batches:
        return np.empty((0, len(layers), model.config.get_text_config().hidden_size), np.float32)
    block = extract_batches(model, tokenizer, tokenized, batches, layers, pooling, progress, name)
    return place_rows(block, batches, len(tokenized.input_ids))


def place_rows(block: np.ndarray, batches: Sequence[Sequence[int]], n_sentences: int) -> np.ndarray:
    """States [n_sentences, ...] in input order from a block whose rows follow `batches` (each sentence once)."""
    order = np.concatenate([np.asarray(rows, dtype=np.int64) for rows in batches])
    if len(order) != n_sentences or len(np.unique(order)) != n_sentences:
        raise RuntimeError(f"the batches cover {len(np.unique(order))} of {n_sentences} sentences")
    states = np.empty((n_sentences, *block.shape[1:]), dtype=np.float32)
    states[order] = block
    return states


def cache_keys(
    corpus: ParallelCorpus, model_id: str, dtype: str, pooling: Pooling, max_length: int
) -> dict[str, CacheKey]:
    """The cache key of every corpus language, in corpus order."""
    return {
        lang: CacheKey(
            model_id,
            dtype,
            pooling,
            max_length,
            corpus.source,
            corpus.split,
            lang,
            len(corpus.ids),
            corpus.sentences_hash(lang),
        )
        for lang in corpus.languages
    }


def extract_corpus(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    corpus: ParallelCorpus,
    cache: StateCache,
    model_id: str,
    dtype: str,
    pooling: Pooling = "mean",
    max_length: int = 512,
    batch_size: int = 32,
    overwrite: bool = False,
    compile_forward: bool = False,
) -> dict[str, np.ndarray]:
    """States [n_sentences, L + 1, hidden] for every corpus language, reusing valid cache entries.

    compile_forward: run each decoder block through torch.compile (models/fused.py) when anything is left to
    compute; a fully cached run pays no compile time."""
    layers = list(range(num_blocks(model) + 1))
    keys = cache_keys(corpus, model_id, dtype, pooling, max_length)
    results: dict[str, np.ndarray] = {}
    if not overwrite:
        for lang, key in keys.items():
            cached = cache.load(key)
            if cached is not None:
                results[lang] = cached
    todo = [lang for lang in corpus.languages if lang not in results]
    logger.info("states: %d languages cached, %d to compute (cache: %s)", len(results), len(todo), cache.root)
    if not todo:
        return {lang: results[lang] for lang in corpus.languages}
    if not cache.writable:  # before the long work, not after the first language
        raise MidalignError(
            f"the state cache {cache.root} is read-only and {len(todo)} languages are not in it; choose a writable "
            "--cache-dir (or MIDALIGN_CACHE)"
        )
    if compile_forward:
        compile_blocks(model)
    tokenized = {lang: tokenize(tokenizer, corpus.sentences[lang], max_length, pooling, lang) for lang in todo}
    total = sum(tok.n_tokens for tok in tokenized.values())
    start = time.perf_counter()
    with tqdm(total=total, unit="tok", unit_scale=True, desc="extract", dynamic_ncols=True) as progress:
        for lang in todo:
            progress.set_postfix_str(lang)
            states = extract_states(model, tokenizer, tokenized[lang], layers, pooling, batch_size, progress, lang)
            cache.save(keys[lang], states)  # saved per language, so an interrupted run resumes here
            # Memory-mapped back so hundreds of languages fit, and verified: another run sharing the cache may
            # have replaced the entry already, and then our own states are the ones to use.
            saved = cache.load(keys[lang])
            results[lang] = states if saved is None else saved
    elapsed = time.perf_counter() - start
    logger.info("extracted %d tokens in %.1f s (%.0f tok/s)", total, elapsed, total / max(elapsed, 1e-9))
    return {lang: results[lang] for lang in corpus.languages}
