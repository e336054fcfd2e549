"""Summarise the transfer study (studies/transfer): every condition against task-only, paired by seed and item.

    python studies/transfer/summarize.py [--root studies/transfer] [--figures figures]

Reads every finished evaluation's `item_scores.csv` (`eval/TEST/CONDITION-sSEED/`; written by midalign-evaluate,
one row per test item and metric: cldr exact match and sentence chrF, translation sentence chrF). For each test set,
metric, language group and condition:
- the group value of a run is the mean over the group's languages of each language's mean over its items;
- the paired difference to the task-only run of the same seed is taken item by item;
- its interval comes from `midalign.stats.crossed_bootstrap` (seeds and items resampled independently in each draw,
  items within their language, 10,000 draws) and, treating the items as fixed, from the Student t interval over the
  per-seed differences; a difference is marked ≠0 when both 95 % intervals exclude 0.
Only seeds where both runs of a pair are finished count, so a partly finished study summarises what is done.
Writes per_seed.csv, results.csv, merge_weights.csv and summary.md under --root, transfer_effects.png under
--figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from midalign.stats import crossed_bootstrap, distinguishable, seed_t_interval
from midalign.viz.plots import save_figure

logger = logging.getLogger("transfer_summary")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CONDITIONS = {
    "task": "task-only",
    "align": "+ align (default loss)",
    "raw": "+ align (paper's raw loss)",
    "control": "+ shuffled pairs (exposure control)",
    "merged": "task ⊕ align (merged)",
}
TESTS = {"translation": "gettext test split (in domain)", "udhr": "UDHR paragraphs (legal text)", "cldr": "CLDR dates"}
PRIMARY = {"translation": "x2en_chrf", "udhr": "x2en_chrf", "cldr": "exact_match"}
GROUPS = ["supervised", "alignment", "unseen", "transfer", "all"]  # transfer = alignment + unseen
RULE = (
    "Cells: mean paired difference to task-only [crossed bootstrap over seeds and test items, 95 %]; **≠0** when "
    "that interval and the Student t interval over seeds (`t_low`, `t_high` in results.csv) both exclude 0."
)


def load_items(root: Path) -> pd.DataFrame:
    """Every finished evaluation's item scores: test, condition, seed (-1: the base model), id, language, group,
    metric, value."""
    frames = []
    for path in sorted(root.glob("eval/*/*/item_scores.csv")):
        if not (path.parent / "groups.csv").is_file():  # written last: an evaluation still running (or stopped)
            continue
        match = re.fullmatch(r"(?P<condition>[a-z]+)-s(?P<seed>\d+)", path.parent.name)
        if path.parent.name == "base":
            condition, seed = "base", -1
        elif match and match["condition"] in CONDITIONS:
            condition, seed = match["condition"], int(match["seed"])
        else:
            continue
        frame = pd.read_csv(path, keep_default_na=False, dtype={"id": str})
        frames.append(frame.assign(test=path.parent.parent.name, condition=condition, seed=seed))
    if not frames:
        raise SystemExit(f"no finished evaluations under {root / 'eval'}: run studies/transfer/run_all.sh first")
    return pd.concat(frames, ignore_index=True).astype({"value": float})


def in_group(items: pd.DataFrame, group: str) -> pd.DataFrame:
    if group == "all":
        return items
    if group == "transfer":
        return items[items.group != "supervised"]
    return items[items.group == group]


def paired(items: pd.DataFrame, n_draws: int = 10_000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per seed: each condition's group value and its difference to task-only; per test, metric, group and
    condition: the task-only mean and seed range, the mean difference with both intervals and the ≠0 mark)."""
    per_seed, rows = [], []
    for (test, metric), part in items[items.condition.isin(CONDITIONS)].groupby(["test", "metric"], sort=True):
        wide = part.pivot_table(index=["condition", "seed"], columns=["language", "id"], values="value")
        for group in GROUPS:
            languages = set(in_group(part, group).language)
            if not languages:
                continue
            cells = wide.loc[:, wide.columns.get_level_values("language").isin(languages)]
            base = cells.loc["task"] if "task" in cells.index.get_level_values("condition") else None
            if base is None:
                continue
            strata = list(cells.columns.get_level_values("language"))
            for condition in CONDITIONS:
                if condition not in cells.index.get_level_values("condition"):
                    continue
                runs = cells.loc[condition]
                seeds = sorted(set(runs.index) & set(base.index))
                if not seeds:
                    continue
                differences = runs.loc[seeds].to_numpy() - base.loc[seeds].to_numpy()  # [seeds, items]
                values = runs.loc[seeds].T.groupby(level="language").mean().T.mean(axis=1)  # group value per seed
                reference = base.loc[seeds].T.groupby(level="language").mean().T.mean(axis=1)
                for seed in seeds:
                    per_seed.append({"test": test, "metric": metric, "group": group, "condition": condition,
                                     "seed": seed, "value": values[seed], "task_only": reference[seed],
                                     "difference": values[seed] - reference[seed]})  # fmt: skip
                row = {"test": test, "metric": metric, "group": group, "condition": condition, "n_seeds": len(seeds),
                       "n_languages": len(languages), "n_items": differences.shape[1], "mean": values.mean(),
                       "seed_min": values.min(), "seed_max": values.max()}  # fmt: skip
                if condition != "task":
                    boot = crossed_bootstrap(differences, strata, n_draws=n_draws)
                    seed_differences = (values - reference).to_numpy()
                    t = seed_t_interval(seed_differences) if len(seeds) > 1 else None
                    row.update(difference=boot.estimate, ci_low=boot.low, ci_high=boot.high,
                               t_low=t.low if t else np.nan, t_high=t.high if t else np.nan,
                               distinguishable=bool(t) and distinguishable(boot, t),
                               seeds_better=int((seed_differences > 0).sum()),
                               seeds_worse=int((seed_differences < 0).sum()))  # fmt: skip
                rows.append(row)
    return pd.DataFrame(per_seed), pd.DataFrame(rows)


def merge_weights(root: Path) -> pd.DataFrame:
    """The w_align each merge chose on dev."""
    rows = []
    for path in sorted(root.glob("runs/*/merged-s*/config.json")):
        resolved = json.loads(path.read_text()).get("resolved", {})
        rows.append({"task": path.parent.parent.name, "seed": int(path.parent.name.split("-s")[1]),
                     "w_task": resolved.get("w_task"), "w_align": resolved.get("w_align")})  # fmt: skip
    return pd.DataFrame(rows, columns=["task", "seed", "w_task", "w_align"])


def _cell(item: pd.Series) -> str:
    mark = " **≠0**" if item.distinguishable else ""
    return f"{item.difference:+.3f} [{item.ci_low:+.3f}, {item.ci_high:+.3f}]{mark}"


def markdown(results: pd.DataFrame, weights: pd.DataFrame) -> str:
    lines = ["# Transfer study: each condition against task-only (paired by seed and test item)", "", RULE, ""]
    for test, metric in results[["test", "metric"]].drop_duplicates().itertuples(index=False):
        part = results[(results.test == test) & (results.metric == metric)]
        seeds = int(part[part.condition == "task"].n_seeds.max())
        lines += [f"## {test}: {metric} ({TESTS.get(test, test)}; {seeds} seeds)", ""]
        header = ["group (items)", "task-only mean (seed min–max)", *[CONDITIONS[c] for c in CONDITIONS if c != "task"]]
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        for group in GROUPS:
            rows = part[part.group == group].set_index("condition")
            if "task" not in rows.index:
                continue
            base = rows.loc["task"]
            cells = [f"{base['mean']:.3f} ({base.seed_min:.3f}–{base.seed_max:.3f})"]
            cells += [_cell(rows.loc[c]) if c in rows.index else "–" for c in CONDITIONS if c != "task"]
            lines.append(f"| {group} ({int(base.n_items)}) | " + " | ".join(cells) + " |")
        lines.append("")
    if not weights.empty:
        lines += ["## w_align chosen on dev by the merge", ""]
        for task, part in weights.groupby("task"):
            lines.append(f"- {task}: " + ", ".join(f"s{row.seed}: {row.w_align:g}" for row in part.itertuples()))
    return "\n".join(lines) + "\n"


def effects_figure(results: pd.DataFrame, per_seed: pd.DataFrame, out: Path) -> None:
    """Per test set (primary metric) and group: every condition's mean difference to task-only with its bootstrap
    interval, and the per-seed differences."""
    tests = [t for t in TESTS if t in set(results.test)]
    groups = ["supervised", "alignment", "unseen"]
    conditions = [c for c in CONDITIONS if c != "task"]
    fig = Figure(figsize=(4.2 * len(groups), 3.2 * len(tests)), layout="constrained")
    axes = fig.subplots(len(tests), len(groups), squeeze=False)
    for row, test in enumerate(tests):
        metric = PRIMARY[test]
        for col, group in enumerate(groups):
            ax = axes[row][col]
            for x, condition in enumerate(conditions):
                keys = (results.test == test) & (results.metric == metric) & (results.group == group)
                found = results[keys & (results.condition == condition)]
                if found.empty:
                    continue
                item = found.iloc[0]
                error = [[item.difference - item.ci_low], [item.ci_high - item.difference]]
                ax.errorbar(x, item.difference, yerr=error, fmt="o", color="black", capsize=3)
                seeds = per_seed[(per_seed.test == test) & (per_seed.metric == metric) & (per_seed.group == group)
                                 & (per_seed.condition == condition)]  # fmt: skip
                jitter = np.linspace(-0.15, 0.15, len(seeds)) if len(seeds) > 1 else np.zeros(len(seeds))
                ax.scatter(x + jitter, seeds.difference, s=12, alpha=0.6, color="tab:blue")
            ax.axhline(0, color="grey", lw=0.8, ls="--")
            ax.set_xticks(range(len(conditions)), [CONDITIONS[c].replace(" (", "\n(") for c in conditions], fontsize=7)
            ax.set_title(f"{test}: {group}", fontsize=9)
            if col == 0:
                ax.set_ylabel(f"Δ {metric} vs task-only")
    fig.suptitle("gemma-3-270m: difference to task-only per seed (dots), mean and crossed bootstrap 95 % interval")
    save_figure(fig, out / "transfer_effects.png")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=HERE, help="The study folder (eval/, runs/); tables go here.")
    parser.add_argument("--figures", type=Path, default=ROOT / "figures", help="Folder for the figure.")
    parser.add_argument("--draws", type=int, default=10_000, help="Bootstrap draws.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    items = load_items(args.root)
    per_seed, results = paired(items, args.draws)
    weights = merge_weights(args.root)
    per_seed.to_csv(args.root / "per_seed.csv", index=False, float_format="%.6g")
    results.to_csv(args.root / "results.csv", index=False, float_format="%.6g")
    weights.to_csv(args.root / "merge_weights.csv", index=False)
    (args.root / "summary.md").write_text(markdown(results, weights), encoding="utf-8")
    effects_figure(results, per_seed, args.figures)
    logger.info("%s", (args.root / "summary.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
