"""One job, executed: train it, keep a checkpoint of every completed epoch, record each epoch in the registry, and
tell the job manager about progress. The manager decides which job runs when; this module only runs one.

A registry that refuses a write (locked by another program, a full disk) never stops training: each epoch's weights
and history are in the checkpoint file, and the manager keeps the run's end in memory until the registry takes it.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from . import checkpoint, train
from . import data as mdata
from .arch import ArchSpec
from .run import Run
from .store import RunStore, StoreError

log = logging.getLogger(__name__)


def execute(run: Run, data: mdata.MNIST, store: RunStore, cancel: threading.Event,
            progress: Callable[[train.Event], None], saved: Callable[[str], None]) -> train.TrainResult:
    """Train ``run`` (its spec and config as recorded). ``progress`` gets every training event; ``saved`` the path of
    each epoch's checkpoint once it is on disk. Registry writes happen here, never under the manager's lock."""
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
