"""Cost and convergence of midalign's language-identity probe on a finished run's cached states.

Fits the probe (`midalign.analysis.probe.language_probe`) on every layer with its default `max_iter` and with a
far larger one (as good as converged), and reports the time of each and the largest difference in held-out
accuracy, overall and per language, so that the default's early stop is shown not to change the answer.

    OMP_NUM_THREADS=1 python analysis/bench_probe.py analysis/gemma-3-270m_udhr --cache-dir runs/cache-gemma-udhr

How the cost grows with the number of languages (the first N languages of a larger run, some layers):

    OMP_NUM_THREADS=1 python analysis/bench_probe.py analysis/gemma-3-270m_udhr_all \
        --cache-dir runs/cache-gemma-udhr-bf16 --first 40 80 --layers 11
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from midalign.analysis.probe import MAX_ITER, OVERALL, language_probe
from midalign.models.cache import run_states

logger = logging.getLogger("bench_probe")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a midalign-analyze output folder")
    parser.add_argument("--cache-dir", type=Path, help="its state cache (default: the one config.json names)")
    parser.add_argument("--reference-iter", type=int, default=1000, help="max_iter of the near-converged fit")
    parser.add_argument("--first", type=int, nargs="+", help="time the first N languages only, for each N given")
    parser.add_argument("--layers", type=int, nargs="+", help="these layers only (default: all)")
    parser.add_argument("--max-iter", type=int, nargs="+", default=[MAX_ITER], help="with --first: each of these")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config, cache = run_states(args.run, args.cache_dir)
    resolved = config["resolved"]
    languages = resolved["languages"]
    if args.first:
        for count in args.first:
            subset = languages[:count]
            states = {lang: np.load(cache / f"{lang}.npy", mmap_mode="r") for lang in subset}
            layers = args.layers or list(range(states[subset[0]].shape[1]))
            for max_iter in args.max_iter:
                started = time.perf_counter()
                table = language_probe(states, subset, layers, max_iter=max_iter)
                overall = table[table["lang"] == OVERALL].set_index("layer")["accuracy"]
                seconds = time.perf_counter() - started
                logger.info(
                    "first %d languages, layers %s, max_iter %d: %.1f s (%.1f s per layer of 5 fits); accuracy %s",
                    count, layers, max_iter, seconds, seconds / len(layers), overall.round(4).to_dict(),
                )  # fmt: skip
        return
    states = {lang: np.load(cache / f"{lang}.npy", mmap_mode="r") for lang in languages}
    layers = args.layers or list(range(states[languages[0]].shape[1]))
    tables = {}
    for max_iter in (MAX_ITER, args.reference_iter):
        started = time.perf_counter()
        tables[max_iter] = language_probe(states, languages, layers, max_iter=max_iter).set_index(["layer", "lang"])
        logger.info("max_iter %d: %.1f s", max_iter, time.perf_counter() - started)
    default, reference = tables[MAX_ITER]["accuracy"], tables[args.reference_iter]["accuracy"]
    overall = default.xs(OVERALL, level="lang")
    logger.info(
        "max |accuracy difference|: overall %.4f, per language %.4f",
        (overall - reference.xs(OVERALL, level="lang")).abs().max(),
        (default - reference).abs().max(),
    )
    logger.info("overall held-out accuracy per layer (max_iter %d):\n%s", MAX_ITER, overall.round(4).to_string())


if __name__ == "__main__":
    main()
