"""Generate the notebooks in this folder (without outputs) from the cell sources below.

    python notebooks/make_notebooks.py

Edit the cells here, not the .ipynb JSON; tests/test_notebooks.py checks that the committed notebooks match.
"""

from __future__ import annotations

import logging
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

logger = logging.getLogger(__name__)
HERE = Path(__file__).parent

LAYER_NOTE = (
    "**Layer convention.** Layer 0 is the embedding output, layer *i* the residual stream after decoder "
    "block *i* (Hugging Face `hidden_states[i]`), so a model with *L* blocks has layers 0..*L*."
)

LAYER_HEATMAPS = [
    ("md", "# Where do the languages align? Layer heatmaps of one analysis run\n\n"
           "This notebook reads the output folder of `midalign-analyze --out DIR` and draws the views that "
           "show at which depth a model's languages line up. Set `RUN_DIR` below, or the environment "
           "variable `MIDALIGN_RUN_DIR`; set `MIDALIGN_FIGURES_DIR` (or `FIGURES_DIR`) to also write the "
           "figures as PNG.\n\n" + LAYER_NOTE),
    ("code", 'import os\n\n'
             'RUN_DIR = os.environ.get("MIDALIGN_RUN_DIR", "../analysis/gemma-3-270m_udhr")\n'
             'FIGURES_DIR = os.environ.get("MIDALIGN_FIGURES_DIR")  # None: show the figures, save nothing\n'
             'METRIC = "retrieval_acc"  # or margin_retrieval_acc, cosine, cosine_gap\n'
             'GROUP_BY = "script"  # or family, resource_level'),
    ("code", "%matplotlib inline\nfrom pathlib import Path\n\n"
             "from midalign.analysis.runs import load_run\n"
             "from midalign.viz.plots import (\n"
             "    plot_language_heatmap,\n"
             "    plot_layer_curve,\n"
             "    plot_layer_language_heatmap,\n"
             "    save_figure,\n"
             "    save_run_figures,\n"
             ")\n\n"
             "run = load_run(RUN_DIR)\n"
             "run.selection"),
    ("md", "## Alignment by layer\n\n"
           "The line is the mean over all directed language pairs (src → tgt) of the metric; for retrieval "
           "accuracy, the share of source sentences whose nearest target sentence (cosine of mean-pooled "
           "hidden states) is its translation. The dark band is the interquartile range across pairs, the "
           "light band min–max: a wide band means some pairs align far better than others. Dashed lines are "
           "group means (e.g. per script). The star marks the layer the analysis selected. Expect the "
           "paper's shape: low at the embeddings, a peak in the middle, a drop towards the last layer."),
    ("code", "curve_fig = plot_layer_curve(run, metrics=[METRIC], group_by=GROUP_BY)\ncurve_fig"),
    ("md", "## Every language at every layer\n\n"
           "One row per language, one column per layer; a cell is the mean of the metric over all pairs in "
           "which that language is source or target. Rows are grouped (labels on the right), best first "
           "within a group; the selected layer is outlined. Low-resource languages tend to stay dark at "
           "every layer. With hundreds of languages the rows collapse to group means (the count in brackets)."),
    ("code", "layer_language_fig = plot_layer_language_heatmap(run, METRIC, group_by=GROUP_BY)\n"
             "layer_language_fig"),
    ("md", "## Language pairs at the selected layer\n\n"
           "Rows are source languages, columns target languages; the matrix need not be symmetric "
           "(retrieving Yoruba sentences among English ones differs from the reverse). The diagonal is "
           "empty. Blocks along the diagonal show groups that align among themselves (same script, "
           "related languages)."),
    ("code", "pairs_fig = plot_language_heatmap(run, metric=METRIC, order=GROUP_BY)\npairs_fig"),
    ("md", "The same matrix with languages ordered by hierarchical clustering (average linkage on each "
           "language's row and column), labels coloured by script: clusters that cut across scripts are "
           "languages the model has learnt to map together."),
    ("code", 'cluster_fig = plot_language_heatmap(run, metric=METRIC, order="cluster")\ncluster_fig'),
    ("md", "For contrast, the embeddings (layer 0): expect near-chance retrieval, except between "
           "languages that share much vocabulary."),
    ("code", "embeddings_fig = plot_language_heatmap(run, layer=0, metric=METRIC, order=GROUP_BY)\n"
             "embeddings_fig"),
    ("md", "## Save\n\nWrites the standard figures of a run (as `midalign-analyze` does) plus the two extra "
           "views when `FIGURES_DIR` is set."),
    ("code", "if FIGURES_DIR:\n"
             "    written = save_run_figures(run, FIGURES_DIR)\n"
             '    written.append(save_figure(cluster_fig, Path(FIGURES_DIR) / "language_heatmap_cluster.png"))\n'
             '    written.append(save_figure(embeddings_fig, Path(FIGURES_DIR) / "language_heatmap_layer0.png"))\n'
             "    print(*written, sep=\"\\n\")"),
]

COMPARE_RUNS = [
    ("md", "# Comparing two analysis runs\n\n"
           "Two outputs of `midalign-analyze`: e.g. a model before and after alignment training, raw vs "
           "per-language-centred pooling, or two models. Set `RUN_A` / `RUN_B` below or the environment "
           "variables `MIDALIGN_RUN_A` / `MIDALIGN_RUN_B`; `MIDALIGN_FIGURES_DIR` (or `FIGURES_DIR`) also "
           "writes the figures as PNG. Where the runs cover different languages or layers, every view uses "
           "the ones both have and says so in its title; per-language means are then recomputed over the "
           "shared pairs only, so both sides average over the same pairs.\n\n" + LAYER_NOTE),
    ("code", 'import os\n\n'
             'RUN_A = os.environ.get("MIDALIGN_RUN_A", "../analysis/gemma-3-270m_udhr")\n'
             'RUN_B = os.environ.get("MIDALIGN_RUN_B", "../analysis/gemma-3-270m_udhr_centered")\n'
             'FIGURES_DIR = os.environ.get("MIDALIGN_FIGURES_DIR")  # None: show the figures, save nothing\n'
             'METRIC = "retrieval_acc"\n'
             "LAYER = None  # language-pair view at this layer; None: the layer run A selected"),
    ("code", "%matplotlib inline\nfrom pathlib import Path\n\n"
             "from midalign.analysis.runs import load_run\n"
             "from midalign.viz.plots import plot_compare_curves, plot_difference_heatmap, save_figure\n\n"
             "run_a, run_b = load_run(RUN_A), load_run(RUN_B)\n"
             "{\"A\": run_a.selection, \"B\": run_b.selection}"),
    ("md", "## Curves\n\nMean over the shared directed pairs per layer (band: interquartile range; star: "
           "each run's selected layer). For models of different depth, the second plot puts both on "
           "relative depth (0 = embeddings, 1 = last block)."),
    ("code", "curves_fig = plot_compare_curves([run_a, run_b], metric=METRIC)\ncurves_fig"),
    ("code", 'relative_fig = plot_compare_curves([run_a, run_b], metric=METRIC, x="relative")\nrelative_fig'),
    ("md", "## Where B gains or loses, per language and layer\n\n"
           "Each cell is B − A of a language's mean over its pairs. Blue: B aligns that language better at "
           "that layer; red: worse; white: no change (the colour scale is symmetric around 0)."),
    ("code", 'diff_layers_fig = plot_difference_heatmap(run_a, run_b, METRIC, view="layer_language")\n'
             "diff_layers_fig"),
    ("md", "## Which pairs change, at one layer\n\nB − A for each source (row) and target (column) language."),
    ("code", 'diff_pairs_fig = plot_difference_heatmap(run_a, run_b, METRIC, view="pairs", layer=LAYER)\n'
             "diff_pairs_fig"),
    ("code", "if FIGURES_DIR:\n"
             "    figures = {\n"
             '        "compare_curves.png": curves_fig,\n'
             '        "compare_curves_relative.png": relative_fig,\n'
             '        "difference_layer_language.png": diff_layers_fig,\n'
             '        "difference_pairs.png": diff_pairs_fig,\n'
             "    }\n"
             "    for name, fig in figures.items():\n"
             "        print(save_figure(fig, Path(FIGURES_DIR) / name))"),
]

NOTEBOOKS = {"layer_heatmaps.ipynb": LAYER_HEATMAPS, "compare_runs.ipynb": COMPARE_RUNS}


def build_notebook(cells: list[tuple[str, str]]) -> NotebookNode:
    """A notebook with the given (kind, source) cells, no outputs, the python3 kernel."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    }
    for i, (kind, source) in enumerate(cells):
        cell = nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source)
        cell.id = f"cell-{i:02d}"  # stable ids, so regenerating does not churn the diff
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def main() -> None:
    """Write every notebook next to this script."""
    for name, cells in NOTEBOOKS.items():
        nbformat.write(build_notebook(cells), HERE / name)
        logger.info("wrote %s", HERE / name)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
