"""All-pairs metrics against a naive per-pair loop and known answers."""

import logging

import numpy as np
import pytest
import torch

from midalign.analysis.metrics import (
    FUSED_MAX_SENTENCES,
    MEMORY_BYTES,
    Workspace,
    all_layer_metrics,
    check_metrics,
    pair_metrics,
    pivot_metrics,
    pivot_pair_metrics,
    top_k,
    top_k_mean,
)
from midalign.errors import MidalignError
from midalign.options import METRICS, PAIR_METRICS


def naive_pair(src: np.ndarray, tgt: np.ndarray, k: int = 4) -> dict[str, float]:
    """One directed pair the slow, obvious way: loop over source rows."""
    src = src / np.linalg.norm(src, axis=1, keepdims=True)
    tgt = tgt / np.linalg.norm(tgt, axis=1, keepdims=True)
    n = len(src)
    sim = np.array([[float(src[i] @ tgt[j]) for j in range(n)] for i in range(n)])
    hits = sum(int(np.argmax(sim[i]) == i) for i in range(n))
    r_src = [np.mean(sorted(sim[i], reverse=True)[:k]) for i in range(n)]
    r_tgt = [np.mean(sorted(sim[:, j], reverse=True)[:k]) for j in range(n)]
    margin_hits = sum(
        int(np.argmax([sim[i, j] / ((r_src[i] + r_tgt[j]) / 2) for j in range(n)]) == i) for i in range(n)
    )
    parallel = np.mean([sim[i, i] for i in range(n)])
    others = np.mean([sim[i, j] for i in range(n) for j in range(n) if i != j])
    return {
        "retrieval_acc": hits / n,
        "margin_retrieval_acc": margin_hits / n,
        "cosine": parallel,
        "cosine_gap": parallel - others,
    }


@pytest.mark.parametrize(
    ("scales", "memory_bytes"),
    [
        ((0.5, 0.9, 1.3, 2.0, 3.0), 1),  # one source language per block
        ((0.5, 0.9, 1.3, 2.0, 3.0), 512 * 2**20),
        (tuple(0.3 * i for i in range(1, 18)), 512 * 2**20),  # 17 languages: 3 per block
        (tuple(0.3 * i for i in range(1, 12)), 2 * 12 * 11 * 12 * 4 * 2),  # 11 languages: 2 per block
    ],
)
def test_pair_metrics_match_naive_loop(scales: tuple[float, ...], memory_bytes: int) -> None:
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(12, 16))
    states = np.stack([shared + rng.normal(scale=s, size=shared.shape) for s in scales])
    got = pair_metrics(torch.from_numpy(states), memory_bytes=memory_bytes)
    for s in range(len(states)):
        for t in range(len(states)):
            want = naive_pair(states[s], states[t])
            for name in PAIR_METRICS:
                assert got[name][s, t].item() == pytest.approx(want[name], abs=1e-5), (name, s, t)


def test_known_answers_identical_and_deranged() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(10, 8))
    deranged = np.roll(base, 1, axis=0)  # row i holds sentence i-1: no sentence sits at its own index
    got = pair_metrics(torch.from_numpy(np.stack([base, base, deranged])))
    for name in ("retrieval_acc", "margin_retrieval_acc"):
        assert got[name][0, 1].item() == 1.0
        assert got[name][0, 2].item() == 0.0
    assert got["cosine"][0, 1].item() == pytest.approx(1.0)


def test_centering_changes_only_when_asked() -> None:
    rng = np.random.default_rng(2)
    states = torch.from_numpy(rng.normal(size=(3, 6, 5)) + 100.0)  # a huge shared offset, as raw LLM states have
    plain = pair_metrics(states)["cosine"]
    centred = pair_metrics(states, center=True)["cosine"]
    assert plain.min() > 0.99  # the offset makes every vector look alike
    assert centred.mean() < 0.5


def test_all_layer_metrics_shapes_and_layer_selection() -> None:
    rng = np.random.default_rng(3)
    states = {lang: rng.normal(size=(7, 4, 6)).astype(np.float32) for lang in ("a", "b", "c")}
    out = all_layer_metrics(states, ["a", "b", "c"], layers=[1, 3])
    assert out["retrieval_acc"].shape == (2, 3, 3)
    direct = pair_metrics(torch.from_numpy(np.stack([states[x][:, 3] for x in "abc"])))
    np.testing.assert_allclose(out["cosine"][1], direct["cosine"].numpy(), atol=1e-6)


def test_top_k_network_and_topk_kernel_give_the_same_bits() -> None:
    """The sorting network (CPU) and torch.topk (what a GPU runs) return identical values, largest first."""
    values = torch.randn(50, 7, 9).round(decimals=1)  # rounded: many ties
    for k in (1, 3, 4):
        network, kernel = top_k(values, k, network=True), top_k(values, k, network=False)
        assert len(network) == len(kernel) == k
        for a, b in zip(network, kernel, strict=True):
            assert torch.equal(a, b)


def test_top_k_mean_equals_topk_with_ties_and_negatives() -> None:
    values = torch.tensor([[-3.0, 1.0, 1.0, 0.5], [-1.0, -2.0, 1.0, 0.5], [-2.0, 1.0, 2.0, 0.5]])  # [M=3, 4]
    for k in (1, 2, 3):
        want = values.topk(k, dim=0).values.mean(dim=0)
        torch.testing.assert_close(top_k_mean(values, k), want)
    big = torch.randn(50, 7, 9)
    torch.testing.assert_close(top_k_mean(big, 4), big.topk(4, dim=0).values.mean(dim=0))


def test_workspace_reused_across_sizes_gives_fresh_results() -> None:
    rng = np.random.default_rng(4)
    workspace = Workspace()
    for n_langs, n_sentences in ((9, 10), (4, 6), (12, 10)):  # grows, shrinks, grows: stale data must not leak
        states = torch.from_numpy(rng.normal(size=(n_langs, n_sentences, 8)))
        alone = pair_metrics(states)
        shared = pair_metrics(states, workspace=workspace, memory_bytes=2 * n_sentences**2 * n_langs * 4 * 3)
        for name in PAIR_METRICS:
            torch.testing.assert_close(shared[name], alone[name])


def naive_mexa(pivot: np.ndarray, other: np.ndarray) -> float:
    """MEXA from its definition, one sentence at a time: a hit needs a strict maximum in its row and its column."""
    unit_p = [row / np.linalg.norm(row) for row in pivot]
    unit_x = [row / np.linalg.norm(row) for row in other]
    n = len(unit_p)
    sim = [[float(unit_p[i] @ unit_x[j]) for j in range(n)] for i in range(n)]
    hits = 0
    for i in range(n):
        row_ok = all(sim[i][i] > sim[i][j] for j in range(n) if j != i)
        column_ok = all(sim[i][i] > sim[j][i] for j in range(n) if j != i)
        hits += row_ok and column_ok
    return hits / n


def naive_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA as HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with the explicit centering matrix H."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.trace(a @ h @ b @ h)) / (n - 1) ** 2

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


@pytest.mark.parametrize("center", [False, True])
def test_pivot_metrics_match_naive_definitions(center: bool) -> None:
    rng = np.random.default_rng(5)
    shared = rng.normal(size=(15, 12))
    states = np.stack([shared + rng.normal(scale=s, size=shared.shape) + 3.0 for s in (0.2, 0.6, 1.0, 1.5, 3.0)])
    for pivot in (0, 3):
        got = pivot_metrics(torch.from_numpy(states), pivot, center=center)
        for x in range(len(states)):
            src = states[x] - states[x].mean(axis=0) if center else states[x]
            ref = states[pivot] - states[pivot].mean(axis=0) if center else states[pivot]
            assert got["mexa"][x].item() == pytest.approx(naive_mexa(ref, src), abs=1e-6), (pivot, x)
            assert got["cka"][x].item() == pytest.approx(naive_cka(states[x], states[pivot]), abs=1e-6), (pivot, x)


def test_mexa_counts_ties_as_misses_and_is_symmetric() -> None:
    # Sentences 0 and 1 of X are the same vector: each has a tie with the other in the pivot's row, so neither is a
    # hit (retrieval_acc, which counts ties as hits, gets both).
    pivot = torch.eye(4, dtype=torch.float64)
    x = pivot.clone()
    x[1] = x[0]
    states = torch.stack([pivot, x])
    assert naive_mexa(pivot.numpy(), x.numpy()) == 0.5
    assert pivot_metrics(states, 0)["mexa"][1].item() == 0.5
    assert pair_metrics(states)["retrieval_acc"][0, 1].item() == 1.0
    # Transposing the pivot x X matrix swaps rows and columns: the score is the same with either side as pivot.
    rng = np.random.default_rng(6)
    random = torch.from_numpy(rng.normal(size=(3, 9, 5)))
    np.testing.assert_allclose(
        pivot_metrics(random, 0)["mexa"][2].item(), pivot_metrics(random, 2)["mexa"][0].item(), atol=0
    )


def test_cka_known_answers() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(20, 6))
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    transformed = 3.0 * x @ rotation + 5.0  # rotated, scaled and shifted: the same geometry
    unrelated = rng.normal(size=(20, 6))
    got = pivot_metrics(torch.from_numpy(np.stack([x, transformed, unrelated])), 0)["cka"]
    assert got[0].item() == pytest.approx(1.0) and got[1].item() == pytest.approx(1.0)
    assert got[2].item() < 0.6


def test_all_layer_metrics_pivot_metrics_fill_only_the_pivot_column() -> None:
    rng = np.random.default_rng(8)
    langs = ["a", "b", "c", "d"]
    states = {lang: rng.normal(size=(7, 3, 6)).astype(np.float32) for lang in langs}
    out = all_layer_metrics(states, langs, layers=[0, 2], metrics=["cka", "mexa", "cosine"], pivot="c")
    assert list(out) == ["cosine", "mexa", "cka"]  # canonical order
    for name in ("mexa", "cka"):
        defined = ~np.isnan(out[name])
        assert defined[:, [0, 1, 3], 2].all() and defined.sum() == 2 * 3, name
    direct = pivot_metrics(torch.from_numpy(np.stack([states[x][:, 2] for x in langs])), 2)
    np.testing.assert_allclose(out["cka"][1, [0, 1, 3], 2], direct["cka"].numpy()[[0, 1, 3]], rtol=1e-6)
    with pytest.raises(MidalignError, match="need the pivot e"):
        all_layer_metrics(states, langs, layers=[0], metrics=["mexa"], pivot="e")


def test_metric_names_checked_and_shared_with_options() -> None:
    assert tuple(METRICS) == (*PAIR_METRICS, "mexa", "cka")  # one vocabulary: options, which check_metrics uses
    assert check_metrics(["cka", "retrieval_acc"]) == ["retrieval_acc", "cka"]
    with pytest.raises(MidalignError, match=r"unknown metric.*mexaa.*choose from retrieval_acc"):
        check_metrics(["mexaa"])


def test_fused_scorer_is_bit_identical_to_eager_across_blocks_and_centring() -> None:
    """pair_metrics(fused=True) compiles the block scorer (dynamic block and language counts): every metric equals
    the eager path's bit for bit, over blocks of several shapes, raw and centred, and matches the naive loop."""
    rng = np.random.default_rng(5)
    shared = rng.normal(size=(12, 16))
    states = torch.from_numpy(np.stack([shared + rng.normal(scale=0.3 * i, size=shared.shape) for i in range(1, 10)]))
    small_blocks = 2 * 12 * 9 * 12 * 4 * 2  # 2 languages per block: five blocks, four shapes
    for center in (True, False):  # raw last: its results are checked against the naive loop below
        eager = pair_metrics(states, center=center, memory_bytes=small_blocks)
        fused = pair_metrics(states, center=center, memory_bytes=small_blocks, fused=True)
        for name in PAIR_METRICS:
            torch.testing.assert_close(fused[name], eager[name], rtol=0, atol=0, msg=name)
    for s, t in ((0, 1), (3, 8), (8, 2)):
        want = naive_pair(states[s].numpy(), states[t].numpy())
        for name in PAIR_METRICS:
            assert fused[name][s, t].item() == pytest.approx(want[name], abs=1e-5), (name, s, t)


def test_fused_scorer_steps_aside_above_its_sentence_limit(caplog: pytest.LogCaptureFixture) -> None:
    states = torch.from_numpy(np.random.default_rng(6).normal(size=(3, FUSED_MAX_SENTENCES + 1, 8)))
    with caplog.at_level(logging.WARNING):
        fused = pair_metrics(states, fused=True)
    assert "scoring eagerly" in caplog.text
    eager = pair_metrics(states)
    for name in PAIR_METRICS:
        torch.testing.assert_close(fused[name], eager[name], rtol=0, atol=0)


def _pivot_cells(n_langs: int, pivot: int) -> torch.Tensor:
    """X -> pivot and pivot -> X for every X != pivot."""
    cells = torch.zeros(n_langs, n_langs, dtype=torch.bool)
    cells[pivot] = cells[:, pivot] = True
    cells[pivot, pivot] = False
    return cells


@pytest.mark.parametrize(
    ("n_langs", "n_sentences", "hidden", "memory_bytes"),
    [
        (6, 5, 16, MEMORY_BYTES),  # under PIVOT_MIN_SENTENCES: every pair scored, the pivot's kept
        (6, 12, 16, MEMORY_BYTES),  # one block holds every language
        (13, 20, 32, 2 * 20 * 20 * 13 * 4 * 3),  # 3 languages per block: pivots before, in and after a block
        (11, 30, 64, 1),  # one language per block
        (40, 50, 640, MEMORY_BYTES),  # UDHR's sentence count and gemma's width
    ],
)
@pytest.mark.parametrize("center", [False, True])
def test_pivot_pair_metrics_equal_every_pair_bit_for_bit(
    n_langs: int, n_sentences: int, hidden: int, memory_bytes: int, center: bool
) -> None:
    """Known answer: each pivot pair's value is the all-pairs scorer's, to the bit, for every pivot position (before,
    inside and after the blocks), and every other entry is NaN."""
    rng = np.random.default_rng(n_langs)
    shared = rng.normal(size=(1, n_sentences, hidden))
    noise = rng.normal(scale=1.2, size=(n_langs, n_sentences, hidden)) + rng.normal(size=(n_langs, 1, hidden))
    states = torch.from_numpy((shared + noise).astype(np.float32))
    every = pair_metrics(states, center=center, memory_bytes=memory_bytes)
    for pivot in range(n_langs):
        got = pivot_pair_metrics(states, pivot, center=center, memory_bytes=memory_bytes)
        cells = _pivot_cells(n_langs, pivot)
        for name in PAIR_METRICS:
            assert torch.equal(got[name][cells], every[name][cells]), (name, pivot)
            undefined = ~cells & ~torch.eye(n_langs, dtype=torch.bool)
            assert torch.isnan(got[name][undefined]).all(), (name, pivot)


def test_pivot_pair_metrics_see_the_pivot_not_the_others() -> None:
    """A pivot pair's values do not depend on the other languages' states (only what is asked is computed), and an
    unknown pivot index is an error."""
    rng = np.random.default_rng(5)
    states = torch.from_numpy(rng.normal(size=(5, 20, 16)).astype(np.float32))
    base = pivot_pair_metrics(states, 2)
    changed = states.clone()
    changed[0] = torch.from_numpy(rng.normal(size=(20, 16)).astype(np.float32))
    other = pivot_pair_metrics(changed, 2)
    cells = _pivot_cells(5, 2)
    cells[0] = cells[:, 0] = False  # the pairs with language 0 may change, no other
    for name in PAIR_METRICS:
        assert torch.equal(base[name][cells], other[name][cells]), name
    with pytest.raises(MidalignError, match="pivot index 5 is outside the 5 languages"):
        pivot_pair_metrics(states, 5)


def test_all_layer_metrics_pivot_pairs_are_the_all_run_rows() -> None:
    rng = np.random.default_rng(6)
    langs = ["a", "b", "c", "d"]
    states = {lang: rng.normal(size=(16, 3, 8)).astype(np.float32) for lang in langs}
    every = all_layer_metrics(states, langs, layers=[0, 2], metrics=METRICS, pivot="c")
    pivot = all_layer_metrics(states, langs, layers=[0, 2], metrics=METRICS, pivot="c", pairs="pivot")
    cells = _pivot_cells(4, 2).numpy()
    for name in METRICS:
        np.testing.assert_array_equal(pivot[name][:, cells], every[name][:, cells])
        assert np.isnan(pivot[name][:, ~cells & ~np.eye(4, dtype=bool)]).all(), name  # self pairs: in no table
    with pytest.raises(MidalignError, match="need the pivot e among the languages"):
        all_layer_metrics(states, langs, layers=[0], metrics=["cosine"], pivot="e", pairs="pivot")
    with pytest.raises(MidalignError, match="unknown pairs 'some'"):
        all_layer_metrics(states, langs, layers=[0], pivot="c", pairs="some")
