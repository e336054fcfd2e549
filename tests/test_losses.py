"""The alignment loss equals the paper's formula written out with Python loops; known answers; gradients."""

import math

import pytest
import torch

from midalign.training.losses import AlignmentLoss, alignment_loss


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def naive_loss(x: torch.Tensor, en: torch.Tensor, t: float, symmetric: bool, ids: list[int] | None) -> float:
    """-1/B sum_i log softmax_j(cos(x_j, en_i) / T)[i], over j not sharing i's id unless j == i."""
    xs, ens, n = x.tolist(), en.tolist(), len(x)
    ids = ids or list(range(n))

    def direction(anchors: list, candidates: list) -> float:
        total = 0.0
        for i in range(n):
            allowed = [j for j in range(n) if j == i or ids[j] != ids[i]]
            logits = {j: _cos(candidates[j], anchors[i]) / t for j in allowed}
            total -= logits[i] - math.log(sum(math.exp(value) for value in logits.values()))
        return total / n

    forward = direction(ens, xs)  # English anchor i picks its translation among the non-English x_j
    return (forward + direction(xs, ens)) / 2 if symmetric else forward


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("ids", [None, [0, 1, 0, 2, 1]])
@pytest.mark.parametrize("temperature", [0.1, 0.7])
def test_loss_equals_naive_reference(symmetric: bool, ids: list[int] | None, temperature: float) -> None:
    torch.manual_seed(0)
    x, en = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    got = alignment_loss(x, en, temperature, symmetric, None if ids is None else torch.tensor(ids))
    assert got.item() == pytest.approx(naive_loss(x, en, temperature, symmetric, ids), rel=1e-5)


def test_direction_is_softmax_over_the_non_english_side() -> None:
    torch.manual_seed(1)
    x, en = torch.randn(4, 6), torch.randn(4, 6)
    forward = alignment_loss(x, en, 0.1)
    assert forward.item() == pytest.approx(naive_loss(x, en, 0.1, False, None), rel=1e-5)
    # Swapping the arguments gives the other direction, which differs in general.
    assert alignment_loss(en, x, 0.1).item() == pytest.approx(naive_loss(en, x, 0.1, False, None), rel=1e-5)
    assert forward.item() != pytest.approx(alignment_loss(en, x, 0.1).item(), rel=1e-3)


def test_known_answers() -> None:
    basis = torch.eye(4)  # [4, 4]: orthogonal sentences
    # Translations identical, all others orthogonal: logit 10 on the diagonal, 0 elsewhere.
    assert alignment_loss(basis, basis, 0.1).item() == pytest.approx(math.log(1 + 3 * math.exp(-10)), abs=1e-6)
    # Everything identical: no sentence can be told apart, loss = log B.
    same = torch.ones(4, 3)
    assert alignment_loss(same, same, 0.1, symmetric=True).item() == pytest.approx(math.log(4), rel=1e-6)
    # Scale does not matter (cosine), and a batch whose only candidates are false negatives has loss 0.
    assert alignment_loss(3 * basis, basis, 0.1).item() == pytest.approx(alignment_loss(basis, basis, 0.1).item())
    assert alignment_loss(same, same, 0.1, ids=torch.zeros(4, dtype=torch.long)).item() == pytest.approx(0.0)


def test_gradients_reach_both_sides_and_module_matches_function() -> None:
    torch.manual_seed(2)
    x = torch.randn(6, 8, requires_grad=True)
    en = torch.randn(6, 8, requires_grad=True)
    module = AlignmentLoss(temperature=0.2, symmetric=True)
    loss = module(x, en)
    assert loss.item() == pytest.approx(alignment_loss(x, en, 0.2, True).item())
    loss.backward()
    assert x.grad.abs().sum() > 0 and en.grad.abs().sum() > 0
    assert "temperature=0.2" in repr(module)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="temperature"):
        AlignmentLoss(temperature=0)
    with pytest.raises(ValueError, match="same shape"):
        alignment_loss(torch.zeros(3, 4), torch.zeros(2, 4))
