"""Multi-process extraction: the processes of one `midalign-analyze` launch share the cache work by language and batch.

The work is the list of (language, length-sorted batch) units of every language not yet cached, in corpus order.
Process r takes a contiguous run of it holding about 1/n of the tokens, so it holds whole languages plus at most
a piece of one at each end. A whole language is written to the cache by the process that computed it, as a
single run would write it; a language cut between processes is written as per-process parts (named by a token
of this launch, so concurrent launches sharing the cache never meet) and, after a barrier, assembled into its
cache entry by the process holding its first batch. Every entry therefore has one writer, and since each batch is
the same forward a single process would run, the cached states are the single process's states bit for bit (on
the same kind of device). The main process then reads every entry back and scores as a single process does.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from accelerate import PartialState
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from midalign import distributed
from midalign.corpora.parallel import ParallelCorpus
from midalign.models.cache import CacheKey, StateCache, save_array_atomic
from midalign.models.extract import Tokenized, extract_batches, length_sorted_batches, place_rows, tokenize
from midalign.models.fused import compile_blocks
from midalign.models.representations import Pooling, num_blocks

logger = logging.getLogger(__name__)

PARTS_DIR = ".parts"


@dataclass(frozen=True)
class Unit:
    """One forward's worth of work: a length-sorted batch of one language's sentence rows."""

    language: str
    rows: tuple[int, ...]
    tokens: int


def plan_units(tokenized: dict[str, Tokenized], batch_size: int) -> list[Unit]:
    """Every language's length-sorted batches (the ones a single process runs), languages in the given order."""
    units = []
    for language, tokens in tokenized.items():
        lengths = [len(ids) for ids in tokens.input_ids]
        for rows in length_sorted_batches(lengths, batch_size):
            units.append(Unit(language, tuple(rows), sum(lengths[i] for i in rows)))
    return units


def split_units(units: Sequence[Unit], n_processes: int) -> list[list[Unit]]:
    """Contiguous runs of `units`, one per process, of about equal token counts (a unit goes to the process whose
    share holds its token midpoint), so most languages stay whole in one process."""
    shares: list[list[Unit]] = [[] for _ in range(n_processes)]
    total = sum(unit.tokens for unit in units)
    done = 0
    for unit in units:
        midpoint = done + unit.tokens / 2
        shares[min(int(midpoint * n_processes / max(total, 1)), n_processes - 1)].append(unit)
        done += unit.tokens
    return shares


def _part_path(cache: StateCache, language: str, token: str, rank: int):
    return cache.root / PARTS_DIR / f"{language}.{token}.{rank}.npy"


def cached_languages(state: PartialState, cache: StateCache, keys: dict[str, CacheKey]) -> set[str]:
    """Languages with a valid cache entry; each process verifies every n-th one (hashing is the slow part)."""
    mine = list(keys)[state.process_index :: state.num_processes]
    found = [language for language in mine if cache.load(keys[language]) is not None]
    return set(distributed.gather_objects(state, found))


def extract_sharded(
    state: PartialState,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    corpus: ParallelCorpus,
    cache: StateCache,
    keys: dict[str, CacheKey],
    pooling: Pooling,
    max_length: int,
    batch_size: int,
    overwrite: bool,
    compile_forward: bool = False,
) -> None:
    """Compute this process's share of the missing languages into the cache; returns once all processes are done.

    compile_forward: as in extract_corpus, each process compiles its decoder blocks when anything is left to do."""
    rank, n = state.process_index, state.num_processes
    cached = set() if overwrite else cached_languages(state, cache, keys)
    todo = [language for language in corpus.languages if language not in cached]
    logger.info("states: %d languages cached, %d to compute over %d processes", len(cached), len(todo), n)
    if not todo:
        return
    if compile_forward:
        compile_blocks(model)
    token = distributed.broadcast(state, uuid.uuid4().hex[:12])  # names this launch's parts
    tokenized = {lang: tokenize(tokenizer, corpus.sentences[lang], max_length, pooling, lang) for lang in todo}
    units = plan_units(tokenized, batch_size)
    shares = split_units(units, n)
    logger.info("%d tokens in %d batches over %d processes", sum(unit.tokens for unit in units), len(units), n)
    holders: dict[str, list[int]] = {}  # language -> the processes holding its units, in order
    for process, share in enumerate(shares):
        for unit in share:
            if process not in holders.setdefault(unit.language, []):
                holders[unit.language].append(process)
    mine = [lang for lang in todo if rank in holders[lang]]
    split = [lang for lang in mine if len(holders[lang]) > 1]
    logger.info(
        "process %d of %d: %d languages (%d shared with a neighbour), %d tokens",
        rank,
        n,
        len(mine),
        len(split),
        sum(unit.tokens for unit in shares[rank]),
    )
    layers = list(range(num_blocks(model) + 1))
    (cache.root / PARTS_DIR).mkdir(exist_ok=True)
    total = sum(unit.tokens for unit in shares[rank])
    with tqdm(
        total=total, unit="tok", unit_scale=True, desc=f"extract [{rank}]", disable=not state.is_main_process
    ) as progress:
        for lang in mine:
            batches = [list(unit.rows) for unit in shares[rank] if unit.language == lang]
            progress.set_postfix_str(lang)
            block = extract_batches(model, tokenizer, tokenized[lang], batches, layers, pooling, progress, lang)
            if lang in split:
                save_array_atomic(_part_path(cache, lang, token, rank), block)
            else:
                cache.save(keys[lang], place_rows(block, batches, len(corpus.ids)))
    distributed.barrier(state)
    for lang in split:
        if holders[lang][0] != rank:
            continue
        pieces = []
        for process in holders[lang]:
            batches = [list(unit.rows) for unit in shares[process] if unit.language == lang]
            pieces.append((batches, np.load(_part_path(cache, lang, token, process))))
        rows = [batch for batches, _ in pieces for batch in batches]
        cache.save(keys[lang], place_rows(np.concatenate([block for _, block in pieces]), rows, len(corpus.ids)))
        for process in holders[lang]:
            _part_path(cache, lang, token, process).unlink(missing_ok=True)
        logger.info("%s: assembled from the parts of processes %s", lang, holders[lang])
    distributed.barrier(state)
    if state.is_main_process:
        with contextlib.suppress(OSError):  # not empty: another launch sharing the cache has parts in it
            (cache.root / PARTS_DIR).rmdir()
