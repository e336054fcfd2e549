"""Benchmark: loading the bundled UDHR corpus, every language, as `midalign-analyze --langs all` does.

Run: python analysis/bench_loading.py [--sample 20]
Writes analysis/benchmarks/loading.csv. `load_parallel` reads a local corpus's declared parquet files directly;
the reference is what it did before, `datasets.load_dataset` per language (timed on a sample of languages, since
all 442 take minutes), measured in the same run. The two must yield the same ids and texts.
"""

from __future__ import annotations

import argparse
import logging
import platform
import tempfile
import time
from pathlib import Path

import datasets
import pandas as pd

from midalign.corpora.parallel import available_languages, load_parallel, resolve_source

logger = logging.getLogger("bench_loading")
OUT = Path(__file__).parent / "benchmarks" / "loading.csv"  # --out overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=20, help="languages loaded the datasets way for the reference")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    datasets.disable_progress_bars()

    start = time.perf_counter()
    corpus = load_parallel("udhr", None)
    ours = time.perf_counter() - start
    languages = corpus.languages
    logger.info("load_parallel: %d languages x %d sentences in %.2f s", len(languages), len(corpus.ids), ours)

    sample = available_languages("udhr")[:: max(1, len(languages) // args.sample)][: args.sample]
    path = resolve_source("udhr")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache_dir:  # a fresh cache, as the old loader used per run
        for language in sample:
            rows = datasets.load_dataset(path, language, split=corpus.split, cache_dir=cache_dir)
            by_id = dict(zip(map(str, rows["id"]), rows["text"], strict=True))
            if [by_id[i] for i in corpus.ids] != corpus.sentences[language]:
                raise SystemExit(f"{language}: the two loaders disagree")
    reference_per_language = (time.perf_counter() - start) / len(sample)
    table = pd.DataFrame(
        [
            {
                "cpu": platform.processor() or platform.machine(),
                "languages": len(languages),
                "sentences": len(corpus.ids),
                "load_all_s": round(ours, 3),
                "per_language_ms": round(1000 * ours / len(languages), 2),
                "datasets_per_language_ms": round(1000 * reference_per_language, 1),
                "datasets_sample": len(sample),
                "datasets_all_estimate_s": round(reference_per_language * len(languages), 1),
                "speedup": round(reference_per_language * len(languages) / ours, 1),
            }
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    logger.info("%s\nwrote %s", table.T.to_string(header=False), args.out)


if __name__ == "__main__":
    main()
