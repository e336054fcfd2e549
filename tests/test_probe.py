"""The language-identity probe: folds split by sentence, known answers, the tidy table."""

import numpy as np
import pytest

from midalign.analysis.probe import OVERALL, language_probe, sentence_folds
from midalign.errors import MidalignError


def test_folds_split_by_sentence_and_test_every_row_once() -> None:
    n_langs, n_sentences = 4, 12
    tested = []
    for train, test in sentence_folds(n_langs, n_sentences, folds=5):
        train_sentences, test_sentences = set(train % n_sentences), set(test % n_sentences)
        assert not train_sentences & test_sentences, "a sentence in training and test (in some language)"
        assert len(test) == n_langs * len(test_sentences), "a test sentence in every language"
        tested.extend(test)
    assert sorted(tested) == list(range(n_langs * n_sentences))


def test_probe_finds_identity_where_it_is_and_chance_where_it_is_not() -> None:
    rng = np.random.default_rng(0)
    n_langs, n_sentences, hidden = 6, 30, 16
    content = rng.normal(size=(n_sentences, hidden))
    offsets = rng.normal(scale=3.0, size=(n_langs, hidden))
    states = {}
    for lang in range(n_langs):
        layer0 = content + offsets[lang] + rng.normal(scale=0.1, size=content.shape)  # identity: a language offset
        layer1 = content + rng.normal(scale=0.1, size=content.shape)  # meaning only: no language signal
        states[f"l{lang}"] = np.stack([layer0, layer1], axis=1).astype(np.float32)  # [N, 2 layers, H]
    table = language_probe(states, list(states), [0, 1])
    assert list(table.columns) == ["layer", "lang", "accuracy", "n", "chance"]
    overall = table[table.lang == OVERALL].set_index("layer")
    assert overall.loc[0, "accuracy"] == 1.0
    assert overall.loc[1, "accuracy"] < 0.4  # chance 1/6: a probe that memorised sentences would do no better
    assert np.allclose(table.chance, 1 / 6) and (overall.n == n_langs * n_sentences).all()
    per_language = table[table.lang != OVERALL]
    assert len(per_language) == 2 * n_langs and (per_language.n == n_sentences).all()
    np.testing.assert_allclose(per_language.groupby("layer").accuracy.mean(), overall.accuracy)


def test_probe_needs_two_languages_and_two_sentences() -> None:
    with pytest.raises(MidalignError, match="two languages"):
        language_probe({"a": np.zeros((5, 1, 3))}, ["a"], [0])
    with pytest.raises(MidalignError, match="two sentences"):
        language_probe({"a": np.zeros((1, 1, 3)), "b": np.ones((1, 1, 3))}, ["a", "b"], [0])
