"""Helpers shared by the benchmark scripts: import path, machine description, JSON lines out."""

import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from mnistlab import devices  # noqa: E402


def machine() -> dict:
    dev = devices.pick_device("auto")
    return {
        "device": devices.device_name(dev),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "native_bf16_cpu": devices.cpu_has_native_bf16(),
    }


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)
