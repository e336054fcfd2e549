"""Alignment spaces and the anisotropy diagnostic against naive formulas; the spaces through midalign-train."""

import hashlib
import json
import logging
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from midalign.analysis.anisotropy import anisotropy, anisotropy_table, pair_anisotropy
from midalign.errors import MidalignError
from midalign.train import main
from midalign.training import losses
from midalign.training.spaces import SPACE_FILE, SPACES, AlignmentSpace, SpaceStats
from tests.test_train import _args

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rogue_states(
    n_langs: int = 3, n: int = 10, h: int = 16, seed: int = 0, language_scale: float = 5.0
) -> dict[str, torch.Tensor]:
    """Pooled states like gemma's: a shared huge offset on two dimensions, a language offset, a sentence signal."""
    generator = torch.Generator().manual_seed(seed)
    meaning = torch.randn(n, h, generator=generator)  # [N, H]
    offset = torch.zeros(h)
    offset[3], offset[7] = 1000.0, -400.0
    states = {}
    for i in range(n_langs):
        language = language_scale * torch.randn(h, generator=generator)
        noise = 0.3 * torch.randn(n, h, generator=generator)
        states[f"l{i}"] = offset + language + meaning + noise  # [N, H]
    return states


def _naive_stats(states: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    arrays = {lang: v.double().numpy() for lang, v in states.items()}
    language_means = np.array([[np.mean(v[:, d]) for d in range(v.shape[1])] for v in arrays.values()])
    mean = language_means.mean(axis=0)
    rows = [row for v in arrays.values() for row in v]
    std = np.array([math.sqrt(sum((row[d] - mean[d]) ** 2 for row in rows) / len(rows)) for d in range(len(mean))])
    within = [row - language_means[i] for i, v in enumerate(arrays.values()) for row in v]
    within_std = np.array([math.sqrt(sum(row[d] ** 2 for row in within) / len(within)) for d in range(len(mean))])
    return {"mean": mean, "std": std, "language_means": language_means, "within_std": within_std}


def test_statistics_match_a_naive_loop_and_survive_a_round_trip(tmp_path) -> None:
    states = _rogue_states()
    stats = SpaceStats.estimate(states, layer=4, max_rank=6)
    naive = _naive_stats(states)
    for name in ("mean", "std", "language_means", "within_std"):
        np.testing.assert_allclose(getattr(stats, name).double().numpy(), naive[name], rtol=1e-5, atol=1e-3)
    directions = stats.directions.double()
    torch.testing.assert_close(directions @ directions.T, torch.eye(6, dtype=torch.float64), atol=1e-5, rtol=0)
    # The first direction is the centred states' direction of largest variance: no other unit vector beats it.
    centred = torch.cat(list(states.values())).double() - stats.mean.double()
    variance = (centred @ directions[0]).pow(2).sum()
    others = torch.nn.functional.normalize(torch.randn(50, 16, dtype=torch.float64), dim=-1)
    assert bool(((centred @ others.T).pow(2).sum(0) <= variance * (1 + 1e-6)).all())
    stats.save(tmp_path)
    again = SpaceStats.load(tmp_path)
    assert again.languages == ["l0", "l1", "l2"] and again.layer == 4 and again.n_sentences == 30
    for name in ("mean", "std", "language_means", "directions", "within_std"):
        torch.testing.assert_close(getattr(again, name), getattr(stats, name), rtol=0, atol=0)
    with pytest.raises(MidalignError, match="not found"):
        SpaceStats.load(tmp_path / "elsewhere")
    (tmp_path / SPACE_FILE).write_bytes((tmp_path / SPACE_FILE).read_bytes()[:100])  # a truncated file
    with pytest.raises(MidalignError, match="not a readable alignment space file"):
        SpaceStats.load(tmp_path)
    assert not list(tmp_path.glob(".*partial")), "no temporary file is left behind"


def _naive_space(space: str, v: np.ndarray, langs: list[int], stats: SpaceStats, rank: int) -> np.ndarray:
    mean, std = stats.mean.double().numpy(), stats.std.double().numpy()
    out = np.zeros_like(v)
    for i, row in enumerate(v):
        if space == "raw":
            out[i] = row
        elif space == "batch-centered":
            out[i] = row - v.mean(axis=0)
        elif space == "centered":
            out[i] = row - mean
        elif space == "language-centered":
            out[i] = row - stats.language_means[langs[i]].double().numpy()
        elif space == "standardized":
            out[i] = [(row[d] - mean[d]) / std[d] for d in range(len(row))]
        elif space == "language-standardized":
            centred, within = row - stats.language_means[langs[i]].double().numpy(), stats.within_std.double().numpy()
            out[i] = [centred[d] / within[d] for d in range(len(row))]
        else:  # top-removed: subtract the projection on each direction, one at a time (orthonormal directions)
            centred = row - mean
            for direction in stats.directions[:rank].double().numpy():
                centred = centred - np.dot(centred, direction) * direction
            out[i] = centred
    return out


@pytest.mark.parametrize("space", SPACES)
def test_each_space_matches_its_naive_formula(space) -> None:
    states = _rogue_states()
    stats = SpaceStats.estimate(states, layer=2)
    module = AlignmentSpace(space, stats, rank=3)
    x = torch.cat([states["l1"][:4], states["l2"][:4]])  # [8, H]: two languages on the non-English side
    en = states["l0"][:8]
    x_langs, en_langs = torch.tensor([1] * 4 + [2] * 4), torch.zeros(8, dtype=torch.long)
    got_x, got_en = module(x, en, x_langs, en_langs)
    want_x = _naive_space(space, x.double().numpy(), x_langs.tolist(), stats, 3)
    want_en = _naive_space(space, en.double().numpy(), en_langs.tolist(), stats, 3)
    np.testing.assert_allclose(got_x.double().numpy(), want_x, rtol=1e-4, atol=2e-3)
    np.testing.assert_allclose(got_en.double().numpy(), want_en, rtol=1e-4, atol=2e-3)
    if space == "raw":
        assert got_x is x and got_en is en, "raw passes the states through untouched"


def test_raw_loss_is_the_papers_formula_bit_for_bit() -> None:
    """InfoNCE of Liu & Niehues: logits[i, j] = cos(x_j, en_i) / T, cross entropy with the diagonal as target."""
    states = _rogue_states(n=6)
    x, en = states["l1"].clone().requires_grad_(), states["l0"]
    loss = losses.AlignmentLoss(0.1)(x, en)
    assert torch.equal(loss, losses.alignment_loss(x, en, 0.1)), "the module in the raw space is the pure function"
    naive, a, b = 0.0, x.detach().double().numpy(), en.double().numpy()
    for i in range(6):
        logits = [float(np.dot(a[j], b[i]) / (np.linalg.norm(a[j]) * np.linalg.norm(b[i])) / 0.1) for j in range(6)]
        naive += -(logits[i] - math.log(sum(math.exp(value) for value in logits)))
    assert math.isclose(float(loss.detach()), naive / 6, rel_tol=1e-5)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_the_rogue_offset_puts_raw_infonce_at_chance_and_the_spaces_lift_it() -> None:
    """The failure the spaces exist for: raw cosines ~1 give loss ~ln B; every space that removes the offset sees
    the translations. With large language offsets, the shared-mean spaces (`centered`, `standardized`) keep them and
    learn less; the spaces that remove each language's offset (here also `batch-centered`, one language a side, and
    `top-removed`, whose top directions are the language offsets) do not."""
    langs, en_langs = torch.ones(16, dtype=torch.long), torch.zeros(16, dtype=torch.long)
    for scale in (0.5, 5.0):
        states = _rogue_states(n=16, language_scale=scale)
        stats = SpaceStats.estimate(states, layer=2)
        x, en = states["l1"], states["l0"]
        assert abs(float(losses.AlignmentLoss(0.1)(x, en)) - math.log(16)) < 0.05
        assert pair_anisotropy(x, en).bound_to_chance(0.1)
        found = {
            space: float(
                losses.AlignmentLoss(0.1, space=AlignmentSpace(space, stats, rank=2))(x, en, None, langs, en_langs)
            )
            for space in SPACES[1:]
        }
        for space, loss in found.items():
            shared_mean = space in ("centered", "standardized")
            if scale == 0.5 or not shared_mean:
                assert loss < 0.5 * math.log(16), (scale, space, loss)
            else:
                assert loss > found["language-centered"] + 0.5, (scale, space, loss)


def test_spaces_refuse_what_they_cannot_do() -> None:
    stats = SpaceStats.estimate(_rogue_states(), layer=2, max_rank=4)
    with pytest.raises(MidalignError, match="unknown alignment space"):
        AlignmentSpace("whitened", stats)
    with pytest.raises(MidalignError, match="needs the base model's statistics"):
        AlignmentSpace("centered")
    with pytest.raises(MidalignError, match=r"--space-rank 5: must be 1\.\.4"):
        AlignmentSpace("top-removed", stats, rank=5)
    module = AlignmentSpace("language-centered", stats)
    x = torch.randn(2, 16)
    with pytest.raises(MidalignError, match="each row's language"):
        module(x, x, torch.tensor([1, -1]), torch.zeros(2, dtype=torch.long))
    with pytest.raises(MidalignError, match="hold no 'xyz'"):
        module.language_index("xyz")
    assert AlignmentSpace("batch-centered").stats is None, "batch centring needs no statistics"


def _naive_anisotropy(states: np.ndarray) -> dict[str, float]:
    n_langs, n, h = states.shape
    rows = [(lang, s, states[lang, s]) for lang in range(n_langs) for s in range(n)]
    parallel, nonparallel = [], []
    for a_lang, a_id, a in rows:
        for b_lang, b_id, b in rows:
            if (a_lang, a_id) == (b_lang, b_id):
                continue
            cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
            (parallel if a_id == b_id else nonparallel).append(cos)
    energy = [sum(row[d] ** 2 for _, _, row in rows) for d in range(h)]
    shares = sorted((e / sum(energy), d) for d, e in enumerate(energy))[::-1]
    return {
        "cosine_parallel": float(np.mean(parallel)) if parallel else math.nan,
        "cosine_nonparallel": float(np.mean(nonparallel)),
        "top1_share": shares[0][0],
        "top5_share": sum(share for share, _ in shares[:5]),
        "top1_dim": shares[0][1],
        "mean_norm": float(np.mean([np.linalg.norm(row) for _, _, row in rows])),
    }


@pytest.mark.parametrize("n_langs", [1, 3])
def test_anisotropy_matches_a_naive_loop(n_langs) -> None:
    states = torch.stack(list(_rogue_states(n_langs=n_langs, n=7, h=12).values()))  # [n_langs, N, H]
    found, naive = anisotropy(states), _naive_anisotropy(states.double().numpy())
    assert found.n_sentences == 7 * n_langs and found.top_dims[0] == naive["top1_dim"] == 3
    for name in ("cosine_nonparallel", "top1_share", "top5_share", "mean_norm"):
        assert math.isclose(getattr(found, name), naive[name], rel_tol=1e-9), name
    if n_langs == 1:
        assert math.isnan(found.cosine_parallel)
    else:
        assert math.isclose(found.cosine_parallel, naive["cosine_parallel"], rel_tol=1e-9)
    table = anisotropy_table(states.unsqueeze(2).expand(-1, -1, 2, -1), layers=[0, 5])
    assert table.layer.tolist() == [0, 5] and table.top1_dim.tolist() == [3, 3]
    assert table.top5_dims[0].split(";")[0] == "3" and math.isclose(table.top1_share[1], naive["top1_share"])


def test_pair_anisotropy_reads_the_infonce_matrix() -> None:
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    found = pair_anisotropy(x, x)  # translations identical: diagonal cosine 1
    off = [0.0, 1 / math.sqrt(2), 0.0, 1 / math.sqrt(2), 1 / math.sqrt(2), 1 / math.sqrt(2)]
    assert math.isclose(found.cosine_parallel, 1.0) and math.isclose(found.cosine_nonparallel, sum(off) / 6)
    assert math.isclose(found.top1_share, 0.5) and math.isclose(found.logit_gap(0.1), (1 - sum(off) / 6) / 0.1)


@pytest.mark.parametrize("space", ["language-centered", "top-removed"])
def test_train_saves_the_space_with_the_run_and_a_resume_reuses_it(
    space, tiny_model_dir, flores_dir, tmp_path, caplog
) -> None:
    out = tmp_path / "run"
    common = ["--layer", "2", "--align-space", space, "--space-rank", "2", "--max-steps", "4", "--save-every", "2",
              "--eval-every", "2", "--patience", "0"]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="midalign"):
        assert main(_args(tiny_model_dir, flores_dir, out, *common)) == 0
    assert "layer 2, raw space" in caplog.text and f"layer 2, {space} space" in caplog.text
    saved = SpaceStats.load(out)
    assert saved.languages == ["eng_Latn", "deu_Latn", "rus_Cyrl"] and saved.layer == 2
    for folder in (out / "adapter", out / "best", out / "checkpoints" / "step-000004" / "adapter"):
        torch.testing.assert_close(SpaceStats.load(folder).mean, saved.mean, rtol=0, atol=0)
    resolved = json.loads((out / "config.json").read_text())["resolved"]
    assert resolved["align_data_digest"].startswith("sha256:") and set(resolved["anisotropy_at_layer"]) == {
        "raw",
        space,
    }
    assert resolved["align_space_stats"]["file"] == SPACE_FILE
    assert resolved["align_space_stats"]["sha256"] == hashlib.sha256((out / SPACE_FILE).read_bytes()).hexdigest()
    assert "centered_retrieval_acc" in (out / "dev.csv").read_text().splitlines()[0]
    # A resume takes the run's own statistics, not fresh ones: a marked file must come back unchanged.
    tensors = load_file(out / SPACE_FILE)
    marked = SpaceStats.load(out)
    marked.mean = tensors["mean"] + 1.0
    marked.save(out)
    assert main(_args(tiny_model_dir, flores_dir, out, *common, "--resume")) == 0
    torch.testing.assert_close(SpaceStats.load(out / "adapter").mean, tensors["mean"] + 1.0, rtol=0, atol=0)
