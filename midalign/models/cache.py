"""On-disk cache of pooled hidden states, shared by every run of every command on a machine (or a group's server).

Layout under the root (default `$MIDALIGN_CACHE/states`, else the user cache folder, e.g. ~/.cache/midalign/states):

    <model>/<pooling>-<dtype>-<corpus>-<split>-<digest>/settings.json     what every entry in the folder shares
    <model>/<pooling>-<dtype>-<corpus>-<split>-<digest>/<lang>.npy        [n_sentences, L + 1 layers, hidden]
    <model>/<pooling>-<dtype>-<corpus>-<split>-<digest>/<lang>.json       the entry's manifest

The folder's digest covers everything that changes the numbers except the language and its text: model weights
(and, for a local folder, its tokenizer files: `models.loading.model_identity`), dtype, pooling, max length,
corpus, split, sentence count and the versions of torch, transformers and tokenizers (kernels and tokenisation
change between releases). So many models, poolings and corpora live side by side, and a second analysis with
another `--out` extracts nothing. The manifest repeats the whole key plus a hash of the language's ids and texts
and the array's shape and sha256: an edited sentence replaces the entry, a damaged one is recomputed.

Writes go to a temporary file renamed into place, array first and manifest last, so a killed run leaves either a
whole entry or an array without a manifest, which counts as missing. Temporary files are locked while written;
unlocked ones left by a killed run are removed by the next run. A full disk, a read-only or vanished root: one
line naming the root, never a traceback or a partial entry. Files are created readable by the group (subject to
the umask), so a cache can be shared. `midalign-cache ls|prune` lists and trims it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from midalign.errors import MidalignError

try:  # POSIX: a writer holds a lock on its temporary file, so cleaners can tell live writes from leftovers
    import fcntl
except ImportError:  # pragma: no cover - Windows: leftovers are told by age alone
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

CACHE_FORMAT = 2
SETTINGS_FILE = "settings.json"
TEMP_SUFFIX = ".tmp"
# A temporary file this old and unlocked is a leftover; younger ones may be between creation and locking.
STALE_TEMP_SECONDS = 60.0


class CacheError(MidalignError):
    """The state cache cannot be written (full disk, read-only or vanished folder)."""


@cache
def software_versions() -> str:
    """The library versions that change tokenisation or kernels, and so the states."""
    from importlib import metadata

    parts = []
    for package in ("torch", "transformers", "tokenizers"):
        try:
            parts.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{package}==none")
    return " ".join(parts)


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
    software: str = field(default_factory=software_versions)

    def settings(self) -> dict:
        """What every language of one run shares: the folder's identity."""
        fields = asdict(self)
        del fields["language"], fields["sentences_hash"]
        return fields


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:limit] or "x"


def settings_folder(key: CacheKey) -> Path:
    """The folder, relative to the root, of every entry that shares `key`'s settings."""
    settings = key.settings()
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    model_name = re.split(r"[@#]", key.model)[0].rstrip("/").rsplit("/", 1)[-1]
    model = f"{_slug(model_name)}-{hashlib.sha256(key.model.encode()).hexdigest()[:8]}"
    corpus = _slug(Path(key.corpus).name or key.corpus, 24)
    return Path(model) / f"{_slug(key.pooling)}-{_slug(key.dtype)}-{corpus}-{_slug(key.split)}-{digest}"


def _group_readable(path: Path | int) -> None:
    # mkstemp creates 0600 files: unreadable to the others sharing a cache. Use what the umask allows for new files.
    mask = os.umask(0)
    os.umask(mask)
    if isinstance(path, int):
        os.fchmod(path, 0o666 & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)


def _atomic_write(path: Path, write: Callable) -> str:
    """Write via a locked temporary file renamed into place; return the sha256 of the bytes written."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        _group_readable(handle)
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
            # Hashed before the rename: once renamed, another run sharing the cache may replace `path` at any
            # moment, and a manifest must vouch for our bytes only.
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


def _is_leftover(temp: Path, now: float) -> bool:
    """A temporary file no live writer holds: old enough, and (on POSIX) not locked."""
    try:
        if now - temp.stat().st_mtime < STALE_TEMP_SECONDS:
            return False
        if fcntl is None:
            return now - temp.stat().st_mtime > 3600
        with temp.open("rb") as file:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises while a writer holds it
        return True
    except OSError:
        return False


def remove_leftovers(root: Path) -> list[Path]:
    """Delete the temporary files killed runs left under `root`; return them."""
    now = time.time()
    removed = []
    for temp in root.rglob(f".*{TEMP_SUFFIX}"):
        if _is_leftover(temp, now):
            temp.unlink(missing_ok=True)
            removed.append(temp)
    if removed:
        logger.info("state cache: removed %d temporary file(s) left by interrupted runs", len(removed))
    return removed


def default_cache_dir() -> Path:
    """The shared state cache: $MIDALIGN_CACHE/states, else the platform's user cache folder."""
    from midalign.models.loading import cache_root

    return cache_root() / "states"


class StateCache:
    """A root of settings folders of per-language entries; `load` returns None for anything missing, partial or
    mismatched, and `save` raises a one-line `CacheError` for anything that keeps an entry from being written."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # a path under a file, no permission: say so before any work is done
            raise CacheError(f"cannot use cache directory {str(self.root)!r}: {error.strerror or error}") from error
        self._touched: set[Path] = set()
        with contextlib.suppress(OSError):  # a read-only cache keeps its leftovers; they are never read
            remove_leftovers(self.root)

    @property
    def writable(self) -> bool:
        """Whether new entries can be saved (checked before long work; a full disk shows only when writing)."""
        return os.access(self.root, os.W_OK | os.X_OK)

    def paths(self, key: CacheKey) -> tuple[Path, Path]:
        """The entry's array and manifest."""
        folder = self.root / settings_folder(key)
        return folder / f"{key.language}.npy", folder / f"{key.language}.json"

    def save(self, key: CacheKey, states: np.ndarray) -> Path:
        """Write one language's states [n_sentences, L + 1 layers, hidden] atomically, manifest last."""
        if states.shape[0] != key.n_sentences:
            raise ValueError(f"{key.language}: {states.shape[0]} rows for {key.n_sentences} sentences")
        array_path, manifest_path = self.paths(key)
        try:
            self._write_settings(key, array_path.parent)
            manifest_path.unlink(missing_ok=True)  # an old manifest must never vouch for a new array
            digest = save_array_atomic(array_path, states)
            manifest = {"format": CACHE_FORMAT, **asdict(key), "shape": list(states.shape), "sha256": digest}
            _atomic_write(manifest_path, lambda file: file.write(json.dumps(manifest, indent=1).encode()))
        except OSError as error:
            reason = error.strerror or str(error)
            raise CacheError(
                f"cannot save the states of {key.language} in the cache {self.root}: {reason}; free space there or "
                "choose another --cache-dir (or MIDALIGN_CACHE); the entries saved so far are kept"
            ) from error
        return array_path

    def _write_settings(self, key: CacheKey, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)  # also when the root vanished since the run started
        settings = folder / SETTINGS_FILE
        if not settings.is_file():
            text = json.dumps({"format": CACHE_FORMAT, **key.settings()}, indent=1)
            _atomic_write(settings, lambda file: file.write(text.encode()))

    def load(self, key: CacheKey, verify: bool = True) -> np.ndarray | None:
        """The cached states memory-mapped, or None (with the reason logged) if the entry cannot be trusted."""
        array_path, manifest_path = self.paths(key)
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
        self._mark_used(array_path.parent)
        return states

    def _mark_used(self, folder: Path) -> None:
        # `midalign-cache ls` reports when a folder was last read; atime is often off (noatime), so touch it.
        if folder not in self._touched:
            self._touched.add(folder)
            with contextlib.suppress(OSError):  # read-only shared cache: the date stays older
                os.utime(folder / SETTINGS_FILE)


@dataclass(frozen=True)
class CacheFolder:
    """One settings folder of a cache, as `midalign-cache ls` shows it."""

    path: Path
    settings: dict
    languages: int
    bytes: int
    last_used: float


def cache_folders(root: Path) -> Iterator[CacheFolder]:
    """Every settings folder under `root` (folders of an older cache format included, settings empty)."""
    for settings_path in sorted(root.glob(f"*/*/{SETTINGS_FILE}")):
        folder = settings_path.parent
        try:
            settings = json.loads(settings_path.read_text())
        except (OSError, json.JSONDecodeError):
            settings = {}
        files = [path for path in folder.iterdir() if path.is_file()]
        yield CacheFolder(
            path=folder,
            settings=settings,
            languages=sum(1 for path in files if path.suffix == ".json" and path.name != SETTINGS_FILE),
            bytes=sum(path.stat().st_size for path in files),
            last_used=settings_path.stat().st_mtime,
        )


def remove_folder(folder: Path) -> None:
    """Delete one settings folder, and its model folder once empty."""
    shutil.rmtree(folder)
    with contextlib.suppress(OSError):  # other settings of the same model remain
        folder.parent.rmdir()


def run_entries(root: Path, record: dict) -> Path:
    """The folder holding the cached states of a finished analysis (its config.json as `record`), for scripts that
    read the arrays directly: the settings folder matching its model, dtype, pooling, corpus and split, or `root`
    itself for a cache of the older flat layout (`<lang>.npy` directly under the root)."""
    resolved, first = record["resolved"], record["resolved"]["languages"][0]
    if (root / f"{first}.npy").is_file():
        return root
    wanted = {"model": resolved["model_identity"], "dtype": resolved["dtype"], "pooling": record["pooling"],
              "split": resolved["split"], "n_sentences": resolved["n_sentences"]}  # fmt: skip
    found = [folder.path for folder in cache_folders(root)
             if all(folder.settings.get(name) == value for name, value in wanted.items())
             and (folder.path / f"{first}.npy").is_file()]  # fmt: skip
    if len(found) != 1:
        raise CacheError(f"{len(found)} folders of {root} hold this run's states ({wanted}); pass the one to use")
    return found[0]


def run_states(run: Path, cache_dir: Path | None = None) -> tuple[dict, Path]:
    """An analysis folder's config.json and the folder of its cached states (`run_entries`), for the scripts under
    analysis/ that read a run's arrays: `cache_dir` overrides the cache the run recorded."""
    record = json.loads((run / "config.json").read_text())
    return record, run_entries(cache_dir or Path(record["resolved"]["cache_dir"]), record)
