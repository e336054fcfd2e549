"""midalign: where do an LLM's languages align, and aligning them there (after Liu & Niehues, ACL 2025)."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public names, imported lazily so that `import midalign` stays cheap (torch loads only when a model does).
_EXPORTS = {
    "load_parallel": "midalign.corpora.parallel",
    "available_languages": "midalign.corpora.parallel",
    "ParallelCorpus": "midalign.corpora.parallel",
    "load_model": "midalign.models.loading",
    "resolve_languages": "midalign.corpora.languages",
    "language_info": "midalign.corpora.languages",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'midalign' has no attribute {name!r}")
