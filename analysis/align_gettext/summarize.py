"""Summarise the alignment-only runs of this study: retrieval before -> after on UDHR per alignment layer k.

Reads every `runs/k<K>-s<SEED>/` (config.json, eval_hits.parquet, dev.csv) and writes, next to this script:
- `per_run.csv`: every run's group means at its own layer k, at the analysis-picked layer, and at the peak (the
  best layer before vs the best layer after training), with the run's own 95 % bootstrap interval over sentences;
- `layers.csv`: per k and group, the mean over seeds with a 95 % interval that resamples sentences (the same draw
  for every seed, language and direction, so the difference is paired) and, separately, the seed spread;
- `per_language.csv`: per language, mean over seeds, for every k at its own layer;
- `curves.csv`: group means at every layer before and after training (mean over seeds), for the figures;
- `summary.md`: the tables the README quotes; and figures under figures/ (repo root).

    python analysis/align_gettext/summarize.py [--figures figures]
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
N_BOOTSTRAP = 2000
GROUPS = ("aligned", "unseen")
logger = logging.getLogger("summarize")


def load_runs(root: Path) -> list[dict]:
    """Every finished run: its k, seed, picked layer, groups and per-sentence hits (mean of both directions)."""
    runs = []
    for folder in sorted(root.glob("k*-s*")):
        if not (folder / "eval_hits.parquet").exists() or not (folder / "config.json").exists():
            continue
        config = json.loads((folder / "config.json").read_text())
        resolved = config["resolved"]
        if "steps_done" not in resolved:
            continue  # still running
        hits = pd.read_parquet(folder / "eval_hits.parquet")
        if set(hits.stage) != {"before", "after"}:
            continue
        both = hits.groupby(["stage", "layer", "lang", "sentence"], sort=False)["hit"].mean()
        runs.append(
            {
                "name": folder.name,
                "k_label": folder.name.split("-")[0][1:],
                "k": resolved["layer"],
                "seed": config["seed"],
                "groups": resolved["eval_groups"],
                "hits": both,  # Series indexed by stage, layer, lang, sentence
                "best_step": resolved.get("best_step"),
                "steps_done": resolved.get("steps_done"),
                "total_steps": resolved.get("total_steps"),
                "wall_seconds": resolved.get("wall_seconds"),
                "dev_start": resolved.get("dev_retrieval_start"),
                "dev_best": resolved.get("dev_retrieval_best"),
            }
        )
    return runs


def group_vectors(run: dict, layer: int, group: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-sentence group means (before [N], after [N]) at one layer."""
    langs = [lang for lang, g in run["groups"].items() if g == group]
    vectors = []
    for stage in ("before", "after"):
        table = run["hits"].loc[stage].loc[layer].unstack("sentence")  # [langs, N]
        vectors.append(table.loc[langs].to_numpy().mean(axis=0))
    return vectors[0], vectors[1]


def interval(values: np.ndarray, draws: np.ndarray) -> tuple[float, float, float]:
    """Mean and 2.5/97.5 % percentiles of the mean over bootstrap draws [B, N] of indices into values [..., N]."""
    means = values[..., draws].mean(axis=-1)  # [B] (or [seeds, B] averaged below)
    if means.ndim > 1:
        means = means.mean(axis=0)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def peak_layers(run: dict, group: str) -> tuple[int, int]:
    """The layers where the group's mean retrieval is highest before and after training."""
    n_layers = run["hits"].index.get_level_values("layer").max() + 1
    means = np.array([[v.mean() for v in group_vectors(run, layer, group)] for layer in range(n_layers)])  # [L+1, 2]
    return int(np.argmax(means[:, 0])), int(np.argmax(means[:, 1]))


def vectors_at(run: dict, where: str, layer: int, group: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-sentence (before, after) group means at `layer`, or at each stage's own peak layer for "peak"."""
    if where != "peak":
        return group_vectors(run, layer, group)
    before_peak, after_peak = peak_layers(run, group)
    return group_vectors(run, before_peak, group)[0], group_vectors(run, after_peak, group)[1]


def summarize(runs: list[dict], picked: int) -> dict[str, pd.DataFrame]:
    n_sentences = len(run_sentences(runs[0]))
    draws = np.random.default_rng(0).integers(0, n_sentences, size=(N_BOOTSTRAP, n_sentences))
    per_run, curves, per_language = [], [], []
    for run in runs:
        for group in GROUPS:
            places = {"own k": run["k"], f"layer {picked}": picked, "peak": peak_layers(run, group)[1]}
            if run["k"] == picked:
                del places[f"layer {picked}"]
            for where, layer in places.items():
                before, after = vectors_at(run, where, layer, group)
                per_run.append((run["k_label"], run["k"], run["seed"], group, where, layer,
                                *interval(before, draws)[:1], *interval(after, draws)[:1],
                                *interval(after - before, draws), run["best_step"], run["steps_done"],
                                run["total_steps"], run["wall_seconds"]))  # fmt: skip
            n_layers = run["hits"].index.get_level_values("layer").max() + 1
            for layer in range(n_layers):
                before, after = group_vectors(run, layer, group)
                curves += [(run["k_label"], run["seed"], group, layer, "before", before.mean()),
                           (run["k_label"], run["seed"], group, layer, "after", after.mean())]  # fmt: skip
        own = run["hits"].xs(run["k"], level="layer").groupby(["stage", "lang"]).mean().unstack("stage")
        for lang, row in own.iterrows():
            per_language.append((run["k_label"], run["seed"], lang, run["groups"][lang], row["before"], row["after"]))
    per_run = pd.DataFrame(per_run, columns=[
        "k_label", "k", "seed", "group", "measured_at", "layer", "before", "after", "delta", "delta_low",
        "delta_high", "best_step", "steps_done", "total_steps", "wall_seconds"])  # fmt: skip
    layers = []
    for (k_label, group, where), rows in per_run.groupby(["k_label", "group", "measured_at"], sort=False):
        matching = [run for run in runs if run["k_label"] == k_label]
        pairs = [vectors_at(run, where, layer, group) for run, layer in zip(matching, rows.layer, strict=True)]
        befores, afters = np.stack([b for b, _ in pairs]), np.stack([a for _, a in pairs])  # [seeds, N]
        mean, low, high = interval(afters - befores, draws)
        layers.append((k_label, int(rows.k.iloc[0]), group, where, len(rows), float(befores.mean()),
                       float(afters.mean()), mean, low, high, float(rows.delta.min()), float(rows.delta.max()),
                       low > 0 or high < 0))  # fmt: skip
    layers = pd.DataFrame(layers, columns=[
        "k_label", "k", "group", "measured_at", "seeds", "before", "after", "delta", "delta_low", "delta_high",
        "seed_min", "seed_max", "distinguishable_from_zero"])  # fmt: skip
    curves = pd.DataFrame(curves, columns=["k_label", "seed", "group", "layer", "stage", "value"])
    curves = curves.groupby(["k_label", "group", "layer", "stage"], as_index=False).value.mean()
    per_language = pd.DataFrame(per_language, columns=["k_label", "seed", "lang", "group", "before", "after"])
    per_language = per_language.groupby(["k_label", "lang", "group"], as_index=False)[["before", "after"]].mean()
    per_language["delta"] = per_language.after - per_language.before
    return {"per_run": per_run, "layers": layers, "curves": curves, "per_language": per_language}


def run_sentences(run: dict) -> list[str]:
    return list(run["hits"].index.get_level_values("sentence").unique())


def markdown(layers: pd.DataFrame, per_language: pd.DataFrame, picked_label: str) -> str:
    lines = ["| aligned at k | measured at | group | seeds | before | after | Δ (95 % CI) | seed range | ≠ 0 |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in layers.itertuples():
        lines.append(
            f"| {row.k_label} ({row.k}) | {row.measured_at} | {row.group} | {row.seeds} | {row.before:.3f} | "
            f"{row.after:.3f} | {row.delta:+.3f} [{row.delta_low:+.3f}, {row.delta_high:+.3f}] | "
            f"{row.seed_min:+.3f} … {row.seed_max:+.3f} | {'yes' if row.distinguishable_from_zero else 'no'} |"
        )
    lines += ["", f"Per language, k = {picked_label}, mean over seeds:", "",
              "| lang | group | before | after | Δ |", "|---|---|---|---|---|"]  # fmt: skip
    chosen = per_language[per_language.k_label == picked_label].sort_values(["group", "delta"])
    for row in chosen.itertuples():
        lines.append(f"| {row.lang} | {row.group} | {row.before:.3f} | {row.after:.3f} | {row.delta:+.3f} |")
    return "\n".join(lines) + "\n"


def figures(tables: dict[str, pd.DataFrame], picked_label: str, out: Path, model: str) -> None:
    curves = tables["curves"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for axis, group in zip(axes, GROUPS, strict=True):
        chosen = curves[(curves.k_label == picked_label) & (curves.group == group)]
        for stage, style in (("before", "--"), ("after", "-")):
            rows = chosen[chosen.stage == stage]
            axis.plot(rows.layer, rows.value, style, marker="o", markersize=3, label=stage)
        k = int(tables["per_run"].query("k_label == @picked_label").k.iloc[0])
        axis.axvline(k, color="grey", linewidth=0.8)
        axis.set_xticks(range(0, int(chosen.layer.max()) + 1, 2))
        axis.set(title=f"{group} languages (aligned at k = {k})", xlabel="layer")
        axis.legend()
    axes[0].set_ylabel("UDHR X↔English retrieval (top-1)")
    fig.suptitle(f"{model}: alignment on the gettext corpus, retrieval on UDHR before and after (mean of seeds)")
    fig.tight_layout()
    fig.savefig(out / "align_gettext_curves.png", dpi=130)
    plt.close(fig)

    layers = tables["layers"]
    per_run = tables["per_run"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for axis, where_label in zip(axes, ("own k", "peak"), strict=True):
        for offset, group in zip((-0.15, 0.15), GROUPS, strict=True):
            rows = layers[(layers.measured_at == where_label) & (layers.group == group)].sort_values("k")
            axis.errorbar(rows.k + offset, rows.delta, yerr=[rows.delta - rows.delta_low, rows.delta_high - rows.delta],
                          fmt="o", capsize=3, label=group)  # fmt: skip
            seeds = per_run[(per_run.measured_at == where_label) & (per_run.group == group)]
            axis.scatter(seeds.k + offset, seeds.delta, s=8, color="black", alpha=0.5, zorder=3)
        axis.axhline(0, color="grey", linewidth=0.8)
        title = "Δ retrieval at the aligned layer k" if where_label == "own k" else "Δ peak retrieval (best layer)"
        axis.set(title=title, xlabel="alignment layer k")
        axis.legend()
    axes[0].set_ylabel("Δ retrieval (after − before), 95 % CI; dots: seeds")
    fig.suptitle(f"{model}: where to align")
    fig.tight_layout()
    fig.savefig(out / "align_gettext_layers.png", dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=HERE / "runs")
    parser.add_argument("--figures", type=Path, default=HERE.parent.parent / "figures")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the tables and summary.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = load_runs(args.runs)
    if not runs:
        raise SystemExit(f"no finished runs under {args.runs}")
    picked = json.loads((HERE.parent / "gemma-3-270m_udhr" / "selection.json").read_text())["layer"]
    tables = summarize(runs, picked)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, table in tables.items():
        table.to_csv(args.out / f"{name}.csv", index=False, float_format="%.4f")
    (args.out / "summary.md").write_text(markdown(tables["layers"], tables["per_language"], "auto"))
    figures(tables, "auto", args.figures, "gemma-3-270m")
    logger.info("%d runs summarised into %s", len(runs), args.out)


if __name__ == "__main__":
    main()
