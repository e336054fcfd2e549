"""What every command shares: its parser (built from the options dataclass), logging, the output folder, exit codes.

The parser is plain argparse, built from the dataclass fields so that every command spells an option the same
way: `--dashed-names` only, real switches (`--center` / `--no-center`), list options that take values separated
by spaces or commas, required options marked as such, and each default printed once.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import types
import typing
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from midalign.errors import MidalignError

Config = TypeVar("Config")
THIRD_PARTY = ("transformers", "peft", "accelerate", "datasets", "huggingface_hub", "torch", "sklearn", "pandas")


def _unwrap_optional(kind: Any) -> Any:
    """X for `X | None`; anything else as it is."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return kind


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _help(field: dataclasses.Field, default: Any) -> str:
    text = field.metadata.get("help", "")
    if default is dataclasses.MISSING:
        return f"{text} (required)".strip()
    shown = ", ".join(map(str, default)) if isinstance(default, list | tuple) else default
    if "default" in text.lower() or default is None or isinstance(default, bool) or shown == "":
        return text  # the text says it, or there is nothing to say
    return f"{text} (default: {shown})"


def build_parser(config_class: type, prog: str) -> argparse.ArgumentParser:
    """An argparse parser for a config dataclass: one option per field, its `help` metadata as help text."""
    parser = argparse.ArgumentParser(
        prog=prog, description=(config_class.__doc__ or "").strip(), allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        kind = _unwrap_optional(hints[field.name])
        default = field.default
        if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        if field.metadata.get("positional"):  # operands (midalign-report's RUN folders, ls|prune), by position
            _add_positional(parser, field, kind, default)
            continue
        names = [_flag(field.name), *field.metadata.get("aliases", [])]
        common = {"dest": field.name, "help": _help(field, default)}
        if default is dataclasses.MISSING:
            common["required"] = True
        else:
            common["default"] = default
        if kind is bool:
            parser.add_argument(*names, action=argparse.BooleanOptionalAction, **common)
        elif typing.get_origin(kind) is list:
            parser.add_argument(*names, nargs="+", metavar=field.name.upper(), type=str, **common)
        elif typing.get_origin(kind) is Literal:
            parser.add_argument(*names, choices=typing.get_args(kind), **common)
        else:
            choices = field.metadata.get("choices")
            extra = {"choices": choices} if choices else {"metavar": field.name.upper()}
            parser.add_argument(*names, type=kind, **extra, **common)
    return parser


def _add_positional(parser: argparse.ArgumentParser, field: dataclasses.Field, kind: Any, default: Any) -> None:
    text = field.metadata.get("help", "")
    extra: dict[str, Any] = {"metavar": field.metadata.get("metavar", field.name.upper())}
    if typing.get_origin(kind) is list:
        extra["nargs"] = "+" if default is dataclasses.MISSING else "*"
    elif default is not dataclasses.MISSING:
        extra["nargs"] = "?"
    if typing.get_origin(kind) is Literal:
        extra = {**extra, "choices": typing.get_args(kind), "metavar": "|".join(typing.get_args(kind))}
    if default is not dataclasses.MISSING:
        extra["default"] = default
    parser.add_argument(field.name, help=text, **extra)


def _split_commas(values: Any) -> Any:
    """A list option's values, each also split at commas (`--sweep 0,0.5 1` = `--sweep 0 0.5 1`)."""
    if not isinstance(values, list):
        return values
    return [part.strip() for value in values for part in str(value).split(",") if part.strip()]


def parse_config(config_class: type[Config], argv: Sequence[str] | None, prog: str) -> Config:
    """Parse argv into the config dataclass (whose `__post_init__` checks the values)."""
    parser = build_parser(config_class, prog)
    namespace = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    # Operands are paths, which may hold commas: only options' lists split there.
    operands = {f.name for f in dataclasses.fields(config_class) if f.metadata.get("positional")}
    values = {name: value if name in operands else _split_commas(value) for name, value in vars(namespace).items()}
    return config_class(**values)


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
    # Deprecation notices that libraries raise about their own internals (transformers' `is_gradient_checkpointing`
    # asked by peft, ...): a user of midalign cannot act on them. midalign's own warnings, and every warning under
    # `python -W` or PYTHONWARNINGS, still show.
    if not sys.warnoptions:
        for library in THIRD_PARTY:
            warnings.filterwarnings("ignore", category=FutureWarning, module=rf"{library}(\.|$)")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=rf"{library}(\.|$)")


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
