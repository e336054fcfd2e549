"""midalign-merge: the merged adapter is exactly w_task dW_task + w_align dW_align, --fold, refusals, the sweep."""

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from peft import IA3Config, LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from midalign.merge import main
from midalign.training.adapters import MergeError, load_adapter, merge, merge_adapters
from midalign.training.merge import choose

# Weights agree to an fp32 rounding (~1e-7); a random tiny Gemma's norms amplify that to ~4e-6 of the outputs' scale.
WEIGHT_TOLERANCE, OUTPUT_TOLERANCE = 1e-6, 5e-5


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread beats two on a busy 2-core machine
    yield
    torch.set_num_threads(before)


def make_adapter(base: Path | torch.nn.Module, out: Path, seed: int, config) -> Path:
    """Save a peft adapter on `base` whose trainable weights are all random (peft starts LoRA's B at zero)."""
    model = AutoModelForCausalLM.from_pretrained(base) if isinstance(base, Path) else base
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for param in peft_model.parameters():
            if param.requires_grad:
                param.normal_(0, 0.2)
    peft_model.save_pretrained(out)
    return out


def task_lora() -> LoraConfig:
    """r 4, alpha 8 on q, v, up, with one module at rank 6 and alpha 3 (rank_pattern, alpha_pattern)."""
    pattern = "model.layers.1.self_attn.q_proj"
    return LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"], task_type="CAUSAL_LM",
                      rank_pattern={pattern: 6}, alpha_pattern={pattern: 3})  # fmt: skip


def align_lora(**extra) -> LoraConfig:
    """r 2, alpha 5 with rsLoRA (s = alpha / sqrt(r)) on q, k, up, down of blocks 1-3 only."""
    return LoraConfig(r=2, lora_alpha=5, use_rslora=True, target_modules=["q_proj", "k_proj", "up_proj", "down_proj"],
                      layers_to_transform=[1, 2, 3], task_type="CAUSAL_LM", **extra)  # fmt: skip


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def adapters(request, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(base model folder, task adapter, alignment adapter), both adapters random and non-zero."""
    base = request.getfixturevalue("tiny_model_dir" if request.param == "llama" else "tiny_gemma_dir")
    root = tmp_path_factory.mktemp(f"adapters-{request.param}")
    return base, make_adapter(base, root / "task", 1, task_lora()), make_adapter(base, root / "align", 2, align_lora())


def reference_model(base: Path, task: Path, align: Path, w_task: float, w_align: float) -> torch.nn.Module:
    """The base model with w * dW of each adapter added to its weights, dW taken from peft's own merge_and_unload."""
    model = AutoModelForCausalLM.from_pretrained(base).eval()
    weights = model.state_dict()
    deltas = []
    for adapter in (task, align):
        folded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).merge_and_unload()
        deltas.append({k: v - weights[k] for k, v in folded.state_dict().items()})
    model.load_state_dict({k: v + w_task * deltas[0][k] + w_align * deltas[1][k] for k, v in weights.items()})
    return model


def outputs(model: torch.nn.Module) -> list[torch.Tensor]:
    """Logits and every hidden state on a fixed batch."""
    ids = torch.arange(3, 27).reshape(2, 12)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
    return [out.logits, *out.hidden_states]


def max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """The largest |a - b| over logits and hidden states, relative to the largest |b| of each tensor."""
    return max(float((x - y).abs().max() / y.abs().max()) for x, y in zip(outputs(a), outputs(b), strict=True))


def max_weight_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    other = b.state_dict()
    return max(float((value - other[key]).abs().max()) for key, value in a.state_dict().items())


@pytest.mark.parametrize("weights", [(1.0, 0.7), (0.5, -1.25)])
def test_merged_adapter_is_exactly_the_weighted_sum_of_updates(adapters, weights, tmp_path) -> None:
    base, task, align = adapters
    merged_dir = merge_adapters(task, align, tmp_path / "merged", *weights)
    config = json.loads((merged_dir / "adapter_config.json").read_text())
    assert config["r"] == config["lora_alpha"] == 6 and not config["use_rslora"]  # s = 1: B carries s * w
    assert config["rank_pattern"], "layer 1's q_proj has rank 6 + 2 and modules of one adapter keep a zero block"
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), merged_dir).eval()
    reference = reference_model(base, task, align, *weights)
    plain = AutoModelForCausalLM.from_pretrained(base).eval()
    assert max_difference(plain, reference) > 1e-2, "the updates must change the outputs for the test to mean much"
    difference = max_difference(merged, reference)
    weights_difference = max_weight_difference(merged.merge_and_unload(), reference)
    print(f"max |merged - reference|: weights {weights_difference:.1e}, outputs {difference:.1e} (relative)")
    assert weights_difference < WEIGHT_TOLERANCE and difference < OUTPUT_TOLERANCE


def test_cli_fold_writes_a_model_with_the_same_outputs(adapters, tmp_path) -> None:
    base, task, align = adapters
    out = tmp_path / "out"
    argv = ["--task-adapter", str(task), "--align-adapter", str(align), "--align-weight", "0.6", "--fold",
            "--model", str(base), "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    folded = AutoModelForCausalLM.from_pretrained(out / "model").eval()
    reference = reference_model(base, task, align, 1.0, 0.6)
    assert max_weight_difference(folded, reference) < WEIGHT_TOLERANCE
    assert max_difference(folded, reference) < OUTPUT_TOLERANCE
    saved = json.loads((out / "config.json").read_text())
    assert (saved["resolved"]["w_task"], saved["resolved"]["w_align"]) == (1.0, 0.6)
    assert main(argv) == 2, "a second merge into OUT needs --overwrite"
    assert main([*argv, "--overwrite"]) == 0


def _copy(adapter: Path, to: Path, **changes) -> Path:
    shutil.copytree(adapter, to)
    config = json.loads((to / "adapter_config.json").read_text())
    (to / "adapter_config.json").write_text(json.dumps({**config, **changes}))
    return to


def test_mismatched_adapters_are_refused(tiny_model_dir, adapters, tmp_path, caplog) -> None:
    base, task, align = adapters
    other_base = _copy(align, tmp_path / "other-base", base_model_name_or_path="/models/another")
    with pytest.raises(MergeError, match=r"different base models: .*another"):
        merge(load_adapter(task), load_adapter(other_base), 1, 1)
    for adapter, identity in ((task, "model-a"), (align, "model-b")):  # midalign's identity, when recorded, decides
        run = tmp_path / f"run-{identity}"
        shutil.copytree(adapter, run / "adapter")
        (run / "config.json").write_text(json.dumps({"command": "train", "resolved": {"model_identity": identity}}))
    with pytest.raises(MergeError, match=r"different base models: model-a .* vs model-b"):
        merge(load_adapter(tmp_path / "run-model-a/adapter"), load_adapter(tmp_path / "run-model-b/adapter"), 1, 1)
    wider = LlamaForCausalLM(LlamaConfig(vocab_size=400, hidden_size=48, intermediate_size=64, num_hidden_layers=4,
                                         num_attention_heads=4, num_key_value_heads=2))  # fmt: skip
    shapes = make_adapter(wider, tmp_path / "wider", 3, align_lora())
    _copy(shapes, tmp_path / "wider-same-name", base_model_name_or_path=str(base))
    with pytest.raises(
        MergeError, match=r"layers.1.mlp.up_proj: the task adapter.s update has shape \(64, 32\), .* \(64, 48\)"
    ):
        merge(load_adapter(task), load_adapter(tmp_path / "wider-same-name"), 1, 1)
    dora = make_adapter(base, tmp_path / "dora", 4, align_lora(use_dora=True))
    with pytest.raises(MergeError, match="only plain LoRA adapters: use_dora=True"):
        load_adapter(dora)
    ia3_config = IA3Config(target_modules=["k_proj", "down_proj"], feedforward_modules=["down_proj"])
    ia3 = make_adapter(base, tmp_path / "ia3", 5, ia3_config)
    with pytest.raises(MergeError, match="is a IA3 adapter, not LoRA"):
        load_adapter(ia3)
    saving = [make_adapter(base, tmp_path / f"save{i}", i, align_lora(modules_to_save=["lm_head"])) for i in (6, 7)]
    with pytest.raises(MergeError, match="both adapters replace whole modules"):
        merge(load_adapter(saving[0]), load_adapter(saving[1]), 1, 1)
    with pytest.raises(MergeError, match=r"carried over only at weight 1, not 0\.5"):
        merge(load_adapter(task), load_adapter(saving[0]), 1, 0.5)
    biased = _copy(align, tmp_path / "biased", bias="all")
    with pytest.raises(MergeError, match="bias='all'"):
        load_adapter(biased)
    assert main(["--task-adapter", str(task), "--align-adapter", str(dora), "--out", str(tmp_path / "x")]) == 2
    assert "use_dora=True" in caplog.text


def test_modules_to_save_of_one_adapter_carry_over_at_weight_one(tiny_model_dir, tmp_path) -> None:
    # Llama: its lm_head is not tied to the embeddings (with tied ones, peft's own merge_and_unload of a
    # modules_to_save lm_head differs from its unmerged forward, peft issue #2777).
    task = make_adapter(tiny_model_dir, tmp_path / "task", 1, task_lora())
    align = make_adapter(tiny_model_dir, tmp_path / "save", 8, align_lora(modules_to_save=["lm_head"]))
    merged_dir = merge_adapters(task, align, tmp_path / "merged", 1.0, 1.0)
    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), merged_dir).eval()
    assert max_difference(merged, reference_model(tiny_model_dir, task, align, 1.0, 1.0)) < OUTPUT_TOLERANCE


def test_choose_takes_the_best_mean_and_breaks_ties_by_the_second_metric_then_the_smaller_weight() -> None:
    rows = [(1, w, m, "mean", v) for w, m, v in [(0, "em", 0.5), (0.5, "em", 0.5), (1, "em", 0.5), (0, "ret", 0.2),
                                                  (0.5, "ret", 0.4), (1, "ret", 0.4), (1, "em", 0.1)][:6]]  # fmt: skip
    sweep = pd.DataFrame(rows, columns=["w_task", "w_align", "metric", "language", "value"])
    assert choose(sweep, "em", "ret") == (1.0, 0.5)
    assert choose(sweep, "ret", None) == (1.0, 0.5)
    assert choose(sweep, "em", None) == (1.0, 0.0)
    noisy = pd.DataFrame([(1, 0.25, "em", "mean", (0.3 + 0.3) / 3), (1, 0.5, "em", "mean", (0.1 + 0.2 + 0.3) / 3)],
                         columns=sweep.columns)  # fmt: skip
    assert noisy.value[0] != noisy.value[1] and choose(noisy, "em", None) == (1.0, 0.25), "float noise is a tie"


def test_sweep_cli_scores_retrieval_and_the_task_and_saves_the_chosen_weights(adapters, flores_dir, tmp_path) -> None:
    base, task, align = adapters
    out = tmp_path / "sweep"
    argv = ["--task-adapter", str(task), "--align-adapter", str(align), "--sweep", "0,0.5", "1", "--model", str(base),
            "--layer", "2", "--align-data", str(flores_dir), "--align-langs", "deu_Latn", "rus_Cyrl", "--task", "cldr",
            "--task-langs", "eng_Latn", "deu_Latn", "--max-examples", "2", "--max-new-tokens", "3",
            "--select", "retrieval", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    sweep = pd.read_csv(out / "sweep.csv")
    assert sorted(sweep.w_align.unique()) == [0, 0.5, 1]
    assert {"retrieval_acc_layer2", "exact_match", "chrf"} <= set(sweep.metric)
    assert set(sweep.language) == {"deu_Latn", "rus_Cyrl", "eng_Latn", "mean"}
    resolved = json.loads((out / "config.json").read_text())["resolved"]
    assert (resolved["w_task"], resolved["w_align"]) == choose(sweep, "retrieval_acc_layer2", "exact_match")
    assert resolved["criterion"] == "retrieval_acc_layer2" and resolved["layer"] == 2
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), out / "adapter").eval()
    assert max_difference(reloaded, reference_model(base, task, align, 1.0, resolved["w_align"])) < OUTPUT_TOLERANCE


def test_sweep_on_a_pair_corpus_scores_its_dev_split(adapters, pairs_dir, tmp_path) -> None:
    base, task, align = adapters
    out = tmp_path / "sweep-pairs"
    argv = ["--task-adapter", str(task), "--align-adapter", str(align), "--sweep", "0,1", "1", "--model", str(base),
            "--layer", "2", "--align-data", str(pairs_dir), "--align-langs", "deu_Latn", "rus_Cyrl",
            "--select", "retrieval", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    sweep = pd.read_csv(out / "sweep.csv")
    assert set(sweep.metric) == {"retrieval_acc_layer2"} and set(sweep.language) == {"deu_Latn", "rus_Cyrl", "mean"}
    assert sweep.value.between(0, 1).all()


def test_merged_adapter_carries_the_alignment_space(adapters, tmp_path) -> None:
    """The alignment adapter's space statistics travel with the merged adapter (they describe its alignment update);
    an alignment adapter without them gives a merged adapter without them."""
    from midalign.training.spaces import SPACE_FILE, SpaceStats

    _, task, align = adapters
    assert not (merge_adapters(task, align, tmp_path / "plain") / SPACE_FILE).exists()
    with_space = tmp_path / "align-with-space"
    shutil.copytree(align, with_space)
    stats = SpaceStats.estimate({"eng_Latn": torch.randn(4, 8), "deu_Latn": torch.randn(4, 8)}, layer=2)
    stats.save(with_space)
    merged = merge_adapters(task, with_space, tmp_path / "merged")
    torch.testing.assert_close(SpaceStats.load(merged).mean, stats.mean, rtol=0, atol=0)


def test_the_base_model_is_loaded_at_the_adapters_revision(adapters, flores_dir, tmp_path, caplog) -> None:
    """Regression: the dev scorer and --fold loaded the base model without --revision (always its main branch).

    The revision comes from --revision when --model names the base, else from the adapters. A local base folder
    has no revisions, so load_model says it ignores the one it is given: that line is the evidence it arrived."""
    base, task, align = adapters
    task, align = (_copy(path, tmp_path / path.name, revision="v1.0") for path in (task, align))
    common = ["--task-adapter", str(task), "--align-adapter", str(align), "--sweep", "0,1", "1", "--layer", "2",
              "--align-data", str(flores_dir), "--align-langs", "deu_Latn", "--select", "retrieval", "--fold",
              "--device", "cpu"]  # fmt: skip
    ignored = "revision='%s' ignored for the local folder"
    with caplog.at_level(logging.WARNING, logger="midalign"):
        assert main([*common, "--out", str(tmp_path / "from-adapters")]) == 0  # base and revision: the adapters'
    assert caplog.text.count(ignored % "v1.0") == 2  # the dev scorer's model and the folded one
    saved = json.loads((tmp_path / "from-adapters" / "config.json").read_text())
    assert (saved["model"], saved["revision"]) == (str(base), "v1.0")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="midalign"):
        argv = [*common, "--model", str(base), "--revision", "abc123", "--out", str(tmp_path / "given")]
        assert main(argv) == 0
    assert caplog.text.count(ignored % "abc123") == 2


def test_sweep_scores_the_dev_pairs_that_chose_the_alignment_adapter(tiny_model_dir, pairs_dir, tmp_path) -> None:
    """The sweep's retrieval runs on the alignment run's own dev pairs: its --dev-pairs (here 3 of the 8 dev pairs
    per language), one definition with early stopping (`midalign.corpora.pairs.dev_pairs`), not a constant 100."""
    from midalign.train import main as train_main

    align = tmp_path / "align"
    argv = ["--model", str(tiny_model_dir), "--align-data", str(pairs_dir), "--align-langs", "deu_Latn", "rus_Cyrl",
            "--layer", "2", "--max-steps", "1", "--dev-pairs", "3", "--no-eval", "--device", "cpu",
            "--out", str(align)]  # fmt: skip
    assert train_main(argv) == 0
    task = make_adapter(tiny_model_dir, tmp_path / "task", 1, task_lora())
    out = tmp_path / "sweep"
    assert main(["--task-adapter", str(task), "--align-adapter", str(align / "adapter"), "--sweep", "0,1", "1",
                 "--select", "retrieval", "--device", "cpu", "--out", str(out)]) == 0  # fmt: skip
    resolved = json.loads((out / "config.json").read_text())["resolved"]
    assert resolved["dev_pairs"] == {"deu_Latn": 3, "rus_Cyrl": 3}
