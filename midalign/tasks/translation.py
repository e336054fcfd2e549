"""Machine translation between English and each language of any parallel source `load_parallel` reads.

Sources: the bundled UDHR (`udhr`, offline), a local FLORES+-layout folder, or FLORES+ on the hub; a pair source
(the bundled `gettext` corpus of short software sentences, or any in its `id`/`text`/`en` layout; tested on its own
`test` split, disjoint from the dev split that chooses models, see `_pair_parallel`); or a WMT-style
source, one config per language pair named `xx-en` or `en-xx` whose rows hold `translation: {xx: ..., en: ...}`
(the hub's `wmt/wmt19`, `Helsinki-NLP/opus-100`, ...; locally, a folder with one `xx-en/` subfolder of
`train.jsonl`/`validation.jsonl`/`test.jsonl` files per pair). Each sentence gives one example per direction,
X->English (`x2en`) and English->X (`en2x`); both count towards the non-English language, with the direction in the
metric name (`x2en_bleu`, `en2x_chrf`, ...).

Scores are sacrebleu's corpus BLEU and chrF per language and direction. BLEU tokenizes Chinese with `zh` and
languages written without spaces (Japanese, Thai, Lao, Khmer, Burmese) by character; everything else with
sacrebleu's default `13a`. COMET is scored outside midalign, by `scripts/comet_score.py` in an environment of its own
(unbabel-comet pins transformers < 5, which cannot load the embedded Gemma 3), from the `predictions.jsonl` that
midalign-evaluate writes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from midalign.tasks import Example, TaskOptions

logger = logging.getLogger(__name__)

DIRECTIONS = ("x2en", "en2x")
_BLEU_TOKENIZE = {"cmn": "zh", "zho": "zh", "yue": "zh", "jpn": "char", "tha": "char", "lao": "char",
                  "khm": "char", "mya": "char"}  # fmt: skip


def _name(code: str) -> str:
    """The language's English name (`deu_Latn` -> German; members of a macrolanguage by its name: `cmn` -> Chinese)."""
    import langcodes

    from midalign.corpora.languages import MACROLANGUAGE_MEMBERS

    lang = code.split("_")[0]
    lang = next((macro for macro, members in MACROLANGUAGE_MEMBERS.items() if lang in members), lang)
    tag = langcodes.Language.get(lang)
    return tag.display_name() if tag.is_valid() and langcodes.tag_is_valid(lang) and tag.language_name() else code


def prompt(text: str, src: str, tgt: str) -> str:
    """`Translate from German to English.\\nGerman: ...\\nEnglish:` (language names in English)."""
    source, target = _name(src), _name(tgt)
    return f"Translate from {source} to {target}.\n{source}: {' '.join(text.split())}\n{target}:"


_PAIR_CONFIG = re.compile(r"^[a-z]{2,3}-[a-z]{2,3}$")  # WMT-style configs: `de-en`, `en-de`, `fr-en`, ...


def _pair_configs(source: str | None) -> list[str]:
    """The `xx-yy` pair configs of a WMT-style source (a local folder of pair subfolders, or a hub id); [] if none."""
    if source in (None, "udhr"):
        return []
    path = Path(source)
    if path.is_dir():
        return sorted(child.name for child in path.iterdir() if child.is_dir() and _PAIR_CONFIG.match(child.name))
    if path.exists():
        return []
    import datasets

    try:
        names = datasets.get_dataset_config_names(source)
    except Exception:  # not a hub dataset we can list (offline, gated, a FLORES+ id): not WMT-style
        return []
    return [name for name in names if _PAIR_CONFIG.match(name)]


def _wmt_code(language: str) -> str:
    """The ISO 639-1 code WMT-style sources key their sides by (`deu_Latn` -> `de`; `fil` stays `fil`)."""
    import langcodes

    return langcodes.standardize_tag(language.split("_")[0])


def _wmt_parallel(options: TaskOptions, configs: Sequence[str], langs: Sequence[str]) -> dict[str, list[tuple]]:
    """(id, X text, English text) of every language, read from its `xx-en` (or `en-xx`) pair config."""
    import datasets

    from midalign.corpora.parallel import local_dataset_cache
    from midalign.tasks import TaskError

    english = _wmt_code(options.english)
    split = options.task_split or "test"
    where = "data_dir" if Path(options.task_data).is_dir() else "name"  # a local folder's pair subfolder, or a config
    parallel = {}
    with local_dataset_cache(options.task_data) as cache_dir:
        for lang in langs:
            code = _wmt_code(lang)
            config = next((c for c in (f"{code}-{english}", f"{english}-{code}") if c in configs), None)
            if config is None:
                have = ", ".join(configs)
                raise TaskError(f"{options.task_data!r} has no {code}-{english} pair for {lang}; it has {have}")
            try:
                rows = datasets.load_dataset(options.task_data, split=split, cache_dir=cache_dir, **{where: config})
            except (OSError, ValueError) as error:
                raise TaskError(f"cannot load {config}/{split} from {options.task_data!r}: {error}") from error
            if "translation" not in rows.column_names:
                raise TaskError(f"{options.task_data!r} {config}/{split} has no `translation` column: is it WMT-style?")
            if options.max_examples is not None:  # before reading: a WMT train split has millions of rows
                rows = rows.select(range(min(options.max_examples, len(rows))))
            pairs = list(rows["translation"])  # read now: a local folder's cache goes when the block ends
            parallel[lang] = [(f"{config}-{index}", pair[code], pair[english]) for index, pair in enumerate(pairs)]
    return parallel


def _flores_parallel(options: TaskOptions, langs: Sequence[str]) -> tuple[str, dict[str, list[tuple]]]:
    """English's resolved code and (id, X text, English text) of every language, from a `load_parallel` source."""
    from midalign.corpora.parallel import load_parallel

    corpus = load_parallel(
        options.task_data or "udhr", [options.english, *langs], options.task_split, options.max_examples
    )
    english = corpus.languages[0]
    parallel = {
        lang: list(zip(corpus.ids, corpus.sentences[lang], corpus.sentences[english], strict=True))
        for lang in corpus.languages[1:]
    }
    return english, parallel


def _pair_parallel(options: TaskOptions, langs: Sequence[str]) -> dict[str, list[tuple]]:
    """(id, X text, English text) of every language from a pair source (the bundled `gettext`, or one in its
    layout). `test` is the source's own test split, which no model selection reads; a source without one is an
    error, since no part of its dev split is safe to test on (early stopping scores its first `--dev-pairs` by id
    hash, any number of them). `dev` is the first DEV_PAIRS of the dev split by id hash: the examples a merge sweep
    scores. `--max-examples` takes the first N by id hash."""
    from midalign.corpora.languages import resolve_languages
    from midalign.corpora.pairs import (
        DEV_PAIRS,
        DEV_SPLIT,
        TEST_SPLIT,
        dev_pairs,
        has_split,
        pairs_by_hash,
        read_pair_source,
    )
    from midalign.corpora.parallel import available_languages
    from midalign.tasks import TaskError

    split = options.task_split or TEST_SPLIT
    if split == TEST_SPLIT:
        resolved = resolve_languages(langs, available_languages(options.task_data))
        missing = [
            lang for lang in resolved if lang != options.english and not has_split(options.task_data, lang, TEST_SPLIT)
        ]
        if missing:
            raise TaskError(
                f"{options.task_data!r} has no test split for {', '.join(missing)}: translation is tested on a pair "
                "source's own test split, disjoint by English sentence from the dev split that chooses models"
            )
    stop = DEV_PAIRS if split == DEV_SPLIT else None
    if options.max_examples is not None:
        stop = options.max_examples if stop is None else min(stop, options.max_examples)
    if split == DEV_SPLIT:  # the examples that choose models: the same dev pairs as every other chooser
        corpus = dev_pairs(options.task_data, langs, options.english, stop)
    else:
        corpus = pairs_by_hash(read_pair_source(options.task_data, langs, split, options.english), 0, stop)
    empty = [lang for lang, pairs in corpus.pairs.items() if not len(pairs)]
    if empty:
        raise TaskError(f"{options.task_data!r} has no {split} pairs for {', '.join(empty)}")
    short = [lang for lang, pairs in corpus.pairs.items() if stop is not None and len(pairs) < stop]
    if short:
        logger.warning("%s/%s: fewer than %d pairs for %s", options.task_data, split, stop, short)
    return {lang: list(zip(p.ids, p.texts, p.english, strict=True)) for lang, p in corpus.pairs.items()}


def load_examples(options: TaskOptions) -> list[Example]:
    """Both directions (or those asked for) for every language paired with English, one example each."""
    import dataclasses

    from midalign.corpora.pairs import is_pair_source
    from midalign.tasks import TaskError

    if options.english is None:  # the pivot option's default: English
        options = dataclasses.replace(options, english="eng_Latn")
    bad = [d for d in options.directions if d not in DIRECTIONS]
    if bad or not options.directions:
        raise TaskError(f"--directions must be among {', '.join(DIRECTIONS)}, got {list(options.directions)}")
    if not options.task_langs:
        raise TaskError("translation needs --task-langs: the languages to translate from and into English")
    langs = [lang for lang in options.task_langs if lang != options.english]
    configs = _pair_configs(options.task_data)
    if configs:
        english, parallel = options.english, _wmt_parallel(options, configs, langs)
    elif options.task_data not in (None, "udhr") and is_pair_source(options.task_data):
        english, parallel = options.english, _pair_parallel(options, langs)
    else:
        english, parallel = _flores_parallel(options, langs)
    examples = []
    for lang, rows in parallel.items():
        for direction in options.directions:
            src, tgt = (lang, english) if direction == "x2en" else (english, lang)
            for sentence_id, foreign, english_text in rows:
                source, target = (foreign, english_text) if direction == "x2en" else (english_text, foreign)
                examples.append(
                    Example(
                        f"{sentence_id}-{src}-{tgt}",
                        lang,
                        prompt(source, src, tgt),
                        " ".join(target.split()),
                        {"direction": direction, "src_lang": src, "tgt_lang": tgt, "source": source},
                    )
                )
    return examples


def bleu_tokenizer(language: str) -> str:
    """sacrebleu's BLEU tokenizer for text in `language` (a FLORES-style code)."""
    return _BLEU_TOKENIZE.get(language.split("_")[0], "13a")


def score(examples: Sequence[Example], predictions: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (0-100) of one language, per direction."""
    import sacrebleu

    scores: dict[str, float] = {}
    for direction in DIRECTIONS:
        rows = [i for i, e in enumerate(examples) if e.meta.get("direction") == direction]
        if not rows:
            continue
        hypotheses = [predictions[i] for i in rows]
        references = [examples[i].reference for i in rows]
        target = examples[rows[0]].meta["tgt_lang"]
        scores[f"{direction}_bleu"] = sacrebleu.corpus_bleu(
            hypotheses, [references], tokenize=bleu_tokenizer(target)
        ).score
        scores[f"{direction}_chrf"] = sacrebleu.corpus_chrf(hypotheses, [references]).score
    return scores


def item_scores(examples: Sequence[Example], predictions: Sequence[str]) -> list[dict[str, float]]:
    """Per example: sentence chrF in its direction (`x2en_chrf` or `en2x_chrf`; their mean is the sentence-mean
    chrF, not `score`'s corpus chrF). What intervals over test sentences resample."""
    import sacrebleu

    return [
        {f"{e.meta['direction']}_chrf": sacrebleu.sentence_chrf(p, [e.reference]).score}
        for e, p in zip(examples, predictions, strict=True)
    ]
