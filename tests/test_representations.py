"""Stopped forward equals the full forward; pooling is independent of padding side and batch composition."""

import numpy as np
import pytest
import torch

from midalign.models.extract import extract_states, length_sorted_batches, tokenize
from midalign.models.representations import LayerOutOfRangeError, decoder_blocks, forward_layers, num_blocks, pool
from tests.helpers import FLORES_LIKE, tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer([t for texts in FLORES_LIKE.values() for t in texts])


@pytest.mark.parametrize("architecture", ["llama", "gemma3"])
def test_stopped_forward_equals_hf_hidden_states(architecture: str, tokenizer) -> None:
    model = tiny_model(architecture, len(tokenizer))
    batch = tokenizer(FLORES_LIKE["eng_Latn"][:3] + FLORES_LIKE["rus_Cyrl"][:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        reference = model(**batch, output_hidden_states=True).hidden_states
        got = forward_layers(model, batch["input_ids"], batch["attention_mask"], range(num_blocks(model) + 1))
    assert len(reference) == num_blocks(model) + 1 == 5
    for layer, hidden in got.items():
        torch.testing.assert_close(hidden, reference[layer], rtol=0, atol=1e-6)


def test_no_block_above_k_and_no_lm_head_runs(tokenizer) -> None:
    model = tiny_model("llama", len(tokenizer))
    calls: list[str] = []
    for index, block in enumerate(decoder_blocks(model)):
        block.register_forward_hook(lambda *_args, i=index: calls.append(f"block{i + 1}"))
    model.lm_head.register_forward_hook(lambda *_args: calls.append("lm_head"))
    batch = tokenizer(["a b c"], return_tensors="pt")
    out = forward_layers(model, batch["input_ids"], batch["attention_mask"], [0, 2])
    assert sorted(out) == [0, 2]
    assert calls == ["block1", "block2"]
    with pytest.raises(LayerOutOfRangeError, match="0 \\(embeddings\\) to 4"):
        forward_layers(model, batch["input_ids"], batch["attention_mask"], [5])


def test_pool_known_answers_left_and_right_padding() -> None:
    hidden = torch.arange(12, dtype=torch.float32).view(1, 4, 3).repeat(2, 1, 1)  # [2, 4, 3]
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    torch.testing.assert_close(pool(hidden, right)[0], hidden[0, :3].mean(0))
    torch.testing.assert_close(pool(hidden, left)[0], hidden[0, 1:].mean(0))
    torch.testing.assert_close(pool(hidden, right, "last")[0], hidden[0, 2])
    torch.testing.assert_close(pool(hidden, left, "last")[0], hidden[0, 3])
    weights = torch.tensor([1.0, 2.0, 3.0]) / 6
    torch.testing.assert_close(pool(hidden, right, "weighted_mean")[0], (hidden[0, :3] * weights[:, None]).sum(0))
    torch.testing.assert_close(pool(hidden, left, "weighted_mean")[0], (hidden[0, 1:] * weights[:, None]).sum(0))
    special = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 1]])  # second row: only special tokens -> falls back to all
    torch.testing.assert_close(pool(hidden, right, "mean_no_special", special)[0], hidden[0, 1:3].mean(0))
    torch.testing.assert_close(pool(hidden, right, "mean_no_special", special)[1], hidden[1].mean(0))


@pytest.mark.parametrize("pooling", ["mean", "mean_no_special", "last", "weighted_mean"])
def test_extraction_independent_of_padding_side_and_batching(tokenizer, pooling: str) -> None:
    model = tiny_model("gemma3", len(tokenizer))
    sentences = [s[: 10 + 7 * i] for i, s in enumerate(FLORES_LIKE["deu_Latn"][:9])]  # varied lengths
    tokenized = tokenize(tokenizer, sentences, max_length=64, pooling=pooling)
    runs = []
    for side, batch_size in [("right", 1), ("right", 4), ("left", 3), ("left", 9)]:
        tokenizer.padding_side = side
        runs.append(extract_states(model, tokenizer, tokenized, [0, 2, 4], pooling, batch_size))
    tokenizer.padding_side = "right"
    for states in runs[1:]:
        np.testing.assert_allclose(states, runs[0], rtol=1e-4, atol=1e-5)
    one_by_one = np.stack(
        [extract_states(model, tokenizer, tokenize(tokenizer, [s], 64, pooling), [2], pooling)[0] for s in sentences]
    )
    np.testing.assert_allclose(one_by_one, runs[0][:, [1]], rtol=1e-4, atol=1e-5)


def test_length_sorted_batches_cover_every_row_once() -> None:
    batches = length_sorted_batches([3, 9, 1, 7, 5], batch_size=2)
    assert batches == [[1, 3], [4, 0], [2]]


def test_length_sorted_batches_bound_padding() -> None:
    lengths = [100, 90, 80, 70, 20, 18, 5]
    assert length_sorted_batches(lengths, batch_size=32, min_tokens=0) == [[0, 1, 2], [3], [4, 5], [6]]
    assert length_sorted_batches(lengths, batch_size=32, min_tokens=10_000) == [list(range(7))]  # all small
    rng = np.random.default_rng(0)
    lengths = list(rng.integers(5, 500, size=300))
    batches = length_sorted_batches(lengths, batch_size=16)
    assert sorted(i for rows in batches for i in rows) == list(range(300))
    for rows in batches:
        longest = lengths[rows[0]]
        assert len(rows) <= 16 and longest == max(lengths[i] for i in rows)
        small = (len(rows) - 1) * longest < 512  # still open when the short row came: padding allowed
        assert small or all(lengths[i] >= 0.75 * longest for i in rows)


def test_truncation_warns(tokenizer, caplog: pytest.LogCaptureFixture) -> None:
    tokenized = tokenize(tokenizer, ["word " * 50, "short"], max_length=8, pooling="mean", name="xx_Latn")
    assert max(len(ids) for ids in tokenized.input_ids) == 8
    assert "truncated" in caplog.text and "xx_Latn" in caplog.text
