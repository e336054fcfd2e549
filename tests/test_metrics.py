"""All-pairs metrics against a naive per-pair loop and known answers."""

import numpy as np
import pytest
import torch

from midalign.analysis.metrics import METRICS, Workspace, all_layer_metrics, pair_metrics, top_k_mean


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
        (tuple(0.3 * i for i in range(1, 12)), 4 * 12 * 11 * 12 * 4 * 2),  # 11 languages: 2 per block
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
            for name in METRICS:
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
        shared = pair_metrics(states, workspace=workspace, memory_bytes=4 * n_sentences**2 * n_langs * 4 * 3)
        for name in METRICS:
            torch.testing.assert_close(shared[name], alone[name])
