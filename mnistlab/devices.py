"""Which device trains, and in which precision: CUDA, then Apple MPS, then the CPU; bf16 where the hardware has it."""

from __future__ import annotations

import contextlib
import logging
import os

import torch

from .errors import MnistLabError


log = logging.getLogger(__name__)

ENV_WORKERS = "MNISTLAB_WORKERS"
MAX_WORKERS = 32
GPU_WORKERS = 8  # past this, jobs on one GPU mostly wait for each other
GIB_PER_WORKER = 2  # a CUDA context (~0.5 GiB), the data set on the GPU and a small network's activations, with room


class DeviceError(MnistLabError):
    """A device or precision that is not available here; the message says which."""


def pick_device(name: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, then the CPU; an explicit name must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise DeviceError(f"unknown device {name!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was asked for, but no CUDA GPU is available here")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("Apple MPS was asked for, but it is not available here")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"unsupported device {name!r}")
    return dev


def device_name(dev: torch.device, threads: int | None = None) -> str:
    """The device in words; on the CPU with the threads one job trains with (this process's, unless given)."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type == "mps":
        return "Apple MPS"
    threads = threads or torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads != 1 else ''})"


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_precision(requested: str, dev: torch.device) -> str:
    if requested == "auto":
        if dev.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if dev.type == "cpu":
            return "bf16" if cpu_has_native_bf16() else "fp32"
        return "fp32"
    if requested == "fp16" and dev.type == "cpu":
        raise DeviceError("fp16 training is for GPUs; use bf16 or fp32 on the CPU")
    return requested


def autocast(dev: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(dev.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def default_workers(dev: torch.device | None = None) -> int:
    """How many jobs train at once: ``$MNISTLAB_WORKERS`` when it is a whole number from 1 to 32 (anything else is
    logged and ignored); else 1 on the CPU or MPS, where one job already uses every core; else, on CUDA, as many as
    the GPU's free memory holds at ~2 GiB each, one CPU core each (one is left for the server itself), at most 8.
    Each job's step is CPU-bound Python, so on a GPU several jobs in parallel processes keep it busier than one."""
    text = os.environ.get(ENV_WORKERS, "").strip()
    if text:
        try:
            wanted = int(text)
        except ValueError:
            wanted = 0
        if 1 <= wanted <= MAX_WORKERS:
            return wanted
        log.warning("%s=%r is not a whole number from 1 to %d; using the default", ENV_WORKERS, text, MAX_WORKERS)
    dev = dev if dev is not None else pick_device("auto")
    if dev.type != "cuda":
        return 1
    try:
        free, _total = torch.cuda.mem_get_info(dev)
    except RuntimeError as e:  # a GPU in a bad state: the server still starts, one job at a time
        log.warning("cannot read the GPU's free memory (%s); training one job at a time", e)
        return 1
    cores = os.cpu_count() or 1
    return max(1, min(GPU_WORKERS, cores - 1, free // (GIB_PER_WORKER << 30)))
