"""`midalign-analyze`: where do a model's languages align? Cache states, score every pair at every layer, pick one."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch

from midalign import distributed
from midalign.analysis.anisotropy import anisotropy_layers
from midalign.analysis.metrics import all_layer_metrics
from midalign.analysis.select import select_layer
from midalign.analysis.tables import ANISOTROPY_FILE, layer_summary, pairs_frame, per_language_frame
from midalign.cli import prepare_output_dir
from midalign.corpora.languages import PRESETS, UnknownLanguageError, language_info, resolve_language
from midalign.corpora.parallel import load_parallel
from midalign.errors import MidalignError
from midalign.models.cache import StateCache
from midalign.models.extract import cache_keys, extract_corpus
from midalign.models.representations import num_blocks
from midalign.options import METRICS, PIVOT_METRICS, AnalyzeConfig
from midalign.records import AnalysisRecord

logger = logging.getLogger(__name__)

# Above this many rows the tidy pair table is written as parquet only (442 languages: ~15M rows, ~0.6 GB of CSV).
CSV_ROW_LIMIT = 3_000_000
# A finished run's results. A new run into the same folder removes them before writing its config.json, so that an
# interrupted run never leaves its config beside another run's results (load_run and midalign-train's reuse of a
# finished analysis trust config.json and selection.json to describe one run).
RESULT_FILES = (
    "selection.json", "pairs.parquet", "pairs.csv", "per_language.csv", "layers.csv", "languages.csv", "probe.csv",
    "report.html", ANISOTROPY_FILE,
)  # fmt: skip


class PhaseTimer:
    """Wall seconds of each phase of a run, in order: `with timer("tables"): ...`. The record keeps them, so a slow
    phase at scale (writing 15 M pair rows, drawing 442-language heatmaps) shows without a profiler."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = round(self.seconds.get(phase, 0.0) + time.perf_counter() - start, 2)

    def summary(self) -> str:
        return ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in self.seconds.items())


def list_languages(config: AnalyzeConfig) -> pd.DataFrame:
    """--list-langs: the corpus's languages as a table on stdout (the command's output, not a log line)."""
    from midalign.corpora.parallel import language_table

    table = language_table(config.dataset, config.split)
    sys.stdout.write(table.fillna("").to_string(index=False) + "\n")
    return table


def requested_languages(langs: Sequence[str], dataset: str, split: str | None) -> list[str] | None:
    """Expand presets and 'all' (None = every language of the corpus)."""
    if list(langs) == ["all"]:
        return None
    expanded: list[str] = []
    for lang in langs:
        expanded.extend(PRESETS.get(lang, [lang]))
    return expanded


def _resolve_device(device: str) -> torch.device:
    from midalign.models.loading import resolve_device  # models imports transformers: only once work starts

    return resolve_device(device)


def resolve_metrics(config: AnalyzeConfig, languages: Sequence[str]) -> tuple[list[str], str | None]:
    """The metrics to compute and the pivot's code among `languages` (None when no pivot metric is computed).

    By default the pivot metrics are skipped, with a warning, when the pivot is not analysed; named in --metrics,
    or picking the layer, they make it an error before any long work."""
    explicit = config.metrics is not None
    metrics = [name for name in METRICS if name in (config.metrics if explicit else METRICS)]
    if config.pairs == "pivot":  # every pair metric needs the pivot then
        return metrics, _pivot_of_pairs(config, languages)
    pivot_metrics = [name for name in metrics if name in PIVOT_METRICS]
    if not pivot_metrics:
        return metrics, None
    try:
        return metrics, resolve_language(config.english, languages)
    except UnknownLanguageError as error:
        if explicit or config.select_metric in PIVOT_METRICS:
            raise MidalignError(
                f"{', '.join(pivot_metrics)} compare every language with the pivot --english {config.english}, "
                f"which is not among the analysed languages ({error}); add it to --langs or choose other --metrics"
            ) from error
        logger.warning(
            "the pivot --english %s is not among the analysed languages: %s not computed",
            config.english,
            " and ".join(pivot_metrics),
        )
        return [name for name in metrics if name not in PIVOT_METRICS], None


def _pivot_of_pairs(config: AnalyzeConfig, languages: Sequence[str]) -> str:
    """The pivot's code for --pairs pivot, which scores every language against it: an error before any long work
    when it is not among the languages."""
    try:
        return resolve_language(config.english, languages)
    except UnknownLanguageError as error:
        raise MidalignError(
            f"--pairs pivot scores every language against the pivot --english {config.english}, which is not among "
            f"the analysed languages ({error}); add it to --langs or use --pairs all"
        ) from error


def directed_pairs(n_langs: int, pairs: str) -> int:
    """How many directed pairs the pair metrics score: n (n - 1), or 2 (n - 1) with --pairs pivot."""
    return n_langs * (n_langs - 1) if pairs == "all" else 2 * (n_langs - 1)


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


def _process_device(config: AnalyzeConfig, state) -> str:
    """The device this process loads the model on: under a multi-process launch, the launcher's one per process."""
    if state.num_processes == 1:
        return config.device
    if config.device_map is not None:
        raise MidalignError(
            "--device-map spreads one model over every GPU and so runs as one process; launch several processes "
            "only for models that fit on one GPU each"
        )
    if config.device not in ("auto", state.device.type):
        raise MidalignError(
            f"--device {config.device} under a {state.num_processes}-process launch: each process takes its own "
            f"device ({state.device.type}); use --device auto"
        )
    return "cpu" if state.device.type == "cpu" else str(state.device)  # gloo's processes all use "cpu"


def run(config: AnalyzeConfig) -> dict:
    """Run the whole analysis into `config.out`; return the selection.

    Under a multi-process launch (`accelerate launch`, `torchrun`) every process extracts its share of the
    languages into the shared cache (`midalign.models.shard`); the main process then scores and writes every result,
    and the others return the selection it wrote."""
    from midalign.models.loading import clamp_max_length, extraction_dtype, load_model, model_identity

    started = time.perf_counter()
    state = distributed.process_state(config.device)
    device = _process_device(config, state)
    out = prepare_output_dir(config.out)
    _check_output(out, config)  # before any long work
    cache = StateCache(config.cache_dir)  # the shared cache unless given; fails before long work
    wanted = requested_languages(config.langs, config.dataset, config.split)
    corpus = load_parallel(config.dataset, wanted, config.split, config.max_sentences)
    languages = corpus.languages
    if len(languages) < 2:
        raise MidalignError("at least two languages are needed to compare")
    metrics, pivot = resolve_metrics(config, languages)
    dtype, dtype_choice = extraction_dtype(config.dtype, device)
    logger.info("precision: %s (%s)", dtype, dtype_choice)
    model, tokenizer = load_model(
        config.model, dtype=dtype, device=device, revision=config.revision, device_map=config.device_map
    )
    max_length = clamp_max_length(config.max_length, model)  # what the cache key records: it changes the numbers
    identity = model_identity(model)
    n_blocks = num_blocks(model)
    dtype_name = str(next(model.parameters()).dtype).removeprefix("torch.")
    if state.is_main_process:
        for name in RESULT_FILES:
            (out / name).unlink(missing_ok=True)
        for figure in (out / "figures").glob("*.png"):  # figures of the earlier run would outlive it otherwise
            figure.unlink()
        record = AnalysisRecord.create(
            config,
            model_identity=identity,
            languages=languages,
            split=corpus.split,
            n_sentences=len(corpus.ids),
            max_length=max_length,
            n_blocks=n_blocks,
            dtype=dtype_name,
            dtype_choice=dtype_choice,
            device=str(next(model.parameters()).device),
            device_map=_device_map_summary(model),
            num_processes=state.num_processes,
            cache_dir=str(cache.root),
            n_directed_pairs=directed_pairs(len(languages), config.pairs),
            metrics=metrics,
            pivot=pivot,
        )
        record.save(out)
    recompute = config.recompute
    if state.num_processes > 1:
        from midalign.models.shard import extract_sharded

        keys = cache_keys(corpus, identity, dtype_name, config.pooling, max_length)
        extract_sharded(
            state,
            model,
            tokenizer,
            corpus,
            cache,
            keys,
            config.pooling,
            max_length,
            config.batch_size,
            recompute,
            compile_forward=config.compile,
        )
        recompute = False  # every entry was just written; the main process reads them back below
        if not state.is_main_process:
            del model
            distributed.barrier(state)  # the main process scores and writes the results
            if not (out / "selection.json").is_file():
                raise MidalignError("the main process stopped before writing selection.json; its log says why")
            return json.loads((out / "selection.json").read_text())
    timer = PhaseTimer()
    try:
        with timer("extract"):
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
                recompute,
                compile_forward=config.compile,
            )
        del model  # the metrics need the memory more than the model now
        # Only the main process gets here (the others returned above), and it made `record`.
        return _score_and_write(config, out, states, corpus, record, started, timer)
    finally:
        # Reached also when the main process fails, so that the others stop now rather than at the timeout (they
        # then find no selection.json and say so).
        distributed.barrier(state)


# Options that change an analysis's numbers: a finished analysis in OUT made with others is only replaced with
# --overwrite (the same settings rerun in place, reusing the cache).
# --probe is not one: it adds probe.csv without changing any other number, so a rerun in place may add it.
NUMBER_OPTIONS = ("model", "revision", "langs", "dataset", "split", "max_sentences", "max_length", "dtype", "pooling",
                  "center", "margin_k", "select_metric", "english", "metrics", "pairs")  # fmt: skip


def changed_options(out: Path, config: AnalyzeConfig) -> list[str] | None:
    """The options that change the numbers on which the finished analysis in `out` differs from `config` (empty:
    the same analysis); None when `out` holds no finished analysis with a readable record."""
    if not (out / "selection.json").is_file():
        return None
    try:
        earlier = AnalysisRecord.load(out)
    except MidalignError:
        return None  # no readable record beside it: an interrupted run
    return [name for name in NUMBER_OPTIONS if getattr(earlier.config, name) != getattr(config, name)]


def _check_output(out: Path, config: AnalyzeConfig) -> None:
    changed = None if config.overwrite else changed_options(out, config)
    if changed:
        raise MidalignError(
            f"{out} already holds an analysis with other settings ({', '.join(changed)}); pass --overwrite to "
            "replace it, or choose another --out"
        )


def _device_map_summary(model) -> dict[str, int] | None:
    """How many modules each device holds, for a model loaded with --device-map (else None)."""
    device_map = getattr(model, "hf_device_map", None)
    if not device_map:
        return None
    return dict(Counter(str(device) for device in device_map.values()))


def _score_and_write(
    config: AnalyzeConfig,
    out: Path,
    states: dict,
    corpus,
    record: AnalysisRecord,
    started: float,
    timer: PhaseTimer,
) -> dict:
    """Score every directed pair at every layer, pick the layer, write tables, selection, figures and report."""
    resolved = record.resolved  # what run() decided: model, depth, metrics and pivot
    identity, n_blocks, metrics, pivot = resolved.model_identity, resolved.n_blocks, resolved.metrics, resolved.pivot
    languages = corpus.languages
    layers = list(range(n_blocks + 1))
    device = _resolve_device(config.device)
    with timer("metrics"):
        matrices = all_layer_metrics(
            states, languages, layers, config.margin_k, config.center, device, metrics, pivot, config.pairs
        )
    logger.info(
        "%s for %d directed pairs%s x %d layers in %.1f s",
        ", ".join(metrics),
        directed_pairs(len(languages), config.pairs),
        f" (each language with the pivot {pivot})" if config.pairs == "pivot" else "",
        len(layers),
        timer.seconds["metrics"],
    )
    with timer("tables"):
        write_tables(out, matrices, languages, layers, len(corpus.ids))
    with timer("anisotropy"):  # cheap (one pass over the states per layer); says whether a raw cosine loss can learn
        table = anisotropy_layers(states, languages, layers)
        table.to_csv(out / ANISOTROPY_FILE, index=False, float_format="%.6g")
    if config.probe:
        from midalign.analysis.probe import language_probe  # scikit-learn: only when asked for

        with timer("probe"):
            language_probe(states, languages, layers).to_csv(out / "probe.csv", index=False, float_format="%.6g")
    selection = select_layer(matrices, layers, n_blocks, config.select_metric, config.pairs)
    selection.update(model=identity, dataset=config.dataset, split=corpus.split, pooling=config.pooling, pivot=pivot)
    selection["languages"] = languages
    (out / "selection.json").write_text(json.dumps(selection, indent=2) + "\n")
    runner = selection["runner_up"]
    at = table.set_index("layer").loc[selection["layer"]]
    logger.info(
        "anisotropy at layer %d: mean cosine %.4f between different sentences, %.4f between translations; dim %d "
        "holds %.1f%% of the squared norm, the top 5 %.1f%% (%s)",
        selection["layer"], at.cosine_nonparallel, at.cosine_parallel, at.top1_dim, 100 * at.top1_share,
        100 * at.top5_share, ANISOTROPY_FILE,
    )  # fmt: skip
    logger.info(
        "selected layer %d of %d (mean %s %.3f; runner-up %s)",
        selection["layer"],
        n_blocks,
        config.select_metric,
        selection["score"],
        "none" if runner is None else f"layer {runner['layer']} at {runner['score']:.3f}",
    )
    if config.figures:
        from midalign.analysis.runs import load_run
        from midalign.viz.plots import save_run_figures

        with timer("figures"):
            paths = save_run_figures(load_run(out), out / "figures")
        logger.info("figures: %s", ", ".join(str(path) for path in paths))
    if config.report:
        from midalign.viz.report import write_report  # plotly loads only when a report is written

        with timer("report"):
            write_report([out], out / "report.html")
    record.with_resolved(seconds=timer.seconds).save(out)  # the record this run saved at its start, completed
    logger.info("done in %.1f s (%s); results in %s", time.perf_counter() - started, timer.summary(), out)
    return selection
