"""`midalign-analyze`: where do a model's languages align? Cache states, score every pair at every layer, pick one."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
import torch

from midalign.cache import StateCache
from midalign.cli import parse_config, prepare_output_dir, run_main, write_config
from midalign.data import load_parallel
from midalign.errors import MidalignError
from midalign.extract import extract_corpus
from midalign.languages import PRESETS, language_info
from midalign.metrics import all_layer_metrics
from midalign.representations import POOLINGS, Pooling, num_layers
from midalign.select import select_layer
from midalign.tables import layer_summary, pairs_frame, per_language_frame

logger = logging.getLogger(__name__)

# Above this many rows the tidy pair table is written as parquet only (442 languages: ~15M rows, ~0.6 GB of CSV).
CSV_ROW_LIMIT = 3_000_000
# A finished run's results. A new run into the same folder removes them before writing its config.json, so that an
# interrupted run never leaves its config beside another run's results (load_run and midalign-train's reuse of a
# finished analysis trust config.json and selection.json to describe one run).
RESULT_FILES = ("selection.json", "pairs.parquet", "pairs.csv", "per_language.csv", "layers.csv", "languages.csv")


@dataclass
class AnalyzeConfig:
    """Cache per-layer pooled hidden states of parallel sentences, score every directed language pair at every
    layer (retrieval accuracy, margin retrieval, cosine alignment) and pick the layer where languages align best.
    Layer 0 is the embedding output, layer i the residual stream after block i."""

    model: str | None = field(
        default=None, metadata={"help": "Hub id or local HF folder; default: the embedded gemma-3-270m (offline)."}
    )
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit)."})
    langs: list[str] = field(
        default_factory=lambda: ["udhr48"],
        metadata={
            "help": "Language codes or aliases (eng_Latn, de, zh-Hant), a preset ("
            + ", ".join(PRESETS)
            + "), or 'all' for every language of the corpus."
        },
    )
    dataset: str = field(
        default="udhr",
        metadata={"help": "udhr (bundled), a local FLORES+-layout folder, or a hub id (openlanguagedata/flores_plus)."},
    )
    split: str | None = field(
        default=None, metadata={"help": "Split; default: devtest for FLORES+, train (its only one) for UDHR."}
    )
    max_sentences: int | None = field(default=None, metadata={"help": "Use only the first N parallel sentences."})
    batch_size: int = field(default=32, metadata={"help": "Sentences per forward (does not change the numbers)."})
    max_length: int = field(default=512, metadata={"help": "Truncate sentences to this many tokens (with a warning)."})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N or mps."})
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = field(
        default="auto", metadata={"help": "Model dtype; auto = bf16 on a capable GPU, else fp32."}
    )
    pooling: Pooling = field(
        default="mean",
        metadata={"help": "mean = masked mean over all real tokens incl. special ones (the paper's); see README."},
    )
    center: bool = field(default=False, metadata={"help": "Subtract each language's mean vector before scoring."})
    margin_k: int = field(default=4, metadata={"help": "Neighbours k of the ratio-margin retrieval (LASER: 4)."})
    select_metric: Literal["retrieval_acc", "margin_retrieval_acc", "cosine", "cosine_gap"] = field(
        default="retrieval_acc", metadata={"help": "Metric whose mean over pairs picks the layer."}
    )
    out: str = field(default="runs/analyze", metadata={"help": "Output directory."})
    cache_dir: str | None = field(
        default=None, metadata={"help": "Hidden-state cache; default OUT/cache. Share it between runs to reuse."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Recompute cached states instead of reusing them."})
    figures: bool = field(default=True, metadata={"help": "Draw the PNG figures (--figures false to skip)."})

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise MidalignError(f"unknown pooling {self.pooling!r}; choose from {', '.join(POOLINGS)}")
        for name in ("batch_size", "max_length", "margin_k"):
            if getattr(self, name) < 1:
                raise MidalignError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_sentences is not None and self.max_sentences < 2:
            raise MidalignError("--max-sentences must be at least 2: retrieval needs candidates to choose from")
        if not self.langs:
            raise MidalignError("--langs is empty")


def requested_languages(langs: Sequence[str], dataset: str, split: str | None) -> list[str] | None:
    """Expand presets and 'all' (None = every language of the corpus)."""
    if list(langs) == ["all"]:
        return None
    expanded: list[str] = []
    for lang in langs:
        expanded.extend(PRESETS.get(lang, [lang]))
    return expanded


def _metrics_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def write_tables(out: Path, matrices: dict, languages: list[str], layers: list[int], n_sentences: int) -> pd.DataFrame:
    """Write pairs, per-language, per-layer and language tables; return the pair table."""
    info = pd.DataFrame([vars(language_info(lang)) for lang in languages]).assign(n_sentences=n_sentences)
    info.to_csv(out / "languages.csv", index=False)
    pairs = pairs_frame(matrices, languages, layers)
    pairs.to_parquet(out / "pairs.parquet", index=False)
    if len(pairs) <= CSV_ROW_LIMIT:
        pairs.to_csv(out / "pairs.csv", index=False, float_format="%.6g")
    else:
        logger.info("pairs: %d rows, written as pairs.parquet only", len(pairs))
        (out / "pairs.csv").unlink(missing_ok=True)
    per_language = per_language_frame(matrices, languages, layers)
    per_language.to_csv(out / "per_language.csv", index=False, float_format="%.6g")
    layer_summary(pairs, per_language, info).to_csv(out / "layers.csv", index=False, float_format="%.6g")
    return pairs


def run(config: AnalyzeConfig) -> dict:
    """Run the whole analysis into `config.out`; return the selection."""
    from midalign.models import clamp_max_length, load_model, model_identity

    started = time.perf_counter()
    out = prepare_output_dir(config.out)
    cache = StateCache(Path(config.cache_dir) if config.cache_dir else out / "cache")  # fails before long work
    wanted = requested_languages(config.langs, config.dataset, config.split)
    corpus = load_parallel(config.dataset, wanted, config.split, config.max_sentences)
    languages = corpus.languages
    if len(languages) < 2:
        raise MidalignError("at least two languages are needed to compare")
    model, tokenizer = load_model(config.model, dtype=config.dtype, device=config.device, revision=config.revision)
    max_length = clamp_max_length(config.max_length, model)  # what the cache key records: it changes the numbers
    identity = model_identity(model)
    n_layers = num_layers(model)
    dtype_name = str(next(model.parameters()).dtype).removeprefix("torch.")
    for name in RESULT_FILES:
        (out / name).unlink(missing_ok=True)
    for figure in (out / "figures").glob("*.png"):  # figures of the earlier run would outlive it otherwise
        figure.unlink()
    write_config(
        out,
        config,
        model_identity=identity,
        languages=languages,
        split=corpus.split,
        n_sentences=len(corpus.ids),
        max_length=max_length,
        n_layers=n_layers,
        dtype=dtype_name,
        device=str(next(model.parameters()).device),
        cache_dir=str(cache.root),
        n_directed_pairs=len(languages) * (len(languages) - 1),
    )
    states = extract_corpus(
        model,
        tokenizer,
        corpus,
        cache,
        identity,
        dtype_name,
        config.pooling,
        max_length,
        config.batch_size,
        config.overwrite,
    )
    del model  # the metrics need the memory more than the model now
    layers = list(range(n_layers + 1))
    metric_start = time.perf_counter()
    matrices = all_layer_metrics(
        states, languages, layers, config.margin_k, config.center, _metrics_device(config.device)
    )
    logger.info(
        "metrics for %d directed pairs x %d layers in %.1f s",
        len(languages) * (len(languages) - 1),
        len(layers),
        time.perf_counter() - metric_start,
    )
    write_tables(out, matrices, languages, layers, len(corpus.ids))
    selection = select_layer(matrices, layers, n_layers, config.select_metric)
    selection.update(model=identity, dataset=config.dataset, split=corpus.split, pooling=config.pooling)
    selection["languages"] = languages
    (out / "selection.json").write_text(json.dumps(selection, indent=2) + "\n")
    runner = selection["runner_up"]
    logger.info(
        "selected layer %d of %d (mean %s %.3f; runner-up %s)",
        selection["layer"],
        n_layers,
        config.select_metric,
        selection["score"],
        "none" if runner is None else f"layer {runner['layer']} at {runner['score']:.3f}",
    )
    if config.figures:
        from midalign.plots import save_run_figures
        from midalign.runs import load_run

        paths = save_run_figures(load_run(out), out / "figures")
        logger.info("figures: %s", ", ".join(str(path) for path in paths))
    logger.info("done in %.1f s; results in %s", time.perf_counter() - started, out)
    return selection


def _main(argv: Sequence[str] | None) -> None:
    run(parse_config(AnalyzeConfig, argv, prog="midalign-analyze"))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of `midalign-analyze`."""
    return run_main(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
