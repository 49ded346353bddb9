"""Where jobs run: the boundary between the job manager (queue, limits, registry, pages) and what trains a job.

The manager decides which job runs when and never hands an executor more than ``slots`` jobs at once; an executor
starts each job it is given at once and reports on it. A backend on several machines would be one more class with
these five members; nothing above the manager would change.

- ``slots``: how many jobs it trains at once.
- ``start(store, listener)``: once, before the first job.
- ``submit(job)``: start training ``job`` (a copy of its queued ``Run``: id, spec, config, owner, student's name);
  an exception says it could not start, and the manager fails the run with it.
- ``cancel(run_id)``: stop that job within a batch (an unknown or ended one: nothing).
- ``close(timeout)``: wait that long for the running jobs (the manager has cancelled them) to end, then stop.

Each job submitted gets exactly one ``listener.ended(run_id, status, error)``: "finished" or "cancelled" with no
error, or "failed" with why. Before it, ``listener.event`` gets its training events (``train.Started``,
``BatchProgress``, ``Evaluating``, ``EpochEnd``) and ``listener.saved`` each epoch's checkpoint once it is on disk.
Callbacks come on the executor's threads, in order for one job, and return quickly. The job itself writes its
checkpoints and records its device and epochs in the registry (``worker.execute``); the manager records its start
and end.

``ThreadExecutor`` trains on threads of the server (one job at a time: the step is CPU-bound Python, so more threads
would fight over the GIL); ``ProcessExecutor`` in long-lived worker processes, one job each.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import signal
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from . import data as mdata
from . import train, worker
from .devices import MAX_WORKERS
from .run import Run
from .store import RunStore

log = logging.getLogger(__name__)

STOP_SECONDS = 10  # how long a worker process that has left its job may take to exit before it is terminated


@dataclass(frozen=True)
class Listener:
    """What an executor tells the job manager about each job."""

    event: Callable[[str, train.Event], None]
    saved: Callable[[str, str], None]
    ended: Callable[[str, str, "str | None"], None]


class Executor(Protocol):
    slots: int
    threads: int  # CPU threads each job trains with

    def start(self, store: RunStore, listener: Listener) -> None: ...

    def submit(self, job: Run) -> None: ...

    def cancel(self, run_id: str) -> None: ...

    def close(self, timeout: float) -> None: ...


def failure(e: BaseException) -> str:
    """A run's error, as a page shows it."""
    return f"{type(e).__name__}: {e}"


class ThreadExecutor:
    """Jobs on threads of this process, with the data ``load_data`` gives (tests hold or replace it there)."""

    def __init__(self, load_data: Callable[[], mdata.MNIST], slots: int = 1):
        self.slots = slots
        self._load_data = load_data
        self._lock = threading.Lock()
        self._jobs: dict[str, tuple[threading.Thread, threading.Event]] = {}

    @property
    def threads(self) -> int:
        return torch.get_num_threads()

    def start(self, store: RunStore, listener: Listener) -> None:
        self._store, self._listener = store, listener

    def submit(self, job: Run) -> None:
        thread = threading.Thread(target=self._train, args=(job,), name=f"mnistlab-job-{job.id}", daemon=True)
        with self._lock:
            self._jobs[job.id] = (thread, threading.Event())
        thread.start()

    def cancel(self, run_id: str) -> None:
        with self._lock:
            job = self._jobs.get(run_id)
        if job is not None:
            job[1].set()

    def close(self, timeout: float) -> None:
        deadline = _deadline(timeout)
        with self._lock:
            threads = [thread for thread, _ in self._jobs.values()]
        for thread in threads:
            thread.join(timeout=_left(deadline))

    def _train(self, job: Run) -> None:
        with self._lock:
            cancel = self._jobs[job.id][1]
        try:
            result = worker.execute(job, self._load_data(), self._store, cancel,
                                    progress=lambda event: self._listener.event(job.id, event),
                                    saved=lambda path: self._listener.saved(job.id, path))
            status, error = result.status, None
        except Exception as e:  # a failed run records its error; the next job gets a thread of its own
            status, error = "failed", failure(e)
        with self._lock:
            self._jobs.pop(job.id, None)
        self._listener.ended(job.id, status, error)


@dataclass(eq=False)
class _Worker:
    """One worker process as the server sees it."""

    process: Any
    conn: Any  # the server's end of the pipe: jobs out, reports in
    cancelled: Any  # shared with the process: the number of the job to stop
    sending: threading.Lock  # one message at a time on the pipe
    job: tuple[int, str] | None = None  # (number, run id) of the job it trains


def death(exitcode: int | None) -> str:
    """Why a worker process ended, as a run's error."""
    if exitcode is not None and exitcode < 0:
        number = -exitcode
        try:
            name = (signal.strsignal(number) or f"signal {number}").lower()
        except ValueError:
            name = "unknown signal"
        hint = ": often the system running out of memory" if number == getattr(signal, "SIGKILL", 9) else ""
        return f"the worker process training it died (signal {number}, {name}{hint}); its completed epochs are kept"
    if exitcode is None:
        return "the worker process training it stopped answering; its completed epochs are kept"
    return f"the worker process training it exited with code {exitcode}; its completed epochs are kept"


_executors: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _exiting() -> None:
    """This interpreter is exiting (multiprocessing terminates the worker processes next): those ends are the
    server's, to be found by the next start (runs "interrupted"), not the runs' failures."""
    for executor in list(_executors):
        executor._exiting = True


class ProcessExecutor:
    """Jobs in ``workers`` long-lived processes ("spawn": CUDA cannot be forked), one job each at a time.

    A process is started when a job needs one, loads MNIST from the cache once, and stays for the next jobs (an
    import of torch costs seconds). One that dies (killed, out of memory, a crash) fails only the job it was
    training, with the reason; the next job gets a new process. The processes end with the server, even when it is
    killed: each one stops when its pipe to the server closes. ``initializer(*initargs)`` runs in each process
    before its first job (tests instrument training there)."""

    def __init__(self, workers: int, data_root: Path | str | None = None,
                 initializer: Callable[..., None] | None = None, initargs: tuple = ()):
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be a whole number from 1 to {MAX_WORKERS}")
        self.slots = workers
        self._data_root = data_root
        self._initializer, self._initargs = initializer, initargs
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # ``close`` waits here for the jobs to end
        self._workers: list[_Worker] = []
        self._readers: list[threading.Thread] = []
        self._numbered = 0  # jobs handed out so far: each gets the next number
        self._data_ready = False
        self._closing = self._exiting = False
        _executors.add(self)

    @property
    def threads(self) -> int:
        """The cores shared out between the processes."""
        return max(1, (os.cpu_count() or 1) // self.slots)

    def start(self, store: RunStore, listener: Listener) -> None:
        self._runs_dir, self._listener = str(store.directory), listener
        self._data_root = str(self._data_root or mdata.default_root())

    def pid(self, run_id: str) -> int | None:
        """The process id of the worker training ``run_id``, if one is."""
        with self._lock:
            return next((w.process.pid for w in self._workers if w.job and w.job[1] == run_id), None)

    def submit(self, job: Run) -> None:
        if not self._data_ready:  # fetched here once, if need be: the processes only read the cache
            mdata.ensure(self._data_root)
            self._data_ready = True
        started = 0
        while True:
            with self._lock:
                if self._closing:
                    raise RuntimeError("the server is shutting down")
                chosen = next((w for w in self._workers if w.job is None), None)
                if chosen is not None:
                    self._numbered += 1
                    number = self._numbered
                    chosen.job = (number, job.id)
                    break
            if started == 3:  # a new process that dies at once is replaced, but not for ever
                raise RuntimeError("no worker process could be started")
            self._spawn()
            started += 1
        try:
            with chosen.sending:
                chosen.conn.send((number, job))
        except OSError:  # it died just now: its reader reports the job failed with the reason
            log.warning("run %s: its worker process died as the job was sent", job.id)

    def cancel(self, run_id: str) -> None:
        with self._lock:
            for w in self._workers:
                if w.job is not None and w.job[1] == run_id:
                    w.cancelled.value = w.job[0]

    def close(self, timeout: float) -> None:
        deadline = _deadline(timeout)
        with self._idle:
            self._closing = True
            self._idle.wait_for(lambda: all(w.job is None for w in self._workers), timeout=_left(deadline))
            workers = list(self._workers)
        for w in workers:
            try:
                with w.sending:
                    w.conn.send(None)
            except OSError:
                pass
        for w in workers:
            w.process.join(timeout=_left(deadline))
            if w.process.is_alive():  # still training after the cancel and the timeout: its reader fails the job
                w.process.terminate()
                w.process.join(timeout=STOP_SECONDS)
            if w.process.is_alive():
                w.process.kill()
        for reader in list(self._readers):
            reader.join(timeout=STOP_SECONDS)

    def _spawn(self) -> None:
        ours, theirs = self._context.Pipe()
        cancelled = self._context.Value("q", 0, lock=False)  # no lock a killed process could leave held
        process = self._context.Process(
            target=worker.serve, name="mnistlab-worker", daemon=True,
            args=(theirs, cancelled, self._runs_dir, self._data_root, self.threads, self._initializer, self._initargs))
        process.start()
        theirs.close()  # the process holds its own end now: when it dies, ours reads the end of the pipe
        w = _Worker(process, ours, cancelled, threading.Lock())
        reader = threading.Thread(target=self._read, args=(w,), name="mnistlab-worker-reports", daemon=True)
        with self._lock:
            self._workers.append(w)
            self._readers.append(reader)
        reader.start()

    def _read(self, w: _Worker) -> None:
        """Pass one process's reports on until it ends; then fail the job it was training, if any."""
        while True:
            try:
                kind, number, *rest = w.conn.recv()
            except (EOFError, OSError):
                break
            with self._idle:
                run_id = w.job[1] if w.job is not None and w.job[0] == number else None
                if kind == "end" and run_id is not None:
                    w.job = None  # free before the manager hears of it, so that its next job finds it free
                    self._idle.notify_all()
            if run_id is None:
                continue
            try:
                if kind == "event":
                    self._listener.event(run_id, rest[0])
                elif kind == "saved":
                    self._listener.saved(run_id, rest[0])
                elif kind == "end":
                    self._listener.ended(run_id, rest[0], rest[1])
            except Exception:  # never let one report stop the reports of the jobs after it
                log.exception("run %s: a report from its worker process was lost", run_id)
        w.process.join(timeout=STOP_SECONDS)
        with self._idle:
            self._workers.remove(w)
            self._readers.remove(threading.current_thread())
            job, w.job = w.job, None
            self._idle.notify_all()
        w.conn.close()
        if job is not None and not self._exiting:
            log.error("run %s: its worker process (pid %s) ended with code %s", job[1], w.process.pid,
                      w.process.exitcode)
            self._listener.ended(job[1], "failed", death(w.process.exitcode))


def _deadline(timeout: float) -> float:
    return time.monotonic() + timeout


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
