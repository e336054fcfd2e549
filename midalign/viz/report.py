"""The interactive analysis report: one self-contained HTML page of plotly figures for one run or two compared.

Every control is plotly's own (dropdown menus and sliders that restyle traces or relayout axes); the page embeds
plotly.js once, so it opens without a network. Figures:
- layer curves: one panel per metric (and per probe measure), the mean over pairs or by script / family /
  resource level; two runs on the same axes (the second dashed);
- layer x language heatmap (per_language.csv): a metric menu, and an order / filter menu over the groups; with two
  runs, both and their difference;
- language x language heatmap (pairs): a metric menu and a layer slider; two runs side by side. Large runs keep
  only as many layers as `max_cells` allows (the selected layer first). Heatmap values travel as float32 typed
  arrays, curves as 3-significant-digit numbers.

Ordering and filtering never duplicate the data: a menu entry sets the axes' category order (the chosen group's
languages first) and their range (only that group in view).
"""

from __future__ import annotations

import base64
import html
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from midalign.analysis.runs import GROUP_KEYS, UNKNOWN_GROUP, group_rank, order_languages
from midalign.errors import MidalignError
from midalign.options import REPORT_MAX_CELLS
from midalign.viz.plots import METRIC_LABELS
from midalign.viz.report_data import ReportRun, describe_language, language_table, read_report_run

logger = logging.getLogger(__name__)

GROUP_LIMIT = 12  # groups per grouping drawn as curves or offered as filters; the rest are lumped as "other"
HOVER_NAMES_UP_TO = 150  # language x language hover names both languages up to this many languages (size)
GROUP_NAMES = {"script": "script", "family": "family", "resource_level": "resource level"}
RUN_DASHES = ("solid", "dash")
PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
    "#393b79", "#ad494a", "#637939",
)  # fmt: skip
SEQUENTIAL, DIVERGING = "Viridis", "RdBu"  # differences B − A: blue = B higher, red = B lower (as plots.py)


def _metric_title(name: str) -> str:
    return METRIC_LABELS.get(name, name.replace("_", " "))


def _typed(values: np.ndarray) -> dict:
    """A float32 typed-array spec (plotly.js decodes it, also in restyle args): 5.3 bytes a value instead of
    7-8 as JSON text: 19 layers x 4 metrics of 48 x 48 matrices take 1.1 MB of a 6.3 MB page."""
    array = np.ascontiguousarray(values, dtype="<f4")
    return {"dtype": "f4", "bdata": base64.b64encode(array.tobytes()).decode("ascii"),
            "shape": ",".join(map(str, array.shape))}  # fmt: skip


def _rounded(values: np.ndarray) -> list:
    """Lists with 3 significant digits and None for NaN (curves: small, and readable in the page source)."""
    array = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.where(np.isfinite(array) & (array != 0), np.floor(np.log10(np.abs(array))), 0)
    scale = 10.0 ** (2 - magnitude)
    rounded = np.round(array * scale) / scale
    return np.where(np.isfinite(rounded), rounded, None).tolist()


def _limits(arrays: Sequence[np.ndarray], diverging: bool = False) -> tuple[float, float]:
    finite = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return (0.0, 1.0)
    if diverging:
        bound = float(np.abs(finite).max()) or 1.0
        return (-bound, bound)
    low, high = float(finite.min()), float(finite.max())
    return (low, high if high > low else low + 1e-9)


@dataclass(frozen=True)
class Order:
    """One entry of the order / filter menu: the category order, and how many of its first languages are shown."""

    label: str
    codes: list[str]
    shown: int


def _groups(languages: pd.DataFrame, by: str) -> pd.Series:
    return languages[by].rename(by)


def _top_groups(groups: pd.Series, by: str) -> list[str]:
    """The groups in display order (see runs.group_rank), at most GROUP_LIMIT of them, 'unknown' never chosen."""
    ranks = group_rank(groups, by)
    ordered = sorted((g for g in ranks if g != UNKNOWN_GROUP), key=lambda g: ranks[g])
    return ordered[:GROUP_LIMIT]


def language_orders(languages: pd.DataFrame, values: pd.Series, basis: str) -> list[Order]:
    """Menu entries: the runs' order, by value (`values`, described by `basis`), by each grouping (best first
    within a group), then each large group on its own."""
    codes = list(languages.index)
    n = len(codes)
    best_first = sorted(codes, key=lambda code: -np.nan_to_num(values.get(code, np.nan), nan=-np.inf))
    orders = [Order("all: run order", codes, n), Order(f"all: best first ({basis})", best_first, n)]
    by_group: dict[str, list[str]] = {}
    for by in GROUP_KEYS:
        by_group[by] = order_languages(_groups(languages, by), values.reindex(codes), by)
        orders.append(Order(f"all: by {GROUP_NAMES[by]}", by_group[by], n))
    for by in GROUP_KEYS:
        groups = _groups(languages, by)
        for group in _top_groups(groups, by):
            members = [code for code in by_group[by] if groups[code] == group]
            if 1 < len(members) < n:
                rest = [code for code in by_group[by] if groups[code] != group]
                orders.append(Order(f"{GROUP_NAMES[by]}: {group} ({len(members)})", members + rest, len(members)))
    return orders


def _menus(metric_buttons: list[dict], active: int, order_menu: dict, menu_y: float) -> list[dict]:
    """A heatmap's two menus: the metric shown (left) and the language order/filter."""
    metric_menu = {"buttons": metric_buttons, "x": 0, "y": menu_y, "xanchor": "left", "yanchor": "bottom",
                   "direction": "down", "active": active}  # fmt: skip
    return [metric_menu, order_menu]


def _order_menu(orders: list[Order], x_axes: list[str], y_axes: list[str], x: float, y: float) -> dict:
    """An updatemenu whose entries relayout the given axes (category order and range); y axes read top-down."""
    buttons = []
    for order in orders:
        layout: dict = {}
        for axis in x_axes:
            layout[f"{axis}.categoryarray"] = order.codes
            layout[f"{axis}.range"] = [-0.5, order.shown - 0.5]
        for axis in y_axes:
            layout[f"{axis}.categoryarray"] = order.codes
            layout[f"{axis}.range"] = [order.shown - 0.5, -0.5]
        buttons.append({"label": order.label, "method": "relayout", "args": [layout]})
    return {"buttons": buttons, "x": x, "y": y, "xanchor": "left", "yanchor": "bottom", "showactive": True,
            "direction": "down", "active": 0}  # fmt: skip


def _above_plot(height: int, margin: dict, pixels: int) -> float:
    """Paper y of a point `pixels` above the plotting area (menus have no container coordinates)."""
    return 1 + pixels / (height - margin["t"] - margin["b"])


def _selection_metric(runs: list[ReportRun]) -> str:
    first = runs[0]
    wanted = str(first.run.selection.get("metric", ""))
    names = [info.name for info in first.metrics]
    return wanted if wanted in names else names[0]


# ---- layer curves ----------------------------------------------------------------------------------------------
def _group_curves(item: ReportRun, metric: str, by: str, languages: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    """(label, per-layer mean over the group's languages) for the top groups and 'unknown', then 'other' for the
    rest."""
    rows = item.per_language[item.per_language["metric"] == metric]
    if rows.empty:
        return []
    groups = _groups(languages, by)
    top = set(_top_groups(groups.reindex(item.run.codes).dropna(), by))
    labelled = rows.assign(group=rows["lang"].map(groups).fillna(UNKNOWN_GROUP))
    labelled["group"] = labelled["group"].where(labelled["group"].isin(top | {UNKNOWN_GROUP}), "other")
    out = []
    sizes = labelled.groupby("group")["lang"].nunique()
    ranks = group_rank(groups.reindex(item.run.codes).dropna(), by)  # 'unknown' ranks last among them
    for group in sorted(sizes.index, key=lambda g: (g == "other", ranks.get(g, (True, 0, g)))):
        means = labelled[labelled["group"] == group].groupby("layer")["value"].mean().sort_index()
        out.append((f"{group} ({sizes[group]})", means))
    return out


def curves_figure(runs: list[ReportRun]) -> go.Figure:
    """Layer curves, one panel per metric; a menu switches between the overall mean and group means."""
    languages = language_table(runs)
    metrics = [info.name for info in runs[0].metrics]
    metrics += [info.name for item in runs[1:] for info in item.metrics if info.name not in metrics]
    cols = 2 if len(metrics) == 4 else min(3, len(metrics))  # 2 x 2 rather than 3 + 1
    rows = math.ceil(len(metrics) / cols)
    titles = []
    for name in metrics:
        kinds = {item.metric(name).describe for item in runs if name in [i.name for i in item.metrics]}
        titles.append(_metric_title(name) + ("" if kinds == {name} else f"<br><sup>{'; '.join(sorted(kinds))}</sup>"))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.06,
                        vertical_spacing=0.35 / rows)  # fmt: skip
    views = ["all", *GROUP_KEYS]
    visibility: dict[str, list[bool]] = {view: [] for view in views}
    colours: dict[str, str] = {}
    legend_seen: set[str] = set()

    def add(trace: go.Scatter, view: str, position: int) -> None:
        fig.add_trace(trace, row=position // cols + 1, col=position % cols + 1)
        for other in views:
            visibility[other].append(other == view)

    for run_index, item in enumerate(runs):
        dash = RUN_DASHES[run_index % len(RUN_DASHES)]
        for position, metric in enumerate(metrics):
            overall = item.overall[item.overall["metric"] == metric].groupby("layer")["value"].mean().sort_index()
            if overall.empty:
                continue
            name = item.label if len(runs) > 1 else "mean"
            add(go.Scatter(x=overall.index.tolist(), y=_rounded(overall.to_numpy()), name=name, legendgroup=name,
                           showlegend=name not in legend_seen, mode="lines+markers", visible=True,
                           line={"color": PALETTE[run_index], "dash": dash},
                           hovertemplate=f"{html.escape(item.label)}<br>layer %{{x}}: %{{y}}<extra>{metric}</extra>"),
                "all", position)  # fmt: skip
            legend_seen.add(name)
            for by in GROUP_KEYS:
                for label, means in _group_curves(item, metric, by, languages):
                    colour = colours.setdefault(f"{by}:{label.rsplit(' (', 1)[0]}", PALETTE[len(colours) % 13])
                    legend = f"{label}" if len(runs) == 1 else f"{label} · {item.label}"
                    add(go.Scatter(x=means.index.tolist(), y=_rounded(means.to_numpy()), name=legend,
                                   legendgroup=legend, showlegend=legend not in legend_seen, visible=False,
                                   mode="lines", line={"color": colour, "dash": dash},
                                   hovertemplate=f"{html.escape(label)} · {html.escape(item.label)}<br>layer %{{x}}: "
                                                 f"%{{y}}<extra>{metric}</extra>"), by, position)  # fmt: skip
                    legend_seen.add(legend)
    for run_index, item in enumerate(runs):  # the selected layer of each run, in its colour
        for position in range(len(metrics)):
            fig.add_vline(x=item.run.selected_layer, line={"color": PALETTE[run_index], "dash": "dot", "width": 1},
                          row=position // cols + 1, col=position % cols + 1)  # fmt: skip
    buttons = [
        {"label": "mean over pairs" if view == "all" else f"by {GROUP_NAMES[view]}", "method": "restyle",
         "args": [{"visible": visibility[view]}]}
        for view in views
    ]  # fmt: skip
    height, margin = 280 * rows + 140, {"t": 85, "l": 60, "r": 20, "b": 50}
    fig.update_layout(
        height=height,
        margin=margin,
        updatemenus=[
            {
                "buttons": buttons,
                "x": 0,
                "y": _above_plot(height, margin, 40),
                "yanchor": "bottom",
                "xanchor": "left",
                "direction": "down",
                "active": 0,
            }
        ],
        legend={"font": {"size": 10}},
        hovermode="closest",
    )
    fig.update_xaxes(title_text="layer (0 = embeddings)", dtick=2, row=rows)
    return fig


# ---- layer x language heatmap ----------------------------------------------------------------------------------
def _layer_matrix(item: ReportRun, metric: str, codes: list[str], layers: list[int]) -> np.ndarray:
    rows = item.per_language[item.per_language["metric"] == metric]
    table = rows.pivot_table(index="layer", columns="lang", values="value", aggfunc="first")
    return table.reindex(index=layers, columns=codes).to_numpy(dtype=float)


def _values_at(item: ReportRun, metric: str, layer: int) -> pd.Series:
    rows = item.per_language[(item.per_language["metric"] == metric) & (item.per_language["layer"] == layer)]
    return rows.set_index("lang")["value"]


def layer_language_figure(runs: list[ReportRun]) -> go.Figure:
    """Layers x languages for each metric with per-language values; with two runs also their difference."""
    languages = language_table(runs)
    codes = list(languages.index)
    layers = sorted(set().union(*(set(item.per_language["layer"]) for item in runs)))
    present = {str(m) for item in runs for m in item.per_language["metric"].unique()}
    metrics = [m for m in dict.fromkeys(info.name for item in runs for info in item.metrics) if m in present]
    panels = [item.label for item in runs] + ([f"{runs[1].label} − {runs[0].label}"] if len(runs) == 2 else [])
    # Not shared_xaxes: plotly ignores a new category order on axes that match another (the order menu needs it)
    fig = make_subplots(rows=len(panels), cols=1, vertical_spacing=0.08, subplot_titles=panels)
    described = [describe_language(languages, code) for code in codes]
    customdata = [described for _ in layers]  # one row per layer: the hover names every cell's language
    first = _selection_metric(runs) if _selection_metric(runs) in metrics else metrics[0]
    arrays: dict[str, list[np.ndarray]] = {}
    for metric in metrics:
        own = [_layer_matrix(item, metric, codes, layers) for item in runs]
        arrays[metric] = own + ([own[1] - own[0]] if len(runs) == 2 else [])
    for index, panel in enumerate(panels):
        difference = index == 2
        fig.add_trace(
            go.Heatmap(
                z=_typed(arrays[first][index]), x=codes, y=layers, customdata=customdata,
                colorscale=DIVERGING if difference else SEQUENTIAL,
                zmin=_limits(arrays[first][2:] if difference else arrays[first][:2], difference)[0],
                zmax=_limits(arrays[first][2:] if difference else arrays[first][:2], difference)[1],
                colorbar={"len": 0.9 / len(panels), "y": 1 - (index + 0.5) / len(panels), "thickness": 12},
                hovertemplate="%{x} · %{customdata}<br>layer %{y}: %{z:.3~g}<extra>" + html.escape(panel) + "</extra>",
                hoverongaps=False,
            ),
            row=index + 1, col=1,
        )  # fmt: skip
    metric_buttons = []
    for metric in metrics:
        plain, diff = _limits(arrays[metric][:2]), _limits(arrays[metric][2:], True) if len(runs) == 2 else (0, 1)
        limits = [plain if index < 2 else diff for index in range(len(panels))]
        metric_buttons.append({
            "label": _metric_title(metric), "method": "restyle",
            "args": [{"z": [_typed(a) for a in arrays[metric]], "zmin": [lim[0] for lim in limits],
                      "zmax": [lim[1] for lim in limits]}],
        })  # fmt: skip
    values = _values_at(runs[0], first, runs[0].run.selected_layer)
    basis = f"{_metric_title(first)}, layer {runs[0].run.selected_layer}"
    x_axes = [f"xaxis{'' if i == 0 else i + 1}" for i in range(len(panels))]
    height, margin = max(360, 300 * len(panels)) + 120, {"t": 85, "l": 60, "r": 20, "b": 80}
    menu_y = _above_plot(height, margin, 40)
    order_menu = _order_menu(language_orders(languages, values, basis), x_axes, [], 0.3, menu_y)
    fig.update_layout(
        height=height,
        margin=margin,
        updatemenus=_menus(metric_buttons, metrics.index(first), order_menu, menu_y),
    )  # fmt: skip
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=codes, range=[-0.5, len(codes) - 0.5],
                     tickfont={"size": 8}, showticklabels=True)  # fmt: skip
    fig.update_yaxes(title_text="layer", autorange=True)
    return fig


# ---- language x language heatmap -------------------------------------------------------------------------------
def report_layers(runs: list[ReportRun], max_cells: int) -> list[int]:
    """The layers the language x language heatmap embeds: all of them if `max_cells` allows, else the selected
    layer and evenly spaced others."""
    layers = sorted(set.intersection(*(set(item.pair_layers) for item in runs)))
    if not layers:
        raise MidalignError(f"the pair tables of {' and '.join(item.label for item in runs)} share no layer")
    per_layer = sum(len(item.run.codes) ** 2 * len(item.pair_metrics) for item in runs)
    keep = max(1, max_cells // max(per_layer, 1))
    if keep >= len(layers):
        return layers
    selected = runs[0].run.selected_layer if runs[0].run.selected_layer in layers else layers[0]
    spread = [layers[round(i)] for i in np.linspace(0, len(layers) - 1, keep)] if keep > 1 else []
    chosen = [selected] + [layer for layer in spread if layer != selected]
    return sorted(chosen[:keep])


def language_figure(runs: list[ReportRun], max_cells: int = REPORT_MAX_CELLS) -> go.Figure | None:
    """Source x target language for each metric scored on every pair, runs side by side: a metric menu, and a
    layer slider per metric (only the chosen metric's is shown), so each run is one trace whose hover names are
    stored once."""
    shown = [item for item in runs if item.pair_metrics]
    if not shown:
        return None
    metrics = list(dict.fromkeys(m for item in shown for m in item.pair_metrics))
    layers = report_layers(shown, max_cells)
    languages = language_table(shown)
    start = shown[0].run.selected_layer if shown[0].run.selected_layer in layers else layers[0]
    first = _selection_metric(shown) if _selection_metric(shown) in metrics else metrics[0]
    codes = [item.run.pair_matrix(start, item.pair_metrics[0]).index.tolist() for item in shown]
    # matrices[metric][layer][run]: each run in its own language order (the axes reorder them); NaN where a run
    # lacks the metric
    matrices = {
        metric: {
            layer: [
                item.run.pair_matrix(layer, metric).reindex(index=own, columns=own).to_numpy(dtype=float)
                if metric in item.pair_metrics
                else np.full((len(own), len(own)), np.nan)
                for item, own in zip(shown, codes, strict=True)
            ]
            for layer in layers
        }
        for metric in metrics
    }
    limits = {metric: _limits([m for by_run in matrices[metric].values() for m in by_run]) for metric in metrics}
    fig = make_subplots(rows=1, cols=len(shown), subplot_titles=[item.label for item in shown],
                        horizontal_spacing=0.12)  # fmt: skip
    for run_index, (item, own) in enumerate(zip(shown, codes, strict=True)):
        hover = "%{y} → %{x}: %{z:.3~g}"
        extra: dict = {}
        if len(own) <= HOVER_NAMES_UP_TO:  # per cell: above this, names would outweigh the values
            names = [str(languages.at[code, "name"]) for code in own]
            extra["customdata"] = [[[src, tgt] for tgt in names] for src in names]
            hover += "<br>%{y}: %{customdata[0]}<br>%{x}: %{customdata[1]}"
        fig.add_trace(
            go.Heatmap(z=_typed(matrices[first][start][run_index]), x=own, y=own, zmin=limits[first][0],
                       zmax=limits[first][1], colorscale=SEQUENTIAL, hoverongaps=False,
                       showscale=run_index == len(shown) - 1, colorbar={"thickness": 12},
                       hovertemplate=hover + f"<extra>{html.escape(item.label)}</extra>", **extra),
            row=1, col=run_index + 1,
        )  # fmt: skip
    traces = list(range(len(shown)))
    # One slider per metric; none when one layer is kept (a large run): no slider, and no second copy of its data.
    sliders = [
        {"steps": [{"label": str(layer), "method": "restyle",
                    "args": [{"z": [_typed(z) for z in matrices[metric][layer]]}, traces]} for layer in layers],
         "active": layers.index(start), "currentvalue": {"prefix": f"{_metric_title(metric)}, layer "},
         "pad": {"t": 40}, "len": 0.9, "x": 0.05, "visible": metric == first}
        for metric in metrics
    ] if len(layers) > 1 else []  # fmt: skip
    metric_buttons = []
    for index, metric in enumerate(metrics):
        shown_sliders = {f"sliders[{j}].visible": j == index for j in range(len(sliders))}
        if sliders:
            shown_sliders[f"sliders[{index}].active"] = layers.index(start)
        metric_buttons.append({
            "label": _metric_title(metric), "method": "update",
            "args": [{"z": [_typed(z) for z in matrices[metric][start]], "zmin": [limits[metric][0]] * len(traces),
                      "zmax": [limits[metric][1]] * len(traces)},
                     shown_sliders, traces],
        })  # fmt: skip
    values = _values_at(shown[0], first, start)
    basis = f"{_metric_title(first)}, layer {start}"
    axes = [(f"xaxis{'' if i == 0 else i + 1}", f"yaxis{'' if i == 0 else i + 1}") for i in range(len(shown))]
    side = 760 if len(shown) == 1 else 620
    height, margin = side + 230, {"t": 90, "l": 90, "r": 20, "b": 90}
    menu_y = _above_plot(height, margin, 45)
    order_menu = _order_menu(language_orders(languages, values, basis), [a for a, _ in axes], [b for _, b in axes], 0.3,
                             menu_y)  # fmt: skip
    fig.update_layout(
        height=height,
        margin=margin,
        updatemenus=_menus(metric_buttons, metrics.index(first), order_menu, menu_y),
        sliders=sliders,
        plot_bgcolor="white",
    )  # fmt: skip
    for x_axis, y_axis in axes:
        fig.layout[x_axis].update(type="category", categoryorder="array", categoryarray=list(languages.index),
                                  range=[-0.5, len(languages) - 0.5], tickfont={"size": 7}, tickangle=-90,
                                  constrain="domain")  # fmt: skip
        fig.layout[y_axis].update(type="category", categoryorder="array", categoryarray=list(languages.index),
                                  range=[len(languages) - 0.5, -0.5], tickfont={"size": 7},
                                  scaleanchor=x_axis.replace("axis", ""), constrain="domain")  # fmt: skip
    return fig


# ---- the page --------------------------------------------------------------------------------------------------
def _summary(item: ReportRun) -> str:
    config, selection = item.run.config, item.run.selection
    cells = {
        "folder": str(item.run.path),
        "model": config.get("model") or config.get("resolved", {}).get("model_identity", ""),
        "dataset / split": f"{config.get('dataset', '')} / {config.get('resolved', {}).get('split', '')}",
        "pooling, centred": f"{config.get('pooling', '')}, {bool(config.get('center', False))}",
        "languages": str(len(item.run.codes)),
        "layers": f"{item.run.layer_ids[0]}..{item.run.layer_ids[-1]}",
        "selected layer": f"{item.run.selected_layer} (mean {selection.get('metric')} "
        f"{float(selection.get('score', float('nan'))):.3f})",
        "metrics": ", ".join(info.describe for info in item.metrics),
        "pairs": "each language with the pivot, both directions (--pairs pivot)"
        if item.run.scored_pairs == "pivot"
        else "every directed pair",
    }
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in cells.items())
    return f"<h2>{html.escape(item.label)}</h2><table>{rows}</table>"


STYLE = """body{font-family:system-ui,sans-serif;margin:16px 24px;color:#222}table{border-collapse:collapse;
font-size:13px}th{text-align:left;padding:2px 12px 2px 0;color:#555;font-weight:normal}td{padding:2px 0}
h1{font-size:22px}h2{font-size:16px;margin:14px 0 4px}p.note{font-size:13px;color:#555}"""


def build_report(runs: Sequence[ReportRun], max_cells: int = REPORT_MAX_CELLS) -> str:
    """The whole page as one HTML string (plotly.js inline)."""
    runs = list(runs)
    notes = []
    figures = [
        ("curves", "Layer curves (dotted: the selected layer)", curves_figure(runs)),
        (
            "layer-language",
            "Layer × language: each language's mean over the pairs it is in",
            layer_language_figure(runs),
        ),
    ]
    pairs = language_figure(runs, max_cells)
    if pairs is None and any(item.run.pairs_path is not None for item in runs):
        notes.append(
            "No language × language heatmap: no metric here was scored on every pair (a --pairs pivot run scores "
            "each language with the pivot only; the layer × language heatmap shows those)."
        )
    elif pairs is None:
        notes.append("No language × language heatmap: no run here has a pair table (pairs.parquet / pairs.csv).")
    else:
        figures.append(("language-language", "Language × language (row: source, column: target)", pairs))
        layers = report_layers([item for item in runs if item.pair_metrics], max_cells)
        if len(layers) < len(runs[0].run.layer_ids):
            notes.append(f"Language × language heatmap: layer(s) {', '.join(map(str, layers))} only (the pair "
                         f"table's layers, at most --max-cells {max_cells} cells).")  # fmt: skip
    for item in runs:
        if item.run.pairs_path is None and pairs is not None:
            notes.append(f"{item.label} has no pair table: not in the language × language heatmap.")
        skipped = [info.describe for info in item.metrics if info.kind != "pairs"]
        if skipped and pairs is not None:
            notes.append(f"{item.label}: not in the language × language heatmap (not scored on every pair): "
                         f"{', '.join(skipped)}.")  # fmt: skip
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>midalign report: {html.escape(' vs '.join(item.label for item in runs))}</title>",
        f"<style>{STYLE}</style><script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>midalign analysis report: {html.escape(' vs '.join(item.label for item in runs))}</h1>",
        "<p class='note'>Layer 0 is the embedding output, layer k the residual stream after block k. Menus choose "
        "the metric and order or filter languages by script, family or resource level; hover for names.</p>",
        *(_summary(item) for item in runs),
        *(f"<p class='note'>{html.escape(note)}</p>" for note in notes),
    ]
    for div_id, title, fig in figures:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                                 config={"responsive": True, "displaylogo": False}))  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts)


def _unique_labels(paths: Sequence[Path]) -> list[str]:
    names = [path.resolve().name for path in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{path.resolve().parent.name}/{path.resolve().name}" for path in paths]


def write_report(
    paths: Sequence[str | Path],
    out: str | Path,
    labels: Sequence[str] | None = None,
    max_cells: int = REPORT_MAX_CELLS,
) -> Path:
    """Read the runs, build the page and write it atomically (a reader never sees half a file); return its path."""
    paths = [Path(path) for path in paths]
    if not 1 <= len(paths) <= 2:
        raise MidalignError(f"a report shows one run or compares two; got {len(paths)}")
    labels = list(labels) if labels else _unique_labels(paths)
    runs = [read_report_run(path, label) for path, label in zip(paths, labels, strict=True)]
    page = build_report(runs, max_cells)
    out = Path(out)
    if out.is_dir():
        raise MidalignError(f"{out} is a directory; --out names the HTML file to write")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        partial.write_text(page, encoding="utf-8")
        os.replace(partial, out)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise MidalignError(f"cannot write {out}: {error.strerror or error}") from error
    logger.info("report: %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out
