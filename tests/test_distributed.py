"""Multi-process runs (issue #10): 2 CPU processes (torchrun, gloo) on a tiny model against single-process runs.

Each launch starts `python -m torch.distributed.run --standalone --nproc_per_node 2 -m <command>` (what
`accelerate launch --multi_gpu` runs on GPUs; on CPUs accelerate's launcher starts one process unless given
mpirun). `--standalone` takes a free rendezvous port, so parallel test runs never collide.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from midalign.analysis.pipeline import _process_device
from midalign.analyze import main as analyze_main
from midalign.errors import MidalignError
from midalign.models.loading import load_model
from midalign.models.shard import Unit, split_units
from midalign.options import AnalyzeConfig
from midalign.train import main as train_main
from midalign.training.data import CycledBatchSampler
from tests.helpers import cache_entries

LAUNCH_TIMEOUT = 240  # seconds; a launch takes ~15 s on one free core
RESULTS = ("pairs.csv", "pairs.parquet", "per_language.csv", "layers.csv", "languages.csv", "selection.json")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def launch(module: str, *args: str) -> subprocess.CompletedProcess:
    """Run `module` as 2 processes on the CPU and return the finished launch (which must succeed)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*command, "-m", module, *args], env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-6000:]
    return result


# ---- analysis ----------------------------------------------------------------------------------------------------
def test_split_units_is_contiguous_balanced_and_complete() -> None:
    units = [Unit(lang, (i,), tokens) for lang in "abcde" for i, tokens in enumerate((40, 30, 20, 10))]
    shares = split_units(units, 3)
    assert [unit for share in shares for unit in share] == units  # contiguous, in order, each unit once
    loads = [sum(unit.tokens for unit in share) for share in shares]
    assert max(loads) - min(loads) <= 40  # within one unit of each other
    assert [unit for share in split_units(units[:2], 4) for unit in share] == units[:2]  # more processes than work


@pytest.mark.slow  # launches two processes (8-18 s each)
def test_two_process_analysis_matches_one_process(tiny_model_dir: Path, flores_dir: Path, tmp_path: Path) -> None:
    common = ["--model", str(tiny_model_dir), "--dataset", str(flores_dir), "--langs", "en", "de", "fr", "ru"]
    # fp32 given: the launched processes see the real CPU (auto may pick bf16), this process the tests' CPU.
    common += ["--batch-size", "5", "--no-figures", "--dtype", "fp32"]
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert analyze_main([*common, "--out", str(single), "--cache-dir", str(single / "cache")]) == 0
    common += ["--cache-dir", str(multi / "cache")]  # a cache of its own, so the two processes compute
    result = launch("midalign.analyze", *common, "--out", str(multi))
    # 4 languages over 2 processes by tokens: one language is cut between them and assembled from two parts.
    assert "assembled from the parts of processes [0, 1]" in result.stderr
    for name in RESULTS:
        assert (multi / name).read_bytes() == (single / name).read_bytes(), name
    single_entries, multi_entries = cache_entries(single / "cache"), cache_entries(multi / "cache")
    assert sorted(single_entries) == sorted(multi_entries) and len(single_entries) == 4
    for name, path in single_entries.items():
        np.testing.assert_array_equal(np.load(multi_entries[name]), np.load(path))
    assert not (multi / "cache" / ".parts").exists(), "parts are removed once assembled"
    resolved = json.loads((multi / "config.json").read_text())["resolved"]
    assert resolved["num_processes"] == 2
    # A rerun finds every entry (each process verifies its share) and recomputes nothing.
    rerun = launch("midalign.analyze", *common, "--out", str(multi))
    assert "4 languages cached, 0 to compute" in rerun.stderr
    assert (multi / "pairs.csv").read_bytes() == (single / "pairs.csv").read_bytes()


@pytest.mark.slow  # launches two processes (8-18 s each)
def test_two_process_compiled_analysis_matches_one_process_eager(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path
) -> None:
    """--compile reaches the processes of a launch, and the states they compute together match eager's."""
    common = ["--model", str(tiny_model_dir), "--dataset", str(flores_dir), "--langs", "en", "de", "fr", "ru"]
    common += ["--batch-size", "5", "--no-figures", "--metrics", "retrieval_acc", "--dtype", "fp32"]
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert analyze_main([*common, "--out", str(single), "--cache-dir", str(single / "cache")]) == 0
    result = launch("midalign.analyze", *common, "--compile", "--out", str(multi), "--cache-dir", str(multi / "cache"))
    assert "compiling the forward of" in result.stderr  # logged by the main process (the others log warnings only)
    single_entries, multi_entries = cache_entries(single / "cache"), cache_entries(multi / "cache")
    assert sorted(single_entries) == sorted(multi_entries) and len(single_entries) == 4
    for name, path in single_entries.items():
        eager = np.load(path)
        np.testing.assert_allclose(np.load(multi_entries[name]), eager, rtol=1e-4, atol=1e-5 * np.abs(eager).max())
    assert (multi / "pairs.csv").read_bytes() == (single / "pairs.csv").read_bytes()


def test_process_device_and_device_map_rules() -> None:
    one = SimpleNamespace(num_processes=1, device=torch.device("cpu"))
    two = SimpleNamespace(num_processes=2, device=torch.device("cuda", 1))
    assert _process_device(AnalyzeConfig(device="cuda:0"), one) == "cuda:0"
    assert _process_device(AnalyzeConfig(), two) == "cuda:1"  # each process its own GPU
    with pytest.raises(MidalignError, match="--device-map spreads one model"):
        _process_device(AnalyzeConfig(device_map="auto"), two)
    with pytest.raises(MidalignError, match="each process takes its own device"):
        _process_device(AnalyzeConfig(device="cpu"), two)
    with pytest.raises(MidalignError, match="unknown --device-map 'everywhere'"):
        AnalyzeConfig(device_map="everywhere")


def test_device_map_auto_passes_through(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoModelForCausalLM

    real, seen = AutoModelForCausalLM.from_pretrained, []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("device_map"))
        return real(*args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", spy)
    load_model(tiny_model_dir, dtype="fp32", device="cpu")
    load_model(tiny_model_dir, dtype="fp32", device_map="auto")
    assert seen == [None, "auto"]  # CPU default unchanged; the map goes to from_pretrained (accelerate places it)
    with pytest.raises(MidalignError, match="unknown device_map"):
        load_model(tiny_model_dir, device_map="everywhere")
    common = ["--model", str(tiny_model_dir), "--dataset", str(flores_dir), "--langs", "en", "de", "--no-figures"]
    assert analyze_main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert analyze_main([*common, "--device-map", "auto", "--out", str(tmp_path / "mapped")]) == 0
    assert seen[-2:] == [None, "auto"]
    assert json.loads((tmp_path / "mapped" / "config.json").read_text())["device_map"] == "auto"
    # Here accelerate puts everything on the one device (the CPU), so the numbers are the plain run's.
    assert (tmp_path / "mapped" / "pairs.csv").read_bytes() == (tmp_path / "plain" / "pairs.csv").read_bytes()
    # --compile on a mapped model: the blocks compile inside accelerate's placement, the retrievals stay the same.
    mapped_compiled = ["--device-map", "auto", "--compile", "--metrics", "retrieval_acc", "--recompute"]
    assert analyze_main([*common, *mapped_compiled, "--out", str(tmp_path / "mapped_compiled")]) == 0
    plain = pd.read_csv(tmp_path / "plain" / "pairs.csv").query("metric == 'retrieval_acc'").reset_index(drop=True)
    compiled = pd.read_csv(tmp_path / "mapped_compiled" / "pairs.csv")
    pd.testing.assert_frame_equal(compiled, plain)


# ---- training ----------------------------------------------------------------------------------------------------
def test_sampler_shards_deal_out_the_single_process_sequence() -> None:
    whole = CycledBatchSampler(n_items=11, batch_size=3, batches_per_epoch=6, seed=2, stream=1)
    shards = [CycledBatchSampler(11, 3, 3, seed=2, stream=1, shard=r, num_shards=2) for r in range(2)]
    for epoch in range(2):
        for sampler in (whole, *shards):
            sampler.set_epoch(epoch)
        dealt = [batch for pair in zip(*shards, strict=True) for batch in pair]
        assert dealt == list(whole)


def _train_args(model_dir: Path, flores_dir: Path, out: Path, *extra: str) -> list[str]:
    # Dropout off: each process draws its own masks (seed + rank), which one process cannot reproduce. fp32 given:
    # with auto, the `--layer auto` analysis of launched processes would follow the real CPU (bf16 where native),
    # while this process's tests see a CPU without bf16 units.
    return [
        "--model", str(model_dir), "--align-data", str(flores_dir), "--align-langs", "deu_Latn", "rus_Cyrl",
        "--align-max-length", "48", "--task-max-length", "48", "--lora-dropout", "0", "--pairs-per-language", "16",
        "--epochs", "1", "--dtype", "fp32", "--out", str(out),
        *extra,
    ]  # fmt: skip


def _adapter(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "adapter" / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def task_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Every completion the same number of tokens: the task loss is a mean over a micro-batch's completion tokens,
    # and only then is the mean of two 4-example means the mean over all 8 examples' tokens (the gathered test).
    path = tmp_path_factory.mktemp("task") / "task.jsonl"
    rows = [{"prompt": f"Platform {i}:", "completion": " train at 1.", "language": "deu"} for i in range(8)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.slow  # launches two processes (8-18 s each)
@pytest.mark.parametrize(
    ("mode", "accum", "space"), [("weighted", 1, "raw"), ("alternate", 2, "raw"), ("weighted", 1, "standardized")]
)
def test_two_processes_per_process_negatives_equal_one_process_with_twice_the_accumulation(
    mode: str, accum: int, space: str, tiny_model_dir: Path, flores_dir: Path, task_file: Path, tmp_path: Path, caplog
) -> None:
    """Per-process negatives (the default): 2 processes x batch 4 x grad_accum a = 1 process x batch 4 x
    grad_accum 2a, micro-batch for micro-batch (process r takes every 2nd batch of the one sequence). With a = 1
    the adapters are bitwise equal (g0/2 + g1/2 == (g0 + g1)/2 exactly). With a = 2 one process sums its 4
    micro-step gradients as ((g0 + g1) + g2) + g3, two processes as (g0 + g1) + (g2 + g3): a few ulps apart
    (6e-8 on weights up to 0.18 after 4 steps), hence atol 1e-6 there. In alternate mode a step needs as many
    task as alignment micro-steps on each process (a even) for both to group the same batches. Task and alignment
    gradients alike are synchronised only by the trainer's one all-reduce per step (the model is not DDP-wrapped).
    A space with statistics: the main process estimates them and every process reads its file, so both runs
    train with the same ones (compared to 1e-6: the processes' forwards may run with other thread counts)."""
    common = ["--task-data", str(task_file), "--mode", mode, "--batch-size", "4", "--layer", "2"]
    common += ["--align-space", space]
    single, multi = tmp_path / "single", tmp_path / "multi"
    assert train_main(_train_args(tiny_model_dir, flores_dir, single, *common, "--grad-accum", str(2 * accum))) == 0
    launch("midalign.train", *_train_args(tiny_model_dir, flores_dir, multi, *common, "--grad-accum", str(accum)))
    exact = accum == 1 and space == "raw"
    if exact:
        assert (multi / "steps.csv").read_text() == (single / "steps.csv").read_text()  # losses of both processes
    expected, got = _adapter(single), _adapter(multi)
    assert got.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=0 if exact else 1e-6, msg=name)
    stats = [load_file(out / "alignment_space.safetensors") for out in (single, multi)]
    for name, tensor in stats[0].items():
        torch.testing.assert_close(stats[1][name], tensor, rtol=1e-5, atol=1e-5, msg=name)
    resolved = json.loads((multi / "config.json").read_text())["resolved"]
    assert resolved["num_processes"] == 2 and resolved["effective_batch"] == 8 * accum
    assert resolved["negatives"] == "per process (in-batch)"
    assert (multi / "eval_summary.csv").is_file() and (multi / "checkpoints").is_dir()
    # A checkpoint of 2 processes resumes only with 2 (each process's RNG state and data shard are its own).
    with caplog.at_level(logging.ERROR):
        args = _train_args(tiny_model_dir, flores_dir, multi, *common, "--grad-accum", str(accum), "--resume")
        assert train_main(args) == 2
    assert "made by 2 process(es), this run has 1" in caplog.text


@pytest.mark.slow  # launches two processes (8-18 s each)
def test_two_processes_gathered_negatives_equal_one_process_with_the_global_batch(
    tiny_model_dir: Path, flores_dir: Path, task_file: Path, tmp_path: Path
) -> None:
    """--gather-negatives: 2 processes x 4 pairs each score every English sentence against all 8 pairs, as one
    process with batch 8. Weighted with a task loss, so that the alignment gradient's scale relative to the task's
    matters (AdamW alone would not notice a uniform scale). Not bitwise: one process embeds the 8 rows in one
    forward, each of the 2 processes 4 rows cut to their own longest one, so padding widths and matmul shapes
    differ and fp32 rounds differently (~1e-7 after 4 steps); atol 1e-6 is far below the gap to per-process
    negatives checked last. --layer auto runs the analysis first, itself over both processes."""
    common = ["--no-eval", "--task-data", str(task_file), "--mode", "weighted"]
    single, multi, local = tmp_path / "single", tmp_path / "multi", tmp_path / "local"
    assert train_main(_train_args(tiny_model_dir, flores_dir, single, *common, "--batch-size", "8")) == 0
    launch(
        "midalign.train",
        *_train_args(tiny_model_dir, flores_dir, multi, *common, "--batch-size", "4", "--gather-negatives"),
    )
    assert json.loads((multi / "analysis" / "selection.json").read_text()) == json.loads(
        (single / "analysis" / "selection.json").read_text()
    )
    resolved = json.loads((multi / "config.json").read_text())["resolved"]
    assert resolved["negatives"] == "gathered from every process" and resolved["effective_batch"] == 8
    expected, got = _adapter(single), _adapter(multi)
    for name, tensor in expected.items():
        torch.testing.assert_close(got[name], tensor, rtol=0, atol=1e-6, msg=name)
    # Per-process negatives over the same pairs (4 + 4, each its own softmax) train a measurably different adapter.
    args = _train_args(tiny_model_dir, flores_dir, local, *common, "--batch-size", "4", "--grad-accum", "2")
    assert train_main(args) == 0
    gap = max(float((_adapter(local)[name] - tensor).abs().max()) for name, tensor in expected.items())
    assert gap > 1e-4
