"""The LoRA training loop on `accelerate`: task LM loss and middle-layer alignment loss, checkpoints, resume.

Micro-steps. Each epoch has R rounds, R = max(task batches, alignment batches) per pass; the shorter stream is
cycled (restarted with a fresh shuffle, see `CycledBatchSampler`), so every epoch sees every task example and
every alignment pair at least once. A round is:
- `alternate` (the paper): two micro-steps, a task micro-batch then an alignment micro-batch, each its own
  forward/backward (alignment loss times `align_weight`, 1.0 in the paper);
- `weighted`: one micro-step with loss = task + align_weight * align;
- without task data: one alignment micro-step; with task data and align_weight 0: one task micro-step (the
  task-only baseline).
An optimizer step follows every `grad_accum` micro-steps (the micro-step stream runs on across epochs); each
micro-step's loss is divided by the number of micro-steps in its step, so a step averages its micro-batches.

Alignment micro-batches run the decoder only up to block k (`forward_layers`: no block above k, no LM head);
task micro-batches run the whole model, with logits only from the earliest completion position on.

Precision: the frozen base weights as loaded (bf16 on a GPU in a bf16 run, fp32 on a CPU); the LoRA weights, their
gradients and the optimizer in fp32; in a bf16 run every forward under `torch.autocast` to bf16 (`Trainer.autocast`).
accelerate is given no mixed precision, so one process can run trainings of either precision in sequence.

Checkpoints (`OUT/checkpoints/step-NNNNNN`) hold the adapter weights (`adapter/`), the optimizer, schedule and each
process's RNG state (`Accelerator.save_state`; the frozen base weights are not written) and `trainer_state.json`,
written last.

Several processes (`accelerate launch`, `torchrun`; see docs/scaling.md). Each process takes every n-th batch of
each stream (`CycledBatchSampler` shards), so `--batch-size` is per process and an optimizer step covers
batch x grad_accum x processes examples. The model is not wrapped in DDP: DDP's gradient hooks would see only
forwards through the wrapper, and the alignment micro-steps run the stopped forward (`forward_layers`) on the
model itself. Instead every process starts from the main process's LoRA weights (`distributed.broadcast_parameters`)
and, before each optimizer step, the LoRA gradients (a few MB) are averaged over processes in one flat all-reduce
(`distributed.average_gradients`), for task and alignment alike; every process then takes the same step. Alignment
negatives are per process by default: each process's InfoNCE sees its own micro-batch, exactly as one process with
grad_accum x processes micro-steps would (and as the paper's per-device micro-batches did); `gather_negatives`
gathers every process's pairs so each anchor is scored against the global micro-batch, exactly as one process with
a batch n times larger. Only the main process writes logs, checkpoints and the adapter.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, send_to_device, set_seed
from peft import LoraConfig, get_peft_model
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_inverse_sqrt_schedule

from midalign import distributed
from midalign.errors import MidalignError
from midalign.models.representations import decoder_blocks, forward_layers, pool
from midalign.options import default_lr
from midalign.training import losses
from midalign.training.data import CycledBatchSampler, collate_pairs, collate_task, load_adapter_weights, n_batches
from midalign.training.spaces import AlignmentSpace

logger = logging.getLogger(__name__)

STEP_COLUMNS = ("step", "epoch", "task_loss", "align_loss", "lr")
STATE_FILE = "trainer_state.json"
# MoE routers are Linear layers too, but the paper adapts attention and MLP projections only.
_NOT_TARGETS = {"gate", "router", "lm_head"}


# Engines that take the model over (shard it, or own its backward and step); the trainer averages the LoRA gradients
# itself and steps its own optimizer, so it would silently bypass them.
_ENGINES = (DistributedType.DEEPSPEED, DistributedType.FSDP, DistributedType.MEGATRON_LM)


def check_distributed_type(kind: DistributedType) -> None:
    """Refuse an accelerate config that asks for DeepSpeed, FSDP or Megatron-LM: plain data parallelism only."""
    if kind in _ENGINES:
        raise MidalignError(
            f"midalign-train does not run under accelerate's {kind.value} (distributed_type in the accelerate "
            "config): it runs plain data parallelism, e.g. --config_file configs/accelerate/ddp.yaml; see "
            "docs/scaling.md"
        )


class NonFiniteLossError(MidalignError):
    """A loss became NaN or inf; training stops and the last checkpoint stays as it was."""


def resolve_target_modules(model: nn.Module, requested: Sequence[str] | None = None) -> list[str]:
    """LoRA target names: every Linear/Conv1D inside the decoder blocks (q,k,v,o,gate,up,down for Llama-likes;
    c_attn, c_proj, c_fc for GPT-2) except MoE routers, or the requested names after checking they exist."""
    from transformers.pytorch_utils import Conv1D

    found: dict[str, None] = {}
    for block in decoder_blocks(model):
        for name, module in block.named_modules():
            if isinstance(module, (nn.Linear, Conv1D)) and name.rsplit(".", 1)[-1] not in _NOT_TARGETS:
                found[name.rsplit(".", 1)[-1]] = None
    if requested:
        missing = [name for name in requested if name not in found]
        if missing:
            raise MidalignError(f"--target-modules {missing} not found in the decoder blocks; available: {list(found)}")
        return list(requested)
    if not found:
        raise MidalignError(f"no Linear layers found in the blocks of {type(model).__name__}; pass --target-modules")
    return list(found)


def attach_lora(model: nn.Module, r: int, alpha: int, dropout: float, targets: Sequence[str]) -> nn.Module:
    """Wrap the model with a fresh peft LoRA adapter (causal LM task type) on `targets`."""
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets), task_type="CAUSAL_LM"
    )
    return get_peft_model(model, config)


def _logits_from(input_ids: torch.Tensor, labels: torch.Tensor) -> int:
    """How many trailing positions need logits: from the token before the earliest completion token on."""
    has_label = (labels != -100).any(dim=0)  # [T]
    first = int(has_label.nonzero()[0]) if has_label.any() else 1
    return input_ids.shape[1] - max(first - 1, 0)


class Trainer:
    """Runs `config`'s training of a peft model; `train()` returns the number of optimizer steps done."""

    def __init__(
        self,
        config,
        model: nn.Module,
        tokenizer,
        layer: int,
        task: list | None,
        pairs: list | None,
        out: Path,
        precision: str = "fp32",
    ) -> None:
        self.config, self.layer, self.out = config, layer, Path(out)
        self.precision = precision
        # The precision is ours (`autocast`), not accelerate's: accelerate fixes one mixed precision per process, and
        # one process may run fp32 and bf16 trainings in sequence (a notebook, the tests). An explicit "no" also
        # overrides the mixed_precision of an accelerate config, so --dtype alone decides.
        self.accelerator = Accelerator(cpu=distributed.uses_cpu(config.device), mixed_precision="no")
        self.state = self.accelerator.state
        check_distributed_type(self.accelerator.distributed_type)
        accumulation = self.accelerator.gradient_accumulation_steps  # an accelerate config or launch flag sets it
        if accumulation != 1:
            raise MidalignError(
                f"accelerate's gradient_accumulation_steps is {accumulation} (from the accelerate config or launch "
                f"flags): leave it unset; midalign-train accumulates by --grad-accum ({config.grad_accum}) itself"
            )
        n_processes, rank = self.accelerator.num_processes, self.accelerator.process_index
        self.align_loss = losses.AlignmentLoss(config.temperature, config.symmetric)  # raw until `use_space`
        self.gather_negatives = bool(getattr(config, "gather_negatives", False)) and n_processes > 1
        use_align = bool(pairs) and not (task and config.align_weight == 0)  # weight 0: the task-only baseline
        self.kinds = _pattern(config.mode, has_task=bool(task), has_align=use_align)
        sizes = {"task": config.task_batch_size, "align": config.align_batch_size or config.task_batch_size}
        data = {"task": task, "align": pairs if use_align else None}
        per_pass = {kind: n_batches(len(data[kind]), sizes[kind]) for kind in ("task", "align") if data[kind]}
        self.rounds = math.ceil(max(per_pass.values()) / n_processes)  # per process; the epoch covers them all
        self.micro_per_epoch = self.rounds * len(self.kinds)
        self.total_micro = self.micro_per_epoch * config.epochs
        self.total_steps = math.ceil(self.total_micro / config.grad_accum)
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.warmup = math.ceil(config.warmup_ratio * self.total_steps)
        pad = tokenizer.pad_token_id
        collates = {"task": partial(collate_task, pad_token_id=pad), "align": partial(collate_pairs, pad_token_id=pad)}
        self.samplers, loaders = {}, {}
        for stream, kind in enumerate(per_pass):
            self.samplers[kind] = CycledBatchSampler(
                len(data[kind]), sizes[kind], self.rounds, config.seed, stream, shard=rank, num_shards=n_processes
            )
            # An own generator: a DataLoader iterator draws a seed from the global RNG otherwise, which would shift
            # the LoRA dropout masks of a resumed run (its iterators start mid-epoch) against an uninterrupted one.
            generator = torch.Generator().manual_seed(config.seed)
            loaders[kind] = DataLoader(
                data[kind], batch_sampler=self.samplers[kind], collate_fn=collates[kind], generator=generator
            )
        # Not wrapped in DDP: its hooks would see only the task forward (the alignment forward stops at block k in
        # `forward_layers`), so `train` averages the LoRA gradients itself. What DDP does when it wraps a model,
        # start every process from the main process's weights, is done here.
        self.model = model.to(self.accelerator.device)
        trainable = [p for p in model.parameters() if p.requires_grad]
        distributed.broadcast_parameters(self.state, trainable)
        lr = config.lr if config.lr is not None else default_lr(has_task=bool(task))
        optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
        # Stepped by us once per optimizer step (not prepared: accelerate would step it once per process).
        self.scheduler = get_inverse_sqrt_schedule(optimizer, num_warmup_steps=self.warmup)
        # The schedule's value before any step is 0 during warm-up, which would make step 1 a step at lr 0: start
        # one step in, so optimizer step t runs at lr * t / warmup and the peak comes at step `warmup`.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
            self.scheduler.step()
        self.accelerator.register_for_checkpointing(self.scheduler)
        # Prepared so that `Accelerator.save_state` and `load_state` keep its state (it moves it to the device too).
        self.optimizer = self.accelerator.prepare(optimizer)
        # The loaders stay ours: accelerate's sharding would cut our cycled batch stream differently (it restarts
        # at the first batches to even out processes); batches are moved to the device in `_micro_batches`.
        self.loaders = loaders

    def use_space(self, space: AlignmentSpace) -> None:
        """Take the alignment loss's cosine in `space` (its statistics go into every checkpoint's adapter folder)."""
        self.align_loss.space = space.to(self.accelerator.device)

    def autocast(self) -> torch.autocast:
        """bf16 autocast on this process's device in a bf16 run (LoRA weights and optimizer stay fp32), else none."""
        return torch.autocast(self.accelerator.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    # ---- checkpoints -------------------------------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """Complete checkpoints (their state file was written last), oldest first."""
        root = self.out / "checkpoints"
        return sorted(path.parent for path in root.glob(f"step-*/{STATE_FILE}")) if root.exists() else []

    def save_checkpoint(self, step: int, micro: int) -> Path:
        """Save the training state after optimizer step `step`; keep the newest `keep_checkpoints`."""
        path = self.out / "checkpoints" / f"step-{step:06d}"
        main = self.accelerator.is_main_process
        if main and path.exists():
            shutil.rmtree(path)
        self.accelerator.wait_for_everyone()
        # Every process writes its RNG state, the main process the optimizer and schedule (the model is not
        # prepared, so accelerate writes no weights) and the adapter: the frozen base weights never change.
        self.accelerator.save_state(str(path))
        if main:
            self.model.save_pretrained(str(path / "adapter"))
            if self.align_loss.space.stats is not None:
                self.align_loss.space.stats.save(path / "adapter")
        self.accelerator.wait_for_everyone()
        if main:
            state = {
                "step": step,
                "micro_step": micro,
                "total_steps": self.total_steps,
                "layer": self.layer,
                "num_processes": self.accelerator.num_processes,
            }
            (path / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
            for old in self.checkpoints()[: -self.config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return path

    def resume(self) -> tuple[int, int]:
        """Load the newest complete checkpoint; return (optimizer steps, micro-steps) done, (0, 0) if none."""
        found = self.checkpoints()
        if not found:
            logger.warning("--resume: no checkpoint in %s; starting from scratch", self.out / "checkpoints")
            return 0, 0
        state = json.loads((found[-1] / STATE_FILE).read_text())
        if state.get("num_processes", 1) != self.accelerator.num_processes:
            raise MidalignError(
                f"checkpoint {found[-1]} was made by {state.get('num_processes', 1)} process(es), this run has "
                f"{self.accelerator.num_processes}: resume with the same number of processes"
            )
        if state["total_steps"] != self.total_steps:
            raise MidalignError(
                f"checkpoint {found[-1]} was made for {state['total_steps']} steps, this run has {self.total_steps}"
            )
        self.accelerator.load_state(str(found[-1]))  # optimizer, schedule, this process's RNG state
        load_adapter_weights(self.model, found[-1] / "adapter")
        logger.info("resumed from %s (step %d of %d)", found[-1], state["step"], self.total_steps)
        return state["step"], state["micro_step"]

    # ---- losses ------------------------------------------------------------------------------------------------
    def task_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Causal LM loss on completion tokens (mean over them); logits only where a label can follow."""
        keep = _logits_from(batch["input_ids"], batch["labels"])
        out = self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            labels=batch["labels"][:, -keep:],  # the model shifts them by one itself
            logits_to_keep=keep,
            use_cache=False,
        )
        return out.loss

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Masked-mean-pooled hidden_states[k] [B, H], running blocks 1..k only; keeps the autograd graph.

        Rows go through in length-sorted chunks of `embed_chunk`, each cut to its own longest row: a batch mixing
        languages pads every row to the longest script (Amharic paragraphs are 3x English ones), and pooled
        vectors do not depend on batch composition, so this only removes padding work."""
        lengths = attention_mask.sum(dim=1)  # [B]; right padding (collate_pairs)
        order = torch.argsort(lengths, descending=True)  # [B]
        pooled = []
        for rows in order.split(self.config.embed_chunk or len(order)):
            width = int(lengths[rows].max())
            ids, mask = input_ids[rows, :width], attention_mask[rows, :width]  # [b, width]
            states = forward_layers(self.model, ids, mask, [self.layer], transform=lambda h, m=mask: pool(h, m, "mean"))
            pooled.append(states[self.layer])  # [b, H]
        return torch.cat(pooled)[torch.argsort(order)]  # [B, H], back in batch order

    def alignment_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """InfoNCE at layer k between the non-English side and English, in-batch negatives."""
        x = self.embed(batch["src_input_ids"], batch["src_attention_mask"])  # [B, H]
        en = self.embed(batch["tgt_input_ids"], batch["tgt_attention_mask"])  # [B, H]
        rows, langs = batch["rows"], batch["langs"]  # [B] each
        if self.gather_negatives:  # every process's pairs: [B_global, H], this process's own rows keep their graph
            x, en, rows, langs = (self._global_batch(local) for local in (x, en, rows, langs))
        return self.align_loss(x, en, rows, x_langs=langs, en_langs=torch.zeros_like(langs))  # English: position 0

    def _global_batch(self, local: torch.Tensor) -> torch.Tensor:
        """Every process's rows in rank order [B_global, ...], this process's own ones being `local` itself.

        Each process then computes the same global loss L, but its gradient reaches only its own embeddings; the
        sum over processes of those partial gradients is dL/dθ, so the loss is scaled by the number of processes
        (`align_scale`) before the gradients are averaged."""
        everyone, start = distributed.gather_rows(self.state, local)
        return torch.cat([everyone[:start], local, everyone[start + len(local) :]])

    # ---- loop --------------------------------------------------------------------------------------------------
    def _micro_batches(self, micro: int) -> Iterator[tuple[int, dict]]:
        """(micro-step index, {kind: batch}) from micro-step `micro` to the end of training."""
        while micro < self.total_micro:
            epoch, offset = divmod(micro, self.micro_per_epoch)
            iterators = {}
            for kind, loader in self.loaders.items():
                self.samplers[kind].set_epoch(epoch)
                done = sum(kind in self.kinds[i % len(self.kinds)] for i in range(offset))
                iterators[kind] = iter(self.accelerator.skip_first_batches(loader, done) if done else loader)
            for index in range(offset, self.micro_per_epoch):
                kinds = self.kinds[index % len(self.kinds)]
                yield micro, {kind: send_to_device(next(iterators[kind]), self.accelerator.device) for kind in kinds}
                micro += 1

    def _step_means(self, sums: dict[str, list[float]], step: int) -> dict[str, str]:
        """Mean loss of each kind over this step's micro-batches of every process; stops on a non-finite one."""
        totals = {kind: (sum(values), len(values)) for kind, values in sums.items()}
        if self.accelerator.num_processes > 1:
            flat = torch.tensor([x for kind in ("task", "align") for x in totals[kind]], dtype=torch.float64)
            flat = distributed.all_reduce_sum(self.state, flat.to(self.accelerator.device)).cpu().tolist()
            totals = {"task": (flat[0], int(flat[1])), "align": (flat[2], int(flat[3]))}
        means = {}
        for kind, (total, count) in totals.items():
            if count and not math.isfinite(total):  # the same verdict on every process: all of them stop
                last = self.checkpoints()
                raise NonFiniteLossError(
                    f"{kind} loss is {total / count} at optimizer step {step + 1}; stopped. Last good checkpoint: "
                    f"{last[-1] if last else 'none (no checkpoint was saved yet)'}. Try --dtype fp32, a lower --lr, "
                    "or check the data; --resume continues from that checkpoint."
                )
            means[kind] = f"{total / count:.6g}" if count else ""
        return means

    def train(self, resume: bool = False, on_step: Callable[[int], bool] | None = None) -> int:
        """Train to `total_steps`, logging every optimizer step to OUT/steps.csv; return the steps done.

        `on_step(step)` runs on every process after each optimizer step (and once with the steps done so far
        before the first one); when it returns True (early stopping: the same verdict on every process), training
        ends after a checkpoint of that step."""
        config = self.config
        main = self.accelerator.is_main_process
        # Dropout masks differ between processes (seed + process index), as between the micro-batches of one.
        set_seed(config.seed, device_specific=True)
        step, micro = self.resume() if resume else (0, 0)
        log_path = self.out / "steps.csv"
        kept = _read_log(log_path, step) if resume else []
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        align_scale = self.accelerator.num_processes if self.gather_negatives else 1
        self.model.train()
        started = time.perf_counter()
        with (
            log_path.open("w", newline="") if main else contextlib.nullcontext() as handle,
            tqdm(
                total=self.total_steps, initial=step, desc="train", unit="step", dynamic_ncols=True, disable=not main
            ) as bar,
        ):
            writer = csv.writer(handle) if main else None
            if writer:
                writer.writerow(STEP_COLUMNS)
                writer.writerows(kept)
                handle.flush()
            last: dict[str, str] = {}  # the latest loss of each kind, for the progress bar
            batches = self._micro_batches(micro)
            stop = on_step(step) if on_step else False
            while step < self.total_steps and not stop:
                group = min(config.grad_accum, self.total_micro - micro)
                sums: dict[str, list[float]] = {"task": [], "align": []}
                for _ in range(group):
                    micro, batch = next(batches)
                    with self.autocast():
                        parts = {}
                        if "task" in batch:
                            parts["task"] = self.task_loss(batch["task"])
                        if "align" in batch:
                            parts["align"] = self.alignment_loss(batch["align"])
                    for kind, value in parts.items():
                        sums[kind].append(float(value.detach()))
                    loss = parts.get("task", 0.0) + config.align_weight * align_scale * parts.get("align", 0.0)
                    (loss / group).backward()  # the step averages its micro-steps
                    micro += 1
                means = self._step_means(sums, step)  # before any update: a non-finite loss leaves the weights
                distributed.average_gradients(self.state, trainable)  # and over processes
                if config.max_grad_norm > 0:
                    self.accelerator.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
                lr = self.scheduler.get_last_lr()[0]
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                step += 1
                row = [step, round(micro / self.micro_per_epoch, 4), means["task"], means["align"], lr]
                if writer:
                    writer.writerow(row)
                    handle.flush()  # a crash keeps every finished step
                last.update({kind: value for kind, value in means.items() if value})
                bar.update(1)
                bar.set_postfix(last)
                stop = on_step(step) if on_step else False
                if step % config.save_every == 0 or step == self.total_steps or stop:
                    self.save_checkpoint(step, micro)
        logger.info("trained %d steps in %.1f s", step, time.perf_counter() - started)
        return step


def _pattern(mode: str, has_task: bool, has_align: bool) -> list[tuple[str, ...]]:
    """The batches each micro-step of a round uses."""
    if has_task and has_align:
        return [("task",), ("align",)] if mode == "alternate" else [("task", "align")]
    if has_align:
        return [("align",)]
    if has_task:
        return [("task",)]
    raise MidalignError("nothing to train: no task data and no alignment pairs")


def _read_log(path: Path, up_to: int) -> list[list[str]]:
    """Rows of an earlier steps.csv up to step `up_to` (steps after the checkpoint are redone)."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        return [row for row in list(csv.reader(handle))[1:] if row and int(row[0]) <= up_to]
