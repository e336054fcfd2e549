"""docs/architecture.md stays true: it names every command and every module of the package."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def test_every_command_is_named() -> None:
    commands = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    missing = [name for name in commands if name not in DOC]
    assert not missing, f"docs/architecture.md does not name {missing}"
    count = re.search(r"(\w+) thin commands", DOC)
    words = {"five": 5, "six": 6, "seven": 7, "eight": 8}
    assert count and words.get(count.group(1)) == len(commands), "the command count in docs/architecture.md is stale"


def test_every_module_is_in_the_layout() -> None:
    """Each module appears quoted as `midalign/.../name.py`, `name.py` or `name` (in its package's row of the
    layout table); the corpus builders as `build_*`."""
    missing = []
    for path in sorted((ROOT / "midalign").rglob("*.py")):
        if path.stem in {"__init__", "__main__"}:
            continue
        relative = path.relative_to(ROOT).as_posix()
        spellings = [relative, f"{path.stem}.py", path.stem] + (["build_*"] if path.stem.startswith("build_") else [])
        if not any(f"`{spelling}`" in DOC for spelling in spellings):
            missing.append(relative)
    assert not missing, f"docs/architecture.md's layout misses {missing}"
