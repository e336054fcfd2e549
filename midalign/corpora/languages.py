"""Language codes: FLORES-style `xxx_Scrp` codes are canonical; aliases resolve against what a corpus has.

A corpus (FLORES+, the bundled UDHR, a local folder) names its languages `iso639-3_Script`, sometimes with a
variant suffix (`por_Latn_PT`). Users type `de`, `deu`, `zh`, `zh-Hant`, `pt`: those resolve to the one code of
the corpus that means the same language, or fail with the closest valid codes.
"""

from __future__ import annotations

import csv
import difflib
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

import langcodes

from midalign.errors import MidalignError

CODE_PATTERN = re.compile(r"^(?P<lang>[a-z]{2,3})_(?P<script>[A-Z][a-z]{3})(?:_(?P<variant>\w+))?$")

# ISO 639-3 macrolanguages and the individual languages FLORES-style corpora use for them. `zh` -> `zho`
# (macrolanguage) must find `cmn_Hans` in FLORES+ and `zho_Hans` in FLORES-200, so both sides are searched.
MACROLANGUAGE_MEMBERS: dict[str, tuple[str, ...]] = {
    "zho": ("cmn", "yue", "wuu", "hak", "nan"),
    "ara": ("arb", "ary", "arz", "acm", "apc", "ajp", "aeb", "ars", "acq"),
    "fas": ("pes", "prs"),
    "msa": ("zsm", "ind"),
    "swa": ("swh", "swc"),
    "est": ("ekk",),
    "lav": ("lvs",),
    "uzb": ("uzn", "uzs"),
    "aze": ("azj", "azb"),
    "mon": ("khk",),
    "ori": ("ory",),
    "pus": ("pbt",),
    "nep": ("npi",),
    "kur": ("kmr", "ckb"),
    "que": ("quy", "quz"),
    "yid": ("ydd",),
    "sqi": ("als",),
    "grn": ("gug",),
    "nor": ("nob", "nno"),
    # Kongo: its ISO 639-3 members. Kituba (ktu) is a Kongo-based creole, not a member.
    "kon": ("kng", "kwy", "ldi"),
    "orm": ("gaz",),
    "kau": ("knc",),
    "mlg": ("plt",),
    "aym": ("ayr",),
    "ful": ("fuv", "fuf"),
    "din": ("dik",),
    "kok": ("gom",),
    "hbs": ("srp", "hrv", "bos"),
    "lah": ("pnb",),
    # Not macrolanguages: Filipino is standardised Tagalog, and corpora use either code for it.
    "fil": ("tgl",),
    "tgl": ("fil",),
}


class UnknownLanguageError(MidalignError, ValueError):
    """A language code that the corpus does not have (the message lists the closest valid codes)."""


@dataclass(frozen=True)
class LanguageInfo:
    """What we know about one language code; empty strings where unknown."""

    code: str
    name: str
    iso_639_3: str
    script: str
    family: str = ""
    resource_level: str = ""


def split_code(code: str) -> tuple[str, str, str]:
    """Split a canonical code into (ISO 639-3, script, variant); raise on a non-canonical one."""
    match = CODE_PATTERN.match(code)
    if match is None:
        raise UnknownLanguageError(f"{code!r} is not a FLORES-style code like 'eng_Latn'")
    return match["lang"], match["script"], match["variant"] or ""


@functools.cache
def _metadata_table() -> dict[str, LanguageInfo]:
    path = resources.files("midalign") / "data" / "languages.csv"
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8") as handle:
        return {row["code"]: LanguageInfo(**row) for row in csv.DictReader(handle)}


def language_info(code: str) -> LanguageInfo:
    """Metadata for a canonical code: from the bundled table where known, else derived from the code."""
    table = _metadata_table()
    if code in table:
        return table[code]
    lang, script, variant = split_code(code)
    base = table.get(f"{lang}_{script}")
    if base is not None:  # a variant inherits its base language's facts
        return LanguageInfo(code, f"{base.name} ({variant})", lang, script, base.family, base.resource_level)
    name = langcodes.Language.get(lang).display_name()
    return LanguageInfo(code, name, lang, script)


def _alias_candidates(alias: str) -> tuple[list[str], str | None, str | None]:
    """ISO 639-3 codes an alias may mean (most likely first), and the script it names / implies."""
    parts = re.split(r"[-_]", alias.strip())
    with_script = len(parts) > 1 and len(parts[1]) == 4
    try:
        tag = langcodes.Language.get("-".join(parts[:2] if with_script else parts[:1]))
        alpha3 = tag.to_alpha3() if tag.language else None
    except (langcodes.tag_parser.LanguageTagError, LookupError, ValueError):
        return [], None, None
    if alpha3 is None:
        return [], None, None
    # The macrolanguage's main member first (zh -> cmn), then the others, then the macrolanguage itself.
    candidates = [alpha3, *MACROLANGUAGE_MEMBERS.get(alpha3, ())]
    candidates += [macro for macro, members in MACROLANGUAGE_MEMBERS.items() if alpha3 in members]
    return list(dict.fromkeys(candidates)), tag.script, tag.maximize().script


def resolve_language(alias: str, available: Sequence[str]) -> str:
    """Resolve one user-typed code to the code the corpus uses for that language."""
    if alias in available:
        return alias
    by_lower = {code.lower(): code for code in available}
    if alias.lower() in by_lower:
        return by_lower[alias.lower()]
    candidates, named_script, likely_script = _alias_candidates(alias)
    matches = [code for code in available if CODE_PATTERN.match(code) and split_code(code)[0] in candidates]
    if named_script is not None:  # a script the user typed must match; a wrong one is an error, not a hint
        matches = [code for code in matches if split_code(code)[1] == named_script]
    elif any(split_code(code)[1] == likely_script for code in matches):
        matches = [code for code in matches if split_code(code)[1] == likely_script]

    parts = re.split(r"[-_]", alias.strip())
    wanted_variant = parts[-1] if len(parts) > (2 if named_script else 1) else None  # pt-PT -> por_Latn_PT

    def rank(code: str) -> tuple[int, int]:
        lang, _, variant = split_code(code)
        return candidates.index(lang), 0 if variant == wanted_variant else 1 if not variant else 2

    matches.sort(key=rank)
    if len(matches) == 1 or (len(matches) > 1 and rank(matches[0]) < rank(matches[1])):
        return matches[0]
    if matches:
        tied = sorted(code for code in matches if rank(code) == rank(matches[0]))
        raise UnknownLanguageError(f"{alias!r} is ambiguous in this corpus: {', '.join(tied)}")
    # The closest codes always: a loose match beats none when the typo is large.
    close = difflib.get_close_matches(alias, list(available), n=5, cutoff=0.5) or difflib.get_close_matches(
        alias, list(available), n=5, cutoff=0.0
    )
    raise UnknownLanguageError(
        f"unknown language {alias!r}; closest valid codes: {', '.join(close)} ({len(available)} languages; "
        "`midalign-analyze --dataset SOURCE --list-langs` lists them with names and scripts)"
    )


def resolve_languages(aliases: Iterable[str], available: Sequence[str]) -> list[str]:
    """Resolve every alias; duplicates (e.g. `de` and `deu_Latn`) are kept once, in first-seen order."""
    resolved: dict[str, None] = {}
    for alias in aliases:
        resolved[resolve_language(alias, available)] = None
    return list(resolved)


# Named language sets for `--langs`. udhr48: 48 languages of the bundled UDHR (2256 directed pairs) spanning
# 19 scripts, high- to low-resource; all but the two regional variants exist in FLORES+ under the same code.
PRESETS: dict[str, list[str]] = {
    "udhr48": [
        "eng_Latn", "deu_Latn", "fra_Latn", "spa_Latn", "por_Latn_BR","ita_Latn", "nld_Latn", "pol_Latn",
        "ces_Latn", "swe_Latn", "fin_Latn", "hun_Latn", "ron_Latn", "tur_Latn", "vie_Latn", "ind_Latn",
        "eus_Latn", "cym_Latn", "swh_Latn", "ibo_Latn", "hau_Latn_NG","zul_Latn", "quy_Latn", "tgl_Latn",
        "rus_Cyrl", "ukr_Cyrl", "bul_Cyrl", "kaz_Cyrl", "ell_Grek", "arb_Arab", "pes_Arab", "urd_Arab",
        "heb_Hebr", "hin_Deva", "mar_Deva", "sin_Sinh", "ben_Beng", "tam_Taml", "tel_Telu", "kan_Knda",
        "cmn_Hans", "jpn_Jpan", "kor_Hang", "tha_Thai", "mya_Mymr", "kat_Geor", "hye_Armn", "amh_Ethi",
    ],
}  # fmt: skip
