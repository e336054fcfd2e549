"""The gettext corpus: cleaning rules, locale codes, the split, the build on a fixture, and the shipped corpus."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import csv
import re
import shutil
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from midalign.corpora import build_gettext as bg

FIXTURE = Path(__file__).parent / "fixtures" / "gettext"
CORPUS = Path(bg.__file__).parent / "gettext"
UDHR_LIKE = frozenset(
    {"arb_Arab", "cmn_Hans", "cmn_Hant", "swh_Latn", "pes_Arab", "zsm_Latn", "ekk_Latn", "srp_Cyrl", "srp_Latn"}
    | {"nob_Latn", "nno_Latn", "kmr_Latn", "ckb_Latn", "deu_Latn", "por_Latn", "que_Latn", "tgl_Latn"}
)
FIXTURE_SOURCES = [
    bg.Source("webapp", "pypi", "webapp", "1.0", "webapp-1.0.whl", "", "web framework", "BSD-3-Clause"),
    bg.Source("desktop", "debian", "desktop", "2.0-1", "desktop_2.0-1_all.deb", "", "desktop", "GPL-3+"),
]
# A left-over placeholder, tag, entity, mnemonic or control character in a shipped row.
LEFTOVER_RE = re.compile(
    r"%(?:[A-Za-z0-9(<{*#+'$@\-]|\.[\d*])|[{}]|\$[A-Za-z_{(\d]|</?[A-Za-z][^<>]*>|&(?:[a-z]+|#\d+);|[\x00-\x1f]"
    r"|[(（][_&]\w[)）]|_"
)


# --- cleaning rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Delete %s now",
        "Got %d files",
        "Hello %(name)s there",
        "Move %1$s away",
        "Width %-10s chars",
        "Ratio %.2f here",
        "Size %'d bytes",
        "Count %<PRIu64> items",
        "Open %1 in a window",
        "Hello {name} there",
        "Item {0} missing",
        "Empty {} braces",
        "Template {{ value }} here",
        "Stray } brace",
        "Home is $HOME today",
        "Value ${x} here",
        "Run $(cmd) now",
        "Argument $1 given",
        "Taken by %@ already",
        "Path is @PREFIX@ here",
        "Ruby %{name} style",
    ],
)
def test_placeholders_are_detected_and_dropped(text: str) -> None:
    assert bg.has_placeholder(text)
    assert bg.clean_text(text) is None
    assert bg.clean_pair(text + " and more words", "Übersetzung mit vielen Wörtern")[0] is None
    assert bg.clean_pair("A plain English sentence here", text + " und mehr")[0] is None


@pytest.mark.parametrize("text", ["Progress is 100%% done", "Progress is 100% done", "Costs 5 $ each", "50 % of it"])
def test_literal_percent_and_dollar_are_not_placeholders(text: str) -> None:
    assert not bg.has_placeholder(text)


def test_percent_escape_becomes_percent() -> None:
    assert bg.clean_text("Progress is at 100%% of the total") == "Progress is at 100% of the total"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("<b>Warning:</b> this is final", "Warning: this is final"),
        ('See <a href="x.html">the manual</a> for more', "See the manual for more"),
        ("<span weight='bold'>Bold</span> text here", "Bold text here"),
        ("Fish &amp; chips &quot;today&quot;", 'Fish & chips "today"'),
        ("Non&nbsp;breaking  space\n\nand  lines", "Non breaking space and lines"),
        ("_Open a file", "Open a file"),
        ("Op_en a file", "Open a file"),
        ("&Quit the program", "Quit the program"),
        ("Tom && Jerry show", "Tom & Jerry show"),
        ("ファイルを開く(_O)", "ファイルを開く"),
        ("ファイルを開く(_O)...", "ファイルを開く..."),
        ("열기(&O)", "열기"),
        ("開く（_O）", "開く"),
        ("Open location &", "Open location"),
        ("Caf\u0065\u0301 menu", "Café menu"),
    ],
)
def test_markup_entities_mnemonics_and_whitespace(raw: str, clean: str) -> None:
    assert bg.clean_text(raw) == clean


@pytest.mark.parametrize(
    "text",
    [
        "Use --force to overwrite",
        "  -x, show hidden entries",
        "Config is in /usr/share/app now",
        "Look in ~/config for it",
        "See http://example.org for details",
        "See www.example.org for details",
        "Write to someone@example.org today",
        "Match all *.txt files here",
        "Set key=value in the file",
        "Use C:\\path here",
        "Usage: a\nb\nc\nd",
        "Indented\n   continuation line",
        "A\ttabbed entry",
        "An unknown <file> tag here",
        "Compare a < b here",
        "#paste your commands here",
        "Weird \x18control here",
    ],
)
def test_code_like_text_is_dropped(text: str) -> None:
    assert bg.clean_text(text) is None


def test_clean_pair_rules() -> None:
    assert bg.clean_pair("Save the file now", "Datei jetzt speichern") == (
        ("Save the file now", "Datei jetzt speichern"),
        "",
    )
    assert bg.clean_pair("Save file", "Datei speichern")[0] is None  # < 4 English words
    assert bg.clean_pair("Save the 2 files", "Die 2 Dateien speichern")[0] is None  # "2" is not a word
    assert bg.clean_pair(" ".join(["word"] * 61), "Übersetzung")[0] is None
    assert bg.clean_pair("x" * 400 + " a b c d", "Übersetzung")[0] is None
    assert bg.clean_pair("Save the file now", "save the file now")[0] is None  # equals the English
    assert bg.clean_pair("Save the file now", "1234 ...")[0] is None  # no letters
    assert bg.clean_pair("/ Look for an item", "/ Nach einem Eintrag suchen")[0] is None
    assert bg.clean_pair("Call my_function twice here", "my_function zweimal aufrufen")[0] is None  # identifier
    assert bg.clean_pair("Op_en the file now", "Datei jetzt ö_ffnen")[0] == ("Open the file now", "Datei jetzt öffnen")
    assert bg.word_count("Save the 2 files, then quit!") == 5


# --- locales --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "code"),
    [
        ("de", "deu_Latn"),
        ("de_AT", "deu_Latn"),
        ("de_CH.UTF-8", "deu_Latn"),
        ("pt", "por_Latn"),
        ("pt_BR", "por_Latn"),
        ("pt_PT", "por_Latn"),
        ("zh_CN", "cmn_Hans"),
        ("zh_TW", "cmn_Hant"),
        ("zh_HK", "cmn_Hant"),
        ("zh_Hans", "cmn_Hans"),
        ("zh_Hant", "cmn_Hant"),
        ("sr", "srp_Cyrl"),
        ("sr@latin", "srp_Latn"),
        ("sr_Latn", "srp_Latn"),
        ("sr@ijekavianlatin", "srp_Latn"),
        ("ca@valencia", "cat_Latn"),
        ("nb", "nob_Latn"),
        ("no", "nob_Latn"),
        ("nn", "nno_Latn"),
        ("ku", "kmr_Latn"),
        ("ckb", "ckb_Arab"),
        ("ast", "ast_Latn"),
        ("ar", "arb_Arab"),
        ("fa", "pes_Arab"),
        ("fa_AF", "prs_Arab"),
        ("sw", "swh_Latn"),
        ("ms", "zsm_Latn"),
        ("et", "ekk_Latn"),
        ("ko", "kor_Hang"),
        ("ja", "jpn_Jpan"),
        ("uz@cyrillic", "uzn_Cyrl"),
        ("be@latin", "bel_Latn"),
        ("ks@deva", "kas_Deva"),
        ("pa_PK", "pnb_Arab"),
        ("fil", "tgl_Latn"),
        ("es_419", "spa_Latn"),
    ],
)
def test_locale_to_code(locale: str, code: str) -> None:
    assert bg.locale_to_code(locale, UDHR_LIKE) == code


@pytest.mark.parametrize("locale", ["en", "en_GB", "en_AU", "en@quot", "en@boldquot", "en@shaw", "x-test", "C", "zz"])
def test_english_and_pseudo_locales_are_skipped(locale: str) -> None:
    assert bg.locale_to_code(locale, UDHR_LIKE) is None


def test_default_reference_is_the_bundled_udhr() -> None:
    assert {"arb_Arab", "cmn_Hans", "swh_Latn"} <= bg.udhr_codes()
    assert bg.locale_to_code("ar") == "arb_Arab"
    assert bg.locale_to_code("ku_IQ", script="Arab") == "ckb_Arab"  # the script from the text wins


# --- ids and splits -------------------------------------------------------------------------------------


def test_ids_depend_on_the_english_only() -> None:
    a = bg.pair_id("Save the current document to disk.")
    assert a == bg.pair_id("save the current  document to disk!") and len(a) == 16
    assert a != bg.pair_id("Save the current document to a disk.")
    assert a == bg.pair_id("Save the current document to disk.")  # stable across calls and processes
    assert a == "139eb2af3916d357"


def test_split_is_deterministic_language_independent_and_about_ten_percent() -> None:
    ids = [bg.pair_id(f"English sentence number {i} here") for i in range(4000)]
    splits = [bg.split_of(i) for i in ids]
    assert splits == [bg.split_of(i) for i in ids]
    share = splits.count("dev") / len(splits)
    assert 0.08 < share < 0.12
    # Language-independent: two languages with the same English sentence put it in the same split.
    pairs_a = [bg.Pair(i, "a", "en", "s", "de") for i in ids[:500]]
    pairs_b = [bg.Pair(i, "b", "en", "s", "fr") for i in ids[250:750]]
    ta, tb = bg.language_tables(pairs_a, ["s"]), bg.language_tables(pairs_b, ["s"])
    for split in bg.SPLITS:
        other = "train" if split == "dev" else "dev"
        assert not set(ta[split].column("id").to_pylist()) & set(tb[other].column("id").to_pylist())


def test_plural_forms() -> None:
    assert bg.singular_is_form0("nplurals=2; plural=(n != 1);")
    assert bg.singular_is_form0("nplurals=1; plural=0;")
    assert bg.singular_is_form0("nplurals=2; plural=(n > 1);")
    assert not bg.singular_is_form0("nplurals=6; plural=n==0 ? 0 : n==1 ? 1 : 2;")
    assert not bg.singular_is_form0("")
    assert not bg.singular_is_form0("nplurals=2; plural=import os;")


def test_cap_is_deterministic_and_source_balanced() -> None:
    pairs = [bg.Pair(bg.pair_id(f"a {i} b c d"), "t", "e", "big", "de") for i in range(100)]
    pairs += [bg.Pair(bg.pair_id(f"x {i} y z w"), "t", "e", "small", "de") for i in range(10)]
    kept = bg.cap(pairs, 30, ["big", "small"])
    assert len(kept) == 30 and kept == bg.cap(list(reversed(pairs)), 30, ["big", "small"])
    assert Counter(p.source for p in kept) == {"big": 20, "small": 10}
    assert bg.cap(pairs, 500, ["big", "small"]) == pairs


# --- the build on the fixture ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fixture_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The fixture catalogs (Japanese compiled to .mo) built into a corpus folder."""
    import polib

    root = tmp_path_factory.mktemp("gettext-fixture")
    shutil.copytree(FIXTURE, root / "src")
    ja = root / "src" / "desktop" / "locale" / "ja" / "LC_MESSAGES" / "app.po"
    polib.pofile(str(ja)).save_as_mofile(str(ja.with_suffix(".mo")))
    ja.unlink()
    roots = [(s.name, root / "src" / s.name) for s in FIXTURE_SOURCES]
    tables = bg.build_corpus(roots, root / "out", FIXTURE_SOURCES, min_pairs=1, reference=UDHR_LIKE)
    return root / "out", tables


def _rows(tables: dict, code: str) -> list[dict]:
    return [row for split in bg.SPLITS for row in tables[code][split].to_pylist()]


def test_mo_reader() -> None:
    import polib

    po = polib.pofile(str(FIXTURE / "desktop" / "locale" / "ja" / "LC_MESSAGES" / "app.po"))
    entries = list(bg.catalog_entries(FIXTURE / "desktop" / "locale" / "ja" / "LC_MESSAGES" / "app.po"))
    assert len(entries) == len(po) == 3
    assert ("Remove the selected bookmark from the list", "選択したブックマークを一覧から削除") in entries


def test_fixture_build_german(fixture_build: tuple[Path, dict]) -> None:
    _, tables = fixture_build
    rows = {row["en"]: row for row in _rows(tables, "deu_Latn")}
    assert rows["Save the current document to disk."]["text"] == "Das aktuelle Dokument auf der Festplatte speichern."
    assert rows["Save the current document to disk."]["source"] == "webapp"
    assert rows["Delete the selected item permanently"]["text"] == "Das ausgewählte Element endgültig löschen"
    assert rows["Warning: this cannot be undone & is final"]["text"].startswith("Warnung: dies")
    assert rows["Open a recent file from the list"]["text"] == "Zuletzt geöffnete Datei aus der Liste öffnen"
    assert rows["Quit the application right now"]["text"] == "Anwendung sofort beenden"
    assert rows["Choose a colour for the background layer"]["text"] == "Eine Farbe für die Hintergrundebene wählen"
    assert rows["Progress is at 100% of the total"]["text"] == "Der Fortschritt liegt bei 100% der Gesamtmenge"
    assert rows["Close all windows of this application"]["text"] == "Alle Fenster dieser Anwendung schließen"  # de_AT
    assert rows["Show hidden files in the file list"]["source"] == "desktop"
    assert rows["Print the current page on the default printer"]["text"] == "Die aktuelle Seite drucken"
    assert len(rows) == 10  # everything else is dropped (fixture comments say why)
    ids = [row["id"] for row in _rows(tables, "deu_Latn")]
    assert len(ids) == len(set(ids))


def test_fixture_build_languages(fixture_build: tuple[Path, dict]) -> None:
    out, tables = fixture_build
    languages = bg.group_languages(
        bg.collect_pairs([(s.name, out.parent / "src" / s.name) for s in FIXTURE_SOURCES]),
        [s.name for s in FIXTURE_SOURCES],
        UDHR_LIKE,
    )
    assert sorted(languages) == [
        "arb_Arab", "cmn_Hans", "cmn_Hant", "deu_Latn", "jpn_Jpan", "por_Latn", "srp_Cyrl", "srp_Latn"
    ]  # fmt: skip
    ja = {p.en: p.text for p in languages["jpn_Jpan"]}  # read from the .mo
    assert ja == {
        "Open the selected file now": "選択したファイルを今すぐ開く",
        "Remove the selected bookmark from the list": "選択したブックマークを一覧から削除",
    }
    assert [p.en for p in languages["arb_Arab"]] == ["Show hidden files in the file list"]  # plural skipped
    same = {code: languages[code][0].id for code in ("cmn_Hans", "cmn_Hant", "srp_Cyrl", "srp_Latn", "por_Latn")}
    assert len(set(same.values())) == 1  # one English sentence, one id in every language
    # Only German and Japanese have rows in both splits; a language with an empty split is left out (datasets
    # cannot load an empty parquet file).
    assert sorted(tables) == ["deu_Latn", "jpn_Jpan"]


def test_fixture_build_output(fixture_build: tuple[Path, dict]) -> None:
    from datasets import load_dataset

    out, tables = fixture_build
    card = (out / "README.md").read_text(encoding="utf-8")
    assert card.count("- config_name: ") == len(tables) and "eng_Latn" not in card.split("---")[1]
    assert "train/deu_Latn.parquet" in card and "dev/deu_Latn.parquet" in card and "webapp" in card
    for split in bg.SPLITS:
        ds = load_dataset(str(out), "deu_Latn", split=split)
        assert ds.column_names == ["id", "text", "en", "source"]
        assert ds.num_rows == tables["deu_Latn"][split].num_rows
    with (out / "counts.csv").open(encoding="utf-8") as handle:
        counts = list(csv.DictReader(handle))
    assert sum(int(r["pairs"]) for r in counts) == sum(t.num_rows for s in tables.values() for t in s.values())


def test_rebuild_is_identical(fixture_build: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = fixture_build
    roots = [(s.name, FIXTURE / s.name) for s in FIXTURE_SOURCES]  # ja as .po this time: same pairs
    bg.build_corpus(roots, tmp_path, FIXTURE_SOURCES, min_pairs=1, reference=UDHR_LIKE)
    for path in sorted(out.rglob("*.parquet")):
        assert pq.read_table(path).equals(pq.read_table(tmp_path / path.relative_to(out)))


# --- the shipped corpus ---------------------------------------------------------------------------------

shipped = pytest.mark.skipif(not (CORPUS / "README.md").is_file(), reason="corpus not built")


@pytest.fixture(scope="module")
def shipped_tables() -> dict[str, dict[str, pa.Table]]:
    codes = sorted(p.stem for p in (CORPUS / "train").glob("*.parquet"))
    return {code: {s: pq.read_table(CORPUS / s / f"{code}.parquet") for s in bg.SPLITS} for code in codes}


@shipped
def test_shipped_corpus_loads_with_datasets() -> None:
    from datasets import load_dataset

    for split in bg.SPLITS:
        ds = load_dataset(str(CORPUS), "deu_Latn", split=split)
        assert ds.num_rows > 100 and ds.column_names == ["id", "text", "en", "source"]


@shipped
def test_shipped_corpus_rows(shipped_tables: dict[str, dict[str, pa.Table]]) -> None:
    card = (CORPUS / "README.md").read_text(encoding="utf-8")
    configs = re.findall(r"^- config_name: (\S+)$", card, flags=re.M)
    assert configs == sorted(shipped_tables) and "eng_Latn" not in configs
    split_of: dict[str, str] = {}
    sizes = {}
    for code, splits in shipped_tables.items():
        assert re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}", code)
        ids = {split: table.column("id").to_pylist() for split, table in splits.items()}
        for split, split_ids in ids.items():
            assert len(split_ids) == len(set(split_ids)), (code, split)
            assert all(split_of.setdefault(i, bg.split_of(i)) == split for i in split_ids), code
        assert not set(ids["train"]) & set(ids["dev"])
        table = pa.concat_tables(splits.values())
        for column in ("en", "text"):
            leftover = pc.match_substring_regex(table.column(column), LEFTOVER_RE.pattern)
            assert not pc.any(leftover).as_py(), (code, column, table.filter(leftover).slice(0, 3).to_pylist())
        words = pc.count_substring_regex(table.column("en"), r"\S*\pL\S*")
        assert pc.min(words).as_py() >= bg.MIN_EN_WORDS, code
        same = pc.equal(pc.utf8_lower(table.column("text")), pc.utf8_lower(table.column("en")))
        assert not pc.any(same).as_py() and pc.min(pc.utf8_length(table.column("text"))).as_py() > 0, code
        for row in table.slice(0, 50).to_pylist():  # ids are hashes of the English (a sample: hashing is slow)
            assert row["id"] == bg.pair_id(row["en"]) and bg.word_count(row["en"]) >= bg.MIN_EN_WORDS, (code, row)
        sizes[code] = table.num_rows
    assert sum(n >= 1000 for n in sizes.values()) >= 30
    assert min(sizes.values()) >= bg.MIN_PAIRS and max(sizes.values()) <= bg.MAX_PAIRS


@shipped
def test_shipped_counts_match(shipped_tables: dict[str, dict[str, pa.Table]]) -> None:
    with (CORPUS / "counts.csv").open(encoding="utf-8") as handle:
        counts = {(r["lang"], r["source"], r["split"]): int(r["pairs"]) for r in csv.DictReader(handle)}
    actual = Counter()
    for code, splits in shipped_tables.items():
        for split, table in splits.items():
            actual.update({(code, s, split): n for s, n in Counter(table.column("source").to_pylist()).items()})
    assert counts == dict(actual)
    assert {s for _, s, _ in counts} <= {s.name for s in bg.SOURCES}
