"""Summarize the transfer_cldr evaluations: group and per-language means over seeds, baseline vs mid-align (and vs
task + merged alignment adapter, from analysis/merge_cldr, where it has run).

Run from the repository root after `run.sh` (any number of seeds): `python analysis/transfer_cldr/summarize.py`.
Writes analysis/transfer_cldr/results_groups.csv, results_languages.csv and prints the markdown tables used in
README.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
EVALS = (HERE / "eval", HERE.parent / "merge_cldr" / "eval")
VARIANTS = ("baseline", "midalign", "merged_matched")
GROUP_ORDER = {"supervised": 0, "alignment": 1, "unseen": 2, "all": 3}


def load(kind: str) -> pd.DataFrame:
    """Every run's scores.csv or groups.csv with `variant` (base/baseline/midalign) and `seed` columns."""
    frames = []
    for folder in sorted(folder for evals in EVALS if evals.is_dir() for folder in evals.iterdir()):
        match = re.fullmatch(r"(base|baseline|midalign|merged_matched)(?:-s(\d+))?", folder.name)
        if match and (folder / kind).is_file():
            frame = pd.read_csv(folder / kind, keep_default_na=False)
            frames.append(frame.assign(variant=match[1], seed=match[2] or "-"))
    return pd.concat(frames, ignore_index=True)


def table(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One column per (variant, seed), the mean over seeds per variant, and mid-align - baseline."""
    frame = frame.assign(run=frame.variant + "-s" + frame.seed.astype(str)).replace({"run": {"base-s-": "base"}})
    wide = frame.pivot_table(index=keys, columns="run", values="value", sort=False)
    order = {variant: rank for rank, variant in enumerate(("base", *VARIANTS))}
    wide = wide[sorted(wide.columns, key=lambda run: (order[run.rsplit("-s", 1)[0]], run))]
    for variant in VARIANTS:
        runs = frame[frame.variant == variant]
        if len(runs):
            wide[f"{variant} mean"] = runs.pivot_table(index=keys, values="value", sort=False)
    for variant in VARIANTS[1:]:
        if f"{variant} mean" in wide:
            wide[f"{variant} - baseline"] = wide[f"{variant} mean"] - wide["baseline mean"]
    wide = wide.reset_index()
    wide.columns.name = None
    return wide


def markdown(frame: pd.DataFrame) -> str:
    """A markdown table (floats with 3 decimals)."""
    rows = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in frame.itertuples(index=False)]
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + " --- |" * len(frame.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main() -> None:
    groups = table(load("groups.csv"), ["group", "metric"])
    groups = groups.sort_values(["metric", "group"], key=lambda s: s.map(GROUP_ORDER) if s.name == "group" else s)
    scores = load("scores.csv")
    languages = table(scores[scores.metric != "n_examples"], ["group", "language", "metric"])
    groups.to_csv(HERE / "results_groups.csv", index=False, float_format="%.4f")
    languages.to_csv(HERE / "results_languages.csv", index=False, float_format="%.4f")
    for metric in ("exact_match", "chrf"):
        print(f"\n### {metric}: group means\n")
        print(markdown(groups[groups.metric == metric].drop(columns="metric")))
        print(f"\n### {metric}: per language\n")
        print(markdown(languages[languages.metric == metric].drop(columns="metric")))


if __name__ == "__main__":
    main()
