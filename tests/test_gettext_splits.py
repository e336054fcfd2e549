"""The bundled gettext corpus's three splits: test is disjoint from train and dev in every language (by id and by
English text), dev is the previous build's byte for byte, and no model selection path can reach a test sentence,
whatever `--dev-pairs` says."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import csv
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from midalign.corpora import build_gettext as bg
from midalign.corpora.pairs import (
    DEV_PAIRS,
    DEV_SPLIT,
    TEST_SPLIT,
    corpus_digest,
    first_pairs_by_hash,
    read_pair_source,
)
from midalign.errors import MidalignError
from midalign.options import MergeConfig, TaskOptions, TrainConfig

CORPUS = Path(bg.__file__).parent / "gettext"
# The languages the transfer study tests on; each needs >= 200 distinct test sentences.
STUDY_LANGS = ("deu_Latn", "fra_Latn", "spa_Latn", "ita_Latn", "pol_Latn", "rus_Cyrl", "por_Latn", "nld_Latn",
               "ces_Latn", "ukr_Cyrl", "tur_Latn", "ell_Grek")  # fmt: skip
# corpus_digest of the dev/ folder of the build before the test split (commit 6a9e161, corpus digest
# bg.PREVIOUS_DIGEST); a rebuild of that commit gave byte-identical files.
PREVIOUS_DEV_DIGEST = "sha256:5aaeeb02c304ecfddfa9fda581376e243fc0c9f895a520201cde1bf1a7d434cf"
LANGS = ["deu_Latn", "ell_Grek", "tet_Latn"]  # tet_Latn: the smallest test split


@pytest.fixture(scope="module")
def columns() -> dict[str, dict[str, dict[str, list[str]]]]:
    """code -> split -> {"id": [...], "en": [...]} of every shipped language."""
    codes = sorted(path.stem for path in (CORPUS / "train").glob("*.parquet"))
    return {
        code: {split: pq.read_table(CORPUS / split / f"{code}.parquet", columns=["id", "en"]).to_pydict()
               for split in bg.SPLITS}
        for code in codes
    }  # fmt: skip


def test_every_language_has_every_split_and_the_study_languages_200_test_pairs(columns) -> None:
    assert len(columns) == 136
    for split in bg.SPLITS:
        assert sorted(path.stem for path in (CORPUS / split).glob("*.parquet")) == sorted(columns), split
    assert min(len(splits[TEST_SPLIT]["id"]) for splits in columns.values()) > 0
    assert {code: len(columns[code][TEST_SPLIT]["id"]) >= 200 for code in STUDY_LANGS} == dict.fromkeys(
        STUDY_LANGS, True
    )


def test_test_split_is_disjoint_from_train_and_dev_in_every_language(columns) -> None:
    for code, splits in columns.items():
        ids = {split: set(splits[split]["id"]) for split in bg.SPLITS}
        assert not ids[TEST_SPLIT] & ids[DEV_SPLIT], code
        assert not ids[TEST_SPLIT] & ids["train"], code
        assert not ids[DEV_SPLIT] & ids["train"], code


def test_no_test_sentence_is_in_any_languages_train_or_dev(columns) -> None:
    """Across languages: a test English sentence (its id, its exact text or its case- and punctuation-folded key)
    is in no language's train or dev split."""
    seen: dict[str, set[str]] = {"id": set(), "en": set(), "key": set()}
    test: dict[str, set[str]] = {"id": set(), "en": set(), "key": set()}
    for splits in columns.values():
        for split, values in splits.items():
            into = test if split == TEST_SPLIT else seen
            into["id"].update(values["id"])
            into["en"].update(values["en"])
            into["key"].update(bg.english_key(en) for en in values["en"])
    assert len(test["id"]) > 1000
    for kind in ("id", "en", "key"):
        assert not test[kind] & seen[kind], (kind, sorted(test[kind] & seen[kind])[:5])


def test_dev_split_is_the_previous_builds_byte_for_byte() -> None:
    assert corpus_digest(str(CORPUS / DEV_SPLIT)) == PREVIOUS_DEV_DIGEST
    assert corpus_digest("gettext") != bg.PREVIOUS_DIGEST  # the corpus did change: train lost its test ids


def test_counts_against_the_previous_build() -> None:
    """Per language and source: dev as before, train + test = the previous train (the cap kept the same pairs)."""

    def read(path: Path) -> Counter[tuple[str, str, str]]:
        with path.open(encoding="utf-8") as handle:
            return Counter({(r["lang"], r["source"], r["split"]): int(r["pairs"]) for r in csv.DictReader(handle)})

    before, now = read(CORPUS / "counts_v2.csv"), read(CORPUS / "counts.csv")
    assert {k[:2] for k in before} == {k[:2] for k in now} and {k[2] for k in before} == {"train", DEV_SPLIT}
    for lang, source, split in before:
        if split == DEV_SPLIT:
            assert now[(lang, source, split)] == before[(lang, source, split)], (lang, source)
        else:
            moved = now[(lang, source, "train")] + now[(lang, source, TEST_SPLIT)]
            assert moved == before[(lang, source, "train")], (lang, source)
    assert sum(n for k, n in now.items() if k[2] == TEST_SPLIT) > 0


def test_training_reads_train_and_selects_on_dev_at_any_dev_pairs() -> None:
    """Early stopping scores the first --dev-pairs of the dev split: even all of it holds no test sentence."""
    from midalign.training.pipeline import load_alignment_data

    data = load_alignment_data(TrainConfig(align_langs=LANGS, eval=False, dev_pairs=10**6))
    assert data.train.split == "train" and data.dev is not None and data.dev.split == DEV_SPLIT
    for lang in LANGS:
        stored = {s: read_pair_source("gettext", [lang], s).pairs[lang].ids for s in bg.SPLITS}
        assert sorted(data.dev.pairs[lang].ids) == sorted(stored[DEV_SPLIT]), "the whole dev split, nothing else"
        assert not set(data.dev.pairs[lang].ids) & set(stored[TEST_SPLIT])
        assert sorted(data.train.pairs[lang].ids) == sorted(stored["train"])
    for split in (DEV_SPLIT, TEST_SPLIT):  # a pair source trains on train only
        with pytest.raises(MidalignError, match=f"--align-split {split}: a pair source trains on its train split"):
            load_alignment_data(TrainConfig(align_langs=LANGS, eval=False, align_split=split))


def test_merge_sweep_scores_the_dev_split() -> None:
    """The merge sweep's retrieval pairs and its task examples (translation) are dev pairs, never test ones."""
    from midalign.tasks import translation as mt
    from midalign.training.merge import _dev_data

    common = {"task_adapter": "t", "align_adapter": "a", "align_data": "gettext", "align_langs": LANGS}
    config = MergeConfig(**common, sweep=["0,1"], task="translation", task_data="gettext", task_langs=LANGS,
                         max_examples=10**6)  # fmt: skip
    corpus, dev, english = _dev_data(config, SimpleNamespace(run=None, languages=lambda kind: LANGS))
    assert corpus is None and english == "eng_Latn" and dev.split == DEV_SPLIT
    test_ids = {lang: set(read_pair_source("gettext", [lang], TEST_SPLIT).pairs[lang].ids) for lang in LANGS}
    stored = read_pair_source("gettext", LANGS, DEV_SPLIT)
    assert dev.pairs == first_pairs_by_hash(stored, DEV_PAIRS).pairs
    examples = mt.load_examples(config)  # the sweep's task examples: the merge's default split is dev
    assert config.task_split == DEV_SPLIT and examples
    for lang in LANGS:
        assert not set(dev.pairs[lang].ids) & test_ids[lang]
        ids = {e.id.split("-")[0] for e in examples if e.language == lang}
        assert ids and ids <= set(stored.pairs[lang].ids) and not ids & test_ids[lang]
    with pytest.raises(MidalignError, match="--split test: a merge sweep chooses weights"):
        MergeConfig(**common, sweep=["0,1"], task="translation", task_data="gettext", task_split="test")


def test_translation_dev_examples_stay_in_dev_and_test_examples_in_test() -> None:
    from midalign.tasks import translation as mt

    for split in (DEV_SPLIT, TEST_SPLIT):
        options = TaskOptions(task_data="gettext", task_split=split, task_langs=LANGS, directions=["x2en"],
                              max_examples=10**6)  # fmt: skip
        examples = mt.load_examples(options)
        for lang in LANGS:
            stored = {s: set(read_pair_source("gettext", [lang], s).pairs[lang].ids) for s in bg.SPLITS}
            ids = {e.id.split("-")[0] for e in examples if e.language == lang}
            assert ids and ids <= stored[split], (split, lang)
            if split == TEST_SPLIT:
                assert ids == stored[TEST_SPLIT]
            else:
                assert len(ids) == min(DEV_PAIRS, len(stored[DEV_SPLIT]))
