"""`midalign-train`: LoRA fine-tuning with the middle-layer alignment objective at the automatically picked layer.

Layer convention: layer 0 is the embedding output, layer k the residual stream after decoder block k (HF's
`hidden_states[k]`); the alignment loss is applied at layer k and needs blocks 1..k only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from midalign import distributed
from midalign.cli import prepare_output_dir
from midalign.corpora.languages import resolve_language, resolve_languages
from midalign.corpora.pairs import (
    DEV_SPLIT,
    TEST_SPLIT,
    PairCorpus,
    corpus_digest,
    dev_pairs,
    first_pairs_by_hash,
    from_parallel,
    has_split,
    is_pair_source,
    read_pair_source,
)
from midalign.corpora.parallel import ParallelCorpus, available_languages, load_parallel
from midalign.errors import MidalignError
from midalign.models.representations import LayerOutOfRangeError, num_blocks
from midalign.options import DEFAULT_UNSEEN_LANGS, AnalyzeConfig, TrainConfig, default_lr
from midalign.records import RECORD_FILE, TrainingRecord
from midalign.training import data as train_data
from midalign.training import evaluation as train_eval
from midalign.training.spaces import SPACE_FILE, AlignmentSpace, SpaceStats

logger = logging.getLogger(__name__)

# Fields that may change between an interrupted run and its --resume without changing the numbers.
RESUME_FREE = {
    "resume", "overwrite", "out", "device", "save_every", "keep_checkpoints", "eval_batch_size", "eval", "cache_dir",
}  # fmt: skip
OUTPUTS = (
    SPACE_FILE, "checkpoints", "adapter", "best", "steps.csv", "dev.csv", "eval_before.csv", "eval_after.csv",
    "eval_hits.parquet", "eval_summary.csv", "eval_hits_centered.parquet", "eval_summary_centered.csv",
)  # fmt: skip


def _check_output(out: Path, config: TrainConfig, delete: bool = True) -> None:
    """Refuse to mix two runs in one folder; on --resume, refuse a changed config. With --overwrite, the earlier
    outputs are removed where `delete` (the main process of a multi-process launch; the others only check)."""
    earlier = [name for name in OUTPUTS if (out / name).exists()]
    if config.overwrite:
        for name in earlier if delete else []:
            shutil.rmtree(out / name) if (out / name).is_dir() else (out / name).unlink()
        return
    if config.resume:
        if (out / RECORD_FILE).exists():
            saved = TrainingRecord.load(out).config
            changed = [f.name for f in fields(config) if f.name not in RESUME_FREE
                       and getattr(saved, f.name) != getattr(config, f.name)]  # fmt: skip
            if changed:
                raise MidalignError(f"--resume with a changed config ({', '.join(changed)}); use the original values")
        return
    if earlier:
        raise MidalignError(f"{out} already holds a training run ({', '.join(earlier)}); pass --resume or --overwrite")


def _finished_analysis(folder: Path, wanted: AnalyzeConfig) -> bool:
    """Whether `folder` holds a finished analysis made with the settings that change its numbers."""
    from midalign.analysis.pipeline import changed_options

    return changed_options(folder, wanted) == []


def resolve_layer(
    config: TrainConfig, dataset: str, split: str, langs: list[str], out: Path
) -> tuple[int, str, str | None]:
    """(layer, how it was chosen, the analysed model's identity), running the analysis of `langs` (English first) on
    the multi-way corpus `dataset` first if needed."""
    if config.layer != "auto":
        return int(config.layer), "given (--layer)", None
    if config.analysis:
        path = Path(config.analysis) / "selection.json"
        source = f"selection.json of --analysis {config.analysis}"
    else:
        path = out / "analysis" / "selection.json"
        source = f"selection.json of the analysis this run made in {path.parent}"
        from midalign.analysis import pipeline as analyze

        wanted = AnalyzeConfig(
            model=config.model,
            revision=config.revision,
            langs=langs,
            dataset=dataset,
            split=split,
            max_sentences=config.max_sentences if dataset == config.align_data else None,
            max_length=config.eval_max_length,
            device=config.device,
            dtype=config.dtype,
            english=config.english,  # the pivot and the cache are the run's own, as with --analysis
            cache_dir=config.cache_dir,
            out=str(path.parent),
            figures=False,
            report=False,  # a by-product of picking the layer: like its figures, not worth the time
        )
        # Decided by the main process alone: under a multi-process launch every process must take the same branch.
        if distributed.broadcast(distributed.process_state(config.device), _finished_analysis(path.parent, wanted)):
            logger.info("reusing the analysis in %s", path.parent)
        else:
            logger.info("--layer auto without --analysis: analysing %d languages of %s first", len(langs), dataset)
            analyze.run(replace(wanted, overwrite=True))
    if not path.is_file():
        raise MidalignError(f"--layer auto: {path} not found; is {path.parent} a midalign-analyze output folder?")
    selection = json.loads(path.read_text())
    if "layer" not in selection:
        raise MidalignError(f"{path} has no 'layer' entry")
    pooling = selection.get("pooling", "mean")
    if pooling != "mean":
        logger.warning("the analysis picked its layer with %s pooling; the alignment loss uses mean pooling", pooling)
    how = f"{source} (layer {selection['layer']}, {selection.get('metric', 'n/a')})"
    return int(selection["layer"]), how, selection.get("model")


def check_layer(layer: int, n_blocks: int) -> None:
    """The alignment layer must be a block output 1..L (layer 0, the embeddings, has no LoRA weights below it)."""
    if not 1 <= layer <= n_blocks:
        raise LayerOutOfRangeError(f"--layer {layer} out of range: this model has {n_blocks} blocks, so 1..{n_blocks}")


@dataclass
class AlignmentData:
    """What a run aligns on and measures with: training pairs, dev pairs, and the evaluation corpus with groups."""

    train: PairCorpus
    dev: PairCorpus | None
    dev_source: str
    heldout_ids: list[str]
    evaluation: ParallelCorpus | None
    groups: dict[str, str]  # evaluated language -> aligned | unseen


def _eval_languages(config: TrainConfig, aligned: list[str], source: str) -> tuple[list[str], dict[str, str]]:
    """Evaluation languages of `source` (English first) and their groups; aligned languages it lacks are skipped."""
    available = available_languages(source)
    wanted = config.eval_langs or [*aligned, *[lang for lang in DEFAULT_UNSEEN_LANGS if lang not in aligned]]
    langs, groups = [resolve_language(config.english, available)], {}
    for alias in wanted:
        try:
            lang = resolve_language(alias, available)
        except MidalignError as error:
            if config.eval_langs:  # asked for by name: an error; from the defaults: a warning
                raise
            logger.warning("not evaluated: %s", error)
            continue
        if lang not in langs:
            langs.append(lang)
            groups[lang] = "aligned" if alias in aligned or lang in aligned else "unseen"
    return langs, groups


def load_alignment_data(config: TrainConfig) -> AlignmentData:
    """Training pairs, dev pairs (the pair corpus's dev split, or a multi-way corpus's held-out ids) and the
    evaluation corpus, per the config."""
    if is_pair_source(config.align_data):
        split = config.align_split or "train"
        if split in (DEV_SPLIT, TEST_SPLIT):  # dev chooses checkpoints, test evaluates: neither may be trained on
            raise MidalignError(f"--align-split {split}: a pair source trains on its train split")
        train = read_pair_source(config.align_data, config.align_langs, split, config.english)
        dev = None
        if has_split(config.align_data, train.languages[0], DEV_SPLIT):
            dev = dev_pairs(config.align_data, train.languages, config.english, config.dev_pairs)
        dev_source, heldout_ids, own_heldout = f"{config.align_data}/{DEV_SPLIT}", [], None
    else:
        available = available_languages(config.align_data)
        langs = resolve_languages([config.english, *config.align_langs], available)
        corpus = load_parallel(config.align_data, langs, config.align_split, config.max_sentences)
        train_rows, heldout_rows = train_data.heldout_split(corpus.ids, config.heldout_fraction)
        train = from_parallel(corpus, langs[0], train_rows)
        dev = None
        if len(heldout_rows) >= 2:  # the held-out sentences' first --dev-pairs by id hash, as dev_pairs does
            dev = first_pairs_by_hash(from_parallel(corpus, langs[0], heldout_rows), config.dev_pairs)
        heldout_ids = [corpus.ids[i] for i in heldout_rows]
        dev_source = f"{len(heldout_ids)} held-out sentences of {config.align_data}/{corpus.split}"
        own_heldout = corpus.select(heldout_rows) if dev is not None else None
    eval_source = config.eval_data or ("udhr" if own_heldout is None else "heldout")
    evaluation, groups = None, {}
    if config.eval and eval_source != "none":
        if eval_source == "heldout":
            if own_heldout is None:
                raise MidalignError("--eval-data heldout needs a multi-way --align-data")
            evaluation, groups = own_heldout, {lang: "aligned" for lang in train.languages}
        else:
            langs, groups = _eval_languages(config, train.languages, eval_source)
            evaluation = load_parallel(eval_source, langs, config.eval_split)
        if len(evaluation.ids) < 2:
            logger.warning("evaluation skipped: fewer than 2 evaluation sentences")
            evaluation, groups = None, {}
    return AlignmentData(train, dev, dev_source, heldout_ids, evaluation, groups)


def run(config: TrainConfig) -> TrainingRecord:
    """Train into `config.out`; return the run's record (also written to OUT/config.json)."""
    from accelerate.utils import set_seed

    from midalign.models.loading import clamp_max_length, load_model, model_identity, resolve_device, resolve_dtype
    from midalign.training.early_stopping import DevMonitor
    from midalign.training.trainer import Trainer, attach_lora, resolve_target_modules

    started = time.perf_counter()
    if config.lr is None:
        config = replace(config, lr=default_lr(has_task=bool(config.task_data)))
    state = distributed.process_state(config.device)  # one process, or this one of a multi-process launch
    main = state.is_main_process
    out = prepare_output_dir(config.out)
    _check_output(out, config, delete=main)
    distributed.barrier(state)
    data = load_alignment_data(config)
    english = config.english
    task = train_data.load_task_data(config.task_data, config.task_split) if config.task_data else None
    if data.evaluation is not None and data.evaluation.source != config.align_data:  # analyse where we evaluate
        layer_langs, layer_data, layer_split = data.evaluation.languages, data.evaluation.source, data.evaluation.split
        layer_langs = [layer_langs[0], *[lang for lang in layer_langs[1:] if data.groups.get(lang) == "aligned"]]
    else:
        layer_langs, layer_data, layer_split = [english, *data.train.languages], config.align_data, config.align_split
    layer, layer_source, analysed = resolve_layer(config, layer_data, layer_split, layer_langs, out)
    precision = "bf16" if str(resolve_dtype(config.dtype, config.device)) == "torch.bfloat16" else "fp32"
    # On a CPU, bf16 *weights* make a step ~15x slower than fp32 weights under bf16 autocast (gemma-3-270m task
    # micro-step: 68 s vs 4 s); autocast runs the matmuls in bf16 either way, so keep the weights fp32 there.
    weights = "fp32" if resolve_device(config.device).type == "cpu" else precision
    model, tokenizer = load_model(config.model, dtype=weights, device="cpu", revision=config.revision)
    n_blocks = num_blocks(model)
    check_layer(layer, n_blocks)
    task_max_length = clamp_max_length(config.task_max_length, model, "--task-max-length")
    align_max_length = clamp_max_length(config.align_max_length, model, "--align-max-length")
    eval_max_length = clamp_max_length(config.eval_max_length, model, "--eval-max-length")
    identity = model_identity(model)
    if analysed is not None and analysed != identity:
        logger.warning("the layer was picked by an analysis of %s, but this run trains %s", analysed, identity)
    pairs = train_data.build_pairs(data.train, config.pairs_per_language or None, config.seed, config.shuffle_pairs)
    space_languages = [english, *data.train.languages]  # rows of the space statistics; English first (position 0)
    pair_features, too_long = train_data.tokenize_pairs(tokenizer, pairs, align_max_length, space_languages)
    task_features = train_data.tokenize_task(tokenizer, task, task_max_length) if task else None
    targets = resolve_target_modules(model, config.target_modules)
    set_seed(config.seed)  # LoRA's A matrices are drawn here
    model = attach_lora(model, config.lora_r, config.lora_alpha, config.lora_dropout, targets)
    trainer = Trainer(config, model, tokenizer, layer, task_features, pair_features, out, precision)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    space, space_record, diagnostic = _alignment_space(
        config, data.train, space_languages, model, tokenizer, layer, align_max_length, trainer, out
    )
    trainer.use_space(space)
    resolved = {
        "layer": layer,
        "layer_source": layer_source,
        "n_blocks": n_blocks,
        "task_max_length": task_max_length,
        "align_max_length": align_max_length,
        "eval_max_length": eval_max_length,
        "model_identity": identity,
        "precision": precision,
        "device": str(trainer.accelerator.device),
        "english": english,
        "align_languages": data.train.languages,
        "align_split": data.train.split,
        "align_pairs_available": data.train.counts(),
        "align_pairs_too_long": too_long,
        "dev_source": data.dev_source if data.dev is not None else None,
        "dev_pairs": data.dev.counts() if data.dev is not None else {},
        "heldout_ids": data.heldout_ids,
        "eval_data": data.evaluation.source if data.evaluation is not None else None,
        "eval_split": data.evaluation.split if data.evaluation is not None else None,
        "eval_groups": data.groups,
        "n_align_pairs": len(pair_features),
        "n_task_examples": len(task_features) if task_features else 0,
        "task_languages": sorted({e.language for e in task if e.language}) if task else [],
        "target_modules": targets,
        "trainable_parameters": trainable,
        "micro_steps_per_epoch": trainer.micro_per_epoch,
        "micro_step_pattern": ["+".join(kinds) for kinds in trainer.kinds],
        "aligned": any("align" in kinds for kinds in trainer.kinds),
        "num_processes": state.num_processes,
        "effective_batch": config.task_batch_size * config.grad_accum * state.num_processes,
        "negatives": "gathered from every process" if trainer.gather_negatives else "per process (in-batch)",
        "total_steps": trainer.total_steps,
        "warmup_steps": trainer.warmup,
        "align_data_digest": corpus_digest(config.align_data),
        "align_space_stats": space_record,
        "anisotropy_at_layer": diagnostic,
    }
    if main:
        TrainingRecord.create(config, **resolved).save(out)
    logger.info(
        "layer %d of %d (%s); %d alignment pairs, %d task examples; %d steps of %s over %d process(es)",
        layer,
        n_blocks,
        layer_source,
        len(pair_features),
        resolved["n_task_examples"],
        trainer.total_steps,
        " / ".join(resolved["micro_step_pattern"]),
        state.num_processes,
    )
    evaluation = data.evaluation if main else None  # evaluated by the main process alone, on identical weights

    def evaluate(stage: str) -> dict[str, np.ndarray]:
        layers = list(range(n_blocks + 1))
        logger.info(
            "evaluating %s: %d languages x %d sentences of %s at every layer",
            stage, len(evaluation.languages), len(evaluation.ids), evaluation.source,
        )  # fmt: skip
        return train_eval.corpus_states(model, tokenizer, evaluation.sentences, layers, eval_max_length,
                                        config.eval_batch_size, autocast=trainer.autocast())  # fmt: skip

    before_hits: dict[str, pd.DataFrame] = {}  # by evaluation space: raw, and each language centred
    if evaluation is not None:
        if config.resume and all((out / hits).exists() for hits, _ in train_eval.EVAL_FILES.values()):
            for space_name, (hits, _) in train_eval.EVAL_FILES.items():
                table = pd.read_parquet(out / hits)
                before_hits[space_name] = table[table.stage == "before"]
        else:
            states = _cached_before(config, evaluation, model, tokenizer, identity, precision, eval_max_length,
                                    trainer.autocast())  # fmt: skip
            train_eval.write_eval(out, "eval_before.csv", train_eval.tidy_metrics(states, english, "before"))
            for space_name, (hits, _) in train_eval.EVAL_FILES.items():
                before_hits[space_name] = train_eval.hits_table(
                    states, english, evaluation.ids, "before", center=space_name == "centered"
                )
                train_eval.write_eval(out, hits, before_hits[space_name])
    monitor = None
    if data.dev is not None and config.eval_every > 0 and not task:  # dev retrieval says nothing of a task
        monitor = DevMonitor(
            score=lambda: train_eval.dev_scores(model, tokenizer, data.dev, layer, align_max_length,
                                                   config.eval_batch_size, trainer.autocast()),
            save=lambda step: _save_adapter(model, space, out / "best"),
            every=config.eval_every,
            patience=config.patience,
            last_step=trainer.total_steps,
            path=out / "dev.csv",
            state=state,
        )  # fmt: skip
        if config.resume:
            monitor.restore()
    distributed.barrier(state)
    steps = trainer.train(resume=config.resume, on_step=monitor)
    resolved.update(steps_done=steps)
    if monitor is not None:
        resolved.update(monitor.result())
        if main and monitor.best_step is not None:
            train_data.load_adapter_weights(model, out / "best")
    if not main:
        return TrainingRecord.create(config, **resolved)
    _save_adapter(model, space, out / "adapter")
    if before_hits:
        states = evaluate("after")
        train_eval.write_eval(out, "eval_after.csv", train_eval.tidy_metrics(states, english, "after"))
        for space_name, (hits_file, summary_file) in train_eval.EVAL_FILES.items():
            after = train_eval.hits_table(states, english, evaluation.ids, "after", center=space_name == "centered")
            hits = pd.concat([before_hits[space_name], after])
            train_eval.write_eval(out, hits_file, hits)
            summary = train_eval.summarize(hits, data.groups)
            train_eval.write_eval(out, summary_file, summary)
            if space_name == "raw":
                train_eval.log_summary(summary, layer)
            means = train_eval.group_means_at(summary, layer)
            key = "eval_retrieval_at_layer" if space_name == "raw" else f"eval_{space_name}_retrieval_at_layer"
            resolved[key] = {
                row.group: {"before": row.before, "after": row.after, "delta": row.delta,
                            "delta_95": [row.delta_low, row.delta_high]}
                for row in means.itertuples()
            }  # fmt: skip
    resolved.update(wall_seconds=round(time.perf_counter() - started, 1))
    record = TrainingRecord.create(config, **resolved)
    record.save(out)
    logger.info("done in %.1f s; adapter in %s", resolved["wall_seconds"], out / "adapter")
    return record


def _save_adapter(model, space: AlignmentSpace, folder: Path) -> None:
    """The peft adapter and, beside it, the alignment space statistics it was trained with."""
    model.save_pretrained(str(folder))
    space.stats.save(folder)


def _alignment_space(config, train, languages, model, tokenizer, layer, max_length, trainer, out):
    """The run's alignment space and what the record says of it: its statistics (estimated on the base model by the
    main process, or those of the run being resumed; every process then reads the same file) and the anisotropy
    at layer k, raw and in that space, of the statistics' sample (logged, with a warning when the loss is bound
    to start at chance)."""

    state = distributed.process_state(config.device)
    saved = out / SPACE_FILE
    resumed = config.resume and saved.exists()
    sample = states = None
    if state.is_main_process:
        sample = first_pairs_by_hash(train, config.space_sentences)
        states = _sample_states(sample, languages, model, tokenizer, layer, max_length, config, trainer)
        if not resumed:
            SpaceStats.estimate(states, layer).save(out)
    distributed.barrier(state)
    stats = SpaceStats.load(out)  # the file, in every process: one set of statistics for the whole run
    space = AlignmentSpace(config.align_space, stats, config.space_rank)
    record = {"file": SPACE_FILE, "sha256": hashlib.sha256(saved.read_bytes()).hexdigest(),
              "n_sentences": stats.n_sentences, "languages": stats.languages}  # fmt: skip
    diagnostic = _log_anisotropy(sample, states, languages, space, layer, config) if state.is_main_process else {}
    return space, record, diagnostic


def _sample_states(sample, languages, model, tokenizer, layer, max_length, config, trainer) -> dict:
    """Pooled states at layer k {lang: [N, H]} of the sample's X sides and (under languages[0]) their English sides,
    in the sample's first-seen order; before the first step the LoRA update is zero, so these are the base model's."""
    import torch

    english = sample.english_by_id()
    texts = {lang: pairs.texts for lang, pairs in sample.pairs.items()}
    texts[languages[0]] = list(english.values())
    found = train_eval.corpus_states(model, tokenizer, texts, [layer], max_length, config.eval_batch_size,
                                     autocast=trainer.autocast())  # fmt: skip
    return {lang: torch.from_numpy(found[lang][:, 0]) for lang in languages if lang in found}


def _log_anisotropy(sample, states, languages, space, layer, config) -> dict:
    """Anisotropy of the sample's translation pairs, raw and in `space`, as InfoNCE sees them; logged, and a warning
    when the loss is bound to start at chance."""
    import torch

    from midalign.analysis.anisotropy import pair_anisotropy

    english = sample.english_by_id()
    position = {sentence_id: i for i, sentence_id in enumerate(english)}
    x = torch.cat([states[lang] for lang in sample.languages])  # [N, H]
    en = torch.cat([states[languages[0]][[position[i] for i in sample.pairs[lang].ids]] for lang in sample.languages])
    langs = torch.tensor([languages.index(lang) for lang in sample.languages for _ in sample.pairs[lang].ids])
    with torch.no_grad():
        in_space = space.to(x.device)(x, en, langs, torch.zeros_like(langs))
    diagnostic = {}
    for name, (a, b) in {"raw": (x, en), config.align_space: in_space}.items():
        found = pair_anisotropy(a, b)
        diagnostic[name] = {**asdict(found), "top_dims": list(found.top_dims),
                            "logit_gap": found.logit_gap(config.temperature)}  # fmt: skip
        logger.info(
            "layer %d, %s space (%d sentences): mean norm %.4g, dim %d holds %.1f%% of the squared norm, top 5 %.1f%%; "
            "cosine of translations %.4f vs %.4f for other pairs: InfoNCE logit gap %.3f at T = %g",
            layer, name, found.n_sentences, found.mean_norm, found.top_dims[0], 100 * found.top1_share,
            100 * found.top5_share, found.cosine_parallel, found.cosine_nonparallel,
            found.logit_gap(config.temperature), config.temperature,
        )  # fmt: skip
        if name == config.align_space and found.bound_to_chance(config.temperature):
            logger.warning(
                "the alignment loss is bound to start at chance (ln B) in the %s space: translations stand out by "
                "%.3f logit at T = %g; a better-conditioned --align-space (midalign.training.spaces) or a lower "
                "--temperature lets it learn", name, found.logit_gap(config.temperature), config.temperature,
            )  # fmt: skip
    return diagnostic


def _cached_before(config, evaluation, model, tokenizer, identity, precision, max_length, autocast):
    """The base model's evaluation states, through the shared state cache midalign-analyze uses (`--cache-dir`, by
    default the user cache): missing languages are computed and saved, so a second run extracts nothing.

    Before training the LoRA update is exactly zero, so these are the base model's states; the key names the
    precision the trainer runs in (fp32 weights, bf16 autocast where chosen), not analyze's weight dtype."""
    from midalign.models.cache import StateCache
    from midalign.models.extract import extract_corpus

    cache = StateCache(config.cache_dir)
    logger.info("evaluating before: the base model's states through the state cache %s", cache.root)
    with train_eval.measuring(model, autocast):
        states = extract_corpus(model, tokenizer, evaluation, cache, identity, f"train-{precision}", "mean",
                                max_length, config.eval_batch_size)  # fmt: skip
    return {lang: np.asarray(values) for lang, values in states.items()}
