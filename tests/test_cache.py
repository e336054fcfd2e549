"""The state cache reuses only whole, matching entries."""

import dataclasses
import json

import numpy as np
import pytest

from midalign.models.cache import CacheKey, StateCache

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
        ("sentences_hash", "f" * 16),
    ],
)
def test_other_settings_are_a_miss(cache_and_states, field, value, caplog) -> None:
    cache, _ = cache_and_states
    assert cache.load(dataclasses.replace(KEY, **{field: value})) is None
    assert "other settings" in caplog.text and field in caplog.text


def test_truncated_array_is_a_miss(cache_and_states, caplog) -> None:
    cache, _ = cache_and_states
    path = cache.root / "eng_Latn.npy"
    path.write_bytes(path.read_bytes()[:-16])
    assert cache.load(KEY) is None
    assert "recomputing" in caplog.text


def test_edited_array_or_manifest_is_a_miss(cache_and_states) -> None:
    cache, states = cache_and_states
    edited = states.copy()
    edited[0, 0, 0] += 1
    np.save(cache.root / "eng_Latn.npy", edited)  # same shape, different numbers
    assert cache.load(KEY) is None
    cache.save(KEY, states)
    manifest = json.loads((cache.root / "eng_Latn.json").read_text())
    manifest["shape"] = [5, 3, 5]
    (cache.root / "eng_Latn.json").write_text(json.dumps(manifest))
    assert cache.load(KEY) is None


def test_array_without_manifest_is_a_miss(cache_and_states) -> None:
    cache, _ = cache_and_states
    (cache.root / "eng_Latn.json").unlink()
    assert cache.load(KEY) is None
    assert not list(cache.root.glob(".*tmp")), "no temporary files are left behind"


def test_wrong_row_count_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="6 rows for 5 sentences"):
        StateCache(tmp_path).save(KEY, np.zeros((6, 3, 4), dtype=np.float32))
