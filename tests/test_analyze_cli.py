"""End-to-end `midalign-analyze` on a tiny model and a FLORES+-layout folder: outputs, resume, recompute, errors."""

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from midalign.analyze import main
from tests.helpers import FLORES_LIKE, cache_entries, state_cache_of, write_flores_layout

LANGS = ["en", "de", "fr", "ru"]
CODES = ["eng_Latn", "deu_Latn", "fra_Latn", "rus_Cyrl"]


def analyze(model_dir: Path, corpus: Path, out: Path, *extra: str) -> int:
    args = ["--model", str(model_dir), "--dataset", str(corpus), "--langs", *LANGS, "--out", str(out)]
    return main([*args, "--batch-size", "5", *extra])


def cache_mtimes(out: Path) -> dict[str, int]:
    return {name: path.stat().st_mtime_ns for name, path in cache_entries(state_cache_of(out)).items()}


def naive_retrieval(model_dir: Path, sentences: dict[str, list[str]]) -> dict[tuple[int, str, str], float]:
    """An independent implementation: full HF forward one sentence at a time, numpy mean and cosine loops."""
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    vectors = {}
    for lang, texts in sentences.items():
        per_sentence = []
        for text in texts:
            with torch.no_grad():
                hidden = model(**tokenizer(text, return_tensors="pt"), output_hidden_states=True).hidden_states
            per_sentence.append([h[0].numpy().mean(axis=0) for h in hidden])
        vectors[lang] = np.array(per_sentence)  # [N, L + 1, H]
    scores = {}
    for src in sentences:
        for tgt in sentences:
            if src == tgt:
                continue
            for layer in range(vectors[src].shape[1]):
                a, b = vectors[src][:, layer], vectors[tgt][:, layer]
                cos = [[x @ y / np.linalg.norm(x) / np.linalg.norm(y) for y in b] for x in a]
                scores[(layer, src, tgt)] = float(np.mean([np.argmax(row) == i for i, row in enumerate(cos)]))
    return scores


def test_end_to_end_outputs_and_independent_check(tiny_model_dir: Path, flores_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert analyze(tiny_model_dir, flores_dir, out) == 0
    for name in ["config.json", "pairs.csv", "pairs.parquet", "per_language.csv", "layers.csv", "languages.csv",
                 "selection.json", "figures/layer_curve.png", "figures/layer_language_heatmap.png",
                 "report.html"]:  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["languages"] == CODES and config["resolved"]["split"] == "devtest"
    seconds = config["resolved"]["seconds"]  # wall time per phase, in the order they ran
    assert list(seconds) == ["extract", "metrics", "tables", "anisotropy", "figures", "report"]
    assert all(value >= 0 for value in seconds.values())
    pairs = pd.read_csv(out / "pairs.csv")
    assert list(pairs.columns) == ["layer", "src", "tgt", "metric", "value"]
    assert len(pairs) == 5 * 12 * 4 + 5 * 3 * 2  # layers 0..4 x (directed pairs x 4 metrics + X -> English x 2)
    assert set(pairs.metric) == {"retrieval_acc", "margin_retrieval_acc", "cosine", "cosine_gap", "mexa", "cka"}
    assert (pairs.src != pairs.tgt).all()
    selection = json.loads((out / "selection.json").read_text())
    assert 1 <= selection["layer"] <= 3 and len(selection["curve"]) == 5
    curve = pairs[pairs.metric == "retrieval_acc"].groupby("layer").value.mean()
    assert selection["score"] == pytest.approx(curve.loc[1:3].max())
    assert (out / f"figures/language_heatmap_layer{selection['layer']}.png").exists()
    report = (out / "report.html").read_text(encoding="utf-8")
    assert all(f'"{code}"' in report for code in CODES) and "Plotly.newPlot" in report
    assert "anisotropy_top1_share" in report, "the report draws anisotropy.csv's curves"
    # Anisotropy: the mean cosine of translations is the mean over directed pairs of the pair table's cosine.
    anisotropy = pd.read_csv(out / "anisotropy.csv").set_index("layer")
    assert (out / "figures/anisotropy.png").stat().st_size > 0 and list(anisotropy.index) == [0, 1, 2, 3, 4]
    cosine = pairs[pairs.metric == "cosine"].groupby("layer").value.mean()
    np.testing.assert_allclose(anisotropy.cosine_parallel, cosine, rtol=1e-5)
    assert ((anisotropy.top1_share > 0) & (anisotropy.top1_share <= anisotropy.top5_share)).all()
    assert (anisotropy.top5_share <= 1 + 1e-9).all() and (anisotropy.n_sentences == 4 * 18).all()

    devtest = {code: FLORES_LIKE[code][12:30] for code in CODES}
    reference = naive_retrieval(tiny_model_dir, devtest)
    ours = pairs[pairs.metric == "retrieval_acc"].set_index(["layer", "src", "tgt"]).value
    for key, value in reference.items():
        assert ours.loc[key] == pytest.approx(value, abs=0.01), key


def test_resume_reuses_finished_languages_and_recompute_recomputes(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert analyze(tiny_model_dir, flores_dir, out, "--no-figures") == 0
    first = pd.read_parquet(out / "pairs.parquet")
    before = cache_mtimes(out)
    cache_entries(state_cache_of(out))["fra_Latn.npy"].with_suffix(".json").unlink()  # as if killed writing French
    assert analyze(tiny_model_dir, flores_dir, out, "--no-figures", "--batch-size", "3") == 0
    after = cache_mtimes(out)
    assert {name for name in before if before[name] != after[name]} == {"fra_Latn.npy"}
    pd.testing.assert_frame_equal(pd.read_parquet(out / "pairs.parquet"), first, atol=1e-6)
    assert analyze(tiny_model_dir, flores_dir, out, "--no-figures", "--recompute") == 0
    assert all(cache_mtimes(out)[name] != after[name] for name in after)


def test_other_split_and_pooling_use_separate_cache_entries(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    assert analyze(tiny_model_dir, flores_dir, out, "--no-figures") == 0
    (out / "figures").mkdir()
    (out / "figures" / "layer_curve.png").write_bytes(b"an earlier run's figure")
    assert analyze(tiny_model_dir, flores_dir, out, "--no-figures", "--pooling", "last") == 2
    assert "already holds an analysis with other settings (pooling); pass --overwrite" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="midalign"):
        assert analyze(tiny_model_dir, flores_dir, out, "--no-figures", "--pooling", "last", "--overwrite") == 0
    assert "states: 0 languages cached" in caplog.text  # the mean-pooled entries live beside, not reused
    assert not list((out / "figures").glob("*.png")), "figures of the earlier run are removed with its results"
    assert analyze(tiny_model_dir, flores_dir, out, "--no-figures", "--split", "dev", "--overwrite") == 0
    assert json.loads((out / "config.json").read_text())["resolved"]["n_sentences"] == 12


@pytest.mark.parametrize(
    "args, message",
    [
        (["--langs", "en", "eng_Latm"], "closest valid codes: eng_Latn"),
        (["--dataset", "no/such-corpus-here"], "cannot list the languages"),
        (["--max-sentences", "1"], "at least 2"),
        (["--model", "/nonexistent/model"], "/nonexistent/model"),
    ],
)
def test_bad_input_fails_clearly(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, args, message
) -> None:
    base = ["--model", str(tiny_model_dir), "--dataset", str(flores_dir), "--langs", "en", "de"]
    assert main([*base, "--out", str(tmp_path / "run"), *args]) == 2
    assert message in caplog.text


def test_edited_sentence_text_recomputes_only_that_language(tiny_model_dir: Path, tmp_path: Path) -> None:
    corpus = write_flores_layout(tmp_path / "corpus", FLORES_LIKE, {"devtest": range(8)})
    out = tmp_path / "run"
    assert analyze(tiny_model_dir, corpus, out, "--no-figures") == 0
    before = cache_mtimes(out)
    frame = pd.read_parquet(corpus / "devtest" / "deu_Latn.parquet")
    frame.loc[3, "text"] = "Der Bus fährt heute nicht."  # same ids, other text: a typo fix or a corpus rebuild
    frame.to_parquet(corpus / "devtest" / "deu_Latn.parquet", index=False)
    assert analyze(tiny_model_dir, corpus, out, "--no-figures") == 0
    after = cache_mtimes(out)
    assert {name for name in before if before[name] != after[name]} == {"deu_Latn.npy"}


def test_second_analysis_with_another_out_extracts_nothing(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, private_state_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The README's first command run again with another --out: the shared cache serves every language."""
    assert analyze(tiny_model_dir, flores_dir, tmp_path / "first", "--no-figures") == 0
    assert state_cache_of(tmp_path / "first") == private_state_cache / "states"
    before = cache_mtimes(tmp_path / "first")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="midalign"):
        assert analyze(tiny_model_dir, flores_dir, tmp_path / "second", "--no-figures") == 0
    assert "states: 4 languages cached" in caplog.text and "0 to compute" in caplog.text
    assert cache_mtimes(tmp_path / "second") == before
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "second" / "pairs.parquet"), pd.read_parquet(tmp_path / "first" / "pairs.parquet")
    )


def test_read_only_cache_fails_before_extracting(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    from midalign.models.cache import StateCache

    monkeypatch.setattr(StateCache, "writable", property(lambda self: False))  # root ignores chmod: simulate it
    assert analyze(tiny_model_dir, flores_dir, tmp_path / "run", "--no-figures") == 2
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and "is read-only and 4 languages are not in it" in errors[0]
    assert not (tmp_path / "run" / "pairs.parquet").exists()


def test_cache_command_lists_and_prunes(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, private_state_cache: Path, capsys
) -> None:
    from midalign.cache import main as cache_main

    for pooling in ("mean", "last"):
        assert analyze(tiny_model_dir, flores_dir, tmp_path / pooling, "--no-figures", "--pooling", pooling) == 0
    root = private_state_cache / "states"
    (root / "eng_Latn.npy").write_bytes(b"an entry of the old flat layout")
    capsys.readouterr()
    assert cache_main(["ls"]) == 0
    listing = capsys.readouterr().out
    assert f"state cache {root}: 2 folder(s)" in listing
    assert "mean" in listing and "last" in listing and listing.count(" 4 ") >= 2  # 4 languages in each folder
    assert cache_main(["prune", "--older-than", "0", "--dry-run"]) == 0
    assert len(list(root.glob("*/*/settings.json"))) == 2 and (root / "eng_Latn.npy").exists()
    assert cache_main(["prune"]) == 0  # nothing selected: only what older versions and killed runs left
    assert len(list(root.glob("*/*/settings.json"))) == 2 and not (root / "eng_Latn.npy").exists()
    last = next(path.parent for path in root.glob("*/*/settings.json") if '"last"' in path.read_text())
    (last / "settings.json").write_text((last / "settings.json").read_text().replace("torch==", "torch==0.0+"))
    assert cache_main(["prune", "--stale"]) == 0  # made by other library versions: never read again here
    assert [path.parent for path in root.glob("*/*/settings.json")] != [last] and not last.exists()
    assert cache_main(["prune", "--match", str(tiny_model_dir.resolve()), "--all"]) == 0
    assert not list(root.glob("*/*/settings.json"))
    assert cache_main(["prune", "--match", "x"]) == 2  # which of its folders? refused, one line


def test_edited_tokenizer_of_a_local_model_changes_its_identity(tiny_model_dir: Path, tmp_path: Path) -> None:
    import shutil

    from midalign.models.loading import _local_identity

    copy = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    before = _local_identity(copy)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config["model_max_length"] = 7
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    assert _local_identity(copy) != before


def test_pivot_metrics_and_probe_end_to_end(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    assert analyze(tiny_model_dir, flores_dir, out, "--metrics", "retrieval_acc,mexa", "cka", "--probe") == 0
    pairs = pd.read_parquet(out / "pairs.parquet")
    assert set(pairs.metric) == {"retrieval_acc", "mexa", "cka"}
    for metric in ("mexa", "cka"):
        rows = pairs[pairs.metric == metric]
        assert len(rows) == 5 * 3 and set(rows.tgt) == {"eng_Latn"} and "eng_Latn" not in set(rows.src), metric
        assert rows.value.between(0, 1 + 1e-6).all(), metric
    per_language = pd.read_csv(out / "per_language.csv")
    assert "eng_Latn" not in set(per_language[per_language.metric == "mexa"].lang)
    probe = pd.read_csv(out / "probe.csv")
    assert list(probe.columns) == ["layer", "lang", "accuracy", "n", "chance"]
    assert len(probe) == 5 * (4 + 1) and set(probe.lang) == {*CODES, "all"}
    assert probe.accuracy.between(0, 1).all() and (probe.chance == 0.25).all()
    overall = probe[probe.lang == "all"].set_index("layer")
    assert (overall.n == 4 * 18).all()
    per_lang = probe[probe.lang != "all"].groupby("layer").accuracy.mean()
    np.testing.assert_allclose(overall.accuracy, per_lang)  # every language has the same sentences
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["pivot"] == "eng_Latn" and config["resolved"]["metrics"] == [
        "retrieval_acc",
        "mexa",
        "cka",
    ]
    assert config["english"] == "eng_Latn" and config["probe"] is True
    for name in ("probe_retrieval.png", "pivot_curves.png", "mexa_layer_language_heatmap.png", "layer_curve.png"):
        assert (out / "figures" / name).stat().st_size > 0, name

    # --select-metric mexa picks the layer by the mean over languages against the pivot.
    assert analyze(tiny_model_dir, flores_dir, out, "--no-figures", "--select-metric", "mexa", "--overwrite") == 0
    selection = json.loads((out / "selection.json").read_text())
    mexa = pd.read_parquet(out / "pairs.parquet").query("metric == 'mexa'").groupby("layer").value.mean()
    assert selection["metric"] == "mexa" and selection["score"] == pytest.approx(mexa.loc[1:3].max())


def test_pivot_outside_the_languages(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = ["--model", str(tiny_model_dir), "--dataset", str(flores_dir), "--langs", "de", "fr", "--no-figures"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0  # by default: skipped with a warning
    assert "not among the analysed languages: mexa and cka not computed" in caplog.text
    assert set(pd.read_parquet(tmp_path / "a" / "pairs.parquet").metric) == {
        "retrieval_acc", "margin_retrieval_acc", "cosine", "cosine_gap"
    }  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "b"), "--metrics", "mexa", "cosine", "--select-metric", "cosine"]) == 2
    assert "mexa compare every language with the pivot --english eng_Latn, which is not among" in caplog.text
    assert main([*base, "--out", str(tmp_path / "c"), "--english", "fr", "--metrics", "cka,cosine", "--select-metric",
                 "cosine"]) == 0  # fmt: skip
    cka = pd.read_parquet(tmp_path / "c" / "pairs.parquet").query("metric == 'cka'")
    assert set(cka.tgt) == {"fra_Latn"} and set(cka.src) == {"deu_Latn"}
    assert main([*base, "--out", str(tmp_path / "d"), "--metrics", "mexa", "bleu"]) == 2
    assert "unknown --metrics bleu; choose from retrieval_acc" in caplog.text


def test_pivot_pairs_end_to_end_equal_the_all_run_rows(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """--pairs pivot: exactly X <-> pivot, each row the all run's bit for bit; tables, selection from those pairs,
    figures and report; recorded, and a rerun with the other --pairs is refused without --overwrite."""
    every, pivot = tmp_path / "all", tmp_path / "pivot"
    assert analyze(tiny_model_dir, flores_dir, every, "--english", "fr", "--no-figures", "--no-report") == 0
    assert analyze(tiny_model_dir, flores_dir, pivot, "--pairs", "pivot", "--english", "fr") == 0
    rows = pd.read_parquet(pivot / "pairs.parquet")
    for metric, group in rows.groupby("metric", observed=True):
        pairs = set(zip(group.src.astype(str), group.tgt.astype(str), strict=True))
        others = [code for code in CODES if code != "fra_Latn"]
        wanted = {(code, "fra_Latn") for code in others}
        if metric not in ("mexa", "cka"):
            wanted |= {("fra_Latn", code) for code in others}
        assert pairs == wanted, metric
    full = pd.read_parquet(every / "pairs.parquet")
    key = ["layer", "src", "tgt", "metric"]
    joined = rows.astype({"src": str, "tgt": str, "metric": str}).merge(
        full.astype({"src": str, "tgt": str, "metric": str}), on=key, suffixes=("", "_all"), how="left"
    )
    assert len(joined) == len(rows) == 5 * (4 * 6 + 2 * 3)  # layers x (4 pair metrics x 6 pairs + mexa, cka x 3)
    np.testing.assert_array_equal(joined.value.to_numpy(), joined.value_all.to_numpy())  # bit for bit
    config = json.loads((pivot / "config.json").read_text())
    assert config["pairs"] == "pivot" and config["resolved"]["n_directed_pairs"] == 6
    assert config["resolved"]["pivot"] == "fra_Latn"
    assert json.loads((every / "config.json").read_text())["pairs"] == "all"
    selection = json.loads((pivot / "selection.json").read_text())
    curve = rows[rows.metric == "retrieval_acc"].groupby("layer").value.mean()
    assert selection["score"] == pytest.approx(curve.loc[1:3].max()) and "pairs with the pivot" in selection["rule"]
    per_language = pd.read_csv(pivot / "per_language.csv").query("metric == 'cosine'")
    german = rows[(rows.metric == "cosine") & ((rows.src == "deu_Latn") | (rows.tgt == "deu_Latn"))]
    np.testing.assert_allclose(
        per_language[per_language.lang == "deu_Latn"].set_index("layer").value,
        german.groupby("layer").value.mean(),
        rtol=1e-5,
    )  # a language's mean over its two pairs with the pivot
    layers = pd.read_csv(pivot / "layers.csv").query("metric == 'retrieval_acc' and group_by == 'all'")
    assert (layers.n == 6).all()
    for name in ("layer_curve.png", "layer_language_heatmap.png", f"pivot_pairs_layer{selection['layer']}.png"):
        assert (pivot / "figures" / name).stat().st_size > 0, name
    assert not list((pivot / "figures").glob("language_heatmap_layer*.png"))
    report = (pivot / "report.html").read_text(encoding="utf-8")
    assert "retrieval_acc (against fra_Latn only)" in report and "--pairs pivot" in report
    assert analyze(tiny_model_dir, flores_dir, pivot, "--english", "fr", "--no-figures") == 2
    assert "already holds an analysis with other settings (pairs); pass --overwrite" in caplog.text


def test_pivot_pairs_need_the_pivot_among_the_languages(
    tiny_model_dir: Path, flores_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = ["--model", str(tiny_model_dir), "--dataset", str(flores_dir), "--langs", "de", "fr", "--no-figures"]
    assert main([*base, "--out", str(tmp_path / "a"), "--pairs", "pivot"]) == 2
    assert "--pairs pivot scores every language against the pivot --english eng_Latn, which is not among" in caplog.text
    assert not (tmp_path / "a" / "config.json").exists(), "refused before any record or long work"
    with pytest.raises(SystemExit) as stopped:
        main([*base, "--out", str(tmp_path / "b"), "--pairs", "some"])
    assert stopped.value.code == 2
