"""`midalign-train`: LoRA fine-tuning with the middle-layer alignment loss at the picked layer (also
under `accelerate launch -m midalign.train`).

The command parses its options (`midalign.options.TrainConfig`) and calls `midalign.training.pipeline.run`;
the work and its documentation live there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from midalign.cli import parse_config, run_main
from midalign.options import TrainConfig


def _run(argv: Sequence[str] | None) -> None:
    from midalign.training.pipeline import run  # the pipeline (torch, peft) loads only to run

    logging.getLogger("accelerate").setLevel(logging.WARNING)  # it logs every file of every checkpoint at INFO
    run(parse_config(TrainConfig, argv, prog="midalign-train"))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of `midalign-train`."""
    return run_main(_run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
