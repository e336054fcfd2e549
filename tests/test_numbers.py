"""Value tests of numbers the README reports or that shape a run: the layer-selection rule (ties, excluded ends),
the committed analysis run's per-language and per-layer tables against a naive recomputation from its pair table,
the task loss computed on trailing logits only against the full-sequence loss, and the learning-rate schedule a
real run logs against the inverse-square-root formula."""

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from midalign.analysis.select import select_layer
from midalign.train import main as train_main
from midalign.training.trainer import Trainer
from tests.helpers import FLORES_LIKE, tiny_model, tiny_tokenizer

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "analysis" / "gemma-3-270m_udhr"


def _layers(values: list[float], n: int = 3, diagonal: float = 1.0) -> np.ndarray:
    """[len(values), n, n] matrices with `value` off the diagonal and `diagonal` on it."""
    out = np.stack([np.full((n, n), v) for v in values])
    out[:, np.arange(n), np.arange(n)] = diagonal
    return out


def test_select_layer_excludes_the_ends_and_breaks_ties_to_the_lower_layer() -> None:
    # Layers 0..4 of a 4-block model: the embeddings (0.9) and the last block (0.95) score best but are excluded;
    # blocks 2 and 3 tie at 0.7, so block 2 wins; the diagonal (self pairs, 1.0) never counts.
    matrices = {"retrieval_acc": _layers([0.9, 0.5, 0.7, 0.7, 0.95]), "cosine": _layers([0.1, 0.2, 0.3, 0.4, 0.35])}
    chosen = select_layer(matrices, [0, 1, 2, 3, 4], n_blocks=4)
    assert chosen["layer"] == 2 and chosen["score"] == pytest.approx(0.7)
    assert chosen["runner_up"] == {"layer": 3, "score": pytest.approx(0.7)}
    assert chosen["curve"] == {str(i): pytest.approx(v) for i, v in enumerate([0.9, 0.5, 0.7, 0.7, 0.95])}
    assert chosen["best_by_metric"] == {"retrieval_acc": 4, "cosine": 3}, "the per-metric argmax excludes nothing"
    assert select_layer(matrices, [0, 1, 2, 3, 4], 4, metric="cosine")["layer"] == 3
    only_ends = select_layer({"retrieval_acc": _layers([0.2, 0.6])}, [0, 4], n_blocks=4)
    assert only_ends["layer"] == 4 and only_ends["runner_up"]["layer"] == 0, "with no hidden block, ends compete"


def test_select_layer_on_a_pivot_metric_averages_the_defined_pairs_only() -> None:
    mexa = np.full((3, 3, 3), np.nan)
    mexa[:, [0, 2], 1] = [[0.2, 0.4], [0.6, 0.8], [0.1, 0.1]]  # X -> pivot (index 1) only
    cka = np.full((3, 3, 3), np.nan)
    cka[1:, [0, 2], 1] = 0.5  # undefined at layer 0 (constant pivot states)
    chosen = select_layer({"mexa": mexa, "cka": cka}, [0, 1, 2], n_blocks=2, metric="mexa")
    assert chosen["layer"] == 1 and chosen["score"] == pytest.approx(0.7)
    assert chosen["curve"] == {"0": pytest.approx(0.3), "1": pytest.approx(0.7), "2": pytest.approx(0.1)}
    assert chosen["best_by_metric"] == {"mexa": 1, "cka": 1}, "a NaN layer is never the best"


@pytest.fixture(scope="module")
def committed() -> dict[str, pd.DataFrame]:
    pairs = pd.read_parquet(RUN / "pairs.parquet").astype({"src": str, "tgt": str, "metric": str})
    return {
        "pairs": pairs,
        "per_language": pd.read_csv(RUN / "per_language.csv"),
        "layers": pd.read_csv(RUN / "layers.csv", keep_default_na=False),
        "languages": pd.read_csv(RUN / "languages.csv", keep_default_na=False),
    }


def test_per_language_table_is_the_mean_over_every_pair_a_language_is_in(committed) -> None:
    pairs, table = committed["pairs"], committed["per_language"]
    pairs = pairs[pairs.layer.isin([0, 11, 18])]
    pivot_only = pairs.metric.isin(["mexa", "cka"])  # defined for X -> pivot only: a language's value is its own
    for lang in ["eng_Latn", "kat_Geor", "amh_Ethi"]:
        involved = pairs[~pivot_only & ((pairs.src == lang) | (pairs.tgt == lang))]
        naive = pd.concat([involved, pairs[pivot_only & (pairs.src == lang)]]).groupby(["layer", "metric"]).value.mean()
        for (layer, metric), value in naive.items():
            row = table[(table.layer == layer) & (table.lang == lang) & (table.metric == metric)]
            assert row.value.item() == pytest.approx(value, abs=1e-6), (lang, layer, metric)
        if lang == "eng_Latn":  # the pivot has no row of its own
            assert table[(table.lang == lang) & table.metric.isin(["mexa", "cka"])].empty


def test_layer_table_overall_and_by_resource_level(committed) -> None:
    pairs, per_language, layers = committed["pairs"], committed["per_language"], committed["layers"]
    languages = committed["languages"].set_index("code")
    for layer in (4, 11):
        at = pairs[(pairs.layer == layer) & (pairs.metric == "retrieval_acc")].value
        overall = layers[(layers.layer == layer) & (layers.metric == "retrieval_acc") & (layers.group_by == "all")]
        assert float(overall["mean"].item()) == pytest.approx(at.mean(), abs=1e-6)
        assert int(overall["n"].item()) == len(at) == 48 * 47
        means = per_language[(per_language.layer == layer) & (per_language.metric == "retrieval_acc")]
        levels = means.assign(group=means.lang.map(languages.resource_level.replace("", "unknown")))
        for group, values in levels.groupby("group").value:
            row = layers[(layers.layer == layer) & (layers.metric == "retrieval_acc")
                         & (layers.group_by == "resource_level") & (layers.group == group)]  # fmt: skip
            assert float(row["mean"].item()) == pytest.approx(values.mean(), abs=1e-6), group
            assert float(row["min"].item()) == pytest.approx(values.min(), abs=1e-6)
            assert int(row["n"].item()) == len(values)
            if len(values) > 1:
                assert float(row["std"].item()) == pytest.approx(values.std(ddof=1), abs=1e-6)


def test_task_loss_on_trailing_logits_equals_the_full_sequence_loss() -> None:
    tokenizer = tiny_tokenizer([t for texts in FLORES_LIKE.values() for t in texts])
    model = tiny_model("gemma3", len(tokenizer))
    torch.manual_seed(0)
    input_ids = torch.randint(3, len(tokenizer), (3, 12))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2, :3] = 0  # a left-padded row
    labels = torch.full_like(input_ids, -100)
    labels[0, 7:] = input_ids[0, 7:]  # completions of different lengths
    labels[1, 9:11] = input_ids[1, 9:11]
    labels[2, 5:] = input_ids[2, 5:]
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    trailing = Trainer.task_loss(SimpleNamespace(model=model), batch)
    full = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, use_cache=False).loss
    assert trailing.item() == pytest.approx(full.item(), rel=1e-5)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
    naive = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))
    assert trailing.item() == pytest.approx(naive.item(), rel=1e-5)


def test_logged_learning_rate_follows_warmup_then_inverse_square_root(tiny_gemma_dir, flores_dir, tmp_path) -> None:
    out = tmp_path / "run"
    argv = ["--model", str(tiny_gemma_dir), "--align-data", str(flores_dir), "--align-langs", "deu_Latn", "fra_Latn",
            "--layer", "2", "--batch-size", "4", "--max-steps", "12", "--warmup-ratio", "0.25", "--lr", "1e-3",
            "--no-eval", "--eval-every", "0", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert train_main(argv) == 0
    resolved = json.loads((out / "config.json").read_text())["resolved"]
    warmup = resolved["warmup_steps"]
    assert warmup == math.ceil(0.25 * resolved["total_steps"]) == 3
    with (out / "steps.csv").open() as handle:
        logged = [float(row["lr"]) for row in csv.DictReader(handle)]
    # The schedule starts one step in, so step t (1-based) runs at lr * t / warmup: step 1 is above 0.
    steps = range(1, len(logged) + 1)
    assert logged[0] == pytest.approx(1e-3 / 3)
    expected = [1e-3 * (t / warmup if t < warmup else math.sqrt(warmup / t)) for t in steps]
    assert logged == pytest.approx(expected, rel=1e-6)


def test_readme_anisotropy_figures_are_the_committed_table() -> None:
    """README and the run's README: block 11's cosines, dominant dimension and shares; cosines 0.96-0.996 over
    blocks 2-12; the last layer near 0.2."""
    table = pd.read_csv(RUN / "anisotropy.csv").set_index("layer")
    row = table.loc[11]
    assert (round(row.cosine_parallel, 4), round(row.cosine_nonparallel, 4)) == (0.9964, 0.9955)
    assert row.top1_dim == 163 and round(100 * row.top1_share, 1) == 96.5 and round(100 * row.top5_share, 1) == 99.5
    middle = table.loc[2:12, ["cosine_parallel", "cosine_nonparallel"]]
    assert round(middle.min().min(), 2) == 0.96 and round(middle.max().max(), 3) == 0.996
    assert table.loc[1:5, "top1_dim"].eq(400).all() and table.loc[6:17, "top1_dim"].eq(163).all()
    assert round(table.loc[18, "cosine_parallel"], 1) == 0.2
