"""Builders and process tools for tests/test_reliability.py: odd tiny models, bigger corpora, kill -9 at a point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from tests.helpers import _TEMPLATES, FLORES_LIKE, tiny_model, tiny_tokenizer, write_flores_layout

# The FLORES_LIKE travel phrase in three more languages, so a kill test has more cache entries to lose.
TEMPLATES = {
    **_TEMPLATES,
    "spa_Latn": "El tren a la costa sale a las {n} del andén {m}.",
    "ita_Latn": "Il treno per la costa parte alle {n} dal binario {m}.",
    "pol_Latn": "Pociąg na wybrzeże odjeżdża o {n} z peronu {m}.",
}


def subprocess_env() -> dict[str, str]:
    """The environment for a CLI subprocess: offline, and one thread so its numbers match this process's."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def parallel_sentences(n_sentences: int, n_languages: int = 8) -> dict[str, list[str]]:
    """`n_sentences` distinct aligned sentences in up to 8 languages (the sentence number makes each unique)."""
    assert n_languages <= len(TEMPLATES)
    return {
        lang: [template.format(n=i % 24, m=i) for i in range(n_sentences)]
        for lang, template in list(TEMPLATES.items())[:n_languages]
    }


def write_corpus(root: Path, sentences: dict[str, Sequence[str]]) -> Path:
    """A FLORES+-layout folder with one split, devtest, holding every sentence."""
    n_sentences = len(next(iter(sentences.values())))
    return write_flores_layout(root, sentences, {"devtest": range(n_sentences)})


def _corpus_tokenizer() -> PreTrainedTokenizerFast:
    return tiny_tokenizer([text for texts in FLORES_LIKE.values() for text in texts])


def save_model_folder(
    folder: Path,
    architecture: str = "llama",
    *,
    pad_token: bool = True,
    context: int | None = None,
    poison_layer: int | None = None,
) -> Path:
    """A tiny local HF model folder with one defect: no pad token, a short context, or inf weights in a block.

    `context` builds a GPT-2 with `n_positions=context` (absolute positions, so a longer input cannot run);
    `poison_layer=k` fills block k's MLP output weights with inf, so hidden states from layer k on are not finite.
    """
    tokenizer = _corpus_tokenizer()
    if context is not None:
        torch.manual_seed(0)
        config = GPT2Config(
            vocab_size=len(tokenizer), n_embd=32, n_layer=4, n_head=4, n_positions=context,
            bos_token_id=1, eos_token_id=2, pad_token_id=0,
        )  # fmt: skip
        model = GPT2LMHeadModel(config).eval()
    else:
        model = tiny_model(architecture, len(tokenizer))
    if poison_layer is not None:
        with torch.no_grad():
            model.model.layers[poison_layer - 1].mlp.down_proj.weight.fill_(float("inf"))
    if not pad_token:
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=tokenizer.backend_tokenizer, bos_token="<bos>", eos_token="<eos>"
        )
        assert tokenizer.pad_token is None
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def start_cli(module: str, args: Sequence[str], log: Path) -> subprocess.Popen:
    """Start `python -m module args` with its output going to `log` (a pipe nobody reads could fill and block)."""
    with log.open("wb") as handle:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args], stdout=handle, stderr=subprocess.STDOUT, env=subprocess_env()
        )
    process.log_path = log  # type: ignore[attr-defined]  # for kill_when's failure messages
    return process


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], timeout: float = 180.0) -> bool:
    """SIGKILL `process` as soon as `ready()` holds; False if it finished first (so nothing was interrupted).

    A process that fails, or never gets there, fails the test with the tail of its log (`process.args` names it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            process.send_signal(signal.SIGKILL)
            process.wait()
        if process.poll() is not None:
            if process.returncode == -signal.SIGKILL:
                return True
            assert process.returncode == 0, f"{process.args} failed before the kill point:\n{_tail(process)}"
            return False  # it finished on its own, before the kill point or just before the kill
        time.sleep(0.005)  # 5 ms against a language or training step of well over 100 ms
    process.kill()
    process.wait()
    raise AssertionError(f"the subprocess did not reach the kill point within {timeout:.0f} s:\n{_tail(process)}")


def _tail(process: subprocess.Popen) -> str:
    return getattr(process, "log_path", Path("/dev/null")).read_text(errors="replace")[-3000:]


def mtimes(folder: Path, pattern: str) -> dict[str, int]:
    """File name -> modification time (ns) of the files matching `pattern`."""
    return {path.name: path.stat().st_mtime_ns for path in sorted(folder.glob(pattern))}


def decoy_array(like: np.ndarray) -> np.ndarray:
    """An array of the same shape and dtype with other numbers, to notice if it is ever used."""
    return np.random.default_rng(1).normal(size=like.shape).astype(like.dtype)
