"""`midalign-report`: one self-contained interactive HTML page (plotly) for one midalign-analyze run, or two compared.

The command parses its options (`midalign.options.ReportConfig`) and calls `midalign.viz.report.write_report`;
the page and its documentation live there.
"""

from __future__ import annotations

from collections.abc import Sequence

from midalign.cli import parse_config, run_main
from midalign.options import ReportConfig


def _run(argv: Sequence[str] | None) -> None:
    from midalign.viz.report import write_report  # plotly loads only to build the page

    config = parse_config(ReportConfig, argv, prog="midalign-report")
    write_report(config.runs, config.out, config.labels, config.max_cells)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of `midalign-report`."""
    return run_main(_run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
