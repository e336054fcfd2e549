"""What predicts transfer: base retrieval from a real analysis run, correlations with bootstrap intervals on
known answers, the per-language table, and `midalign-evaluate --compare ... --analysis RUN` end to end."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from midalign.analysis.predictors import base_retrieval, correlation, transfer_predictors, transfer_table
from midalign.analysis.runs import load_run
from midalign.evaluate import main as evaluate_main

ROOT = Path(__file__).resolve().parents[1]
ANALYSIS = ROOT / "analysis" / "gemma-3-270m_udhr"  # the committed 48-language run; selected layer 11
GROUPS = {"eng_Latn": "supervised", "deu_Latn": "supervised", "spa_Latn": "alignment", "rus_Cyrl": "alignment",
          "por_Latn": "unseen", "tur_Latn": "unseen", "kat_Geor": "unseen", "amh_Ethi": "unseen"}  # fmt: skip


def naive_retrieval(language: str, layer: int = 11) -> float:
    pairs = pd.read_parquet(ANALYSIS / "pairs.parquet")
    pairs = pairs[(pairs.layer == layer) & (pairs.metric == "retrieval_acc")].astype({"src": str, "tgt": str})
    there = pairs[(pairs.src == language) & (pairs.tgt == "eng_Latn")].value.item()
    back = pairs[(pairs.src == "eng_Latn") & (pairs.tgt == language)].value.item()
    return (there + back) / 2


def test_base_retrieval_is_both_directions_with_english_at_the_selected_layer(caplog) -> None:
    run = load_run(ANALYSIS)
    found = base_retrieval(run, ["deu_Latn", "por_Latn", "kat_Geor", "eng_Latn", "fao_Latn"])
    assert list(found.index) == ["deu_Latn", "por_Latn", "kat_Geor"], "English itself and missing languages drop"
    assert found["deu_Latn"] == pytest.approx(naive_retrieval("deu_Latn"))
    assert found["por_Latn"] == pytest.approx(naive_retrieval("por_Latn_BR")), "aliases resolve to the run's code"
    assert "fao_Latn" in caplog.text
    at_4 = base_retrieval(run, ["kat_Geor"], layer=4)
    assert at_4["kat_Geor"] == pytest.approx(naive_retrieval("kat_Geor", 4))


def test_correlations_on_known_answers() -> None:
    x = np.arange(1.0, 9.0)
    for statistic in ("pearson", "spearman"):
        assert correlation(x, 2 * x + 1, statistic).value == pytest.approx(1.0)
        perfect = correlation(x, -x, statistic)
        assert perfect.value == pytest.approx(-1.0) and perfect.ci_low == pytest.approx(-1.0) and perfect.n == 8
    cubic = correlation(x, (x - 4) ** 3, "pearson")
    assert cubic.value == pytest.approx(stats.pearsonr(x, (x - 4) ** 3)[0]) and cubic.value < 1
    assert correlation(x, (x - 4) ** 3, "spearman").value == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    a = rng.normal(size=30)
    b = a + rng.normal(size=30)
    found = correlation(a, b, "pearson", n_boot=2000)
    assert found.value == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert -1 <= found.ci_low < found.value < found.ci_high <= 1
    ties = np.array([1, 1, 2, 3, 3, 3, 5, 8, 8, 9], dtype=float)
    for statistic, scipy_r in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr)):
        draws = []  # the naive bootstrap: the same resamples, one scipy call each
        for rows in np.random.default_rng(0).integers(0, 10, size=(300, 10)):
            if np.ptp(ties[rows]) > 0 and np.ptp(a[:10][rows]) > 0:
                draws.append(scipy_r(ties[rows], a[:10][rows])[0])
        fast = correlation(ties, a[:10], statistic, n_boot=300, seed=0)
        assert (fast.ci_low, fast.ci_high) == pytest.approx(tuple(np.percentile(draws, [2.5, 97.5])))
    assert np.isnan(correlation([1, 2], [3, 4], "pearson").value)
    assert np.isnan(correlation(x, np.ones_like(x), "spearman").value)
    with pytest.raises(ValueError):
        correlation(x, x, "kendall")


def _scores(run: str, values: dict[str, float]) -> pd.DataFrame:
    rows = [
        {"language": lang, "group": GROUPS[lang], "metric": "exact_match", "value": v} for lang, v in values.items()
    ]
    rows += [{"language": lang, "group": GROUPS[lang], "metric": "n_examples", "value": 10} for lang in values]
    return pd.DataFrame(rows).assign(run=run)


def test_transfer_table_and_predictors_known_answers() -> None:
    retrieval = pd.Series({"spa_Latn": 0.8, "rus_Cyrl": 0.6, "por_Latn": 0.7, "tur_Latn": 0.3, "kat_Geor": 0.1})
    task = {"eng_Latn": 1.0, "spa_Latn": 0.8, "rus_Cyrl": 0.6, "por_Latn": 0.7, "tur_Latn": 0.3, "kat_Geor": 0.1}
    aligned = {lang: v + (0.1 if lang != "tur_Latn" else -0.2) for lang, v in task.items()}
    scores = pd.concat([_scores("task", task), _scores("k11", aligned), _scores("task", {"amh_Ethi": 0.5})])
    table = transfer_table(retrieval, scores, "task")
    assert set(table.language) == set(retrieval.index), "supervised and retrieval-less languages are left out"
    assert set(table.metric) == {"exact_match"}
    gains = table[table.run == "k11"].set_index("language").gain
    assert gains.round(6).to_dict() == {"spa_Latn": 0.1, "rus_Cyrl": 0.1, "por_Latn": 0.1, "tur_Latn": -0.2,
                                        "kat_Geor": 0.1}  # fmt: skip
    assert table[table.run == "task"].gain.isna().all()
    found = transfer_predictors(table, "task", n_boot=500).set_index(["run", "statistic"])
    assert found.loc[("task", "pearson"), "value"] == pytest.approx(1.0), "score = retrieval exactly"
    assert found.loc[("task", "pearson"), "target"] == "score" and found.loc[("k11", "spearman"), "target"] == "gain"
    x = [0.8, 0.6, 0.7, 0.3, 0.1]
    assert found.loc[("k11", "pearson"), "value"] == pytest.approx(stats.pearsonr(x, [0.1, 0.1, 0.1, -0.2, 0.1])[0])
    assert (found.n_languages == 5).all()


def _evaluation(folder: Path, values: dict[str, float]) -> Path:
    folder.mkdir(parents=True)
    scores = _scores("", values).drop(columns="run")
    scores.to_csv(folder / "scores.csv", index=False)
    means = scores[scores.metric != "n_examples"].groupby(["group", "metric"]).value.agg(["mean", "count"])
    means.reset_index().rename(columns={"mean": "value", "count": "n_languages"}).to_csv(
        folder / "groups.csv", index=False
    )
    return folder


def test_compare_with_an_analysis_run_writes_the_predictors(tmp_path) -> None:
    task = {"eng_Latn": 1.0, "deu_Latn": 0.9, "spa_Latn": 0.7, "rus_Cyrl": 0.4, "por_Latn": 0.6, "tur_Latn": 0.2,
            "kat_Geor": 0.0, "amh_Ethi": 0.05}  # fmt: skip
    aligned = {lang: v + 0.05 * i for i, (lang, v) in enumerate(task.items())}
    first, second = _evaluation(tmp_path / "task", task), _evaluation(tmp_path / "aligned", aligned)
    out = tmp_path / "compare"
    argv = ["--compare", str(first), str(second), "--analysis", str(ANALYSIS), "--out", str(out)]
    assert evaluate_main(argv) == 0
    found = pd.read_csv(out / "predictors.csv").set_index(["run", "target", "statistic"])
    transfer = [lang for lang in task if GROUPS[lang] != "supervised"]
    x = [naive_retrieval(lang if lang != "por_Latn" else "por_Latn_BR") for lang in transfer]
    expected = stats.pearsonr(x, [task[lang] for lang in transfer])[0]
    assert found.loc[("task", "score", "pearson"), "value"] == pytest.approx(expected, abs=1e-6)
    gain = stats.spearmanr(x, [aligned[lang] - task[lang] for lang in transfer])[0]
    assert found.loc[("aligned", "gain", "spearman"), "value"] == pytest.approx(gain, abs=1e-6)
    assert (found.n_languages == len(transfer)).all()
    languages = pd.read_csv(out / "predictors_languages.csv")
    assert set(languages.language) == set(transfer)
    assert (out / "predictors_exact_match.png").stat().st_size > 10_000
    assert evaluate_main(["--analysis", str(ANALYSIS), "--task", "cldr", "--out", str(tmp_path / "x")]) == 2
