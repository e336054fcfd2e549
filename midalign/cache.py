"""`midalign-cache ls|prune`: list or trim the shared hidden-state cache.

The command parses its options (`midalign.options.CacheConfig`) and calls `midalign.models.cache_admin.run`.
"""

from __future__ import annotations

from collections.abc import Sequence

from midalign.cli import parse_config, run_main
from midalign.options import CacheConfig


def _run(argv: Sequence[str] | None) -> None:
    from midalign.models.cache_admin import run

    run(parse_config(CacheConfig, argv, prog="midalign-cache"))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of `midalign-cache`."""
    return run_main(_run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
