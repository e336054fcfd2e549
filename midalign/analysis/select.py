"""Layer selection: the layer where languages align best, by a documented rule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

RULE = (
    "argmax over blocks 1..L-1 of the mean {metric} over all directed language pairs; "
    "the embeddings (0) and the last block (L) are excluded because the alignment loss needs a hidden layer "
    "below the output; ties go to the lower (cheaper) layer"
)


def select_layer(
    matrices: Mapping[str, np.ndarray], layers: Sequence[int], n_blocks: int, metric: str = "retrieval_acc"
) -> dict:
    """Pick the layer with the best mean `metric` (matrices are [len(layers), n_langs, n_langs]) and explain it."""
    values = matrices[metric]
    off_diagonal = ~np.eye(values.shape[1], dtype=bool)
    curve = {int(layer): float(values[i][off_diagonal].mean()) for i, layer in enumerate(layers)}
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
        "rule": RULE.format(metric=metric),
        "n_blocks": n_blocks,
        "curve": {str(layer): score for layer, score in curve.items()},
        "best_by_metric": {
            name: int(layers[int(np.argmax([m[off_diagonal].mean() for m in matrix]))])
            for name, matrix in matrices.items()
        },
    }
