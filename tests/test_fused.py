"""The compiled forward (--compile) gives eager's pooled states within fp32 rounding and the same retrievals, still
stops at the deepest requested block, and is what extract_corpus runs when asked.

The first run on a machine compiles for real (about 2.5 min on the busy 2-core VM); later runs find the kernels in
inductor's cache (TORCHINDUCTOR_CACHE_DIR, default /tmp/torchinductor_<user>) and take about 20 s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from midalign.analysis.metrics import pair_metrics
from midalign.corpora.parallel import ParallelCorpus, load_parallel
from midalign.models.cache import StateCache
from midalign.models.extract import extract_corpus, extract_states, tokenize
from midalign.models.fused import compile_blocks, pooling_for
from midalign.models.loading import load_model
from midalign.models.representations import decoder_blocks, forward_layers, num_blocks, pool
from tests.helpers import FLORES_LIKE, tiny_model, tiny_tokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # compiled and eager reduce in the same thread layout


def retrievals(states: dict[str, np.ndarray]) -> torch.Tensor:
    """Retrieval accuracy [layers, n_langs, n_langs] of every directed pair at every layer."""
    stacked = torch.from_numpy(np.stack(list(states.values())))  # [n_langs, N, L + 1, H]
    return torch.stack([pair_metrics(stacked[:, :, layer])["retrieval_acc"] for layer in range(stacked.shape[2])])


def assert_same_as_eager(eager: dict[str, np.ndarray], compiled: dict[str, np.ndarray]) -> None:
    for lang, states in eager.items():
        scale = np.abs(states).max()  # fp32 rounding is relative to the states' magnitude
        np.testing.assert_allclose(compiled[lang], states, rtol=1e-4, atol=1e-5 * scale, err_msg=lang)
    torch.testing.assert_close(retrievals(compiled), retrievals(eager), rtol=0, atol=0)


@pytest.mark.parametrize("architecture", ["llama", "gemma3"])
def test_compiled_states_match_eager(architecture: str, tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer([t for texts in FLORES_LIKE.values() for t in texts])
    model = tiny_model(architecture, len(tokenizer))
    # Varied lengths, so batches of several shapes (and of one row) meet the dynamic-shape graphs.
    sentences = {lang: [s[: 12 + 3 * i] for i, s in enumerate(texts)] for lang, texts in FLORES_LIKE.items()}
    corpus = ParallelCorpus("fixture", "test", [str(i) for i in range(30)], sentences)
    layers = list(range(num_blocks(model) + 1))
    eager = {
        lang: extract_states(model, tokenizer, tokenize(tokenizer, texts, 64, "mean"), layers, "mean", 8)
        for lang, texts in sentences.items()
    }
    compiled = extract_corpus(
        model, tokenizer, corpus, StateCache(tmp_path), "tiny", "fp32", batch_size=8, compile_forward=True
    )
    assert all(getattr(block, "_midalign_compiled", False) for block in decoder_blocks(model))
    assert pooling_for(model) is not pool  # the hooks pool through the compiled pooling too
    assert_same_as_eager(eager, compiled)

    # The stop still holds: hooks on the blocks run around the compiled forwards, and nothing above layer 2 runs.
    calls: list[int] = []
    for index, block in enumerate(decoder_blocks(model)):
        block.register_forward_hook(lambda *_args, i=index: calls.append(i + 1))
    batch = tokenizer(sentences["eng_Latn"][:3], padding=True, return_tensors="pt")
    with torch.inference_mode():
        out = forward_layers(model, batch["input_ids"], batch["attention_mask"], [0, 2])
    assert sorted(out) == [0, 2] and calls == [1, 2]
    assert compile_blocks(model) is model  # idempotent: blocks already compiled are left as they are


@pytest.mark.real_model
def test_compiled_states_match_eager_real_model() -> None:
    model, tokenizer = load_model(dtype="fp32", device="cpu")
    languages = ["eng_Latn", "deu_Latn", "rus_Cyrl", "arb_Arab"]
    corpus = load_parallel("udhr", languages, max_sentences=12)
    layers = list(range(num_blocks(model) + 1))
    tokenized = {lang: tokenize(tokenizer, corpus.sentences[lang], 512, "mean") for lang in languages}
    eager = {lang: extract_states(model, tokenizer, tokenized[lang], layers) for lang in languages}
    compile_blocks(model)
    compiled = {lang: extract_states(model, tokenizer, tokenized[lang], layers) for lang in languages}
    assert_same_as_eager(eager, compiled)
