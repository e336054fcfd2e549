"""Exact arithmetic on saved LoRA adapters: load them, check that two fit together, merge them by rank concatenation.

A LoRA adapter adds dW = s * B @ A to each module it targets (s = alpha / r, or alpha / sqrt(r) with rsLoRA).
Stacking A = [A_task; A_align] (rows) and B = [s_task w_task B_task, s_align w_align B_align] (columns) gives
B @ A = w_task dW_task + w_align dW_align exactly. The merged adapter has r = r_task + r_align and lora_alpha = r
(s = 1), so peft loads and applies it as it is. A module only one adapter targets gets a zero block from the other.
peft's `add_weighted_adapter(combination_type="cat")` does the same on two adapters loaded into one model;
this works on the saved files, without the model. (Its `linear` sums the factors: B @ A gains cross terms.)
`midalign.training.merge` (midalign-merge) uses it with a weight sweep on dev data.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from peft import LoraConfig, load_peft_weights
from peft.utils.other import get_pattern_key

from midalign.errors import MidalignError
from midalign.records import MergeRecord, TrainingRecord, adapter_run
from midalign.training.spaces import SPACE_FILE

logger = logging.getLogger(__name__)

_LORA_KEY = re.compile(r"^(?P<module>.+)\.(?P<kind>lora(?:_embedding)?)_(?P<factor>[AB])(?:\.weight)?$")
_PREFIX = "base_model.model."  # peft's saved keys: the PeftModel's own path to the base model's modules
_RESIDUAL_INITS = ("pissa", "olora", "corda", "loftq", "lora_ga")  # inits that move part of W into the base weights


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
