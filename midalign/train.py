"""`midalign-train`: LoRA fine-tuning with the middle-layer alignment objective at the automatically picked layer.

Layer convention: layer 0 is the embedding output, layer k the residual stream after decoder block k (HF's
`hidden_states[k]`); the alignment loss is applied at layer k and needs blocks 1..k only.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from midalign import distributed
from midalign.cli import parse_config, prepare_output_dir, run_main, write_config
from midalign.data import ParallelCorpus, load_parallel
from midalign.errors import MidalignError
from midalign.representations import LayerOutOfRangeError, num_layers

logger = logging.getLogger(__name__)

DEFAULT_ALIGN_LANGS = ["deu_Latn", "rus_Cyrl", "hin_Deva", "swh_Latn", "yor_Latn", "amh_Ethi"]
# Fields that may change between an interrupted run and its --resume without changing the numbers.
RESUME_FREE = {"resume", "overwrite", "out", "device", "save_every", "keep_checkpoints", "eval_batch_size", "eval"}
OUTPUTS = ("checkpoints", "adapter", "steps.csv", "eval_before.csv", "eval_after.csv", "eval_summary.csv")


@dataclass
class TrainConfig:
    """LoRA fine-tuning of a causal LM on a task (prompt -> completion) plus a contrastive alignment loss on
    X<->English parallel sentences at layer k, the layer where the model's languages align best (picked by
    midalign-analyze, or given). Without --task-data it trains an alignment-only adapter. Layer 0 is the
    embedding output, layer k the residual stream after block k."""

    model: str | None = field(
        default=None, metadata={"help": "Hub id or local HF folder; default: the embedded gemma-3-270m (offline)."}
    )
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit)."})
    task_data: str | None = field(
        default=None,
        metadata={
            "help": "JSONL file or `datasets` source with prompt, completion (and optional language) fields; "
            "omit for alignment-only training."
        },
    )
    task_split: str = field(default="train", metadata={"help": "Split of a `datasets` task source."})
    align_data: str = field(
        default="udhr", metadata={"help": "Parallel corpus: udhr (bundled), a FLORES+-layout folder or a hub id."}
    )
    align_split: str | None = field(default=None, metadata={"help": "Split of the parallel corpus (default: auto)."})
    align_langs: list[str] = field(
        default_factory=lambda: list(DEFAULT_ALIGN_LANGS),
        metadata={"help": "Languages paired with English for the alignment loss (codes or aliases)."},
    )
    english: str = field(default="eng_Latn", metadata={"help": "The pivot language every pair shares."})
    max_sentences: int | None = field(default=None, metadata={"help": "Use only the first N parallel sentences."})
    heldout_fraction: float = field(
        default=0.2,
        metadata={"help": "Share of parallel sentences (chosen by hashing their ids) kept out of training for eval."},
    )
    pairs_per_language: int | None = field(
        default=None, metadata={"help": "Resample each language's training pairs to N (default: all of them)."}
    )
    analysis: str | None = field(
        default=None, metadata={"help": "A midalign-analyze output folder whose selection.json gives the layer."}
    )
    layer: str = field(
        default="auto",
        metadata={
            "help": "auto: the layer of --analysis, else run the analysis on the alignment languages into "
            "OUT/analysis first; or an integer 1..L."
        },
    )
    mode: Literal["alternate", "weighted"] = field(
        default="alternate",
        metadata={"help": "alternate task and alignment micro-batches (the paper) or add w * align to each step."},
    )
    align_weight: float = field(
        default=1.0, metadata={"help": "Weight w of the alignment loss; 0 with task data = task-only baseline."}
    )
    temperature: float = field(default=0.1, metadata={"help": "InfoNCE temperature."})
    symmetric: bool = field(default=False, metadata={"help": "Average the loss over both retrieval directions."})
    gather_negatives: bool = field(
        default=False,
        metadata={
            "help": "Under several processes, score each English sentence against every process's alignment pairs "
            "(the global micro-batch) instead of its own process's (the default, as the paper's per-device batches)."
        },
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout."})
    target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Module names to adapt; default: every projection in the blocks (q,k,v,o,gate,up,down)."},
    )
    lr: float = field(default=5e-4, metadata={"help": "Peak learning rate (AdamW, weight decay 0)."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "Warm-up share of the inverse-sqrt schedule."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm (0 = off)."})
    epochs: int = field(default=5, metadata={"help": "Epochs (each sees every task example and alignment pair)."})
    batch_size: int = field(default=16, metadata={"help": "Task micro-batch size (per process)."})
    align_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Alignment micro-batch size per process = in-batch negatives + 1 (default: --batch-size; times "
            "the number of processes with --gather-negatives)."
        },
    )
    embed_chunk: int = field(
        default=8,
        metadata={"help": "Alignment rows per forward, length-sorted to cut padding (0 = the whole batch at once)."},
    )
    grad_accum: int = field(
        default=1,
        metadata={
            "help": "Micro-steps per optimizer step; effective batch = batch x grad_accum x processes (the paper: 128)."
        },
    )
    max_length: int = field(default=256, metadata={"help": "Truncate sequences to this many tokens."})
    max_steps: int | None = field(default=None, metadata={"help": "Stop after this many optimizer steps."})
    dtype: Literal["auto", "fp32", "bf16"] = field(
        default="auto", metadata={"help": "auto = bf16 autocast on a capable GPU, else fp32."}
    )
    device: Literal["auto", "cpu", "cuda"] = field(
        default="auto", metadata={"help": "auto, cpu or cuda (pick GPUs with CUDA_VISIBLE_DEVICES)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of LoRA init, dropout, shuffling and resampling."})
    save_every: int = field(default=100, metadata={"help": "Checkpoint every N optimizer steps (and at the end)."})
    keep_checkpoints: int = field(default=2, metadata={"help": "Keep the newest N checkpoints."})
    resume: bool = field(default=False, metadata={"help": "Continue from OUT's newest checkpoint."})
    overwrite: bool = field(default=False, metadata={"help": "Delete OUT's earlier training outputs first."})
    eval: bool = field(default=True, metadata={"help": "Held-out retrieval before and after training."})
    eval_batch_size: int = field(default=16, metadata={"help": "Sentences per evaluation forward."})
    out: str = field(default="runs/train", metadata={"help": "Output directory."})

    def __post_init__(self) -> None:
        if self.layer != "auto" and not self.layer.lstrip("-").isdigit():
            raise MidalignError(f"--layer must be 'auto' or an integer, got {self.layer!r}")
        positive = ("lora_r", "epochs", "batch_size", "grad_accum", "max_length", "save_every", "keep_checkpoints")
        for name in positive:
            if getattr(self, name) < 1:
                raise MidalignError(f"--{name.replace('_', '-')} must be at least 1")
        if self.embed_chunk < 0:
            raise MidalignError("--embed-chunk must be 0 (off) or positive")
        if self.align_batch_size is not None and self.align_batch_size < 2:
            raise MidalignError("--align-batch-size must be at least 2: in-batch negatives need a second pair")
        if self.temperature <= 0 or self.lr <= 0:
            raise MidalignError("--temperature and --lr must be positive")
        if self.max_steps is not None and self.max_steps < 1:
            raise MidalignError("--max-steps must be at least 1")
        if not 0 <= self.lora_dropout < 1 or not 0 <= self.warmup_ratio < 1:
            raise MidalignError("--lora-dropout and --warmup-ratio must be in [0, 1)")


def _check_output(out: Path, config: TrainConfig, delete: bool = True) -> None:
    """Refuse to mix two runs in one folder; on --resume, refuse a changed config. With --overwrite, the earlier
    outputs are removed where `delete` (the main process of a multi-process launch; the others only check)."""
    earlier = [name for name in OUTPUTS if (out / name).exists()]
    if config.overwrite:
        for name in earlier if delete else []:
            shutil.rmtree(out / name) if (out / name).is_dir() else (out / name).unlink()
        return
    if config.resume:
        saved_path = out / "config.json"
        if saved_path.exists():
            saved = json.loads(saved_path.read_text())
            changed = [k for k, v in asdict(config).items() if k not in RESUME_FREE and saved.get(k, v) != v]
            if changed:
                raise MidalignError(f"--resume with a changed config ({', '.join(changed)}); use the original values")
        return
    if earlier:
        raise MidalignError(f"{out} already holds a training run ({', '.join(earlier)}); pass --resume or --overwrite")


def _same_analysis(folder: Path, wanted) -> bool:
    """Whether `folder` holds a finished analysis made with the settings that change its numbers."""
    try:
        saved = json.loads((folder / "config.json").read_text())
        json.loads((folder / "selection.json").read_text())
    except (OSError, ValueError):
        return False
    keys = ("model", "revision", "langs", "dataset", "split", "max_sentences", "max_length", "dtype", "pooling")
    return all(saved.get(key) == getattr(wanted, key) for key in keys)


def resolve_layer(config: TrainConfig, corpus: ParallelCorpus, out: Path) -> tuple[int, str, str | None]:
    """(layer, how it was chosen, the analysed model's identity), running the analysis first if needed."""
    if config.layer != "auto":
        return int(config.layer), "given (--layer)", None
    if config.analysis:
        path = Path(config.analysis) / "selection.json"
        source = f"selection.json of --analysis {config.analysis}"
    else:
        path = out / "analysis" / "selection.json"
        source = f"selection.json of the analysis this run made in {path.parent}"
        from midalign.analyze import AnalyzeConfig, run

        wanted = AnalyzeConfig(
            model=config.model,
            revision=config.revision,
            langs=corpus.languages,
            dataset=config.align_data,
            split=corpus.split,
            max_sentences=config.max_sentences,
            max_length=config.max_length,
            device=config.device,
            dtype=config.dtype,
            out=str(path.parent),
            figures=False,
        )
        # Decided by the main process alone: under a multi-process launch every process must take the same branch.
        if distributed.broadcast(distributed.process_state(config.device), _same_analysis(path.parent, wanted)):
            logger.info("reusing the analysis in %s", path.parent)
        else:
            logger.info("--layer auto without --analysis: analysing %d languages first", len(corpus.languages))
            run(wanted)
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


def check_layer(layer: int, n_layers: int) -> None:
    """The alignment layer must be a block output 1..L (layer 0, the embeddings, has no LoRA weights below it)."""
    if not 1 <= layer <= n_layers:
        raise LayerOutOfRangeError(f"--layer {layer} out of range: this model has {n_layers} blocks, so 1..{n_layers}")


def run(config: TrainConfig) -> dict:
    """Train into `config.out`; return the resolved settings (also written to OUT/config.json)."""
    from accelerate.utils import set_seed

    from midalign import train_data, train_eval
    from midalign.models import clamp_max_length, load_model, model_identity, resolve_device, resolve_dtype
    from midalign.trainer import Trainer, attach_lora, resolve_target_modules

    started = time.perf_counter()
    state = distributed.process_state(config.device)  # one process, or this one of a multi-process launch
    main = state.is_main_process
    out = prepare_output_dir(config.out)
    _check_output(out, config, delete=main)
    distributed.barrier(state)
    langs = [config.english, *[lang for lang in config.align_langs if lang != config.english]]
    corpus = load_parallel(config.align_data, langs, config.align_split, config.max_sentences)
    english = corpus.languages[0]
    task = train_data.load_task_data(config.task_data, config.task_split) if config.task_data else None
    layer, layer_source, analysed = resolve_layer(config, corpus, out)
    precision = "bf16" if str(resolve_dtype(config.dtype, config.device)) == "torch.bfloat16" else "fp32"
    # On a CPU, bf16 *weights* make a step ~15x slower than fp32 weights under bf16 autocast (gemma-3-270m task
    # micro-step: 68 s vs 4 s); autocast runs the matmuls in bf16 either way, so keep the weights fp32 there.
    weights = "fp32" if resolve_device(config.device).type == "cpu" else precision
    model, tokenizer = load_model(config.model, dtype=weights, device="cpu", revision=config.revision)
    n_layers = num_layers(model)
    check_layer(layer, n_layers)
    max_length = clamp_max_length(config.max_length, model)
    identity = model_identity(model)
    if analysed is not None and analysed != identity:
        logger.warning("the layer was picked by an analysis of %s, but this run trains %s", analysed, identity)
    train_rows, heldout_rows = train_data.heldout_split(corpus.ids, config.heldout_fraction)
    pairs = train_data.build_pairs(corpus, english, train_rows, config.pairs_per_language, config.seed)
    pair_features = train_data.tokenize_pairs(tokenizer, pairs, max_length)
    task_features = train_data.tokenize_task(tokenizer, task, max_length) if task else None
    targets = resolve_target_modules(model, config.target_modules)
    set_seed(config.seed)  # LoRA's A matrices are drawn here
    model = attach_lora(model, config.lora_r, config.lora_alpha, config.lora_dropout, targets)
    trainer = Trainer(config, model, tokenizer, layer, task_features, pair_features, out, precision)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    resolved = {
        "layer": layer,
        "layer_source": layer_source,
        "n_layers": n_layers,
        "max_length": max_length,
        "model_identity": identity,
        "precision": precision,
        "device": str(trainer.accelerator.device),
        "english": english,
        "align_languages": corpus.languages[1:],
        "align_split": corpus.split,
        "n_train_sentences": len(train_rows),
        "heldout_ids": [corpus.ids[i] for i in heldout_rows],
        "n_align_pairs": len(pairs),
        "n_task_examples": len(task_features) if task_features else 0,
        "task_languages": sorted({e.language for e in task if e.language}) if task else [],
        "target_modules": targets,
        "trainable_parameters": trainable,
        "micro_steps_per_epoch": trainer.micro_per_epoch,
        "micro_step_pattern": ["+".join(kinds) for kinds in trainer.kinds],
        "num_processes": state.num_processes,
        "effective_batch": config.batch_size * config.grad_accum * state.num_processes,
        "negatives": "gathered from every process" if trainer.gather_negatives else "per process (in-batch)",
        "total_steps": trainer.total_steps,
        "warmup_steps": trainer.warmup,
    }
    if main:
        write_config(out, config, **resolved)
    logger.info(
        "layer %d of %d (%s); %d alignment pairs, %d task examples; %d steps of %s over %d process(es)",
        layer,
        n_layers,
        layer_source,
        len(pairs),
        resolved["n_task_examples"],
        trainer.total_steps,
        " / ".join(resolved["micro_step_pattern"]),
        state.num_processes,
    )
    heldout = corpus.select(heldout_rows) if config.eval and len(heldout_rows) >= 2 else None
    if config.eval and heldout is None:
        logger.warning("evaluation skipped: fewer than 2 held-out sentences (raise --heldout-fraction)")
    if not main:
        heldout = None  # evaluated by the main process alone, on its copy of the (identical) weights

    def evaluate(stage: str) -> pd.DataFrame:
        return train_eval.retrieval_eval(
            trainer.accelerator.unwrap_model(trainer.model),
            tokenizer,
            heldout,
            english,
            stage,
            max_length,
            config.eval_batch_size,
            autocast=trainer.accelerator.autocast(),
        )

    before = None
    if heldout is not None:
        before_path = out / "eval_before.csv"
        if config.resume and before_path.exists():
            before = pd.read_csv(before_path, keep_default_na=False)
        else:
            before = evaluate("before")
            train_eval.write_eval(out, "eval_before.csv", before)
    distributed.barrier(state)
    steps = trainer.train(resume=config.resume)
    resolved.update(steps_done=steps)
    if not main:
        return resolved
    trainer.accelerator.unwrap_model(trainer.model).save_pretrained(str(out / "adapter"))
    if before is not None:
        after = evaluate("after")
        train_eval.write_eval(out, "eval_after.csv", after)
        summary = train_eval.summarize(before, after, layer, english)
        train_eval.write_eval(out, "eval_summary.csv", summary)
        train_eval.log_summary(summary, layer)
        mean = summary[(summary.layer == layer) & (summary.lang == "mean") & (summary.direction == "both")].iloc[0]
        resolved["heldout_retrieval_at_layer"] = {"before": mean.before, "after": mean.after}
    resolved.update(wall_seconds=round(time.perf_counter() - started, 1))
    write_config(out, config, **resolved)
    logger.info("done in %.1f s; adapter in %s", resolved["wall_seconds"], out / "adapter")
    return resolved


def _main(argv: Sequence[str] | None) -> None:
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # it logs every file of every checkpoint at INFO
    run(parse_config(TrainConfig, argv, prog="midalign-train"))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point of `midalign-train`."""
    return run_main(_main, argv)


if __name__ == "__main__":
    raise SystemExit(main())
