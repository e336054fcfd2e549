"""CLDR localization: an offline task with a known right answer in every language babel covers.

The model reads a value in a canonical, language-neutral form after the language's own name (its CLDR
autonym) and writes that value as the language formats it, e.g. `Deutsch: 2024-03-15 →` ` 15. März 2024`.
Only the autonym differs between languages, so the task is the same in each; the answers come from babel
(`format_date(d, format="long", locale=...)` etc.). Kinds:

- `date_long`: `2024-03-15` -> `15. März 2024` (long date: month names, their case, the order of parts);
- `month_year`: `2024-03` -> `März 2024` (standalone month name and year; the shortest outputs);
- `number`: `1234567.25` -> `1.234.567,25` (decimal and grouping symbols);
- `currency`: `EUR 1234.50` -> `1.234,50 €`.

Answers are NFKC-normalized (CLDR puts no-break and narrow no-break spaces in many formats; NFKC makes them plain
spaces, which a model can type). Items are the same in every language (the test set is multi-way parallel) and
each canonical value belongs to exactly one split, chosen by hashing it with the seed: splits never overlap,
whatever their sizes. Run `python -m midalign.tasks.cldr --help` to write train/dev/test JSONL.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import langcodes
from babel import Locale, dates, localedata, numbers

from midalign.corpora.languages import CODE_PATTERN, MACROLANGUAGE_MEMBERS, split_code
from midalign.options import CldrDataConfig
from midalign.tasks import Example, TaskError, TaskOptions

logger = logging.getLogger(__name__)

KINDS = ("date_long", "month_year", "number", "currency")
SPLITS = ("train", "dev", "test")
DEFAULT_LANGS = ["eng_Latn", "deu_Latn", "fra_Latn", "spa_Latn", "ita_Latn", "pol_Latn", "rus_Cyrl"]
_FIRST_DAY = dt.date(1900, 1, 1)
_N_DAYS = (dt.date(2099, 12, 31) - _FIRST_DAY).days + 1
_CURRENCIES = ("EUR", "USD", "GBP", "JPY")


# ---- languages ---------------------------------------------------------------------------------------------------
@functools.cache
def _babel_locales() -> frozenset[str]:
    return frozenset(localedata.locale_identifiers())


def locale_for(code: str) -> str:
    """The babel locale of a FLORES-style code (`deu_Latn` -> `de`, `cmn_Hans` -> `zh_Hans`) or a babel id."""
    available = _babel_locales()
    if code in available:
        return code
    if not CODE_PATTERN.match(code):
        raise TaskError(f"{code!r} is neither a FLORES-style code like 'deu_Latn' nor a babel locale like 'de'")
    lang, script, variant = split_code(code)
    macros = [macro for macro, members in MACROLANGUAGE_MEMBERS.items() if lang in members]
    for base in dict.fromkeys(langcodes.standardize_tag(tag) for tag in [lang, *macros]):
        candidates = [f"{base}_{script}_{variant}", f"{base}_{variant}"] if variant else []
        candidates.append(f"{base}_{script}")
        if langcodes.Language.get(base).maximize().script == script:
            candidates.append(base)
        for candidate in candidates:
            if candidate in available:
                return candidate
    raise TaskError(f"babel has no CLDR locale for {code!r}")


def flores_code(language: str) -> str:
    """A FLORES-style code for a FLORES code (returned as is) or a babel locale id (`de` -> `deu_Latn`)."""
    if CODE_PATTERN.match(language):
        return language
    if language not in _babel_locales():
        raise TaskError(f"{language!r} is neither a FLORES-style code like 'deu_Latn' nor a babel locale like 'de'")
    locale = Locale.parse(language)
    tag = langcodes.Language.get(locale.language)
    script = locale.script or tag.maximize().script
    return f"{tag.to_alpha3()}_{script}" + (f"_{locale.territory}" if locale.territory else "")


def autonym(locale: str) -> str:
    """The language's name in itself, from CLDR (`de` -> `Deutsch`, `pl` -> `polski`)."""
    return Locale.parse(locale).get_display_name(locale)


# ---- items -------------------------------------------------------------------------------------------------------
def _date(i: int) -> dt.date:
    return _FIRST_DAY + dt.timedelta(days=i)


def _number(i: int) -> float:
    digest = int(hashlib.sha256(f"number:{i}".encode()).hexdigest(), 16)
    return (digest % 10 ** (4 + digest % 4)) + (digest // 7 % 100) / 100  # up to 7 integer digits, 2 decimals


def _money(i: int) -> tuple[str, str]:
    """(currency, amount rounded to the currency's digits: JPY has none)."""
    currency = _CURRENCIES[i % len(_CURRENCIES)]
    return currency, f"{_number(i):.{numbers.get_currency_precision(currency)}f}"


@dataclass(frozen=True)
class Kind:
    """How one kind of item is enumerated, written canonically and localized."""

    pool: int  # items are indices 0..pool-1
    canonical: Callable[[int], str]
    localize: Callable[[int, str], str]


_KINDS = {
    "date_long": Kind(_N_DAYS, lambda i: _date(i).isoformat(), lambda i, loc: dates.format_date(_date(i), "long", loc)),
    "month_year": Kind(
        200 * 12,
        lambda i: f"{1900 + i // 12}-{i % 12 + 1:02d}",
        lambda i, loc: dates.format_skeleton("yMMMM", dt.date(1900 + i // 12, i % 12 + 1, 1), locale=loc),
    ),
    "number": Kind(20000, lambda i: f"{_number(i):.2f}", lambda i, loc: numbers.format_decimal(_number(i), locale=loc)),
    "currency": Kind(
        20000,
        lambda i: " ".join(_money(i)),
        lambda i, loc: numbers.format_currency(float(_money(i)[1]), _money(i)[0], locale=loc),
    ),
}


def _rank(seed: int, kind: str, canonical: str) -> int:
    return int(hashlib.sha256(f"midalign-cldr:{seed}:{kind}:{canonical}".encode()).hexdigest()[:15], 16)


@functools.cache
def split_items(kind: str, split: str, seed: int) -> tuple[int, ...]:
    """Every item of `split`, in a seeded order: a tenth of the pool each for test and dev, the rest train."""
    if kind not in _KINDS:
        raise TaskError(f"unknown CLDR kind {kind!r}; choose one of {', '.join(KINDS)}")
    if split not in SPLITS:
        raise TaskError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    spec = _KINDS[kind]
    ranks = {i: _rank(seed, kind, spec.canonical(i)) for i in range(spec.pool)}
    bucket = {"test": 0, "dev": 1, "train": 2}[split]
    mine = [i for i, rank in ranks.items() if min(rank % 10, 2) == bucket]  # 0: test, 1: dev, 2..9: train
    return tuple(sorted(mine, key=lambda i: ranks[i] // 10))


def normalize(text: str) -> str:
    """NFKC (no-break spaces become spaces) with runs of whitespace collapsed: the form answers are compared in."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def make_examples(langs: Sequence[str], kind: str, split: str, n: int, seed: int = 0) -> list[Example]:
    """The first `n` items of `split` in every language, prompts `<autonym>: <canonical> →`."""
    items = split_items(kind, split, seed)[:n]
    if len(items) < n:
        raise TaskError(f"the {kind} {split} split has only {len(items)} items, {n} asked for")
    spec, examples = _KINDS[kind], []
    for language in langs:
        code = flores_code(language)
        locale = locale_for(language)
        name = autonym(locale)
        for i in items:
            canonical = spec.canonical(i)
            examples.append(
                Example(
                    f"{kind}-{split}-{canonical}-{code}",
                    code,
                    f"{name}: {canonical} →",
                    normalize(spec.localize(i, locale)),
                    {"locale": locale, "kind": kind, "canonical": canonical},
                )
            )
    return examples


def load_examples(options: TaskOptions) -> list[Example]:
    """Test items generated on the fly (or read from a JSONL file that `write` made)."""
    from midalign.tasks import read_jsonl

    langs = list(options.task_langs) or DEFAULT_LANGS
    if options.task_data:
        return read_jsonl(options.task_data, options.max_examples, [flores_code(lang) for lang in langs])
    return make_examples(
        langs, options.cldr_kind, options.task_split or "test", options.max_examples or 50, options.seed
    )


def score(examples: Sequence[Example], predictions: Sequence[str]) -> dict[str, float]:
    """Exact match (after `normalize`) and sacrebleu's corpus chrF (0-100) of one language's predictions."""
    import sacrebleu

    predicted = [normalize(p) for p in predictions]
    references = [normalize(e.reference) for e in examples]
    exact = sum(p == r for p, r in zip(predicted, references, strict=True)) / len(references)
    chrf = sacrebleu.corpus_chrf(predicted, [references]).score
    return {"exact_match": exact, "chrf": chrf}


def item_scores(examples: Sequence[Example], predictions: Sequence[str]) -> list[dict[str, float]]:
    """Per example: exact match (after `normalize`; their mean is `score`'s exact match) and sentence chrF (their
    mean is the sentence-mean chrF, not the corpus chrF). What intervals over test items resample."""
    import sacrebleu

    out = []
    for example, prediction in zip(examples, predictions, strict=True):
        predicted, reference = normalize(prediction), normalize(example.reference)
        chrf = sacrebleu.sentence_chrf(predicted, [reference]).score
        out.append({"exact_match": float(predicted == reference), "chrf": chrf})
    return out


# ---- writing the data --------------------------------------------------------------------------------------------
def write(config: CldrDataConfig) -> dict[str, int]:
    """Write OUT/{train,dev,test}.jsonl and OUT/config.json; return the examples per split."""
    from midalign.cli import prepare_output_dir
    from midalign.records import CldrDataRecord
    from midalign.tasks import write_jsonl

    out = prepare_output_dir(config.out)
    counts = {}
    for split, n in (("train", config.n_train), ("dev", config.n_dev), ("test", config.n_test)):
        examples = make_examples(config.task_langs, config.cldr_kind, split, n, config.seed) if n else []
        write_jsonl(out / f"{split}.jsonl", examples)
        counts[split] = len(examples)
    languages = {code: locale_for(code) for code in dict.fromkeys(flores_code(lang) for lang in config.task_langs)}
    CldrDataRecord.create(config, examples=counts, locales=languages, babel=__import__("babel").__version__).save(out)
    logger.info("wrote %s to %s", ", ".join(f"{n} {split}" for split, n in counts.items()), out)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m midalign.tasks.cldr`: write the data files."""
    from midalign.cli import parse_config, run_main

    return run_main(lambda args: write(parse_config(CldrDataConfig, args, prog="python -m midalign.tasks.cldr")), argv)


if __name__ == "__main__":
    raise SystemExit(main())
