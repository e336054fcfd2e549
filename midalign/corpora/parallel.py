"""Multi-way parallel corpora through one loader: FLORES+ on the hub, a local FLORES+-layout folder, or UDHR.

A hub id is read with `datasets.load_dataset(SOURCE, lang, split=...)`. A local folder declares its files the same
way (the README's `configs:` block), and its parquet files are read straight from those declarations with pyarrow:
`datasets` spends ~0.2-1 s per language building and caching a dataset we read once, which made `--langs all`
(442 languages) take minutes before any work started. The bundled UDHR corpus (`"udhr"`) lives inside the package in
that layout, so a fresh install needs no network.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import datasets
import pandas as pd
import pyarrow
import pyarrow.parquet
from tqdm.auto import tqdm

from midalign.corpora.languages import resolve_languages
from midalign.errors import MidalignError

logger = logging.getLogger(__name__)

BUNDLED_SOURCES = {"udhr": "corpora/udhr", "gettext": "corpora/gettext"}
FLORES_PLUS = "openlanguagedata/flores_plus"
# Tried in this order when no split is given: FLORES+'s devtest first; the bundled UDHR has one split, `train`
# (`datasets` reserves the name `all`, which loads every split, so `split="all"` works on UDHR too).
PREFERRED_SPLITS = ("devtest", "test", "dev", "validation", "train")


class CorpusError(MidalignError):
    """A source that cannot be read, or whose languages are not parallel."""


@dataclass
class ParallelCorpus:
    """Aligned sentences: `sentences[lang][i]` translates `sentences[other][i]`; `ids[i]` names row i."""

    source: str
    split: str
    ids: list[str]
    sentences: dict[str, list[str]] = field(default_factory=dict)

    @property
    def languages(self) -> list[str]:
        """The languages in load order."""
        return list(self.sentences)

    def sentences_hash(self, language: str) -> str:
        """A short hash of one language's ids and texts, so caches notice another subset, order or edited text."""
        rows = "\n".join(
            f"{sentence_id}\t{text}" for sentence_id, text in zip(self.ids, self.sentences[language], strict=True)
        )
        return hashlib.sha256(rows.encode()).hexdigest()[:16]

    def select(self, rows: Sequence[int]) -> ParallelCorpus:
        """The same languages restricted to the given row positions."""
        return ParallelCorpus(
            self.source,
            self.split,
            [self.ids[i] for i in rows],
            {lang: [texts[i] for i in rows] for lang, texts in self.sentences.items()},
        )


def resolve_source(source: str) -> str:
    """Turn `udhr` into the bundled folder; pass hub ids and local paths through."""
    if source in BUNDLED_SOURCES:
        return str(resources.files("midalign") / BUNDLED_SOURCES[source])
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise CorpusError(f"{source!r} is a file; expected a folder in FLORES+ layout or a hub id")
        return str(path)
    if source.count("/") != 1 or source.startswith((".", "/", "~")):
        raise CorpusError(
            f"corpus {source!r} not found: expected 'udhr', a local folder in FLORES+ layout "
            f"(<split>/<lang>.parquet with a README configs: block) or a hub id such as {FLORES_PLUS!r}"
        )
    return source


def _token() -> str | None:
    # FLORES+ is gated: the hub machinery reads HF_TOKEN itself, but passing it makes the dependency explicit.
    return os.environ.get("HF_TOKEN") or None


def _require_hub(source: str) -> None:
    """Fail in milliseconds, not after ~50 s of retries, when a hub corpus is wanted and the hub is out of reach."""
    from midalign import hub

    if not hub.offline_mode() and not hub.reachable():
        raise CorpusError(
            hub.unreachable_reason(f"corpus {source!r}") + " (a copy cached earlier is used with HF_HUB_OFFLINE=1)"
        )


def available_languages(source: str = "udhr", split: str | None = None) -> list[str]:
    """The language codes a source offers (its `configs:` names), sorted."""
    path = resolve_source(source)
    try:
        if Path(path).is_dir():  # what `datasets` would list, without building its module (~1 s)
            names = list(_local_data_files(Path(path)))
        else:
            _require_hub(source)
            names = datasets.get_dataset_config_names(path, token=_token())
    except Exception as error:  # the hub raises many types; all mean "cannot list this source"
        raise CorpusError(f"cannot list the languages of {source!r}: {error}") from error
    names = [name for name in names if name != "default"]
    if not names:
        raise CorpusError(f"{source!r} declares no languages (no `configs:` in its README)")
    return sorted(names)


@functools.lru_cache(maxsize=8)
def _declared_files(folder: Path, readme_mtime: int) -> dict[str, dict[str, list[Path]]]:
    from huggingface_hub.repocard import metadata_load

    configs = (metadata_load(folder / "README.md") or {}).get("configs") or []
    files: dict[str, dict[str, list[Path]]] = {}
    for config in configs:
        for entry in config.get("data_files") or []:
            paths = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
            found = [match for pattern in paths for match in sorted(folder.glob(pattern))]
            files.setdefault(config["config_name"], {}).setdefault(entry["split"], []).extend(found)
    return files


def _local_data_files(folder: Path) -> dict[str, dict[str, list[Path]]]:
    """language -> split -> files, from a local corpus's README `configs:` block (what `datasets` reads too).

    Cached per README version: listing, choosing a split and loading each read it, and globbing 442 patterns
    takes a while."""
    readme = folder / "README.md"
    try:
        stamp = readme.stat().st_mtime_ns
    except OSError:
        return {}
    return _declared_files(folder.resolve(), stamp)


def language_table(source: str = "udhr", split: str | None = None) -> pd.DataFrame:
    """The languages of a corpus with their names, scripts, families and resource levels, and, for a local corpus,
    its splits and the sentences of `split` (or of each language's default split); one row per language."""
    from midalign.corpora.languages import language_info

    languages = available_languages(source)
    folder = Path(resolve_source(source))
    local = _local_data_files(folder) if folder.is_dir() else {}
    rows = []
    for code in languages:
        info = vars(language_info(code))
        splits = local.get(code, {})
        chosen = split if split is not None else next((s for s in PREFERRED_SPLITS if s in splits), None)
        files = splits.get(chosen, []) if chosen is not None else []
        count = sum(pyarrow.parquet.read_metadata(f).num_rows for f in files if f.suffix == ".parquet") or None
        rows.append(
            {**info, "splits": " ".join(sorted(splits)), "split": chosen if files else "", "n_sentences": count}
        )
    return pd.DataFrame(rows).astype({"n_sentences": "Int64"})


def available_splits(source: str, language: str) -> list[str]:
    """The splits one language of a source has."""
    path = resolve_source(source)
    if Path(path).is_dir():
        return list(_local_data_files(Path(path)).get(language, {}))
    return list(datasets.get_dataset_split_names(path, language, token=_token()))


def default_split(source: str, language: str) -> str:
    """The split used when none is named: devtest for FLORES+, the only one (`train`) for UDHR."""
    splits = available_splits(source, language)
    for split in PREFERRED_SPLITS:
        if split in splits:
            return split
    return splits[0]


def _data_files(path: str, language: str, split: str) -> list[str]:
    """The files behind one language and split, for error messages (empty if even that cannot be told)."""
    try:
        return list(datasets.load_dataset_builder(path, language, token=_token()).config.data_files.get(split, []))
    except Exception:  # only used to say more in an error that is already being raised
        return []


def _read_parquet(files: Sequence[Path], source: str, language: str, split: str) -> pyarrow.Table:
    """A local language's declared parquet files as one table (what `load_dataset` would build, ~100x faster)."""
    tables = []
    for file in files:
        try:
            tables.append(pyarrow.parquet.read_table(file))
        except (OSError, pyarrow.ArrowException) as error:
            raise CorpusError(f"cannot read {language}/{split} of {source!r} ({file}): {error}") from error
    try:
        return pyarrow.concat_tables(tables, promote_options="default")
    except pyarrow.ArrowException as error:
        raise CorpusError(f"the files of {language}/{split} of {source!r} do not share a schema: {error}") from error


def read_columns(
    path: str, source: str, language: str, split: str, columns: Sequence[str], cache_dir: str | None = None
) -> dict[str, list]:
    """The named columns of one language and split, as lists: a local folder's declared parquet files read
    directly, anything else (a hub id, local csv/json) through `datasets`. Shared by the parallel and pair loaders."""
    declared = _local_data_files(Path(path)).get(language, {}) if Path(path).is_dir() else {}
    files = declared.get(split)
    if declared and not files:
        raise CorpusError(f"{source!r} has no split {split!r} for {language} (it has: {', '.join(declared)})")
    try:
        if files and all(file.suffix == ".parquet" for file in files):
            table = _read_parquet(files, source, language, split)
        else:  # a hub id, or local csv/json files: datasets reads every format
            table = datasets.load_dataset(path, language, split=split, token=_token(), cache_dir=cache_dir)
    # A damaged file fails while reading its schema (ArrowInvalid, a ValueError too) or its rows: say which file.
    except (pyarrow.ArrowException, datasets.exceptions.DatasetGenerationError) as error:
        files = ", ".join(_data_files(path, language, split)) or "its data files"
        raise CorpusError(
            f"cannot read {language}/{split} of {source!r} ({files}): {error.__cause__ or error}"
        ) from error
    except ValueError as error:  # datasets says "Unknown split" this way
        raise CorpusError(f"{source!r} has no split {split!r} for {language}: {error}") from error
    missing = set(columns) - set(table.column_names)
    if missing:
        raise CorpusError(f"{source!r} {language}/{split} lacks column(s) {sorted(missing)}")
    return {name: table[name].to_pylist() if isinstance(table, pyarrow.Table) else list(table[name])
            for name in columns}  # fmt: skip


def declared_columns(source: str) -> list[str] | None:
    """Column names of a local corpus's first language, from its first parquet file's schema (no rows read);
    None for a hub id or a corpus in another format."""
    path = Path(resolve_source(source))
    if not path.is_dir():
        return None
    for splits in _local_data_files(path).values():
        for files in splits.values():
            if files and files[0].suffix == ".parquet":
                return list(pyarrow.parquet.read_schema(files[0]).names)
        return None
    return None


def _load_language(
    path: str, source: str, language: str, split: str, cache_dir: str | None = None
) -> tuple[list[str], list[str]]:
    columns = read_columns(path, source, language, split, ("id", "text"), cache_dir)
    ids = [str(value) for value in columns["id"]]
    texts = columns["text"]
    empty = [ids[i] for i, text in enumerate(texts) if text is None or not str(text).strip()]
    if empty:
        raise CorpusError(f"{language} has {len(empty)} empty sentence(s) in {source!r}/{split}, ids {empty[:5]}")
    return ids, texts


def _align_to(reference: list[str], ids: list[str], texts: list[str], language: str, first: str) -> list[str]:
    """Reorder `texts` to the reference id order; different id sets are an error naming both languages."""
    if ids == reference:
        return texts
    if len(set(ids)) != len(ids) or set(ids) != set(reference):
        only_here = sorted(set(ids) - set(reference))[:5]
        only_there = sorted(set(reference) - set(ids))[:5]
        raise CorpusError(
            f"{language} is not parallel to {first}: {len(ids)} vs {len(reference)} sentences; "
            f"ids only in {language}: {only_here}; only in {first}: {only_there}"
            + ("; duplicate ids" if len(set(ids)) != len(ids) else "")
        )
    position = {sentence_id: i for i, sentence_id in enumerate(ids)}
    return [texts[position[sentence_id]] for sentence_id in reference]


@contextlib.contextmanager
def local_dataset_cache(path: str | os.PathLike) -> Iterator[str | None]:
    """A throwaway `datasets` cache folder while a local folder is read; None (the usual cache) for a hub id.

    `datasets` keys its cache of a local folder by the folder's name and README only, never by the files: another
    folder of the same name, or an edited file, would silently load the rows cached before. A throwaway cache costs
    ~15% more load time; hub sources stay cached, keyed by their revision. Read what you need inside the block:
    the folder and its arrow files go when it ends.
    """
    if not Path(path).is_dir():
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="midalign-dataset-", ignore_cleanup_errors=True) as cache_dir:
        yield cache_dir


def load_parallel(
    source: str = "udhr",
    langs: Sequence[str] | None = None,
    split: str | None = None,
    max_sentences: int | None = None,
) -> ParallelCorpus:
    """Load aligned sentences for `langs` (aliases allowed; None = every language) from one source."""
    path = resolve_source(source)
    available = available_languages(source)
    languages = available if langs is None else resolve_languages(langs, available)
    if not languages:
        raise CorpusError("no languages requested")
    split = split or default_split(source, languages[0])
    corpus: ParallelCorpus | None = None
    datasets.disable_progress_bars()  # one bar over languages beats hundreds of per-file bars
    with contextlib.ExitStack() as stack:
        stack.callback(datasets.enable_progress_bars)
        cache_dir = stack.enter_context(local_dataset_cache(path))
        for language in tqdm(languages, desc=f"load {Path(source).name}/{split}", unit="lang", leave=False):
            ids, texts = _load_language(path, source, language, split, cache_dir)
            if corpus is None:
                corpus = ParallelCorpus(source, split, ids)
            corpus.sentences[language] = _align_to(corpus.ids, ids, texts, language, languages[0])
    assert corpus is not None
    if max_sentences is not None and max_sentences < len(corpus.ids):
        corpus = corpus.select(range(max_sentences))
    logger.info("loaded %d languages x %d sentences from %s/%s", len(languages), len(corpus.ids), source, split)
    return corpus
