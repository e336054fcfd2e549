"""Cross-lingual alignment metrics for every directed language pair at once, blocked to bound memory.

For one layer, `states` is [n_langs, N, H] with row i of every language the same sentence. For source s and
target t, every source sentence queries all N target sentences by cosine:
- retrieval_acc: share of source sentences whose nearest target is their translation (top-1);
- margin_retrieval_acc: the same with the ratio margin of Artetxe & Schwenk (2019), k = 4 as LASER/XTREME:
  margin(x, y) = cos(x, y) / ((mean top-k cos of x over targets + mean top-k cos of y over sources) / 2);
- cosine: mean cosine of the N parallel pairs;
- cosine_gap: that mean minus the mean cosine of the N (N - 1) non-parallel pairs.
Each unordered pair's similarities come from one matrix product that serves both directions.

Two more metrics compare every language X with one pivot language only (`pivot_metrics`; in the tables src = X,
tgt = the pivot, every other pair undefined):
- mexa: MEXA's alignment score (Kargaran et al. 2024): in the pivot x X cosine matrix, the share of sentences i
  whose similarity to their translation is strictly greater than every other entry of row i and of column i (a tie
  is no hit, unlike retrieval_acc);
- cka: linear CKA (Kornblith et al. 2019) of the [N, H] states of X and of the pivot: a similarity of the two
  representational geometries, invariant to rotations and isotropic scaling, and to per-language mean removal.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

from midalign.errors import MidalignError
from midalign.options import METRICS, PAIR_METRICS, PAIRS, PIVOT_METRICS

logger = logging.getLogger(__name__)
# One vocabulary (midalign.options): PAIR_METRICS score every directed pair, PIVOT_METRICS every language against
# the pivot only, METRICS is both.


def prepare(states: torch.Tensor, center: bool = False) -> torch.Tensor:
    """Unit-normalise [n_langs, N, H] states in fp32, optionally after removing each language's mean vector."""
    states = states.float()
    if center:  # removes the few huge shared dimensions and each language's offset (README: per-language centring)
        states = states - states.mean(dim=1, keepdim=True)
    return torch.nn.functional.normalize(states, dim=-1)


def _block_size(n_langs: int, n_sentences: int, memory_bytes: int) -> int:
    # Each source language in a block holds two [N, N, n_langs] fp32 tensors (similarities, margins) plus
    # [N, n_langs] vectors; the keys' sentence-major copy ([N, n_langs, H]) does not depend on the block size. At
    # least 8 blocks: the first block meets every language, so with fewer the symmetric scheme below would compute
    # most pairs in both orientations.
    per_language = 2 * n_sentences * n_langs * n_sentences * 4
    return max(1, min(-(-n_langs // 8), memory_bytes // max(per_language, 1)))


# 256 MB for the two block tensors. At 442 languages on a 2-core VM, budgets of 71, 142 and 256 MB ran within noise
# of each other (3.3-4.1 s per layer); 18 and 36 MB were slower (6.2-6.7 and 4.9-5.2 s: per-block op overheads).
MEMORY_BYTES = 256 * 2**20


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


def top_k(
    values: torch.Tensor,
    k: int,
    workspace: Workspace | None = None,
    name: str = "top",
    network: bool | None = None,
) -> list[torch.Tensor]:
    """The k largest entries along dim 0 of [M, ...], largest first.

    On CPU (network=None: whenever `values` is there) as a sorting network over the M slices: `torch.topk` over many
    short rows is as slow per element as the similarity GEMM itself (7.5 ns per value measured, against 6.6 ns for
    the fp32 product), while inserting each slice into k running maxima is elementwise work on large tensors, with
    equal results. The k result buffers come from `workspace`, so no layer faults in fresh pages for them. On a GPU
    the network would launch k small kernels per slice (8,000 per block of FLORES' 1012 sentences), so one
    `torch.topk` kernel does it there; the values are the same either way, ties included.
    """
    if network is False or (network is None and values.device.type != "cpu"):
        return list(values.topk(k, dim=0).values.unbind(0))
    workspace = workspace or Workspace()
    shape = tuple(values.shape[1:])
    best = [workspace.get(f"{name}{rank}", shape, values) for rank in range(k)]  # best[0] >= ... >= best[k-1]
    for buffer in best:
        buffer.fill_(-torch.inf)
    for candidate in values:
        # best[rank] = max(best[rank], min(best[rank - 1], candidate)), the insertion step of a sorting network, is
        # one clamp because best[rank] <= best[rank - 1]: k ops per slice instead of 2k - 1.
        for rank in range(k - 1, 0, -1):
            torch.clamp(candidate, min=best[rank], max=best[rank - 1], out=best[rank])
        torch.maximum(best[0], candidate, out=best[0])
    return best


def top_k_mean(values: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of the k largest entries along dim 0 of [M, ...] (see top_k)."""
    return _mean(top_k(values, k))


def _mean(best: list[torch.Tensor]) -> torch.Tensor:
    # Added in order, then divided: the same operations in the eager and the compiled scorer, so both give the
    # same bits (a reordered sum could move a margin by one ulp and flip a near-tied retrieval).
    return sum(best[1:], best[0]) / len(best)


class BlockScores(NamedTuple):
    """What the hit tests need from one [B, N(src), N(tgt), m] similarity block."""

    row_best: torch.Tensor  # [B, N(src), m]: each source sentence's best cosine among the target's
    source_density: torch.Tensor  # [B, N(src), m]: mean of its top-k cosines there
    column_best: torch.Tensor  # [B, N(tgt), m]: each target sentence's best cosine among the source's
    target_density: torch.Tensor  # [B, N(tgt), m]
    margin_row_best: torch.Tensor  # [B, N(src), m]: each source sentence's best margin
    margin_column_best: torch.Tensor  # [B, N(tgt), m]


def score_block(sim: torch.Tensor, k: int, workspace: Workspace) -> BlockScores:
    """The eager scorer: sorting networks into reused buffers, the margins materialised in the workspace."""
    row = top_k(sim.permute(2, 0, 1, 3), k, workspace, "row")  # slices along the target sentences
    column = top_k(sim.permute(1, 0, 2, 3), k, workspace, "column")  # slices along the source sentences
    source_density, target_density = _mean(row), _mean(column)
    margin = workspace.get("margin", tuple(sim.shape), sim)
    torch.add(source_density[:, :, None], target_density[:, None], out=margin)
    torch.div(sim, margin, out=margin)  # the /2 of the definition changes no maximum
    return BlockScores(row[0], source_density, column[0], target_density, margin.amax(dim=2), margin.amax(dim=1))


def score_block_functional(sim: torch.Tensor, k: int) -> BlockScores:
    """The same scores in functional form, for torch.compile: the unrolled networks and the margins fuse into a few
    loops over the block, which is read a handful of times and the margins never written (`fused_scorer`)."""
    n_sentences = sim.shape[1]
    row = [torch.full_like(sim[:, :, 0], -torch.inf) for _ in range(k)]
    column = [torch.full_like(sim[:, 0], -torch.inf) for _ in range(k)]
    for best, axis in ((row, 2), (column, 1)):
        for index in range(n_sentences):
            candidate = sim.select(axis, index)
            for rank in range(k - 1, 0, -1):
                best[rank] = torch.clamp(candidate, min=best[rank], max=best[rank - 1])
            best[0] = torch.maximum(best[0], candidate)
    source_density, target_density = _mean(row), _mean(column)
    margin = sim / (source_density[:, :, None] + target_density[:, None])
    return BlockScores(row[0], source_density, column[0], target_density, margin.amax(dim=2), margin.amax(dim=1))


FUSED_MAX_SENTENCES = 128


@functools.cache
def fused_scorer() -> Callable[[torch.Tensor, int], BlockScores]:
    """score_block_functional compiled (built on first use: importing dynamo costs seconds). The block and language
    counts are dynamic; each sentence count and k compiles once (the networks are unrolled over the sentences)."""
    return torch.compile(score_block_functional, dynamic=True)


def hits(parallel: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    """1 where a query's translation scores at least as high as every candidate (itself included), else 0: the one
    definition of a retrieval hit (ties need duplicate sentences; they count as hits)."""
    return (parallel >= best).float()


def retrieval_hits(x: torch.Tensor, en: torch.Tensor, center: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-sentence top-1 hits (x->en, en->x) of parallel pooled states x, en [N, H], by cosine of the `prepare`d
    states (with `center`, each side minus its mean first): `pair_metrics`' retrieval, kept per sentence for the
    bootstrap over sentences and for dev scores."""
    unit_x, unit_en = (prepare(side[None], center)[0] for side in (x, en))  # [N, H] each
    scores = unit_x @ unit_en.T  # [N(x), N(en)]
    parallel = scores.diagonal()  # [N]
    x_to_en = hits(parallel, scores.amax(dim=1)).bool()  # each x queries every English sentence
    en_to_x = hits(parallel, scores.amax(dim=0)).bool()  # each English sentence queries every x
    return x_to_en.numpy(), en_to_x.numpy()


class _Scorer(NamedTuple):
    """What every block of one layer shares: the unit states, the cosine totals, k and the buffers."""

    unit: torch.Tensor  # [n, N, H]
    total: torch.Tensor  # [n, n] float64: the sum of cos over all N x N sentence pairs of each language pair
    k: int
    workspace: Workspace
    fused: bool


def _scorer(states: torch.Tensor, margin_k: int, center: bool, workspace: Workspace | None, fused: bool) -> _Scorer:
    n_sentences = states.shape[1]
    unit = prepare(states, center)  # [n, N, H]
    # The sum over all N x N sentence pairs of cos(s_i, t_j) is (sum_i s_i) . (sum_j t_j) for unit vectors. float64:
    # the off-diagonal mean is this total minus the parallel sum, which cancels most of it when cosines are near 1.
    # Always the whole [n, n] product (n^2 H, negligible): a pivot run then reads the very bits an all run reads.
    sums = unit.sum(dim=1, dtype=torch.float64)
    if fused and n_sentences > FUSED_MAX_SENTENCES:
        logger.warning(
            "%d sentences: scoring eagerly (the fused scorer is for up to %d)", n_sentences, FUSED_MAX_SENTENCES
        )
        fused = False
    return _Scorer(unit, sums @ sums.T, min(margin_k, n_sentences), workspace or Workspace(), fused)


def _score_pairs(
    scorer: _Scorer, start: int, stop: int, key_start: int, key_stop: int
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], torch.Tensor]:
    """(forward, backward, parallel): the metrics, each [B, m], of query languages start..stop against key languages
    key_start..key_stop (forward[b, t] is query b -> key t, backward[b, t] is key t -> query b), and the
    translations' cosines [B, m, N] (a view into the workspace, valid until the next block).

    The keys enter the product sentence-major, so the block comes out as [B, N(src), N(tgt), m]: the slices along
    either sentence axis are then runs of m contiguous values, which the top-k networks consume without a
    transposed copy. Those networks give the margin densities and each query's best cosine, so retrieval costs no
    pass of its own. Every value of a (query, key) pair depends on that pair's similarities alone, so any blocking
    of the queries and keys gives the same values.
    """
    unit, workspace = scorer.unit, scorer.workspace
    _, n_sentences, hidden = unit.shape
    block, rest = stop - start, key_stop - key_start
    shape = (block, n_sentences, n_sentences, rest)  # [B, N(src), N(tgt), m]
    queries = unit[start:stop].reshape(block * n_sentences, hidden)
    keys = workspace.get("keys", (n_sentences, rest, hidden), unit)
    keys.copy_(unit[key_start:key_stop].transpose(0, 1))  # sentence-major: row j * m + t is sentence j of language t
    sim = workspace.get("sim", shape, unit)
    torch.mm(queries, keys.view(-1, hidden).T, out=sim.view(block * n_sentences, n_sentences * rest))
    parallel = torch.diagonal(sim, dim1=1, dim2=2)  # [B, m, N]: cos of each translation pair
    scores = fused_scorer()(sim, scorer.k) if scorer.fused else score_block(sim, scorer.k, workspace)
    # The same two operations as the margins' on the diagonal alone: each translation's margin is bit-identical
    # to its entry in the block.
    margin_parallel = parallel / (scores.source_density + scores.target_density).transpose(1, 2)  # [B, m, N]
    forward = {  # s -> t: each source sentence queries the target's sentences
        "retrieval_acc": hits(parallel, scores.row_best.transpose(1, 2)).mean(dim=2),
        "margin_retrieval_acc": hits(margin_parallel, scores.margin_row_best.transpose(1, 2)).mean(dim=2),
    }
    backward = {  # t -> s: each target sentence queries the source's sentences
        "retrieval_acc": hits(parallel, scores.column_best.transpose(1, 2)).mean(dim=2),
        "margin_retrieval_acc": hits(margin_parallel, scores.margin_column_best.transpose(1, 2)).mean(dim=2),
    }
    cosine, gap = _cosines(parallel.sum(dim=-1), scorer.total[start:stop, key_start:key_stop], n_sentences)
    forward["cosine"] = backward["cosine"] = cosine  # symmetric in s and t
    forward["cosine_gap"] = backward["cosine_gap"] = gap
    return forward, backward, parallel


def _cosines(parallel_sum: torch.Tensor, total: torch.Tensor, n_sentences: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cosine and cosine_gap from the sums of the translations' cosines and of all N x N cosines (float64)."""
    cosine = parallel_sum / n_sentences
    off_diagonal = (total - parallel_sum) / max(n_sentences * (n_sentences - 1), 1)
    return cosine, cosine - off_diagonal.float()


@torch.no_grad()
def pair_metrics(
    states: torch.Tensor,
    margin_k: int = 4,
    center: bool = False,
    memory_bytes: int = MEMORY_BYTES,
    workspace: Workspace | None = None,
    fused: bool = False,
) -> dict[str, torch.Tensor]:
    """Every metric as an [n_langs, n_langs] matrix (row = source, column = target; diagonal = self pairs).

    The similarity matrix of (t, s) is that of (s, t) transposed, so each unordered pair is computed once: a block
    of source languages meets only itself and the languages after it, and both directions are read from the same
    block (`_score_pairs`); the cosine sums come from one product of the languages' summed unit vectors.

    fused: score each block with the compiled scorer (`fused_scorer`); the results are bit-identical to eager's.
    Its networks are unrolled over the sentences, so above FUSED_MAX_SENTENCES (FLORES' 1012) the graph would take
    longer to compile than to run: there the eager scorer runs, with a warning.
    """
    n_langs, n_sentences, _ = states.shape
    scorer = _scorer(states, margin_k, center, workspace, fused)
    out = {name: torch.empty(n_langs, n_langs, device=scorer.unit.device) for name in PAIR_METRICS}
    step = _block_size(n_langs, n_sentences, memory_bytes)
    for start in range(0, n_langs, step):
        stop = min(start + step, n_langs)
        forward, backward, _ = _score_pairs(scorer, start, stop, start, n_langs)
        for name in PAIR_METRICS:  # the block's rows, then its columns (the diagonal block is written twice, equal)
            out[name][start:stop, start:] = forward[name]
            out[name][start:, start:stop] = backward[name].T
    return out


def _pivot_chunk(n_sentences: int, memory_bytes: int) -> int:
    # Languages per block against one language: the two [B, N, N, 1] fp32 block tensors within the budget.
    return max(1, memory_bytes // max(2 * n_sentences * n_sentences * 4, 1))


HIT_METRICS = ("retrieval_acc", "margin_retrieval_acc")  # the pair metrics read from the top-k networks
# Below this many sentences a pivot run scores every pair and keeps the pivot's: there the products against one
# language are so thin that MKL switches to small-matrix kernels whose bits depend on the shape (measured on an
# AVX-512 CPU: an ulp apart in cosine up to 11 sentences, equal from 12), and every pair costs little anyway.
PIVOT_MIN_SENTENCES = 16


def _pivot_entries(matrices: dict[str, torch.Tensor], pivot: int) -> dict[str, torch.Tensor]:
    """Keep only the pivot's row and column of [n, n] matrices (NaN elsewhere)."""
    keep = torch.zeros_like(matrices[PAIR_METRICS[0]], dtype=torch.bool)
    keep[pivot] = keep[:, pivot] = True
    return {name: torch.where(keep, values, torch.nan) for name, values in matrices.items()}


@torch.no_grad()
def pivot_pair_metrics(
    states: torch.Tensor,
    pivot: int,
    margin_k: int = 4,
    center: bool = False,
    memory_bytes: int = MEMORY_BYTES,
    workspace: Workspace | None = None,
    fused: bool = False,
) -> dict[str, torch.Tensor]:
    """The metrics of `pair_metrics` for the pairs X -> pivot and pivot -> X only, each as an [n_langs, n_langs]
    matrix that is NaN outside the pivot's row and column: about 2 / n of the work (`--pairs pivot`).

    Every defined entry is bit-identical to `pair_metrics`' with the same `memory_bytes`, on the same device. Each
    pair is scored in the orientation pair_metrics scores it in (which language queries, which is the key), since
    a matrix product need not give the same bits both ways. pair_metrics' blocks decide it: a language before the
    pivot's block queries the pivot; the pivot queries every language after its block; within the pivot's block,
    X -> pivot comes from the pivot querying X and pivot -> X from X querying the pivot (pair_metrics writes the
    block's columns last). So the pivot's own block (at most n / 8 languages) is scored both ways. The sums of the
    translations' cosines go through `_block_sums`, which sums them in pair_metrics' order.
    """
    n_langs, n_sentences, _ = states.shape
    if not 0 <= pivot < n_langs:
        raise MidalignError(f"pivot index {pivot} is outside the {n_langs} languages")
    if n_sentences < PIVOT_MIN_SENTENCES:
        return _pivot_entries(pair_metrics(states, margin_k, center, memory_bytes, workspace, fused), pivot)
    scorer = _scorer(states, margin_k, center, workspace, fused)
    out = {name: torch.full((n_langs, n_langs), torch.nan, device=scorer.unit.device) for name in PAIR_METRICS}
    step = _block_size(n_langs, n_sentences, memory_bytes)
    block_start = pivot // step * step
    block_stop = min(block_start + step, n_langs)
    chunk = _pivot_chunk(n_sentences, memory_bytes)
    # The translations' cosines of X querying the pivot (X before the block's end) and of the pivot querying X (X
    # from the block's start on): [n, N] each, rows outside those ranges unused.
    queries_pivot = torch.zeros(n_langs, n_sentences, device=scorer.unit.device)
    pivot_queries = torch.zeros(n_langs, n_sentences, device=scorer.unit.device)
    for start in range(block_start, n_langs, chunk):
        stop = min(start + chunk, n_langs)
        forward, backward, parallel = _score_pairs(scorer, pivot, pivot + 1, start, stop)
        after = max(start, block_stop)
        for name in HIT_METRICS:
            out[name][pivot, after:stop] = forward[name][0, after - start :]
            out[name][start:stop, pivot] = backward[name][0]
        pivot_queries[start:stop] = parallel[0]
    for start in range(0, block_stop, chunk):
        stop = min(start + chunk, block_stop)
        forward, backward, parallel = _score_pairs(scorer, start, stop, pivot, pivot + 1)
        before = min(stop, block_start)
        for name in HIT_METRICS:
            out[name][start:before, pivot] = forward[name][: before - start, 0]
            out[name][pivot, start:stop] = backward[name][:, 0]
        queries_pivot[start:stop] = parallel[:, 0]
    _pivot_cosines(out, scorer, pivot, step, queries_pivot, pivot_queries)
    return out


def _block_sums(scorer: _Scorer, start: int, stop: int, cells: dict[tuple[int, int], torch.Tensor]) -> torch.Tensor:
    """The sums over sentences of `cells` {(b, t): translations' cosines [N]}, each summed exactly as pair_metrics
    sums the diagonal of its block of query languages start..stop.

    torch's CPU sum picks its loop (vectorised over the keys or not, how many accumulators) from the tensor's
    shape and strides, and so the order in which it adds a cell's N cosines. The cells therefore go into a zeroed
    [B, m, N] tensor of the block's shape whose keys are contiguous and whose sentences are not, as in
    pair_metrics' diagonal view: the same loop, the same bits, for O(B m N) memory instead of the block's
    O(B m N^2)."""
    n_langs, n_sentences, _ = scorer.unit.shape
    block, rest = stop - start, n_langs - start
    # The padding column keeps the sentence stride above the key count, as the diagonal's stride m (N + 1) is.
    buffer = scorer.workspace.get("block_sums", (block, n_sentences, rest + 1), scorer.unit).zero_()
    for (b, t), values in cells.items():
        buffer[b, :, t] = values
    sums = buffer[:, :, :rest].permute(0, 2, 1).sum(dim=-1)  # [B, m]
    return torch.stack([sums[b, t] for b, t in cells])


def _pivot_cosines(
    out: dict[str, torch.Tensor],
    scorer: _Scorer,
    pivot: int,
    step: int,
    queries_pivot: torch.Tensor,
    pivot_queries: torch.Tensor,
) -> None:
    """Write cosine and cosine_gap of the pivot's pairs, each from the block and orientation pair_metrics reads it
    from (see pivot_pair_metrics)."""
    n_langs, n_sentences, _ = scorer.unit.shape
    block_start = pivot // step * step
    block_stop = min(block_start + step, n_langs)
    for start in range(0, block_stop, step):
        # (query, key) -> the directed pairs (src, tgt) that read its sums in pair_metrics
        readers: dict[tuple[int, int], list[tuple[int, int]]] = {}
        cells: dict[tuple[int, int], torch.Tensor] = {}
        if start < block_start:  # a block before the pivot's: X queries the pivot, both directions read it
            for lang in range(start, min(start + step, n_langs)):
                readers[lang, pivot] = [(lang, pivot), (pivot, lang)]
                cells[lang - start, pivot - start] = queries_pivot[lang]
        else:  # the pivot's block: the pivot queries X for X -> pivot (and pivot -> X after the block)
            for lang in range(start, n_langs):
                if lang != pivot:
                    readers[pivot, lang] = [(lang, pivot)] + ([(pivot, lang)] if lang >= block_stop else [])
                    cells[pivot - start, lang - start] = pivot_queries[lang]
            for lang in range(start, block_stop):  # X of the block queries the pivot for pivot -> X
                if lang != pivot:
                    readers[lang, pivot] = [(pivot, lang)]
                    cells[lang - start, pivot - start] = queries_pivot[lang]
        if not cells:  # the pivot alone in the last block: every pair was in earlier blocks
            continue
        sums = _block_sums(scorer, start, min(start + step, n_langs), cells)
        queries, keys = (torch.tensor(index, device=sums.device) for index in zip(*readers, strict=True))
        cosine, gap = _cosines(sums, scorer.total[queries, keys], n_sentences)
        for position, pairs in enumerate(readers.values()):
            for src, tgt in pairs:
                out["cosine"][src, tgt] = cosine[position]
                out["cosine_gap"][src, tgt] = gap[position]


@torch.no_grad()
def pivot_metrics(states: torch.Tensor, pivot: int, center: bool = False) -> dict[str, torch.Tensor]:
    """mexa and cka of every language against language index `pivot`, each as an [n_langs] vector.

    mexa reads the same (optionally centred) cosines as retrieval_acc; cka centres each language's features
    itself, so `center` does not change it.
    """
    unit = prepare(states, center)  # [n, N, H]
    sim = torch.matmul(unit[pivot], unit.transpose(1, 2))  # [n, N(pivot), N(X)]: one pivot x X matrix per language
    parallel = torch.diagonal(sim, dim1=1, dim2=2)  # [n, N]: cos(pivot_i, X_i)
    others = sim.clone()
    torch.diagonal(others, dim1=1, dim2=2).fill_(-torch.inf)
    # Strictly greater than every other entry of row i (pivot sentence i against X's others) and of column i
    # (X sentence i against the pivot's others): MEXA counts a tie as a miss.
    hits = (parallel > others.amax(dim=2)) & (parallel > others.amax(dim=1))
    # Linear CKA in its Gram form: with column-centred features X_c, K = X_c X_c^T is the doubly centred Gram
    # matrix HKH, and <K_x, K_p>_F = ||X_c^T P_c||_F^2. N << H here (50 vs 640), so [n, N, N] Grams are far
    # cheaper than [H, H] cross-covariances. float64: the sums of squares of raw LLM states (a few dimensions in
    # the hundreds) lose digits in fp32.
    features = states.double()
    features = features - features.mean(dim=1, keepdim=True)
    gram = torch.matmul(features, features.transpose(1, 2))  # [n, N, N]
    cross = (gram * gram[pivot]).sum(dim=(1, 2))
    norms = torch.linalg.vector_norm(gram.flatten(1), dim=1)
    cka = cross / (norms * norms[pivot])  # NaN where a language's states are all equal (CKA is undefined)
    return {"mexa": hits.float().mean(dim=1), "cka": cka.float()}


def check_metrics(metrics: Sequence[str]) -> list[str]:
    """The metric names in canonical order; an unknown name is an error naming the known ones."""
    unknown = [name for name in metrics if name not in METRICS]
    if unknown:
        raise MidalignError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")
    return [name for name in METRICS if name in metrics]


def all_layer_metrics(
    states: Mapping[str, np.ndarray],
    languages: Sequence[str],
    layers: Sequence[int],
    margin_k: int = 4,
    center: bool = False,
    device: str | torch.device = "cpu",
    metrics: Sequence[str] = PAIR_METRICS,
    pivot: str | None = None,
    pairs: str = "all",
) -> dict[str, np.ndarray]:
    """Each of `metrics` as [len(layers), n_langs, n_langs] from per-language arrays [N, L + 1, H].

    A pivot metric (mexa, cka) fills only the column of `pivot` (rows: every other language as source) and is NaN
    everywhere else: only those pairs are defined. pairs="pivot" scores the pair metrics on X -> pivot and
    pivot -> X only (`pivot_pair_metrics`; NaN elsewhere), pairs="all" on every directed pair.
    """
    metrics = check_metrics(metrics)
    if pairs not in PAIRS:
        raise MidalignError(f"unknown pairs {pairs!r}; choose from {', '.join(PAIRS)}")
    wanted_pairs = [name for name in metrics if name in PAIR_METRICS]
    wanted_pivot = [name for name in metrics if name in PIVOT_METRICS]
    need_pivot = wanted_pivot + (wanted_pairs if pairs == "pivot" else [])
    if need_pivot and pivot not in languages:
        raise MidalignError(f"{', '.join(need_pivot)} need the pivot {pivot} among the languages")
    n = len(languages)
    results = {name: np.full((len(layers), n, n), np.nan, dtype=np.float32) for name in metrics}
    index = list(languages).index(pivot) if need_pivot else -1
    others = np.arange(n) != index
    workspace = Workspace()
    for position, layer in enumerate(tqdm(layers, desc="metrics", unit="layer", leave=False)):
        # Gathered one layer at a time so memory holds [n_langs, N, H], not every layer of every language.
        layer_states = torch.from_numpy(np.stack([np.asarray(states[lang][:, layer, :]) for lang in languages]))
        layer_states = layer_states.to(device)
        if wanted_pairs:
            options = {"margin_k": margin_k, "center": center, "workspace": workspace}
            if pairs == "pivot":
                matrices = pivot_pair_metrics(layer_states, index, **options)
            else:
                matrices = pair_metrics(layer_states, **options)
            for name in wanted_pairs:
                results[name][position] = matrices[name].cpu().numpy()
        if wanted_pivot:
            vectors = pivot_metrics(layer_states, index, center=center)
            for name in wanted_pivot:
                results[name][position, others, index] = vectors[name].cpu().numpy()[others]
    return results
