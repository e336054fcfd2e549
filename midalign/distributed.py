"""Multi-process runs (`accelerate launch`, `torchrun`): the process state, barriers and the few collectives we need.

A plain `midalign-analyze` or `midalign-train` is one process, and every helper here is then the identity or a
no-op, so single-process code paths stay as they were. Under a launcher, accelerate's `PartialState` reads its
environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) and initialises torch.distributed: NCCL on GPUs, gloo
on CPUs. On a machine without a GPU it has to be told `cpu=True`, or each process believes it is alone;
`process_state` does that.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list, gather_object

logger = logging.getLogger(__name__)

# How long a process may wait at a barrier or collective. The main process computes the metrics, evaluates and
# writes while the others wait for it; a crashed process does not wait this long (the launcher stops the others).
TIMEOUT = timedelta(hours=6)


def uses_cpu(device: str) -> bool:
    """Whether a run asked for `device` runs on the CPU (then gloo connects its processes); the one resolver of
    --device decides (`models.loading.resolve_device`)."""
    from midalign.models.loading import resolve_device

    return resolve_device(device).type == "cpu"


def process_state(device: str = "auto") -> PartialState:
    """The process state of this run (one process unless a launcher started several), initialising it once."""
    return PartialState(cpu=uses_cpu(device), timeout=TIMEOUT)


def barrier(state: PartialState) -> None:
    """Wait until every process gets here (nothing to wait for in a single process)."""
    if state.num_processes > 1:
        state.wait_for_everyone()


def gather_objects(state: PartialState, items: list) -> list:
    """The concatenation of every process's `items`, in rank order, on every process."""
    return gather_object(items) if state.num_processes > 1 else list(items)


def broadcast(state: PartialState, value: object) -> object:
    """The main process's `value` on every process."""
    if state.num_processes == 1:
        return value
    box = [value if state.is_main_process else None]
    broadcast_object_list(box)
    return box[0]


def all_reduce_sum(state: PartialState, values: torch.Tensor) -> torch.Tensor:
    """The elementwise sum of `values` over processes (a new tensor; the input is left as it was)."""
    total = values.clone()
    if state.num_processes > 1:
        torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
    return total


def broadcast_parameters(state: PartialState, parameters: Iterable[torch.nn.Parameter]) -> None:
    """Overwrite `parameters` with the main process's values on every process (as DDP does when it wraps a model).

    One broadcast per parameter, once per run: a few hundred small tensors for a LoRA adapter."""
    if state.num_processes == 1:
        return
    for param in parameters:
        torch.distributed.broadcast(param.detach(), src=0)  # in place: a detached tensor shares the storage


def average_gradients(state: PartialState, parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace each parameter's gradient by its mean over processes, in one flat all-reduce.

    A parameter without a gradient on a process (a LoRA weight above the alignment layer in an alignment-only
    micro-step) counts as zeros there; it keeps `None` only if no process has a gradient for it, as one process
    with the whole global batch would."""
    if state.num_processes == 1:
        return
    params = list(parameters)
    if not params:
        return
    device = params[0].device
    flat = torch.cat(
        [
            (p.grad.detach().float() if p.grad is not None else torch.zeros_like(p, dtype=torch.float32)).reshape(-1)
            for p in params
        ]
        + [torch.tensor([float(p.grad is not None) for p in params], device=device)]
    )  # [sum of numels + n_params]: gradients, then one has-a-gradient flag per parameter
    torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
    flags = flat[-len(params) :]
    offset = 0
    for param, flag in zip(params, flags.tolist(), strict=True):
        size = param.numel()
        if flag > 0:
            mean = (flat[offset : offset + size] / state.num_processes).view_as(param).to(param.dtype)
            if param.grad is None:
                param.grad = mean
            else:
                param.grad.copy_(mean)
        offset += size


def gather_rows(state: PartialState, tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(every process's rows concatenated in rank order [sum of B_r, ...], where this process's rows start).

    Processes may hold different numbers of rows (the last batch of a pass is short): sizes are exchanged first
    and the rows padded to the largest. The result carries no gradient; callers put their own rows back in."""
    if state.num_processes == 1:
        return tensor, 0
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(state.num_processes)]
    torch.distributed.all_gather(sizes, size)
    counts = [int(s) for s in sizes]
    padded = tensor.detach().new_zeros((max(counts), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor.detach()
    pieces = [torch.empty_like(padded) for _ in counts]
    torch.distributed.all_gather(pieces, padded.contiguous())
    gathered = torch.cat([piece[:count] for piece, count in zip(pieces, counts, strict=True)])
    return gathered, sum(counts[: state.process_index])
