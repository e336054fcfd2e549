# The module docstring's Markdown table cannot wrap its rows; code lines are held to 120 by ruff format.
# ruff: noqa: E501
"""Reliability (issue #9): interrupted runs, damaged caches and bad inputs lose nothing and fail clearly.

Each fault below was tried on tiny models (tests/reliability_helpers.py, tests/conftest.py); the two kill tests SIGKILL
real `python -m` subprocesses at a point they poll for, and retry on a larger input, or skip saying so, rather than
pass vacuously if a run finishes first. "was:" marks a gap these tests exposed, with the commit that closed it.

| Fault tried | What happens now | Lost | Test |
| --- | --- | --- | --- |
| `kill -9` of `python -m midalign.analyze` once ≥1 language is cached (real subprocess) | rerun reuses every finished language (`.npy` mtimes unchanged), recomputes the rest; `pairs.parquet` equal to an uninterrupted run | nothing (the language in progress is recomputed) | `test_kill_9_mid_analysis_resumes_with_every_finished_language` |
| kill inside `StateCache.save`: stray `.<lang>.npy.*.tmp` files, an array renamed in without its manifest | temp files never read, and removed by the next run once a minute old and unlocked; "cache X: array without manifest (interrupted write); recomputing" | nothing | same test (planted); `test_cache.py::test_array_without_manifest_is_a_miss`, `test_cache.py::test_leftover_temporary_files_are_removed_but_live_writes_kept` |
| analysis killed after writing its `config.json` into a folder holding an earlier finished analysis | was: new config beside old `selection.json` and tables, read by `load_run` and reused by `midalign-train --layer auto`; now the old results are removed first (fix c5850b5) | nothing (they were being replaced) | `test_interrupted_rerun_never_pairs_its_config_with_older_results` |
| `kill -9` of `python -m midalign.train` after its first checkpoint, then `--resume` | continues from the newest complete checkpoint; `steps.csv` and adapter weights bit-identical to an uninterrupted run | nothing (steps after the checkpoint are redone) | `test_kill_9_mid_training_resumes_to_the_same_adapter` |
| crash inside training; non-finite loss | resume is exact; NaN stops with the step, the last good checkpoint and what to try (exit 2) | nothing | `test_train.py::test_resume_ends_where_an_uninterrupted_run_ends`, `::test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint` |
| cached array truncated / same shape but other numbers / half a manifest / manifest edited to other settings | one warning per language with the reason ("unreadable array", "does not match its manifest (damaged)", "unreadable manifest", "other settings (pooling: cached 'last' != wanted 'mean')"); recomputed; results equal the undamaged run; the intact entry reused | nothing | `test_damaged_cache_entries_are_named_recomputed_and_never_mixed` |
| two models and two poolings under one `--cache-dir` (or the shared default) | each settings folder (model, dtype, pooling, max length, corpus, split, sentence count, library versions) beside the others; a rerun of each extracts nothing; results equal runs with caches of their own | nothing | `test_two_models_and_two_poolings_share_one_cache_dir_without_recomputing`; `test_analyze_cli.py::test_second_analysis_with_another_out_extracts_nothing` |
| disk full / read-only / vanished cache | full or read-only while saving: one line naming the language and the cache, no partial entry, earlier entries kept; read-only before work: one line before extracting; vanished: recreated | nothing | `test_cache.py::test_failed_write_is_one_line_and_leaves_no_partial_entry`, `test_analyze_cli.py::test_read_only_cache_fails_before_extracting`, `test_cache.py::test_vanished_root_is_recreated` |
| a concurrent run sharing the cache replaces an array right after ours | was: our manifest hashed their array and this run used it; now the manifest hashes our bytes, the run keeps its own states, the next run recomputes (fix 2f815eb) | nothing | `test_entry_replaced_by_a_concurrent_run_is_never_used` |
| a second local corpus folder of the same name; a corpus file edited in place | was: `datasets` silently served the sentences cached from the first; now read through a throwaway cache (fix 3f2f4de) | nothing | `test_corpus_folders_of_one_name_and_edited_files_are_read_afresh` |
| languages with different sentence counts / the same count but other ids | exit 2: "fra_Latn is not parallel to eng_Latn: 5 vs 6 sentences; ids only in fra_Latn: []; only in eng_Latn: ['6']" | nothing | `test_bad_corpus_fails_clearly[fewer]`, `[other-ids]` |
| an empty or whitespace-only (U+3000) sentence | exit 2: "fra_Latn has 1 empty sentence(s) in '…'/devtest, ids ['4']" | nothing | `test_bad_corpus_fails_clearly[empty]`, `[whitespace]` |
| a truncated corpus parquet | was: traceback or "has no split"; now exit 2: "cannot read fra_Latn/devtest of '…' (…/fra_Latn.parquet): Parquet magic bytes not found…" (fix f36a68d) | nothing | `test_bad_corpus_fails_clearly[truncated-file]` |
| unknown language code | exit 2: "unknown language 'deu_Latm'; closest valid codes: deu_Latn (…)" | nothing | `test_bad_train_input_fails_clearly[unknown-language]`; `test_analyze_cli.py::test_bad_input_fails_clearly` |
| sentences longer than the context; `--max-length` (or train's `--task-/--align-/--eval-max-length`) above `max_position_embeddings` | was: GPT-2 IndexError traceback, rotary models silently extrapolated; now clamped to the context with a warning naming the option, then analysis sentences and task examples truncated with a warning, alignment pairs left out and counted (all left out: exit 2, one line); cache key and config.json record the clamped length (fix e356596) | the cut tokens (warned) | `test_sentences_longer_than_the_context_are_clamped_and_truncated` |
| a tokenizer without a pad token | works: load_model pads with eos (logged); numbers equal the same weights with a pad token | nothing | `test_tokenizer_without_pad_token_still_works`; `test_models.py::test_load_local_folder` |
| `midalign-train --layer 99` / `0` / `middle` | exit 2: "--layer 99 out of range: this model has 4 blocks, so 1..4" / "--layer must be 'auto' or an integer" | nothing | `test_bad_train_input_fails_clearly[layer-99]`, `[layer-0]`, `[layer-not-a-number]` |
| a `--task-data` JSONL line without `completion`; a task file that does not exist | exit 2: "bad.jsonl, line 2: missing field 'completion' (fields: […])"; was "Couldn't reach 'missing.jsonl' on the Hub", now "task data file '…' does not exist" (fix a0cd197) | nothing | `test_bad_train_input_fails_clearly[task-without-completion]`, `[task-file-missing]` |
| `--out` an existing file / under a file (root ignores read-only modes) | exit 2 before any work: "cannot write to output directory '…': File exists" / "Not a directory" | nothing | `test_bad_analyze_input_fails_clearly[out-is-a-file]`, `[out-under-a-file]`; `test_bad_train_input_fails_clearly[out-under-a-file]` |
| `--cache-dir` under a file | was: NotADirectoryError traceback after loading the model; now exit 2 first (fix ebfeefa), also through the real console | nothing | `test_bad_analyze_input_fails_clearly[cache-under-a-file]`, `test_cli_exit_status_2_and_one_line_without_traceback` |
| a nonexistent model path | exit 2: "model folder '…' does not exist (resolved to …)" | nothing | `test_bad_train_input_fails_clearly[model-missing]`; `test_analyze_cli.py::test_bad_input_fails_clearly` |
| a model folder without weights, or with an unusable config/tokenizer | was: OSError/ValueError traceback; now exit 2: "cannot load the model folder …: OSError: Error no file named model.safetensors…" (fix 7c8f055) | nothing | `test_bad_analyze_input_fails_clearly[model-without-weights]`, `[model-config-only]` |
| a model whose hidden states are not finite (inf weights in block 2) | exit 2: "eng_Latn: non-finite hidden states at layer 2; if the model runs in fp16, try --dtype bf16 or fp32"; nothing cached | nothing | `test_bad_analyze_input_fails_clearly[non-finite-states]` |
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from midalign.analysis import pipeline as analyze_module
from midalign.analysis.runs import load_run
from midalign.analyze import main as analyze_main
from midalign.corpora.parallel import load_parallel
from midalign.errors import MidalignError
from midalign.options import PAIR_METRICS, AnalyzeConfig
from midalign.train import main as train_main
from midalign.training.pipeline import _finished_analysis
from tests.helpers import FLORES_LIKE, manifests, settings_folder_of, write_flores_layout
from tests.reliability_helpers import (
    decoy_array,
    kill_when,
    mtimes,
    parallel_sentences,
    save_model_folder,
    start_cli,
    subprocess_env,
    write_corpus,
)

CODES = ["eng_Latn", "deu_Latn", "fra_Latn", "rus_Cyrl", "ell_Grek"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def analyze_args(model: Path, corpus: Path, out: Path, langs: list[str], *extra: str) -> list[str]:
    return ["--model", str(model), "--dataset", str(corpus), "--langs", *langs, "--out", str(out), *extra]


def analyze(model: Path, corpus: Path, out: Path, langs: list[str] = CODES, *extra: str) -> int:
    return analyze_main(analyze_args(model, corpus, out, langs, "--no-figures", *extra))


def pairs_of(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "pairs.parquet")


def assert_same_results(out: Path, reference: Path) -> None:
    pd.testing.assert_frame_equal(pairs_of(out), pairs_of(reference), check_exact=False, rtol=0, atol=1e-6)


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the run logged at ERROR: for a CLI, the one line run_main prints before exiting with status 2."""
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


# ---- 1. kill -9 of midalign-analyze ------------------------------------------------------------------------------


@pytest.mark.slow  # real subprocesses killed mid-run (8-9 s)
def test_kill_9_mid_analysis_resumes_with_every_finished_language(
    tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real `python -m midalign.analyze`, SIGKILLed once the first language's entry is complete."""
    # Batch size 1 makes each language take ~0.3 s (160 sentences), so the kill lands long before the last one;
    # if it ever does not, the run is repeated on a corpus four times larger instead of passing vacuously.
    for n_sentences in (160, 640):
        corpus = write_corpus(tmp_path / f"corpus-{n_sentences}", parallel_sentences(n_sentences, n_languages=6))
        langs = sorted(path.stem for path in (corpus / "devtest").glob("*.parquet"))
        killed = tmp_path / f"killed-{n_sentences}"
        root = killed / "cache"
        # fp32 given: the subprocess sees the real CPU, the in-process rerun the tests' CPU without bf16 units.
        args = analyze_args(tiny_model_dir, corpus, killed, langs, "--batch-size", "1", "--no-figures", "--cache-dir",
                            str(root), "--dtype", "fp32")  # fmt: skip
        log = tmp_path / f"killed-{n_sentences}.log"
        landed = kill_when(start_cli("midalign.analyze", args, log), lambda root=root: bool(manifests(root)))
        finished = sorted(path.stem for path in manifests(root))
        if landed and len(finished) < len(langs):
            break
    else:
        pytest.skip("the analysis finished before SIGKILL could land, even on the larger corpus; nothing was tested")
    assert not (killed / "pairs.parquet").exists()
    cache = manifests(root)[0].parent  # the settings folder: every language of the run
    unfinished = [lang for lang in langs if lang not in finished]
    kept = mtimes(cache, "*.npy")
    kept = {name: kept[name] for name in (f"{lang}.npy" for lang in finished)}
    # What a kill inside StateCache.save leaves, planted so the rerun meets it for sure: temp files of an array
    # (of a finished and of an unfinished language) and an array renamed into place whose manifest never came.
    like = np.load(cache / f"{finished[0]}.npy")
    for lang in (finished[0], unfinished[0]):
        with (cache / f".{lang}.npy.killed.tmp").open("wb") as handle:
            np.save(handle, decoy_array(like))
    np.save(cache / f"{unfinished[-1]}.npy", decoy_array(like))

    reference = tmp_path / "uninterrupted"
    assert analyze_main([*args, "--out", str(reference), "--cache-dir", str(reference / "cache")]) == 0  # last wins
    with caplog.at_level(logging.INFO, logger="midalign"):
        assert analyze_main(args) == 0
    assert f"states: {len(finished)} languages cached, {len(unfinished)} to compute" in caplog.text
    assert f"cache {unfinished[-1]}: array without manifest (interrupted write); recomputing" in caplog.text
    after = mtimes(cache, "*.npy")
    assert set(after) == {f"{lang}.npy" for lang in langs}, "temp files must never become entries"
    assert {name: after[name] for name in kept} == kept, "finished languages are reused, not recomputed"
    assert all(after[f"{lang}.npy"] > max(kept.values()) for lang in unfinished)
    assert_same_results(killed, reference)


# ---- 2. damaged and mismatched cache entries, end to end ---------------------------------------------------------


def test_damaged_cache_entries_are_named_recomputed_and_never_mixed(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out, reference = tmp_path / "run", tmp_path / "reference"
    assert analyze(tiny_model_dir, flores_dir, out) == 0
    shutil.copytree(out, reference)
    cache = settings_folder_of(out)
    before = mtimes(cache, "*.npy")
    array = cache / "deu_Latn.npy"
    array.write_bytes(array.read_bytes()[:-64])  # truncated array (disk full, killed copy)
    np.save(cache / "fra_Latn.npy", decoy_array(np.load(cache / "fra_Latn.npy")))  # same shape, other numbers
    manifest = cache / "rus_Cyrl.json"
    manifest.write_text(manifest.read_text()[:40])  # half a manifest
    edited = json.loads((cache / "eng_Latn.json").read_text())
    edited["pooling"] = "last"  # a manifest edited to claim other settings
    (cache / "eng_Latn.json").write_text(json.dumps(edited))
    with caplog.at_level(logging.WARNING, logger="midalign"):
        assert analyze(tiny_model_dir, flores_dir, out) == 0
    for expected in [
        "cache deu_Latn: unreadable array",
        "cache fra_Latn: array does not match its manifest (damaged); recomputing",
        "cache rus_Cyrl: unreadable manifest",
        "cache eng_Latn: entry is for other settings (pooling: cached 'last' != wanted 'mean')",
    ]:
        assert expected in caplog.text
    after = mtimes(cache, "*.npy")
    assert [name for name in before if after[name] == before[name]] == ["ell_Grek.npy"], "only the intact one is kept"
    assert_same_results(out, reference)


def test_two_models_and_two_poolings_share_one_cache_dir_without_recomputing(
    tiny_model_dir: Path, tiny_gemma_dir: Path, flores_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Entries of other models and poolings live beside each other: none overwrites another, a rerun of any of
    them extracts nothing, and results equal runs with caches of their own."""
    shared = str(tmp_path / "shared-cache")
    langs = CODES[:3]
    runs = [(model, pooling) for model in (tiny_model_dir, tiny_gemma_dir) for pooling in ("mean", "last")]
    for number, (model, pooling) in enumerate(runs):
        extra = ("--pooling", pooling, "--cache-dir", shared)
        assert analyze(model, flores_dir, tmp_path / f"run{number}", langs, *extra) == 0
        assert analyze(model, flores_dir, tmp_path / f"alone{number}", langs, *extra[:2]) == 0
    assert len(list(Path(shared).glob("*/*/settings.json"))) == 4 and len(manifests(Path(shared))) == 12
    before = mtimes(Path(shared), "*/*/*.npy")
    for number, (model, pooling) in enumerate(runs):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="midalign"):
            extra = ("--pooling", pooling, "--cache-dir", shared)
            assert analyze(model, flores_dir, tmp_path / f"again{number}", langs, *extra) == 0
        assert "states: 3 languages cached" in caplog.text and "0 to compute" in caplog.text
        assert_same_results(tmp_path / f"again{number}", tmp_path / f"alone{number}")
        assert_same_results(tmp_path / f"run{number}", tmp_path / f"alone{number}")
    assert mtimes(Path(shared), "*/*/*.npy") == before


def test_entry_replaced_by_a_concurrent_run_is_never_used(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """Two runs sharing --cache-dir (say mean and last pooling) write the same language: theirs lands right after ours.

    Neither our results nor our manifest may then vouch for their array."""
    langs = CODES[:3]
    assert analyze(tiny_model_dir, flores_dir, tmp_path / "reference", langs) == 0
    out = tmp_path / "run"
    cache = out / "cache"
    real_replace = os.replace

    def replace_then_other_run_writes(source, target) -> None:
        real_replace(source, target)
        target = Path(target)
        if cache in target.parents and target.suffix == ".npy":
            np.save(target, decoy_array(np.load(target)))

    monkeypatch.setattr(os, "replace", replace_then_other_run_writes)
    assert analyze(tiny_model_dir, flores_dir, out, langs, "--cache-dir", str(cache)) == 0
    monkeypatch.setattr(os, "replace", real_replace)
    assert_same_results(out, tmp_path / "reference")
    with caplog.at_level(logging.WARNING, logger="midalign"):  # the next run finds their arrays: not ours
        assert analyze(tiny_model_dir, flores_dir, out, langs, "--cache-dir", str(cache)) == 0
    assert "cache eng_Latn: array does not match its manifest" in caplog.text
    assert_same_results(out, tmp_path / "reference")


def test_interrupted_rerun_never_pairs_its_config_with_older_results(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "analysis"
    assert analyze(tiny_model_dir, flores_dir, out, CODES[:3]) == 0

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # what the folder looks like when a kill lands during extraction

    monkeypatch.setattr(analyze_module, "extract_corpus", killed)
    assert analyze(tiny_model_dir, flores_dir, out, ["eng_Latn", "ell_Grek"]) == 2  # other settings: refused
    with pytest.raises(KeyboardInterrupt):
        analyze(tiny_model_dir, flores_dir, out, ["eng_Latn", "ell_Grek"], "--overwrite")
    assert json.loads((out / "config.json").read_text())["resolved"]["languages"] == ["eng_Latn", "ell_Grek"]
    # The first run's selection must not pass as this run's: midalign-train --layer auto reuses a folder whose
    # config.json matches and which has a selection.json, and load_run would read the old tables.
    wanted = AnalyzeConfig(model=str(tiny_model_dir), dataset=str(flores_dir), langs=["eng_Latn", "ell_Grek"])
    assert not _finished_analysis(out, wanted)
    with pytest.raises(MidalignError, match=r"selection\.json"):
        load_run(out)


def test_corpus_folders_of_one_name_and_edited_files_are_read_afresh(tmp_path: Path) -> None:
    """`datasets` caches a local folder under its name and README only: this must never serve stale sentences."""
    sentences = {lang: list(FLORES_LIKE[lang][:6]) for lang in ("eng_Latn", "fra_Latn")}
    first = write_flores_layout(tmp_path / "a" / "corpus", sentences, {"devtest": range(6)})
    assert load_parallel(str(first), ["en", "fr"]).sentences["fra_Latn"] == sentences["fra_Latn"]
    other = {lang: texts[::-1] for lang, texts in sentences.items()}  # another corpus in a folder of the same name
    second = write_flores_layout(tmp_path / "b" / "corpus", other, {"devtest": range(6)})
    assert load_parallel(str(second), ["en", "fr"]).sentences["fra_Latn"] == other["fra_Latn"]
    french = first / "devtest" / "fra_Latn.parquet"
    pd.read_parquet(french).assign(text=lambda frame: frame.text.str.upper()).to_parquet(french, index=False)
    assert load_parallel(str(first), ["en", "fr"]).sentences["fra_Latn"][0] == sentences["fra_Latn"][0].upper()


# ---- 3. bad inputs: a clear error and exit status 2 ----------------------------------------------------------------


def _small_corpus(root: Path, damage: str) -> Path:
    """English and French, six rows, with one defect in the French file."""
    sentences = {lang: list(FLORES_LIKE[lang][:6]) for lang in ("eng_Latn", "fra_Latn")}
    if damage == "empty":
        sentences["fra_Latn"][3] = ""
    elif damage == "whitespace":
        sentences["fra_Latn"][3] = "\u3000\t "  # an ideographic space is whitespace too
    write_flores_layout(root, sentences, {"devtest": range(6)})
    french = root / "devtest" / "fra_Latn.parquet"
    frame = pd.read_parquet(french)
    if damage == "fewer":
        frame.iloc[:5].to_parquet(french, index=False)
    elif damage == "other-ids":
        frame.assign(id=frame["id"].replace({6: 60})).to_parquet(french, index=False)
    elif damage == "truncated-file":
        french.write_bytes(french.read_bytes()[:200])
    return root


CORPUS_FAULTS = {
    "fewer": r"fra_Latn is not parallel to eng_Latn: 5 vs 6 sentences; ids only in fra_Latn: ..; only in eng_Latn: .'6",
    "other-ids": r"fra_Latn is not parallel to eng_Latn: 6 vs 6 sentences; ids only in fra_Latn: \['60'\]",
    "empty": r"fra_Latn has 1 empty sentence\(s\) .* ids \['4'\]",
    "whitespace": r"fra_Latn has 1 empty sentence\(s\) .* ids \['4'\]",
    "truncated-file": r"cannot read fra_Latn/devtest .*fra_Latn\.parquet",
}


@pytest.mark.parametrize("damage", list(CORPUS_FAULTS))
def test_bad_corpus_fails_clearly(damage: str, tiny_model_dir: Path, tmp_path: Path, caplog) -> None:
    corpus = _small_corpus(tmp_path / "corpus", damage)
    assert analyze(tiny_model_dir, corpus, tmp_path / "run", ["en", "fr"]) == 2
    assert any(re.search(CORPUS_FAULTS[damage], line) for line in error_lines(caplog)), error_lines(caplog)


def _analyze_fault(fault: str, tmp_path: Path, tiny_model_dir: Path) -> tuple[Path, list[str]]:
    """(model folder, extra arguments) that set up one bad input for midalign-analyze."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    model, extra = tiny_model_dir, []
    if fault == "out-is-a-file":
        extra = ["--out", str(a_file)]
    elif fault == "out-under-a-file":  # a read-only folder would not stop root, the tests' user; this stops anyone
        extra = ["--out", str(a_file / "run")]
    elif fault == "cache-under-a-file":
        extra = ["--cache-dir", str(a_file / "cache")]
    elif fault == "model-config-only":
        model = tmp_path / "config-only"
        model.mkdir()
        (model / "config.json").write_text("{}")
    elif fault == "model-without-weights":
        model = Path(shutil.copytree(tiny_model_dir, tmp_path / "no-weights"))
        (model / "model.safetensors").unlink()
    elif fault == "non-finite-states":
        model = save_model_folder(tmp_path / "poisoned", poison_layer=2)
    return model, extra


ANALYZE_FAULTS = {
    # Unknown language code, missing corpus, nonexistent model path: test_analyze_cli.py::test_bad_input_fails_clearly.
    "out-is-a-file": r"cannot write to output directory '.*a-file': File exists",
    "out-under-a-file": r"cannot write to output directory '.*a-file/run': Not a directory",
    "cache-under-a-file": r"cannot use cache directory '.*a-file/cache': Not a directory",
    "model-config-only": r"cannot load the model folder .*config-only",
    "model-without-weights": r"cannot load the model folder .*no-weights.*model\.safetensors",
    "non-finite-states": r"eng_Latn: non-finite hidden states at layer 2; if the model runs in fp16, try --dtype bf16",
}


@pytest.mark.parametrize("fault", list(ANALYZE_FAULTS))
def test_bad_analyze_input_fails_clearly(fault: str, tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, caplog):
    model, extra = _analyze_fault(fault, tmp_path, tiny_model_dir)
    assert analyze(model, flores_dir, tmp_path / "run", ["en", "de"], *extra) == 2
    assert any(re.search(ANALYZE_FAULTS[fault], line) for line in error_lines(caplog)), error_lines(caplog)
    assert not list(tmp_path.glob("run/cache/*.json")), "nothing half-made may be cached"


def train_args(model: Path, corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--model", str(model), "--align-data", str(corpus), "--align-langs", "deu_Latn", "rus_Cyrl",
        "--batch-size", "4", "--align-max-length", "48", "--task-max-length", "48", "--pairs-per-language", "0",
        "--device", "cpu",
        "--out", str(out), *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def task_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("task") / "task.jsonl"
    rows = [{"prompt": f"Platform {i}:", "completion": f" train at {i % 24}."} for i in range(8)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


TRAIN_FAULTS = {
    # (--layer 7 on 4 blocks and a task file's errors in load_task_data: tests/test_train.py.)
    "layer-99": (["--layer", "99"], r"--layer 99 out of range: this model has 4 blocks, so 1\.\.4"),
    "layer-0": (["--layer", "0"], r"--layer 0 out of range: this model has 4 blocks, so 1\.\.4"),
    "layer-not-a-number": (["--layer", "middle"], r"--layer must be 'auto' or an integer, got 'middle'"),
    "task-without-completion": (["--task-data", "{bad_task}"], r"bad\.jsonl, line 2: missing field 'completion'"),
    "task-file-missing": (["--task-data", "{missing_task}"], r"task data file '.*missing\.jsonl' does not exist"),
    "unknown-language": (["--align-langs", "deu_Latm"], r"unknown language 'deu_Latm'.*closest valid codes: deu_Latn"),
    "model-missing": (["--model", "{missing_model}"], r"model folder '.*no-such-model' does not exist"),
    "out-under-a-file": (["--out", "{a_file}/run"], r"cannot write to output directory '.*a-file/run'"),
}


@pytest.mark.parametrize("fault", list(TRAIN_FAULTS))
def test_bad_train_input_fails_clearly(fault: str, tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, caplog):
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "c", "answer": "d"}\n')
    (tmp_path / "a-file").write_text("not a folder")
    paths = {
        "bad_task": tmp_path / "bad.jsonl",
        "missing_task": tmp_path / "missing.jsonl",
        "missing_model": tmp_path / "no-such-model",
        "a_file": tmp_path / "a-file",
    }
    extra, message = TRAIN_FAULTS[fault]
    extra = [arg.format(**paths) for arg in extra]
    args = train_args(tiny_model_dir, flores_dir, tmp_path / "run", "--layer", "2", "--max-steps", "1", "--no-eval")
    assert train_main([*args, *extra]) == 2  # later flags win, so `extra` replaces the defaults above
    assert any(re.search(message, line) for line in error_lines(caplog)), error_lines(caplog)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_cli_exit_status_2_and_one_line_without_traceback(tiny_model_dir: Path, flores_dir: Path, tmp_path: Path):
    """The real console path (`python -m`), for a fault that used to end in a traceback."""
    (tmp_path / "a-file").write_text("not a folder")
    args = analyze_args(
        tiny_model_dir, flores_dir, tmp_path / "run", ["en", "de"], "--cache-dir", f"{tmp_path}/a-file/c"
    )
    result = subprocess.run(
        [sys.executable, "-m", "midalign.analyze", *args], capture_output=True, text=True, env=subprocess_env()
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(r"ERROR midalign: cannot use cache directory '.*a-file/c': Not a directory", result.stderr)


# ---- 3b. odd but valid inputs: they work, with a warning where something is cut ----------------------------------


def test_sentences_longer_than_the_context_are_clamped_and_truncated(
    flores_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A GPT-2 with 16 positions: the Russian sentences have up to 38 tokens, and --max-length is 512 by default.
    # Absolute position embeddings fail outright past the context; rotary ones would silently extrapolate.
    model = save_model_folder(tmp_path / "short-context", context=16)
    out = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="midalign"):
        assert analyze(model, flores_dir, out, ["en", "ru"]) == 0
        # Alignment pairs are never cut: at 16 tokens every pair of this corpus is too long, which is an error.
        assert train_main(train_args(model, flores_dir, tmp_path / "train", "--layer", "2", "--max-steps", "1")) == 2
    assert "--max-length 512 exceeds the model's context of 16 tokens; using 16" in caplog.text
    assert "--align-max-length 48 exceeds the model's context of 16 tokens; using 16" in caplog.text
    assert "--task-max-length 48 exceeds the model's context of 16 tokens; using 16" in caplog.text
    assert "every alignment pair is longer than --align-max-length 16" in caplog.text
    assert re.search(r"rus_Cyrl: \d+ sentence\(s\) longer than max_length=16 tokens are truncated", caplog.text)
    assert json.loads((out / "config.json").read_text())["resolved"]["max_length"] == 16
    assert json.loads((settings_folder_of(out) / "rus_Cyrl.json").read_text())["max_length"] == 16
    pairs = pairs_of(out)
    assert len(pairs[pairs.metric.isin(PAIR_METRICS)]) == 5 * 2 * 4  # every directed pair at every layer
    assert len(pairs[pairs.metric == "mexa"]) == 5  # rus_Cyrl against the pivot at every layer


def test_tokenizer_without_pad_token_still_works(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # (load_model's choice of pad token itself: tests/test_models.py::test_load_local_folder.)
    model = save_model_folder(tmp_path / "no-pad", pad_token=False)  # tiny_model_dir's weights, no pad token
    with caplog.at_level(logging.INFO, logger="midalign"):
        assert analyze(model, flores_dir, tmp_path / "run", CODES[:3], "--batch-size", "4") == 0
    assert "tokenizer has no pad token; padding with '<eos>'" in caplog.text
    assert analyze(tiny_model_dir, flores_dir, tmp_path / "with-pad", CODES[:3], "--batch-size", "4") == 0
    assert_same_results(tmp_path / "run", tmp_path / "with-pad")  # padding is masked out: the same numbers


# ---- 4. kill -9 of midalign-train ----------------------------------------------------------------------------------


@pytest.mark.slow  # real subprocesses killed mid-run (8-9 s)
def test_kill_9_mid_training_resumes_to_the_same_adapter(
    tiny_model_dir: Path, flores_dir: Path, task_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A real `python -m midalign.train`, SIGKILLed right after its first checkpoint, then --resume.

    (A non-finite loss stopping the run and keeping the last good checkpoint, and a simulated crash inside the
    process: tests/test_train.py::test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint and
    ::test_resume_ends_where_an_uninterrupted_run_ends.)"""
    common = ["--layer", "2", "--task-data", str(task_file), "--save-every", "1", "--no-eval", "--seed", "3"]
    # 3 epochs of 14 micro-steps = 42 steps, each saving a checkpoint: seconds after the first one appears.
    for epochs in ("3", "12"):
        killed = tmp_path / f"killed-{epochs}"
        args = train_args(tiny_model_dir, flores_dir, killed, *common, "--epochs", epochs)
        log = tmp_path / f"killed-{epochs}.log"
        landed = kill_when(
            start_cli("midalign.train", args, log),
            lambda out=killed: any(out.glob("checkpoints/step-*/trainer_state.json")),
        )
        total = json.loads((killed / "config.json").read_text())["resolved"]["total_steps"]
        saved = sorted(path.parent.name for path in killed.glob("checkpoints/step-*/trainer_state.json"))
        if landed and int(saved[-1].removeprefix("step-")) < total:
            break
    else:
        pytest.skip("training finished before SIGKILL could land, even with 4x the epochs; nothing was tested")
    assert not (killed / "adapter").exists()

    straight = tmp_path / "straight"
    assert train_main(train_args(tiny_model_dir, flores_dir, straight, *common, "--epochs", epochs)) == 0
    with caplog.at_level(logging.INFO, logger="midalign"):
        assert train_main([*args, "--resume"]) == 0
    assert re.search(rf"resumed from .*{saved[-1]} \(step \d+ of {total}\)", caplog.text)
    assert (killed / "steps.csv").read_text() == (straight / "steps.csv").read_text()
    weights = [load_file(out / "adapter" / "adapter_model.safetensors") for out in (straight, killed)]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], rtol=0, atol=0)
