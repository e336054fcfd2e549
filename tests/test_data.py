"""The one parallel-corpus loader on FLORES+-layout folders it has never seen, and its errors."""

from pathlib import Path

import pandas as pd
import pytest

from midalign import available_languages, load_parallel
from midalign.corpora.languages import UnknownLanguageError
from midalign.corpora.parallel import CorpusError, available_splits
from tests.helpers import FLORES_LIKE, write_flores_layout


def test_splits_aliases_and_order(flores_dir: Path) -> None:
    assert available_languages(str(flores_dir)) == sorted(FLORES_LIKE)
    corpus = load_parallel(str(flores_dir), ["ru", "en", "el"])
    assert corpus.split == "devtest" and corpus.languages == ["rus_Cyrl", "eng_Latn", "ell_Grek"]
    assert corpus.ids == [str(i) for i in range(13, 31)]
    assert corpus.sentences["ell_Grek"][0] == FLORES_LIKE["ell_Grek"][12]
    dev = load_parallel(str(flores_dir), None, split="dev", max_sentences=5)
    assert dev.split == "dev" and len(dev.languages) == 5 and len(dev.ids) == 5
    assert dev.sentences["deu_Latn"] == FLORES_LIKE["deu_Latn"][:5]


def test_rows_in_another_order_are_realigned_by_id(tmp_path: Path) -> None:
    root = write_flores_layout(tmp_path, FLORES_LIKE, {"devtest": range(6)})
    shuffled = pd.read_parquet(root / "devtest" / "deu_Latn.parquet").iloc[::-1]
    shuffled.to_parquet(root / "devtest" / "deu_Latn.parquet", index=False)
    corpus = load_parallel(str(root), ["en", "de"])
    assert corpus.sentences["deu_Latn"] == FLORES_LIKE["deu_Latn"][:6]


def test_non_parallel_language_is_named(tmp_path: Path) -> None:
    root = write_flores_layout(tmp_path, FLORES_LIKE, {"devtest": range(6)})
    frame = pd.read_parquet(root / "devtest" / "fra_Latn.parquet")
    frame.iloc[:5].to_parquet(root / "devtest" / "fra_Latn.parquet", index=False)
    with pytest.raises(
        CorpusError, match=r"fra_Latn is not parallel to eng_Latn: 5 vs 6 sentences.*only in eng_Latn: \['6'\]"
    ):
        load_parallel(str(root), ["en", "fr"])


def test_empty_sentence_is_an_error(tmp_path: Path) -> None:
    sentences = {lang: list(texts) for lang, texts in FLORES_LIKE.items()}
    sentences["deu_Latn"][2] = "   "
    root = write_flores_layout(tmp_path, sentences, {"devtest": range(6)})
    with pytest.raises(CorpusError, match=r"deu_Latn has 1 empty sentence.*\['3'\]"):
        load_parallel(str(root), ["en", "de"])


def test_bad_sources_and_languages(tmp_path: Path, flores_dir: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        load_parallel(str(tmp_path / "missing"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(CorpusError, match="is a file"):
        load_parallel(str(tmp_path / "file.txt"))
    with pytest.raises(UnknownLanguageError, match="closest valid codes: deu_Latn"):
        load_parallel(str(flores_dir), ["deu_Latm"])
    with pytest.raises(CorpusError, match="no split 'test'"):
        load_parallel(str(flores_dir), ["en", "de"], split="test")


def test_bundled_udhr_is_multiway_parallel() -> None:
    languages = available_languages("udhr")
    assert len(languages) >= 400
    corpus = load_parallel("udhr", ["en", "zh", "ar", "hi", "sw"])
    assert corpus.languages == ["eng_Latn", "cmn_Hans", "arb_Arab", "hin_Deva", "swh_Latn"]
    assert len(corpus.ids) == 50
    assert corpus.sentences["eng_Latn"][0].startswith("All human beings are born free")


def test_language_table_lists_names_scripts_and_sentence_counts(flores_dir: Path, tmp_path: Path, capsys) -> None:
    from midalign.analyze import main as analyze_main
    from midalign.corpora.parallel import language_table

    table = language_table(str(flores_dir)).set_index("code")
    assert list(table.index) == available_languages(str(flores_dir))
    german = table.loc["deu_Latn"]
    assert german["name"].startswith("German") and (german.script, german.split) == ("Latn", "devtest")
    expected = len(pd.read_parquet(flores_dir / "devtest" / "deu_Latn.parquet"))
    assert german.n_sentences == expected and "dev" in german.splits.split()
    dev = language_table(str(flores_dir), split="dev").set_index("code").loc["deu_Latn"]
    assert dev.n_sentences == len(pd.read_parquet(flores_dir / "dev" / "deu_Latn.parquet"))
    bundled = language_table("udhr")
    assert len(bundled) == 442 and (bundled.n_sentences > 0).all() and bundled.name.ne("").mean() > 0.9
    assert analyze_main(["--dataset", str(flores_dir), "--list-langs", "--out", str(tmp_path / "unused")]) == 0
    printed = capsys.readouterr().out
    assert "deu_Latn" in printed and "German" in printed and not (tmp_path / "unused").exists()
    with pytest.raises(UnknownLanguageError, match=r"closest valid codes: .*--list-langs"):
        load_parallel(str(flores_dir), ["qqq"])  # far from every code: still the closest ones, and how to list


def test_local_parquet_read_matches_datasets(flores_dir: Path, tmp_path: Path) -> None:
    """A local corpus is read straight from its declared parquet files: the same rows `datasets` builds."""
    import datasets

    corpus = load_parallel(str(flores_dir), None, "dev")
    for language in corpus.languages:
        rows = datasets.load_dataset(str(flores_dir), language, split="dev", cache_dir=str(tmp_path))
        assert [str(i) for i in rows["id"]] == corpus.ids
        assert list(rows["text"]) == corpus.sentences[language]
    assert available_splits(str(flores_dir), corpus.languages[0]) == ["dev", "devtest"]
    with pytest.raises(CorpusError, match="has no split 'test'"):
        load_parallel(str(flores_dir), corpus.languages[:2], "test")
