"""`python -m midalign.tasks`: write any recipe's examples as the prompt/completion JSONL `midalign-train` reads.

The evaluation side needs no file: `midalign-evaluate --task T` builds the same prompts from the same source.
For example, MASSIVE slot filling in three locales for training:

    python -m midalign.tasks --task massive --task-split train --task-langs en-US de-DE fr-FR --out runs/massive

writes `runs/massive/train.jsonl` and `runs/massive/config.json`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

from midalign.cli import parse_config, prepare_output_dir, run_main
from midalign.options import TaskDataConfig
from midalign.records import TaskDataRecord
from midalign.tasks import Example, recipe, write_jsonl


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
    options = config
    if config.max_words is not None:  # filter first, then cap: N short examples, not the short ones among N
        options = dataclasses.replace(config, max_examples=None)
    examples = recipe(config.task).load_examples(options)
    if config.max_words is not None:
        examples = short_examples(examples, config.max_words, config.max_examples)
    path = write_jsonl(out / f"{config.task_split}.jsonl", examples)
    counts = dict(Counter(example.language for example in examples))
    TaskDataRecord.create(config, file=str(path), examples=counts).save(out)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(lambda args: write(parse_config(TaskDataConfig, args, prog="python -m midalign.tasks")), argv)


if __name__ == "__main__":
    raise SystemExit(main())
