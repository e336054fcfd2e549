"""Typed run records: what each command wrote to OUT/config.json, and the only way commands read each other's runs.

A record is a frozen dataclass: the command's options as given (`config`, the command's config dataclass), what
was resolved at run time (`resolved`, a frozen dataclass per command), the software `versions`, the `command`
and the `schema_version`. On disk (`config.json`) the options are top-level keys under their option names, next
to `resolved`, `versions`, `command` and `schema_version`, so `jq .layer` and `jq .resolved.layer` keep working.

Schema versions: 0 = written before records existed (no `command` key; evaluate and task-data runs named the
task options `data`, `split`, `langs`; analysis and training runs said `n_layers` for the number of blocks);
1 = this layout. `load` reads both; a newer version than this library knows is refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from midalign import options
from midalign.errors import MidalignError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
RECORD_FILE = "config.json"
# The libraries whose versions can change a run's numbers or its files.
LIBRARIES = ("midalign", "torch", "transformers", "peft", "accelerate", "datasets", "numpy", "safetensors")
# Option names before schema 1 (one name per concept since).
_RENAMED_OPTIONS = {"data": "task_data", "split": "task_split", "langs": "task_langs"}

Config = TypeVar("Config")
Resolved = TypeVar("Resolved")


def _known(kind: type, values: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(kind)}
    return {key: value for key, value in values.items() if key in names}


@dataclass(frozen=True)
class Versions:
    """Python and the key libraries' versions (None: not installed)."""

    python: str | None = None
    libraries: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def current(cls) -> Versions:
        def version(name: str) -> str | None:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                return None

        return cls(platform.python_version(), {name: version(name) for name in LIBRARIES})

    def to_json(self) -> dict[str, Any]:
        return {"python": self.python, **self.libraries}

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> Versions:
        return cls(values.get("python"), {k: v for k, v in values.items() if k != "python"})


# ---- what each command resolved at run time ------------------------------------------------------------------
@dataclass(frozen=True)
class AnalysisResolved:
    model_identity: str | None = None
    languages: list[str] = field(default_factory=list)
    split: str | None = None
    n_sentences: int | None = None
    max_length: int | None = None
    n_blocks: int | None = None  # L: the model's decoder blocks; layers are 0 (embeddings) .. L
    dtype: str | None = None
    dtype_choice: str | None = None  # why that precision: "given", or auto's reason (None: runs before auto chose)
    device: str | None = None
    device_map: dict[str, int] | None = None
    num_processes: int = 1
    cache_dir: str | None = None
    n_directed_pairs: int | None = None
    metrics: list[str] = field(default_factory=list)  # computed (empty in runs before --metrics: the first four)
    pivot: str | None = None  # the language mexa and cka compare with (None: not computed)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase (extract, metrics, tables, ...)


@dataclass(frozen=True)
class TrainingResolved:
    layer: int | None = None
    layer_source: str | None = None
    n_blocks: int | None = None
    task_max_length: int | None = None
    align_max_length: int | None = None
    eval_max_length: int | None = None
    model_identity: str | None = None
    precision: str | None = None
    device: str | None = None
    english: str | None = None
    aligned: bool = True  # whether the alignment loss was on (False: a task-only run)
    align_languages: list[str] = field(default_factory=list)
    align_split: str | None = None
    align_pairs_available: dict[str, int] = field(default_factory=dict)
    align_pairs_too_long: dict[str, int] = field(default_factory=dict)
    dev_source: str | None = None
    dev_pairs: dict[str, int] = field(default_factory=dict)
    heldout_ids: list[str] = field(default_factory=list)
    eval_data: str | None = None
    eval_split: str | None = None
    eval_groups: dict[str, str] = field(default_factory=dict)
    n_align_pairs: int = 0
    n_task_examples: int = 0
    task_languages: list[str] = field(default_factory=list)
    target_modules: list[str] = field(default_factory=list)
    trainable_parameters: int | None = None
    micro_steps_per_epoch: int | None = None
    micro_step_pattern: list[str] = field(default_factory=list)
    num_processes: int = 1
    effective_batch: int | None = None
    negatives: str | None = None
    total_steps: int | None = None
    warmup_steps: int | None = None
    align_data_digest: str | None = None  # sha256 over the alignment corpus's files (midalign.corpora.pairs)
    align_space_stats: dict = field(default_factory=dict)  # the space statistics' file, sample size, languages
    anisotropy_at_layer: dict[str, dict] = field(default_factory=dict)  # raw and the loss's space, before training
    steps_done: int | None = None
    best_step: int | None = None
    dev_retrieval_best: float | None = None
    dev_retrieval_start: float | None = None
    stopped_early: bool | None = None
    adapter: str | None = None  # which weights OUT/adapter holds: "best dev step" or "last step"
    eval_retrieval_at_layer: dict[str, dict] = field(default_factory=dict)
    eval_centered_retrieval_at_layer: dict[str, dict] = field(default_factory=dict)  # each language centred
    wall_seconds: float | None = None


@dataclass(frozen=True)
class EvaluationResolved:
    model_identity: str | None = None
    adapter: str | None = None
    task: str | None = None
    groups_from: str | None = None
    groups: dict[str, str] = field(default_factory=dict)
    n_examples: dict[str, int] = field(default_factory=dict)
    max_new_tokens: int | None = None
    device: str | None = None
    generation_seconds: float | None = None
    wall_seconds: float | None = None


@dataclass(frozen=True)
class MergeResolved:
    task_languages: list[str] = field(default_factory=list)
    align_languages: list[str] = field(default_factory=list)
    model_identity: str | None = None
    layer: int | None = None
    criterion: str | None = None
    tie_break: str | None = None
    retrieval_languages: list[str] = field(default_factory=list)
    dev_source: str | None = None
    dev_pairs: dict[str, int] = field(default_factory=dict)
    heldout_ids: list[str] = field(default_factory=list)
    w_task: float | None = None
    w_align: float | None = None
    r: int | None = None
    target_modules: list[str] = field(default_factory=list)
    task_adapter: str | None = None
    align_adapter: str | None = None
    wall_seconds: float | None = None


@dataclass(frozen=True)
class TaskDataResolved:
    file: str | None = None
    examples: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CldrDataResolved:
    examples: dict[str, int] = field(default_factory=dict)  # per split
    locales: dict[str, str] = field(default_factory=dict)
    babel: str | None = None


# ---- records ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRecord(Generic[Config, Resolved]):
    """One command's run: options as given, what was resolved, versions. Subclasses fix the command's types."""

    command: ClassVar[str]
    config_type: ClassVar[type]
    resolved_type: ClassVar[type]
    renamed_options: ClassVar[dict[str, str]] = {}  # schema 0 option name -> today's

    config: Config
    resolved: Resolved
    versions: Versions = field(default_factory=Versions.current)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def create(cls, config: Config, **resolved: Any) -> RunRecord:
        """A record of this run now: unknown resolved keys are an error (a typo would otherwise vanish)."""
        unknown = set(resolved) - {f.name for f in dataclasses.fields(cls.resolved_type)}
        if unknown:
            raise TypeError(f"{cls.__name__}: unknown resolved field(s) {sorted(unknown)}")
        return cls(config, cls.resolved_type(**resolved))

    def with_resolved(self, **changes: Any) -> RunRecord:
        """The same record with some resolved fields changed (records are frozen)."""
        return dataclasses.replace(self, resolved=dataclasses.replace(self.resolved, **changes))

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "schema_version": self.schema_version,
            **dataclasses.asdict(self.config),
            "resolved": dataclasses.asdict(self.resolved),
            "versions": self.versions.to_json(),
        }

    def save(self, out: str | Path) -> Path:
        """Write OUT/config.json atomically (a crash leaves the previous record or none, never half of one)."""
        path = Path(out) / RECORD_FILE
        temporary = path.with_name(f".{RECORD_FILE}.tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")
        temporary.replace(path)
        return path

    @classmethod
    def from_json(cls, payload: Mapping[str, Any], where: str = "") -> RunRecord:
        version = int(payload.get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise MidalignError(
                f"{where}: record schema {version} is newer than this midalign reads ({SCHEMA_VERSION})"
            )
        command = payload.get("command")
        if command is not None and command != cls.command:
            raise MidalignError(f"{where} is a midalign-{command} run, not a midalign-{cls.command} run")
        given = {k: v for k, v in payload.items() if k not in ("resolved", "versions", "command", "schema_version")}
        resolved = dict(payload.get("resolved") or {})
        if version == 0:
            given, resolved = cls._upgrade(given, resolved)
        try:
            config = cls.config_type(**_known(cls.config_type, given))
        except (TypeError, MidalignError) as error:
            raise MidalignError(
                f"{where}: the recorded options are not valid {cls.command} options: {error}"
            ) from error
        return cls(
            config,
            cls.resolved_type(**_known(cls.resolved_type, resolved)),
            Versions.from_json(payload.get("versions") or {}),
            version,
        )

    @classmethod
    def _upgrade(cls, given: dict, resolved: dict) -> tuple[dict, dict]:
        """Schema 0 -> 1: today's names for renamed options and resolved fields."""
        if "n_layers" in resolved:
            resolved.setdefault("n_blocks", resolved.pop("n_layers"))
        return {cls.renamed_options.get(k, k): v for k, v in given.items()}, resolved

    @classmethod
    def load(cls, path: str | Path) -> RunRecord:
        """The record of a run folder (or of its config.json) written by this command."""
        return load_record(path, (cls.command,))


@dataclass(frozen=True)
class AnalysisRecord(RunRecord[options.AnalyzeConfig, AnalysisResolved]):
    command: ClassVar[str] = "analyze"
    config_type: ClassVar[type] = options.AnalyzeConfig
    resolved_type: ClassVar[type] = AnalysisResolved
    renamed_options: ClassVar[dict[str, str]] = {"overwrite": "recompute"}  # it recomputed the cache


@dataclass(frozen=True)
class TrainingRecord(RunRecord[options.TrainConfig, TrainingResolved]):
    command: ClassVar[str] = "train"
    config_type: ClassVar[type] = options.TrainConfig
    resolved_type: ClassVar[type] = TrainingResolved
    renamed_options: ClassVar[dict[str, str]] = {"batch_size": "task_batch_size"}

    @classmethod
    def _upgrade(cls, given: dict, resolved: dict) -> tuple[dict, dict]:
        given, resolved = super()._upgrade(given, resolved)
        pattern = resolved.get("micro_step_pattern")
        if pattern is not None:  # schema 0 said whether alignment ran only through the micro-step pattern
            resolved["aligned"] = any("align" in kinds.split("+") for kinds in pattern)
        return given, resolved


@dataclass(frozen=True)
class EvaluationRecord(RunRecord[options.EvaluateConfig, EvaluationResolved]):
    command: ClassVar[str] = "evaluate"
    config_type: ClassVar[type] = options.EvaluateConfig
    resolved_type: ClassVar[type] = EvaluationResolved
    renamed_options: ClassVar[dict[str, str]] = _RENAMED_OPTIONS


@dataclass(frozen=True)
class MergeRecord(RunRecord[options.MergeConfig, MergeResolved]):
    command: ClassVar[str] = "merge"
    config_type: ClassVar[type] = options.MergeConfig
    resolved_type: ClassVar[type] = MergeResolved

    @classmethod
    def _upgrade(cls, given: dict, resolved: dict) -> tuple[dict, dict]:
        given, resolved = super()._upgrade(given, resolved)
        if "layer" in given:  # an int, or None for the alignment run's, before --layer took `auto` here too
            given["layer"] = "auto" if given["layer"] is None else str(given["layer"])
        return given, resolved


@dataclass(frozen=True)
class TaskDataRecord(RunRecord[options.TaskDataConfig, TaskDataResolved]):
    command: ClassVar[str] = "task-data"
    config_type: ClassVar[type] = options.TaskDataConfig
    resolved_type: ClassVar[type] = TaskDataResolved
    renamed_options: ClassVar[dict[str, str]] = _RENAMED_OPTIONS


@dataclass(frozen=True)
class CldrDataRecord(RunRecord[options.CldrDataConfig, CldrDataResolved]):
    command: ClassVar[str] = "cldr-data"
    config_type: ClassVar[type] = options.CldrDataConfig
    resolved_type: ClassVar[type] = CldrDataResolved
    renamed_options: ClassVar[dict[str, str]] = {"langs": "task_langs", "kind": "cldr_kind"}


RECORDS: dict[str, type[RunRecord]] = {
    record.command: record
    for record in (AnalysisRecord, TrainingRecord, EvaluationRecord, MergeRecord, TaskDataRecord, CldrDataRecord)
}


def _schema0_command(payload: Mapping[str, Any]) -> str | None:
    """Which command wrote a record from before `command` was recorded, from the options only it has."""
    for command, marker in (("merge", "task_adapter"), ("train", "align_weight"), ("analyze", "select_metric"),
                            ("evaluate", "groups_from"), ("cldr-data", "n_train"), ("task-data", "task")):  # fmt: skip
        if marker in payload:
            return command
    return None


def load_record(path: str | Path, commands: tuple[str, ...] = tuple(RECORDS)) -> RunRecord:
    """The record of any run folder (or config.json) written by one of `commands`."""
    path = Path(path)
    path = path / RECORD_FILE if path.is_dir() else path
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise MidalignError(f"{path.parent} holds no midalign run ({RECORD_FILE} is missing)") from error
    except (OSError, ValueError) as error:
        raise MidalignError(f"cannot read {path}: {error}") from error
    command = payload.get("command") if isinstance(payload, dict) else None
    command = command or (_schema0_command(payload) if isinstance(payload, dict) else None)
    if command not in commands:
        wanted = " or ".join(f"midalign-{name}" for name in commands)
        found = f" (it is midalign-{command}'s)" if command else ""
        raise MidalignError(f"{path} is not the record of a {wanted} run{found}")
    return RECORDS[command].from_json(payload, str(path))


def adapter_run(adapter: str | Path) -> TrainingRecord | MergeRecord | None:
    """The record of the run that wrote an adapter folder (its parent: midalign-train's or -merge's OUT), if any."""
    path = Path(adapter).parent / RECORD_FILE
    if not path.is_file():
        return None
    try:
        return load_record(path, ("train", "merge"))
    except MidalignError as error:
        logger.warning("%s; the adapter's run is not used", error)
        return None
