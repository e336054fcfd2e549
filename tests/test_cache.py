"""The state cache reuses only whole, matching entries."""

import dataclasses
import errno
import fcntl
import json
import os
import shutil
import stat
import time

import numpy as np
import pytest

from midalign.models.cache import CacheError, CacheKey, StateCache

KEY = CacheKey("tiny@abc", "float32", "mean", 512, "udhr", "all", "eng_Latn", 5, "0123456789abcdef")


@pytest.fixture
def cache_and_states(tmp_path):
    cache = StateCache(tmp_path / "cache")
    states = np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float32)
    cache.save(KEY, states)
    return cache, states


def test_roundtrip_is_memory_mapped(cache_and_states) -> None:
    cache, states = cache_and_states
    loaded = cache.load(KEY)
    assert isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(loaded, states)


@pytest.mark.parametrize(
    "field, value",
    [
        ("model", "other@def"),
        ("pooling", "last"),
        ("dtype", "bfloat16"),
        ("max_length", 128),
        ("corpus", "flores"),
        ("split", "dev"),
        ("n_sentences", 6),
        ("software", "torch==0.1 transformers==0.1 tokenizers==0.1"),
    ],
)
def test_other_settings_live_in_their_own_folder(cache_and_states, field, value) -> None:
    cache, states = cache_and_states
    other = dataclasses.replace(KEY, **{field: value})
    assert cache.paths(other)[0].parent != cache.paths(KEY)[0].parent
    assert cache.load(other) is None
    rows = np.zeros((other.n_sentences, 3, 4), dtype=np.float32)
    cache.save(other, rows)  # side by side: neither entry replaces the other
    np.testing.assert_array_equal(cache.load(other), rows)
    np.testing.assert_array_equal(cache.load(KEY), states)


def test_edited_sentences_are_a_miss_named_in_the_log(cache_and_states, caplog) -> None:
    cache, _ = cache_and_states
    assert cache.load(dataclasses.replace(KEY, sentences_hash="f" * 16)) is None
    assert "other settings" in caplog.text and "sentences_hash" in caplog.text


def test_default_root_is_the_shared_user_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MIDALIGN_CACHE", str(tmp_path / "shared"))
    assert StateCache().root == tmp_path / "shared" / "states"


def test_truncated_array_is_a_miss(cache_and_states, caplog) -> None:
    cache, _ = cache_and_states
    path = cache.paths(KEY)[0]
    path.write_bytes(path.read_bytes()[:-16])
    assert cache.load(KEY) is None
    assert "recomputing" in caplog.text


def test_edited_array_or_manifest_is_a_miss(cache_and_states) -> None:
    cache, states = cache_and_states
    edited = states.copy()
    edited[0, 0, 0] += 1
    array, manifest_path = cache.paths(KEY)
    np.save(array, edited)  # same shape, different numbers
    assert cache.load(KEY) is None
    cache.save(KEY, states)
    manifest = json.loads(manifest_path.read_text())
    manifest["shape"] = [5, 3, 5]
    manifest_path.write_text(json.dumps(manifest))
    assert cache.load(KEY) is None


def test_array_without_manifest_is_a_miss(cache_and_states) -> None:
    cache, _ = cache_and_states
    cache.paths(KEY)[1].unlink()
    assert cache.load(KEY) is None
    assert not list(cache.root.rglob(".*tmp")), "no temporary files are left behind"


def test_wrong_row_count_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="6 rows for 5 sentences"):
        StateCache(tmp_path).save(KEY, np.zeros((6, 3, 4), dtype=np.float32))


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError("608000 requested and 354272 written"),  # what numpy raises when the disk fills mid-array
        OSError(errno.EROFS, "Read-only file system"),
    ],
)
def test_failed_write_is_one_line_and_leaves_no_partial_entry(tmp_path, monkeypatch, error) -> None:
    cache = StateCache(tmp_path / "cache")
    states = np.ones((5, 3, 4), dtype=np.float32)

    def fail_midway(file, array, *args, **kwargs) -> None:
        file.write(b"\x93NUMPY half an array")
        raise error

    monkeypatch.setattr(np, "save", fail_midway)
    with pytest.raises(CacheError) as raised:
        cache.save(KEY, states)
    message = str(raised.value)
    assert "\n" not in message and "eng_Latn" in message and str(cache.root) in message
    assert (error.strerror or str(error)) in message
    monkeypatch.undo()
    assert cache.load(KEY) is None
    assert not list(cache.root.rglob("*.npy")) and not list(cache.root.rglob(".*.tmp"))


def test_vanished_root_is_recreated(tmp_path) -> None:
    cache = StateCache(tmp_path / "cache")
    shutil.rmtree(cache.root)  # say a user cleaned the cache while a run was going
    cache.save(KEY, np.ones((5, 3, 4), dtype=np.float32))
    assert cache.load(KEY) is not None


def test_entries_are_group_readable(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        cache = StateCache(tmp_path / "cache")
        cache.save(KEY, np.ones((5, 3, 4), dtype=np.float32))
    finally:
        os.umask(old)
    for path in cache.paths(KEY):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_leftover_temporary_files_are_removed_but_live_writes_kept(tmp_path) -> None:
    root = tmp_path / "cache"
    folder = root / "model" / "settings"
    folder.mkdir(parents=True)
    leftover, young, live = (folder / f".eng_Latn.npy.{name}.tmp" for name in ("dead", "young", "live"))
    for path in (leftover, young, live):
        path.write_bytes(b"partial")
    hour_ago = time.time() - 3600
    for path in (leftover, live):
        os.utime(path, (hour_ago, hour_ago))
    with live.open("rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # a writer in another process still holds it
        StateCache(root)
    assert not leftover.exists() and young.exists() and live.exists()


def test_run_entries_finds_a_runs_folder_in_either_layout(tmp_path) -> None:
    from midalign.models.cache import run_entries

    cache = StateCache(tmp_path / "cache")
    cache.save(KEY, np.ones((5, 3, 4), dtype=np.float32))
    cache.save(dataclasses.replace(KEY, pooling="last"), np.ones((5, 3, 4), dtype=np.float32))
    record = {"pooling": "mean", "resolved": {"languages": ["eng_Latn"], "model_identity": KEY.model,
                                              "dtype": KEY.dtype, "split": KEY.split, "n_sentences": 5}}  # fmt: skip
    assert run_entries(cache.root, record) == cache.paths(KEY)[0].parent
    flat = tmp_path / "flat"
    flat.mkdir()
    np.save(flat / "eng_Latn.npy", np.ones(1))
    assert run_entries(flat, record) == flat
    with pytest.raises(CacheError, match="0 folders"):
        run_entries(cache.root, {**record, "pooling": "weighted_mean"})
