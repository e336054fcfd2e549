"""`python -m midalign.tasks`: write any recipe's examples as the prompt/completion JSONL `midalign-train` reads.

The evaluation side needs no file: `midalign-evaluate --task T` builds the same prompts from the same source.
For example, MASSIVE slot filling in three locales for training:

    python -m midalign.tasks --task massive --split train --langs en-US de-DE fr-FR --out runs/massive

writes `runs/massive/train.jsonl` and `runs/massive/config.json`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from midalign.cli import parse_config, prepare_output_dir, run_main, write_config
from midalign.tasks import TASKS, Example, options_from, recipe, write_jsonl


@dataclass
class TaskDataConfig:
    """Write a task recipe's examples (one split) as prompt/completion/language JSONL for midalign-train."""

    task: Literal["cldr", "massive", "translation", "entities"] = field(metadata={"help": f"One of {TASKS}."})
    data: str | None = field(default=None, metadata={"help": "Task source, as midalign-evaluate --data."})
    split: str = field(default="train", metadata={"help": "Split to write; also the file name."})
    langs: list[str] = field(default_factory=list, metadata={"help": "Languages (FLORES codes, locales, configs)."})
    max_examples: int | None = field(default=None, metadata={"help": "At most N examples per language."})
    max_words: int | None = field(
        default=None,
        metadata={"help": "Keep only examples whose answer has at most N words (before --max-examples applies)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of generated data (cldr)."})
    cldr_kind: str = field(default="date_long", metadata={"help": "cldr: what to localize."})
    directions: list[str] = field(default_factory=lambda: ["x2en", "en2x"], metadata={"help": "translation."})
    english: str = field(default="eng_Latn", metadata={"help": "translation: the English side."})
    out: str = field(default="runs/task-data", metadata={"help": "Output folder: SPLIT.jsonl and config.json."})


def short_examples(examples: Sequence[Example], max_words: int, per_language: int | None) -> list[Example]:
    """The examples whose reference has at most `max_words` words, at most `per_language` per language, in order."""
    kept, counts = [], Counter()
    for example in examples:
        if len(example.reference.split()) <= max_words and (
            per_language is None or counts[example.language] < per_language
        ):
            counts[example.language] += 1
            kept.append(example)
    return kept


def write(config: TaskDataConfig) -> dict[str, int]:
    """Write OUT/SPLIT.jsonl and OUT/config.json; return the examples per language."""
    out = prepare_output_dir(config.out)
    options = options_from(config)
    if config.max_words is not None:  # filter first, then cap: N short examples, not the short ones among N
        options = dataclasses.replace(options, max_examples=None)
    examples = recipe(config.task).load_examples(options)
    if config.max_words is not None:
        examples = short_examples(examples, config.max_words, config.max_examples)
    path = write_jsonl(out / f"{config.split}.jsonl", examples)
    counts = dict(Counter(example.language for example in examples))
    write_config(out, config, file=str(path), examples=counts)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(lambda args: write(parse_config(TaskDataConfig, args, prog="python -m midalign.tasks")), argv)


if __name__ == "__main__":
    raise SystemExit(main())
