"""Background training jobs: one queue, up to K jobs at once on one device; pages read thread-safe snapshots.

Every session of the app submits to the same ``JobManager`` (shared with ``st.cache_resource``). Jobs start in FIFO
order as soon as one of the executor's K slots is free (``executor.py``: K = 1 on a CPU, one job at a time on a
thread; on a GPU several, each in a worker process; ``devices.default_workers``), so a class training at once queues
for the device instead of fighting over it. The manager's dispatcher thread never calls Streamlit; it starts each job
and records its start and end. Each run's state changes go to the registry (``store.RunStore``) as they happen,
always outside the manager's lock, so a registry that another program holds locked delays only the jobs, never a
page. The live part (which batch, place in the queue, an end the registry has not taken yet) is kept in memory under
the lock, and a page asks for ``snapshot(run_id)`` or ``runs()``: copies with the live part laid over the registry's
rows.

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
from .executor import Executor, Listener, ProcessExecutor, ThreadExecutor, failure
from .store import Recovery, Run, RunStore, StoreError, UnknownRun

log = logging.getLogger(__name__)

ENV_RUNS = "MNISTLAB_RUNS"
MAX_QUEUE = 30  # a class of 30 can each have one job waiting
MAX_EPOCHS = 30
RETRY_SECONDS = 5.0  # how often an idle dispatcher retries the registry writes it could not make


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
                 max_queue: int = MAX_QUEUE, max_epochs: int = MAX_EPOCHS, workers: int | None = None,
                 executor: Executor | None = None):
        """``workers``: jobs at once (default ``devices.default_workers()``): one trains on a thread of this
        process, more each in a worker process. ``load_data``: the data set for jobs on a thread and for re-evaluating
        restored runs; given (tests hold or replace the data that way), jobs run on a thread unless ``workers`` says
        more. ``executor``: where jobs run, in place of either (tests, another backend)."""
        self.store = RunStore(runs_dir)
        self.problem: str | None = None  # set when the runs folder cannot be used: training is off
        self.recovery = Recovery()  # what this server found at start: runs restored or interrupted
        self._starting = threading.Lock()  # one retry of the start at a time
        self._start_store()
        self._load_data = load_data or (lambda: mdata.load())
        self._data: mdata.MNIST | None = None
        self._data_lock = threading.Lock()
        self._live: dict[str, Run] = {}  # queued and running runs
        self._cancelled: set[str] = set()  # live runs asked to stop
        self._handed: set[str] = set()  # running runs the executor has taken
        self._queue: deque[str] = deque()
        self._ended: dict[str, Run] = {}  # ended runs whose end the registry has not taken yet
        self._to_record: list[str] = []  # of those, the ones the dispatcher has yet to write
        self._unrecorded: dict[str, str] = {}  # of those, the ones it refused: run id -> why
        self.registry_error: str | None = None  # set while the registry cannot be read
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the dispatcher waits here for a job, a free slot or an end
        self._changed = threading.Condition(self._lock)  # ``wait_until`` waits here for any run to change
        self._version = 0  # counts the changes, so a waiter knows whether it missed one
        self.max_queue, self.max_epochs = max_queue, max_epochs
        self.max_job_minutes = cost.default_max_job_minutes()  # the teacher may change it while the server runs
        self.device_type = devices.pick_device("auto").type
        self._closed = False
        if executor is None:
            workers = workers if workers is not None else 1 if load_data is not None else devices.default_workers()
            executor = ThreadExecutor(self._dataset) if workers == 1 else ProcessExecutor(workers)
        self._executor = executor
        executor.start(self.store, Listener(event=self._progress, saved=self._saved, ended=self._finish))
        self._dispatcher = threading.Thread(target=self._run, name="mnistlab-jobs", daemon=True)
        self._dispatcher.start()

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
    def workers(self) -> int:
        """How many jobs train at once."""
        return self._executor.slots

    @property
    def device(self) -> str:
        """The device jobs run on, in words (a GPU's name, or the CPU with the threads each job has)."""
        return devices.device_name(devices.pick_device("auto"), self._executor.threads)

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
            self._live[run.id] = run
        try:
            self.store.add(run, page=True)
        except StoreError as e:
            with self._lock:
                self._live.pop(run.id, None)
                self._cancelled.discard(run.id)
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
        """How long ``spec`` trained with ``config`` would hold one of this server's workers."""
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
                self._cancelled.add(run_id)
                if teacher and owner != run.owner:
                    run.error = "Cancelled by the teacher."  # its student is told who stopped it
                waiting, handed = run_id in self._queue, run_id in self._handed
                if waiting:
                    self._queue.remove(run_id)
                    self._renumber()
        if run is None:
            self._stored(run_id)  # raises JobError for an unknown id
        elif waiting:
            self._end(run_id, "cancelled", page=True)
        elif handed:  # else the dispatcher is handing it over and passes the cancel on (``_start``)
            self._executor.cancel(run_id)

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
        """The running jobs (the first started first), then the queued ones in the order they will run."""
        with self._lock:
            running = sorted((r for r in self._live.values() if r.status == "running"),
                             key=lambda r: r.started_at or 0.0)
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
        """Stop: queued jobs are cancelled, running ones stop within a batch and keep their epochs; ends the
        registry refused so far are tried once more, so their cause survives a restart."""
        with self._lock:
            self._closed = True
            self._cancelled.update(self._live)
            handed = list(self._handed)
            waiting = list(self._queue)
            self._queue.clear()
            self._wake.notify_all()
        for run_id in handed:
            self._executor.cancel(run_id)
        for run_id in waiting:
            self._end(run_id, "cancelled")
        self._dispatcher.join(timeout=30)
        self._executor.close(timeout=30)
        self._record_ends()
        self._retry_unrecorded()
        self.store.close()

    # ------------------------------------------------------------------ dispatcher side
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
        dispatcher; ``page``: a page's request, which does not wait long for a lock."""
        run = self._ending(run_id, status, error)
        if run is not None:
            self._record_end(run, page)

    def _finish(self, run_id: str, status: str, error: str | None) -> None:
        """The executor's word that a job has ended: in memory now, in the registry by the dispatcher (an executor's
        thread never waits for the registry)."""
        if self._ending(run_id, status, error, record_later=True) is None:
            log.warning("run %s: an end (%s) for a run that is not running", run_id, status)

    def _ending(self, run_id: str, status: str, error: str | None, record_later: bool = False) -> Run | None:
        with self._lock:
            run = self._live.pop(run_id, None)
            if run is None:
                return None
            run.status, run.queue_position, run.ended_at = status, None, time.time()
            run.error = error if error is not None else run.error
            self._cancelled.discard(run_id)
            self._handed.discard(run_id)
            self._ended[run_id] = run
            if record_later:
                self._to_record.append(run_id)
                self._wake.notify_all()
            self._touch()
            return run

    def _record_ends(self) -> None:
        with self._lock:
            ended = [self._ended[i] for i in self._to_record if i in self._ended]
            self._to_record.clear()
        for run in ended:
            self._record_end(run)

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

    def _free_slot(self) -> bool:
        """Whether the executor can take another job (caller holds the lock)."""
        return sum(r.status == "running" for r in self._live.values()) < self._executor.slots

    def _run(self) -> None:
        """The dispatcher: starts the oldest queued job whenever a slot is free, and records the jobs' ends."""
        try:
            self._verify_restored()
        except Exception:  # never let a damaged record stop the class's queue before it starts
            log.exception("restored runs not re-evaluated (they do not count for the challenge)")
        def work() -> bool:
            return bool(self._closed or self._to_record or (self._queue and self._free_slot()))

        while True:
            with self._lock:
                busy = self._wake.wait_for(work, timeout=RETRY_SECONDS)
                if self._closed:
                    return
                job = None
                if self._queue and self._free_slot():
                    run = self._live[self._queue.popleft()]
                    run.status, run.queue_position, run.started_at = "running", None, time.time()
                    self._renumber()
                    job = copy.deepcopy(run)
            self._record_ends()
            if job is not None:
                self._start(job)
            elif not busy:  # idle a while: try the ends the registry refused again
                self._retry_unrecorded()

    def _start(self, job: Run) -> None:
        try:
            self.store.started(job.id)
        except StoreError as e:  # the run itself can go ahead; its end is kept in memory if need be
            log.error("run %s: the registry could not record its start: %s", job.id, e)
        try:
            self._executor.submit(job)
        except Exception as e:  # never let one run take the class's queue down with it
            log.exception("run %s could not start", job.id)
            self._finish(job.id, "failed", failure(e))
            return
        with self._lock:
            if job.id not in self._live:
                return  # ended already
            self._handed.add(job.id)
            cancelled = job.id in self._cancelled
        if cancelled:  # asked to stop while it was being handed over
            self._executor.cancel(job.id)

    def _dataset(self) -> mdata.MNIST:
        """The data set for jobs on this process's threads and for re-evaluations, loaded once."""
        with self._data_lock:
            if self._data is None:
                self._data = self._load_data()
            return self._data

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
            data = self._dataset() if self.store.unverified() else None
        except MnistLabError as e:  # the registry or the data cannot be read
            log.error("restored runs not re-evaluated (they do not count for the challenge): %s", e)
            return
        if data is not None:
            worker.verify_restored(self.store, data, stop=lambda: self._closed)
