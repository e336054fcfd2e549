"""Alignment pair corpora: X<->English pairs for the contrastive loss, from two kinds of source.

- **Pair sources** (one table per language with columns `id`, `text`, `en`; the bundled `gettext` corpus, or a
  Tatoeba-style hub dataset or local folder in that layout): every row is one pair; `id` names the English
  sentence, so the same English sentence has the same id in every language. Their `train` split is trained on,
  their `dev` split chooses models (early stopping, merge sweeps) and their `test` split, where they have one,
  only evaluates (the translation recipe's test examples); the bundled gettext has all three, disjoint by id.
- **Multi-way sources** (FLORES+, UDHR: one table per language with `id`, `text`, rows aligned by id): each
  language's row i pairs with English row i. They have no dev split of their own: `--heldout-fraction` of the
  sentence ids (hashed, the same for every run) is held out and serves as the dev set.

Both end as a `PairCorpus`: per language, aligned lists of ids, texts and English texts.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from midalign.corpora import parallel as data
from midalign.corpora.languages import resolve_languages
from midalign.corpora.parallel import CorpusError, load_parallel
from midalign.options import DEV_PAIRS as DEV_PAIRS  # re-exported: the dev split's concept

logger = logging.getLogger(__name__)

PAIR_COLUMNS = ("id", "text", "en")
DEV_SPLIT = "dev"
# Pairs per language of a dev split that choose models (early stopping, merge sweeps, a task's dev examples): the
# first DEV_PAIRS (midalign.options; `--dev-pairs` in training, up to the whole split) by id hash. Since any part of
# the dev split may choose a model, tests read the source's own test split, never the rest of dev.
TEST_SPLIT = "test"


@dataclass
class PairSet:
    """One language's pairs: `texts[i]` translates `english[i]`; `ids[i]` names the English sentence."""

    ids: list[str]
    texts: list[str]
    english: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, rows: Sequence[int]) -> PairSet:
        """The pairs at the given positions, in that order."""
        return PairSet([self.ids[i] for i in rows], [self.texts[i] for i in rows], [self.english[i] for i in rows])


@dataclass
class PairCorpus:
    """X<->English pairs per language from one source and split."""

    source: str
    split: str
    english: str
    pairs: dict[str, PairSet] = field(default_factory=dict)

    @property
    def languages(self) -> list[str]:
        """The non-English languages in load order."""
        return list(self.pairs)

    def counts(self) -> dict[str, int]:
        """Pairs per language."""
        return {lang: len(pairs) for lang, pairs in self.pairs.items()}

    def english_by_id(self) -> dict[str, str]:
        """The English sentences by id, in first-seen order (a multi-way corpus shares them between languages)."""
        english: dict[str, str] = {}
        for pairs in self.pairs.values():
            english.update(zip(pairs.ids, pairs.english, strict=True))
        return english


def from_parallel(corpus: data.ParallelCorpus, english: str, rows: Sequence[int] | None = None) -> PairCorpus:
    """Pairs of every language of a multi-way corpus with its English rows (all rows, or the given ones)."""
    if english not in corpus.sentences:
        raise CorpusError(f"pivot language {english} is not among the loaded languages {corpus.languages}")
    picked = list(range(len(corpus.ids))) if rows is None else list(rows)
    ids = [corpus.ids[i] for i in picked]
    en = [corpus.sentences[english][i] for i in picked]
    pairs = {
        lang: PairSet(ids, [texts[i] for i in picked], en)
        for lang, texts in corpus.sentences.items()
        if lang != english
    }
    return PairCorpus(corpus.source, corpus.split, english, pairs)


def _first_config_columns(path: str) -> list[str] | None:
    """Column names of a source's first language (None if it cannot be told without reading data)."""
    try:
        first = data.available_languages(path)[0]
        builder = datasets.load_dataset_builder(path, first, token=data._token())
    except Exception:  # any failure here is reported by the loader that follows, with more context
        return None
    features = builder.info.features
    return list(features) if features is not None else None


def is_pair_source(source: str) -> bool:
    """Whether `source` holds X<->English pairs (an `en` column) rather than multi-way parallel sentences."""
    path = data.resolve_source(source)
    columns = data.declared_columns(source)  # a local parquet corpus: its schema, in milliseconds
    if columns is not None:
        return "en" in columns
    datasets.disable_progress_bars()
    try:
        columns = _first_config_columns(path)
    finally:
        datasets.enable_progress_bars()
    if columns is None:  # parquet without declared features: read one language's first row
        with data.local_dataset_cache(path) as cache_dir:
            first = data.available_languages(source)[0]
            try:
                table = datasets.load_dataset(path, first, split=None, token=data._token(), cache_dir=cache_dir)
            except Exception as error:  # the hub raises many types; all mean "cannot read this source"
                raise CorpusError(f"cannot read {source!r}: {error}") from error
            columns = next(iter(table.values())).column_names
    return "en" in columns


def _load_pair_language(path: str, source: str, language: str, split: str, cache_dir: str | None) -> PairSet:
    columns = data.read_columns(path, source, language, split, PAIR_COLUMNS, cache_dir)
    ids, texts, english = ([str(v) for v in columns[name]] for name in PAIR_COLUMNS)
    empty = [ids[i] for i in range(len(ids)) if not texts[i].strip() or not english[i].strip()]
    if empty:
        raise CorpusError(f"{language} has {len(empty)} empty side(s) in {source!r}/{split}, ids {empty[:5]}")
    if len(set(ids)) != len(ids):
        raise CorpusError(f"{language} in {source!r}/{split} repeats pair ids; one row per English sentence")
    return PairSet(ids, texts, english)


def load_pairs(source: str, langs: Sequence[str], split: str, english: str = "eng_Latn") -> PairCorpus:
    """X<->English pairs of `langs` (aliases allowed) from a pair source, or from a multi-way one via its English."""
    if not is_pair_source(source):
        available = data.available_languages(source)
        wanted = resolve_languages([english, *langs], available)
        corpus = load_parallel(source, wanted, split)
        return from_parallel(corpus, wanted[0])
    return read_pair_source(source, langs, split, english)


# Salt of the id-hash order that fixes every subset by id: the held-out split of a multi-way corpus, the dev pairs
# that choose models, the sample the alignment space's statistics use. Fixed, so runs with another --seed share them.
HASH_SALT = "midalign-heldout"


def hash_order(ids: Sequence[str]) -> list[int]:
    """Positions of `ids` by their salted sha256: an order that does not depend on the order of the rows."""
    return sorted(range(len(ids)), key=lambda i: hashlib.sha256(f"{HASH_SALT}:{ids[i]}".encode()).hexdigest())


def pairs_by_hash(corpus: PairCorpus, start: int = 0, stop: int | None = None) -> PairCorpus:
    """Each language's pairs at positions [start, stop) of the id-hash order, in their original order: fixed subsets
    that do not depend on row order, and disjoint for disjoint ranges."""
    picked = {lang: pairs.select(sorted(hash_order(pairs.ids)[start:stop])) for lang, pairs in corpus.pairs.items()}
    return PairCorpus(corpus.source, corpus.split, corpus.english, picked)


def first_pairs_by_hash(corpus: PairCorpus, count: int) -> PairCorpus:
    """Each language's `count` pairs whose ids hash smallest, in their original order (a fixed subset)."""
    return pairs_by_hash(corpus, 0, count)


def dev_pairs(source: str, langs: Sequence[str], english: str = "eng_Latn", count: int = DEV_PAIRS) -> PairCorpus:
    """The pairs that choose models, the one definition every chooser uses (early stopping, merge sweeps, the
    translation recipe's dev examples): each language's first `count` pairs of the dev split by id hash."""
    return first_pairs_by_hash(read_pair_source(source, langs, DEV_SPLIT, english), count)


def read_pair_source(source: str, langs: Sequence[str], split: str, english: str = "eng_Latn") -> PairCorpus:
    """X<->English pairs of `langs` from a source already known to be a pair source (`is_pair_source`: reading
    the first language's schema to tell costs seconds, so callers that know skip it)."""
    path = data.resolve_source(source)
    available = data.available_languages(source)
    languages = [lang for lang in resolve_languages(langs, available) if lang != english]
    if not languages:
        raise CorpusError("no alignment languages besides the pivot")
    corpus = PairCorpus(source, split, english)
    datasets.disable_progress_bars()
    with contextlib.ExitStack() as stack:
        stack.callback(datasets.enable_progress_bars)
        cache_dir = stack.enter_context(data.local_dataset_cache(path))
        for language in languages:
            corpus.pairs[language] = _load_pair_language(path, source, language, split, cache_dir)
    logger.info(
        "loaded %d X<->%s pairs in %d languages from %s/%s",
        sum(corpus.counts().values()),
        english,
        len(languages),
        source,
        split,
    )
    return corpus


def has_split(source: str, language: str, split: str) -> bool:
    """Whether one language of a source has the named split."""
    try:
        return split in data.available_splits(source, language)
    except Exception:  # a source that cannot list splits has none we could use
        return False


def corpus_digest(source: str) -> str:
    """sha256 over a local corpus's data files (relative path and bytes of every parquet file, in path order), so a
    run record says exactly which version of the data it used; a hub id is named, not hashed."""
    path = Path(data.resolve_source(source))
    if not path.is_dir():
        return f"hub:{source}"
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*.parquet")):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return f"sha256:{digest.hexdigest()}"
