"""What every command shares: its options parsed by HfArgumentParser, logging, the output folder, exit codes."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from transformers import HfArgumentParser

from midalign.errors import MidalignError

Config = TypeVar("Config")


def parse_config(config_class: type[Config], argv: Sequence[str] | None, prog: str) -> Config:
    """Parse argv into the config dataclass; its field `help` metadata becomes `--help`."""
    parser = HfArgumentParser(config_class, prog=prog, description=(config_class.__doc__ or "").strip())
    (config,) = parser.parse_args_into_dataclasses(
        args=list(sys.argv[1:] if argv is None else argv), look_for_args_file=False
    )
    return config


def setup_logging(level: str | None = None) -> None:
    """Log to stderr at INFO (or $MIDALIGN_LOG_LEVEL); keep the libraries' chatter at WARNING.

    Under a multi-process launch every line names its process, and processes other than the main one log
    warnings and errors only (unless $MIDALIGN_LOG_LEVEL says otherwise): eight copies of each line help nobody."""
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    default = "INFO" if rank == 0 else "WARNING"
    logging.basicConfig(
        level=(level or os.environ.get("MIDALIGN_LOG_LEVEL", default)).upper(),
        format="%(asctime)s " + (f"[{rank}/{world}] " if world > 1 else "") + "%(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("datasets", "transformers", "urllib3", "filelock", "httpx", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def prepare_output_dir(path: str | os.PathLike) -> Path:
    """Create the output folder or fail clearly before any long work starts."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        # A name of its own: the processes of a multi-process launch probe the same folder at the same moment.
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise MidalignError(f"cannot write to output directory {str(out)!r}: {error.strerror or error}") from error
    return out


def run_main(entry: Any, argv: Sequence[str] | None) -> int:
    """Run a command's body, turning midalign's own errors into one clear line and exit status 2."""
    setup_logging()
    try:
        entry(argv)
    except MidalignError as error:
        logging.getLogger("midalign").error("%s", error)
        return 2
    return 0
