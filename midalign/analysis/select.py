"""Layer selection: the layer where languages align best, by a documented rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# What the mean is over, by --pairs (a pivot metric such as mexa is always over every language against the pivot).
OVER = {
    "all": "all directed language pairs (mexa: over every language against the pivot)",
    "pivot": "every language's pairs with the pivot, both directions (mexa: every language against the pivot)",
}
RULE = (
    "argmax over blocks 1..L-1 of the mean {metric} over {over}; "
    "the embeddings (0) and the last block (L) are excluded because the alignment loss needs a hidden layer "
    "below the output; ties go to the lower (cheaper) layer"
)


def select_layer(
    matrices: Mapping[str, np.ndarray],
    layers: Sequence[int],
    n_blocks: int,
    metric: str = "retrieval_acc",
    pairs: str = "all",
) -> dict:
    """Pick the layer with the best mean `metric` (matrices are [len(layers), n_langs, n_langs]) and explain it.

    The means are over the defined (non-NaN) pairs, so a --pairs pivot run picks from the pivot's pairs alone."""
    values = matrices[metric]
    off_diagonal = ~np.eye(values.shape[1], dtype=bool)

    def mean(matrix: np.ndarray) -> float:
        # Over the defined pairs: a pivot metric is NaN outside the pivot column, and cka is NaN at a layer where
        # the pivot's states are all equal (last-token pooling at the embeddings: every sentence ends in ".").
        defined = matrix[off_diagonal][~np.isnan(matrix[off_diagonal])]
        return float(defined.mean()) if defined.size else float("nan")

    def best_layer(matrix: np.ndarray) -> int | None:
        means = np.array([mean(m) for m in matrix])
        return None if np.isnan(means).all() else int(layers[int(np.nanargmax(means))])

    curve = {int(layer): mean(values[i]) for i, layer in enumerate(layers)}
    candidates = [layer for layer in curve if 1 <= layer <= n_blocks - 1] or list(curve)
    # Stable sort on -score keeps the lower layer first among ties.
    ranked = sorted(sorted(candidates), key=lambda layer: -curve[layer])
    best = ranked[0]
    runner_up = ranked[1] if len(ranked) > 1 else None
    return {
        "layer": best,
        "metric": metric,
        "score": curve[best],
        "runner_up": None if runner_up is None else {"layer": runner_up, "score": curve[runner_up]},
        "rule": RULE.format(metric=metric, over=OVER[pairs]),
        "n_blocks": n_blocks,
        "curve": {str(layer): score for layer, score in curve.items()},
        "best_by_metric": {name: best_layer(matrix) for name, matrix in matrices.items()},
    }
