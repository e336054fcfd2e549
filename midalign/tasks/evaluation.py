"""`midalign-evaluate`: score a base model (plus a LoRA adapter) on a task recipe, per language and language group.

Groups say how a language took part in training: `supervised` (task data in it), `alignment` (only in the
alignment pairs) and `unseen` (neither). They come from --supervised / --alignment / --unseen, or from a training
run's config.json (--groups-from; by default the run that holds --adapter). `--compare RUN ...` instead puts
several evaluation folders side by side; with `--analysis RUN` it also correlates each transfer language's
base-model retrieval (from that analysis run) with the first run's scores and the other runs' gains.

Outputs under --out: `predictions.jsonl` (one line per example), `scores.csv` (`language,group,metric,value`,
rewritten after every language, so a crash keeps the finished ones), `groups.csv` (`group,metric,value,
n_languages`: the mean over a group's languages, and over all of them), `config.json`; and, for recipes that score
single examples (cldr: exact match and sentence chrF; translation: sentence chrF), `item_scores.csv`
(`id,language,group,metric,value`, one row per example and metric): what intervals over test items resample.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from midalign.cli import prepare_output_dir
from midalign.errors import MidalignError
from midalign.options import EVALUATION_GROUPS, MAX_NEW_TOKENS, EvaluateConfig
from midalign.records import EvaluationRecord, MergeRecord, TrainingRecord, adapter_run, load_record
from midalign.tasks import by_language, recipe

logger = logging.getLogger(__name__)

SCORE_COLUMNS = ["language", "group", "metric", "value"]
ITEM_COLUMNS = ["id", "language", "group", "metric", "value"]
ITEM_SCORES = "item_scores.csv"
GROUP_COLUMNS = ["group", "metric", "value", "n_languages"]


# ---- groups ------------------------------------------------------------------------------------------------------
def resolve_groups(
    config: EvaluateConfig, languages: Sequence[str], training: TrainingRecord | MergeRecord | None
) -> dict[str, str]:
    """Each evaluated language's group: supervised, alignment, unseen (or `ungrouped` when nothing says)."""
    from midalign.corpora.languages import UnknownLanguageError, resolve_language

    listed = {name: list(getattr(config, name)) for name in EVALUATION_GROUPS}
    if training is not None and not listed["supervised"] and not listed["alignment"]:
        listed["supervised"] = list(training.resolved.task_languages)
        listed["alignment"] = list(training.resolved.align_languages)
        if isinstance(training, TrainingRecord) and not training.resolved.aligned:
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
        found = [name for name in EVALUATION_GROUPS if lang in sets[name]]
        groups[lang] = found[0] if found else "unseen"
    return groups


def group_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean of each metric over each group's languages (macro average), and over all languages."""
    frames = [scores, scores.assign(group="all")] if scores["group"].nunique() > 1 else [scores]
    table = pd.concat(frames).groupby(["group", "metric"], sort=False)["value"].agg(["mean", "count"]).reset_index()
    return table.rename(columns={"mean": "value", "count": "n_languages"})[GROUP_COLUMNS]


# ---- evaluation --------------------------------------------------------------------------------------------------
def load_scored_model(config: EvaluateConfig, training: TrainingRecord | MergeRecord | None):
    """(model, tokenizer, resolved facts): the base model, the adapter attached (and merged) if given."""
    from midalign.models.loading import load_model, model_identity

    model_name = config.model or (training.config.model if training is not None else None)
    model, tokenizer = load_model(model_name, dtype=config.dtype, device=config.device, revision=config.revision)
    facts = {"model_identity": model_identity(model), "adapter": None}
    trained_on = training.resolved.model_identity if training is not None else None
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
    from midalign.models.loading import resolve_device
    from midalign.tasks.generate import generate

    started = time.perf_counter()
    out = prepare_output_dir(config.out)
    _check_output(out, config.overwrite, ("predictions.jsonl", "scores.csv", "groups.csv", ITEM_SCORES))
    (out / ITEM_SCORES).unlink(missing_ok=True)  # an earlier run's, replaced under --overwrite
    task = recipe(config.task)
    examples = task.load_examples(config)
    rows = by_language(examples)
    training = adapter_run(config.adapter) if config.adapter else None  # midalign-train's or -merge's OUT
    if config.groups_from:
        groups_from, grouping = config.groups_from, load_record(config.groups_from, ("train", "merge"))
    else:
        groups_from = str(Path(config.adapter).parent) if training is not None else None
        grouping = training
    groups = resolve_groups(config, list(rows), grouping)
    logger.info("%s: %d examples in %d languages; groups %s", config.task, len(examples), len(rows),
                {g: [lang for lang in rows if groups[lang] == g] for g in dict.fromkeys(groups.values())})  # fmt: skip
    model, tokenizer, facts = load_scored_model(config, training)
    max_new_tokens = config.max_new_tokens or MAX_NEW_TOKENS[config.task]
    device = resolve_device(config.device)
    record = EvaluationRecord.create(config, **facts, task=config.task, groups_from=groups_from, groups=groups,
                                     n_examples={lang: len(idx) for lang, idx in rows.items()},
                                     max_new_tokens=max_new_tokens, device=str(device))  # fmt: skip
    record.save(out)
    scores, items, generation_seconds = [], [], 0.0
    itemize = getattr(task, "item_scores", None)  # recipes whose metrics are means over single examples
    with (out / "predictions.jsonl").open("w", encoding="utf-8") as handle:
        for lang, idx in rows.items():
            chosen = [examples[i] for i in idx]
            begin = time.perf_counter()
            predictions = generate(model, tokenizer, [e.prompt for e in chosen], max_new_tokens, config.batch_size)
            generation_seconds += time.perf_counter() - begin
            for example, prediction in zip(chosen, predictions, strict=True):
                line = {"id": example.id, "language": lang, "group": groups[lang], "prompt": example.prompt,
                        "reference": example.reference, "prediction": prediction, **example.meta}  # fmt: skip
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            handle.flush()
            values = {**task.score(chosen, predictions), "n_examples": len(chosen)}
            scores += [{"language": lang, "group": groups[lang], "metric": k, "value": v} for k, v in values.items()]
            pd.DataFrame(scores, columns=SCORE_COLUMNS).to_csv(out / "scores.csv", index=False)
            if itemize is not None:
                for example, values_of in zip(chosen, itemize(chosen, predictions), strict=True):
                    items += [{"id": example.id, "language": lang, "group": groups[lang], "metric": k, "value": v}
                              for k, v in values_of.items()]  # fmt: skip
                pd.DataFrame(items, columns=ITEM_COLUMNS).to_csv(out / ITEM_SCORES, index=False)
            logger.info("%s (%s): %s", lang, groups[lang], ", ".join(f"{k} {v:.3g}" for k, v in values.items()))
    table = pd.DataFrame(scores, columns=SCORE_COLUMNS)
    means = group_scores(table[table.metric != "n_examples"])
    means.to_csv(out / "groups.csv", index=False)
    for row in means.itertuples():
        logger.info("%-10s %-16s %.4g (%d languages)", row.group, row.metric, row.value, row.n_languages)
    record = record.with_resolved(
        generation_seconds=round(generation_seconds, 1), wall_seconds=round(time.perf_counter() - started, 1)
    )
    record.save(out)
    logger.info("done in %.1f s; outputs in %s", record.resolved.wall_seconds, out)
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
    from midalign.analysis.predictors import base_retrieval, transfer_predictors, transfer_table
    from midalign.analysis.runs import load_run
    from midalign.viz.plots import plot_transfer_predictors, save_figure

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


def evaluate_or_compare(config: EvaluateConfig) -> pd.DataFrame:
    """midalign-evaluate: `--compare` folders side by side, else evaluate (`run`); return the table it wrote."""
    if config.compare is not None:
        return compare(config.compare, config.out, config.overwrite, config.analysis, config.english)
    return run(config)
