"""Without a reachable hub, a hub id fails in seconds with one line, not after ~50 s of retries."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from midalign import hub
from midalign.corpora.parallel import CorpusError, available_languages
from midalign.models.loading import ModelNotFoundError, load_model


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Online mode (no HF_HUB_OFFLINE), with a hub that does not answer."""
    monkeypatch.setattr(hub, "offline_mode", lambda: False)
    monkeypatch.setattr(hub, "reachable", lambda: False)


def test_hub_model_without_hub_is_one_clear_error(no_hub) -> None:
    started = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match=r"the hub is unreachable .* not in the local HF cache"):
        load_model("midalign-test/no-such-model")
    assert time.perf_counter() - started < 10


def test_hub_corpus_without_hub_is_one_clear_error(no_hub) -> None:
    with pytest.raises(CorpusError, match=r"cannot be reached from here.*HF_HUB_OFFLINE=1"):
        available_languages("midalign-test/no-such-corpus")


def test_probe_answers_quickly() -> None:
    """The real probe, whatever the network: an answer (True or False) within its timeout, then remembered."""
    hub.reachable.cache_clear()
    started = time.perf_counter()
    first = hub.reachable()
    assert time.perf_counter() - started < hub.PROBE_TIMEOUT_S + 5
    started = time.perf_counter()
    assert hub.reachable() is first and time.perf_counter() - started < 0.01


def test_console_without_offline_mode_fails_fast_in_one_line(tmp_path) -> None:
    """The real command with HF_HUB_OFFLINE unset: no network here (or no such repository where there is one)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "midalign.analyze", "--model", "midalign-test/no-such-model", "--langs", "en", "de",
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert time.perf_counter() - started < 60
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "midalign-test/no-such-model" in errors[0]
