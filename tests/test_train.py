"""midalign-train: stopped forward with gradients, data order, resume, non-finite guard, end-to-end CLI runs."""

import csv
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.utils import DistributedType
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2LMHeadModel

from midalign.corpora.pairs import from_parallel
from midalign.corpora.parallel import load_parallel
from midalign.errors import MidalignError
from midalign.models.representations import forward_layers, pool
from midalign.options import TrainConfig
from midalign.train import main
from midalign.training import losses
from midalign.training.data import (
    CycledBatchSampler,
    TaskError,
    build_pairs,
    derangement,
    heldout_split,
    load_task_data,
)
from midalign.training.trainer import Trainer, attach_lora, check_distributed_type, resolve_target_modules
from tests.helpers import FLORES_LIKE, tiny_model, tiny_tokenizer

OUTPUT_FILES = ("config.json", "steps.csv", "eval_before.csv", "eval_after.csv", "eval_summary.csv")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer([t for texts in FLORES_LIKE.values() for t in texts])


@pytest.fixture(scope="module")
def task_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("task") / "task.jsonl"
    rows = [
        {"prompt": f"Platform {i}:", "completion": f" train at {i % 24}.", "language": "eng_Latn" if i % 2 else "deu"}
        for i in range(8)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _tiny_gpt2(vocab_size: int) -> torch.nn.Module:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=4, n_head=4, n_positions=128)
    return GPT2LMHeadModel(config).eval()


def _block_of(name: str) -> int:
    """1-based block index of a parameter name (`...layers.0...` or `...h.0...` is block 1)."""
    return int(re.search(r"\.(?:layers|h)\.(\d+)\.", name).group(1)) + 1


@pytest.mark.parametrize("architecture", ["llama", "gemma3", "gpt2"])
def test_stopped_forward_matches_full_forward_and_grads_reach_only_lora_up_to_k(architecture, tokenizer) -> None:
    model = _tiny_gpt2(len(tokenizer)) if architecture == "gpt2" else tiny_model(architecture, len(tokenizer))
    expected = {"gpt2": ["c_attn", "c_proj", "c_fc"]}.get(
        architecture, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    targets = resolve_target_modules(model)
    assert sorted(targets) == sorted(expected)
    model = attach_lora(model, r=4, alpha=8, dropout=0.0, targets=targets)
    with torch.no_grad():  # LoRA B starts at zero; make the adapter change the states so the test means something
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2)
    k = 2
    x = tokenizer(FLORES_LIKE["deu_Latn"][:3], padding=True, return_tensors="pt")
    en = tokenizer(FLORES_LIKE["eng_Latn"][:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        full = model(**x, output_hidden_states=True).hidden_states[k]
    stopped = forward_layers(model, x["input_ids"], x["attention_mask"], [k])[k]
    torch.testing.assert_close(stopped, full, rtol=0, atol=1e-6)
    pooled = [
        pool(forward_layers(model, b["input_ids"], b["attention_mask"], [k])[k], b["attention_mask"]) for b in (x, en)
    ]
    losses.alignment_loss(*pooled).backward()
    with_grad = {name for name, param in model.named_parameters() if param.grad is not None}
    assert with_grad and all("lora_" in name for name in with_grad), "only LoRA parameters may get gradients"
    for name, param in model.named_parameters():
        if "lora_" in name:
            if _block_of(name) <= k:
                assert param.grad is not None and param.grad.abs().sum() > 0, name
            else:
                assert param.grad is None, f"{name} is above block {k}"


def test_target_modules_override_is_checked(tokenizer) -> None:
    model = tiny_model("llama", len(tokenizer))
    assert resolve_target_modules(model, ["q_proj", "v_proj"]) == ["q_proj", "v_proj"]
    with pytest.raises(MidalignError, match=r"c_attn.*available"):
        resolve_target_modules(model, ["c_attn"])


def test_cycled_sampler_covers_every_item_each_epoch_and_is_deterministic() -> None:
    sampler = CycledBatchSampler(n_items=7, batch_size=3, batches_per_epoch=5, seed=1, stream=0)
    orders = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 5
        assert [len(b) for b in batches] == [3, 3, 1, 3, 3]  # pass 1 (7 items), then pass 2 cut at 5 batches
        assert sorted(i for batch in batches[:3] for i in batch) == list(range(7))
        orders.append(batches)
        assert list(sampler) == batches  # same epoch, same order
    assert orders[0] != orders[1]


def test_alternate_epochs_see_every_task_example_and_every_pair(tokenizer, tiny_model_dir, tmp_path) -> None:
    model = attach_lora(tiny_model("llama", len(tokenizer)), 4, 8, 0.1, ["q_proj"])
    task = [{"input_ids": [1, 10 + i, 11], "labels": [-100, 10 + i, 11]} for i in range(5)]  # token 2 = example id
    pairs = [{"src_ids": [1, 5], "tgt_ids": [1, 6, 7], "row": i} for i in range(11)]
    config = TrainConfig(model=str(tiny_model_dir), task_batch_size=2, align_batch_size=3, epochs=2, device="cpu")
    trainer = Trainer(config, model, tokenizer, 2, task, pairs, tmp_path)
    assert trainer.rounds == 4  # max(ceil(5 / 2), ceil(11 / 3))
    seen = [{"task": [], "align": []} for _ in range(config.epochs)]
    kinds = []
    for micro, batch in trainer._micro_batches(0):
        epoch = micro // trainer.micro_per_epoch
        kinds.append(next(iter(batch)))
        if "task" in batch:
            seen[epoch]["task"] += (batch["task"]["input_ids"][:, 1] - 10).tolist()
        else:
            seen[epoch]["align"] += batch["align"]["rows"].tolist()
    assert kinds == ["task", "align"] * 8
    for epoch in seen:
        assert set(epoch["task"]) == set(range(5)) and len(epoch["task"]) == 7  # batches 2+2+1, then 2 of a new pass
        assert sorted(epoch["align"]) == list(range(11))


def test_chunked_embedding_equals_one_forward(tokenizer, tiny_model_dir, tmp_path) -> None:
    model = attach_lora(tiny_model("gemma3", len(tokenizer)), 4, 8, 0.0, ["q_proj", "down_proj"])
    sentences = [s[: 12 + 9 * i] for i, s in enumerate(FLORES_LIKE["rus_Cyrl"][:7])]  # varied lengths
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    pooled = {}
    for chunk in (0, 2):
        config = TrainConfig(model=str(tiny_model_dir), embed_chunk=chunk, device="cpu")
        trainer = Trainer(config, model, tokenizer, 3, None, [{"src_ids": [1], "tgt_ids": [1], "row": 0}], tmp_path)
        pooled[chunk] = trainer.embed(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(pooled[2], pooled[0], rtol=1e-4, atol=1e-5)
    assert pooled[2].requires_grad


def test_heldout_split_and_pairs(flores_dir) -> None:
    corpus = load_parallel(str(flores_dir), ["eng_Latn", "deu_Latn", "rus_Cyrl"])
    train, heldout = heldout_split(corpus.ids, 0.25)
    assert len(heldout) == round(0.25 * len(corpus.ids)) and not set(train) & set(heldout)
    # The held-out ids do not depend on the order of the corpus (hash of the id, not its position).
    reversed_ids = corpus.ids[::-1]
    assert {reversed_ids[i] for i in heldout_split(reversed_ids, 0.25)[1]} == {corpus.ids[i] for i in heldout}
    train_pairs = from_parallel(corpus, "eng_Latn", train)
    heldout_text = {corpus.sentences["eng_Latn"][i] for i in heldout}
    for per_language in (None, 5, 30):
        pairs = build_pairs(train_pairs, per_language, seed=0)
        counts = {lang: sum(p.src_lang == lang for p in pairs) for lang in ("deu_Latn", "rus_Cyrl")}
        assert set(counts.values()) == {per_language or len(train)}
        assert not {p.tgt_text for p in pairs} & heldout_text, "held-out sentences must never be trained on"
        position = {text: i for i, text in enumerate(corpus.sentences["eng_Latn"])}
        assert all(corpus.sentences[p.src_lang][position[p.tgt_text]] == p.src_text for p in pairs)
        # One row number per English sentence, shared by its translations (no false negatives in the loss).
        rows = {}
        assert all(rows.setdefault(p.tgt_text, p.row) == p.row for p in pairs) and len(set(rows.values())) == len(rows)


def test_shuffled_pairs_read_every_text_but_never_a_translation(flores_dir) -> None:
    """--shuffle-pairs (the exposure control): per language, the same X sentences and the same English sentences as
    the true pairs, each X with another pair's English side; seeded, and each English row follows its sentence."""
    corpus = load_parallel(str(flores_dir), ["eng_Latn", "deu_Latn", "rus_Cyrl"])
    pairs = from_parallel(corpus, "eng_Latn", list(range(len(corpus.ids))))
    position = {text: i for i, text in enumerate(corpus.sentences["eng_Latn"])}
    for per_language in (None, 40):
        true, shuffled = (
            build_pairs(pairs, per_language, seed=3),
            build_pairs(pairs, per_language, seed=3, shuffle=True),
        )
        for lang in ("deu_Latn", "rus_Cyrl"):
            mine = [p for p in shuffled if p.src_lang == lang]
            theirs = [p for p in true if p.src_lang == lang]
            assert sorted(p.src_text for p in mine) == sorted(p.src_text for p in theirs)  # the same X texts
            assert {p.tgt_text for p in mine} == {p.tgt_text for p in theirs}  # and English texts
            assert all(corpus.sentences[lang][position[p.tgt_text]] != p.src_text for p in mine)  # never a translation
        rows = {}
        assert all(rows.setdefault(p.tgt_text, p.row) == p.row for p in shuffled)
    assert build_pairs(pairs, None, seed=3, shuffle=True) == build_pairs(pairs, None, seed=3, shuffle=True)
    assert build_pairs(pairs, None, seed=3, shuffle=True) != build_pairs(pairs, None, seed=4, shuffle=True)
    mapping = derangement(7, np.random.default_rng(0))
    assert sorted(mapping) == list(range(7)) and all(mapping[i] != i for i in range(7))


def test_shuffled_pairs_train_end_to_end_and_are_recorded(tiny_model_dir, flores_dir, tmp_path) -> None:
    out = tmp_path / "control"
    assert main(_args(tiny_model_dir, flores_dir, out, "--layer", "2", "--max-steps", "2", "--shuffle-pairs",
                      "--no-eval")) == 0  # fmt: skip
    assert json.loads((out / "config.json").read_text())["shuffle_pairs"] is True
    assert len(_steps(out)) == 2


def test_task_data_errors_name_file_line_and_field(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n\n{"prompt": "c"}\n')
    with pytest.raises(TaskError, match=r"bad.jsonl, line 3: missing field 'completion'"):
        load_task_data(str(path))
    path.write_text('{"prompt": "a", "completion": "b"\n')
    with pytest.raises(TaskError, match="line 1: not valid JSON"):
        load_task_data(str(path))
    table = tmp_path / "task.csv"
    table.write_text("prompt,answer\na,b\n")
    with pytest.raises(TaskError, match=r"missing field\(s\) \['completion'\]"):
        load_task_data(str(table))
    table.write_text("prompt,completion,language\na,b,deu_Latn\n")
    assert load_task_data(str(table))[0].language == "deu_Latn"


def _args(model_dir: Path, flores_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model", str(model_dir), "--align-data", str(flores_dir), "--align-langs", "deu_Latn", "rus_Cyrl",
        "--batch-size", "4", "--align-max-length", "48", "--task-max-length", "48", "--pairs-per-language", "0",
        "--device", "cpu",
        "--out", str(out), *extra,
    ]  # fmt: skip


def _steps(out: Path) -> list[dict]:
    with (out / "steps.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("mode", ["alternate", "weighted", "alignment-only", "task-only"])
def test_cli_end_to_end(mode, tiny_gemma_dir, flores_dir, task_file, tmp_path) -> None:
    out = tmp_path / "run"
    extra = {
        "alignment-only": [],
        "task-only": ["--task-data", str(task_file), "--align-weight", "0"],
    }.get(mode, ["--task-data", str(task_file), "--mode", mode])
    assert main(_args(tiny_gemma_dir, flores_dir, out, "--layer", "2", "--epochs", "2", *extra)) == 0
    for name in OUTPUT_FILES:
        assert (out / name).is_file(), name
    adapter = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 8 and adapter["lora_alpha"] == 16 and "q_proj" in adapter["target_modules"]
    assert load_file(out / "adapter" / "adapter_model.safetensors")
    resolved = json.loads((out / "config.json").read_text())["resolved"]
    assert resolved["layer"] == 2 and resolved["layer_source"] == "given (--layer)"
    assert resolved["steps_done"] == resolved["total_steps"] and resolved["eval_retrieval_at_layer"]["aligned"]
    rows = _steps(out)
    assert len(rows) == resolved["total_steps"] and [int(r["step"]) for r in rows] == list(range(1, len(rows) + 1))
    has = [(bool(r["task_loss"]), bool(r["align_loss"])) for r in rows]
    expected = {
        "alternate": [(True, False), (False, True)],
        "weighted": [(True, True)],
        "task-only": [(True, False)],
    }.get(mode, [(False, True)])
    assert has == (expected * len(rows))[: len(rows)]
    assert float(rows[-1]["epoch"]) == 2.0
    summary = (out / "eval_summary.csv").read_text()
    assert "deu_Latn" in summary and "rus_Cyrl" in summary
    centred = (out / "eval_summary_centered.csv").read_text()
    assert centred.splitlines()[0] == summary.splitlines()[0]
    assert resolved["eval_centered_retrieval_at_layer"]["aligned"]
    before = (out / "eval_before.csv").read_text().splitlines()
    assert before[0] == "stage,layer,src,tgt,metric,value" and "before,2,deu_Latn,eng_Latn,retrieval_acc" in "".join(
        before
    )


def test_layer_auto_reads_analysis_and_layer_is_validated(tiny_model_dir, flores_dir, tmp_path, caplog) -> None:
    analysis = tmp_path / "analysis"
    analysis.mkdir()
    (analysis / "selection.json").write_text(json.dumps({"layer": 3, "metric": "retrieval_acc", "pooling": "mean"}))
    out = tmp_path / "auto"
    assert main(_args(tiny_model_dir, flores_dir, out, "--analysis", str(analysis), "--max-steps", "2")) == 0
    resolved = json.loads((out / "config.json").read_text())["resolved"]
    assert resolved["layer"] == 3 and str(analysis) in resolved["layer_source"]
    with caplog.at_level(logging.ERROR):
        assert main(_args(tiny_model_dir, flores_dir, tmp_path / "bad", "--layer", "7")) == 2
    assert "--layer 7 out of range: this model has 4 blocks, so 1..4" in caplog.text


def test_layer_auto_runs_the_analysis_when_none_is_given(tiny_model_dir, flores_dir, tmp_path) -> None:
    out = tmp_path / "auto"
    assert main(_args(tiny_model_dir, flores_dir, out, "--max-steps", "1", "--no-eval")) == 0
    selection = json.loads((out / "analysis" / "selection.json").read_text())
    assert selection["languages"] == ["eng_Latn", "deu_Latn", "rus_Cyrl"]
    resolved = json.loads((out / "config.json").read_text())["resolved"]
    assert resolved["layer"] == selection["layer"] and "analysis this run made" in resolved["layer_source"]


def test_layer_auto_analysis_keeps_the_runs_pivot_and_cache(tiny_model_dir, flores_dir, tmp_path) -> None:
    """Regression: the analysis `--layer auto` runs by itself was built without --english and --cache-dir, so it
    compared every language with English (or skipped the pivot metrics) and filled the shared cache instead."""
    out, cache = tmp_path / "auto", tmp_path / "cache"
    argv = _args(tiny_model_dir, flores_dir, out, "--english", "fra_Latn", "--cache-dir", str(cache), "--max-steps",
                 "1", "--no-eval")  # fmt: skip
    assert main(argv) == 0
    record = json.loads((out / "analysis" / "config.json").read_text())
    assert record["english"] == "fra_Latn" and record["resolved"]["pivot"] == "fra_Latn"
    assert {"mexa", "cka"} <= set(record["resolved"]["metrics"])
    assert record["cache_dir"] == str(cache) and any(cache.glob("*/*/fra_Latn.npy"))


def test_resume_ends_where_an_uninterrupted_run_ends(
    tiny_model_dir, flores_dir, task_file, tmp_path, monkeypatch, caplog
) -> None:
    common = ["--layer", "2", "--task-data", str(task_file), "--epochs", "2", "--grad-accum", "3", "--save-every", "3"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(_args(tiny_model_dir, flores_dir, straight, *common)) == 0
    calls = {"n": 0}
    original = Trainer.task_loss

    def crash_on_seventh_call(self, batch):  # the 7th task batch is micro-step 12, the first of step 5
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("simulated crash")
        return original(self, batch)

    monkeypatch.setattr(Trainer, "task_loss", crash_on_seventh_call)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(_args(tiny_model_dir, flores_dir, resumed, *common))
    assert len(_steps(resumed)) == 4 and (resumed / "checkpoints" / "step-000003").is_dir()
    monkeypatch.setattr(Trainer, "task_loss", original)
    assert main(_args(tiny_model_dir, flores_dir, resumed, *common)) == 2, "a second run into OUT needs --resume"
    with caplog.at_level(logging.INFO, logger="midalign"):
        assert main(_args(tiny_model_dir, flores_dir, resumed, *common, "--resume")) == 0
    assert "step-000003 (step 3 of 10)" in caplog.text, "it must continue from the checkpoint, not start over"
    assert _steps(resumed) == _steps(straight)
    weights = [load_file(out / "adapter" / "adapter_model.safetensors") for out in (straight, resumed)]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], rtol=0, atol=0)
    assert main(_args(tiny_model_dir, flores_dir, resumed, *common, "--resume", "--lr", "1e-3")) == 2


def test_bf16_and_fp32_runs_follow_each_other_in_one_process(tiny_model_dir, flores_dir, task_file, tmp_path) -> None:
    """The precision is the trainer's own autocast, not process-wide accelerate state: bf16, fp32 and bf16 again in
    one process each train in their own precision (bf16 and fp32 adapters differ; the two bf16 ones are equal)."""
    common = ["--layer", "2", "--task-data", str(task_file), "--max-steps", "2", "--no-eval"]
    outs = {name: tmp_path / name for name in ("bf16", "fp32", "bf16-again")}
    for name, out in outs.items():
        dtype = name.split("-")[0]
        assert main(_args(tiny_model_dir, flores_dir, out, *common, "--dtype", dtype)) == 0
        assert json.loads((out / "config.json").read_text())["resolved"]["precision"] == dtype
    weights = {name: load_file(out / "adapter" / "adapter_model.safetensors") for name, out in outs.items()}
    for name, tensor in weights["bf16"].items():
        torch.testing.assert_close(weights["bf16-again"][name], tensor, rtol=0, atol=0, msg=name)
    gap = max(float((weights["fp32"][name] - tensor).abs().max()) for name, tensor in weights["bf16"].items())
    assert gap > 1e-6, "the fp32 run must not run under the bf16 run's autocast"


def test_accelerate_engines_that_take_the_model_over_are_refused() -> None:
    for kind in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU):
        check_distributed_type(kind)
    for kind in (DistributedType.DEEPSPEED, DistributedType.FSDP):
        with pytest.raises(MidalignError, match=f"does not run under accelerate's {kind.value}"):
            check_distributed_type(kind)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    tiny_model_dir, flores_dir, tmp_path, monkeypatch, caplog
):
    real, calls = losses.alignment_loss, {"n": 0}

    def nan_from_fifth_call(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] >= 5 else loss

    monkeypatch.setattr(losses, "alignment_loss", nan_from_fifth_call)
    out = tmp_path / "nan"
    with caplog.at_level(logging.ERROR):
        assert main(_args(tiny_model_dir, flores_dir, out, "--layer", "2", "--save-every", "2")) == 2
    assert "align loss is nan at optimizer step 5" in caplog.text and "step-000004" in caplog.text
    assert len(_steps(out)) == 4
    assert (out / "checkpoints" / "step-000004" / "trainer_state.json").is_file()
    assert not (out / "adapter").exists()


def test_before_states_come_from_the_shared_cache(tiny_model_dir, flores_dir, tmp_path, monkeypatch) -> None:
    """Without --cache-dir the base model's evaluation states go through the default state cache: a second run with
    the same evaluation extracts nothing, and its before-numbers are the first run's."""
    from midalign.models import extract

    common = ["--layer", "2", "--max-steps", "1", "--eval-every", "0"]
    assert main(_args(tiny_model_dir, flores_dir, tmp_path / "first", *common)) == 0
    calls = []
    original = extract.extract_states
    monkeypatch.setattr(extract, "extract_states", lambda *a, **k: calls.append(1) or original(*a, **k))
    assert main(_args(tiny_model_dir, flores_dir, tmp_path / "second", *common)) == 0
    assert not calls, "the second run must read the cached states"
    before = [(tmp_path / run / "eval_before.csv").read_text() for run in ("first", "second")]
    assert before[0] == before[1]
