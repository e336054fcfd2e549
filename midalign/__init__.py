"""midalign: where do an LLM's languages align, and aligning them there (after Liu & Niehues, ACL 2025)."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public names, imported lazily so that `import midalign` stays cheap (torch loads only when a model does).
_EXPORTS = {
    "load_parallel": "midalign.data",
    "available_languages": "midalign.data",
    "ParallelCorpus": "midalign.data",
    "load_model": "midalign.models",
    "resolve_languages": "midalign.languages",
    "language_info": "midalign.languages",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'midalign' has no attribute {name!r}")
