"""What a training job will cost: its network's multiply-adds, the images it sees and its epochs, as seconds on the
server's device. The job manager refuses a job over the teacher's limit with this estimate, so that one student's
giant network cannot hold the class's only worker for hours.

A training image costs a fixed part (the step's kernel launches and Python, the batch's augmentation) plus the
network's multiply-adds at the device's speed (forward and backward together); an evaluated image likewise. The
coefficients are fitted to measured runs by ``benchmarks/job_cost.py`` (its output:
``benchmarks/results/job_cost.jsonl``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .arch import ArchSpec, summary

TEST_IMAGES = 10_000  # evaluated after every epoch
ENV_MAX_MINUTES = "MNISTLAB_MAX_JOB_MINUTES"
MAX_JOB_MINUTES = 10.0  # the longest one job may hold the worker, as estimated here (the teacher can change it)


def default_max_job_minutes() -> float:
    """$MNISTLAB_MAX_JOB_MINUTES when it is a positive number, else MAX_JOB_MINUTES."""
    try:
        minutes = float(os.environ.get(ENV_MAX_MINUTES, MAX_JOB_MINUTES))
    except ValueError:
        return MAX_JOB_MINUTES
    return minutes if 0 < minutes < float("inf") else MAX_JOB_MINUTES


@dataclass(frozen=True)
class Speed:
    """Seconds per image = a fixed part + the network's forward multiply-adds at a speed; training (bf16 where the
    device has it, forward and backward) and evaluation (fp32, forward only) apart."""

    train_seconds_per_image: float
    train_macs_per_second: float
    eval_seconds_per_image: float
    eval_macs_per_second: float


# The CPU's: benchmarks/job_cost.py on the 2-core development CPU, rounded; MPS is assumed no faster. The GPU's match
# the eager step measured on an H200 (best, 4 epochs: 17-18 s); the CUDA-graph step is expected to be several times
# faster, so until benchmarks/gpu_check.py (its "cost" line) fits them there, a GPU estimate errs long: a job near the
# teacher's limit is refused early, never let run for longer than the limit.
SPEEDS = {
    "cpu": Speed(285e-6, 6.6e10, 105e-6, 7.1e10),
    "mps": Speed(285e-6, 6.6e10, 105e-6, 7.1e10),
    "cuda": Speed(60e-6, 1.0e12, 20e-6, 2.0e12),
}


def training_images(train_subset: int | None, validation: int = 0, full: int = 60_000) -> int:
    return min(train_subset or full, full - validation)


def estimated_seconds(spec: ArchSpec, epochs: int, images: int, device_type: str = "cpu",
                      evaluated: int = TEST_IMAGES) -> float:
    """Seconds to train ``spec`` on ``images`` images for ``epochs`` epochs, evaluating ``evaluated`` images after
    each (the test set, and a validation split if there is one)."""
    speed = SPEEDS.get(device_type, SPEEDS["cpu"])
    macs = summary(spec).total_macs
    train = speed.train_seconds_per_image + macs / speed.train_macs_per_second
    evaluate = speed.eval_seconds_per_image + macs / speed.eval_macs_per_second
    return epochs * (images * train + evaluated * evaluate)


def say_duration(seconds: float) -> str:
    """A duration as a person says it: "40 s", "12 min", "2 h 15 min"."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 90 else f"{minutes // 60} h {minutes % 60} min"


def too_long(seconds: float, limit_minutes: float, spec: ArchSpec, device: str) -> str | None:
    """Why a job estimated at ``seconds`` is refused under a limit of ``limit_minutes``, or None when it fits."""
    limit = limit_minutes * 60
    if seconds <= limit:
        return None
    return (f"this job would take about {say_duration(seconds)} on {device}, and the teacher allows "
            f"{say_duration(limit)} per job. Make it about {seconds / limit:.0f}x smaller: fewer epochs, quick mode, "
            f"or narrower layers (it does {summary(spec).total_macs / 1e6:.1f} M multiply-adds per image).")
