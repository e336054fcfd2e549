"""`midalign-evaluate`: score a model (plus an adapter) on a task recipe per language and group, or
compare evaluation folders.

The command parses its options (`midalign.options.EvaluateConfig`) and calls
`midalign.tasks.evaluation.evaluate_or_compare`; the work and its documentation live there.
"""

from __future__ import annotations

from collections.abc import Sequence

from midalign.cli import parse_config, run_main
from midalign.options import EvaluateConfig


def _run(argv: Sequence[str] | None) -> None:
    from midalign.tasks.evaluation import evaluate_or_compare  # the pipeline (torch, peft) loads only to run

    evaluate_or_compare(parse_config(EvaluateConfig, argv, prog="midalign-evaluate"))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of `midalign-evaluate`."""
    return run_main(_run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
