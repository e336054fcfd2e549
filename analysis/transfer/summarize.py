"""Summarise the transfer study (analysis/transfer): each condition against task-only, paired by seed.

    python analysis/transfer/summarize.py [--out analysis/transfer] [--figures figures]

For every task, metric, language group and condition: the group mean (over the group's languages) per seed, the
paired difference to the task-only run of the same seed, the mean difference over seeds and a paired bootstrap 95 %
interval (seeds resampled with replacement) and, as a check that does not shrink with few seeds, a Student t
interval; a difference is called distinguishable from zero when both exclude 0. Only seeds where both runs of a
pair exist count, so a partly finished study summarises what is done.
What predicts transfer: each transfer language's base retrieval with English at the picked layer (the committed
48-language UDHR analysis) against the seed-mean task-only score and against the seed-mean gain of every condition
(midalign.analysis.predictors, the functions behind `midalign-evaluate --compare ... --analysis RUN`).

Writes per_seed.csv, results.csv, per_language.csv, predictors.csv, predictors_languages.csv, merge_weights.csv and
summary.md under --out; transfer_effects.png and transfer_predictors_TASK.png under --figures.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from midalign.analysis.predictors import base_retrieval, transfer_predictors, transfer_table
from midalign.analysis.runs import load_run
from midalign.viz.plots import plot_transfer_predictors, save_figure

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ANALYSIS = ROOT / "analysis" / "gemma-3-270m_udhr"
CONDITIONS = {
    "task": "task-only",
    "k11": "+ align @ 11 (picked)",
    "k4": "+ align @ 4 (shallow)",
    "k18": "+ align @ 18 (last)",
    "merged": "task ⊕ align (merged)",
}
METRICS = {"cldr": ["exact_match", "chrf"], "translation": ["x2en_chrf", "x2en_bleu"]}
GROUPS = ["supervised", "alignment", "unseen", "transfer", "all"]  # transfer = alignment + unseen
N_BOOT = 10_000


def load_scores(root: Path) -> pd.DataFrame:
    """Every evaluation's per-language scores: task, condition, seed (-1 for the base model), language, group,
    metric, value."""
    frames = []
    for path in sorted(root.glob("eval/*/*/scores.csv")):
        if not (path.parent / "groups.csv").is_file():  # written last: an evaluation still running (or stopped)
            continue
        match = re.fullmatch(r"(?P<condition>[a-z0-9]+)-s(?P<seed>\d+)", path.parent.name)
        if path.parent.name == "base":
            condition, seed = "base", -1
        elif match and match["condition"] in CONDITIONS:
            condition, seed = match["condition"], int(match["seed"])
        else:
            continue
        frame = pd.read_csv(path, keep_default_na=False)
        frames.append(frame.assign(task=path.parent.parent.name, condition=condition, seed=seed))
    if not frames:
        raise SystemExit(f"no evaluations under {root / 'eval'}: run analysis/transfer/run_all.sh first")
    scores = pd.concat(frames, ignore_index=True)
    return scores[scores.metric != "n_examples"].astype({"value": float})


def group_values(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean over each group's languages (and over the transfer and all languages) per run."""
    keys = ["task", "condition", "seed", "metric"]
    parts = [scores, scores[scores.group != "supervised"].assign(group="transfer"), scores.assign(group="all")]
    table = pd.concat(parts).groupby([*keys, "group"]).value.agg(["mean", "count"]).reset_index()
    return table.rename(columns={"mean": "value", "count": "n_languages"})


def bootstrap_mean(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile 95 % interval of the mean, resampling the values (one per seed) with replacement."""
    draws = values[rng.integers(0, len(values), size=(N_BOOT, len(values)))].mean(axis=1)
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def t_interval(values: np.ndarray) -> tuple[float, float]:
    """Student t 95 % interval of the mean: wider than the bootstrap's with few seeds, which ignores the
    uncertainty of the spread itself."""
    if len(values) < 2:
        return float("nan"), float("nan")
    if np.ptp(values) == 0:  # every seed gave the same difference (e.g. a merge that chose w_align = 0)
        return float(values[0]), float(values[0])
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return (float(low), float(high)) if np.isfinite(low) else (float(values.mean()), float(values.mean()))


def with_task_only(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The condition runs of `frame`, each row joined to the task-only value of the same `keys` and seed
    (`task_only`) and its `difference` to it; seeds without a task-only run drop out."""
    runs = frame[frame.condition.isin(CONDITIONS)]
    reference = runs[runs.condition == "task"][[*keys, "seed", "value"]].rename(columns={"value": "task_only"})
    both = runs.merge(reference, on=[*keys, "seed"], how="inner")
    return both.assign(difference=both.value - both.task_only)


def paired(groups: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per seed: each condition's group value and its difference to task-only of that seed; per task, metric,
    group and condition: mean, seed spread, mean difference with its interval)."""
    keys = ["task", "metric", "group"]
    per_seed = with_task_only(groups, keys).sort_values([*keys, "condition", "seed"], key=_order).reset_index(drop=True)
    rng = np.random.default_rng(0)
    rows = []
    for (task, metric, group, condition), part in per_seed.groupby([*keys, "condition"], sort=False):
        differences = part.difference.to_numpy()
        low, high = bootstrap_mean(differences, rng) if condition != "task" else (0.0, 0.0)
        t_low, t_high = t_interval(differences) if condition != "task" else (0.0, 0.0)
        rows.append({
            "task": task, "metric": metric, "group": group, "condition": condition, "n_seeds": len(part),
            "mean": part.value.mean(), "seed_sd": part.value.std(ddof=1) if len(part) > 1 else np.nan,
            "seed_min": part.value.min(), "seed_max": part.value.max(),
            "difference": differences.mean(), "ci_low": low, "ci_high": high, "t_low": t_low, "t_high": t_high,
            "distinguishable": condition != "task" and (low > 0 or high < 0) and (t_low > 0 or t_high < 0),
            "seeds_better": int((differences > 0).sum()), "seeds_worse": int((differences < 0).sum()),
        })  # fmt: skip
    return per_seed, pd.DataFrame(rows)


def _order(column: pd.Series) -> pd.Series:
    """Sort conditions and groups in reading order, everything else as it is."""
    if column.name == "condition":
        return column.map(list(CONDITIONS).index)
    if column.name == "group":
        return column.map(GROUPS.index)
    return column


def per_language(scores: pd.DataFrame) -> pd.DataFrame:
    """Per task, metric, language and condition: the seed mean and the mean paired difference to task-only."""
    keys = ["task", "metric", "language", "group"]
    table = (
        with_task_only(scores, keys)
        .groupby([*keys, "condition"], sort=False)
        .agg(n_seeds=("seed", "nunique"), mean=("value", "mean"), difference=("difference", "mean"))
    )
    return table.reset_index()


def predictors(scores: pd.DataFrame, figures: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Base retrieval at the picked layer vs seed-mean task-only scores and seed-mean gains, per task."""
    run = load_run(ANALYSIS)
    means = (
        scores[scores.condition.isin(CONDITIONS)]
        .groupby(["task", "condition", "language", "group", "metric"], sort=False)
        .value.mean()
        .reset_index()
        .rename(columns={"condition": "run"})
    )
    retrieval = base_retrieval(run, list(dict.fromkeys(means.language)))
    tables, correlations = [], []
    for task, part in means.groupby("task", sort=True):
        table = transfer_table(retrieval, part, "task").assign(task=task)
        found = transfer_predictors(table, "task").assign(task=task)
        tables.append(table)
        correlations.append(found)
        title = f"{task}: base retrieval at layer {run.selected_layer} vs transfer (gemma-3-270m, seed means)"
        labels = {"run": CONDITIONS}  # readable panel titles
        fig = plot_transfer_predictors(table.replace(labels), found.replace(labels), METRICS[task][0],
                                       CONDITIONS["task"], title)  # fmt: skip
        save_figure(fig, figures / f"transfer_predictors_{task}.png")
    return pd.concat(correlations, ignore_index=True), pd.concat(tables, ignore_index=True)


def merge_weights(root: Path) -> pd.DataFrame:
    """The w_align each merge chose on dev."""
    rows = []
    for path in sorted(root.glob("runs/*/merged-s*/config.json")):
        resolved = json.loads(path.read_text()).get("resolved", {})
        rows.append({"task": path.parent.parent.name, "seed": int(path.parent.name.split("-s")[1]),
                     "w_task": resolved.get("w_task"), "w_align": resolved.get("w_align")})  # fmt: skip
    return pd.DataFrame(rows, columns=["task", "seed", "w_task", "w_align"])


def effects_figure(results: pd.DataFrame, per_seed: pd.DataFrame, out: Path) -> None:
    """Mean paired difference to task-only with its interval and the per-seed differences, per task and group."""
    tasks = sorted(results.task.unique())
    groups = ["supervised", "alignment", "unseen"]
    fig = Figure(figsize=(4.0 * len(groups), 3.2 * len(tasks)), layout="constrained")
    axes = fig.subplots(len(tasks), len(groups), squeeze=False)
    conditions = [c for c in CONDITIONS if c != "task"]
    for row, task in enumerate(tasks):
        metric = METRICS[task][0]
        for col, group in enumerate(groups):
            ax = axes[row][col]
            for x, condition in enumerate(conditions):
                found = results[(results.task == task) & (results.metric == metric) & (results.group == group)
                                & (results.condition == condition)]  # fmt: skip
                seeds = per_seed[(per_seed.task == task) & (per_seed.metric == metric) & (per_seed.group == group)
                                 & (per_seed.condition == condition)]  # fmt: skip
                if found.empty:
                    continue
                item = found.iloc[0]
                error = [[item.difference - item.ci_low], [item.ci_high - item.difference]]
                ax.errorbar(x, item.difference, yerr=error, fmt="o", color="black", capsize=3)
                jitter = np.linspace(-0.15, 0.15, len(seeds)) if len(seeds) > 1 else np.zeros(1)
                ax.scatter(x + jitter, seeds.difference, s=12, alpha=0.6, color="tab:blue")
            ax.axhline(0, color="grey", lw=0.8, ls="--")
            ax.set_xticks(range(len(conditions)), [CONDITIONS[c].replace(" (", "\n(") for c in conditions], fontsize=7)
            ax.set_title(f"{task}: {group}", fontsize=9)
            if col == 0:
                ax.set_ylabel(f"Δ {metric} vs task-only")
    fig.suptitle("gemma-3-270m: difference to task-only per seed (dots), mean and paired bootstrap 95 % interval")
    save_figure(fig, out / "transfer_effects.png")


def _cell(item: pd.Series) -> str:
    mark = " **≠0**" if item.distinguishable else ""
    return f"{item.difference:+.3f} [{item.ci_low:+.3f}, {item.ci_high:+.3f}]{mark}"


def markdown(results: pd.DataFrame, correlations: pd.DataFrame, weights: pd.DataFrame) -> str:
    lines = ["# Transfer study: each condition against task-only (paired by seed)", ""]
    for task in sorted(results.task.unique()):
        for metric in METRICS[task]:
            part = results[(results.task == task) & (results.metric == metric)]
            if part.empty:
                continue
            seeds = int(part[part.condition == "task"].n_seeds.max())
            lines += [f"## {task}: {metric} ({seeds} seeds)", ""]
            header = ["group", "task-only mean (seed min–max)", *[CONDITIONS[c] for c in CONDITIONS if c != "task"]]
            lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
            for group in GROUPS:
                rows = part[part.group == group].set_index("condition")
                if "task" not in rows.index:
                    continue
                base = rows.loc["task"]
                cells = [f"{base['mean']:.3f} ({base.seed_min:.3f}–{base.seed_max:.3f})"]
                cells += [_cell(rows.loc[c]) if c in rows.index else "–" for c in CONDITIONS if c != "task"]
                lines.append(f"| {task} {metric} {group} | " + " | ".join(cells) + " |")
            lines.append("")
    header = "| task | metric | y | statistic | r [95 % CI] | languages |"
    lines += ["## What predicts transfer (transfer languages, seed means)", "", header, "|" + " --- |" * 6]
    order = {name: i for i, name in enumerate(CONDITIONS)}
    ranked = correlations.assign(rank=correlations.run.map(order)).sort_values(["task", "rank", "statistic"])
    for row in ranked.itertuples():
        if row.metric != METRICS[row.task][0]:
            continue
        y = "task-only score" if row.target == "score" else f"gain of {CONDITIONS[row.run]}"
        lines.append(f"| {row.task} | {row.metric} | {y} | {row.statistic} | {row.value:+.2f} "
                     f"[{row.ci_low:+.2f}, {row.ci_high:+.2f}] | {row.n_languages} |")  # fmt: skip
    if not weights.empty:
        lines += ["", "## w_align chosen on dev by the merge", ""]
        for task, part in weights.groupby("task"):
            chosen = ", ".join(f"s{row.seed}: {row.w_align:g}" for row in part.itertuples())
            lines.append(f"- {task}: {chosen}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="Folder for the tables and summary.md.")
    parser.add_argument("--figures", type=Path, default=ROOT / "figures", help="Folder for the figures.")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    scores = load_scores(HERE)
    groups = group_values(scores)
    per_seed, results = paired(groups)
    correlations, predictor_languages = predictors(scores, args.figures)
    weights = merge_weights(HERE)
    per_seed.to_csv(args.out / "per_seed.csv", index=False)
    results.to_csv(args.out / "results.csv", index=False)
    per_language(scores).to_csv(args.out / "per_language.csv", index=False)
    correlations.to_csv(args.out / "predictors.csv", index=False)
    predictor_languages.to_csv(args.out / "predictors_languages.csv", index=False)
    weights.to_csv(args.out / "merge_weights.csv", index=False)
    groups[groups.condition == "base"].to_csv(args.out / "base_model.csv", index=False)
    effects_figure(results, per_seed, args.figures)
    (args.out / "summary.md").write_text(markdown(results, correlations, weights), encoding="utf-8")
    print((args.out / "summary.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
