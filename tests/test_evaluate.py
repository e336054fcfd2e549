"""midalign-evaluate: batched generation, language groups, end-to-end runs on a tiny model and adapter, --compare."""

import csv
import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import torch

from midalign import train
from midalign.evaluate import main
from midalign.options import EvaluateConfig
from midalign.records import TrainingRecord
from midalign.tasks import cldr
from midalign.tasks.evaluation import resolve_groups
from midalign.tasks.generate import StopOnText, cut, generate
from tests.helpers import FLORES_LIKE, tiny_model, tiny_tokenizer

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"
LANGS = ["eng_Latn", "deu_Latn", "fra_Latn", "rus_Cyrl", "ell_Grek"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread beats two on a busy 2-core machine
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained_run(tiny_gemma_dir, flores_dir, tmp_path_factory) -> Path:
    """A midalign-train run (2 steps) on CLDR data in eng+deu, aligning fra and rus: OUT/adapter + config.json."""
    root = tmp_path_factory.mktemp("trained")
    assert cldr.main(["--langs", "eng_Latn", "deu_Latn", "--n-train", "8", "--n-dev", "0", "--n-test", "0",
                      "--out", str(root / "data")]) == 0  # fmt: skip
    argv = ["--model", str(tiny_gemma_dir), "--task-data", str(root / "data" / "train.jsonl"),
            "--align-data", str(flores_dir), "--align-langs", "fra_Latn", "rus_Cyrl", "--layer", "2",
            "--batch-size", "4", "--align-max-length", "48", "--task-max-length", "48", "--max-steps", "2",
            "--no-eval", "--device", "cpu",
            "--out", str(root / "run")]  # fmt: skip
    assert train.main(argv) == 0
    return root / "run"


def test_left_padded_batches_generate_what_single_prompts_do() -> None:
    tokenizer = tiny_tokenizer([t for texts in FLORES_LIKE.values() for t in texts])
    model = tiny_model("llama", len(tokenizer))
    prompts = ["The train", "Der Zug an die Küste fährt um", "Le", "Поезд к побережью"]  # different lengths
    one_by_one = generate(model, tokenizer, prompts, max_new_tokens=5, batch_size=1, stops=(), progress=False)
    batched = generate(model, tokenizer, prompts, max_new_tokens=5, batch_size=4, stops=(), progress=False)
    assert batched == one_by_one and all(batched)
    assert generate(model, tokenizer, [], progress=False) == []
    # A frozen LM head gets a contiguous input (torch's slow path otherwise), and the hook is gone afterwards.
    model.requires_grad_(False)
    seen = []
    spy = model.lm_head.register_forward_hook(lambda module, args, output: seen.append(args[0].is_contiguous()))
    assert generate(model, tokenizer, prompts, max_new_tokens=5, batch_size=4, stops=(), progress=False) == batched
    spy.remove()
    assert seen and all(seen) and not model.lm_head._forward_pre_hooks


def test_answers_stop_at_a_newline() -> None:
    tokenizer = tiny_tokenizer([t for texts in FLORES_LIKE.values() for t in texts] + ["a\nb"])
    assert cut("  März 2024 \nEnglish: more", ("\n",)) == "März 2024"
    ids = tokenizer(["Le\ntrain", "Le train"], padding=True, return_tensors="pt")["input_ids"]  # <bos> Le \n t ...
    assert StopOnText(tokenizer, 1, ("\n",))(ids, None).tolist() == [True, False]
    assert StopOnText(tokenizer, 3, ("\n",))(ids, None).tolist() == [False, False], "only text after `start` counts"


def test_groups_from_lists_aliases_and_a_training_run(trained_run) -> None:
    config = EvaluateConfig(task="cldr", supervised=["en", "de"], alignment=["rus_Cyrl"])
    assert resolve_groups(config, LANGS, None) == {"eng_Latn": "supervised", "deu_Latn": "supervised",
        "fra_Latn": "unseen", "rus_Cyrl": "alignment", "ell_Grek": "unseen"}  # fmt: skip
    groups = resolve_groups(EvaluateConfig(task="cldr"), LANGS, TrainingRecord.load(trained_run))
    assert groups == {"eng_Latn": "supervised", "deu_Latn": "supervised", "fra_Latn": "alignment",
                      "rus_Cyrl": "alignment", "ell_Grek": "unseen"}  # fmt: skip
    assert set(resolve_groups(EvaluateConfig(task="cldr"), LANGS, None).values()) == {"ungrouped"}


def _evaluate(model_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["--task", "cldr", "--model", str(model_dir), "--langs", *LANGS, "--max-examples", "3",
            "--max-new-tokens", "4", "--batch-size", "2", "--device", "cpu", "--out", str(out), *extra]  # fmt: skip


def test_end_to_end_with_an_adapter_and_compare(tiny_gemma_dir, trained_run, tmp_path, caplog) -> None:
    base, tuned = tmp_path / "base", tmp_path / "tuned"
    assert main(_evaluate(tiny_gemma_dir, base, "--groups-from", str(trained_run))) == 0
    assert main(_evaluate(tiny_gemma_dir, tuned, "--adapter", str(trained_run / "adapter"))) == 0
    for out in (base, tuned):
        predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        assert len(predictions) == 3 * len(LANGS)
        assert {"id", "language", "group", "prompt", "reference", "prediction"} <= set(predictions[0])
        assert all("\n" not in p["prediction"] for p in predictions)
        scores = pd.read_csv(out / "scores.csv")
        assert list(scores.columns) == ["language", "group", "metric", "value"]
        assert set(scores.metric) == {"exact_match", "chrf", "n_examples"} and len(scores) == 3 * len(LANGS)
        assert dict(zip(scores.language, scores.group, strict=True))["fra_Latn"] == "alignment"
        groups = pd.read_csv(out / "groups.csv")
        assert list(groups.columns) == ["group", "metric", "value", "n_languages"]
        counts = groups[groups.metric == "chrf"].set_index("group").n_languages.to_dict()
        assert counts == {"supervised": 2, "alignment": 2, "unseen": 1, "all": 5}
        german = scores[(scores.language == "deu_Latn") & (scores.metric == "chrf")].value.iloc[0]
        mean = groups[(groups.group == "supervised") & (groups.metric == "chrf")].value.iloc[0]
        assert mean == pytest.approx(scores[(scores.group == "supervised") & (scores.metric == "chrf")].value.mean())
        assert 0 <= german <= 100
        items = pd.read_csv(out / "item_scores.csv")  # one row per example and metric, averaging to scores.csv
        assert list(items.columns) == ["id", "language", "group", "metric", "value"] and len(items) == 2 * 3 * len(
            LANGS
        )
        assert set(items.id) == {p["id"] for p in predictions}
        exact = items[items.metric == "exact_match"].groupby("language").value.mean()
        assert exact.to_dict() == pytest.approx(
            scores[scores.metric == "exact_match"].set_index("language").value.to_dict()
        )
    resolved = json.loads((tuned / "config.json").read_text())["resolved"]
    assert resolved["adapter"].endswith("adapter") and resolved["groups_from"] == str(trained_run)
    assert resolved["wall_seconds"] > 0 and resolved["n_examples"]["ell_Grek"] == 3
    with caplog.at_level(logging.ERROR):
        assert main(_evaluate(tiny_gemma_dir, tuned)) == 2, "a second evaluation into OUT needs --overwrite"
    assert "--overwrite" in caplog.text

    comparison = tmp_path / "comparison"
    assert main(["--compare", str(base), str(tuned), "--out", str(comparison)]) == 0
    with (comparison / "comparison_groups.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["group", "metric", "base", "tuned", "tuned - base"]
    for row in rows:
        assert float(row["tuned - base"]) == pytest.approx(float(row["tuned"]) - float(row["base"]))
    assert len(pd.read_csv(comparison / "comparison.csv")) == 2 * 3 * len(LANGS)
    assert "| group | metric | base | tuned | tuned - base |" in (comparison / "comparison.md").read_text()


@pytest.mark.parametrize(
    ("task", "extra"),
    [
        ("massive", ["--data", str(FIXTURES / "massive"), "--langs", "en-US", "de-DE"]),
        ("entities", ["--data", str(FIXTURES / "entities.jsonl")]),
        ("translation", ["--langs", "deu_Latn", "--split", "dev", "--supervised", "deu_Latn"]),
    ],
)
def test_every_recipe_runs_through_the_cli(task, extra, tiny_model_dir, flores_dir, tmp_path) -> None:
    if task == "translation":
        extra = [*extra, "--data", str(flores_dir)]
    out = tmp_path / task
    argv = ["--task", task, "--model", str(tiny_model_dir), "--max-examples", "2", "--max-new-tokens", "3",
            "--device", "cpu", "--out", str(out), *extra]  # fmt: skip
    assert main(argv) == 0
    scores = pd.read_csv(out / "scores.csv")
    metric = {"massive": "slot_f1", "entities": "entity_f1", "translation": "x2en_bleu"}[task]
    assert metric in set(scores.metric) and scores.value.notna().all()
    assert (out / "groups.csv").is_file() and (out / "predictions.jsonl").is_file()


def test_bad_input_fails_with_one_clear_line(tiny_model_dir, tmp_path, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        assert main(["--out", str(tmp_path / "a")]) == 2
        assert "--task is required" in caplog.text
        assert main(["--compare", str(tmp_path), "--out", str(tmp_path / "c")]) == 2
        assert main(["--compare", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "c")]) == 2
        assert "no scores.csv" in caplog.text
        assert main([*_evaluate(tiny_model_dir, tmp_path / "b"), "--adapter", str(tmp_path)]) == 2
        assert "no adapter_config.json" in caplog.text
        assert main(["--task", "cldr", "--langs", "xxx_Latn", "--out", str(tmp_path / "d")]) == 2
        assert "no CLDR locale" in caplog.text
