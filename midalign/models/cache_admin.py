"""What `midalign-cache` does: list the state cache's settings folders, and delete the ones a user selects."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import pandas as pd

from midalign.errors import MidalignError
from midalign.models.cache import (
    SETTINGS_FILE,
    CacheFolder,
    StateCache,
    cache_folders,
    remove_folder,
    remove_leftovers,
    software_versions,
)
from midalign.options import CacheConfig

logger = logging.getLogger(__name__)

DAY = 86400.0


def folder_table(folders: list[CacheFolder]) -> pd.DataFrame:
    """One row per settings folder: what it holds, how big it is, when it was last used."""
    rows = [
        {
            "model": folder.settings.get("model", "?"),
            "pooling": folder.settings.get("pooling", "?"),
            "dtype": folder.settings.get("dtype", "?"),
            "corpus": folder.settings.get("corpus", "?"),
            "split": folder.settings.get("split", "?"),
            "max_length": folder.settings.get("max_length"),
            "sentences": folder.settings.get("n_sentences"),
            "languages": folder.languages,
            "size_mb": round(folder.bytes / 2**20, 1),
            "last_used": time.strftime("%Y-%m-%d %H:%M", time.localtime(folder.last_used)),
            "current_versions": folder.settings.get("software") == software_versions(),
            "folder": str(folder.path),
        }
        for folder in folders
    ]
    columns = ["model", "pooling", "dtype", "corpus", "split", "max_length", "sentences", "languages", "size_mb",
               "last_used", "current_versions", "folder"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def leftovers(root: Path) -> list[Path]:
    """What interrupted runs and older midalign versions left: arrays without a manifest, and entries of the old
    flat layout (`<lang>.npy` directly under the root), which this version never reads."""
    found = [*root.glob("*.npy"), *root.glob("*.json")]
    for settings in root.glob(f"*/*/{SETTINGS_FILE}"):
        for array in settings.parent.glob("*.npy"):
            if not array.with_suffix(".json").exists():
                found.append(array)
    return sorted(found)


def selected(folder: CacheFolder, config: CacheConfig, now: float) -> bool:
    """Whether prune's age, version or --all options select this folder (`run` has already applied --match)."""
    if config.all:
        return True
    old = config.older_than is not None and now - folder.last_used > config.older_than * DAY
    stale = config.stale and folder.settings.get("software") != software_versions()
    return old or stale


def run(config: CacheConfig) -> pd.DataFrame:
    """List the cache (ls) or delete what the options select (prune); return the table shown."""
    root = StateCache(config.cache_dir).root  # creates it if missing, removes stray temporary files
    folders = list(cache_folders(root))
    if config.match is not None:
        folders = [folder for folder in folders if config.match in str(folder.settings.get("model", ""))]
    if config.action == "ls":
        table = folder_table(folders)
        total = table["size_mb"].sum() if len(table) else 0.0
        sys.stdout.write(f"state cache {root}: {len(table)} folder(s), {total:.1f} MB\n")
        if len(table):
            sys.stdout.write(table.drop(columns="folder").to_string(index=False) + "\n")
        return table
    if not (config.all or config.older_than is not None or config.stale) and config.match is not None:
        raise MidalignError("prune --match needs --all, --older-than or --stale to say which of its folders to delete")
    now = time.time()
    doomed = [folder for folder in folders if selected(folder, config, now)]
    stray = leftovers(root)
    freed = sum(folder.bytes for folder in doomed) + sum(path.stat().st_size for path in stray)
    verb = "would delete" if config.dry_run else "deleting"
    for folder in doomed:
        logger.info("%s %s (%d languages, %.1f MB)", verb, folder.path, folder.languages, folder.bytes / 2**20)
    if stray:
        logger.info("%s %d file(s) left by interrupted runs or an older cache format", verb, len(stray))
    if not config.dry_run:
        try:
            for folder in doomed:
                remove_folder(folder.path)
            for path in stray:
                path.unlink(missing_ok=True)
            remove_leftovers(root)
        except OSError as error:
            raise MidalignError(f"cannot delete from the cache {root}: {error.strerror or error}") from error
    logger.info("%s %.1f MB in %d folder(s) and %d loose file(s)", "would free" if config.dry_run else "freed",
                freed / 2**20, len(doomed), len(stray))  # fmt: skip
    return folder_table(doomed)
