"""Background training jobs: one queue, one worker thread, one device; pages read thread-safe snapshots.

Every session of the app submits to the same ``JobManager`` (shared with ``st.cache_resource``). Jobs run one at a
time in FIFO order, so several students training at once queue on the device instead of fighting over it. The worker
thread never calls Streamlit: it updates a job record under a lock, and a page asks for ``snapshot(job_id)``, a copy.
"""

from __future__ import annotations

import copy
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import checkpoint
from . import data as mdata
from . import train
from .arch import ArchSpec, count_params, summary

ACTIVE = ("queued", "running")
TARGET_ACCURACY = 99.4
ENV_RUNS = "MNISTLAB_RUNS"


def default_runs_dir() -> Path:
    """Where finished runs keep their checkpoints: $MNISTLAB_RUNS, else the per-user data directory."""
    env = os.environ.get(ENV_RUNS)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("mnistlab")) / "runs"


@dataclass
class JobSnapshot:
    id: str
    owner: str  # the submitting session, for "my jobs" and the one-job-per-session rule
    who: str  # the name the student typed, shown as plain text
    name: str  # the network's name
    spec: dict[str, Any]
    config: dict[str, Any]
    params: int
    status: str = "queued"  # queued | running | finished | cancelled | failed
    queue_position: int | None = None  # 1 = next to run; None when not queued
    device: str = ""
    precision: str = ""
    epoch: int = 0  # epochs completed
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    checkpoint_path: str | None = None
    submitted_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def progress(self) -> float:
        """Fraction of all batches done, 0..1."""
        if self.status == "finished":
            return 1.0
        if not self.epochs or not self.batches:
            return 0.0
        return min(1.0, (self.epoch * self.batches + self.batch) / (self.epochs * self.batches))

    @property
    def final_test_accuracy(self) -> float | None:
        return self.history[-1]["test_accuracy"] if self.history and self.status == "finished" else None

    def rule_checks(self) -> list[tuple[str, bool]]:
        """Each challenge rule, in words, and whether this run meets it (accuracy first, once it has one)."""
        cfg = train.TrainConfig(**self.config)
        checks = [(c.detail, c.passed) for c in summary(ArchSpec.from_dict(self.spec)).checks]
        checks += [(f"fewer than 20 epochs ({cfg.epochs})", cfg.epochs < 20),
                   ("trained on all 60,000 training images", cfg.train_subset is None and cfg.validation == 0)]
        acc = self.final_test_accuracy
        if acc is not None:
            checks.insert(0, (f"final test accuracy {acc:.2f} % (needs at least {TARGET_ACCURACY} %)",
                              acc >= TARGET_ACCURACY))
        return checks

    @property
    def challenge_eligible(self) -> bool:
        """Every rule but the accuracy met: what the leaderboard filters on."""
        return all(ok for text, ok in self.rule_checks() if not text.startswith("final test accuracy"))


class JobError(ValueError):
    """A job could not be submitted or found; the message says why."""


class JobManager:
    def __init__(self, runs_dir: Path | str, load_data: Callable[[], mdata.MNIST] | None = None,
                 max_queue: int = 50):
        self.runs_dir = Path(runs_dir)
        self._load_data = load_data or (lambda: mdata.load())
        self._data: mdata.MNIST | None = None
        self._jobs: dict[str, JobSnapshot] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._max_queue = max_queue
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="mnistlab-jobs", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ API for pages
    @property
    def device(self) -> str:
        """The device jobs run on, in words (a GPU's name, or the CPU)."""
        return train.device_name(train.pick_device("auto"))

    def submit(self, spec: ArchSpec, config: train.TrainConfig, owner: str = "", who: str = "") -> str:
        config.validate()
        with self._lock:
            if len(self._queue) >= self._max_queue:
                raise JobError(f"the queue is full ({self._max_queue} jobs waiting); try again in a few minutes")
            job_id = uuid.uuid4().hex[:12]
            self._jobs[job_id] = JobSnapshot(
                id=job_id, owner=owner, who=who, name=spec.name, spec=spec.to_dict(), config=config.to_dict(),
                params=count_params(spec), epochs=config.epochs, submitted_at=time.time())
            self._cancel[job_id] = threading.Event()
            self._queue.append(job_id)
            self._renumber()
            self._wake.notify_all()
        return job_id

    def cancel(self, job_id: str) -> None:
        """Cancel a queued job at once, a running one within one batch; a finished job is left alone."""
        with self._lock:
            job = self._get(job_id)
            self._cancel[job_id].set()
            if job.status == "queued":
                self._queue.remove(job_id)
                job.status, job.ended_at = "cancelled", time.time()
                self._renumber()

    def snapshot(self, job_id: str) -> JobSnapshot:
        with self._lock:
            return copy.deepcopy(self._get(job_id))

    def jobs(self, owner: str | None = None) -> list[JobSnapshot]:
        """Snapshots, newest first; only ``owner``'s when given."""
        with self._lock:
            found = [j for j in self._jobs.values() if owner is None or j.owner == owner]
            return [copy.deepcopy(j) for j in sorted(found, key=lambda j: j.submitted_at, reverse=True)]

    def wait(self, job_id: str, timeout: float = 60.0) -> JobSnapshot:
        """Block until the job is no longer active (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snap = self.snapshot(job_id)
            if not snap.active:
                return snap
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id} still {self.snapshot(job_id).status} after {timeout} s")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for ev in self._cancel.values():
                ev.set()
            self._wake.notify_all()
        self._worker.join(timeout=10)

    # ------------------------------------------------------------------ worker side
    def _get(self, job_id: str) -> JobSnapshot:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobError(f"no job {job_id!r}") from None

    def _renumber(self) -> None:
        for pos, jid in enumerate(self._queue, 1):
            self._jobs[jid].queue_position = pos

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                job_id = self._queue.popleft()
                job = self._jobs[job_id]
                job.status, job.queue_position, job.started_at = "running", None, time.time()
                self._renumber()
            self._execute(job_id)

    def _execute(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs[job_id]
            spec, cfg = ArchSpec.from_dict(job.spec), train.TrainConfig(**job.config)
            cancel = self._cancel[job_id]

        def on_event(ev) -> None:
            with self._lock:
                if isinstance(ev, train.Started):
                    job.device, job.precision, job.batches = ev.device, ev.precision, ev.batches_per_epoch
                elif isinstance(ev, train.BatchProgress):
                    job.batch, job.batches = ev.batch, ev.batches
                elif isinstance(ev, train.EpochEnd):
                    job.history.append(ev.to_dict())
                    job.epoch, job.batch = ev.epoch, 0

        try:
            if self._data is None:
                self._data = self._load_data()
            result = train.train(spec, cfg, self._data, on_event=on_event, cancel=cancel)
            path = None
            if result.history:
                ckpt = checkpoint.from_result(result, meta={"job_id": job_id, "owner": job.owner, "who": job.who})
                path = checkpoint.save(ckpt, self.runs_dir / f"{job_id}.pt")
            with self._lock:
                job.status = result.status
                job.checkpoint_path = str(path) if path else None
                job.ended_at = time.time()
        except Exception as e:  # a failed job records its error; the worker carries on with the next one
            with self._lock:
                job.status, job.ended_at = "failed", time.time()
                job.error = f"{type(e).__name__}: {e}"
