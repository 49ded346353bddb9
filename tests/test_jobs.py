import threading
import time

import pytest

from mnistlab import arch, checkpoint, train
from mnistlab.jobs import JobError, JobManager

QUICK = train.TrainConfig(epochs=1, train_subset=1000, batch_size=100, seed=0)


@pytest.fixture
def manager(mnist, tmp_path):
    m = JobManager(tmp_path / "runs", load_data=lambda: mnist)
    yield m
    m.close()


def test_a_job_runs_in_the_background_and_saves_a_checkpoint(manager):
    job_id = manager.submit(arch.preset("tiny"), QUICK, owner="ann")
    snap = manager.wait(job_id, timeout=120)
    assert snap.status == "finished", snap.error
    assert snap.epochs_done == 1 and len(snap.history) == 1 and snap.progress == 1.0
    assert snap.device.startswith(("CPU", "NVIDIA", "Apple")) or snap.device
    assert snap.final_test_accuracy == snap.history[-1]["test_accuracy"]
    assert not snap.challenge_eligible  # a quick run on a subset
    checks = {r.name: r.passed for r in snap.verdict().rules}
    assert snap.verdict().rules[0].name == "accuracy"
    assert checks["full_data"] is False and checks["params"] is True
    ck = checkpoint.load(snap.checkpoint_path)
    assert ck.spec == arch.preset("tiny") and ck.meta["owner"] == "ann" and ck.meta["status"] == "finished"
    assert ck.history == snap.history


def test_jobs_queue_on_one_worker_in_order(manager):
    ids = [manager.submit(arch.preset("tiny"), QUICK, owner=f"s{i}") for i in range(3)]
    snaps = [manager.snapshot(i) for i in ids]
    running_or_first = snaps[0].status in ("queued", "running")
    assert running_or_first
    assert [s.queue_position for s in snaps[1:]] in ([1, 2], [2, 3])
    done = [manager.wait(i, timeout=240) for i in ids]
    assert all(d.status == "finished" for d in done)
    starts = [d.started_at for d in done]
    ends = [d.ended_at for d in done]
    assert starts == sorted(starts)
    assert all(ends[i] <= starts[i + 1] for i in range(2))  # never two at once


def test_cancel_a_running_job_within_a_couple_of_seconds(manager):
    long = train.TrainConfig(epochs=20, train_subset=5000, batch_size=64)
    job_id = manager.submit(arch.preset("tiny"), long)
    deadline = time.monotonic() + 60
    while manager.snapshot(job_id).batch < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    t0 = time.monotonic()
    manager.cancel(job_id)
    snap = manager.wait(job_id, timeout=10)
    assert snap.status == "cancelled"
    assert time.monotonic() - t0 < 2.0


def test_cancel_a_queued_job_and_the_queue_moves_up(manager):
    first = manager.submit(arch.preset("tiny"), QUICK)
    second = manager.submit(arch.preset("tiny"), QUICK)
    third = manager.submit(arch.preset("tiny"), QUICK)
    manager.cancel(second)
    assert manager.snapshot(second).status == "cancelled"
    assert manager.snapshot(third).queue_position in (1, 2)
    assert manager.wait(third, timeout=240).status == "finished"
    assert manager.snapshot(first).status == "finished"


def test_a_failing_job_records_its_error_and_the_worker_goes_on(mnist, tmp_path):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("disk on fire")
        return mnist

    m = JobManager(tmp_path, load_data=flaky)
    try:
        bad = m.submit(arch.preset("tiny"), QUICK)
        assert m.wait(bad, timeout=30).status == "failed"
        assert "disk on fire" in m.snapshot(bad).error
        good = m.submit(arch.preset("tiny"), QUICK)
        assert m.wait(good, timeout=120).status == "finished"
    finally:
        m.close()


def test_a_run_failing_in_its_second_epoch_keeps_the_first_epochs_weights(manager, monkeypatch):
    real_evaluate, calls = train.evaluate, []

    def evaluate_then_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory, pretend")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train, "evaluate", evaluate_then_fail)
    run_id = manager.submit(arch.preset("tiny"), train.TrainConfig(epochs=3, train_subset=500, batch_size=100))
    run = manager.wait(run_id, timeout=120)
    assert run.status == "failed" and "out of memory, pretend" in run.error and run.epochs_done == 1
    ck = checkpoint.load(run.checkpoint_path)
    assert ck.history == run.history and ck.meta["status"] == "partial"


def test_unknown_job_and_full_queue_are_clear_errors(mnist, tmp_path):
    m = JobManager(tmp_path, load_data=lambda: mnist, max_queue=1)
    try:
        with pytest.raises(JobError, match="no run"):
            m.snapshot("nope")
        block = threading.Event()
        m._load_data = lambda: (block.wait(10), mnist)[1]  # hold the worker on the first job
        m._data = None
        m.submit(arch.preset("tiny"), QUICK)
        deadline = time.monotonic() + 5
        while m.runs()[0].status == "queued" and time.monotonic() < deadline:
            time.sleep(0.01)
        m.submit(arch.preset("tiny"), QUICK)
        with pytest.raises(JobError, match="queue is full"):
            m.submit(arch.preset("tiny"), QUICK)
        block.set()
    finally:
        m.close()


def test_a_registry_that_refuses_writes_does_not_stop_the_run_or_the_queue(manager, monkeypatch):
    """Another program holding the registry's write lock must not stop the class's queue."""
    import sqlite3

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(manager.store, "add_epoch", locked)
    monkeypatch.setattr(manager.store, "ended", locked)
    first = manager.submit(arch.preset("tiny"), QUICK, owner="ann")
    snap = manager.wait(first, timeout=120)
    assert snap.status == "finished" and len(snap.history) == 1  # the epoch lives in its checkpoint
    assert "database is locked" in snap.error and "could not record its end" in snap.error
    assert checkpoint.load(snap.checkpoint_path).history == snap.history
    assert [r.status for r in manager.runs(owner="ann")] == ["finished"]  # pages see the truth, not the stale row
    monkeypatch.undo()
    second = manager.submit(arch.preset("tiny"), QUICK, owner="ann")  # the same student may start again
    assert manager.wait(second, timeout=120).status == "finished"


def test_one_shared_manager_per_runs_folder(tmp_path):
    from mnistlab.jobs import shared_manager

    first = shared_manager(tmp_path / "runs")
    try:
        assert shared_manager(tmp_path / "runs" / ".." / "runs") is first  # however the path is spelled
    finally:
        first.close()
    second = shared_manager(tmp_path / "runs")  # a closed one is replaced
    try:
        assert second is not first and not second.closed
    finally:
        second.close()
