"""Typed run records and shared option groups: one name per option in every command, records that round-trip,
old records read through the schema upgrade, and every committed run record readable."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from midalign import options, records
from midalign.cli import build_parser, parse_config
from midalign.errors import MidalignError
from midalign.options import AnalyzeConfig, EvaluateConfig, MergeConfig, TaskDataConfig, TrainConfig
from midalign.records import (
    SCHEMA_VERSION,
    AnalysisRecord,
    EvaluationRecord,
    MergeRecord,
    TrainingRecord,
    Versions,
    adapter_run,
    load_record,
)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = (
    AnalyzeConfig, TrainConfig, EvaluateConfig, MergeConfig, TaskDataConfig, options.CldrDataConfig,
    options.ReportConfig, options.CacheConfig,
)  # fmt: skip
# midalign-report writes one file, not a run folder: its --out is the page's path (the one option meant otherwise).
OWN_MEANING = {("ReportConfig", "out")}


def _flags(config_type: type) -> dict[str, tuple[str, str]]:
    """Every option of a command's parser: dest -> (help text, choices and arity), from the real parser."""
    parser = build_parser(config_type, "test")
    return {
        action.dest: (re.sub(r" \(default: [^)]*\)$", "", action.help or ""), f"{action.choices} {action.nargs}")
        for action in parser._actions  # argparse keeps no public list of actions; reading it is test-only
        if action.dest != "help"
    }


def test_one_name_type_and_help_per_option_across_commands() -> None:
    seen: dict[str, tuple[str, str, str]] = {}
    for config_type in CONFIGS:
        for dest, (text, kind) in _flags(config_type).items():
            if (config_type.__name__, dest) in OWN_MEANING:
                continue
            if dest in seen:
                first, first_help, first_kind = seen[dest]
                assert (text, kind) == (first_help, first_kind), f"--{dest}: {config_type.__name__} vs {first}"
            else:
                seen[dest] = (config_type.__name__, text, kind)
    # The task options have one spelling everywhere (the old evaluate spellings are aliases).
    for config_type in (EvaluateConfig, MergeConfig, TaskDataConfig):
        names = {f.name for f in dataclasses.fields(config_type)}
        assert {"task_data", "task_split", "task_langs"} <= names and not {"data", "split", "langs"} & names
    parsed = parse_config(
        EvaluateConfig, ["--task", "cldr", "--data", "x.jsonl", "--split", "dev", "--langs", "de", "fr"], "test"
    )
    assert (parsed.task_data, parsed.task_split, parsed.task_langs) == ("x.jsonl", "dev", ["de", "fr"])


def test_command_defaults_and_shared_validation() -> None:
    assert TrainConfig().out == "runs/train" and AnalyzeConfig().out == "runs/analyze"
    assert TrainConfig().align_data == "gettext" and TrainConfig().english == "eng_Latn"
    assert MergeConfig(task_adapter="a", align_adapter="b").english is None  # filled from the alignment run
    assert MergeConfig(task_adapter="a", align_adapter="b").task_split == "dev"
    assert EvaluateConfig(task="cldr").task_split is None  # the recipe's own (test)
    assert MergeConfig(task_adapter="a", align_adapter="b", sweep=["0,0.5", "1"]).sweep == [0.0, 0.5, 1.0]
    for config_type in (AnalyzeConfig, TrainConfig, EvaluateConfig):
        extra = {"task": "cldr"} if config_type is EvaluateConfig else {}
        with pytest.raises(MidalignError, match="unknown --device 'gpu'"):
            config_type(device="gpu", **extra)
        assert config_type(device="cuda:1", **extra).device == "cuda:1"
    with pytest.raises(MidalignError, match="fp16 is not supported for training"):
        TrainConfig(dtype="fp16")
    with pytest.raises(MidalignError, match="--max-examples must be at least 1"):
        EvaluateConfig(task="cldr", max_examples=0)


def test_parsing_and_validating_options_imports_no_torch() -> None:
    """Options are checked before any long work; a fresh interpreter shows they need neither torch nor transformers
    (AnalyzeConfig once imported torch for the pooling and device-map vocabularies)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from midalign.options import AnalyzeConfig, EvaluateConfig, MergeConfig, TrainConfig\n"
        "AnalyzeConfig(pooling='last', device_map='auto'); TrainConfig(); EvaluateConfig(task='cldr')\n"
        "MergeConfig(task_adapter='a', align_adapter='b')\n"
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_record_round_trip_and_schema(tmp_path: Path) -> None:
    record = TrainingRecord.create(TrainConfig(layer="5", seed=3), layer=5, aligned=False, task_languages=["deu_Latn"])
    path = record.save(tmp_path)
    payload = json.loads(path.read_text())
    assert payload["command"] == "train" and payload["schema_version"] == SCHEMA_VERSION
    assert payload["seed"] == 3 and payload["resolved"]["layer"] == 5  # options top-level, as before records
    assert {"torch", "transformers", "peft", "accelerate", "datasets"} <= set(payload["versions"])
    loaded = TrainingRecord.load(tmp_path)
    assert loaded == record and loaded.versions == Versions.current()
    with pytest.raises(TypeError, match="unknown resolved field"):
        TrainingRecord.create(TrainConfig(), layr=5)
    with pytest.raises(MidalignError, match="is not the record of a midalign-analyze run"):
        AnalysisRecord.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**payload, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(MidalignError, match="newer than this midalign reads"):
        TrainingRecord.load(tmp_path)
    with pytest.raises(MidalignError, match="holds no midalign run"):
        load_record(tmp_path / "missing")


def test_schema_0_records_are_upgraded(tmp_path: Path) -> None:
    task_only = {
        "task_data": "t.jsonl",
        "align_weight": 0.0,
        "resolved": {"n_layers": 18, "micro_step_pattern": ["task"]},
    }
    (tmp_path / "config.json").write_text(json.dumps(task_only))
    record = load_record(tmp_path)
    assert isinstance(record, TrainingRecord)
    assert record.resolved.n_blocks == 18 and record.resolved.aligned is False
    evaluation = {"task": "cldr", "data": "d.jsonl", "split": "test", "langs": ["de"], "groups_from": None}
    (tmp_path / "config.json").write_text(json.dumps({**evaluation, "resolved": {}}))
    record = EvaluationRecord.load(tmp_path)
    assert (record.config.task_data, record.config.task_split, record.config.task_langs) == ("d.jsonl", "test", ["de"])
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (tmp_path / "config.json").write_text(
        json.dumps({"task_adapter": "a", "align_adapter": "b", "sweep": [0, 1], "resolved": {"w_align": 0.5}})
    )
    merged = adapter_run(adapter)
    assert isinstance(merged, MergeRecord) and merged.resolved.w_align == 0.5 and merged.config.sweep == [0.0, 1.0]


def test_every_committed_run_record_loads() -> None:
    paths = sorted((REPO / "analysis").rglob("config.json"))
    assert len(paths) > 50
    kinds = {type(load_record(path)).__name__ for path in paths}
    assert {"AnalysisRecord", "TrainingRecord", "EvaluationRecord", "MergeRecord"} <= kinds
    assert set(records.RECORDS) == {"analyze", "train", "evaluate", "merge", "task-data", "cldr-data"}


def test_usage_reads_well(capsys: pytest.CaptureFixture) -> None:
    """Dashes only, real switches, required options marked, one default per option, lists in spaces or commas."""
    for config_type in CONFIGS:
        parser = build_parser(config_type, "test")
        usage = parser.format_usage()
        strings = [s for action in parser._actions for s in action.option_strings]  # test-only look inside argparse
        assert not [s for s in strings if "_" in s], f"{config_type.__name__}: underscore spellings in {usage}"
        text = " ".join(parser.format_help().split())
        assert text.count("(default: ") == sum("(default: " in (action.help or "") for action in parser._actions), (
            "a default printed twice"
        )
        assert "(default: None)" not in text
    merge_usage = build_parser(MergeConfig, "midalign-merge").format_help()
    assert "--task-adapter TASK_ADAPTER" in merge_usage and "(required)" in merge_usage
    analyze_help = build_parser(AnalyzeConfig, "midalign-analyze").format_usage()
    assert "--center | --no-center" in analyze_help and "--figures | --no-figures" in analyze_help
    assert not parse_config(AnalyzeConfig, ["--no-figures"], "test").figures
    assert parse_config(AnalyzeConfig, ["--center"], "test").center
    both = parse_config(MergeConfig, ["--task-adapter", "a", "--align-adapter", "b", "--sweep", "0,0.5", "1"], "t")
    assert both.sweep == [0.0, 0.5, 1.0]
    assert parse_config(AnalyzeConfig, ["--langs", "en,de", "fr"], "t").langs == ["en", "de", "fr"]
    report = parse_config(options.ReportConfig, ["runs/a,b", "runs/c", "--out", "r.html"], "midalign-report")
    assert (report.runs, report.out) == (["runs/a,b", "runs/c"], "r.html")  # operands are paths: no comma split
    assert parse_config(options.ReportConfig, ["runs/a"], "t").out == str(Path("runs/a") / "report.html")
    assert "RUN [RUN ...]" in build_parser(options.ReportConfig, "midalign-report").format_usage()
    assert not parse_config(AnalyzeConfig, ["--no-report"], "test").report
    with pytest.raises(SystemExit):
        parse_config(MergeConfig, [], "midalign-merge")
    assert "the following arguments are required: --task-adapter, --align-adapter" in capsys.readouterr().err


def test_analysis_records_from_before_the_pivot_metrics_load(tmp_path: Path) -> None:
    from midalign.analysis.pipeline import changed_options

    payload = json.loads((REPO / "analysis" / "gemma-3-270m_udhr_all" / "config.json").read_text())
    for key in ("english", "metrics", "probe"):  # what a record written before these options lacks
        payload.pop(key, None)
    for key in ("metrics", "pivot"):
        payload["resolved"].pop(key, None)
    (tmp_path / "config.json").write_text(json.dumps(payload))
    record = AnalysisRecord.load(tmp_path)
    assert (record.config.english, record.config.metrics, record.config.probe) == ("eng_Latn", None, False)
    assert record.resolved.metrics == [] and record.resolved.pivot is None
    (tmp_path / "selection.json").write_text("{}")  # a finished analysis: the same command reruns in place
    assert changed_options(tmp_path, dataclasses.replace(record.config, probe=True)) == []
    assert changed_options(tmp_path, dataclasses.replace(record.config, english="deu_Latn")) == ["english"]
    assert changed_options(tmp_path, dataclasses.replace(record.config, metrics=["retrieval_acc"])) == ["metrics"]
