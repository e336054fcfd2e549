"""The option groups every command shares: one name, one type and one help text per option.

A command's config is a dataclass that inherits the groups it needs (model, output, alignment data, task) and adds
its own options; `cli.parse_config` turns the composed dataclass into the command's parser. Where commands need
different defaults for a shared option (`--out`, `--task-split`, the alignment data), the group's default is None
and the help says what each command fills in; the command's `__post_init__` does so.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from midalign.errors import MidalignError

TASKS = ("cldr", "massive", "translation", "entities")
# Option vocabularies that the models package checks too: defined here, so parsing options imports no torch.
Pooling = Literal["mean", "mean_no_special", "last", "weighted_mean"]
POOLINGS: tuple[str, ...] = get_args(Pooling)
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")  # accelerate's device_map strategies
DTYPES = ("auto", "fp32", "bf16", "fp16")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
FORWARD_BATCH_HELP = "Sentences or prompts per forward (does not change the numbers)."
TASK_LANGS_HELP = (
    "Task languages: FLORES codes or aliases (cldr: or babel locales), MASSIVE locales, or Universal NER configs."
)
CLDR_KIND_HELP = "cldr: what to localize."
CACHE_HELP = (
    "Root of the hidden-state cache, shared by runs, models, poolings and commands (default: $MIDALIGN_CACHE/states, "
    "else the user cache folder, e.g. ~/.cache/midalign/states; midalign-train keeps the base model's evaluation "
    "states there)."
)
ANALYSIS_HELP = (
    "A midalign-analyze output folder: midalign-train takes its selected layer (--layer auto); midalign-evaluate "
    "--compare correlates each transfer language's base retrieval with English at its selected layer with the first "
    "run's scores and the others' gains (predictors*.csv, predictors_METRIC.png)."
)
LAYER_HELP = (
    "The aligned layer: an integer 1..L, or auto: midalign-train takes it from --analysis (else analyses the "
    "alignment languages into OUT/analysis first), midalign-merge from the alignment run."
)
ALIGN_WEIGHT_HELP = (
    "Weight of the alignment part: of the loss in midalign-train (0 with task data = the task-only baseline), of "
    "the alignment adapter's update in midalign-merge (without --sweep)."
)
MAX_LENGTH_HELP = "Cut sentences to this many tokens (with a warning); midalign-merge: default the alignment run's."


def option(help: str, default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, **extra: Any) -> Any:
    """A dataclass field with its `--help` text (and argparse extras such as `aliases` or `choices`)."""
    return field(default=default, default_factory=factory, metadata={"help": help, **extra})


def _chain(instance: object, group: type) -> None:
    # Groups are combined by multiple inheritance: each checks its own fields, then hands on along the MRO.
    parent = getattr(super(group, instance), "__post_init__", None)
    if parent is not None:
        parent()


@dataclass(kw_only=True)
class ModelOptions:
    """Which model, in which precision, on which device."""

    model: str | None = option(
        "Hub id or local HF folder; default: the embedded gemma-3-270m (offline), or in midalign-evaluate and "
        "midalign-merge the base model the adapters were trained on.",
        None,
    )
    revision: str | None = option("Hub revision (branch, tag or commit) of --model.", None)
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = option(
        "Precision: auto = bf16 on a capable GPU and, for midalign-analyze's extraction, on a CPU with native bf16 "
        "matrix units (AMX or AVX-512 BF16); else fp32 (training keeps fp32 weights under bf16 autocast).",
        "auto",
    )
    device: str = option(
        "auto, cpu, cuda, cuda:N or mps; under a multi-process launch, each process's own device.", "auto"
    )

    def __post_init__(self) -> None:
        if not _DEVICE.match(str(self.device)):
            raise MidalignError(f"unknown --device {self.device!r}; choose auto, cpu, cuda, cuda:N or mps")
        if self.dtype not in DTYPES:
            raise MidalignError(f"unknown --dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        _chain(self, ModelOptions)


@dataclass(kw_only=True)
class OutputOptions:
    """Where a command writes, and whether it may replace an earlier run there."""

    out: str | None = option("Output directory (default: runs/COMMAND, e.g. runs/train).", None)
    overwrite: bool = option("Replace the outputs of an earlier run in OUT (else a second run into OUT stops).", False)

    def __post_init__(self) -> None:
        _chain(self, OutputOptions)

    def default_out(self, command: str) -> None:
        """Fill in runs/COMMAND where --out was not given."""
        if self.out is None:
            self.out = f"runs/{command}"


@dataclass(kw_only=True)
class PivotOptions:
    """The pivot language: shared by the alignment data and the translation recipe."""

    english: str | None = option(
        "The pivot language: the English side of every alignment pair and of translation, and what midalign-analyze "
        "compares every language with in mexa and cka (default: eng_Latn, or in midalign-merge the alignment run's).",
        None,
    )

    def __post_init__(self) -> None:
        _chain(self, PivotOptions)

    def default_english(self, english: str = "eng_Latn") -> None:
        if self.english is None:
            self.english = english


@dataclass(kw_only=True)
class AlignmentOptions(PivotOptions):
    """The X<->English parallel data of the alignment loss (training) or of its dev retrieval (merge)."""

    align_data: str | None = option(
        "Alignment pairs: gettext (bundled, X<->English UI sentences from 18 software packages), a pair source "
        "(id, text, en columns) or a multi-way corpus (udhr, a FLORES+-layout folder or hub id); default: gettext "
        "to train, the alignment run's in midalign-merge.",
        None,
    )
    align_split: str | None = option(
        "Split of the alignment data (default: train, or a multi-way corpus's own; a pair source trains on train "
        "only: its dev split chooses checkpoints and its test split evaluates).",
        None,
    )
    align_langs: list[str] = option(
        "Languages paired with English (codes or aliases); default: 8 languages in 6 scripts to train, the "
        "alignment run's in midalign-merge.",
        factory=list,
    )

    def __post_init__(self) -> None:
        _chain(self, AlignmentOptions)


@dataclass(kw_only=True)
class SeedOptions:
    """The run's seed."""

    seed: int = option(
        "Seed of everything random: generated task data (cldr), LoRA init, dropout, shuffling, resampling.", 0
    )

    def __post_init__(self) -> None:
        _chain(self, SeedOptions)


@dataclass(kw_only=True)
class TaskDataOptions:
    """Where task examples come from, and which split."""

    task_data: str | None = option(
        "Task source: cldr: a JSONL from `python -m midalign.tasks` (default: generated); massive: hub id or local "
        "copy (default AmazonScience/massive); translation: udhr (default), gettext or another pair source (test: "
        "its own test split, which no model selection reads), a FLORES+ folder or hub id, or a WMT-style source "
        "(xx-en pair configs); "
        "entities: a file or hub id (default universalner/universal_ner). midalign-train: a prompt/completion/"
        "language JSONL file or `datasets` source; omit it to train alignment only.",
        None,
        aliases=["--data"],
    )
    task_split: str | None = option(
        "Split of the task data (default: test to evaluate, dev in midalign-merge's sweep, train to write or "
        "train on).",
        None,
        aliases=["--split"],
    )

    def __post_init__(self) -> None:
        _chain(self, TaskDataOptions)

    def default_task_split(self, split: str) -> None:
        if self.task_split is None:
            self.task_split = split


@dataclass(kw_only=True)
class TaskOptions(TaskDataOptions, SeedOptions, PivotOptions):
    """A task recipe and the examples it builds: source, split, languages, how many (what `load_examples` reads)."""

    task: str | None = option(f"Task recipe: {', '.join(TASKS)}.", None, choices=TASKS)
    task_langs: list[str] = option(TASK_LANGS_HELP, factory=list, aliases=["--langs"])
    max_examples: int | None = option("At most N task examples per language.", None)
    cldr_kind: Literal["date_long", "month_year", "number", "currency"] = option(CLDR_KIND_HELP, "date_long")
    directions: list[str] = option("translation: x2en and/or en2x.", factory=lambda: ["x2en", "en2x"])

    def __post_init__(self) -> None:
        _at_least(self, 1, "max_examples")
        _chain(self, TaskOptions)


@dataclass(kw_only=True)
class GenerationOptions:
    """Greedy generation of task answers."""

    max_new_tokens: int | None = option("Answer length limit in tokens (default: the recipe's).", None)

    def __post_init__(self) -> None:
        _at_least(self, 1, "max_new_tokens")
        _chain(self, GenerationOptions)


def group(config: object, kind: type) -> Any:
    """The `kind` group's fields of a composed config, as an instance of the group itself."""
    return kind(**{f.name: getattr(config, f.name) for f in dataclasses.fields(kind)})


# ---- the commands' configs -----------------------------------------------------------------------------------
TASK_LR = 5e-4  # the paper's, for task + alignment
# Alignment-only pilot at block 11 (analysis/align_gettext/pilot): dev retrieval fell from 0.241 to 0.196 in 20
# steps at 5e-4, and rose steadily at 1e-4 (0.241 -> 0.269 at step 40) and 3e-5 (-> 0.249).
ALIGN_ONLY_LR = 1e-4
# Four high- or medium-resource and four low-resource languages, in six scripts; all in the gettext corpus (the
# low-resource ones with 230-730 pairs, resampled to --pairs-per-language) and in UDHR.
DEFAULT_ALIGN_LANGS = ["deu_Latn", "rus_Cyrl", "arb_Arab", "hin_Deva", "kat_Geor", "swh_Latn", "zul_Latn", "amh_Ethi"]
DEFAULT_PAIRS_PER_LANGUAGE = 1000
# Evaluated by default besides the aligned languages (the paper's "unseen" group: never aligned): 26 UDHR
# languages in 14 scripts, high- to low-resource; aligned ones among them move to group "aligned".
DEFAULT_UNSEEN_LANGS = [
    "fra_Latn", "spa_Latn", "ita_Latn", "nld_Latn", "pol_Latn", "ces_Latn", "swe_Latn", "fin_Latn", "hun_Latn",
    "tur_Latn", "vie_Latn", "ind_Latn", "eus_Latn", "cym_Latn", "hau_Latn_NG", "ibo_Latn", "ukr_Cyrl", "bul_Cyrl",
    "ell_Grek", "heb_Hebr", "pes_Arab", "ben_Beng", "tam_Taml", "jpn_Jpan", "kor_Hang", "hye_Armn",
]  # fmt: skip
# Where the alignment loss takes its cosine (midalign.training.spaces says what each does and when to use it).
AlignSpace = Literal[
    "raw", "batch-centered", "centered", "language-centered", "standardized", "language-standardized", "top-removed"
]
# The alignment-space study (analysis/align_space): at block 11 of gemma-3-270m, 8 languages, 300 steps, standardized
# had the best dev retrieval of the spaces that hold it (centered peaked higher once, then fell by 0.037) and raised
# UDHR retrieval by +0.135 (aligned) and +0.172 (never aligned) over 3 seeds, where raw's collapsing loss kept
# +0.005 and +0.006 (3 seeds); raw stays one flag away as the paper's setting.
DEFAULT_ALIGN_SPACE = "standardized"
DEV_PAIRS = 100  # dev pairs per language: early stopping, merge sweeps, and the translation recipe's dev split
MAX_SENTENCES_HELP = "Use only the first N parallel sentences of a multi-way corpus."
# Every metric midalign-analyze can compute (`analysis.metrics` computes them): the pair metrics for every directed
# pair, the pivot metrics for every language against the pivot (--english) only. Here, not in `analysis.metrics`,
# so that reading runs and parsing options never imports torch.
PAIR_METRICS = ("retrieval_acc", "margin_retrieval_acc", "cosine", "cosine_gap")
PIVOT_METRICS = ("mexa", "cka")
METRICS = PAIR_METRICS + PIVOT_METRICS
# Which directed pairs midalign-analyze scores with the pair metrics: all of them, or each language with the pivot
# (--english) in both directions only (2 (n - 1) pairs instead of n (n - 1); what X<->English alignment needs).
PAIRS = ("all", "pivot")
PROBE_HELP = (
    "Also probe every layer for language identity (probe.csv, figures/probe_retrieval.png): 5-fold logistic "
    "regression split by sentence, so no sentence is in training and test; its cost is in the README."
)


def default_lr(has_task: bool) -> float:
    """The peak learning rate when none is given: the paper's with task data, the measured one without."""
    return TASK_LR if has_task else ALIGN_ONLY_LR


def _check_layer(layer: str) -> None:
    if layer != "auto" and not layer.lstrip("-").isdigit():
        raise MidalignError(f"--layer must be 'auto' or an integer, got {layer!r}")


def _at_least(config: object, minimum: int, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value is not None and value < minimum:
            raise MidalignError(f"--{name.replace('_', '-')} must be at least {minimum}")


@dataclass(kw_only=True)
class AnalyzeConfig(OutputOptions, PivotOptions, ModelOptions):
    """Cache per-layer pooled hidden states of parallel sentences, score every directed language pair at every
    layer (retrieval accuracy, margin retrieval, cosine alignment), every language against the pivot (MEXA,
    linear CKA), optionally probe each layer for language identity, and pick the layer where languages align best.
    Layer 0 is the embedding output, layer i the residual stream after block i."""

    langs: list[str] = option(
        "Language codes or aliases (eng_Latn, de, zh-Hant), a preset (udhr48, ...), or 'all' for every language of "
        "the corpus.",
        factory=lambda: ["udhr48"],
    )
    dataset: str = option(
        "udhr (bundled), a local FLORES+-layout folder, or a hub id (openlanguagedata/flores_plus).", "udhr"
    )
    split: str | None = option("Split; default: devtest for FLORES+, train (its only one) for UDHR.", None)
    max_sentences: int | None = option(MAX_SENTENCES_HELP, None)
    batch_size: int = option(FORWARD_BATCH_HELP, 32)
    max_length: int = option(MAX_LENGTH_HELP, 512)
    device_map: str | None = option(
        "Spread a model too large for one GPU over all visible GPUs (and CPU memory): auto, balanced or "
        "sequential, passed to from_pretrained; one process only. Default: the whole model on --device.",
        None,
    )
    pooling: Pooling = option(
        "mean = masked mean over all real tokens incl. special ones (the paper's); see README.", "mean"
    )
    center: bool = option("Subtract each language's mean vector before scoring.", False)
    margin_k: int = option("Neighbours k of the ratio-margin retrieval (LASER: 4).", 4)
    metrics: list[str] | None = option(
        f"Metrics to compute, any of {', '.join(METRICS)}. Default: all of them, mexa and cka only when the pivot "
        "(--english) is among the languages (naming them without it is an error).",
        None,
    )
    pairs: Literal["all", "pivot"] = option(
        "Directed pairs the pair metrics score: all = every pair, pivot = every language with the pivot (--english) "
        "in both directions only, about 2/n of the work for n languages (the pivot must be among the languages).",
        "all",
    )
    select_metric: Literal["retrieval_acc", "margin_retrieval_acc", "cosine", "cosine_gap", "mexa"] = option(
        "Metric whose mean over pairs (mexa: over languages against the pivot) picks the layer.", "retrieval_acc"
    )
    probe: bool = option(PROBE_HELP, False)
    cache_dir: str | None = option(CACHE_HELP, None)
    recompute: bool = option("Recompute cached states instead of reusing them.", False)
    compile: bool = option(
        "Run each decoder block's forward through torch.compile (fused kernels, dynamic shapes) when states are "
        "computed, in every process of a launch: tens of seconds to compile per run (less with a warm "
        "TORCHINDUCTOR_CACHE_DIR), then faster where elementwise work rivals the matrix products (bf16, GPUs); same "
        "states up to float rounding.",
        False,
    )
    figures: bool = option("Draw the PNG figures (--no-figures to skip).", True)
    report: bool = option("Write the interactive HTML report OUT/report.html (--no-report to skip).", True)
    list_langs: bool = option(
        "List the languages of --dataset (code, name, script, family, resource level, splits, sentences) and exit.",
        False,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.default_out("analyze")
        self.default_english()
        if self.metrics is not None:
            unknown = [name for name in self.metrics if name not in METRICS]
            if unknown or not self.metrics:
                raise MidalignError(
                    f"unknown --metrics {', '.join(unknown) or '(none)'}; choose from {', '.join(METRICS)}"
                )
            if self.select_metric not in self.metrics:
                raise MidalignError(f"--select-metric {self.select_metric} is not among --metrics; add it there")
        if self.pooling not in POOLINGS:
            raise MidalignError(f"unknown pooling {self.pooling!r}; choose from {', '.join(POOLINGS)}")
        if self.pairs not in PAIRS:
            raise MidalignError(f"unknown --pairs {self.pairs!r}; choose from {', '.join(PAIRS)}")
        _at_least(self, 1, "batch_size", "max_length", "margin_k")
        if self.max_sentences is not None and self.max_sentences < 2:
            raise MidalignError("--max-sentences must be at least 2: retrieval needs candidates to choose from")
        if not self.langs:
            raise MidalignError("--langs is empty")
        if self.device_map is not None and self.device_map not in DEVICE_MAPS:
            raise MidalignError(f"unknown --device-map {self.device_map!r}; choose from {', '.join(DEVICE_MAPS)}")


# The language x language heatmap of a report embeds at most this many cells (all metrics, layers and runs): 48
# languages fit at every layer (~0.2 M cells); 442 languages (~0.2 M cells per layer and metric) keep fewer layers.
REPORT_MAX_CELLS = 1_000_000


@dataclass(kw_only=True)
class ReportConfig:
    """Write one self-contained interactive HTML page (plotly) for one or two midalign-analyze runs: layer curves
    per metric (overall and by script, family, resource level), the layer x language heatmap, the language x
    language heatmap at a chosen layer, languages ordered or filtered by group; two runs side by side."""

    runs: list[str] = option("midalign-analyze output folders (two are compared).", positional=True, metavar="RUN")
    out: str | None = option("The HTML file to write (default: report.html in the first RUN).", None)
    labels: list[str] = option("Names of the runs in legends and titles (default: their folder names).", factory=list)
    max_cells: int = option(
        "Most language-pair cells the language x language heatmap embeds (all metrics, layers and runs); above it "
        "the report keeps fewer layers, the selected one first.",
        REPORT_MAX_CELLS,
    )

    def __post_init__(self) -> None:
        _at_least(self, 1, "max_cells")
        if len(self.runs) > 2:
            raise MidalignError(f"a report shows one run or compares two; got {len(self.runs)} RUN folders")
        if self.labels and len(self.labels) != len(self.runs):
            raise MidalignError(f"--labels names {len(self.labels)} runs, but {len(self.runs)} RUN folders were given")
        if self.out is None:
            self.out = str(Path(self.runs[0]) / "report.html")


@dataclass(kw_only=True)
class TrainConfig(OutputOptions, SeedOptions, TaskDataOptions, AlignmentOptions, ModelOptions):
    """LoRA fine-tuning of a causal LM on a task (prompt -> completion) plus a contrastive alignment loss on
    X<->English parallel sentences at layer k, the layer where the model's languages align best (picked by
    midalign-analyze, or given). Without --task-data it trains an alignment-only adapter. Layer 0 is the
    embedding output, layer k the residual stream after block k."""

    max_sentences: int | None = option(MAX_SENTENCES_HELP, None)
    heldout_fraction: float = option(
        "Multi-way alignment corpus: share of sentences (chosen by hashing their ids) held out of training "
        "as the dev set (a pair corpus has a dev split).",
        0.2,
    )
    pairs_per_language: int | None = option(
        "Resample each language's training pairs to N (0 = all of them, unbalanced).", DEFAULT_PAIRS_PER_LANGUAGE
    )
    dev_pairs: int = option(
        "Dev pairs per language scored for early stopping (the first N of the dev split by id hash; any N is safe: "
        "tests read a separate test split).",
        DEV_PAIRS,
    )
    eval_every: int = option(
        "Score dev retrieval at the aligned layer every N optimizer steps and keep the best adapter "
        "(0 = never: the adapter is the last step's).",
        20,
    )
    patience: int = option("Stop after N dev scores without improvement (0 = train to the end).", 3)
    eval_data: str | None = option(
        "Multi-way corpus for retrieval before/after at every layer (default: udhr when the alignment "
        "data is a pair corpus, else its held-out sentences); 'none' skips it.",
        None,
    )
    eval_split: str | None = option("Split of --eval-data (default: its own).", None)
    eval_langs: list[str] | None = option(
        "Languages evaluated against English: the aligned ones are group 'aligned', the rest 'unseen' "
        "(default: the alignment languages plus 20 never aligned, where --eval-data has them).",
        None,
    )
    analysis: str | None = option(ANALYSIS_HELP, None)
    layer: str = option(LAYER_HELP, "auto")
    mode: Literal["alternate", "weighted"] = option(
        "alternate task and alignment micro-batches (the paper) or add w * align to each step.", "alternate"
    )
    align_weight: float = option(ALIGN_WEIGHT_HELP, 1.0)
    temperature: float = option("InfoNCE temperature.", 0.1)
    align_space: AlignSpace = option(
        "Where the alignment loss takes its cosine: raw (the paper's loss, on the pooled states as they are), "
        "batch-centered "
        "(each side minus its batch mean), centered (minus the base model's mean at layer k), language-centered "
        "(minus the base model's mean of each sentence's language), standardized (per dimension, base model's "
        "mean and std), language-standardized (minus the language's mean, over the within-language std), "
        "top-removed (centered, top --space-rank principal directions removed). Statistics come from the base "
        "model before training and are saved with the run and its adapters.",
        DEFAULT_ALIGN_SPACE,
    )
    space_rank: int = option("Principal directions removed by --align-space top-removed.", 5)
    space_sentences: int = option(
        "Sentences per language (and of English) the base model's statistics at layer k are estimated on (the "
        "first N training pairs by id hash); also what the anisotropy log before training measures.",
        100,
    )
    symmetric: bool = option("Average the loss over both retrieval directions.", False)
    shuffle_pairs: bool = option(
        "Exposure control: pair each X sentence with the English side of another pair of its language (a seeded "
        "derangement), so the alignment loss reads the same texts through the same forward and gradient path "
        "with no translation pairing. Dev retrieval still scores true pairs.",
        False,
    )
    gather_negatives: bool = option(
        "Under several processes, score each English sentence against every process's alignment pairs "
        "(the global micro-batch) instead of its own process's (the default, as the paper's per-device batches).",
        False,
    )
    lora_r: int = option("LoRA rank.", 8)
    lora_alpha: int = option("LoRA alpha.", 16)
    lora_dropout: float = option("LoRA dropout.", 0.1)
    target_modules: list[str] | None = option(
        "Module names to adapt; default: every projection in the blocks (q,k,v,o,gate,up,down).", None
    )
    lr: float | None = option(
        f"Peak learning rate (AdamW, weight decay 0); default {TASK_LR:g} with task data (the paper), "
        f"{ALIGN_ONLY_LR:g} for alignment only (5e-4 lowered dev retrieval there: analysis/align_gettext).",
        None,
    )
    warmup_ratio: float = option("Warm-up share of the inverse-sqrt schedule.", 0.03)
    max_grad_norm: float = option("Gradient clipping norm (0 = off).", 1.0)
    epochs: int = option("Epochs (each sees every task example and alignment pair).", 5)
    task_batch_size: int = option(
        "Task micro-batch size per process (--batch-size: its old name).", 16, aliases=["--batch-size"]
    )
    align_batch_size: int | None = option(
        "Alignment micro-batch size per process = in-batch negatives + 1 (default: --task-batch-size; "
        "times the number of processes with --gather-negatives).",
        None,
    )
    embed_chunk: int = option(
        "Alignment rows per forward, length-sorted to cut padding (0 = the whole batch at once).", 8
    )
    grad_accum: int = option(
        "Micro-steps per optimizer step; effective batch = batch x grad_accum x processes (the paper: 128).", 1
    )
    task_max_length: int = option("Cut task examples to this many tokens.", 256)
    align_max_length: int = option(
        "Leave out alignment pairs with a side longer than this many tokens (counted, never cut).", 128
    )
    eval_max_length: int = option("Cut evaluation sentences to this many tokens.", 512)
    max_steps: int | None = option("Stop after this many optimizer steps.", None)

    save_every: int = option("Checkpoint every N optimizer steps (and at the end).", 100)
    keep_checkpoints: int = option("Keep the newest N checkpoints.", 2)
    resume: bool = option("Continue from OUT's newest checkpoint.", False)

    eval: bool = option("Retrieval on --eval-data before and after training.", True)
    cache_dir: str | None = option(CACHE_HELP, None)
    eval_batch_size: int = option("Sentences per evaluation forward.", 16)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.default_out("train")
        self.default_task_split("train")
        self.default_english()
        if self.align_data is None:
            self.align_data = "gettext"
        if not self.align_langs:
            self.align_langs = list(DEFAULT_ALIGN_LANGS)
        if self.dtype == "fp16":
            raise MidalignError("--dtype fp16 is not supported for training: use bf16 (autocast) or fp32")
        _check_layer(self.layer)
        _at_least(self, 1, "lora_r", "epochs", "task_batch_size", "grad_accum", "task_max_length", "align_max_length",
                  "eval_max_length", "save_every", "keep_checkpoints", "dev_pairs", "max_steps", "space_rank",
                  "space_sentences")  # fmt: skip
        if self.eval_every < 0 or self.patience < 0:
            raise MidalignError("--eval-every and --patience must be 0 (off) or positive")
        if self.pairs_per_language is not None and self.pairs_per_language < 0:
            raise MidalignError("--pairs-per-language must be 0 (all) or positive")
        if self.embed_chunk < 0:
            raise MidalignError("--embed-chunk must be 0 (off) or positive")
        if self.align_batch_size is not None and self.align_batch_size < 2:
            raise MidalignError("--align-batch-size must be at least 2: in-batch negatives need a second pair")
        if self.temperature <= 0 or (self.lr is not None and self.lr <= 0):
            raise MidalignError("--temperature and --lr must be positive")
        if not 0 <= self.lora_dropout < 1 or not 0 <= self.warmup_ratio < 1:
            raise MidalignError("--lora-dropout and --warmup-ratio must be in [0, 1)")


MAX_NEW_TOKENS = {"cldr": 16, "massive": 64, "translation": 128, "entities": 96}
EVALUATION_GROUPS = ("supervised", "alignment", "unseen")


@dataclass(kw_only=True)
class EvaluateConfig(OutputOptions, GenerationOptions, TaskOptions, ModelOptions):
    """Evaluate a causal LM (optionally with a peft LoRA adapter) on a task, per language and language group
    (supervised / alignment-only / unseen), with batched greedy generation; or --compare evaluation folders."""

    adapter: str | None = option("A peft adapter folder (midalign-train's or midalign-merge's OUT/adapter).", None)
    merge: bool = option("Merge the adapter into the weights (faster generation).", True)
    supervised: list[str] = option("Languages with task training data.", factory=list)
    alignment: list[str] = option("Languages only in the alignment pairs.", factory=list)
    unseen: list[str] = option("Languages in neither (default: the rest).", factory=list)
    groups_from: str | None = option(
        "A midalign-train output folder giving supervised/alignment groups (default: the run holding --adapter).",
        None,
    )
    batch_size: int = option(FORWARD_BATCH_HELP, 16)
    compare: list[str] | None = option(
        "Evaluation folders to compare (no evaluation is run); the first is the base.", None
    )
    analysis: str | None = option(ANALYSIS_HELP, None)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.default_out("evaluate")
        self.default_english()
        if self.compare is None and self.task is None:
            raise MidalignError(f"--task is required (one of {', '.join(TASKS)}), unless --compare is given")
        if self.compare is not None and len(self.compare) < 2:
            raise MidalignError("--compare needs at least two evaluation folders")
        if self.analysis is not None and self.compare is None:
            raise MidalignError("--analysis goes with --compare (it correlates compared runs with base retrieval)")
        _at_least(self, 1, "batch_size")


def _floats(values: list, flag: str) -> list[float]:
    try:
        return [float(v) for text in values for v in str(text).split(",") if v.strip()]
    except ValueError as error:
        raise MidalignError(f"{flag}: {error}") from error


@dataclass(kw_only=True)
class MergeConfig(OutputOptions, GenerationOptions, TaskOptions, AlignmentOptions, ModelOptions):
    """Merge a task LoRA and a separately trained alignment LoRA of the same base model into one peft adapter whose
    update is exactly w_task * dW_task + w_align * dW_align (rank concatenation); optionally pick w_align by a dev
    sweep (held-out retrieval at the aligned layer, and a task metric) and fold the result into the base weights."""

    task_adapter: str = option("The task LoRA folder (midalign-train's OUT/adapter).")
    align_adapter: str = option("The alignment LoRA folder, trained on the same base model.")
    task_weight: float = option("w_task.", 1.0)
    align_weight: float = option(ALIGN_WEIGHT_HELP, 1.0)
    sweep: list[str] = option("w_align values to try, e.g. 0,0.25,0.5,1.", factory=list)
    sweep_task: list[str] = option("w_task values for a grid (default: w_task).", factory=list)
    select: Literal["auto", "task", "retrieval"] = option(
        "Sweep criterion: auto = the task metric with --task, else retrieval.", "auto"
    )
    fold: bool = option("Also merge into the base weights and save OUT/model.", False)
    layer: str = option(LAYER_HELP, "auto")
    max_length: int | None = option(MAX_LENGTH_HELP, None)
    task_metric: str | None = option("Task metric to maximise (default: the recipe's first).", None)
    batch_size: int = option(FORWARD_BATCH_HELP, 16)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.default_out("merge")
        self.default_task_split("dev")
        if self.max_examples is None:
            self.max_examples = 20  # task examples per language in the sweep
        self.sweep, self.sweep_task = _floats(self.sweep, "--sweep"), _floats(self.sweep_task, "--sweep-task")
        _check_layer(self.layer)
        if self.select == "task" and not self.task:
            raise MidalignError("--select task needs --task")
        if self.sweep and self.task and self.task_split == "test":  # the sweep chooses weights: never on test data
            raise MidalignError("--split test: a merge sweep chooses weights, so it scores the task's dev split")
        _at_least(self, 1, "batch_size")


@dataclass(kw_only=True)
class TaskDataConfig(OutputOptions, TaskOptions):
    """Write a task recipe's examples (one split) as prompt/completion/language JSONL for midalign-train."""

    max_words: int | None = option(
        "Keep only examples whose answer has at most N words (before --max-examples applies).", None
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.default_out("task-data")
        self.default_task_split("train")
        self.default_english()
        if self.task is None:
            raise MidalignError(f"--task is required (one of {', '.join(TASKS)})")


@dataclass(kw_only=True)
class CldrDataConfig(OutputOptions, SeedOptions):
    """Write CLDR localization data (train/dev/test prompt-completion JSONL) for midalign-train and -evaluate."""

    task_langs: list[str] = option(
        TASK_LANGS_HELP, factory=lambda: ["eng_Latn", "deu_Latn", "fra_Latn"], aliases=["--langs"]
    )
    cldr_kind: Literal["date_long", "month_year", "number", "currency"] = option(
        CLDR_KIND_HELP, "date_long", aliases=["--kind"]
    )
    n_train: int = option("Training items per language.", 150)
    n_dev: int = option("Dev items per language.", 20)
    n_test: int = option("Test items per language.", 50)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.default_out("cldr-data")


@dataclass(kw_only=True)
class CacheConfig:
    """List or trim the shared hidden-state cache (the one midalign-analyze fills): one row per model, pooling,
    dtype, corpus and split, with its languages, size and when it was last used."""

    action: Literal["ls", "prune"] = option(
        "ls: list the cache; prune: delete what --older-than / --match / --stale / --all select, plus what "
        "interrupted runs left (temporary files, arrays without a manifest, entries of an older cache format).",
        "ls",
        positional=True,
    )
    cache_dir: str | None = option(CACHE_HELP, None)
    older_than: float | None = option("prune: folders not used for this many days.", None)
    match: str | None = option("Only folders whose model identity contains this text (e.g. gemma).", None)
    stale: bool = option(
        "prune: folders made with other versions of torch, transformers or tokenizers than the installed ones "
        "(never reused by this installation).",
        False,
    )
    all: bool = option("prune: every folder (with --match: every folder it matches).", False)
    dry_run: bool = option("prune: say what would be deleted, delete nothing.", False)

    def __post_init__(self) -> None:
        if self.older_than is not None and self.older_than < 0:
            raise MidalignError("--older-than must be at least 0 days")
