"""Figures of analysis runs: layer curves, layer x language and language x language heatmaps, comparisons.

Every function returns a `matplotlib.figure.Figure` built without pyplot, so nothing depends on a GUI
backend, nothing is shown, and figures are freed with their last reference (no `plt.close` needed). In a
notebook a returned Figure displays itself. Layer 0 = the embeddings, layer i = after decoder block i.
Above `AGGREGATE_ABOVE` languages, heatmaps collapse languages into group means (script by default), since
a 442 x 442 matrix cannot carry labels; pass `aggregate=False` to draw every language with group bands.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from midalign.analysis.runs import AnalysisRun, cluster_order, group_matrix, group_means, group_rank, order_languages
from midalign.errors import MidalignError
from midalign.options import PIVOT_METRICS

logger = logging.getLogger(__name__)

LAYER_LABEL = "layer (0 = embeddings)"
METRIC_LABELS = {
    "retrieval_acc": "retrieval accuracy",
    "margin_retrieval_acc": "margin retrieval accuracy",
    "cosine": "cosine similarity",
    "cosine_gap": "cosine gap (parallel − other)",
    "mexa": "MEXA alignment with the pivot",
    "cka": "linear CKA with the pivot",
}
AGGREGATE_ABOVE = 150
DIVERGING_CMAP = "RdBu"  # differences B − A: blue = B higher, red = B lower
ANNOTATE_UP_TO = 15  # annotate heatmap cells with their values when both sides have at most this many
Order = Literal["script", "family", "resource_level", "cluster"]


def _metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _font_size(n: int) -> float:
    """Tick-label size (pt) for n labels on one axis: shrinks with the count, never below 6 pt."""
    return float(np.clip(11 - n / 12, 6, 10))


def _cell_inches(n: int) -> float:
    """Side of one heatmap cell so that n tick labels at `_font_size(n)` never overlap."""
    return _font_size(n) * 1.45 / 72


def _runs_of(labels: Sequence[str]) -> list[tuple[str, int, int]]:
    """Consecutive runs of equal labels as (label, start, stop)."""
    runs: list[tuple[str, int, int]] = []
    for i, label in enumerate(labels):
        if runs and runs[-1][0] == label:
            runs[-1] = (label, runs[-1][1], i + 1)
        else:
            runs.append((label, i, i + 1))
    return runs


def _group_bands(ax: Axes, labels: Sequence[str], axis: Literal["x", "y"], color: str) -> None:
    """Separator lines between groups and group names on the far side (right / top) of a heatmap."""
    n = len(labels)
    if n > 60:  # many languages: lump groups too small to see into one band so separators stay readable
        sizes = pd.Series(labels).value_counts()
        labels = [label if sizes[label] >= n / 60 else "other" for label in labels]
    runs = _runs_of(labels)
    if len(runs) < 2:
        return
    for _, start, _ in runs[1:]:
        (ax.axhline if axis == "y" else ax.axvline)(start, color=color, lw=1.4 if n <= 60 else 1.0)
    # Up to 60 languages a cell is as tall as its tick label, so every group's name fits beside its first cell
    # (one-language groups included); above that, names that would collide with the previous one are skipped.
    gap, kept, last = (1.0 if n <= 60 else n / 45), [], -np.inf
    for label, start, stop in runs:
        mid = (start + stop) / 2
        if mid - last >= gap and (stop - start >= n / 120 or n <= 60):
            kept.append((mid, f"{label} ({stop - start})"))
            last = mid
    side = ax.secondary_yaxis("right") if axis == "y" else ax.secondary_xaxis("top")
    side.set_ticks([m for m, _ in kept], labels=[t for _, t in kept])
    side.tick_params(length=0, labelsize=_font_size(n) if n <= 60 else max(_font_size(len(kept)) - 1, 6), pad=2)
    for spine in side.spines.values():
        spine.set_visible(False)
    if axis == "x":
        for text in side.get_xticklabels():
            text.set(rotation=45, ha="left", va="bottom", rotation_mode="anchor")


def _heatmap(
    ax: Axes,
    data: pd.DataFrame,
    cbar_label: str,
    row_groups: Sequence[str] | None = None,
    col_groups: Sequence[str] | None = None,
    **kwargs,
) -> None:
    """Seaborn heatmap with tick labels sized to the count (hidden above AGGREGATE_ABOVE) and group bands."""
    n_rows, n_cols = data.shape
    annot = n_rows <= ANNOTATE_UP_TO and n_cols <= 20
    sns.heatmap(
        data,
        ax=ax,
        annot=annot,
        fmt=".2f",
        annot_kws={"size": 6.5},
        yticklabels=n_rows <= AGGREGATE_ABOVE,
        xticklabels=n_cols <= AGGREGATE_ABOVE,
        cbar_kws={"label": cbar_label, "shrink": 0.8, "pad": _colorbar_pad(ax, row_groups)},
        **kwargs,
    )
    ax.set_facecolor("0.88")  # NaN cells (a language with itself, missing pairs) show as light grey
    ax.tick_params(axis="y", labelsize=_font_size(n_rows), rotation=0)
    ax.tick_params(
        axis="x",
        labelsize=_font_size(n_cols),
        rotation=90 if n_cols > 20 or max((len(str(c)) for c in data.columns), default=0) > 3 else 0,
    )
    color = "0.2" if kwargs.get("cmap") == DIVERGING_CMAP else "white"  # white vanishes in a diverging map
    if row_groups is not None:
        _group_bands(ax, list(row_groups), "y", color)
    if col_groups is not None:
        _group_bands(ax, list(col_groups), "x", color)


def _colorbar_pad(ax: Axes, row_groups: Sequence[str] | None) -> float:
    """The gap between a heatmap and its colour bar, as a share of the axes' width: just enough for the group
    names drawn at the right (constrained layout does not reserve room for a secondary axis's labels)."""
    if row_groups is None:
        return 0.02
    n = len(row_groups)
    longest = max(len(f"{group} ({count})") for group, count in pd.Series(list(row_groups)).value_counts().items())
    label_inches = longest * 0.6 * _font_size(n) / 72 + 0.12
    axes_inches = ax.get_position().width * ax.figure.get_figwidth()
    # Constrained layout about doubles a colour bar's pad once the axes shrink to their final width (measured on
    # the 48-language figures), hence the half.
    return float(np.clip(0.5 * label_inches / max(axes_inches, 1e-3), 0.02, 0.3))


def _group_palette(groups: Sequence[str]) -> dict[str, tuple]:
    """One distinguishable colour per group (largest first): tab20 up to 20 groups, then husl."""
    ordered = list(pd.Series(list(groups)).value_counts().index)
    n = len(ordered)
    if n <= 20:  # tab20's strong colours first, then the light ones: the largest groups never share a hue
        tab20 = sns.color_palette("tab20", 20)
        colors = [*tab20[0::2], *tab20[1::2]][:n]
    else:
        colors = sns.color_palette("husl", n)
    return dict(zip(ordered, colors, strict=True))


def _symmetric_limits(data: pd.DataFrame) -> dict[str, float]:
    bound = float(np.nanmax(np.abs(data.to_numpy()))) if data.notna().any().any() else 1.0
    # Symmetric limits centre the diverging map on 0 (seaborn's `center=` would resample the colormap).
    return {"vmin": -bound or -1.0, "vmax": bound or 1.0, "cmap": DIVERGING_CMAP}


def plot_layer_curve(
    run: AnalysisRun,
    metrics: Sequence[str] = ("retrieval_acc",),
    group_by: str | None = None,
    spread: Literal["minmax", "std"] = "minmax",
    max_groups: int = 8,
) -> Figure:
    """Mean per layer across directed pairs, with IQR and min-max (or ±std) bands and the selected layer."""
    fig = Figure(figsize=(8.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    n_pairs = 0
    for i, metric in enumerate(metrics):
        curve, color = run.curve(metric), f"C{i}"
        n_pairs = int(curve["n"].max())
        label = _metric_label(metric)
        ax.plot(curve.index, curve["mean"], color=color, lw=2, marker="o", ms=3.5, label=f"{label}: mean")
        ax.fill_between(
            curve.index,
            curve["q25"],
            curve["q75"],
            color=color,
            alpha=0.3 if i == 0 else 0.15,
            lw=0,
            label="interquartile range" if i == 0 else None,
        )
        if i == 0:
            low, high = (
                (curve["min"], curve["max"])
                if spread == "minmax"
                else (curve["mean"] - curve["std"], curve["mean"] + curve["std"])
            )
            ax.fill_between(
                curve.index,
                low,
                high,
                color=color,
                alpha=0.1,
                lw=0,
                label="min–max" if spread == "minmax" else "mean ± std",
            )
    note = ""
    if group_by is not None:
        by_group = run.group_curves(metrics[0], group_by)  # largest group first
        sizes = run.groups(group_by, run.codes).value_counts()
        # A one-language group is that language's own curve, not a group trend: only groups of 2+ are drawn.
        shown = by_group[[group for group in by_group.columns if sizes.get(group, 0) >= 2][:max_groups]]
        note = f"\ndashed: the {shown.shape[1]} largest {group_by} groups (of {by_group.shape[1]}; 2+ languages)"
        # colours after the metrics' own, so that a group line never looks like a metric's mean
        palette = [*sns.color_palette("tab10", 10)[len(metrics) :], *sns.color_palette("Dark2", 8)]
        for color, group in zip(palette, shown.columns, strict=False):
            # Above the mean (zorder): the largest group often runs right along it and would vanish beneath.
            ax.plot(shown.index, shown[group], ls="--", lw=1.3, color=color, zorder=3,
                    label=f"{group_by} {group} ({sizes[group]})")  # fmt: skip
    selected, sel_metric = run.selected_layer, run.selection.get("metric", metrics[0])
    if sel_metric in metrics:
        value = run.curve(sel_metric).loc[selected, "mean"]
        ax.axvline(selected, color="0.3", ls=":", lw=1.2)
        ax.plot(
            [selected],
            [value],
            marker="*",
            ms=15,
            color="gold",
            mec="black",
            zorder=5,
            label=f"selected: layer {selected} ({value:.2f})",
        )
    ax.set_xlabel(LAYER_LABEL)
    ax.set_ylabel(_metric_label(metrics[0]) if len(metrics) == 1 else "value")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(len(run.layer_ids), 20)))
    ax.grid(alpha=0.3)
    if metrics[0] in PIVOT_METRICS:
        spread_over = f"{n_pairs} languages against {run.pivot}"
    elif run.scored_pairs == "pivot":
        spread_over = f"{n_pairs} directed pairs with the pivot {run.pivot} (both directions)"
    else:
        spread_over = f"{n_pairs} directed language pairs"
    named = " and ".join(_metric_label(metric) for metric in metrics)
    ax.set_title(f"{run.label}: {named} by layer\nspread across {spread_over}{note}", fontsize=11)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, frameon=False)
    return fig


def _layer_language_figure(
    table: pd.DataFrame,
    groups: pd.Series | None,
    by: str,
    aggregate: bool | None,
    title: str,
    cbar_label: str,
    selected: int | None,
    xlabel: str = LAYER_LABEL,
    **heat,
) -> Figure:
    """Languages as rows (grouped, then best first), layers (or other columns) as columns; collapses to groups when
    many."""
    langs = table.T  # language x layer
    if groups is None:
        groups = pd.Series("all", index=langs.index)
    aggregate = len(langs) > AGGREGATE_ABOVE if aggregate is None else aggregate
    if aggregate:
        langs, row_groups = group_means(langs, groups, by), None
        title += f"\n{len(groups)} languages as mean per {by} (number of languages in brackets)"
    else:
        key = langs[selected] if selected in langs.columns else langs.mean(axis=1)
        langs = langs.loc[order_languages(groups, key, by)]
        row_groups = groups.reindex(langs.index)
        title += f"\n{len(langs)} languages, by {by}, then best first" if groups.nunique() > 1 else ""
    n = len(langs)
    height = max(4.0, n * _cell_inches(n) + 2.0) if n <= AGGREGATE_ABOVE else min(12.0, 4 + n / 50)
    fig = Figure(figsize=(max(6.0, 0.42 * langs.shape[1] + 4.0), height), layout="constrained")
    ax = fig.add_subplot()
    _heatmap(ax, langs, cbar_label, row_groups=row_groups, **heat)
    if selected in list(langs.columns):
        col = list(langs.columns).index(selected)
        ax.add_patch(Rectangle((col, 0), 1, n, fill=False, ec="black", lw=2, clip_on=False))
        title += f"; selected layer {selected} outlined"
    ax.set_xlabel(xlabel)
    ax.set_ylabel(by if aggregate else "language")
    ax.set_title(title, fontsize=11)
    return fig


def plot_layer_language_heatmap(
    run: AnalysisRun, metric: str = "retrieval_acc", group_by: str = "script", aggregate: bool | None = None
) -> Figure:
    """Layer x language heatmap of per-language means (languages ordered by group, then value)."""
    table = run.layer_language(metric)
    return _layer_language_figure(
        table,
        run.groups(group_by, list(table.columns)),
        group_by,
        aggregate,
        f"{run.label}: {_metric_label(metric)} per language",
        _metric_label(metric),
        run.selected_layer,
        cmap="viridis",
    )


def pivot_pairs_table(run: AnalysisRun, layer: int, metric: str) -> pd.DataFrame:
    """Both directions of every language's pair with the pivot at a layer: rows `X -> pivot` and `pivot -> X`,
    one column per language but the pivot (the long table's rows, as a --pairs pivot run holds them)."""
    frame = run._pairs_for(layer=layer, metric=metric)
    src, tgt = frame["src"].astype(str), frame["tgt"].astype(str)
    to_pivot = frame[tgt == run.pivot].set_index(src[tgt == run.pivot])["value"]
    from_pivot = frame[src == run.pivot].set_index(tgt[src == run.pivot])["value"]
    codes = [code for code in run.codes if code != run.pivot]
    return pd.DataFrame(
        [to_pivot.reindex(codes), from_pivot.reindex(codes)], index=[f"X → {run.pivot}", f"{run.pivot} → X"]
    )


def plot_pivot_pairs(
    run: AnalysisRun,
    layer: int | None = None,
    metric: str = "retrieval_acc",
    group_by: str = "script",
    aggregate: bool | None = None,
) -> Figure:
    """Each language's pairs with the pivot at a layer (default: the selected one), both directions side by side:
    what a --pairs pivot run has instead of a language x language matrix (which would be one row and one column)."""
    if run.pivot is None:
        raise MidalignError(f"{run.path} has no pivot language: no pairs with the pivot to draw")
    layer = run.selected_layer if layer is None else int(layer)
    table = pivot_pairs_table(run, layer, metric)
    return _layer_language_figure(
        table,
        run.groups(group_by, list(table.columns)),
        group_by,
        aggregate,
        f"{run.label}: {_metric_label(metric)}\nwith the pivot {run.pivot} at layer {layer}",
        _metric_label(metric),
        None,
        xlabel="direction",
        cmap="viridis",
    )


def _language_figure(
    matrix: pd.DataFrame,
    groups: pd.Series | None,
    order: Order,
    aggregate: bool | None,
    title: str,
    cbar_label: str,
    **heat,
) -> Figure:
    """Language x language (src rows, tgt columns) heatmap, ordered by group or clustered."""
    by = "script" if order == "cluster" else order
    groups = pd.Series("all", index=matrix.index) if groups is None else groups.reindex(matrix.index)
    aggregate = len(matrix) > AGGREGATE_ABOVE if aggregate is None else aggregate
    bands = None
    if aggregate:
        sizes = groups.value_counts()
        matrix = group_matrix(matrix, groups)
        ranks = group_rank(groups, by)
        keys = cluster_order(matrix) if order == "cluster" else sorted(matrix.index, key=lambda g: ranks[g])
        matrix = matrix.loc[keys, keys]
        matrix.index = matrix.columns = [f"{g} ({sizes[g]})" for g in keys]
        title += f"\n{len(groups)} languages as mean over pairs between {by} groups (languages in brackets)"
    else:
        if order == "cluster":
            keys = cluster_order(matrix)
            title += f"\n{len(matrix)} languages, hierarchically clustered (labels coloured by {by})"
        else:
            keys = order_languages(groups, (matrix.mean(axis=1) + matrix.mean(axis=0)) / 2, by)
            bands = groups.reindex(keys)
            title += f"\n{len(matrix)} languages, by {by}, then best first" if groups.nunique() > 1 else ""
        matrix = matrix.loc[keys, keys]
    n = len(matrix)
    side = n * _cell_inches(n) if n <= AGGREGATE_ABOVE else 10.0
    fig = Figure(figsize=(max(6.5, side + 3.2), max(5.5, side + 2.4)), layout="constrained")
    ax = fig.add_subplot()
    # No square=True: constrained layout mis-places fixed-aspect axes (titles get clipped); the figure size
    # keeps cells near square instead.
    _heatmap(ax, matrix, cbar_label, row_groups=bands, col_groups=bands, **heat)
    if order == "cluster" and not aggregate and groups.nunique() > 1:
        palette = _group_palette(groups.reindex(matrix.index))
        for tick in [*ax.get_yticklabels(), *ax.get_xticklabels()]:
            tick.set_color(palette.get(groups.get(tick.get_text(), ""), "black"))
        counts = groups.reindex(matrix.index).value_counts()
        handles = [Patch(color=color, label=f"{group} ({counts[group]})") for group, color in palette.items()]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 10), fontsize=7,
                   frameon=False, title=f"label colour = {by} (languages)", title_fontsize=8)  # fmt: skip
    ax.set_xlabel("target language" + (f" {by}" if aggregate else ""))
    ax.set_ylabel("source language" + (f" {by}" if aggregate else ""))
    ax.set_title(title, fontsize=11)
    return fig


def plot_language_heatmap(
    run: AnalysisRun,
    layer: int | None = None,
    metric: str = "retrieval_acc",
    order: Order = "script",
    aggregate: bool | None = None,
) -> Figure:
    """Language x language heatmap at a layer (default: the selected one), grouped or clustered."""
    layer = run.selected_layer if layer is None else layer
    matrix = run.pair_matrix(layer, metric)
    groups = run.groups("script" if order == "cluster" else order, list(matrix.index))
    title = f"{run.label}: {_metric_label(metric)} at layer {layer}"
    return _language_figure(matrix, groups, order, aggregate, title, _metric_label(metric), cmap="viridis")


def _labels(runs: Sequence[AnalysisRun], labels: Sequence[str] | None) -> list[str]:
    """Given labels, else run labels; the directory name is added where runs would share a label."""
    if labels is not None:
        return list(labels)
    names = [run.label for run in runs]
    return [
        f"{name} ({run.path.name})" if names.count(name) > 1 else name for name, run in zip(names, runs, strict=True)
    ]


def _common(run_a: AnalysisRun, run_b: AnalysisRun) -> tuple[list[str], str]:
    """Languages both runs have (A's order), and a note for the title when the sets differ."""
    shared = set(run_b.codes)
    common = [code for code in run_a.codes if code in shared]
    if len(common) < 2:
        raise MidalignError(f"runs {run_a.path} and {run_b.path} share fewer than 2 languages")
    partial = len(common) < len(run_a.codes) or len(common) < len(run_b.codes)
    return common, (
        f" [intersection: {len(common)} languages of {len(run_a.codes)} / {len(run_b.codes)}]" if partial else ""
    )


def plot_compare_curves(
    runs: Sequence[AnalysisRun],
    labels: Sequence[str] | None = None,
    metric: str = "retrieval_acc",
    x: Literal["layer", "relative"] = "layer",
) -> Figure:
    """Mean (and IQR) per layer of several runs over their shared languages; x may be relative depth."""
    labels = _labels(runs, labels)
    shared = set.intersection(*(set(run.codes) for run in runs))
    note = (
        ""
        if all(set(run.codes) == shared for run in runs)
        else (f" [intersection: {len(shared)} languages of {' / '.join(str(len(r.codes)) for r in runs)}]")
    )
    fig = Figure(figsize=(8.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    for i, (run, label) in enumerate(zip(runs, labels, strict=True)):
        curve = run.curve(metric, langs=[c for c in run.codes if c in shared])
        xs = curve.index / curve.index.max() if x == "relative" else curve.index
        sel = run.selected_layer
        ax.plot(xs, curve["mean"], color=f"C{i}", lw=2, marker="o", ms=3.5, label=f"{label} (selected: {sel})")
        ax.fill_between(xs, curve["q25"], curve["q75"], color=f"C{i}", alpha=0.2, lw=0)
        if sel in curve.index:
            ax.plot(
                [xs[list(curve.index).index(sel)]],
                [curve.loc[sel, "mean"]],
                marker="*",
                ms=14,
                color=f"C{i}",
                mec="black",
                zorder=5,
            )
    ax.set_xlabel("relative depth (0 = embeddings, 1 = last block)" if x == "relative" else LAYER_LABEL)
    if x == "layer":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(_metric_label(metric))
    ax.grid(alpha=0.3)
    ax.set_title(
        f"{_metric_label(metric)} by layer{note}\nline: mean over directed pairs, band: interquartile "
        "range, star: selected layer",
        fontsize=11,
    )
    # Below the axes: run labels are long, and a legend beside the axes pushes the centred title off the canvas.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8, frameon=False)
    return fig


def plot_difference_heatmap(
    run_a: AnalysisRun,
    run_b: AnalysisRun,
    metric: str = "retrieval_acc",
    view: Literal["layer_language", "pairs"] = "layer_language",
    layer: int | None = None,
    order: Order = "script",
    aggregate: bool | None = None,
    labels: Sequence[str] | None = None,
) -> Figure:
    """B − A on shared languages/layers: layer x language (`view="layer_language"`) or pairs at a layer."""
    label_a, label_b = _labels([run_a, run_b], labels)
    common, note = _common(run_a, run_b)
    by = "script" if order == "cluster" else order
    groups = run_a.groups(by, common)
    cbar = f"Δ {_metric_label(metric)} (B − A)"
    if view == "layer_language":
        layers = [layer for layer in run_a.layer_ids if layer in set(run_b.layer_ids)]
        if len(layers) < len(run_a.layer_ids) or len(layers) < len(run_b.layer_ids):
            note += f" [common layers {layers[0]}–{layers[-1]}]"
        diff = (
            run_b.layer_language(metric, common).loc[layers, common]
            - run_a.layer_language(metric, common).loc[layers, common]
        )
        title = f"B − A: {_metric_label(metric)} per language{note}\nA = {label_a}, B = {label_b}"
        return _layer_language_figure(diff, groups, by, aggregate, title, cbar, None, **_symmetric_limits(diff))
    layer = run_a.selected_layer if layer is None else layer
    diff = run_b.pair_matrix(layer, metric).loc[common, common] - run_a.pair_matrix(layer, metric).loc[common, common]
    title = f"B − A: {_metric_label(metric)} at layer {layer}{note}\nA = {label_a}, B = {label_b}"
    return _language_figure(diff, groups, order, aggregate, title, cbar, **_symmetric_limits(diff))


def plot_transfer_predictors(
    table: pd.DataFrame, correlations: pd.DataFrame, metric: str, reference: str, title: str | None = None
) -> Figure:
    """Base retrieval (x) against the reference run's score (left panel) and each other run's gain over it (one
    panel each), one point per transfer language, coloured by group, with Pearson/Spearman and their intervals
    (`midalign.analysis.predictors.transfer_table` / `transfer_predictors` outputs)."""
    part = table[table.metric == metric]
    runs = [reference, *[run for run in dict.fromkeys(part.run) if run != reference]]
    if part.empty:
        raise MidalignError(f"no {metric} rows to plot")
    fig = Figure(figsize=(4.2 * len(runs), 3.8), layout="constrained")
    axes = fig.subplots(1, len(runs), squeeze=False)[0]
    palette = dict(zip(["alignment", "unseen", "ungrouped"], sns.color_palette("colorblind", 3), strict=True))
    for ax, run in zip(axes, runs, strict=True):
        target = "score" if run == reference else "gain"
        points = part[part.run == run].dropna(subset=[target])
        for group, rows in points.groupby("group", sort=False):
            ax.scatter(rows.retrieval, rows[target], color=palette.get(group, "grey"), label=group, s=28)
        for row in points.itertuples():
            ax.annotate(row.language.split("_")[0], (row.retrieval, getattr(row, target)), fontsize=7,
                        xytext=(3, 2), textcoords="offset points")  # fmt: skip
        found = correlations[(correlations.metric == metric) & (correlations.run == run)].set_index("statistic")
        text = "\n".join(
            f"{name} {found.value[name]:+.2f} [{found.ci_low[name]:+.2f}, {found.ci_high[name]:+.2f}]"
            for name in found.index
        )
        ax.text(0.02, 0.98, text, transform=ax.transAxes, va="top", fontsize=7)
        if target == "gain":
            ax.axhline(0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("base retrieval with English")
        ax.set_ylabel(f"{metric} ({reference})" if target == "score" else f"{metric} gain over {reference}")
        ax.set_title(run, fontsize=9)
    axes[0].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_probe_retrieval(run: AnalysisRun, metric: str = "retrieval_acc") -> Figure:
    """Where language identity fades and where languages align, side by side: the held-out accuracy of the
    language-identity probe per layer (left) and the mean `metric` (and MEXA, if computed) per layer (right), each
    with its chance line, and both panels marking the probe's lowest block and the metric's best block."""
    if run.probe is None:
        raise MidalignError(f"{run.path} has no probe.csv (run midalign-analyze with --probe)")
    probe = run.probe
    overall = probe[probe["lang"] == "all"].set_index("layer")["accuracy"].sort_index()
    per_language = probe[probe["lang"] != "all"].groupby("layer")["accuracy"]
    curve = run.curve(metric)["mean"]
    blocks = [layer for layer in overall.index if 1 <= layer < max(overall.index)] or list(overall.index)
    fades = int(overall.loc[blocks].idxmin())
    inner = [layer for layer in curve.index if 1 <= layer < max(curve.index)] or list(curve.index)
    peak = int(curve.loc[inner].idxmax())
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True)
    left.fill_between(
        overall.index, per_language.quantile(0.25), per_language.quantile(0.75), color="C3", alpha=0.2, lw=0,
        label="interquartile range over languages",
    )  # fmt: skip
    left.plot(overall.index, overall, color="C3", lw=2, marker="o", ms=3.5, label="probe accuracy (all languages)")
    left.axhline(probe["chance"].iloc[0], color="0.4", ls="--", lw=1, label=f"chance 1/{probe['lang'].nunique() - 1}")
    left.set_ylabel("held-out language-identity accuracy")
    left.set_title("language identity (probe, 5 folds split by sentence)", fontsize=10)
    right.plot(curve.index, curve, color="C0", lw=2, marker="o", ms=3.5, label=f"mean {_metric_label(metric)}")
    if "mexa" in run.metrics:
        mexa = run.curve("mexa")["mean"]
        right.plot(mexa.index, mexa, color="C2", lw=1.5, marker="s", ms=3, label=f"mean MEXA vs {run.pivot}")
    n_sentences = run.languages["n_sentences"].iloc[0] if "n_sentences" in run.languages else None
    if n_sentences:
        right.axhline(1 / n_sentences, color="0.4", ls="--", lw=1, label=f"retrieval chance 1/{n_sentences}")
    right.set_ylabel("value")
    right.set_title("alignment between languages", fontsize=10)
    for ax in (left, right):
        ax.axvline(fades, color="C3", ls=":", lw=1.3, label=f"probe lowest: layer {fades} ({overall[fades]:.3f})")
        ax.axvline(peak, color="C0", ls=":", lw=1.3, label=f"{metric} best: layer {peak} ({curve[peak]:.2f})")
        ax.set_xlabel(LAYER_LABEL)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(len(overall), 20)))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(
        f"{run.label}: {len(run.codes)} languages — where identity fades vs where languages align", fontsize=11
    )
    return fig


def plot_anisotropy(run: AnalysisRun) -> Figure:
    """Anisotropy per layer (anisotropy.csv): mean cosine of translations and of different sentences (left), and the
    share of the squared norm held by the largest dimension and the largest five (right), the selected layer marked.
    Cosines near 1 for every pair mean a raw-cosine metric or loss sees almost nothing but a few dimensions."""
    if run.anisotropy is None:
        raise MidalignError(f"{run.path} has no anisotropy.csv (made by midalign-analyze since it writes one)")
    table = run.anisotropy.sort_values("layer")
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True)
    left.plot(table.layer, table.cosine_parallel, color="C0", lw=2, marker="o", ms=3.5, label="translations")
    left.plot(table.layer, table.cosine_nonparallel, color="C1", lw=2, marker="s", ms=3, label="different sentences")
    left.set_ylabel("mean cosine of mean-pooled states")
    left.set_title("cosine of sentence pairs", fontsize=10)
    right.plot(table.layer, table.top1_share, color="C3", lw=2, marker="o", ms=3.5, label="largest dimension")
    right.plot(table.layer, table.top5_share, color="C4", lw=1.5, marker="s", ms=3, label="largest 5 dimensions")
    for row in table.itertuples():
        right.annotate(str(int(row.top1_dim)), (row.layer, row.top1_share), fontsize=6, ha="center",
                       xytext=(0, 4), textcoords="offset points")  # fmt: skip
    right.set_ylim(0, 1.08)
    right.set_ylabel("share of the squared norm")
    right.set_title("how much a few dimensions hold (label: the largest)", fontsize=10)
    selected = run.selected_layer
    for ax in (left, right):
        ax.axvline(selected, color="0.3", ls=":", lw=1.3, label=f"selected layer {selected}")
        ax.set_xlabel(LAYER_LABEL)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=min(len(table), 20)))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"{run.label}: {len(run.codes)} languages — anisotropy of the pooled states", fontsize=11)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Write a figure (creating parent folders) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    logger.info("wrote %s", path)
    return path


def save_run_figures(run: AnalysisRun, out_dir: str | Path, dpi: int = 150) -> list[Path]:
    """Write layer_curve.png, layer_language_heatmap.png and language_heatmap_layer{k}.png (a --pairs pivot run:
    pivot_pairs_layer{k}.png), with the pivot metrics
    pivot_curves.png and mexa_layer_language_heatmap.png, with a probe probe_retrieval.png, and anisotropy.png;
    return paths."""
    out_dir = Path(out_dir)
    curve_metric = run.selection.get("metric", "retrieval_acc")
    curve_metric = curve_metric if curve_metric in run.metrics else run.metrics[0]
    paths = [save_figure(plot_layer_curve(run, (curve_metric,)), out_dir / "layer_curve.png", dpi)]
    if curve_metric not in PIVOT_METRICS:
        paths.append(
            save_figure(plot_layer_language_heatmap(run, curve_metric), out_dir / "layer_language_heatmap.png", dpi)
        )
        # A --pairs pivot run's language x language matrix would be one row and one column: its pairs are drawn
        # per language and direction instead.
        pair_figure, name = (
            (plot_pivot_pairs(run, metric=curve_metric), "pivot_pairs")
            if run.scored_pairs == "pivot"
            else (plot_language_heatmap(run, metric=curve_metric), "language_heatmap")
        )
        paths.append(save_figure(pair_figure, out_dir / f"{name}_layer{run.selected_layer}.png", dpi))
    pivot_metrics = [name for name in PIVOT_METRICS if name in run.metrics]
    if pivot_metrics:
        paths.append(save_figure(plot_layer_curve(run, pivot_metrics), out_dir / "pivot_curves.png", dpi))
        paths.append(
            save_figure(
                plot_layer_language_heatmap(run, pivot_metrics[0]),
                out_dir / f"{pivot_metrics[0]}_layer_language_heatmap.png",
                dpi,
            )
        )
    if run.probe is not None and "retrieval_acc" in run.metrics:
        paths.append(save_figure(plot_probe_retrieval(run), out_dir / "probe_retrieval.png", dpi))
    if run.anisotropy is not None:
        paths.append(save_figure(plot_anisotropy(run), out_dir / "anisotropy.png", dpi))
    return paths
