"""`midalign-merge`: merge a separately trained alignment LoRA into a task LoRA, exactly, by rank concatenation.

A LoRA adapter adds dW = s * B @ A to each module it targets (s = alpha / r, or alpha / sqrt(r) with rsLoRA).
Stacking A = [A_task; A_align] (rows) and B = [s_task w_task B_task, s_align w_align B_align] (columns) gives
B @ A = w_task dW_task + w_align dW_align exactly. The merged adapter has r = r_task + r_align and lora_alpha = r
(s = 1), so peft loads and applies it as it is. A module only one adapter targets gets a zero block from the other.
peft's `add_weighted_adapter(combination_type="cat")` does the same on two adapters loaded into one model;
this works on the saved files, without the model. (Its `linear` sums the factors: B @ A gains cross terms.)

`--sweep` tries several w_align (w_task fixed, or a grid with --sweep-task) on dev data: mean held-out retrieval
at the aligned layer and, with --task, the task metric on the recipe's dev split; the best pair is saved.
Outputs under --out: adapter/ (peft), model/ (--fold: merged into the base weights), sweep.csv, config.json.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import torch
from peft import LoraConfig, load_peft_weights
from peft.utils.other import get_pattern_key

from midalign.cli import prepare_output_dir
from midalign.errors import MidalignError
from midalign.options import MAX_NEW_TOKENS, MergeConfig
from midalign.records import MergeRecord, TrainingRecord, adapter_run
from midalign.training.spaces import SPACE_FILE

logger = logging.getLogger(__name__)

_LORA_KEY = re.compile(r"^(?P<module>.+)\.(?P<kind>lora(?:_embedding)?)_(?P<factor>[AB])(?:\.weight)?$")
_PREFIX = "base_model.model."  # peft's saved keys: the PeftModel's own path to the base model's modules
_RESIDUAL_INITS = ("pissa", "olora", "corda", "loftq", "lora_ga")  # inits that move part of W into the base weights
SWEEP_COLUMNS = ["w_task", "w_align", "metric", "language", "value"]


class MergeError(MidalignError):
    """Two adapters that cannot be merged exactly."""


class Factors(NamedTuple):
    """One module's LoRA factors: kind is `lora` (Linear, Conv) or `lora_embedding`; dW = s * B @ A."""

    kind: str
    A: torch.Tensor  # [r, in, ...]
    B: torch.Tensor  # [out, r, ...]


@dataclass
class Adapter:
    """A peft LoRA adapter folder: config, factors by module (saved key prefix), other tensors, midalign run."""

    path: Path
    config: LoraConfig
    modules: dict[str, Factors]
    extra: dict[str, torch.Tensor]  # modules_to_save copies
    run: TrainingRecord | MergeRecord | None  # the midalign run that wrote it (midalign-train's or -merge's OUT)

    def scaling(self, module: str) -> float:
        """peft's s for `module`: alpha (alpha_pattern aware) over r, or over sqrt(r) with rsLoRA."""
        config, rank = self.config, self.modules[module].A.shape[0]
        name = module.removeprefix(_PREFIX)  # peft matches patterns against the base model's module names
        alpha = config.alpha_pattern.get(get_pattern_key(config.alpha_pattern.keys(), name), config.lora_alpha)
        return alpha / math.sqrt(rank) if config.use_rslora else alpha / rank

    @property
    def identity(self) -> str | None:
        return self.run.resolved.model_identity if self.run is not None else None

    @property
    def layer(self) -> int | None:
        return self.run.resolved.layer if self.run is not None else None

    def languages(self, kind: str) -> list[str]:
        """The languages its run trained on for `kind` (task or align); none where that loss was off."""
        if self.run is None:
            return []
        resolved = self.run.resolved
        if isinstance(self.run, TrainingRecord):  # a task-only run (--align-weight 0) lists unaligned languages
            used = resolved.aligned if kind == "align" else resolved.n_task_examples > 0
            if not used:
                return []
        return list(resolved.task_languages if kind == "task" else resolved.align_languages)

    @property
    def max_length(self) -> int | None:
        """The token limit its alignment pairs had."""
        if isinstance(self.run, TrainingRecord):
            return self.run.resolved.align_max_length or self.run.config.align_max_length
        return self.run.config.max_length if self.run is not None else None


def _refuse_variants(config: LoraConfig, path: Path) -> None:
    """Only plain LoRA (dW = s * B @ A on unchanged base weights, no trained biases) merges exactly."""
    problems = [
        f"{f.name}={getattr(config, f.name)!r} (a LoRA variant)"
        for f in dataclasses.fields(LoraConfig)
        if f.metadata.get("is_lora_variant") and getattr(config, f.name, None)
    ]
    init = config.init_lora_weights
    if isinstance(init, str) and init.startswith(_RESIDUAL_INITS):
        problems.append(f"init_lora_weights={init!r} (it changed the base weights; convert it to plain LoRA first)")
    if config.bias != "none" or config.lora_bias:
        problems.append(
            f"bias={config.bias!r}, lora_bias={config.lora_bias} (trained biases are not stored as updates)"
        )
    for name in ("target_parameters", "trainable_token_indices", "layer_replication"):
        if getattr(config, name, None):
            problems.append(f"{name}={getattr(config, name)!r}")
    if problems:
        raise MergeError(f"{path}: cannot merge exactly, only plain LoRA adapters: {'; '.join(problems)}")


def load_adapter(path: str | Path) -> Adapter:
    """Read a peft LoRA adapter folder, refusing other adapter types and LoRA variants."""
    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise MergeError(f"{path}: no adapter_config.json (is it a peft adapter folder, like midalign-train's?)")
    raw = json.loads((path / "adapter_config.json").read_text())
    if raw.get("peft_type") != "LORA":
        raise MergeError(f"{path} is a {raw.get('peft_type')} adapter, not LoRA; only LoRA adapters can be merged")
    config = LoraConfig.from_pretrained(str(path))
    _refuse_variants(config, path)
    parts: dict[str, dict] = {}
    extra = {}
    for key, tensor in load_peft_weights(str(path), device="cpu").items():
        match = _LORA_KEY.match(key)
        if match:
            parts.setdefault(match["module"], {"kind": match["kind"]})[match["factor"]] = tensor
        elif config.modules_to_save and any(f".{name}." in f".{key}" for name in config.modules_to_save):
            extra[key] = tensor
        else:
            raise MergeError(f"{path}: unexpected tensor {key!r} in a plain LoRA adapter")
    incomplete = [module for module, found in parts.items() if not {"A", "B"} <= found.keys()]
    if incomplete:
        raise MergeError(f"{path}: modules with only one LoRA factor: {incomplete[:3]}")
    modules = {module: Factors(p["kind"], p["A"], p["B"]) for module, p in parts.items()}
    return Adapter(path, config, modules, extra, adapter_run(path))


def check_compatible(task: Adapter, align: Adapter) -> None:
    """Refuse adapters of different base models, of modules with different shapes, or both replacing modules."""
    names = [a.config.base_model_name_or_path for a in (task, align)]
    if task.identity and align.identity:
        if task.identity != align.identity:  # midalign's identity names the weights themselves
            raise MergeError(f"different base models: {task.identity} ({task.path}) vs {align.identity} ({align.path})")
        if names[0] != names[1]:
            logger.warning("base paths differ (%s vs %s) but name the same weights (%s)", *names, task.identity)
    elif names[0] != names[1]:
        raise MergeError(f"different base models: {names[0]!r} ({task.path}) vs {names[1]!r} ({align.path})")
    if task.config.revision != align.config.revision:
        raise MergeError(f"different base model revisions: {task.config.revision!r} vs {align.config.revision!r}")
    if task.config.fan_in_fan_out != align.config.fan_in_fan_out:
        raise MergeError("the adapters disagree on fan_in_fan_out: they were made for different module types")
    if task.config.modules_to_save and align.config.modules_to_save:
        raise MergeError(
            f"both adapters replace whole modules (modules_to_save {task.config.modules_to_save} and "
            f"{align.config.modules_to_save}); a weighted sum of two full copies needs the base weights"
        )
    for module in sorted(task.modules.keys() & align.modules.keys()):
        a, b = task.modules[module], align.modules[module]
        shapes = [(f.kind, f.B.shape[0], *f.A.shape[1:], *f.B.shape[2:]) for f in (a, b)]  # dW's shape, by kind
        if shapes[0] != shapes[1]:
            raise MergeError(
                f"{module.removeprefix(_PREFIX)}: the task adapter's update has shape {shapes[0][1:]}, the alignment "
                f"adapter's {shapes[1][1:]}: the adapters were made for different models"
            )


def merge(task: Adapter, align: Adapter, w_task: float, w_align: float) -> tuple[LoraConfig, dict[str, torch.Tensor]]:
    """The merged adapter's config and tensors (peft's saved key format): dW = w_task dW_task + w_align dW_align."""
    check_compatible(task, align)
    for adapter, weight in ((task, w_task), (align, w_align)):
        if adapter.config.modules_to_save and weight != 1:
            raise MergeError(
                f"{adapter.path} replaces {adapter.config.modules_to_save} with full copies (modules_to_save); "
                f"they can be carried over only at weight 1, not {weight}"
            )
    state, ranks = {**task.extra, **align.extra}, {}
    for module in sorted(task.modules.keys() | align.modules.keys()):
        ref = task.modules.get(module) or align.modules[module]
        blocks_a, blocks_b = [], []
        for adapter, weight in ((task, w_task), (align, w_align)):
            factors = adapter.modules.get(module)
            if factors is None:  # not targeted by this adapter: a zero block adds nothing and keeps r uniform
                rank = adapter.config.r
                blocks_a.append(ref.A.new_zeros((rank, *ref.A.shape[1:]), dtype=torch.float32))
                blocks_b.append(ref.B.new_zeros((ref.B.shape[0], rank, *ref.B.shape[2:]), dtype=torch.float32))
            else:  # s and w go into B: the merged adapter's own s is 1
                blocks_a.append(factors.A.float())
                blocks_b.append(factors.B.float() * (adapter.scaling(module) * weight))
        suffix = ".weight" if ref.kind == "lora" else ""  # embedding factors are bare parameters in peft
        state[f"{module}.{ref.kind}_A{suffix}"] = torch.cat(blocks_a, dim=0).contiguous()  # [r_t + r_a, in, ...]
        state[f"{module}.{ref.kind}_B{suffix}"] = torch.cat(blocks_b, dim=1).contiguous()  # [out, r_t + r_a, ...]
        ranks[module] = sum(block.shape[0] for block in blocks_a)
    return _merged_config(task, align, ranks), state


def _merged_config(task: Adapter, align: Adapter, ranks: dict[str, int]) -> LoraConfig:
    """The task adapter's config with r = alpha = r_task + r_align (per module where that differs), s = 1."""
    default = task.config.r + align.config.r
    pattern = {re.escape(m.removeprefix(_PREFIX)): r for m, r in ranks.items() if r != default}
    config = copy.deepcopy(task.config)
    config.r, config.lora_alpha, config.use_rslora = default, default, False
    config.rank_pattern, config.alpha_pattern = pattern, dict(pattern)
    plain = all(
        isinstance(a.config.target_modules, (list, set, tuple)) and not a.config.layers_to_transform
        and not a.config.exclude_modules for a in (task, align)
    )  # fmt: skip
    # Plain name lists cover every module of those names, so their union covers exactly the union of the
    # adapters' modules; otherwise list the modules themselves (peft matches a full name or a dotted suffix).
    if plain:
        config.target_modules = sorted(set(task.config.target_modules) | set(align.config.target_modules))
    else:
        config.target_modules = sorted(m.removeprefix(_PREFIX) for m in ranks)
    config.layers_to_transform = config.layers_pattern = config.exclude_modules = None
    config.modules_to_save = task.config.modules_to_save or align.config.modules_to_save
    config.init_lora_weights, config.inference_mode = True, True
    return config


def save_adapter(out: str | Path, config: LoraConfig, state: dict[str, torch.Tensor]) -> Path:
    """Write adapter_config.json and adapter_model.safetensors as peft's save_pretrained does."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(out))
    save_file(state, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    return out


def carry_space(align: Adapter, folder: Path) -> None:
    """Copy the alignment adapter's space statistics (midalign.training.spaces) beside the merged adapter: they say
    where its alignment loss took its cosine, and belong to the alignment update the merge carries."""
    source = align.path / SPACE_FILE
    if source.is_file():
        shutil.copy2(source, Path(folder) / SPACE_FILE)


def merge_adapters(task_dir: str | Path, align_dir: str | Path, out: str | Path, w_task=1.0, w_align=1.0) -> Path:
    """Merge two adapter folders into `out` (a peft adapter folder) with the given weights."""
    task, align = load_adapter(task_dir), load_adapter(align_dir)
    folder = save_adapter(out, *merge(task, align, w_task, w_align))
    carry_space(align, folder)
    return folder


# ---- weight sweep on dev data ------------------------------------------------------------------------------------
class DevScorer:
    """Dev scores of merged weights on one loaded base model: held-out retrieval at the aligned layer, and the task
    metric on the recipe's dev split. The peft model is built once; each weight pair only swaps its tensors."""

    def __init__(self, config: MergeConfig, model_name: str | None, lora: LoraConfig, align: Adapter) -> None:
        from peft import get_peft_model

        from midalign.models.loading import clamp_max_length, load_model

        base, self.tokenizer = load_model(
            model_name, revision=config.revision, dtype=config.dtype, device=config.device
        )
        self.model = get_peft_model(base, copy.deepcopy(lora)).eval()
        self.config, self.layer = config, _layer(config, align)
        if self.layer is None:
            raise MergeError("--layer is needed: the alignment adapter's folder has no midalign config naming it")
        limit = config.max_length or align.max_length or 512
        self.max_length = clamp_max_length(limit, base)
        self.corpus, self.dev, self.english = _dev_data(config, align)
        self.examples = self.metric = None
        if config.task:
            from midalign.tasks import recipe

            self.recipe = recipe(config.task)
            self.examples = self.recipe.load_examples(dataclasses.replace(config, english=self.english))

    def score(self, state: dict[str, torch.Tensor]) -> list[tuple[str, str, float]]:
        """(metric, language, value) rows; language `mean` is the mean over languages."""
        from peft import set_peft_model_state_dict

        from midalign.training.evaluation import dev_scores, retrieval_eval

        loaded = set_peft_model_state_dict(self.model, state)
        if loaded.unexpected_keys:
            raise MergeError(f"merged tensors the model has no place for: {loaded.unexpected_keys[:3]}")
        name = f"retrieval_acc_layer{self.layer}"
        if self.dev is not None:  # a pair corpus: its dev split
            scores = dev_scores(self.model, self.tokenizer, self.dev, self.layer, self.max_length,
                                self.config.batch_size)["retrieval_acc"]  # fmt: skip
            rows = [(name, lang, v) for lang, v in scores.items()] + [
                (name, "mean", sum(scores.values()) / len(scores))
            ]
        else:
            table = retrieval_eval(self.model, self.tokenizer, self.corpus, self.english, "dev", self.max_length,
                                   self.config.batch_size)  # fmt: skip
            acc = table[(table.layer == self.layer) & (table.metric == "retrieval_acc")]
            by_lang = acc.assign(lang=acc.src.where(acc.src != self.english, acc.tgt)).groupby("lang", sort=False)
            rows = [(name, lang, float(v)) for lang, v in by_lang.value.mean().items()]
            rows += [(name, "mean", float(acc.value.mean()))]
        if self.examples:
            rows += self._task_rows()
        return rows

    def _task_rows(self) -> list[tuple[str, str, float]]:
        from midalign.tasks import by_language
        from midalign.tasks.generate import generate

        rows, new_tokens = [], self.config.max_new_tokens or MAX_NEW_TOKENS[self.config.task]
        for lang, idx in by_language(self.examples).items():
            chosen = [self.examples[i] for i in idx]
            answers = generate(self.model, self.tokenizer, [e.prompt for e in chosen], new_tokens,
                               self.config.batch_size, progress=False)  # fmt: skip
            rows += [(metric, lang, float(v)) for metric, v in self.recipe.score(chosen, answers).items()]
        frame = pd.DataFrame(rows, columns=["metric", "language", "value"])
        self.metric = self.metric or self.config.task_metric or rows[0][0]
        return rows + [(m, "mean", float(v)) for m, v in frame.groupby("metric", sort=False).value.mean().items()]


def _dev_data(config: MergeConfig, align: Adapter):
    """(multi-way corpus, pair corpus, English) the weights are scored on, one of the first two None: a pair
    corpus's dev split, or the parallel sentences a multi-way run held out (else a hashed split)."""
    from midalign.corpora.pairs import DEV_PAIRS, dev_pairs, is_pair_source
    from midalign.corpora.parallel import load_parallel
    from midalign.training.data import heldout_split

    trained = align.run if isinstance(align.run, TrainingRecord) else None
    recorded = trained.config.align_data if trained is not None else None
    source = config.align_data or recorded or "udhr"
    langs = config.align_langs or align.languages("align")
    english = _english(config, align)
    if not langs:
        raise MergeError("--align-langs is needed: the alignment adapter's folder has no midalign config naming them")
    if is_pair_source(source):
        # The alignment run's own dev pairs (its --dev-pairs chose its adapter), so the sweep scores the same ones.
        count = trained.config.dev_pairs if trained is not None and source == recorded else DEV_PAIRS
        return None, dev_pairs(source, langs, english, count), english
    split = trained.resolved.align_split if trained is not None and source == recorded else None
    corpus = load_parallel(source, [english, *[lang for lang in langs if lang != english]], split)
    ids = set(trained.resolved.heldout_ids) if trained is not None and source == recorded else set()
    rows = [i for i, sentence_id in enumerate(corpus.ids) if str(sentence_id) in ids]
    if not rows:
        logger.warning("no held-out ids recorded for %s: scoring a hashed 20%% of its sentences", source)
        rows = heldout_split(corpus.ids, 0.2)[1]
    return corpus.select(rows), None, corpus.languages[0]


def _layer(config: MergeConfig, align: Adapter) -> int | None:
    """The aligned layer: --layer, else (auto) the alignment run's."""
    return align.layer if config.layer == "auto" else int(config.layer)


def _english(config: MergeConfig, align: Adapter) -> str:
    """The pivot: --english, else the alignment run's, else eng_Latn."""
    trained = align.run.resolved.english if isinstance(align.run, TrainingRecord) else None
    return config.english or trained or "eng_Latn"


def choose(sweep: pd.DataFrame, primary: str, secondary: str | None) -> tuple[float, float]:
    """The (w_task, w_align) with the best mean `primary`; ties go to `secondary`, then to the smaller w_align."""
    means = sweep[sweep.language == "mean"].pivot_table(index=["w_task", "w_align"], columns="metric", values="value")
    means = means.round(9)  # means of equal scores summed in another order differ in the last bits: still a tie
    keys = [primary] + ([secondary] if secondary in means.columns and secondary != primary else [])
    ranked = means.reset_index().assign(neg_align=lambda f: -f.w_align.abs())
    best = ranked.sort_values([*keys, "neg_align"], ascending=False, kind="stable").iloc[0]
    return float(best.w_task), float(best.w_align)


# ---- command -----------------------------------------------------------------------------------------------------
def run(config: MergeConfig) -> MergeRecord:
    """Merge (after a sweep, if asked) into `config.out`; return the run's record (also in OUT/config.json)."""
    started = time.perf_counter()
    out = prepare_output_dir(config.out)
    earlier = [name for name in ("adapter", "model", "sweep.csv") if (out / name).exists()]
    if earlier and not config.overwrite:
        raise MidalignError(f"{out} already holds a merge ({', '.join(earlier)}); pass --overwrite")
    task, align = load_adapter(config.task_adapter), load_adapter(config.align_adapter)
    check_compatible(task, align)
    model_name = config.model or (task.run.config.model if task.run else task.config.base_model_name_or_path)
    # The base the adapters were trained on, at its revision: given with --model, else the one they record.
    revision = config.revision if config.model else (task.run.config.revision if task.run else task.config.revision)
    config = dataclasses.replace(config, model=model_name, revision=revision)
    resolved = {"task_languages": sorted({*task.languages("task"), *align.languages("task")}),
                "align_languages": sorted({*task.languages("align"), *align.languages("align")})}  # fmt: skip
    resolved.update(model_identity=task.identity or align.identity, layer=_layer(config, align))
    chosen = (config.task_weight, config.align_weight)
    if config.sweep:
        scorer = DevScorer(config, model_name, merge(task, align, *chosen)[0], align)
        rows = []
        for w_task in config.sweep_task or [config.task_weight]:
            for w_align in config.sweep:
                begin = time.perf_counter()
                rows += [(w_task, w_align, *row) for row in scorer.score(merge(task, align, w_task, w_align)[1])]
                pd.DataFrame(rows, columns=SWEEP_COLUMNS).to_csv(out / "sweep.csv", index=False, float_format="%.6g")
                logger.info("w_task %g, w_align %g: %s (%.0f s)", w_task, w_align, ", ".join(
                    f"{r[2]} {r[4]:.4g}" for r in rows if r[:2] == (w_task, w_align) and r[3] == "mean"),
                    time.perf_counter() - begin)  # fmt: skip
        retrieval = f"retrieval_acc_layer{scorer.layer}"
        primary = scorer.metric if config.select == "task" or (config.select == "auto" and config.task) else retrieval
        secondary = retrieval if primary != retrieval else scorer.metric
        chosen = choose(pd.DataFrame(rows, columns=SWEEP_COLUMNS), primary, secondary)
        if scorer.dev is not None:
            dev = {"dev_source": f"{scorer.dev.source}/{scorer.dev.split}", "dev_pairs": scorer.dev.counts()}
            languages = scorer.dev.languages
        else:
            dev, languages = {"heldout_ids": scorer.corpus.ids}, scorer.corpus.languages[1:]
        resolved.update(layer=scorer.layer, criterion=primary, tie_break=secondary, retrieval_languages=languages,
                        **dev)  # fmt: skip
        del scorer  # its model holds a copy of the base weights
        logger.info("chosen by %s: w_task %g, w_align %g", primary, *chosen)
    lora, state = merge(task, align, *chosen)
    save_adapter(out / "adapter", lora, state)
    carry_space(align, out / "adapter")
    resolved.update(w_task=chosen[0], w_align=chosen[1], r=lora.r, target_modules=list(lora.target_modules),
                    task_adapter=str(task.path.resolve()), align_adapter=str(align.path.resolve()))  # fmt: skip
    if config.fold:
        from peft import PeftModel

        from midalign.models.loading import load_model

        base, tokenizer = load_model(model_name, revision=config.revision, dtype=config.dtype, device=config.device)
        folded = PeftModel.from_pretrained(base, str(out / "adapter")).merge_and_unload()  # peft's own loading
        folded.save_pretrained(str(out / "model"))
        tokenizer.save_pretrained(str(out / "model"))
    resolved["wall_seconds"] = round(time.perf_counter() - started, 1)
    record = MergeRecord.create(config, **resolved)
    record.save(out)
    logger.info("merged adapter (r %d, w_task %g, w_align %g) in %s", lora.r, *chosen, out / "adapter")
    return record
