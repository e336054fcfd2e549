"""Language-identity probe per layer: how well a linear classifier tells which language a pooled state is in.

A layer where languages align (retrieval peaks) is one where a sentence's meaning outweighs its language, so the
probe's accuracy there says how much language identity is still linearly readable. Each layer gets a
cross-validated multinomial logistic regression on standardised states; the folds split by sentence (every
language's copy of a sentence is in the same fold), so the probe is never tested on a sentence it was trained on
in another language, where it could recognise content instead of language.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from midalign.errors import MidalignError

logger = logging.getLogger(__name__)

FOLDS = 5
# lbfgs on standardised states. 100 iterations give the held-out accuracy of a (nearly) converged fit: identical
# with 1000 on the 48 UDHR languages; 0.9492 against 0.9500 with 300 on the first 100 of all 442 at block 11,
# where 20 iterations give 0.9418 (analysis/bench_probe.py; commands in analysis/gemma-3-270m_udhr*/README.md).
# Warm starts from the previous layer then cut the iterations of the layers after the first. No PCA: in a one-off
# trial (not kept) on 80 languages, keeping 128 of 640 dimensions lowered the accuracy by 0.02 and saved only half
# the time.
MAX_ITER = 100
OVERALL = "all"  # the `lang` of the rows over every language


def _layer_features(states: Mapping[str, np.ndarray], languages: Sequence[str], layer: int) -> np.ndarray:
    """[n_langs * N, H] float32: language-major, row i of each language block the same sentence."""
    return np.concatenate([np.asarray(states[lang][:, layer, :], dtype=np.float32) for lang in languages])


def sentence_folds(n_langs: int, n_sentences: int, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) row indices into the language-major [n_langs * N] rows, split by sentence: every language's
    copy of a sentence falls in the same fold, and every row is tested exactly once."""
    labels = np.repeat(np.arange(n_langs), n_sentences)
    sentences = np.tile(np.arange(n_sentences), n_langs)  # the group: one sentence in every language
    return list(GroupKFold(n_splits=folds).split(labels, labels, groups=sentences))


def language_probe(
    states: Mapping[str, np.ndarray],
    languages: Sequence[str],
    layers: Sequence[int],
    folds: int = FOLDS,
    max_iter: int = MAX_ITER,
) -> pd.DataFrame:
    """Held-out language-identity accuracy per layer: tidy `layer, lang, accuracy, n, chance`.

    `accuracy` is the share of a language's sentences (over all test folds) predicted as that language; the rows
    with lang `all` pool every prediction. `chance` is 1 / n_langs, the majority baseline too (every language has
    the same sentences). `states` are per-language arrays [N, L + 1, H] of the same N sentences.
    """
    n_langs = len(languages)
    n_sentences = int(np.asarray(states[languages[0]]).shape[0])
    if n_langs < 2:
        raise MidalignError("the language probe needs at least two languages")
    folds = min(folds, n_sentences)
    if folds < 2:
        raise MidalignError("the language probe needs at least two sentences to cross-validate")
    labels = np.repeat(np.arange(n_langs), n_sentences)
    splits = sentence_folds(n_langs, n_sentences, folds)
    # One model per fold, reused layer after layer: neighbouring layers are similar, so each fit starts from the
    # previous layer's solution of the same fold (never another fold's, which saw this fold's test sentences).
    models = [LogisticRegression(max_iter=max_iter, warm_start=True) for _ in splits]
    correct = np.zeros((len(layers), n_langs))
    unconverged = 0
    started = time.perf_counter()
    for position, layer in enumerate(tqdm(layers, desc="probe", unit="layer", leave=False)):
        features = _layer_features(states, languages, layer)
        for model, (train, test) in zip(models, splits, strict=True):
            scaler = StandardScaler().fit(features[train])  # raw states have a few dimensions in the hundreds
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                model.fit(scaler.transform(features[train]), labels[train])
            unconverged += any(issubclass(w.category, ConvergenceWarning) for w in caught)
            predicted = model.predict(scaler.transform(features[test]))
            np.add.at(correct[position], labels[test], predicted == labels[test])
    if unconverged:
        logger.info("probe: %d of %d fits stopped at max_iter %d", unconverged, len(layers) * len(splits), max_iter)
    logger.info(
        "probe: %d languages x %d sentences x %d layers in %.1f s",
        n_langs,
        n_sentences,
        len(layers),
        time.perf_counter() - started,
    )
    rows = []
    for position, layer in enumerate(layers):
        per_language = correct[position] / n_sentences
        rows.append(pd.DataFrame({"layer": layer, "lang": list(languages), "accuracy": per_language}))
        overall = correct[position].sum() / (n_langs * n_sentences)
        rows.append(pd.DataFrame({"layer": [layer], "lang": [OVERALL], "accuracy": [overall]}))
    table = pd.concat(rows, ignore_index=True)
    table["n"] = np.where(table["lang"] == OVERALL, n_langs * n_sentences, n_sentences)
    table["chance"] = 1.0 / n_langs
    return table
