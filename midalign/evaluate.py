"""`midalign-evaluate`: score a base model (plus a LoRA adapter) on a task recipe, per language and language group.

Groups say how a language took part in training: `supervised` (task data in it), `alignment` (only in the
alignment pairs) and `unseen` (neither). They come from --supervised / --alignment / --unseen, or from a training
run's config.json (--groups-from; by default the run that holds --adapter). `--compare RUN ...` instead puts
several evaluation folders side by side; with `--analysis RUN` it also correlates each transfer language's
base-model retrieval (from that analysis run) with the first run's scores and the other runs' gains.

Outputs under --out: `predictions.jsonl` (one line per example), `scores.csv` (`language,group,metric,value`,
rewritten after every language, so a crash keeps the finished ones), `groups.csv` (`group,metric,value,
n_languages`: the mean over a group's languages, and over all of them), `config.json`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from midalign.cli import parse_config, prepare_output_dir, run_main, write_config
from midalign.errors import MidalignError
from midalign.tasks import TASKS, by_language, options_from, recipe

logger = logging.getLogger(__name__)

GROUPS = ("supervised", "alignment", "unseen")
MAX_NEW_TOKENS = {"cldr": 16, "massive": 64, "translation": 128, "entities": 96}
SCORE_COLUMNS = ["language", "group", "metric", "value"]
GROUP_COLUMNS = ["group", "metric", "value", "n_languages"]


@dataclass
class EvaluateConfig:
    """Evaluate a causal LM (optionally with a peft LoRA adapter) on a task, per language and language group
    (supervised / alignment-only / unseen), with batched greedy generation; or --compare evaluation folders."""

    task: str | None = field(default=None, metadata={"help": f"Task recipe: {', '.join(TASKS)}.", "choices": TASKS})
    model: str | None = field(
        default=None,
        metadata={"help": "Hub id or local folder; default: the adapter's training model, else the embedded one."},
    )
    revision: str | None = field(default=None, metadata={"help": "Hub revision of --model."})
    adapter: str | None = field(
        default=None, metadata={"help": "A peft adapter folder (midalign-train's OUT/adapter)."}
    )
    merge: bool = field(default=True, metadata={"help": "Merge the adapter into the weights (faster generation)."})
    data: str | None = field(
        default=None,
        metadata={
            "help": "Task source: cldr: a JSONL from `python -m midalign.tasks.cldr` (default: generated); massive: "
            "hub id or local copy (default AmazonScience/massive); translation: udhr (default), gettext (test: the dev "
            "split's pairs that never choose models), a FLORES+ folder or hub id, or a WMT-style source (xx-en pair "
            "configs; hub id or folder of pair subfolders); entities: "
            "a file or hub id (default universalner/universal_ner)."
        },
    )
    split: str | None = field(default=None, metadata={"help": "Split (default: test; translation: the source's)."})
    langs: list[str] = field(
        default_factory=list,
        metadata={"help": "Languages: FLORES codes or aliases, MASSIVE locales, or Universal NER configs."},
    )
    max_examples: int | None = field(default=None, metadata={"help": "At most N examples per language."})
    seed: int = field(default=0, metadata={"help": "Seed of generated data (cldr)."})
    cldr_kind: Literal["date_long", "month_year", "number", "currency"] = field(
        default="date_long", metadata={"help": "cldr: what to localize."}
    )
    directions: list[str] = field(
        default_factory=lambda: ["x2en", "en2x"], metadata={"help": "translation: x2en and/or en2x."}
    )
    english: str = field(
        default="eng_Latn", metadata={"help": "translation: the English side; --analysis: the pivot of retrieval."}
    )
    supervised: list[str] = field(default_factory=list, metadata={"help": "Languages with task training data."})
    alignment: list[str] = field(default_factory=list, metadata={"help": "Languages only in the alignment pairs."})
    unseen: list[str] = field(default_factory=list, metadata={"help": "Languages in neither (default: the rest)."})
    groups_from: str | None = field(
        default=None,
        metadata={"help": "A midalign-train output folder (or its config.json) giving supervised/alignment groups."},
    )
    batch_size: int = field(default=16, metadata={"help": "Prompts per generation batch."})
    max_new_tokens: int | None = field(
        default=None, metadata={"help": f"Answer length limit in tokens (default per task: {MAX_NEW_TOKENS})."}
    )
    dtype: Literal["auto", "fp32", "bf16"] = field(
        default="auto", metadata={"help": "Weights' dtype; auto = bf16 on a capable GPU, else fp32."}
    )
    device: Literal["auto", "cpu", "cuda"] = field(default="auto", metadata={"help": "auto, cpu or cuda."})
    compare: list[str] | None = field(
        default=None, metadata={"help": "Evaluation folders to compare (no evaluation is run); the first is the base."}
    )
    analysis: str | None = field(
        default=None,
        metadata={
            "help": "With --compare: a midalign-analyze run; correlate each transfer language's base retrieval with "
            "English at the run's selected layer with the first run's scores and the others' gains (predictors*.csv, "
            "predictors_METRIC.png)."
        },
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace the outputs of an earlier evaluation in OUT."})
    out: str = field(default="runs/evaluate", metadata={"help": "Output directory."})

    def __post_init__(self) -> None:
        if self.compare is None and self.task is None:
            raise MidalignError(f"--task is required (one of {', '.join(TASKS)}), unless --compare is given")
        if self.compare is not None and len(self.compare) < 2:
            raise MidalignError("--compare needs at least two evaluation folders")
        if self.analysis is not None and self.compare is None:
            raise MidalignError("--analysis goes with --compare (it correlates compared runs with base retrieval)")
        if self.batch_size < 1 or (self.max_new_tokens is not None and self.max_new_tokens < 1):
            raise MidalignError("--batch-size and --max-new-tokens must be at least 1")
        if self.max_examples is not None and self.max_examples < 1:
            raise MidalignError("--max-examples must be at least 1")


# ---- groups ------------------------------------------------------------------------------------------------------
def _training_config(path: str | Path) -> dict:
    path = Path(path)
    path = path / "config.json" if path.is_dir() else path
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise MidalignError(f"cannot read the training run's config {path}: {error}") from error


def resolve_groups(config: EvaluateConfig, languages: Sequence[str], training: dict | None) -> dict[str, str]:
    """Each evaluated language's group: supervised, alignment, unseen (or `ungrouped` when nothing says)."""
    from midalign.languages import UnknownLanguageError, resolve_language

    listed = {name: list(getattr(config, name)) for name in GROUPS}
    if training is not None and not listed["supervised"] and not listed["alignment"]:
        resolved = training.get("resolved", {})
        listed["supervised"] = list(resolved.get("task_languages", []))
        listed["alignment"] = list(resolved.get("align_languages", []))
        if training.get("task_data") and training.get("align_weight", 1.0) == 0:
            logger.info(
                "the groups' training run is task-only (--align-weight 0): its alignment languages were not aligned; "
                "they are grouped as `alignment` so that runs compare language for language"
            )
    sets: dict[str, set[str]] = {}
    for name, codes in listed.items():
        sets[name] = set()
        for code in codes:
            try:
                sets[name].add(resolve_language(code, list(languages)))
            except UnknownLanguageError:
                logger.debug("group %s: %s is not among the evaluated languages", name, code)
    if not any(sets.values()):
        return {lang: "ungrouped" for lang in languages}
    groups = {}
    for lang in languages:
        found = [name for name in GROUPS if lang in sets[name]]
        groups[lang] = found[0] if found else "unseen"
    return groups


def group_means(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric over each group's languages (macro average), and over all languages."""
    frames = [scores, scores.assign(group="all")] if scores["group"].nunique() > 1 else [scores]
    table = pd.concat(frames).groupby(["group", "metric"], sort=False)["value"].agg(["mean", "count"]).reset_index()
    return table.rename(columns={"mean": "value", "count": "n_languages"})[GROUP_COLUMNS]


# ---- evaluation --------------------------------------------------------------------------------------------------
def load_scored_model(config: EvaluateConfig, training: dict | None):
    """(model, tokenizer, resolved facts): the base model, the adapter attached (and merged) if given."""
    from midalign.models import load_model, model_identity

    model_name = config.model or (training or {}).get("model")
    model, tokenizer = load_model(model_name, dtype=config.dtype, device=config.device, revision=config.revision)
    facts = {"model_identity": model_identity(model), "adapter": None}
    trained_on = (training or {}).get("resolved", {}).get("model_identity")
    if config.adapter and trained_on and trained_on != facts["model_identity"]:
        logger.warning(
            "the adapter was trained on %s, but the base model here is %s", trained_on, facts["model_identity"]
        )
    if config.adapter:
        from peft import PeftModel

        if not (Path(config.adapter) / "adapter_config.json").is_file():
            raise MidalignError(f"--adapter {config.adapter}: no adapter_config.json there (is it OUT/adapter?)")
        model = PeftModel.from_pretrained(model, config.adapter)
        model = model.merge_and_unload() if config.merge else model
        model.eval()
        facts["adapter"] = str(Path(config.adapter).resolve())
    return model, tokenizer, facts


def _check_output(out: Path, overwrite: bool, names: Sequence[str]) -> None:
    earlier = [name for name in names if (out / name).exists()]
    if earlier and not overwrite:
        raise MidalignError(f"{out} already holds an evaluation ({', '.join(earlier)}); pass --overwrite")


def run(config: EvaluateConfig) -> pd.DataFrame:
    """Evaluate into `config.out`; return the tidy scores."""
    from midalign.generate import generate
    from midalign.models import resolve_device

    started = time.perf_counter()
    out = prepare_output_dir(config.out)
    _check_output(out, config.overwrite, ("predictions.jsonl", "scores.csv", "groups.csv"))
    task = recipe(config.task)
    examples = task.load_examples(options_from(config))
    rows = by_language(examples)
    run_dir = Path(config.adapter).parent if config.adapter else None  # midalign-train's OUT, if it is one
    training = _training_config(run_dir) if run_dir and (run_dir / "config.json").is_file() else None
    groups_from = config.groups_from or (str(run_dir) if training else None)
    groups = resolve_groups(config, list(rows), _training_config(groups_from) if groups_from else None)
    logger.info("%s: %d examples in %d languages; groups %s", config.task, len(examples), len(rows),
                {g: [lang for lang in rows if groups[lang] == g] for g in dict.fromkeys(groups.values())})  # fmt: skip
    model, tokenizer, facts = load_scored_model(config, training)
    max_new_tokens = config.max_new_tokens or MAX_NEW_TOKENS[config.task]
    device = resolve_device(config.device)
    resolved = {**facts, "task": config.task, "groups_from": groups_from, "groups": groups,
                "n_examples": {lang: len(idx) for lang, idx in rows.items()}, "max_new_tokens": max_new_tokens,
                "device": str(device)}  # fmt: skip
    write_config(out, config, **resolved)
    scores, generation_seconds = [], 0.0
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for lang, idx in rows.items():
            chosen = [examples[i] for i in idx]
            begin = time.perf_counter()
            predictions = generate(model, tokenizer, [e.prompt for e in chosen], max_new_tokens, config.batch_size)
            generation_seconds += time.perf_counter() - begin
            for example, prediction in zip(chosen, predictions, strict=True):
                record = {"id": example.id, "language": lang, "group": groups[lang], "prompt": example.prompt,
                          "reference": example.reference, "prediction": prediction, **example.meta}  # fmt: skip
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            values = {**task.score(chosen, predictions), "n_examples": len(chosen)}
            scores += [{"language": lang, "group": groups[lang], "metric": k, "value": v} for k, v in values.items()]
            pd.DataFrame(scores, columns=SCORE_COLUMNS).to_csv(out / "scores.csv", index=False)
            logger.info("%s (%s): %s", lang, groups[lang], ", ".join(f"{k} {v:.3g}" for k, v in values.items()))
    table = pd.DataFrame(scores, columns=SCORE_COLUMNS)
    means = group_means(table[table.metric != "n_examples"])
    means.to_csv(out / "groups.csv", index=False)
    for row in means.itertuples():
        logger.info("%-10s %-16s %.4g (%d languages)", row.group, row.metric, row.value, row.n_languages)
    resolved.update(
        generation_seconds=round(generation_seconds, 1), wall_seconds=round(time.perf_counter() - started, 1)
    )
    write_config(out, config, **resolved)
    logger.info("done in %.1f s; outputs in %s", resolved["wall_seconds"], out)
    return table


# ---- comparison --------------------------------------------------------------------------------------------------
def _run_names(folders: Sequence[str]) -> list[str]:
    names = [Path(folder).resolve().name for folder in folders]
    if len(set(names)) < len(names):
        names = [f"{Path(f).resolve().parent.name}/{Path(f).resolve().name}" for f in folders]
    if len(set(names)) < len(names):
        names = [f"run{i}:{name}" for i, name in enumerate(names)]
    return names


def _markdown(frame: pd.DataFrame) -> str:
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + " --- |" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells]) + "\n"


def _wide(frame: pd.DataFrame, keys: list[str], names: list[str]) -> pd.DataFrame:
    wide = frame.pivot_table(index=keys, columns="run", values="value", sort=False).reset_index()
    wide = wide[[*keys, *[name for name in names if name in wide.columns]]]
    for name in names[1:]:
        if name in wide.columns and names[0] in wide.columns:
            wide[f"{name} - {names[0]}"] = wide[name] - wide[names[0]]
    wide.columns.name = None
    return wide


def write_predictors(scores: pd.DataFrame, reference: str, analysis: str, out: Path, pivot: str) -> pd.DataFrame:
    """predictors_languages.csv, predictors.csv and one scatter per metric: base retrieval (from the analysis run)
    against the reference run's transfer scores and the other runs' gains; return the correlations."""
    from midalign.plots import plot_transfer_predictors, save_figure
    from midalign.predictors import base_retrieval, transfer_predictors, transfer_table
    from midalign.runs import load_run

    run = load_run(analysis)
    retrieval = base_retrieval(run, list(dict.fromkeys(scores.language)), pivot)
    table = transfer_table(retrieval, scores, reference)
    correlations = transfer_predictors(table, reference)
    table.to_csv(out / "predictors_languages.csv", index=False)
    correlations.to_csv(out / "predictors.csv", index=False)
    title = f"base retrieval at layer {run.selected_layer} ({run.label}) vs transfer"
    for metric in dict.fromkeys(table.metric):
        save_figure(plot_transfer_predictors(table, correlations, metric, reference, title),
                    out / f"predictors_{metric}.png")  # fmt: skip
    logger.info("what predicts transfer (%d languages):\n%s", table.language.nunique(), _markdown(correlations))
    return correlations


def compare(
    folders: Sequence[str], out_dir: str, overwrite: bool = False, analysis: str | None = None, pivot: str = "eng_Latn"
) -> pd.DataFrame:
    """Write comparison.csv (tidy), comparison_groups.csv and comparison_languages.csv (wide, with differences
    to the first run) and comparison.md; with an `analysis` run, also the predictors of transfer
    (`write_predictors`); return the wide group table."""
    out = prepare_output_dir(out_dir)
    _check_output(out, overwrite, ("comparison.csv", "comparison_groups.csv", "comparison.md"))
    names = _run_names(folders)
    scores, groups = [], []
    for name, folder in zip(names, folders, strict=True):
        for file, bucket in (("scores.csv", scores), ("groups.csv", groups)):
            path = Path(folder) / file
            if not path.is_file():
                raise MidalignError(f"--compare {folder}: no {file} (is it a midalign-evaluate output folder?)")
            bucket.append(pd.read_csv(path, keep_default_na=False).assign(run=name))
    tidy = pd.concat(scores, ignore_index=True)
    tidy[["run", *SCORE_COLUMNS]].to_csv(out / "comparison.csv", index=False)
    by_group = _wide(pd.concat(groups, ignore_index=True), ["group", "metric"], names)
    by_language = _wide(tidy[tidy.metric != "n_examples"], ["group", "language", "metric"], names)
    by_group.to_csv(out / "comparison_groups.csv", index=False)
    by_language.to_csv(out / "comparison_languages.csv", index=False)
    runs = "\n".join(f"- `{name}`: {folder}" for name, folder in zip(names, folders, strict=True))
    text = f"# Comparison\n\nRuns (differences are to `{names[0]}`):\n{runs}\n\n## Group means\n\n{_markdown(by_group)}"
    (out / "comparison.md").write_text(text + f"\n## Per language\n\n{_markdown(by_language)}")
    logger.info("comparison of %d runs in %s\n%s", len(names), out, _markdown(by_group))
    if analysis is not None:
        write_predictors(tidy, names[0], analysis, out, pivot)
    return by_group


def _main(argv: Sequence[str] | None) -> None:
    config = parse_config(EvaluateConfig, argv, prog="midalign-evaluate")
    if config.compare is not None:
        compare(config.compare, config.out, config.overwrite, config.analysis, config.english)
    else:
        run(config)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of `midalign-evaluate`."""
    return run_main(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
