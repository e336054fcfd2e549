"""midalign-report: the interactive page's content and file, on the committed fixtures and runs, and (marked
`browser`) the page in a real headless Chromium."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from midalign.analysis.runs import load_run
from midalign.errors import MidalignError
from midalign.report import main
from midalign.viz.report import build_report, language_figure, layer_language_figure, report_layers, write_report
from midalign.viz.report_data import read_report_run
from tests.fixtures.make_analysis_fixture import build_run, many_languages

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
RUN_A, RUN_B = FIXTURES / "analysis_run", FIXTURES / "analysis_run_b"
CLASSIC = ("retrieval_acc", "margin_retrieval_acc", "cosine", "cosine_gap")


def _with_pivot_metric_and_probe(tmp_path: Path) -> Path:
    """Fixture A plus a metric scored only against English (as MEXA) and a per-language probe.csv."""
    run = tmp_path / "pivot"
    shutil.copytree(RUN_A, run)
    pairs = pd.read_csv(run / "pairs.csv", keep_default_na=False)
    pivot = pairs[(pairs["metric"] == "retrieval_acc") & (pairs["tgt"] == "eng_Latn")].assign(metric="mexa")
    both_ways = pairs[(pairs["metric"] == "cosine") & (pairs[["src", "tgt"]] == "eng_Latn").any(axis=1)]
    pd.concat([pairs, pivot, both_ways.assign(metric="cka")]).to_csv(run / "pairs.csv", index=False)
    per_language = pd.read_csv(run / "per_language.csv", keep_default_na=False)
    mexa = pivot.rename(columns={"src": "lang"})[["layer", "lang", "metric", "value"]]
    pd.concat([per_language, mexa]).to_csv(run / "per_language.csv", index=False)
    probe = per_language[per_language["metric"] == "cosine"][["layer", "lang"]].assign(accuracy=0.5, n=40)
    overall = probe.groupby("layer", as_index=False).agg(accuracy=("accuracy", "mean"), n=("n", "sum"))
    overall = overall.assign(lang="all")
    probe = pd.concat([probe, overall], ignore_index=True).assign(chance=1 / 12)  # probe.csv as --probe writes it
    probe[["layer", "lang", "accuracy", "n", "chance"]].to_csv(run / "probe.csv", index=False)
    return run


def _unescaped(page: str) -> str:
    """The page with the figures' JSON unescaped (plotly writes <, > and / as \\u003c, \\u003e, \\u002f)."""
    return page.replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u002f", "/")


def _script_srcs(page: str) -> list[str]:
    return re.findall(r"<(?:script|link)[^>]*(?:src|href)\s*=\s*['\"]([^'\"]+)", page, flags=re.IGNORECASE)


def test_page_is_self_contained_and_has_every_metric_and_language(tmp_path: Path) -> None:
    out = write_report([RUN_A], tmp_path / "report.html")
    page = _unescaped(out.read_text(encoding="utf-8"))
    assert _script_srcs(page) == [], "the page loads nothing: plotly.js is inline"
    assert page.count("<script") >= 4 and "Plotly.newPlot" in page  # plotly.js, then one call per figure
    run = load_run(RUN_A)
    for metric in CLASSIC:
        assert f"<extra>{metric}</extra>" in page, metric  # its layer-curve panel
    for code in run.codes:
        assert f'"{code}"' in page, code
    for name in run.languages["name"]:
        assert name in page, name  # hover text
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"], "no partial file left behind"


def test_atomic_write_keeps_the_old_report_when_writing_fails(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "report.html"
    out.write_text("an earlier report")

    def fail(*_args) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("midalign.viz.report.os.replace", fail)
    with pytest.raises(MidalignError, match=r"cannot write .*report\.html: No space left on device"):
        write_report([RUN_A], out)
    assert out.read_text() == "an earlier report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_not_an_analysis_is_one_line_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "notes.txt").write_text("not a run")
    with caplog.at_level(logging.ERROR):
        assert main([str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == [f"{tmp_path} is not an analysis run: config.json is missing"]
    assert not (tmp_path / "r.html").exists()
    assert main([str(RUN_A), str(RUN_B), str(RUN_A), "--out", str(tmp_path / "r.html")]) == 2
    assert "compares two; got 3" in caplog.text
    assert main([str(RUN_A), "--labels", "a", "b"]) == 2
    assert "--labels names 2 runs, but 1 RUN folders" in caplog.text


def test_cli_default_out_is_in_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(RUN_B, run)
    assert main([str(run), "--labels", "fixture B"]) == 0
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "fixture B" in page and "<title>midalign report: fixture B</title>" in page


def test_pivot_metrics_and_probe(tmp_path: Path) -> None:
    run = read_report_run(_with_pivot_metric_and_probe(tmp_path))
    kinds = {info.name: (info.kind, info.pivot) for info in run.metrics}
    assert kinds["mexa"] == ("pivot", "eng_Latn") and kinds["retrieval_acc"] == ("pairs", None)
    assert kinds["cka"] == ("pivot", "eng_Latn")  # X -> English and English -> X
    cka = run.overall[run.overall["metric"] == "cka"].set_index("layer")["value"].sort_index()  # pairs only
    pairs = pd.read_csv(run.run.path / "pairs.csv", keep_default_na=False)
    np.testing.assert_allclose(cka, pairs[pairs["metric"] == "cka"].groupby("layer")["value"].mean())
    assert kinds["probe_accuracy"] == ("language", None) and "probe_n" not in kinds  # counts are not measures
    assert run.pair_metrics == list(CLASSIC)
    layer_menu = layer_language_figure([run]).layout.updatemenus[0]
    labels = {button.label for button in layer_menu.buttons}
    assert {"probe accuracy", "retrieval accuracy"} <= labels and any(label.startswith("MEXA") for label in labels)
    pair_menu = language_figure([run]).layout.updatemenus[0]
    assert [button.label for button in pair_menu.buttons] == [
        "retrieval accuracy", "margin retrieval accuracy", "cosine similarity", "cosine gap (parallel − other)",
    ]  # fmt: skip
    page = _unescaped(build_report([run]))
    assert "<extra>mexa</extra>" in page and "<extra>probe_accuracy</extra>" in page  # layer curves
    assert "mexa (against eng_Latn only)" in page  # said why it is not in the language x language map


def test_probe_overall_rows_are_the_layer_curve(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(RUN_B, run_dir)
    accuracy = np.linspace(0.2, 0.9, 7)
    pd.DataFrame({"layer": range(7), "lang": "all", "accuracy": accuracy, "n": 100, "chance": 0.1}).to_csv(
        run_dir / "probe.csv", index=False
    )
    run = read_report_run(run_dir)
    overall = run.overall[run.overall["metric"] == "probe_accuracy"].sort_values("layer")
    np.testing.assert_allclose(overall["value"], accuracy)
    assert (run.overall[run.overall["metric"] == "probe_chance"]["value"] == 0.1).all()
    assert "<extra>probe_accuracy</extra>" in _unescaped(build_report([run]))


def test_anisotropy_rows_are_layer_curves(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(RUN_B, run_dir)
    shares = np.linspace(0.9, 0.5, 7)
    pd.DataFrame({
        "layer": range(7), "n_sentences": 40, "mean_norm": 10.0, "cosine_parallel": 0.99, "cosine_nonparallel": 0.98,
        "top1_share": shares, "top5_share": shares + 0.05, "top1_dim": 3, "top5_dims": "3;1;2;4;5",
    }).to_csv(run_dir / "anisotropy.csv", index=False)  # fmt: skip
    run = read_report_run(run_dir)
    overall = run.overall[run.overall["metric"] == "anisotropy_top1_share"].sort_values("layer")
    np.testing.assert_allclose(overall["value"], shares)
    assert "<extra>anisotropy_top1_share</extra>" in _unescaped(build_report([run]))
    from midalign.viz.plots import plot_anisotropy

    assert len(plot_anisotropy(run.run).axes) == 2


def test_two_runs_side_by_side_and_difference(tmp_path: Path) -> None:
    runs = [read_report_run(RUN_A, "A"), read_report_run(RUN_B, "B")]
    layer_fig = layer_language_figure(runs)
    assert [trace.type for trace in layer_fig.data] == ["heatmap"] * 3  # A, B, B - A
    a, b, diff = (np.asarray(_decode(trace.z)) for trace in layer_fig.data)
    np.testing.assert_allclose(diff, b - a, atol=1e-6, equal_nan=True)
    pair_fig = language_figure(runs)
    assert len(pair_fig.data) == 2 and len(pair_fig.layout.sliders) == 4  # one layer slider per metric
    assert [s.visible for s in pair_fig.layout.sliders] == [True, False, False, False]
    codes = set(pair_fig.layout.xaxis.categoryarray)
    assert codes == set(load_run(RUN_A).codes) | set(load_run(RUN_B).codes)
    filters = [b for b in pair_fig.layout.updatemenus[1].buttons if b.label.startswith("script: Latn")]
    (latin,) = filters
    shown = latin.args[0]["xaxis.range"][1] + 0.5
    assert all(code.endswith("_Latn") for code in latin.args[0]["xaxis.categoryarray"][: int(shown)])


def _decode(z) -> np.ndarray:
    """A typed-array spec (what the page embeds) back to numbers."""
    import base64

    if isinstance(z, dict):
        shape = tuple(int(s) for s in z["shape"].split(","))
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"]).newbyteorder("<")).reshape(shape)
    return np.asarray(z, dtype=float)


def test_442_languages_keep_the_page_small(tmp_path: Path) -> None:
    path = build_run(tmp_path / "big", many_languages(442), n_layers=4, pairs_format="parquet")
    run = read_report_run(path)
    assert report_layers([run], 1_000_000) == [run.run.selected_layer]  # 4 metrics x 442^2 cells per layer
    out = write_report([path], tmp_path / "big.html")
    size = out.stat().st_size
    assert size < 13_000_000, f"{size / 1e6:.1f} MB"  # 4.8 MB of plotly.js, 5 copies of 442^2 cells in float32
    assert "layer(s) " in out.read_text(encoding="utf-8")  # the page says which layers it kept


def test_committed_442_language_run_without_pairs(tmp_path: Path) -> None:
    out = write_report([REPO / "analysis" / "gemma-3-270m_udhr_all"], tmp_path / "all.html")
    page = out.read_text(encoding="utf-8")
    assert "No language × language heatmap" in page and 'id="layer-language"' in page
    assert out.stat().st_size < 6_500_000


# ---- in a real browser -----------------------------------------------------------------------------------------
def _chromium() -> str:
    """The system Chromium, or skip; under MIDALIGN_REQUIRE_BROWSER=1 (CI) a missing browser fails instead."""
    found = os.environ.get("MIDALIGN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    missing = None if found else "no Chromium (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "playwright is not installed (pip install -e '.[dev]')"
    if missing:
        if os.environ.get("MIDALIGN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"MIDALIGN_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    return found


def _distinct_colours(png: bytes) -> int:
    from matplotlib.image import imread

    pixels = (imread(io.BytesIO(png), format="png")[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    return len(np.unique(pixels, axis=0))


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    out = write_report([RUN_A, RUN_B], tmp_path / "report.html", labels=["A", "B"])
    languages = pd.concat([load_run(RUN_A).languages, load_run(RUN_B).languages])
    arabic = languages[languages["script"] == "Arab"].index.nunique()  # a group that is not first in run order
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith("file:") else None
            )
            page.goto(out.as_uri())
            heatmap = page.locator("#language-language")
            page.wait_for_function("document.querySelectorAll('#language-language .hm image').length == 2")
            assert page.evaluate("document.querySelectorAll('.plotly-graph-div').length") == 3
            before = _distinct_colours(heatmap.screenshot())
            assert before > 40, f"the heatmap looks blank ({before} colours)"
            # The order / filter menus: Arabic-script languages only; the x axes then show just them.
            for figure in ("layer-language", "language-language"):
                menus = page.locator(f"#{figure}")
                menus.locator(".updatemenu-header-group").nth(1).click()
                menus.locator(".updatemenu-dropdown-button", has_text="script: Arab").click()
                shown = page.evaluate(f"document.getElementById('{figure}').layout.xaxis.range")
                assert shown[1] - shown[0] == pytest.approx(arabic), figure
                ticks = menus.locator(".xaxislayer-above .xtick text").all_text_contents()
                assert len(ticks) >= arabic and all(tick.endswith("_Arab") for tick in ticks), (figure, ticks)
            # Hover names both languages of a cell.
            heatmap.scroll_into_view_if_needed()
            box = heatmap.locator(".nsewdrag").first.bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.6)
            page.wait_for_selector("#language-language .hoverlayer .hovertext")
            hover = heatmap.locator(".hoverlayer .hovertext").first.text_content()
            assert "→" in hover and re.search(r"_Arab: [A-Z]", hover), hover
            # The layer slider: the left end of its rail is layer 0, whose values replace the selected layer's.
            z_data = "JSON.stringify(document.getElementById('language-language')._fullData[0].z)"
            z_before = page.evaluate(z_data)
            heatmap.locator(".slider-rail-touch-rect").first.click(position={"x": 3, "y": 3})
            page.wait_for_function(f"{z_data} !== {json.dumps(z_before)}")
            assert page.evaluate("document.getElementById('language-language').layout.sliders[0].active") == 0
            assert _distinct_colours(heatmap.screenshot()) > 10
        finally:
            browser.close()
    assert problems == [], problems
