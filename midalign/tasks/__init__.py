"""Task recipes: where the examples come from, how they are prompted, and how predictions are scored.

Every recipe turns its source into `Example`s (a prompt, the reference answer, a language code) and scores one
language's predictions at a time. The same examples serve both sides of an experiment: `write_jsonl` writes the
prompt/completion/language JSONL that `midalign-train --task-data` reads (completion = " " + reference, so the
prompt never ends in a space), and `midalign-evaluate` generates from the very same prompts.

Recipes (one module each): `cldr` (offline: CLDR date/number formats via babel), `slots` (MASSIVE slot filling),
`translation` (any parallel corpus, both directions), `entities` (named entities as JSON, Universal NER style).
Language codes are FLORES-style (`deu_Latn`) everywhere, so scores line up with a training run's languages.
"""

from __future__ import annotations

import importlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from midalign.errors import MidalignError

# The recipes' options are one of every command's option groups; re-exported here for the recipes.
from midalign.options import TASKS as TASKS
from midalign.options import TaskOptions as TaskOptions

_MODULES = {"cldr": "cldr", "massive": "slots", "translation": "translation", "entities": "entities"}


class TaskError(MidalignError):
    """A task source, option or language that a recipe cannot use."""


@dataclass(frozen=True)
class Example:
    """One task example, for evaluation and training alike: the model reads `prompt` and should write `reference`.

    `meta` is recipe-specific. Training learns `target`: " " + reference, or the `completion` a task file gave
    when it is not that (a file may hold any prompt/completion pairs). `language` is None only in training files
    that do not say."""

    id: str
    language: str | None
    prompt: str
    reference: str
    meta: dict = field(default_factory=dict)
    completion: str | None = None

    @property
    def target(self) -> str:
        """The text training appends to the prompt."""
        return completion(self.reference) if self.completion is None else self.completion


def recipe(task: str) -> ModuleType:
    """The module of a task recipe: `load_examples(TaskOptions)` (any config with the task options) and
    `score(examples, predictions)`."""
    if task not in _MODULES:
        raise TaskError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return importlib.import_module(f"midalign.tasks.{_MODULES[task]}")


def completion(reference: str) -> str:
    """The training completion for a reference: a leading space, so that prompts never end in one."""
    return " " + reference


def write_jsonl(path: str | Path, examples: Iterable[Example]) -> Path:
    """Write prompt/completion/language JSONL (plus id, reference and meta) for `midalign-train --task-data`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            record = {
                "id": example.id,
                "language": example.language,
                "prompt": example.prompt,
                "completion": example.target,
                "reference": example.reference,
                **example.meta,
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def example_from_record(record: object, where: str, number: int, require_language: bool = True) -> Example:
    """An Example from one JSONL line or table row: prompt, completion (or reference), language, optional id (else
    LANGUAGE-NUMBER, `number` being the line or row) and extra fields (kept as `meta`); errors name `where`."""
    if not isinstance(record, dict):
        raise TaskError(f"{where}: expected an object with prompt and completion fields, got {type(record).__name__}")
    record = dict(record)
    required = ["prompt", "language"] if require_language else ["prompt"]
    if "completion" not in record and "reference" not in record:
        required.append("completion")
    for name in required:
        if name not in record:
            raise TaskError(f"{where}: missing field {name!r} (fields: {sorted(record)})")
    for name in ("prompt", "completion", "reference"):
        if name in record and not isinstance(record[name], str):
            raise TaskError(f"{where}: field {name!r} must be a string, got {type(record[name]).__name__}")
    given = record.pop("completion", None)
    if given is not None and not given:
        raise TaskError(f"{where}: field 'completion' is empty")
    reference = record.pop("reference", None)
    reference = given.strip() if reference is None else reference
    language = record.pop("language", None)
    language = None if language is None else str(language)
    example_id = str(record.pop("id", f"{language}-{number}"))
    kept = None if given is None or given == completion(reference) else given
    return Example(example_id, language, record.pop("prompt"), reference, record, kept)


def read_jsonl(
    path: str | Path, max_examples: int | None = None, langs: Sequence[str] = (), require_language: bool = True
) -> list[Example]:
    """Examples from a JSONL file `write_jsonl` (or any prompt/completion/language file) wrote; blank lines skipped.
    `langs` keeps only those languages, `max_examples` the first N of each."""
    examples, counts = [], Counter()
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise TaskError(f"{path}, line {number}: not valid JSON ({error.msg})") from error
            example = example_from_record(record, f"{path}, line {number}", number, require_language)
            if langs and example.language not in langs:
                continue
            counts[example.language] += 1
            if max_examples is None or counts[example.language] <= max_examples:
                examples.append(example)
    if not examples:
        raise TaskError(f"{path}: no examples" + (f" for languages {list(langs)}" if langs else ""))
    return examples


def by_language(examples: Sequence[Example]) -> dict[str, list[int]]:
    """Positions of each language's examples, languages in first-seen order."""
    groups: dict[str, list[int]] = {}
    for index, example in enumerate(examples):
        groups.setdefault(example.language, []).append(index)
    return groups


def f1_scores(n_correct: int, n_predicted: int, n_gold: int) -> dict[str, float]:
    """Micro precision, recall and F1 from counts; nothing predicted and nothing expected counts as perfect."""
    if n_predicted == 0 and n_gold == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    precision = n_correct / n_predicted if n_predicted else 0.0
    recall = n_correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def multiset_overlap(gold: Sequence, predicted: Sequence) -> int:
    """How many predicted items match a gold item, each gold item matched at most once."""
    return sum((Counter(gold) & Counter(predicted)).values())
