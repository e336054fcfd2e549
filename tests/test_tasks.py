"""Task recipes on committed fixtures: loaders, prompts and targets, and known-answer metric tests."""

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml
from babel.dates import format_date

from midalign.corpora.languages import CODE_PATTERN
from midalign.tasks import Example, TaskError, TaskOptions, by_language, cldr, entities, read_jsonl, recipe, slots
from midalign.tasks import translation as mt
from midalign.training.data import load_task_data

FIXTURES = Path(__file__).parent / "fixtures" / "tasks"


# ---- CLDR ----------------------------------------------------------------------------------------------------------
def test_cldr_locales_of_flores_codes_and_back() -> None:
    expected = {"deu_Latn": "de", "cmn_Hans": "zh_Hans", "pes_Arab": "fa", "swh_Latn": "sw", "srp_Cyrl": "sr_Cyrl",
                "srp_Latn": "sr_Latn", "por_Latn_BR": "pt_BR", "arb_Arab": "ar", "de": "de"}  # fmt: skip
    assert {code: cldr.locale_for(code) for code in expected} == expected
    assert cldr.flores_code("de") == "deu_Latn" and cldr.flores_code("deu_Latn") == "deu_Latn"
    assert cldr.autonym("pl") == "polski" and cldr.autonym("de") == "Deutsch"
    with pytest.raises(TaskError, match="no CLDR locale"):
        cldr.locale_for("xxx_Latn")
    with pytest.raises(TaskError, match="neither"):
        cldr.locale_for("German")


def test_cldr_examples_are_deterministic_parallel_disjoint_and_right() -> None:
    langs = ["eng_Latn", "deu_Latn", "rus_Cyrl"]
    test = cldr.make_examples(langs, "date_long", "test", 6, seed=0)
    assert test == cldr.make_examples(langs, "date_long", "test", 6, seed=0)
    assert test != cldr.make_examples(langs, "date_long", "test", 6, seed=1)
    # The same items in every language (multi-way parallel), and a smaller set is a prefix of a larger one.
    canon = {lang: [e.meta["canonical"] for e in test if e.language == lang] for lang in langs}
    assert canon["eng_Latn"] == canon["deu_Latn"] == canon["rus_Cyrl"]
    assert cldr.make_examples(["deu_Latn"], "date_long", "test", 3) == [e for e in test if e.language == "deu_Latn"][:3]
    splits = {split: set(cldr.split_items("month_year", split, 0)) for split in cldr.SPLITS}
    assert sum(map(len, splits.values())) == 2400
    assert not (splits["train"] & splits["test"] or splits["dev"] & splits["test"] or splits["train"] & splits["dev"])
    for example in test:  # the answer is babel's, NFKC-normalized (ru: "г." after a narrow no-break space)
        day = dt.date.fromisoformat(example.meta["canonical"])
        assert example.reference == cldr.normalize(format_date(day, "long", locale=example.meta["locale"]))
        assert example.prompt == f"{cldr.autonym(example.meta['locale'])}: {example.meta['canonical']} →"
    assert test[0].reference == "January 13, 2000" and "\u202f" not in "".join(e.reference for e in test)
    for kind in cldr.KINDS:
        (example,) = cldr.make_examples(["fra_Latn"], kind, "dev", 1)
        assert example.reference and "→" in example.prompt and "\n" not in example.reference


def test_cldr_scores_known_answers() -> None:
    examples = cldr.make_examples(["fra_Latn"], "month_year", "test", 4)
    perfect = cldr.score(examples, [e.reference for e in examples])
    assert perfect == {"exact_match": 1.0, "chrf": pytest.approx(100.0)}
    assert cldr.score(examples, [""] * 4) == {"exact_match": 0.0, "chrf": 0.0}
    noisy = [f"  {e.reference.replace(' ', chr(0xA0))} " for e in examples]  # no-break spaces, stray blanks
    assert cldr.score(examples, noisy)["exact_match"] == 1.0
    half = [e.reference if i % 2 else "mars 1900" for i, e in enumerate(examples)]
    assert cldr.score(examples, half)["exact_match"] == pytest.approx(0.5)


def test_item_scores_average_to_the_recipe_scores() -> None:
    """Per-example scores: exact match averages to the recipe's exact match; chrF is sacrebleu's sentence chrF (of
    the normalised strings for cldr, of the raw ones for translation), in the example's direction."""
    import sacrebleu

    examples = cldr.make_examples(["fra_Latn"], "date_long", "test", 6)
    predictions = [e.reference if i % 3 else "1 janvier 1900" for i, e in enumerate(examples)]
    items = cldr.item_scores(examples, predictions)
    assert sum(i["exact_match"] for i in items) / len(items) == cldr.score(examples, predictions)["exact_match"]
    assert [i["chrf"] for i in items] == [
        sacrebleu.sentence_chrf(cldr.normalize(p), [cldr.normalize(e.reference)]).score
        for e, p in zip(examples, predictions, strict=True)
    ]
    meta = [{"direction": "x2en"}, {"direction": "en2x"}]
    pairs = [Example(id=str(i), language="deu_Latn", prompt="p", reference=r, meta=m)
             for i, (r, m) in enumerate(zip(["The file is open.", "Die Datei"], meta, strict=True))]  # fmt: skip
    scored = mt.item_scores(pairs, ["The file is opened.", "Die Datei"])
    assert list(scored[0]) == ["x2en_chrf"] and list(scored[1]) == ["en2x_chrf"]
    assert scored[0]["x2en_chrf"] == sacrebleu.sentence_chrf("The file is opened.", ["The file is open."]).score
    assert scored[1]["en2x_chrf"] == pytest.approx(100.0)


def test_cldr_data_files_feed_midalign_train(tmp_path) -> None:
    out = tmp_path / "data"
    argv = ["--langs", "eng_Latn", "de", "--n-train", "5", "--n-dev", "2", "--n-test", "3", "--out", str(out)]
    assert cldr.main(argv) == 0
    train = load_task_data(str(out / "train.jsonl"))
    assert len(train) == 10 and {e.language for e in train} == {"eng_Latn", "deu_Latn"}
    assert all(e.target.startswith(" ") and not e.prompt.endswith(" ") for e in train)
    test = read_jsonl(out / "test.jsonl")
    assert test == cldr.make_examples(["eng_Latn", "deu_Latn"], "date_long", "test", 3)
    assert not {e.prompt.split(": ")[1] for e in train} & {e.meta["canonical"] + " →" for e in test}
    assert json.loads((out / "config.json").read_text())["resolved"]["locales"] == {"eng_Latn": "en", "deu_Latn": "de"}
    options = TaskOptions(task_data=str(out / "test.jsonl"), task_langs=["deu_Latn"], max_examples=2)
    assert [e.language for e in cldr.load_examples(options)] == ["deu_Latn"] * 2


# ---- MASSIVE -------------------------------------------------------------------------------------------------------
def test_massive_annotation_parsing_and_target() -> None:
    pairs = slots.parse_annotation("wake me up at [time : five am] this [date : week]")
    assert pairs == [("time", "five am"), ("date", "week")]
    assert slots.format_slots(pairs) == "time: five am; date: week"
    assert slots.parse_annotation("remind me at [time : 3:30 pm]") == [("time", "3:30 pm")]
    assert slots.format_slots(slots.parse_annotation("turn the lights off")) == "None"


def test_massive_locales_map_to_flores_codes() -> None:
    assert len(slots.LOCALE_TO_FLORES) == 51 and len(slots.FLORES_TO_LOCALE) == 51
    assert all(CODE_PATTERN.match(code) for code in slots.LOCALE_TO_FLORES.values())
    assert slots.flores_code("de-DE") == "deu_Latn" and slots.flores_code("zh-TW") == "cmn_Hant"
    assert [slots.massive_locale(x) for x in ("de-DE", "deu_Latn", "de", "fra")] == ["de-DE", "de-DE", "de-DE", "fr-FR"]
    with pytest.raises(TaskError, match="no locale"):
        slots.massive_locale("yor_Latn")


def test_massive_loader_on_a_local_copy() -> None:
    examples = slots.load_examples(TaskOptions(task_data=str(FIXTURES / "massive"), task_langs=["en-US", "de"]))
    assert list(by_language(examples)) == ["eng_Latn", "deu_Latn"] and len(examples) == 7
    first = examples[0]
    assert first.reference == "time: five am; date: week" and first.id == "en-US-1"
    assert first.prompt == f"{slots.SYSTEM_PROMPT}\nCommand: wake me up at five am this week\nEntities:"
    assert examples[1].reference == "None"
    every = slots.load_examples(
        TaskOptions(task_data=str(FIXTURES / "massive"), max_examples=1)
    )  # default: all locales
    assert [e.language for e in every] == ["eng_Latn", "deu_Latn", "fra_Latn"]
    with pytest.raises(TaskError, match="cannot load MASSIVE"):
        slots.load_examples(TaskOptions(task_data=str(FIXTURES / "massive"), task_langs=["ja-JP"]))


def test_slot_f1_known_answers_and_formatting_noise() -> None:
    examples = slots.load_examples(TaskOptions(task_data=str(FIXTURES / "massive"), task_langs=["en-US"]))
    references = [e.reference for e in examples]  # 2 + 0 + 3 + 2 = 7 gold pairs
    perfect = slots.score(examples, references)
    assert perfect["slot_f1"] == 1.0 and perfect["exact_match"] == 1.0
    empty = slots.score(examples, [""] * 4)
    assert empty["slot_f1"] == 0.0 and empty["exact_match"] == 0.25  # the utterance without slots is right
    noisy = [
        "Time : Five AM. ;date:week",
        "none",
        "event name: The Dentist; date: Friday; time: 3:30 PM.",
        references[3],
    ]
    assert slots.score(examples, noisy)["slot_f1"] == 1.0
    # 1 right of 2 predicted (precision 0.5) and 1 of 7 gold pairs found (recall 1/7).
    partial = slots.score(examples, ["time: five am; date: month", "None", "garbage without colon", "None"])
    assert partial["slot_precision"] == 0.5 and partial["slot_recall"] == pytest.approx(1 / 7)
    assert partial["slot_f1"] == pytest.approx(2 * 0.5 * (1 / 7) / (0.5 + 1 / 7))
    assert slots.parse_slots("time: five am; time: five am") == [("time", "five am")] * 2  # duplicates count twice
    twice = slots.score(examples[:1], ["time: five am; time: five am; date: week"])
    assert twice["slot_precision"] == pytest.approx(2 / 3) and twice["slot_recall"] == 1.0


# ---- translation ---------------------------------------------------------------------------------------------------
def test_translation_both_directions_from_a_parallel_source(flores_dir) -> None:
    options = TaskOptions(task_data=str(flores_dir), task_split="dev", task_langs=["deu_Latn", "ru"], max_examples=4)
    examples = mt.load_examples(options)
    assert list(by_language(examples)) == ["deu_Latn", "rus_Cyrl"] and len(examples) == 2 * 2 * 4
    x2en = next(e for e in examples if e.meta["direction"] == "x2en" and e.language == "deu_Latn")
    assert x2en.prompt.startswith("Translate from German to English.\nGerman: Der Zug")
    assert x2en.prompt.endswith("\nEnglish:")
    assert x2en.reference.startswith("The train")
    en2x = next(e for e in examples if e.meta["direction"] == "en2x" and e.language == "rus_Cyrl")
    assert en2x.reference.startswith("Поезд") and en2x.meta["tgt_lang"] == "rus_Cyrl"
    german = [e for e in examples if e.language == "deu_Latn"]
    perfect = mt.score(german, [e.reference for e in german])
    assert set(perfect) == {"x2en_bleu", "x2en_chrf", "en2x_bleu", "en2x_chrf"}  # COMET: scripts/comet_score.py
    assert all(value == pytest.approx(100.0) for value in perfect.values())
    assert all(value == 0.0 for value in mt.score(german, [""] * len(german)).values())
    only = mt.load_examples(
        TaskOptions(task_data=str(flores_dir), task_split="dev", task_langs=["fra"], directions=["en2x"])
    )
    assert {e.meta["direction"] for e in only} == {"en2x"}
    assert mt.bleu_tokenizer("cmn_Hans") == "zh" and mt.bleu_tokenizer("deu_Latn") == "13a"
    with pytest.raises(TaskError, match="directions"):
        mt.load_examples(TaskOptions(task_data=str(flores_dir), task_langs=["fra"], directions=["fr2de"]))


def _translation_ids(task_data: str, split: str, lang: str = "deu_Latn", max_examples: int | None = None) -> list[str]:
    options = TaskOptions(
        task_data=task_data, task_split=split, task_langs=[lang], max_examples=max_examples, directions=["x2en"]
    )
    examples = mt.load_examples(options)
    assert {e.meta["direction"] for e in examples} == {"x2en"} and {e.language for e in examples} == {lang}
    return [e.id.removesuffix(f"-{lang}-eng_Latn") for e in examples]


def test_translation_from_the_bundled_pair_corpus_tests_on_its_test_split() -> None:
    from midalign.corpora.pairs import DEV_PAIRS, DEV_SPLIT, TEST_SPLIT, first_pairs_by_hash, read_pair_source

    stored = {
        split: read_pair_source("gettext", ["deu_Latn"], split).pairs["deu_Latn"]
        for split in ("train", DEV_SPLIT, TEST_SPLIT)
    }
    chooses = first_pairs_by_hash(read_pair_source("gettext", ["deu_Latn"], DEV_SPLIT), DEV_PAIRS).pairs["deu_Latn"]
    dev, test = _translation_ids("gettext", "dev"), _translation_ids("gettext", "test")
    assert dev == chooses.ids, "dev = the subset merge sweeps score"
    assert sorted(test) == sorted(stored[TEST_SPLIT].ids), "test = the whole test split"
    assert len(test) >= 200 and not set(test) & set(stored[DEV_SPLIT].ids) and not set(test) & set(stored["train"].ids)
    some = _translation_ids("gettext", "test", max_examples=30)
    assert len(some) == 30 and set(some) <= set(test) and some == _translation_ids("gettext", "test", max_examples=30)
    assert set(_translation_ids("gettext", "train", max_examples=50)) <= set(stored["train"].ids)
    english = dict(zip(stored[TEST_SPLIT].ids, stored[TEST_SPLIT].english, strict=True))
    example = mt.load_examples(
        TaskOptions(task_data="gettext", task_split="test", task_langs=["de"], max_examples=1, directions=["x2en"])
    )[0]
    assert example.prompt.startswith("Translate from German to English.\nGerman: ")
    assert example.reference == " ".join(english[example.id.removesuffix("-deu_Latn-eng_Latn")].split())


def test_translation_from_a_pair_source_reads_its_test_split_or_refuses(pairs_dir, tmp_path: Path) -> None:
    from tests.helpers import PAIRS_LIKE, write_pair_layout

    three = write_pair_layout(
        tmp_path / "three", PAIRS_LIKE, splits={"train": range(0, 24), "dev": range(24, 32), "test": range(32, 40)}
    )
    assert sorted(_translation_ids(str(three), "test", "fra_Latn")) == [f"p{i:03d}" for i in range(32, 40)]
    assert sorted(_translation_ids(str(three), "dev", "fra_Latn")) == [f"p{i:03d}" for i in range(24, 32)]
    # A source without a test split: no part of its dev split is safe to test on (--dev-pairs can be all of it).
    with pytest.raises(
        TaskError, match=r"has no test split for deu_Latn: translation is tested on a pair source's own"
    ):
        mt.load_examples(
            TaskOptions(task_data=str(pairs_dir), task_split="test", task_langs=["deu_Latn"], directions=["x2en"])
        )
    # A test split in one language only: refused, naming the language without one.
    both = {lang: PAIRS_LIKE[lang] for lang in ("fra_Latn", "rus_Cyrl")}
    partial = write_pair_layout(
        tmp_path / "partial", both, splits={"train": range(0, 24), "dev": range(24, 32), "test": range(32, 40)}
    )
    header = yaml.safe_load((partial / "README.md").read_text(encoding="utf-8").split("---")[1])
    for config in header["configs"]:
        if config["config_name"] == "rus_Cyrl":
            config["data_files"] = [f for f in config["data_files"] if f["split"] != "test"]
    (partial / "test" / "rus_Cyrl.parquet").unlink()
    (partial / "README.md").write_text(f"---\n{yaml.safe_dump(header, sort_keys=False)}---\n", encoding="utf-8")
    assert _translation_ids(str(partial), "test", "fra_Latn")  # fra_Latn alone still works
    with pytest.raises(TaskError, match=r"no test split for rus_Cyrl:"):
        mt.load_examples(
            TaskOptions(task_data=str(partial), task_split="test", task_langs=["fra", "rus"], directions=["x2en"])
        )


def test_task_data_cli_keeps_short_examples_then_caps(tmp_path: Path) -> None:
    from midalign.tasks.__main__ import main as task_data_main
    from midalign.tasks.__main__ import short_examples

    made = [Example(str(i), lang, "p", " ".join(["w"] * n)) for i, (lang, n) in
            enumerate([("a", 3), ("a", 9), ("a", 2), ("b", 4), ("a", 1), ("b", 12)])]  # fmt: skip
    assert [e.id for e in short_examples(made, 4, 2)] == ["0", "2", "3"]
    assert [e.id for e in short_examples(made, 4, None)] == ["0", "2", "3", "4"]
    args = ["--task", "translation", "--data", "gettext", "--split", "train", "--directions", "x2en",
            "--langs", "fra_Latn", "--max-words", "5", "--max-examples", "20", "--out", str(tmp_path)]  # fmt: skip
    assert task_data_main(args) == 0
    written = read_jsonl(tmp_path / "train.jsonl")
    assert len(written) == 20 and all(len(e.reference.split()) <= 5 for e in written)
    every = mt.load_examples(
        TaskOptions(task_data="gettext", task_split="train", task_langs=["fra_Latn"], directions=["x2en"])
    )
    assert [e.id for e in written] == [e.id for e in every if len(e.reference.split()) <= 5][:20]


# ---- entities ------------------------------------------------------------------------------------------------------
def test_entity_json_parsing_recovers_what_it_can() -> None:
    good = '[{"type": "PER", "text": "Ada Lovelace"}, {"type": "loc", "text": "London"}]'
    assert entities.parse_entities(good) == ([("PER", "ada lovelace"), ("LOC", "london")], True)
    assert entities.parse_entities("[]") == ([], True)
    truncated = '[{"type": "PER", "text": "Ada Lovelace"}, {"type": "LOC", "te'
    assert entities.parse_entities(truncated) == ([("PER", "ada lovelace")], False)
    broken = '[{"type": "PER", "text": "Ada"} {"type": "ORG", "text": "Acme", }]'  # missing comma, trailing comma
    assert entities.parse_entities(broken) == ([("PER", "ada"), ("ORG", "acme")], False)
    assert entities.parse_entities('Entities: [{"type": "LOC", "text": "Paris"}] done')[1] is False
    for garbage in ("", "None", "[[[", "{oops}", '[{"type": 3, "text": null}]', '"just a string"'):
        assert entities.parse_entities(garbage)[0] == [], garbage


def test_entity_loaders_and_f1_known_answers() -> None:
    examples = entities.load_examples(TaskOptions(task_data=str(FIXTURES / "entities.jsonl")))
    assert list(by_language(examples)) == ["eng_Latn", "deu_Latn"] and len(examples) == 6
    assert json.loads(examples[0].reference)[0] == {"type": "PER", "text": "Ada Lovelace"}
    assert examples[1].reference == "[]" and examples[0].prompt.endswith("Charles Babbage in London.\nEntities:")
    perfect = entities.score(examples, [e.reference for e in examples])
    assert perfect == {"entity_f1": 1.0, "entity_precision": 1.0, "entity_recall": 1.0, "json_valid": 1.0}
    empty = entities.score(examples, [""] * 6)
    assert empty["entity_f1"] == 0.0 and empty["json_valid"] == 0.0
    english = [e for e in examples if e.language == "eng_Latn"]  # 3 + 0 + 3 gold entities
    answers = ['[{"type": "PER", "text": "ada lovelace"}, {"type": "ORG", "text": "London"}', "not json", "[]"]
    partial = entities.score(english, answers)
    assert partial["entity_precision"] == 0.5 and partial["entity_recall"] == pytest.approx(1 / 6)
    iob = entities.load_examples(TaskOptions(task_data=str(FIXTURES / "uner_iob.jsonl"), task_langs=["eng_Latn"]))
    assert [json.loads(e.reference) for e in iob] == [
        [{"type": "PER", "text": "Marie Curie"}, {"type": "LOC", "text": "Paris"}],
        [{"type": "ORG", "text": "United Nations"}],
    ]
    spans = entities.iob_spans(["a", "b", "c", "d"], ["I-LOC", "B-LOC", "I-PER", "I-PER"])
    assert spans == [("LOC", "a"), ("LOC", "b"), ("PER", "c d")]


def test_recipes_are_registered_and_jsonl_round_trips(tmp_path) -> None:
    assert recipe("massive") is slots and recipe("cldr") is cldr
    with pytest.raises(TaskError, match="unknown task"):
        recipe("qa")
    from midalign.tasks import write_jsonl

    examples = [Example("a", "eng_Latn", "p:", "x y", {"k": 1}), Example("b", "deu_Latn", "q:", "z")]
    assert read_jsonl(write_jsonl(tmp_path / "t.jsonl", examples)) == examples
    (tmp_path / "bad.jsonl").write_text('{"prompt": "p"}\n')
    with pytest.raises(TaskError, match="line 1"):
        read_jsonl(tmp_path / "bad.jsonl")
    # One example type and one reader for evaluation and training files: a completion other than " " + reference
    # (any prompt/completion file) is kept as the training target; training files may omit the language.
    raw = [Example("c", "fra_Latn", "r:", "w", completion="\nw")]
    assert read_jsonl(write_jsonl(tmp_path / "raw.jsonl", raw)) == raw and raw[0].target == "\nw"
    (tmp_path / "plain.jsonl").write_text('{"prompt": "p", "completion": " a b"}\n')
    (plain,) = read_jsonl(tmp_path / "plain.jsonl", require_language=False)
    assert (plain.language, plain.reference, plain.completion, plain.target) == (None, "a b", None, " a b")
    with pytest.raises(TaskError, match="missing field 'language'"):
        read_jsonl(tmp_path / "plain.jsonl")
    (tmp_path / "no-ids.jsonl").write_text('\n{"prompt": "p", "completion": " a", "language": "fra_Latn"}\n')
    assert read_jsonl(tmp_path / "no-ids.jsonl")[0].id == "fra_Latn-2"  # LANGUAGE-LINE when a file has no ids


# ---- python -m midalign.tasks: training files from any recipe ---------------------------------------------------
def test_task_data_cli_writes_what_midalign_train_reads(tmp_path: Path) -> None:
    from midalign.tasks.__main__ import main as task_data_main
    from midalign.training.data import load_task_data

    out = tmp_path / "massive"
    args = ["--task", "massive", "--data", str(FIXTURES / "massive"), "--split", "test", "--langs", "en-US", "de"]
    assert task_data_main([*args, "--out", str(out)]) == 0
    examples = slots.load_examples(TaskOptions(task_data=str(FIXTURES / "massive"), task_langs=["en-US", "de"]))
    written = load_task_data(str(out / "test.jsonl"))
    assert [(x.prompt, x.target.strip(), x.language) for x in written] == [
        (x.prompt, x.reference, x.language) for x in examples
    ]
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["examples"] == {lang: len(rows) for lang, rows in by_language(examples).items()}
    assert task_data_main(["--task", "massive", "--data", str(tmp_path / "nowhere"), "--out", str(out)]) == 2


def test_translation_from_a_wmt_style_source() -> None:
    source = str(FIXTURES / "wmt")  # one folder per pair, as the hub's wmt19 configs: de-en/, en-fr/
    examples = mt.load_examples(TaskOptions(task_data=source, task_split="test", task_langs=["deu_Latn", "fra_Latn"]))
    assert list(by_language(examples)) == ["deu_Latn", "fra_Latn"] and len(examples) == 2 * (3 + 2)
    x2en = next(e for e in examples if e.meta["direction"] == "x2en" and e.language == "fra_Latn")
    assert x2en.prompt == "Translate from French to English.\nFrench: Le train arrive à huit heures.\nEnglish:"
    assert x2en.reference == "The train arrives at eight o'clock." and x2en.id == "en-fr-0-fra_Latn-eng_Latn"
    en2x = [e for e in examples if e.meta["direction"] == "en2x" and e.language == "deu_Latn"]
    assert [e.reference for e in en2x][-1] == "Die Brücke ist seit Montag gesperrt."
    assert (
        len(mt.load_examples(TaskOptions(task_data=source, task_split="test", task_langs=["de"], max_examples=1))) == 2
    )
    with pytest.raises(TaskError, match="no it-en pair for ita_Latn; it has de-en, en-fr"):
        mt.load_examples(TaskOptions(task_data=source, task_split="test", task_langs=["ita_Latn"]))
