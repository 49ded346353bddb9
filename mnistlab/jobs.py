"""Background training jobs: one queue, one worker thread, one device; pages read thread-safe snapshots.

Every session of the app submits to the same ``JobManager`` (shared with ``st.cache_resource``). Jobs run one at a
time in FIFO order, so several students training at once queue on the device instead of fighting over it. The worker
thread never calls Streamlit; ``worker.execute`` runs each job. Each run's state changes go to the registry
(``store.RunStore``) as they happen, always outside the manager's lock, so a registry that another program holds
locked delays only the worker, never a page. The live part (which batch, place in the queue, an end the registry has
not taken yet) is kept in memory under the lock, and a page asks for ``snapshot(run_id)`` or ``runs()``: copies with
the live part laid over the registry's rows.

The limits that protect a shared server live here, so every caller meets them: one active job per student, a bounded
queue, at most ``max_epochs`` epochs, an estimated duration the teacher sets (``cost.py``), and the network size cap
that ``arch.validate`` enforces. A runs folder that cannot be used (read-only, full, locked) turns training off with
a message (``problem``) instead of stopping the app.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Callable

from . import cost, devices, train, worker
from . import data as mdata
from .arch import ArchSpec, count_params
from .errors import MnistLabError
from .store import Recovery, Run, RunStore, StoreError, UnknownRun

log = logging.getLogger(__name__)

ENV_RUNS = "MNISTLAB_RUNS"
MAX_QUEUE = 30  # a class of 30 can each have one job waiting
MAX_EPOCHS = 30
RETRY_SECONDS = 5.0  # how often an idle worker retries the registry writes it could not make


def default_runs_dir() -> Path:
    """Where the run registry and checkpoints live: $MNISTLAB_RUNS, else the per-user data directory."""
    env = os.environ.get(ENV_RUNS)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("mnistlab")) / "runs"


_shared: dict[Path, "JobManager"] = {}
_shared_lock = threading.Lock()


def shared_manager(runs_dir: Path | str) -> "JobManager":
    """This process's one manager for ``runs_dir``. A second manager on the same registry would run a second queue
    that the first cannot see or cancel (Streamlit's "Clear cache" would otherwise make one)."""
    key = Path(runs_dir).resolve()
    with _shared_lock:
        manager = _shared.get(key)
        if manager is None or manager.closed:
            manager = _shared[key] = JobManager(key)
        return manager


def _unreadable(e: Exception) -> str:
    return (f"The run registry cannot be read ({e}). Runs in progress carry on; restart the server to set the "
            "registry aside and restore the runs from their checkpoints.")


class JobError(MnistLabError):
    """A job could not be submitted or found; the message says why."""


class JobManager:
    def __init__(self, runs_dir: Path | str, load_data: Callable[[], mdata.MNIST] | None = None,
                 max_queue: int = MAX_QUEUE, max_epochs: int = MAX_EPOCHS):
        self.store = RunStore(runs_dir)
        self.problem: str | None = None  # set when the runs folder cannot be used: training is off
        self.recovery = Recovery()  # what this server found at start: runs restored or interrupted
        self._starting = threading.Lock()  # one retry of the start at a time
        self._start_store()
        self._load_data = load_data or (lambda: mdata.load())
        self._data: mdata.MNIST | None = None
        self._live: dict[str, Run] = {}  # queued and running runs
        self._cancel: dict[str, threading.Event] = {}
        self._queue: deque[str] = deque()
        self._ended: dict[str, Run] = {}  # ended runs whose end the registry has not taken yet
        self._unrecorded: dict[str, str] = {}  # of those, the ones it refused: run id -> why
        self.registry_error: str | None = None  # set while the registry cannot be read
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the worker waits here for a job
        self._changed = threading.Condition(self._lock)  # ``wait_until`` waits here for any run to change
        self._version = 0  # counts the changes, so a waiter knows whether it missed one
        self.max_queue, self.max_epochs = max_queue, max_epochs
        self.max_job_minutes = cost.default_max_job_minutes()  # the teacher may change it while the server runs
        self.device_type = devices.pick_device("auto").type
        self._closed = False
        self._worker = threading.Thread(target=self._run, name="mnistlab-jobs", daemon=True)
        self._worker.start()

    def _start_store(self) -> None:
        """Recover the registry; when that fails, training is off with a message, and the app stays up."""
        try:
            self.recovery = self.store.recover()
            self.problem, self._retry_start = None, False
        except Exception as e:  # StoreError, or damage the checks did not foresee
            log.exception("training is off")
            self._retry_start = isinstance(e, StoreError) and e.busy  # only locked: try again on a later page
            self.problem = (f"Training is off on this server: {e}. Drawing with the shipped networks still works; "
                            "the teacher can fix the runs folder (MNISTLAB_RUNS) and restart the server.")

    # ------------------------------------------------------------------ API for pages
    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def device(self) -> str:
        """The device jobs run on, in words (a GPU's name, or the CPU)."""
        return devices.device_name(devices.pick_device("auto"))

    def submit(self, spec: ArchSpec, config: train.TrainConfig, owner: str = "", student_name: str = "") -> str:
        """Queue a run; a JobError (or SpecError / ConfigError) says why one is refused."""
        if self.problem:
            raise JobError(self.problem)
        config.validate()
        config = config.with_distill_chain()  # a network that cannot be learnt from is refused now
        if config.epochs > self.max_epochs:
            raise JobError(f"this server trains at most {self.max_epochs} epochs per run (you asked for "
                           f"{config.epochs})")
        self._check_cost(spec, config)
        run = Run(id=uuid.uuid4().hex[:12], owner=owner, student_name=student_name, name=spec.name,
                  spec=spec.to_dict(), config=config.to_dict(), params=count_params(spec), epochs=config.epochs,
                  submitted_at=time.time())
        with self._lock:  # the run is held in memory first, so a second press is refused while it is written
            self._check_room(owner)
            self._live[run.id], self._cancel[run.id] = run, threading.Event()
        try:
            self.store.add(run, page=True)
        except StoreError as e:
            with self._lock:
                self._live.pop(run.id, None)
                self._cancel.pop(run.id, None)
            raise JobError(f"the run registry cannot take a new run just now ({e}); try again in a minute") from None
        with self._lock:
            self._queue.append(run.id)
            self._renumber()
            self._wake.notify_all()
        return run.id

    def _check_room(self, owner: str) -> None:
        """Refuse a job the queue has no room for (caller holds the lock)."""
        if self._closed:
            raise JobError("the server is shutting down; try again in a minute")
        if owner and any(r.owner == owner for r in self._live.values()):
            raise JobError("you already have a job queued or running; cancel it or wait for it to finish")
        if sum(r.status == "queued" for r in self._live.values()) >= self.max_queue:
            raise JobError(f"the queue is full ({self.max_queue} jobs waiting); try again in a few minutes")

    def estimated_seconds(self, spec: ArchSpec, config: train.TrainConfig) -> float:
        """How long ``spec`` trained with ``config`` would hold this server's worker."""
        images = cost.training_images(config.train_subset, config.validation)
        return cost.estimated_seconds(spec, config.epochs, images, self.device_type,
                                      evaluated=cost.TEST_IMAGES + config.validation)

    def _check_cost(self, spec: ArchSpec, config: train.TrainConfig) -> None:
        if why := cost.too_long(self.estimated_seconds(spec, config), self.max_job_minutes, spec, self.device):
            raise JobError(why)

    def cancel(self, run_id: str, owner: str | None = None, teacher: bool = False) -> None:
        """Cancel a queued job at once, a running one within one batch; an ended run is left alone.

        Only the run's owner or the teacher may cancel a job; ``owner=None`` is the server itself."""
        with self._lock:
            run = self._live.get(run_id)
            if run is not None and owner is not None and not teacher and owner != run.owner:
                raise JobError("only the person who started this job, or the teacher, can cancel it")
            if run is not None:
                self._cancel[run_id].set()
                if teacher and owner != run.owner:
                    run.error = "Cancelled by the teacher."  # its student is told who stopped it
                waiting = run_id in self._queue
                if waiting:
                    self._queue.remove(run_id)
                    self._renumber()
        if run is None:
            self._stored(run_id)  # raises JobError for an unknown id
        elif waiting:
            self._end(run_id, "cancelled", page=True)

    def delete(self, run_id: str, owner: str | None = None, teacher: bool = False) -> None:
        """Remove an ended run and its checkpoint: its owner or the teacher only."""
        run = self.snapshot(run_id)
        if owner is not None and not teacher and owner != run.owner:
            raise JobError("only the person who started this run, or the teacher, can delete it")
        with self._lock:
            ending = self._ended.get(run_id)
        if ending is not None:  # ended a moment ago: its end goes to the registry first
            self._record_end(ending, page=True)
        try:
            self.store.delete(run_id)
        except StoreError as e:
            raise JobError(f"it cannot be deleted just now ({e})") from None

    def snapshot(self, run_id: str) -> Run:
        with self._lock:
            live = self._live.get(run_id) or self._ended.get(run_id)
            if live is not None:
                return self._copy(live)
        return self._stored(run_id)

    def _copy(self, run: Run) -> Run:
        """A page's copy of an in-memory run (caller holds the lock), saying so if the registry refused its end."""
        snap = copy.deepcopy(run)
        if run.id in self._unrecorded:
            note = f"the run registry could not record its end ({self._unrecorded[run.id]})"
            snap.error = f"{snap.error}; {note}" if snap.error else note
        return snap

    def check_registry(self) -> str | None:
        """None when the registry answers, else what every page should say (one line)."""
        if self.problem and self._retry_start and self._starting.acquire(blocking=False):
            try:  # locked by another program at start-up: it may be free now
                self._start_store()
            finally:
                self._starting.release()
        if self.problem:
            return self.problem
        try:
            self.store.count()
            self.registry_error = None
        except Exception as e:
            self.registry_error = _unreadable(e)
        return self.registry_error

    def runs(self, owner: str | None = None) -> list[Run]:
        """Every run (only ``owner``'s when given), newest first: the registry's rows, with this server's live and
        not yet recorded runs in their in-memory state. When the registry cannot be read, the in-memory runs alone,
        and ``registry_error`` says why."""
        stored = []
        if not self.problem:
            try:
                stored = self.store.runs(owner=owner)
                self.registry_error = None
            except Exception as e:  # a StoreError, or damage the row checks did not foresee: never a page's crash
                log.error("run registry unreadable: %s", e)
                self.registry_error = _unreadable(e)
        with self._lock:
            memory = {r.id: self._copy(r) for r in (*self._ended.values(), *self._live.values())
                      if owner is None or r.owner == owner}
        merged = [memory.pop(r.id, r) for r in stored] + list(memory.values())
        return sorted(merged, key=lambda r: -r.submitted_at)

    def queue(self) -> list[Run]:
        """The running job, then the queued ones in the order they will run."""
        with self._lock:
            running = [r for r in self._live.values() if r.status == "running"]
            return [copy.deepcopy(r) for r in running + [self._live[i] for i in self._queue]]

    def wait(self, run_id: str, timeout: float = 60.0) -> Run:
        """Block until the run has ended and the registry has taken its end, or refused it (for tests and scripts)."""
        def settled(run: Run) -> bool:
            with self._lock:
                return not run.active and (run_id not in self._ended or run_id in self._unrecorded)

        return self.wait_until(run_id, settled, timeout)

    def wait_until(self, run_id: str, condition: Callable[[Run], bool], timeout: float = 60.0) -> Run:
        """Block until ``condition(snapshot)`` holds, woken by every change of any run (a batch, an epoch, an end);
        the timeout only guards against a hang. Returns that snapshot; a TimeoutError says what the run was doing."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                version = self._version
            snap = self.snapshot(run_id)
            if condition(snap):
                return snap
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"run {run_id} still {snap.status} after {timeout} s "
                                   f"(epoch {snap.epochs_done}/{snap.epochs}, batch {snap.batch}/{snap.batches})")
            with self._lock:
                if self._version == version:  # nothing changed since the snapshot: sleep until something does
                    self._changed.wait(min(left, 1.0))  # (re-read each second: the registry can change from outside)

    def close(self) -> None:
        """Stop: queued jobs are cancelled, the running one stops within a batch and keeps its epochs; ends the
        registry refused so far are tried once more, so their cause survives a restart."""
        with self._lock:
            self._closed = True
            for ev in self._cancel.values():
                ev.set()
            waiting = list(self._queue)
            self._queue.clear()
            self._wake.notify_all()
        for run_id in waiting:
            self._end(run_id, "cancelled")
        self._worker.join(timeout=30)
        self._retry_unrecorded()
        self.store.close()

    # ------------------------------------------------------------------ worker side
    def _stored(self, run_id: str) -> Run:
        try:
            return self.store.get(run_id)
        except UnknownRun:
            raise JobError(f"no run {run_id!r}") from None
        except Exception as e:  # a StoreError, or damage the row checks did not foresee
            raise JobError(f"the run registry cannot be read just now ({e})") from None

    def _touch(self) -> None:
        """Something about a run changed (caller holds the lock): wake whoever waits for it."""
        self._version += 1
        self._changed.notify_all()

    def _renumber(self) -> None:
        for pos, rid in enumerate(self._queue, 1):
            self._live[rid].queue_position = pos
        self._touch()

    def _end(self, run_id: str, status: str, error: str | None = None, page: bool = False) -> None:
        """A run has ended: in memory at once (pages show the truth and the queue moves on), then in the registry,
        outside the lock. A registry that refuses the write keeps the run in memory, to be tried again by the
        worker; ``page``: a page's request, which does not wait long for a lock."""
        with self._lock:
            run = self._live.pop(run_id)
            run.status, run.queue_position, run.ended_at = status, None, time.time()
            run.error = error if error is not None else run.error
            self._cancel.pop(run_id, None)
            self._ended[run_id] = run
            self._touch()
        self._record_end(run, page)

    def _record_end(self, run: Run, page: bool = False) -> None:
        try:
            self.store.ended(run.id, run.status, error=run.error, page=page)
        except StoreError as e:
            log.warning("run %s ended %s, but the registry refused the write: %s", run.id, run.status, e)
            with self._lock:
                self._unrecorded[run.id] = str(e)
                self._touch()
            return
        with self._lock:
            self._ended.pop(run.id, None)
            self._unrecorded.pop(run.id, None)
            self._touch()

    def _retry_unrecorded(self) -> None:
        with self._lock:
            pending = [self._ended[i] for i in self._unrecorded if i in self._ended]
        for run in pending:
            self._record_end(run)

    def _run(self) -> None:
        try:
            self._verify_restored()
        except Exception:  # never let a damaged record stop the class's only worker before it starts
            log.exception("restored runs not re-evaluated (they do not count for the challenge)")
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    if not self._wake.wait(timeout=RETRY_SECONDS) and self._unrecorded:
                        break  # idle a while with ends the registry refused: try them again
                if self._closed:
                    return
                run_id = self._queue.popleft() if self._queue else None
                if run_id is not None:
                    run = self._live[run_id]
                    run.status, run.queue_position, run.started_at = "running", None, time.time()
                    self._renumber()
            if run_id is None:
                self._retry_unrecorded()
                continue
            try:
                self.store.started(run_id)
            except StoreError as e:  # the run itself can go ahead; its end is kept in memory if need be
                log.error("run %s: the registry could not record its start: %s", run_id, e)
            try:
                self._execute(run_id)
            except Exception:  # never let one run take the class's only worker down with it
                log.exception("the worker survived an error in run %s", run_id)

    def _execute(self, run_id: str) -> None:
        with self._lock:
            run, cancel = copy.deepcopy(self._live[run_id]), self._cancel[run_id]
        try:
            if self._data is None:
                self._data = self._load_data()
            result = worker.execute(run, self._data, self.store, cancel,
                                    progress=lambda event: self._progress(run_id, event),
                                    saved=lambda path: self._saved(run_id, path))
            self._end(run_id, result.status)
        except Exception as e:  # a failed run records its error; the worker carries on with the next one
            with self._lock:
                live = run_id in self._live
            if live:
                self._end(run_id, "failed", error=f"{type(e).__name__}: {e}")

    def _progress(self, run_id: str, event: train.Event) -> None:
        with self._lock:
            run = self._live.get(run_id)
            if run is None:
                return
            run.stage = "evaluating" if isinstance(event, train.Evaluating) else "training"
            if isinstance(event, train.Started):
                run.device, run.precision, run.batches = event.device, event.precision, event.batches_per_epoch
            elif isinstance(event, train.BatchProgress):
                run.batch, run.batches = event.batch, event.batches
                run.batch_losses.append((event.epoch - 1 + event.batch / max(1, event.batches), event.loss))
            elif isinstance(event, train.EpochEnd):
                run.history.append(event.to_dict())
                run.batch = 0
            self._touch()

    def _saved(self, run_id: str, path: str) -> None:
        with self._lock:
            if run_id in self._live:
                self._live[run_id].checkpoint_path = path
                self._touch()

    def _verify_restored(self) -> None:
        """Re-evaluate the runs rebuilt from checkpoint files before they can count for the challenge."""
        if self.problem:
            return
        try:
            if self.store.unverified() and self._data is None:
                self._data = self._load_data()
        except MnistLabError as e:  # the registry or the data cannot be read
            log.error("restored runs not re-evaluated (they do not count for the challenge): %s", e)
            return
        if self._data is not None:
            worker.verify_restored(self.store, self._data, stop=lambda: self._closed)
