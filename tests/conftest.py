"""Shared fixtures: tiny randomly initialised models built from configs, and a FLORES+-layout corpus folder."""

from __future__ import annotations

import os

# Before any Hugging Face import: a hub id must fail at once, not after ~20 s of retries.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


from pathlib import Path

import pytest
import torch

from tests.helpers import FLORES_LIKE, PAIRS_LIKE, save_tiny_model, write_flores_layout, write_pair_layout


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that loads the real model is slow as well: `pytest -m "not slow"` is the fast tier."""
    for item in items:
        if item.get_closest_marker("real_model") is not None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-block Llama with a byte-level BPE tokenizer, saved as a local HF folder."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_gemma_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same, as a 4-block Gemma 3 (the embedded default's architecture)."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny-gemma"), "gemma3")


@pytest.fixture(scope="session")
def flores_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FLORES+-layout folder the loader has never seen: other domain, dev and devtest splits."""
    root = tmp_path_factory.mktemp("flores-like")
    write_flores_layout(root, FLORES_LIKE, splits={"dev": range(0, 12), "devtest": range(12, 30)})
    return root


@pytest.fixture(scope="session")
def pairs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pair-layout corpus (id, text, en) of software messages in deu, fra, rus: train and dev splits."""
    root = tmp_path_factory.mktemp("pairs-like")
    write_pair_layout(root, PAIRS_LIKE, splits={"train": range(0, 32), "dev": range(32, 40)})
    return root


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module (opt in: `pytestmark = pytest.mark.usefixtures("one_torch_thread")`).

    The CLI subprocesses those modules launch run with OMP_NUM_THREADS=1; in-process references must reduce in the
    same order for results to be bitwise equal. Tiny models also run fastest on one thread on a busy 2-core machine.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def private_state_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MIDALIGN_CACHE per test (also for the commands a test launches): tests never read or fill the user's
    shared state cache, nor each other's. Its `models` links to the real one, where the embedded model is converted
    once."""
    from midalign.models.loading import cache_root

    models = cache_root() / "models"
    models.mkdir(parents=True, exist_ok=True)
    private = tmp_path_factory.mktemp("midalign-cache")
    (private / "models").symlink_to(models, target_is_directory=True)
    monkeypatch.setenv("MIDALIGN_CACHE", str(private))
    return private


@pytest.fixture(autouse=True)
def fp32_auto_on_every_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--dtype auto` picks bf16 on CPUs with native bf16 units, so CI machines of different kinds would run the
    in-process tests in different precisions. Every test sees a CPU without them; tests/test_dtype_auto.py checks
    the bf16 choice itself. (CLI subprocesses keep the real CPU's choice; they compare runs with each other.)"""
    monkeypatch.setattr("midalign.models.loading.cpu_bf16_units", lambda cpuinfo=None: [])
