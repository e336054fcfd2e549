"""An independent check of midalign's `mexa` values: recompute MEXA from the cached states the way MEXA's own code
does, and compare with the run's pairs.parquet.

MEXA's repository (cisnlp/Mexa, compute_mexa.py) builds, per layer, the pivot x language cosine matrix one pair at
a time with scipy's cosine distance (1 - distance), then counts the sentences i whose diagonal entry is strictly
greater than the maximum of row i without entry i and of column i without entry i. This script does the same in
plain numpy/scipy loops, sharing no code with midalign.analysis.metrics; it reads the cache's .npy files directly.

    python analysis/mexa_check.py analysis/gemma-3-270m_udhr --cache-dir /work/cache-udhr48
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.distance import cosine

from midalign.models.cache import run_states  # where the states are; no metric code

logger = logging.getLogger("mexa_check")


def mexa_score(matrix: np.ndarray) -> float:
    """MEXA's count: diagonal strictly above the rest of its row and of its column, over the number of rows."""
    n = len(matrix)
    count = 0
    for i in range(n):
        diagonal = matrix[i, i]
        if diagonal > np.max(np.delete(matrix[i, :], i)) and diagonal > np.max(np.delete(matrix[:, i], i)):
            count += 1
    return count / n


def similarity_matrix(pivot: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Pivot sentence p (rows) against language sentence l (columns), cosine similarity as 1 - cosine distance."""
    out = np.zeros((len(pivot), len(other)))
    for p, pivot_vector in enumerate(pivot):
        for q, other_vector in enumerate(other):
            out[p, q] = 1.0 - cosine(pivot_vector, other_vector)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a midalign-analyze output folder with mexa rows in pairs.parquet")
    parser.add_argument("--cache-dir", type=Path, help="its state cache (default: the one config.json names)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config, cache = run_states(args.run, args.cache_dir)
    resolved = config["resolved"]
    if config.get("center"):
        raise SystemExit("this check recomputes MEXA on raw states; the run used --center")
    pivot, languages = resolved["pivot"], resolved["languages"]
    states = {}
    for lang in languages:
        manifest = json.loads((cache / f"{lang}.json").read_text())
        if manifest["model"] != resolved["model_identity"]:
            raise SystemExit(f"{cache / lang}.npy holds another model's states ({manifest['model']})")
        states[lang] = np.load(cache / f"{lang}.npy")
    ours = pd.read_parquet(args.run / "pairs.parquet", filters=[("metric", "==", "mexa")])
    ours = ours.set_index(["layer", "src"])["value"]
    differences = []
    for layer in range(states[pivot].shape[1]):
        for lang in languages:
            if lang == pivot:
                continue
            theirs = mexa_score(similarity_matrix(states[pivot][:, layer], states[lang][:, layer]))
            differences.append((layer, lang, theirs, float(ours.loc[(layer, lang)])))
    table = pd.DataFrame(differences, columns=["layer", "lang", "mexa_reference", "mexa_midalign"])
    table["abs_diff"] = (table["mexa_reference"] - table["mexa_midalign"]).abs()
    worst = table.sort_values("abs_diff", ascending=False).head(5)
    logger.info("%d (layer, language) values against %s", len(table), pivot)
    logger.info("max |reference - midalign| = %.6g; values that differ: %d", table["abs_diff"].max(),
                int((table["abs_diff"] > 1e-9).sum()))  # fmt: skip
    logger.info("largest differences:\n%s", worst.to_string(index=False))
    for row in table[table["abs_diff"] > 1e-6].itertuples():  # a whole sentence flipped: how close was it?
        sim = similarity_matrix(states[pivot][:, row.layer], states[row.lang][:, row.layer])
        margins = [
            min(sim[i, i] - np.max(np.delete(sim[i, :], i)), sim[i, i] - np.max(np.delete(sim[:, i], i)))
            for i in range(len(sim))
        ]
        closest = int(np.argmin(np.abs(margins)))
        logger.info(
            "layer %d %s: sentence %d's cosine with its translation minus its strongest competitor is %.3g (float64, "
            "scipy); cosines there range %.4f..%.4f",
            row.layer, row.lang, closest, margins[closest], sim.min(), sim.max(),
        )  # fmt: skip
    best = table.groupby("layer")["mexa_reference"].mean()
    logger.info("reference mean MEXA per layer:\n%s", best.round(3).to_string())


if __name__ == "__main__":
    main()
