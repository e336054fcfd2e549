"""`midalign-analyze`: cache per-layer pooled states of parallel sentences, score every language pair at
every layer and pick the layer where languages align best.

The command parses its options (`midalign.options.AnalyzeConfig`) and calls `midalign.analysis.pipeline.run`;
the work and its documentation live there.
"""

from __future__ import annotations

from collections.abc import Sequence

from midalign.cli import parse_config, run_main
from midalign.options import AnalyzeConfig


def _run(argv: Sequence[str] | None) -> None:
    from midalign.analysis.pipeline import list_languages, run  # the pipeline (torch, peft) loads only to run

    config = parse_config(AnalyzeConfig, argv, prog="midalign-analyze")
    list_languages(config) if config.list_langs else run(config)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of `midalign-analyze`."""
    return run_main(_run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
