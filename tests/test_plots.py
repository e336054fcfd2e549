"""Reading analysis runs back (midalign.analysis.runs) and drawing them (midalign.viz.plots), on committed fixtures."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure

from midalign.analysis.runs import REQUIRED_FILES, AnalysisRun, cluster_order, group_matrix, load_run
from midalign.errors import MidalignError
from midalign.viz.plots import (
    plot_compare_curves,
    plot_difference_heatmap,
    plot_language_heatmap,
    plot_layer_curve,
    plot_layer_language_heatmap,
    save_run_figures,
)
from tests.fixtures.make_analysis_fixture import build_run, many_languages

FIXTURES = Path(__file__).parent / "fixtures"
RUN_A, RUN_B = FIXTURES / "analysis_run", FIXTURES / "analysis_run_b"
N_LANGS, N_LAYERS = 12, 7  # fixture A: 12 languages over 4 scripts, layers 0..6


@pytest.fixture(scope="module")
def run() -> AnalysisRun:
    return load_run(RUN_A)


@pytest.fixture(scope="module")
def run_b() -> AnalysisRun:
    return load_run(RUN_B)


@pytest.fixture(scope="module")
def pairs() -> pd.DataFrame:
    return pd.read_csv(RUN_A / "pairs.csv", keep_default_na=False)


def _mesh(fig: Figure) -> np.ndarray:
    """The values drawn by the (first) heatmap of a figure."""
    meshes = [c for ax in fig.axes for c in ax.collections if isinstance(c, QuadMesh)]
    assert meshes, "figure has no heatmap"
    return np.asarray(meshes[0].get_array())


def _labels(ticks) -> list[str]:
    return [t.get_text() for t in ticks if t.get_text()]


def test_fixtures_are_small() -> None:
    for folder in (RUN_A, RUN_B):
        assert sum(f.stat().st_size for f in folder.iterdir()) < 220_000


def test_load_run_tables(run: AnalysisRun, run_b: AnalysisRun) -> None:
    assert run.codes[:2] == ["eng_Latn", "fra_Latn"] and len(run.codes) == N_LANGS
    assert run.layer_ids == list(range(N_LAYERS))
    assert run.selected_layer == 4 and run.selection["metric"] == "retrieval_acc"
    assert run.config["langs"] == run.codes
    assert run.languages.loc["yor_Latn", "family"] == ""  # empty cells stay empty strings, not NaN
    assert run.pairs_path.name == "pairs.csv"
    assert run_b.pairs_path.name == "pairs.parquet"  # B ships parquet only: CSV may be absent
    assert run.groups("family")["yor_Latn"] == "unknown"


def test_curve_matches_pandas(run: AnalysisRun, pairs: pd.DataFrame) -> None:
    curve = run.curve("retrieval_acc")
    values = pairs[pairs["metric"] == "retrieval_acc"].groupby("layer")["value"]
    assert list(curve.index) == list(range(N_LAYERS))
    np.testing.assert_allclose(curve["mean"], values.mean())
    np.testing.assert_allclose(curve["std"], values.std())
    np.testing.assert_allclose(curve["q25"], values.quantile(0.25))
    np.testing.assert_allclose(curve["q75"], values.quantile(0.75))
    np.testing.assert_allclose(curve["max"], values.max())
    assert (curve["n"] == N_LANGS * (N_LANGS - 1)).all()
    # the selection's curve and the layers.csv "all" rows say the same (up to their rounding)
    np.testing.assert_allclose(curve["mean"], [run.selection["curve"][str(i)] for i in range(N_LAYERS)], atol=1e-4)
    all_rows = run.layers.query("metric == 'retrieval_acc' and group_by == 'all'").set_index("layer")
    np.testing.assert_allclose(curve["mean"], all_rows["mean"], atol=1e-5)


def test_curve_on_a_language_subset(run: AnalysisRun, pairs: pd.DataFrame) -> None:
    subset = ["eng_Latn", "rus_Cyrl", "hin_Deva"]
    curve = run.curve("cosine", langs=subset)
    rows = pairs[(pairs["metric"] == "cosine") & pairs["src"].isin(subset) & pairs["tgt"].isin(subset)]
    np.testing.assert_allclose(curve["mean"], rows.groupby("layer")["value"].mean())
    assert (curve["n"] == 6).all()


def test_pair_matrix(run: AnalysisRun, pairs: pd.DataFrame) -> None:
    matrix = run.pair_matrix(3, "cosine_gap")
    assert matrix.shape == (N_LANGS, N_LANGS) and list(matrix.index) == run.codes == list(matrix.columns)
    assert np.isnan(np.diag(matrix.to_numpy())).all()
    rows = pairs[(pairs["layer"] == 3) & (pairs["metric"] == "cosine_gap")]
    for src, tgt, value in rows[["src", "tgt", "value"]].itertuples(index=False):
        assert matrix.loc[src, tgt] == pytest.approx(value)
    assert run.pair_matrix().equals(run.pair_matrix(run.selected_layer))
    with pytest.raises(MidalignError, match="layer 99"):
        run.pair_matrix(99)


def test_layer_language(run: AnalysisRun, pairs: pd.DataFrame) -> None:
    table = run.layer_language("retrieval_acc")
    assert table.shape == (N_LAYERS, N_LANGS) and list(table.columns) == run.codes
    rows = pairs[pairs["metric"] == "retrieval_acc"]
    as_src = rows.rename(columns={"src": "lang"})[["layer", "lang", "value"]]
    as_tgt = rows.rename(columns={"tgt": "lang"})[["layer", "lang", "value"]]
    expected = pd.concat([as_src, as_tgt]).groupby(["layer", "lang"])["value"].mean().unstack()
    np.testing.assert_allclose(table.to_numpy(), expected[run.codes].to_numpy(), atol=1e-5)
    # restricted to a subset, the means are recomputed over the subset's pairs only
    subset = run.codes[:4]
    sub = run.layer_language("retrieval_acc", langs=subset)
    rows = rows[rows["src"].isin(subset) & rows["tgt"].isin(subset)]
    expected = rows.groupby(["layer", "src"])["value"].sum() + rows.groupby(["layer", "tgt"])["value"].sum().values
    np.testing.assert_allclose(sub.to_numpy(), (expected / 6).unstack()[subset].to_numpy())


def test_group_curves(run: AnalysisRun) -> None:
    groups = run.group_curves("retrieval_acc", "script")
    assert list(groups.columns) == ["Latn", "Arab", "Cyrl", "Deva"]  # largest group first
    table = run.layer_language("retrieval_acc")
    np.testing.assert_allclose(groups["Cyrl"], table[["rus_Cyrl", "ukr_Cyrl"]].mean(axis=1), atol=1e-5)
    assert "unknown" in run.group_curves("retrieval_acc", "family").columns


def test_parquet_is_preferred(tmp_path: Path) -> None:
    copy = Path(shutil.copytree(RUN_A, tmp_path / "run"))
    frame = pd.read_csv(copy / "pairs.csv", keep_default_na=False)
    frame["value"] = frame["value"] + 10.0  # so that we can tell which file was read
    frame.to_parquet(copy / "pairs.parquet", index=False)
    run = load_run(copy)
    assert run.pairs_path.name == "pairs.parquet"
    assert run.curve()["min"].min() >= 10.0
    assert np.nanmin(run.pair_matrix(2).to_numpy()) >= 10.0


@pytest.mark.parametrize("missing", [*REQUIRED_FILES, "pairs.csv"])
def test_missing_file_is_named(tmp_path: Path, missing: str) -> None:
    copy = Path(shutil.copytree(RUN_A, tmp_path / "run"))
    (copy / missing).unlink()
    with pytest.raises(MidalignError, match=missing.replace(".", r"\.")):
        load_run(copy)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(MidalignError, match="not a directory"):
        load_run(tmp_path / "nope")


def test_plot_layer_curve(run: AnalysisRun) -> None:
    fig = plot_layer_curve(run)
    ax = fig.axes[0]
    assert isinstance(fig, Figure) and ax.get_xlabel() == "layer (0 = embeddings)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("selected: layer 4" in text for text in legend)
    fig = plot_layer_curve(run, metrics=("retrieval_acc", "cosine_gap"), group_by="script", spread="std")
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "mean ± std" in legend and sum(text.startswith("script ") for text in legend) == 4


def test_plot_layer_language_heatmap(run: AnalysisRun) -> None:
    fig = plot_layer_language_heatmap(run)
    ax = fig.axes[0]
    assert _mesh(fig).size == N_LANGS * N_LAYERS
    assert sorted(_labels(ax.get_yticklabels())) == sorted(run.codes)
    assert _labels(ax.get_xticklabels()) == [str(i) for i in range(N_LAYERS)]
    assert ax.get_xlabel() == "layer (0 = embeddings)"
    assert fig.axes[1].get_ylabel() == "retrieval accuracy"  # the colorbar says what the colours mean
    rows = _labels(ax.get_yticklabels())
    assert rows[:5] == ["eng_Latn", "fra_Latn", "deu_Latn", "swh_Latn", "yor_Latn"]  # Latn, best first
    fig = plot_layer_language_heatmap(run, group_by="family", aggregate=True)
    assert _mesh(fig).size == run.groups("family").nunique() * N_LAYERS


@pytest.mark.parametrize("order", ["script", "family", "resource_level", "cluster"])
def test_plot_language_heatmap(run: AnalysisRun, order: str) -> None:
    fig = plot_language_heatmap(run, order=order)
    ax = fig.axes[0]
    assert _mesh(fig).size == N_LANGS**2
    rows, cols = _labels(ax.get_yticklabels()), _labels(ax.get_xticklabels())
    assert sorted(rows) == sorted(run.codes) and rows == cols
    assert f"layer {run.selected_layer}" in ax.get_title()
    if order == "resource_level":
        levels = run.groups("resource_level")[rows].tolist()
        assert levels.index("medium") > levels.index("high") and levels[-1] == "unknown"


def test_group_matrix_and_cluster_order(run: AnalysisRun) -> None:
    matrix, groups = run.pair_matrix(4), run.groups("script")
    means = group_matrix(matrix, groups)
    latn, cyrl = ([c for c in run.codes if c.endswith(s)] for s in ("_Latn", "_Cyrl"))
    assert means.loc["Latn", "Cyrl"] == pytest.approx(matrix.loc[latn, cyrl].to_numpy().mean())
    assert means.loc["Cyrl", "Cyrl"] == pytest.approx(np.nanmean(matrix.loc[cyrl, cyrl].to_numpy()))  # no self
    # known answer: {a, b} and {c, d} retrieve each other; given interleaved, clustering makes them adjacent
    codes = ["a", "c", "b", "d"]
    close = {frozenset("ab"), frozenset("cd")}
    toy = pd.DataFrame(
        [[np.nan if x == y else 0.9 if frozenset(x + y) in close else 0.1 for y in codes] for x in codes],
        index=codes,
        columns=codes,
    )
    order = "".join(cluster_order(toy))
    assert sorted(order) == sorted(codes) and {order[:2], order[2:]} <= {"ab", "ba", "cd", "dc"}


def test_plot_language_heatmap_aggregate(run: AnalysisRun) -> None:
    fig = plot_language_heatmap(run, layer=2, aggregate=True)
    values = _mesh(fig)
    assert values.size == 16  # 4 scripts x 4 scripts
    expected = group_matrix(run.pair_matrix(2), run.groups("script")).to_numpy().ravel()
    np.testing.assert_allclose(np.sort(values.ravel()), np.sort(expected))
    assert _labels(fig.axes[0].get_yticklabels())[0] == "Latn (5)"


def test_compare_and_difference(run: AnalysisRun, run_b: AnalysisRun) -> None:
    fig = plot_compare_curves([run, run_b])
    assert "intersection: 10 languages of 12 / 11" in fig.axes[0].get_title()
    assert len(fig.axes[0].get_lines()) >= 2
    fig = plot_compare_curves([run, run_b], labels=["raw", "centred"], x="relative")
    assert "relative depth" in fig.axes[0].get_xlabel()

    fig = plot_difference_heatmap(run, run_b)
    assert _mesh(fig).size == 10 * N_LAYERS and "intersection" in fig.axes[0].get_title()
    norm = fig.axes[0].collections[0].norm
    assert norm.vmin == pytest.approx(-norm.vmax)  # diverging scale centred on 0
    common = [c for c in run.codes if c in run_b.codes]
    expected = run_b.layer_language("retrieval_acc", common) - run.layer_language("retrieval_acc", common)
    assert np.nanmax(_mesh(fig)) == pytest.approx(np.nanmax(expected.to_numpy()))

    fig = plot_difference_heatmap(run, run_b, view="pairs", order="cluster")
    assert _mesh(fig).size == 100
    diff = run_b.pair_matrix(4).loc[common, common] - run.pair_matrix(4).loc[common, common]
    assert np.nansum(_mesh(fig)) == pytest.approx(np.nansum(diff.to_numpy()))


def test_save_run_figures(run: AnalysisRun, tmp_path: Path) -> None:
    paths = save_run_figures(run, tmp_path / "figures")
    assert [p.name for p in paths] == ["layer_curve.png", "layer_language_heatmap.png", "language_heatmap_layer4.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_442_languages_aggregate_view(tmp_path: Path) -> None:
    """UDHR-sized run: 442 languages, 19 layers; pairs only at the selected layer (195k rows)."""
    path = build_run(
        tmp_path / "big", many_languages(442), n_layers=18, pairs_format="parquet", pairs_layers="selected"
    )
    start = time.perf_counter()
    run = load_run(path)
    n_scripts = run.groups("script").nunique()
    fig = plot_layer_language_heatmap(run)
    assert _mesh(fig).size == n_scripts * 19
    fig = plot_language_heatmap(run)
    assert _mesh(fig).size == n_scripts**2
    assert len(_labels(fig.axes[0].get_yticklabels())) == n_scripts
    fig = plot_language_heatmap(run, order="cluster")
    assert _mesh(fig).size == n_scripts**2
    full = plot_layer_language_heatmap(run, aggregate=False)  # every language, group bands, no tick labels
    assert _mesh(full).size == 442 * 19 and not _labels(full.axes[0].get_yticklabels())
    save_run_figures(run, tmp_path / "figures")
    assert time.perf_counter() - start < 30


def test_keys_and_labels_on_the_committed_48_language_run() -> None:
    """The real run has 19 scripts, 15 of them with one language: every group is named, colours never repeat."""
    run48 = load_run(Path(__file__).parents[1] / "analysis" / "gemma-3-270m_udhr")
    sizes = run48.groups("script").value_counts()
    assert len(sizes) == 19 and (sizes == 1).sum() == 15
    fig = plot_layer_curve(run48, group_by="script")
    assert fig.axes[0].get_title().startswith("gemma-3-270m-q4_k_m / udhr:")  # the model in the title
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert [text for text in legend if text.startswith("script ")] == [
        "script Latn (24)", "script Cyrl (4)", "script Arab (3)", "script Deva (2)",
    ]  # fmt: skip
    heatmap = plot_layer_language_heatmap(run48)
    bands = heatmap.axes[0].child_axes[0]  # the group names beside the rows
    assert sorted(_labels(bands.get_yticklabels())) == sorted(f"{g} ({n})" for g, n in sizes.items())
    clustered = plot_language_heatmap(run48, order="cluster")
    key = clustered.legends[0]
    assert sorted(t.get_text() for t in key.get_texts()) == sorted(f"{g} ({n})" for g, n in sizes.items())
    colours = [tuple(handle.get_facecolor()) for handle in key.legend_handles]
    assert len(set(colours)) == 19
    tick_colours = {t.get_text(): t.get_color() for t in clustered.axes[0].get_yticklabels()}
    assert tick_colours["rus_Cyrl"] != tick_colours["deu_Latn"]
