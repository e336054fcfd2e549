"""Alignment data and evaluation: pair corpora, uncut pairs, early stopping on dev, evaluation on another corpus
with aligned/unseen groups and bootstrap intervals (checked against naive references)."""

import json
import logging
import math

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from midalign.analysis.metrics import pair_metrics, retrieval_hits
from midalign.corpora.pairs import from_parallel, is_pair_source, load_pairs
from midalign.corpora.parallel import load_parallel
from midalign.train import main
from midalign.training.data import AlignPair, tokenize_pairs
from midalign.training.early_stopping import DevMonitor
from midalign.training.evaluation import hits_table, summarize
from tests.helpers import PAIRS_LIKE, tiny_tokenizer


def test_pair_and_multiway_sources_load_as_pairs(pairs_dir, flores_dir) -> None:
    assert is_pair_source(str(pairs_dir)) and not is_pair_source(str(flores_dir))
    pairs = load_pairs(str(pairs_dir), ["de", "rus_Cyrl"], "train")
    assert pairs.languages == ["deu_Latn", "rus_Cyrl"] and pairs.counts() == {"deu_Latn": 32, "rus_Cyrl": 32}
    assert pairs.pairs["rus_Cyrl"].english[3] == "The file 3 could not be saved."
    assert pairs.pairs["rus_Cyrl"].texts[3] == PAIRS_LIKE["rus_Cyrl"][3][1]
    assert set(load_pairs(str(pairs_dir), ["deu_Latn"], "dev").pairs["deu_Latn"].ids) == {
        f"p{i:03d}" for i in range(32, 40)
    }
    # A multi-way source pairs each language's row i with English row i.
    multi = load_pairs(str(flores_dir), ["deu_Latn", "ell_Grek"], "dev")
    corpus = load_parallel(str(flores_dir), ["eng_Latn", "deu_Latn", "ell_Grek"], "dev")
    assert multi.pairs["ell_Grek"].english == corpus.sentences["eng_Latn"]
    assert multi.pairs["ell_Grek"].texts == corpus.sentences["ell_Grek"]
    assert from_parallel(corpus, "eng_Latn", [2, 0]).pairs["deu_Latn"].ids == [corpus.ids[2], corpus.ids[0]]


def test_pairs_longer_than_the_limit_are_left_out_and_counted_never_cut() -> None:
    texts = ["a b c", "d e f g h i j k l m n o p q r s", "t u"]
    tokenizer = tiny_tokenizer(texts)
    pairs = [AlignPair(text, "x y", "deu_Latn", "eng_Latn", i) for i, text in enumerate(texts)]
    pairs.append(AlignPair("a b", " ".join(["x"] * 40), "rus_Cyrl", "eng_Latn", 3))
    limit = len(tokenizer(texts[0])["input_ids"]) + 1
    features, dropped = tokenize_pairs(tokenizer, pairs, limit)
    assert dropped == {"deu_Latn": 1, "rus_Cyrl": 1}
    assert [f["row"] for f in features] == [0, 2]
    assert features[0]["src_ids"] == tokenizer(texts[0])["input_ids"], "kept pairs are whole"


class _State:
    is_main_process = True
    num_processes = 1


def test_dev_monitor_keeps_the_best_step_and_stops_after_patience(tmp_path) -> None:
    scores = iter([0.50, 0.60, 0.55, 0.70, 0.65, 0.69, 0.90])  # steps 0, 2, 4, 6, 8, 10, (12: never reached)
    saved = []
    monitor = DevMonitor(
        score=lambda: {"retrieval_acc": {"deu_Latn": next(scores)}}, save=saved.append, every=2, patience=2,
        last_step=12,
        path=tmp_path / "dev.csv", state=_State(),
    )  # fmt: skip
    stopped_at = next(step for step in range(13) if monitor(step))
    assert stopped_at == 10 and saved == [0, 2, 6] and monitor.best_step == 6 and monitor.best == 0.70
    result = monitor.result()
    assert result["stopped_early"] and result["dev_retrieval_start"] == 0.5 and result["dev_retrieval_best"] == 0.7
    table = pd.read_csv(tmp_path / "dev.csv")
    assert table[table.lang == "mean"].step.tolist() == [0, 2, 4, 6, 8, 10]
    # A resumed run (checkpoint at step 4) forgets the scores from step 4 on and counts the best again.
    again = DevMonitor(
        score=lambda: {"retrieval_acc": {"deu_Latn": 0.8}, "centered_retrieval_acc": {"deu_Latn": 0.9}},
        save=saved.append, every=2, patience=2, last_step=12,
        path=tmp_path / "dev.csv", state=_State(),
    )  # fmt: skip
    again.restore()
    assert not again(4) and again.best_step == 4 and again.best == 0.8
    table = pd.read_csv(tmp_path / "dev.csv")
    assert table.step.max() == 4 and table.set_index(["step", "lang"]).centered_retrieval_acc[(4, "mean")] == 0.9


def test_per_sentence_hits_average_to_the_analysis_metric() -> None:
    generator = torch.Generator().manual_seed(0)
    en, x = torch.randn(12, 16, generator=generator), torch.randn(12, 16, generator=generator)
    x[:6] = en[:6] + 0.3 * x[:6]  # half the sentences close to their translation
    x_to_en, en_to_x = retrieval_hits(x, en)
    matrix = pair_metrics(torch.stack([en, x]), margin_k=4)["retrieval_acc"]  # row = source
    assert math.isclose(x_to_en.mean(), float(matrix[1, 0]), abs_tol=1e-6)
    assert math.isclose(en_to_x.mean(), float(matrix[0, 1]), abs_tol=1e-6)
    assert x_to_en[:6].all()
    assert retrieval_hits(en, en)[0].all(), "identical states: every sentence finds itself"


def _naive_interval(values: dict, members: list[str], draws: np.ndarray) -> tuple[float, float, float]:
    """values[lang][direction] = [N] hits; the group mean and its percentile interval, one draw at a time."""
    means = []
    for draw in draws:
        cells = [values[lang][d][s] for lang in members for d in ("x->eng", "eng->x") for s in draw]
        means.append(sum(cells) / len(cells))
    full = [values[lang][d][s] for lang in members for d in ("x->eng", "eng->x") for s in range(draws.shape[1])]
    low, high = np.percentile(means, [2.5, 97.5])
    return sum(full) / len(full), low, high


def test_bootstrap_summary_matches_a_naive_reference() -> None:
    rng = np.random.default_rng(1)
    langs, n, groups = ["deu_Latn", "rus_Cyrl", "ell_Grek"], 9, {"deu_Latn": "aligned", "rus_Cyrl": "aligned"}
    hits = {stage: {lang: {d: rng.integers(0, 2, n) for d in ("x->eng", "eng->x")} for lang in langs}
            for stage in ("before", "after")}  # fmt: skip
    rows = [
        (stage, 3, lang, d, f"s{s}", int(hits[stage][lang][d][s]))
        for stage in hits for lang in langs for d in ("x->eng", "eng->x") for s in range(n)
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=["stage", "layer", "lang", "direction", "sentence", "hit"])
    summary = summarize(table, groups, n_bootstrap=300, seed=7).set_index(["lang", "group"])
    draws = np.random.default_rng(7).integers(0, n, size=(300, n))
    delta = {
        lang: {d: hits["after"][lang][d] - hits["before"][lang][d] for d in ("x->eng", "eng->x")} for lang in langs
    }
    for (name, group), members in {("mean", "aligned"): ["deu_Latn", "rus_Cyrl"], ("mean", "unseen"): ["ell_Grek"],
                                   ("mean", "all"): langs, ("rus_Cyrl", "aligned"): ["rus_Cyrl"]}.items():  # fmt: skip
        row = summary.loc[(name, group)]
        for column, values in (("before", hits["before"]), ("after", hits["after"]), ("delta", delta)):
            expected = _naive_interval(values, members, draws)
            got = (row[column], row[f"{column}_low"], row[f"{column}_high"])
            assert np.allclose(got, expected, atol=1e-6), (name, group, column)
    # Known answers: a perfect stage has the interval [1, 1]; no change has delta 0 with the interval [0, 0].
    perfect = table.assign(hit=1)
    exact = summarize(perfect, groups, n_bootstrap=50).iloc[0]
    assert (exact.before, exact.before_low, exact.after_high, exact.delta, exact.delta_low) == (1, 1, 1, 0, 0)


def test_hits_table_is_tidy(tmp_path) -> None:
    states = {lang: np.random.default_rng(i).normal(size=(5, 3, 8)).astype(np.float32)
              for i, lang in enumerate(["eng_Latn", "deu_Latn"])}  # fmt: skip
    table = hits_table(states, "eng_Latn", [f"s{i}" for i in range(5)], "before")
    assert list(table.columns) == ["stage", "layer", "lang", "direction", "sentence", "hit"]
    assert len(table) == 3 * 2 * 5 and set(table.lang) == {"deu_Latn"}


def _lora_b(folder) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(folder / "adapter_model.safetensors").items() if "lora_B" in k}


def test_pair_corpus_run_evaluates_aligned_and_unseen_languages_on_another_corpus(
    tiny_gemma_dir, pairs_dir, flores_dir, tmp_path
) -> None:
    out = tmp_path / "run"
    argv = ["--model", str(tiny_gemma_dir), "--align-data", str(pairs_dir), "--align-langs", "deu_Latn", "rus_Cyrl",
            "--eval-data", str(flores_dir), "--eval-langs", "deu_Latn", "rus_Cyrl", "fra_Latn", "ell_Grek",
            "--layer", "2", "--batch-size", "8", "--align-max-length", "40", "--pairs-per-language", "0",
            "--epochs", "2", "--eval-every", "2", "--patience", "0", "--lr", "5e-3", "--device", "cpu",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    resolved = json.loads((out / "config.json").read_text())["resolved"]
    assert resolved["align_pairs_too_long"] == {"deu_Latn": 1}
    assert resolved["n_align_pairs"] == 63 and resolved["dev_pairs"] == {"deu_Latn": 8, "rus_Cyrl": 8}
    assert resolved["eval_groups"] == {"deu_Latn": "aligned", "rus_Cyrl": "aligned", "fra_Latn": "unseen",
                                       "ell_Grek": "unseen"}  # fmt: skip
    assert resolved["eval_data"] == str(flores_dir) and resolved["eval_split"] == "devtest"
    summary = pd.read_csv(out / "eval_summary.csv")
    assert set(summary.layer) == set(range(5))
    means = summary[(summary.lang == "mean") & (summary.layer == 2)].set_index("group")
    assert set(means.index) == {"aligned", "unseen", "all"} and (means.n_sentences == 18).all()
    assert (means.delta_low <= means.delta).all() and (means.delta <= means.delta_high).all()
    assert set(resolved["eval_retrieval_at_layer"]) == {"aligned", "unseen", "all"}
    # The tidy metrics agree with the per-sentence hits they come from.
    hits = pd.read_parquet(out / "eval_hits.parquet")
    after = pd.read_csv(out / "eval_after.csv")
    x_to_en = hits[
        (hits.stage == "after") & (hits.layer == 2) & (hits.lang == "fra_Latn") & (hits.direction == "x->eng")
    ]
    metric = after[(after.layer == 2) & (after.src == "fra_Latn") & (after.metric == "retrieval_acc")].value.item()
    assert math.isclose(x_to_en.hit.mean(), metric, abs_tol=1e-6)
    # Dev retrieval was scored at step 0 and every 2 steps; the final adapter is the best-scoring one.
    dev = pd.read_csv(out / "dev.csv")
    means_by_step = dev[dev.lang == "mean"].set_index("step").retrieval_acc
    assert means_by_step.index[0] == 0 and list(means_by_step.index) == sorted(means_by_step.index)
    assert resolved["best_step"] == int(means_by_step.idxmax())
    final, best = _lora_b(out / "adapter"), _lora_b(out / "best")
    assert all(torch.equal(final[name], best[name]) for name in final)
    if resolved["best_step"] == 0:
        assert all(not tensor.any() for tensor in final.values()), "step 0 is the zero update"


def test_patience_stops_training_early(tiny_gemma_dir, pairs_dir, flores_dir, tmp_path) -> None:
    out = tmp_path / "stop"
    argv = ["--model", str(tiny_gemma_dir), "--align-data", str(pairs_dir), "--align-langs", "deu_Latn", "rus_Cyrl",
            "--eval-data", "none", "--layer", "1", "--batch-size", "4", "--pairs-per-language", "0", "--epochs", "4",
            "--eval-every", "1", "--patience", "1", "--lr", "1e-9", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    resolved = json.loads((out / "config.json").read_text())["resolved"]
    # A learning rate of 1e-9 changes nothing that retrieval can see: step 1 ties step 0, so the run stops there.
    assert resolved["stopped_early"] and resolved["steps_done"] == 1 < resolved["total_steps"]
    assert resolved["best_step"] == 0 and not (out / "eval_summary.csv").exists()


def test_layer_auto_on_a_pair_corpus_analyses_the_evaluation_corpus(tiny_model_dir, pairs_dir, flores_dir, tmp_path):
    out = tmp_path / "auto"
    argv = ["--model", str(tiny_model_dir), "--align-data", str(pairs_dir), "--align-langs", "deu_Latn", "rus_Cyrl",
            "--eval-data", str(flores_dir), "--eval-langs", "deu_Latn", "fra_Latn", "--max-steps", "1",
            "--batch-size", "4", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    selection = json.loads((out / "analysis" / "selection.json").read_text())
    # The pair corpus has no English side of its own to analyse: the layer comes from the aligned languages of the
    # evaluation corpus (rus_Cyrl was not asked to be evaluated, fra_Latn is unseen).
    assert selection["languages"] == ["eng_Latn", "deu_Latn"]
    assert json.loads((out / "config.json").read_text())["resolved"]["layer"] == selection["layer"]


_WORDS = ["river", "stone", "cloud", "bread", "horse", "lamp", "salt", "wheel", "honey", "rope", "chair", "snow"]
_CIPHER = dict(
    zip(_WORDS, ["vak", "zel", "dop", "kir", "mun", "tas", "lob", "fen", "gur", "hib", "jow", "quy"], strict=True)
)


def _cipher_sentences(count: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    english = [" ".join(rng.choice(_WORDS, size=5)) for _ in range(count)]
    return [(" ".join(_CIPHER[w] for w in text.split()), text) for text in english]


def test_alignment_training_learns_a_cipher_and_generalises_to_unseen_sentences(tmp_path) -> None:
    """It learns: a random tiny model cannot retrieve translations of a word-for-word cipher of English; after
    alignment training on other sentences it retrieves held-out ones far above chance (the interval above 0)."""
    from tests.helpers import save_tiny_model_on, write_flores_layout, write_pair_layout

    train, dev, test = _cipher_sentences(320, 0), _cipher_sentences(40, 1), _cipher_sentences(30, 2)
    pairs = {"deu_Latn": [(f"t{i}", x, en) for i, (x, en) in enumerate(train + dev)]}
    write_pair_layout(tmp_path / "pairs", pairs, {"train": range(320), "dev": range(320, 360)})
    write_flores_layout(tmp_path / "test", {"eng_Latn": [en for _, en in test], "deu_Latn": [x for x, _ in test]},
                        {"devtest": range(30)})  # fmt: skip
    model = save_tiny_model_on(tmp_path / "model", [text for pair in train for text in pair])
    out = tmp_path / "run"
    argv = ["--model", str(model), "--align-data", str(tmp_path / "pairs"), "--align-langs", "deu_Latn",
            "--eval-data", str(tmp_path / "test"), "--eval-langs", "deu_Latn", "--layer", "3", "--lr", "3e-3",
            "--max-steps", "80", "--eval-every", "20", "--patience", "0", "--pairs-per-language", "0",
            "--lora-dropout", "0", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    summary = pd.read_csv(out / "eval_summary.csv")
    aligned = summary[(summary.layer == 3) & (summary.lang == "mean") & (summary.group == "aligned")].iloc[0]
    assert aligned.before < 0.2, "a random model cannot read the cipher"
    # Measured: 0.017 -> 0.650 (interval of the change +0.48 to +0.77); the bounds leave room for other CPUs' kernels.
    assert aligned.after > 0.4 and aligned.delta_low > 0.2, aligned.to_dict()


def test_cache_dir_serves_the_base_states_of_a_later_run(tiny_gemma_dir, pairs_dir, flores_dir, tmp_path, caplog):
    common = [
        "--model",
        str(tiny_gemma_dir),
        "--align-data",
        str(pairs_dir),
        "--align-langs",
        "deu_Latn",
        "--eval-data",
        str(flores_dir),
        "--eval-langs",
        "deu_Latn",
        "fra_Latn",
        "--layer",
        "2",
        "--max-steps",
        "1",
        "--eval-every",
        "0",
        "--device",
        "cpu",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert main([*common, "--out", str(tmp_path / "first")]) == 0
    with caplog.at_level(logging.INFO, logger="midalign"):
        assert main([*common, "--seed", "1", "--out", str(tmp_path / "second")]) == 0
    assert "states: 3 languages cached, 0 to compute" in caplog.text
    first, second = (pd.read_csv(tmp_path / run / "eval_before.csv") for run in ("first", "second"))
    pd.testing.assert_frame_equal(first, second)
    uncached = tmp_path / "uncached"
    assert main([*common[:-2], "--out", str(uncached)]) == 0
    pd.testing.assert_frame_equal(first, pd.read_csv(uncached / "eval_before.csv"))


def test_centred_hits_remove_each_languages_offset() -> None:
    """A huge offset per language hides the translations from raw cosine; centring each language finds them."""
    generator = torch.Generator().manual_seed(1)
    meaning = torch.randn(10, 8, generator=generator)  # [N, H]
    english = meaning + torch.tensor([500.0] + [0.0] * 7)
    other = meaning + 0.1 * torch.randn(10, 8, generator=generator) + torch.tensor([0.0, 400.0] + [0.0] * 6)
    states = {"eng_Latn": english[:, None].numpy(), "deu_Latn": other[:, None].numpy()}  # [N, 1 layer, H]
    ids = [f"s{i}" for i in range(10)]
    raw = hits_table(states, "eng_Latn", ids, "before")
    centred = hits_table(states, "eng_Latn", ids, "before", center=True)
    assert raw.hit.mean() < 0.5 and centred.hit.mean() == 1.0
    assert list(centred.columns) == list(raw.columns) and len(centred) == len(raw) == 20
