"""Execute the notebooks against the committed analysis-run fixtures, as CI does.

The kernel is `python3`. Its spec says `python -m ipykernel_launcher`, and jupyter_client replaces a bare
`python` with `sys.executable`, so the kernel runs in the interpreter running pytest (the venv); the last
cell appended below checks that. CI needs only the dev extra (`pip install -e .[dev]`: nbclient, nbformat,
ipykernel) installed into the interpreter that runs pytest; no `ipykernel install` step.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).parents[1] / "notebooks"
FIXTURES = Path(__file__).parent / "fixtures"

# notebooks/ is not a package: load the generator script by path.
_spec = importlib.util.spec_from_file_location("make_notebooks", NOTEBOOK_DIR / "make_notebooks.py")
make_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_notebooks)
NOTEBOOKS, build_notebook = make_notebooks.NOTEBOOKS, make_notebooks.build_notebook


def _execute(name: str) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)"))
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(NOTEBOOK_DIR)}}
    )
    client.execute()  # raises CellExecutionError, with the cell's traceback, if any cell fails
    return nb


def _images(nb: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in out.get("data", {}) for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    )


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_committed_notebooks_are_generated_and_clean(name: str) -> None:
    committed = json.loads((NOTEBOOK_DIR / name).read_text(encoding="utf-8"))
    assert committed == json.loads(nbformat.writes(build_notebook(NOTEBOOKS[name]))), (
        f"{name} differs from notebooks/make_notebooks.py: run `python notebooks/make_notebooks.py`"
    )
    for cell in committed["cells"]:
        assert not cell.get("outputs") and cell.get("execution_count") is None  # committed without outputs


def test_layer_heatmaps_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDALIGN_RUN_DIR", str(FIXTURES / "analysis_run"))
    monkeypatch.setenv("MIDALIGN_FIGURES_DIR", str(tmp_path))
    nb = _execute("layer_heatmaps.ipynb")
    assert nb.cells[-1].outputs[0]["text"].strip() == sys.prefix  # the kernel ran in this environment
    assert _images(nb) >= 5
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == [
        "language_heatmap_cluster.png",
        "language_heatmap_layer0.png",
        "language_heatmap_layer4.png",
        "layer_curve.png",
        "layer_language_heatmap.png",
    ]
    assert all(p.stat().st_size > 10_000 for p in tmp_path.glob("*.png"))


def test_compare_runs_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIDALIGN_RUN_A", str(FIXTURES / "analysis_run"))
    monkeypatch.setenv("MIDALIGN_RUN_B", str(FIXTURES / "analysis_run_b"))
    monkeypatch.setenv("MIDALIGN_FIGURES_DIR", str(tmp_path / "figures"))
    nb = _execute("compare_runs.ipynb")
    assert _images(nb) >= 4
    written = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert written == [
        "compare_curves.png",
        "compare_curves_relative.png",
        "difference_layer_language.png",
        "difference_pairs.png",
    ]


def test_readme_nbconvert_command_runs_a_notebook(tmp_path: Path) -> None:
    """The README's command line (jupyter nbconvert from the dev extra) on a fixture run, with figures written."""
    import os
    import shutil
    import subprocess

    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent))
    assert jupyter, "the dev extra installs jupyter (nbconvert)"
    env = {**os.environ, "MIDALIGN_RUN_DIR": str(FIXTURES / "analysis_run"), "MIDALIGN_FIGURES_DIR": str(tmp_path)}
    command = [jupyter, "nbconvert", "--to", "notebook", "--execute", "--output-dir", str(tmp_path / "nb"),
               str(NOTEBOOK_DIR / "layer_heatmaps.ipynb")]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    executed = nbformat.read(tmp_path / "nb" / "layer_heatmaps.ipynb", as_version=4)
    assert _images(executed) >= 3 and len(list(tmp_path.glob("*.png"))) >= 3
