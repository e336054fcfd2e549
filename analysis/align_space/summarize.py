"""Summarise the alignment-space study: dev curves of every run, its best point, stability, loss, and UDHR gains.

Reads every finished or running `runs/<space>-t<T>-lr<LR>-s<SEED>/` (config.json, dev.csv, steps.csv, and once the
run is finished eval_hits.parquet / eval_hits_centered.parquet) and writes, next to this script:
- `curves.csv`: dev retrieval (raw and centred) at every scored step of every run, with the mean training loss of
  the 20 steps before it;
- `runs.csv`: per run, dev retrieval at step 0, its best and best step, its lowest value over the last 100 steps
  and the drop from the best to it ("collapse"), the training loss near the best step against ln B, and, once
  evaluated, UDHR retrieval at the aligned layer (raw and centred) per group with a 95 % bootstrap interval;
- `settings.csv`: per setting (space, temperature, lr), the mean over seeds of the UDHR gain at the aligned layer
  with a 95 % interval from a paired bootstrap over sentences of the seed-mean, the t interval over seeds when there
  are several, the seed range, and the worst mean change at any other layer;
- `summary.md`, the tables the README quotes, and figures/align_space_dev_curves.png.

    python analysis/align_space/summarize.py [--runs DIR] [--out DIR] [--figures DIR]

Only runs that finished (evaluated on UDHR) enter the tables; a run still going is left out, so the committed tables
are exactly what the committed runs give.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

HERE = Path(__file__).resolve().parent
FIGURES = HERE.parents[1] / "figures"
N_BOOTSTRAP = 2000
GROUPS = ("aligned", "unseen")
NAME = re.compile(r"(?P<space>.+)-t(?P<temperature>[0-9.e-]+)-lr(?P<lr>[0-9.e-]+)-s(?P<seed>\d+)$")
SIGNED = {"delta", "low", "high", "t_low", "t_high", "seed_min", "seed_max", "worst_other_delta"}
logger = logging.getLogger("summarize")


def read_run(folder: Path) -> dict | None:
    """One run's settings, dev curve, loss and (when evaluated) per-sentence UDHR hits; None before its first score."""
    match = NAME.match(folder.name)
    if not match or not (folder / "dev.csv").exists() or not (folder / "config.json").exists():
        return None
    config = json.loads((folder / "config.json").read_text())
    resolved = config.get("resolved", {})
    dev = pd.read_csv(folder / "dev.csv")
    dev = dev[dev.lang == "mean"].set_index("step")
    loss = (
        pd.read_csv(folder / "steps.csv").set_index("step")["align_loss"] if (folder / "steps.csv").exists() else None
    )
    hits = {}
    finished = resolved.get("wall_seconds") is not None  # written last, after the evaluation
    if finished:
        for space, file in (("raw", "eval_hits.parquet"), ("centered", "eval_hits_centered.parquet")):
            if (folder / file).exists():
                table = pd.read_parquet(folder / file)
                hits[space] = table.groupby(["stage", "layer", "lang", "sentence"], sort=False)["hit"].mean()
    return {
        "run": folder.name,
        "space": match["space"],
        "temperature": float(match["temperature"]),
        "lr": float(match["lr"]),
        "seed": int(match["seed"]),
        "layer": resolved.get("layer"),
        "batch": config.get("align_batch_size") or config.get("task_batch_size"),
        "total_steps": resolved.get("total_steps"),
        "digest": resolved.get("align_data_digest"),
        "groups": resolved.get("eval_groups", {}),
        "dev": dev,
        "loss": loss,
        "hits": hits,
        "finished": finished,
    }


def curves(runs: list[dict]) -> pd.DataFrame:
    rows = []
    for run in runs:
        for step, row in run["dev"].iterrows():
            window = run["loss"].loc[max(1, step - 19) : step] if run["loss"] is not None and step > 0 else None
            rows.append({
                "run": run["run"], "space": run["space"], "temperature": run["temperature"], "lr": run["lr"],
                "seed": run["seed"], "step": step, "retrieval_acc": row.retrieval_acc,
                "centered_retrieval_acc": row.get("centered_retrieval_acc", np.nan),
                "align_loss": float(window.mean()) if window is not None and len(window) else np.nan,
            })  # fmt: skip
    return pd.DataFrame(rows)


def group_vectors(hits: pd.Series, groups: dict, layer: int, group: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-sentence group means (before [N], after [N]) at one layer."""
    langs = [lang for lang, g in groups.items() if g == group]
    return tuple(hits.loc[stage].loc[layer].unstack("sentence").loc[langs].to_numpy().mean(axis=0)
                 for stage in ("before", "after"))  # fmt: skip


def bootstrap(values: np.ndarray, draws: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95 % percentile interval of the mean of per-sentence values [N] over draws [B, N]."""
    means = values[draws].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def run_table(runs: list[dict], draws: np.ndarray) -> pd.DataFrame:
    rows = []
    for run in runs:
        dev, total = run["dev"].retrieval_acc, run["total_steps"] or 0
        best_step = int(dev.idxmax())
        last = dev[dev.index > total - 100] if total else dev.iloc[0:0]
        loss = run["loss"]
        near_best = loss.loc[max(1, best_step - 19) : best_step].mean() if loss is not None and best_step else np.nan
        ln_b = math.log(run["batch"] or 16)
        row = {
            "run": run["run"], "space": run["space"], "temperature": run["temperature"], "lr": run["lr"],
            "seed": run["seed"], "steps_scored": int(dev.index.max()), "dev_start": dev.iloc[0],
            "dev_best": dev.max(), "best_step": best_step,
            "dev_last100_min": last.min() if len(last) and dev.index.max() >= total else np.nan,
            "centered_dev_best": run["dev"].get("centered_retrieval_acc", pd.Series(np.nan)).max(),
            "loss_near_best": near_best, "loss_over_ln_b": near_best / ln_b,
        }  # fmt: skip
        row["collapse"] = row["dev_best"] - row["dev_last100_min"]
        for space, hits in run["hits"].items():
            for group in GROUPS:
                before, after = group_vectors(hits, run["groups"], run["layer"], group)
                delta = bootstrap(after - before, draws[:, : len(before)])
                prefix = f"udhr_{space}_{group}"
                row.update({f"{prefix}_before": before.mean(), f"{prefix}_after": after.mean()})
                row.update({f"{prefix}_delta": delta[0], f"{prefix}_low": delta[1], f"{prefix}_high": delta[2]})
        row["digest"] = run["digest"]
        rows.append(row)
    return pd.DataFrame(rows)


def setting_table(runs: list[dict], draws: np.ndarray) -> pd.DataFrame:
    """Mean over seeds per setting, evaluated runs only: paired bootstrap over sentences of the seed-mean gain, the t
    interval over seeds, the seed range, and the worst other-layer change of the seed mean."""
    evaluated = [run for run in runs if run["hits"]]
    rows = []
    keys = sorted({(r["space"], r["temperature"], r["lr"]) for r in evaluated})
    for space, temperature, lr in keys:
        setting = [r for r in evaluated if (r["space"], r["temperature"], r["lr"]) == (space, temperature, lr)]
        layer = setting[0]["layer"]
        for measure in ("raw", "centered"):
            # Runs made before the centred evaluation existed have raw hits only: the centred row counts the others.
            members = [r for r in setting if measure in r["hits"]]
            if not members:
                continue
            for group in GROUPS:
                deltas = []
                for r in members:
                    before, after = group_vectors(r["hits"][measure], r["groups"], layer, group)
                    deltas.append(after - before)
                per_seed = np.array([d.mean() for d in deltas])
                mean, low, high = bootstrap(np.mean(deltas, axis=0), draws[:, : len(deltas[0])])
                t_low = t_high = np.nan
                if len(per_seed) > 1:
                    half = stats.t.ppf(0.975, len(per_seed) - 1) * per_seed.std(ddof=1) / math.sqrt(len(per_seed))
                    t_low, t_high = per_seed.mean() - half, per_seed.mean() + half
                layers = sorted(members[0]["hits"][measure].loc["before"].index.get_level_values("layer").unique())
                others = []
                for other in layers:
                    if other == layer:
                        continue
                    changes = [np.subtract(*group_vectors(r["hits"][measure], r["groups"], other, group)[::-1]).mean()
                               for r in members]  # fmt: skip
                    others.append((float(np.mean(changes)), int(other)))
                worst = min(others) if others else (np.nan, -1)
                rows.append({
                    "space": space, "temperature": temperature, "lr": lr, "measure": measure, "group": group,
                    "layer": layer, "seeds": len(members), "delta": mean, "low": low, "high": high,
                    "nonzero": bool(low > 0 or high < 0), "t_low": t_low, "t_high": t_high,
                    "seed_min": per_seed.min(), "seed_max": per_seed.max(), "worst_other_layer": worst[1],
                    "worst_other_delta": worst[0],
                })  # fmt: skip
    return pd.DataFrame(rows)


def plot_curves(curve: pd.DataFrame, path: Path) -> None:
    if curve.empty:
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), layout="constrained")
    for index, (run, rows) in enumerate(curve.groupby("run", sort=True)):
        color, style = f"C{index % 10}", "-" if rows.seed.iloc[0] == 0 else "--"
        axes[0].plot(rows.step, rows.retrieval_acc, style, color=color, marker="o", ms=2.5, label=run)
        axes[1].plot(rows.step, rows.centered_retrieval_acc, style, color=color, marker="o", ms=2.5)
        axes[2].plot(rows.step, rows.align_loss, style, color=color, marker="o", ms=2.5)
    axes[2].axhline(math.log(16), color="0.4", ls=":", lw=1, label="ln 16 (chance)")
    axes[2].axhline(math.log(16) / 2, color="0.6", ls="--", lw=1, label="ln 16 / 2")
    titles = ("dev retrieval, raw cosine (selection)", "dev retrieval, each language centred", "alignment loss")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6, loc="best")
    axes[2].legend(fontsize=7, loc="best")
    fig.suptitle("alignment-only LoRA at block 11, gettext pairs, 8 languages: where the loss takes its cosine")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _cell(value: object, column: str) -> str:
    if column == "lr":
        return f"{value:g}"
    if isinstance(value, float) and math.isfinite(value) and (column in SIGNED or not value.is_integer()):
        return f"{value:+.3f}" if column in SIGNED else f"{value:.3f}"  # a signed 0 prints as +0.000, not 0.0
    return str(value)


def markdown(table: pd.DataFrame, columns: list[str]) -> str:
    shown = table[columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in shown.itertuples(index=False):
        cells = [_cell(v, column) for v, column in zip(row, columns, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=HERE / "runs")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the tables and summary.md")
    parser.add_argument("--figures", type=Path, default=FIGURES)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    runs = [run for folder in sorted(args.runs.glob("*")) if (run := read_run(folder)) and run["finished"]]
    if not runs:
        raise SystemExit(f"no finished runs under {args.runs}")
    draws = np.random.default_rng(0).integers(0, 50, size=(N_BOOTSTRAP, 50))  # UDHR: 50 paragraphs
    args.out.mkdir(parents=True, exist_ok=True)
    curve = curves(runs)
    curve.to_csv(args.out / "curves.csv", index=False, float_format="%.6g")
    per_run = run_table(runs, draws)
    per_run.to_csv(args.out / "runs.csv", index=False, float_format="%.6g")
    settings = setting_table(runs, draws)
    settings.to_csv(args.out / "settings.csv", index=False, float_format="%.6g")
    plot_curves(curve, args.figures / "align_space_dev_curves.png")
    (args.out / "summary.md").write_text(summary_markdown(curve, per_run, settings))
    logger.info("%d finished runs summarised (%d evaluated)", len(runs), sum(bool(r["hits"]) for r in runs))


def summary_markdown(curve: pd.DataFrame, per_run: pd.DataFrame, settings: pd.DataFrame) -> str:
    parts = ["# Alignment-space study: tables (regenerated by summarize.py)\n", "## Runs (dev: gettext dev pairs)\n"]
    parts.append(markdown(per_run, ["run", "steps_scored", "dev_start", "dev_best", "best_step", "dev_last100_min",
                                    "collapse", "centered_dev_best", "loss_near_best", "loss_over_ln_b"]))  # fmt: skip
    wide = {}
    for value in ("retrieval_acc", "centered_retrieval_acc", "align_loss"):
        table = curve.pivot_table(index="run", columns="step", values=value).reset_index()
        table.columns = [str(c) for c in table.columns]
        wide[value] = table
    shown = ["run", *[c for c in wide["retrieval_acc"].columns[1:] if int(c) % 40 == 0 or int(c) == 300]]
    parts += ["\n\n## Dev retrieval (raw cosine) along training\n", markdown(wide["retrieval_acc"], shown)]
    parts += ["\n\n## Dev retrieval, each language centred\n", markdown(wide["centered_retrieval_acc"], shown)]
    parts += ["\n\n## Alignment loss (mean of the 20 steps up to each step; ln 16 = 2.773)\n",
              markdown(wide["align_loss"], [c for c in shown if c != "0"])]  # fmt: skip
    if not settings.empty:
        parts += ["\n\n## UDHR at the aligned layer (mean over seeds, 95 % intervals)\n",
                  markdown(settings, ["space", "temperature", "lr", "measure", "group", "seeds", "delta", "low", "high",
                                      "nonzero", "t_low", "t_high", "seed_min", "seed_max", "worst_other_layer",
                                      "worst_other_delta"])]  # fmt: skip
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    main()
