"""`midalign-merge`: merge a task LoRA and an alignment LoRA exactly, optionally choosing the weights on
dev data.

The command parses its options (`midalign.options.MergeConfig`) and calls `midalign.training.merge.run`;
the work and its documentation live there.
"""

from __future__ import annotations

from collections.abc import Sequence

from midalign.cli import parse_config, run_main
from midalign.options import MergeConfig


def _run(argv: Sequence[str] | None) -> None:
    from midalign.training.merge import run  # the pipeline (torch, peft) loads only to run

    run(parse_config(MergeConfig, argv, prog="midalign-merge"))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of `midalign-merge`."""
    return run_main(_run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
