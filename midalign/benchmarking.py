"""Helpers the benchmark scripts under analysis/ share: which device ran them, how busy the machine was, and wall
clocks that are honest on an accelerator (CUDA kernels run asynchronously, so a timer must wait for them)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

DEVICES = ("cpu", "cuda")


def check_device(device: str) -> torch.device:
    """The torch device for a benchmark's --device, with a one-line error when CUDA is asked for and absent."""
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch on this machine")
    return torch.device(device)


# Matrix-unit features that set the bf16 GEMM rate; VMs often report a generic model name, so name them too.
_CPU_FEATURES = ("amx_bf16", "avx512_bf16", "avx512f", "avx2")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo and its matrix features (platform.processor() is empty on most
    Linux systems), e.g. "Intel(R) Xeon(R) Processor (amx_bf16 avx512_bf16 avx512f avx2)"."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    name = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    features = [feature for feature in _CPU_FEATURES if feature in flags]
    return f"{name} ({' '.join(features)})" if features else name


def device_name(device: torch.device | str) -> str:
    """What ran the benchmark: the GPU's name on CUDA, else the CPU's model."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def load_average() -> float:
    """The 1-minute load average at the end of a measurement: readers see whether other work shared the CPUs."""
    return round(os.getloadavg()[0], 2)


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued kernels, so that a wall clock read next includes them."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def timed(device: torch.device | str, into: list[float]) -> Iterator[None]:
    """Append the block's wall-clock seconds to `into`, synchronising before and after on an accelerator."""
    synchronize(device)
    start = time.perf_counter()
    yield
    synchronize(device)
    into.append(time.perf_counter() - start)


def environment(device: torch.device | str) -> dict[str, object]:
    """The columns every benchmark table starts with: device, its name, CPU threads, load average."""
    return {
        "device": str(torch.device(device)),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "loadavg_1min": load_average(),
    }
