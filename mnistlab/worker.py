"""One job, executed: train it, keep a checkpoint of every completed epoch, record each epoch in the registry, and
tell the job manager about progress. The manager decides which job runs when; this module only runs one (``execute``),
on a thread of the server or in a worker process (``serve``, the main function of ``executor.ProcessExecutor``'s
processes).

A registry that refuses a write (locked by another program, a full disk) never stops training: each epoch's weights
and history are in the checkpoint file, and the manager keeps the run's end in memory until the registry takes it.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
from typing import Any, Callable

import torch

from . import checkpoint, train
from . import data as mdata
from .arch import ArchSpec
from .run import Run
from .store import RunStore, StoreError

log = logging.getLogger(__name__)


def execute(run: Run, data: mdata.MNIST, store: RunStore, cancel: threading.Event | Any,
            progress: Callable[[train.Event], None], saved: Callable[[str], None]) -> train.TrainResult:
    """Train ``run`` (its spec and config as recorded). ``progress`` gets every training event; ``saved`` the path of
    each epoch's checkpoint once it is on disk; ``cancel.is_set()`` is asked before each batch. Registry writes
    happen here, never under the manager's lock."""
    spec, cfg = ArchSpec.from_dict(run.spec), train.TrainConfig(**run.config)

    def on_epoch(result: train.TrainResult) -> None:
        # Weights after every epoch, so a run that is cancelled, fails or loses its server keeps a checkpoint that
        # matches its recorded epochs; written before the epoch's event, so what pages show is on disk.
        done = len(result.history)
        ckpt = checkpoint.from_result(result, meta={
            "run_id": run.id, "owner": run.owner, "student_name": run.student_name, "epochs_completed": done,
            "status": "finished" if done == cfg.epochs else "partial"})
        path = str(checkpoint.save(ckpt, store.checkpoint_path(run.id)))
        try:
            store.add_epoch(run.id, result.history[-1].to_dict(), checkpoint=path)
        except StoreError as e:  # the checkpoint holds the epoch; training carries on
            log.error("run %s: the registry could not record epoch %d: %s", run.id, done, e)
        saved(path)

    def on_event(event: train.Event) -> None:
        progress(event)
        if isinstance(event, train.Started):
            try:
                store.set_device(run.id, event.device, event.precision)
            except StoreError as e:
                log.error("run %s: the registry could not record its device: %s", run.id, e)

    return train.train(spec, cfg, data, on_event=on_event, cancel=cancel, on_epoch=on_epoch)


def reevaluate(run: Run, data: mdata.MNIST, store: RunStore) -> tuple[str, str | None]:
    """A run restored from a checkpoint file, checked: do its weights reach the final accuracy its history claims?
    Returns (origin, note): "verified", or "mismatch" with what was found. Within 0.05 points (5 of the 10,000
    images) counts as the same: another device or batch size may round a few borderline images the other way."""
    claimed = run.final_test_accuracy
    try:
        model = store.load_checkpoint(run.id).model()
    except (checkpoint.CheckpointError, StoreError) as e:
        return "mismatch", f"Restored from its checkpoint file, which cannot be re-evaluated: {e}"
    measured = train.evaluate(model, data.test)[1]
    if claimed is not None and abs(measured - claimed) <= 0.05:
        return "verified", None
    return "mismatch", (f"Restored from its checkpoint file, which claims {claimed} % but re-evaluates to "
                        f"{measured:.2f} % on the test set; it does not count for the challenge.")


def verify_restored(store: RunStore, data: mdata.MNIST, stop: Callable[[], bool]) -> None:
    """Re-evaluate each finished run that was rebuilt from a checkpoint file (a lost registry, a file copied in) and
    record what was found: its weights must reach the accuracy its history claims before it can count."""
    for run in store.unverified():
        if stop():
            return
        origin, note = reevaluate(run, data, store)
        try:
            store.set_origin(run.id, origin, note)
        except StoreError as e:
            log.error("run %s: the registry could not record its re-evaluation: %s", run.id, e)


# ---------------------------------------------------------------------------------------------------- worker process


class _Cancel:
    """One job's cancel flag in a worker process: the server writes the number of the job to stop into memory it
    shares with the process, so a cancel is seen at the next batch, and a late one never stops the next job."""

    def __init__(self, shared: Any, number: int):
        self._shared, self._number = shared, number

    def is_set(self) -> bool:
        return self._shared.value == self._number


def serve(conn: Any, cancelled: Any, runs_dir: str, data_root: str, threads: int,
          initializer: Callable[..., None] | None = None, initargs: tuple = ()) -> None:
    """A worker process: load MNIST from the cache once, then train the jobs that arrive on ``conn`` as
    ``(number, run)``, one at a time, until ``None``. Each job's events, checkpoints and end go back on ``conn`` as
    ``("event", number, event)``, ``("saved", number, path)`` and ``("end", number, status, error)``; its epochs and
    device go to the registry from here, as on a thread. ``cancelled`` holds the number of a job to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the server decides
    torch.set_num_threads(threads)
    if initializer is not None:
        initializer(*initargs)
    jobs: queue.SimpleQueue = queue.SimpleQueue()

    def receive() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # the server is gone (killed): stop at once, so that nothing trains or
                os._exit(0)  # writes to the registry after a new server has marked this run interrupted
            jobs.put(message)
            if message is None:
                return

    def send(*message: Any) -> None:
        try:
            conn.send(message)
        except OSError:  # the server is gone
            os._exit(0)

    threading.Thread(target=receive, name="mnistlab-worker-inbox", daemon=True).start()
    store, data = RunStore(runs_dir), None
    while (message := jobs.get()) is not None:
        number, run = message
        try:
            if data is None:
                data = mdata.load(data_root, fetch=False)
            result = execute(run, data, store, _Cancel(cancelled, number),
                             progress=lambda event: send("event", number, event),
                             saved=lambda path: send("saved", number, path))
            send("end", number, result.status, None)
        except Exception as e:  # a failed run records its error; the process carries on with the next job
            send("end", number, "failed", f"{type(e).__name__}: {e}")
    # Nothing is left to flush (each registry write is its own transaction, a checkpoint is renamed into place), and
    # tearing an interpreter with torch down takes a second per process.
    os._exit(0)
