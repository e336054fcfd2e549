"""Slot filling on MASSIVE (hub `AmazonScience/massive`), as in the paper.

Rows have `id, locale, partition, scenario, intent, utt, annot_utt, ...`; `annot_utt` marks slots inline,
`wake me up at [time : five am] this [date : week]`. The target is the paper's: the bracketed spans joined by
"; " with " :" tightened to ":" (`time: five am; date: week`), or `None` without slots. The prompt is the paper's
system prompt followed by the utterance as raw text (the paper wrapped both in an instruct model's chat template;
a base model has none).

Score: micro precision/recall/F1 over (slot, value) pairs of a language, each gold pair matched at most once.
Both sides are normalized the same way (NFKC, case-folded, whitespace collapsed, slot names with `_` for spaces,
surrounding quotes and final punctuation dropped), so formatting noise in a prediction (`Time : Five AM.`,
`time:five am ;`) is not an error; a part without a colon counts as no prediction.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Sequence

from midalign.tasks import Example, TaskError, TaskOptions, f1_scores, multiset_overlap

logger = logging.getLogger(__name__)

MASSIVE = "AmazonScience/massive"
PARQUET_EXPORT = "refs/convert/parquet"  # the hub's parquet copy; datasets >= 4 no longer runs MASSIVE's script
SYSTEM_PROMPT = (
    "Given a command from the user, a voice assistant will extract entities essential for carry out the command.\n"
    "For example, for a command about playing a specific song, the name of the song mentioned by the user would be "
    'an entity, falling under the type of "song name".\n'
    "Your task is to extract the entities as words from the command if they fall under a predefined list of entity "
    "types."
)
NONE = "None"

# MASSIVE's 51 locales and the FLORES-200 / FLORES+ codes of their languages.
LOCALE_TO_FLORES = {
    "af-ZA": "afr_Latn", "am-ET": "amh_Ethi", "ar-SA": "arb_Arab", "az-AZ": "azj_Latn", "bn-BD": "ben_Beng",
    "cy-GB": "cym_Latn", "da-DK": "dan_Latn", "de-DE": "deu_Latn", "el-GR": "ell_Grek", "en-US": "eng_Latn",
    "es-ES": "spa_Latn", "fa-IR": "pes_Arab", "fi-FI": "fin_Latn", "fr-FR": "fra_Latn", "he-IL": "heb_Hebr",
    "hi-IN": "hin_Deva", "hu-HU": "hun_Latn", "hy-AM": "hye_Armn", "id-ID": "ind_Latn", "is-IS": "isl_Latn",
    "it-IT": "ita_Latn", "ja-JP": "jpn_Jpan", "jv-ID": "jav_Latn", "ka-GE": "kat_Geor", "km-KH": "khm_Khmr",
    "kn-IN": "kan_Knda", "ko-KR": "kor_Hang", "lv-LV": "lvs_Latn", "ml-IN": "mal_Mlym", "mn-MN": "khk_Cyrl",
    "ms-MY": "zsm_Latn", "my-MM": "mya_Mymr", "nb-NO": "nob_Latn", "nl-NL": "nld_Latn", "pl-PL": "pol_Latn",
    "pt-PT": "por_Latn", "ro-RO": "ron_Latn", "ru-RU": "rus_Cyrl", "sl-SL": "slv_Latn", "sq-AL": "als_Latn",
    "sv-SE": "swe_Latn", "sw-KE": "swh_Latn", "ta-IN": "tam_Taml", "te-IN": "tel_Telu", "th-TH": "tha_Thai",
    "tl-PH": "tgl_Latn", "tr-TR": "tur_Latn", "ur-PK": "urd_Arab", "vi-VN": "vie_Latn", "zh-CN": "cmn_Hans",
    "zh-TW": "cmn_Hant",
}  # fmt: skip
FLORES_TO_LOCALE = {code: locale for locale, code in LOCALE_TO_FLORES.items()}

_SPAN = re.compile(r"\[([^\[\]]*?)\]")
_EDGE = "\"'`“”‘’«»„.,!?。、 "


def flores_code(locale: str) -> str:
    """The FLORES code of a MASSIVE locale (`de-DE` -> `deu_Latn`)."""
    if locale not in LOCALE_TO_FLORES:
        raise TaskError(f"unknown MASSIVE locale {locale!r}; known: {', '.join(sorted(LOCALE_TO_FLORES))}")
    return LOCALE_TO_FLORES[locale]


def massive_locale(language: str) -> str:
    """A MASSIVE locale for a locale, a FLORES code or an alias (`de`, `deu`, `deu_Latn` -> `de-DE`)."""
    if language in LOCALE_TO_FLORES:
        return language
    if language in FLORES_TO_LOCALE:
        return FLORES_TO_LOCALE[language]
    from midalign.corpora.languages import UnknownLanguageError, resolve_language

    try:
        return FLORES_TO_LOCALE[resolve_language(language, list(FLORES_TO_LOCALE))]
    except UnknownLanguageError as error:
        raise TaskError(f"MASSIVE has no locale for {language!r}: {error}") from error


def parse_annotation(annot_utt: str) -> list[tuple[str, str]]:
    """The (slot, value) pairs of an `annot_utt` (`[time : five am]` -> `("time", "five am")`), in order."""
    pairs = []
    for span in _SPAN.findall(annot_utt):
        slot, colon, value = span.partition(":")  # slot names have no colon; values may (`[time : 5:30]`)
        if colon:
            pairs.append((slot.strip(), value.strip()))
    return pairs


def format_slots(pairs: Sequence[tuple[str, str]]) -> str:
    """The paper's target string: `slot: value; slot: value`, or `None`."""
    return "; ".join(f"{slot}: {value}" for slot, value in pairs) if pairs else NONE


def _norm_value(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split()).strip(_EDGE)


def _norm_slot(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", _norm_value(text).strip("[]"))


def parse_slots(text: str) -> list[tuple[str, str]]:
    """Normalized (slot, value) pairs of a generated answer; `None`, empty or colon-less parts give none."""
    pairs = []
    for part in re.split(r"[;\n]", text):
        slot, colon, value = part.partition(":")
        slot, value = _norm_slot(slot), _norm_value(value)
        if colon and slot and value:
            pairs.append((slot, value))
    return pairs


def _gold(example: Example) -> list[tuple[str, str]]:
    annotation = example.meta.get("annot_utt")
    pairs = parse_annotation(annotation) if annotation is not None else None
    if pairs is None:
        return parse_slots(example.reference)
    return [(_norm_slot(slot), _norm_value(value)) for slot, value in pairs]


def score(examples: Sequence[Example], predictions: Sequence[str]) -> dict[str, float]:
    """Micro slot precision/recall/F1 over (slot, value) pairs and the share of utterances with every pair right."""
    correct = predicted = gold = exact = 0
    for example, prediction in zip(examples, predictions, strict=True):
        want, got = _gold(example), parse_slots(prediction)
        hits = multiset_overlap(want, got)
        correct, predicted, gold = correct + hits, predicted + len(got), gold + len(want)
        exact += hits == len(want) == len(got)
    f1 = f1_scores(correct, predicted, gold)
    return {"slot_f1": f1["f1"], "slot_precision": f1["precision"], "slot_recall": f1["recall"],
            "exact_match": exact / len(examples)}  # fmt: skip


def prompt(utterance: str) -> str:
    """The system prompt and the command; the model continues after `Entities:`."""
    return f"{SYSTEM_PROMPT}\nCommand: {utterance}\nEntities:"


def _load_rows(source: str, locale: str, split: str):
    """MASSIVE rows of one locale: `load_dataset(source, locale, split=...)`, the hub's parquet export as fallback."""
    import datasets

    try:
        return datasets.load_dataset(source, locale, split=split)
    except RuntimeError as error:
        if "scripts are no longer supported" not in str(error):
            raise
        logger.info("%s is script-based; reading its parquet export (%s)", source, PARQUET_EXPORT)
        return datasets.load_dataset(source, locale, split=split, revision=PARQUET_EXPORT)


def load_examples(options: TaskOptions) -> list[Example]:
    """Examples of each requested locale (default: every locale the source declares) from one split."""
    import datasets

    source, split = options.task_data or MASSIVE, options.task_split or "test"
    if options.task_langs:
        locales = [massive_locale(lang) for lang in options.task_langs]
    else:
        try:
            declared = datasets.get_dataset_config_names(source)
        except (OSError, ValueError) as error:  # FileNotFoundError is an OSError
            raise TaskError(f"cannot list the MASSIVE locales of {source!r}: {error}") from error
        locales = [name for name in declared if name in LOCALE_TO_FLORES]
    examples = []
    for locale in dict.fromkeys(locales):
        try:
            rows = _load_rows(source, locale, split)
        except (OSError, ValueError, FileNotFoundError) as error:
            raise TaskError(f"cannot load MASSIVE {locale}/{split} from {source!r}: {error}") from error
        missing = {"id", "utt", "annot_utt"} - set(rows.column_names)
        if missing:
            raise TaskError(f"{source!r} {locale}/{split} lacks column(s) {sorted(missing)}: is it MASSIVE?")
        if options.max_examples is not None:
            rows = rows.select(range(min(options.max_examples, len(rows))))
        for row in rows:
            pairs = parse_annotation(row["annot_utt"])
            examples.append(
                Example(
                    f"{locale}-{row['id']}",
                    flores_code(locale),
                    prompt(row["utt"]),
                    format_slots(pairs),
                    {"locale": locale, "utt": row["utt"], "annot_utt": row["annot_utt"]},
                )
            )
    if not examples:
        raise TaskError(f"no MASSIVE examples in {source!r}/{split} for {locales}")
    return examples
