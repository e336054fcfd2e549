"""Structured generation: named entities as a JSON list, Universal NER style.

The model reads a sentence and writes its entities on one line, `[{"type": "PER", "text": "Ada Lovelace"}]`
(`[]` when there are none). Sources: a JSONL/JSON/parquet file or a `datasets` source whose rows have either
`text` + `entities` (a list of {"type", "text"}) or Universal NER's `tokens` + `ner_tags` (IOB2, as label
strings or class ids), plus `language` (FLORES-style). For hub configs such as Universal NER's `en_ewt`, the
language comes from the config name.

Score: micro precision/recall/F1 over (type, text) pairs (types upper-cased, text NFKC, case-folded, whitespace
collapsed), each gold pair matched at most once. Malformed JSON is recovered as far as it goes: the whole list
if it parses, else every `{...}` object that parses, else the "type"/"text" fields a regex finds in each object
(so an answer cut off mid-list keeps its finished entities); what cannot be read counts as no entities.
`json_valid` is the share of answers that parse as a JSON list as they are.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from midalign.tasks import Example, TaskError, TaskOptions, f1_scores, multiset_overlap

logger = logging.getLogger(__name__)

UNIVERSAL_NER = "universalner/universal_ner"
TYPES = ("PER", "ORG", "LOC")
_OBJECT = re.compile(r"\{[^{}]*\}?")
_FIELD = re.compile(r'"(type|text)"\s*:\s*"((?:[^"\\]|\\.)*)"')


def prompt(text: str) -> str:
    """The instruction and the sentence; the model continues after `Entities:`."""
    return f"Named entities ({', '.join(TYPES)}) as JSON.\nText: {' '.join(text.split())}\nEntities:"


def format_entities(entities: Sequence[tuple[str, str]]) -> str:
    """The target: a one-line JSON list of {"type", "text"} objects."""
    return json.dumps([{"type": kind, "text": text} for kind, text in entities], ensure_ascii=False)


def _norm(kind: str, text: str) -> tuple[str, str]:
    return kind.strip().upper(), " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _pairs(items: object) -> list[tuple[str, str]]:
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        return []
    pairs = [_norm(i["type"], i["text"]) for i in items if isinstance(i, dict) and
             isinstance(i.get("type"), str) and isinstance(i.get("text"), str)]  # fmt: skip
    return [pair for pair in pairs if pair[0] and pair[1]]


def parse_entities(answer: str) -> tuple[list[tuple[str, str]], bool]:
    """(normalized (type, text) pairs, whether the answer was a valid JSON list as it stands)."""
    start, end = answer.find("["), answer.rfind("]")
    if start != -1 and end > start:
        try:
            whole = json.loads(answer[start : end + 1])
            return _pairs(whole), isinstance(whole, list) and not answer[:start].strip() and not answer[
                end + 1 :
            ].strip()
        except json.JSONDecodeError:
            pass
    pairs = []
    for piece in _OBJECT.findall(answer):
        try:
            pairs += _pairs(json.loads(piece))
        except json.JSONDecodeError:
            fields = dict(_FIELD.findall(piece))
            if "type" in fields and "text" in fields:
                pairs += _pairs({key: json.loads(f'"{value}"') for key, value in fields.items()})
    return pairs, False


def iob_spans(tokens: Sequence[str], tags: Sequence[str]) -> list[tuple[str, str]]:
    """(type, text) of each IOB2 span; an I- tag that continues nothing starts a span, as conlleval reads it."""
    spans, kind, words = [], None, []
    for token, tag in [*zip(tokens, tags, strict=True), ("", "O")]:
        prefix, _, label = tag.partition("-")
        if kind is not None and (prefix != "I" or label != kind):
            spans.append((kind, " ".join(words)))
            kind, words = None, []
        if prefix in ("B", "I") and kind is None:
            kind, words = label, []
        if kind is not None:
            words.append(token)
    return spans


def _gold(row: dict, tag_names: Sequence[str] | None) -> tuple[str, list[tuple[str, str]]]:
    if "entities" in row:
        entities = json.loads(row["entities"]) if isinstance(row["entities"], str) else row["entities"]
        text = row.get("text") or " ".join(row.get("tokens") or [])
        return text, [(e["type"], e["text"]) for e in entities]
    if "tokens" in row and "ner_tags" in row:
        tags = [tag_names[t] if isinstance(t, int) and tag_names else str(t) for t in row["ner_tags"]]
        return " ".join(row["tokens"]), iob_spans(row["tokens"], tags)
    raise TaskError(f"an entities row needs text + entities or tokens + ner_tags; it has {sorted(row)}")


def _config_language(config: str) -> str:
    import langcodes

    tag = langcodes.Language.get(config.split("_")[0])
    return f"{tag.to_alpha3()}_{tag.maximize().script}"


def _tables(options: TaskOptions):
    """(language or None, rows) pairs: one per file, or one per hub config named in --langs."""
    import datasets

    source = options.task_data or UNIVERSAL_NER
    path = Path(source)
    builders = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
    if path.is_file():
        if path.suffix not in builders:
            raise TaskError(f"{source}: use a .jsonl, .json, .parquet or .csv file")
        return [(None, datasets.load_dataset(builders[path.suffix], data_files=str(path), split="train"))]
    if not options.task_langs:
        raise TaskError(f"name the configs of {source!r} to read with --langs (e.g. en_ewt de_pud)")
    tables = []
    for config in options.task_langs:
        try:
            rows = datasets.load_dataset(source, config, split=options.task_split or "test")
        except RuntimeError as error:  # a script-based hub dataset: read the hub's parquet export
            if "scripts are no longer supported" not in str(error):
                raise
            rows = datasets.load_dataset(
                source, config, split=options.task_split or "test", revision="refs/convert/parquet"
            )
        tables.append((_config_language(config), rows))
    return tables


def load_examples(options: TaskOptions) -> list[Example]:
    """Examples from a file (filtered to --langs, if given) or from the named hub configs."""
    examples, counts = [], {}
    from_file = Path(options.task_data or "").is_file()
    for language, rows in _tables(options):
        feature = rows.features.get("ner_tags")
        tag_names = getattr(getattr(feature, "feature", None), "names", None)
        for index, row in enumerate(rows):
            lang = language or row.get("language")
            if lang is None:
                raise TaskError(f"{options.task_data}: row {index} has no `language` field")
            if from_file and options.task_langs and lang not in options.task_langs:
                continue
            counts[lang] = counts.get(lang, 0) + 1
            if options.max_examples is not None and counts[lang] > options.max_examples:
                continue
            text, gold = _gold(row, tag_names)
            row_id = str(row.get("id", row.get("idx", index)))
            examples.append(Example(f"{lang}-{row_id}", lang, prompt(text), format_entities(gold), {"text": text}))
    if not examples:
        raise TaskError(f"no entity examples in {options.task_data!r} for {list(options.task_langs) or 'any language'}")
    return examples


def score(examples: Sequence[Example], predictions: Sequence[str]) -> dict[str, float]:
    """Micro entity precision/recall/F1 over (type, text) pairs and the share of valid JSON answers."""
    correct = predicted = gold = valid = 0
    for example, prediction in zip(examples, predictions, strict=True):
        want, _ = parse_entities(example.reference)
        got, ok = parse_entities(prediction)
        correct, predicted, gold = correct + multiset_overlap(want, got), predicted + len(got), gold + len(want)
        valid += ok
    f1 = f1_scores(correct, predicted, gold)
    return {"entity_f1": f1["f1"], "entity_precision": f1["precision"], "entity_recall": f1["recall"],
            "json_valid": valid / len(examples)}  # fmt: skip
