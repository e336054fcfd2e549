"""On-disk cache of pooled hidden states: one memory-mappable array [n_sentences, L + 1 layers, hidden] per language.

An entry is `<lang>.npy` plus `<lang>.json`, its manifest. The array is written first and the manifest last, each
to a temporary file renamed into place, so a killed run leaves either a whole entry or one without a manifest,
which counts as missing. The manifest records only what changes the numbers: model identity,
dtype, pooling, max length, corpus, split, language, sentence count, a hash of the sentence ids and texts, plus the
array's shape and sha256; device and batch size are deliberately absent.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from midalign.errors import MidalignError

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1


@dataclass(frozen=True)
class CacheKey:
    """Everything that determines one language's pooled states."""

    model: str
    dtype: str
    pooling: str
    max_length: int
    corpus: str
    split: str
    language: str
    n_sentences: int
    sentences_hash: str  # ids and texts: an edited corpus file must not reuse states of the old text


def _atomic_write(path: Path, write: callable) -> str:  # type: ignore[valid-type]
    """Write via a temporary file renamed into place; return the sha256 of the bytes written."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        # Hashed before the rename: once renamed, another run sharing the cache may replace `path` at any moment,
        # and a manifest must vouch for our bytes only.
        digest = sha256_file(Path(temp))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return digest


def save_array_atomic(path: Path, array: np.ndarray) -> str:
    """Write one float32 .npy file atomically (temporary file renamed into place); return its sha256."""
    return _atomic_write(path, lambda file: np.save(file, np.ascontiguousarray(array, dtype=np.float32)))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class StateCache:
    """A folder of per-language entries; `load` returns None for anything missing, partial or mismatched."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # a path under a file, no permission: say so before any work is done
            raise MidalignError(f"cannot use cache directory {str(root)!r}: {error.strerror or error}") from error

    def _paths(self, language: str) -> tuple[Path, Path]:
        return self.root / f"{language}.npy", self.root / f"{language}.json"

    def save(self, key: CacheKey, states: np.ndarray) -> Path:
        """Write one language's states [n_sentences, L + 1 layers, hidden] atomically, manifest last."""
        if states.shape[0] != key.n_sentences:
            raise ValueError(f"{key.language}: {states.shape[0]} rows for {key.n_sentences} sentences")
        array_path, manifest_path = self._paths(key.language)
        manifest_path.unlink(missing_ok=True)  # an old manifest must never vouch for a new array
        digest = save_array_atomic(array_path, states)
        manifest = {"format": CACHE_FORMAT, **asdict(key), "shape": list(states.shape), "sha256": digest}
        _atomic_write(manifest_path, lambda file: file.write(json.dumps(manifest, indent=1).encode()))
        return array_path

    def load(self, key: CacheKey, verify: bool = True) -> np.ndarray | None:
        """The cached states memory-mapped, or None (with the reason logged) if the entry cannot be trusted."""
        array_path, manifest_path = self._paths(key.language)
        if not manifest_path.exists():
            if array_path.exists():
                logger.warning("cache %s: array without manifest (interrupted write); recomputing", key.language)
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            logger.warning("cache %s: unreadable manifest (%s); recomputing", key.language, error)
            return None
        expected = {"format": CACHE_FORMAT, **asdict(key)}
        differing = {
            name: (manifest.get(name), value) for name, value in expected.items() if manifest.get(name) != value
        }
        if differing:
            detail = ", ".join(f"{name}: cached {old!r} != wanted {new!r}" for name, (old, new) in differing.items())
            logger.warning("cache %s: entry is for other settings (%s); recomputing", key.language, detail)
            return None
        try:
            states = np.load(array_path, mmap_mode="r")
        except (OSError, ValueError) as error:  # missing or truncated file
            logger.warning("cache %s: unreadable array (%s); recomputing", key.language, error)
            return None
        damaged = verify and sha256_file(array_path) != manifest.get("sha256")
        if list(states.shape) != manifest.get("shape") or damaged:
            logger.warning("cache %s: array does not match its manifest (damaged); recomputing", key.language)
            return None
        return states
