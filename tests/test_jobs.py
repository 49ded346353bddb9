import threading

import pytest

from mnistlab import arch, checkpoint, devices, train
from mnistlab.jobs import JobError, JobManager

from .conftest import HANG, QUICK, held


def running(run) -> bool:
    return run.status == "running"


def test_a_job_runs_in_the_background_and_saves_a_checkpoint(manager):
    job_id = manager.submit(arch.preset("tiny"), QUICK, owner="ann")
    snap = manager.wait(job_id, timeout=HANG)
    assert snap.status == "finished", snap.error
    assert snap.epochs_done == 1 and len(snap.history) == 1 and snap.progress == 1.0
    assert snap.device == devices.device_name(devices.pick_device("auto"))  # the device it really trained on
    assert snap.final_test_accuracy == snap.history[-1]["test_accuracy"]
    assert not snap.challenge_eligible  # a quick run on a subset
    checks = {r.name: r.passed for r in snap.verdict().rules}
    assert snap.verdict().rules[0].name == "accuracy"
    assert checks["full_data"] is False and checks["params"] is True
    ck = checkpoint.load(snap.checkpoint_path)
    assert ck.spec == arch.preset("tiny") and ck.meta["owner"] == "ann" and ck.meta["status"] == "finished"
    assert ck.history == snap.history


def test_jobs_queue_on_one_worker_in_order(mnist, tmp_path):
    load, release = held(mnist)
    m = JobManager(tmp_path, load_data=load)
    try:
        ids = [m.submit(arch.preset("tiny"), QUICK, owner=f"s{i}") for i in range(3)]
        m.wait_until(ids[0], running, timeout=HANG)  # the worker took the first and is held on it
        assert [r.id for r in m.queue()] == ids  # the running job, then the others in the order they came
        assert [m.snapshot(i).queue_position for i in ids] == [None, 1, 2]
        release.set()
        done = [m.wait(i, timeout=HANG) for i in ids]
        assert all(d.status == "finished" for d in done)
        starts = [d.started_at for d in done]
        ends = [d.ended_at for d in done]
        assert starts == sorted(starts)
        assert all(ends[i] <= starts[i + 1] for i in range(2))  # never two at once
    finally:
        release.set()
        m.close()


def test_cancel_a_running_job_stops_it_within_one_batch(manager, monkeypatch):
    reported = []  # (epoch, batch) of every batch the run reports, as the worker reports it
    real_train = train.train

    def observed(spec, config=None, data=None, on_event=None, **kwargs):
        def listen(event):
            if isinstance(event, train.BatchProgress):
                reported.append((event.epoch, event.batch))
            on_event(event)

        return real_train(spec, config, data, on_event=listen, **kwargs)

    monkeypatch.setattr(train, "train", observed)
    long = train.TrainConfig(epochs=20, train_subset=5000, batch_size=64)  # 79 batches an epoch, each reported
    job_id = manager.submit(arch.preset("tiny"), long)
    assert manager.wait_until(job_id, lambda r: r.batch >= 2 or not r.active, timeout=HANG).active
    manager.cancel(job_id)
    at_cancel = len(reported)  # counted once the request is in: a batch that ends meanwhile only counts as before
    snap = manager.wait(job_id, timeout=HANG)
    assert snap.status == "cancelled" and snap.epochs_done < 20
    assert at_cancel >= 2
    assert len(reported) - at_cancel <= 1, f"{len(reported) - at_cancel} batches ran after the cancel"


def test_cancel_a_queued_job_and_the_queue_moves_up(mnist, tmp_path):
    load, release = held(mnist)
    m = JobManager(tmp_path, load_data=load)
    try:
        first, second, third = (m.submit(arch.preset("tiny"), QUICK) for _ in range(3))
        m.wait_until(first, running, timeout=HANG)  # held there until released
        assert m.snapshot(third).queue_position == 2
        m.cancel(second)
        assert m.snapshot(second).status == "cancelled"
        assert m.snapshot(third).queue_position == 1
        assert [r.id for r in m.queue()] == [first, third]
        release.set()
        assert m.wait(third, timeout=HANG).status == "finished"
        assert m.snapshot(first).status == "finished"
        assert m.snapshot(second).status == "cancelled" and m.snapshot(second).history == []  # it never ran
    finally:
        release.set()
        m.close()


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
        assert m.wait(bad, timeout=HANG).status == "failed"
        assert "disk on fire" in m.snapshot(bad).error
        good = m.submit(arch.preset("tiny"), QUICK)
        assert m.wait(good, timeout=HANG).status == "finished"
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
    run = manager.wait(run_id, timeout=HANG)
    assert run.status == "failed" and "out of memory, pretend" in run.error and run.epochs_done == 1
    ck = checkpoint.load(run.checkpoint_path)
    assert ck.history == run.history and ck.meta["status"] == "partial"


def test_unknown_job_and_full_queue_are_clear_errors(mnist, tmp_path):
    load, release = held(mnist)
    m = JobManager(tmp_path, load_data=load, max_queue=1)
    try:
        with pytest.raises(JobError, match="no run"):
            m.snapshot("nope")
        first = m.submit(arch.preset("tiny"), QUICK)
        m.wait_until(first, running, timeout=HANG)  # the worker is held on it: the queue is empty again
        waiting = m.submit(arch.preset("tiny"), QUICK)
        with pytest.raises(JobError, match="queue is full"):
            m.submit(arch.preset("tiny"), QUICK)
        assert [r.id for r in m.queue()] == [first, waiting]  # the refused one left no trace
        release.set()
        assert m.wait(waiting, timeout=HANG).status == "finished"
    finally:
        release.set()
        m.close()


def test_a_registry_that_refuses_writes_does_not_stop_the_run_or_the_queue(manager, monkeypatch):
    """Another program holding the registry's write lock must not stop the class's queue."""
    from mnistlab.store import StoreError

    def locked(*args, **kwargs):
        raise StoreError("the run registry: database is locked", busy=True)

    monkeypatch.setattr(manager.store, "add_epoch", locked)
    monkeypatch.setattr(manager.store, "ended", locked)
    first = manager.submit(arch.preset("tiny"), QUICK, owner="ann")
    snap = manager.wait(first, timeout=HANG)
    assert snap.status == "finished" and len(snap.history) == 1  # the epoch lives in its checkpoint
    assert "database is locked" in snap.error and "could not record its end" in snap.error
    assert checkpoint.load(snap.checkpoint_path).history == snap.history
    assert [r.status for r in manager.runs(owner="ann")] == ["finished"]  # pages see the truth, not the stale row
    monkeypatch.undo()
    second = manager.submit(arch.preset("tiny"), QUICK, owner="ann")  # the same student may start again
    assert manager.wait(second, timeout=HANG).status == "finished"


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


def test_a_registry_locked_by_another_program_never_freezes_a_page(mnist, tmp_path):
    """While another program holds the registry's write lock, a submit waits for it, but the pages' reads of the
    manager (snapshot, queue, runs) answer at once: the manager never holds its own lock around registry I/O."""
    import sqlite3

    load, release = held(mnist)
    m = JobManager(tmp_path / "runs", load_data=load)
    m.store.wait = HANG  # bob's write waits as long as the lock is held (the default gives up after 30 s)
    try:
        running = m.submit(arch.preset("tiny"), QUICK, owner="ann")  # held on its first batch by ``load``
        m.wait_until(running, lambda r: r.status == "running", timeout=HANG)
        holder = sqlite3.connect(tmp_path / "runs" / "runs.sqlite3", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another program takes the write lock and keeps it
        submitted: dict[str, object] = {}
        press = threading.Thread(target=lambda: submitted.update(id=m.submit(arch.preset("tiny"), QUICK,
                                                                             owner="bob")))
        press.start()  # bob's press waits for the registry (its row cannot be written yet)...
        page = threading.Thread(target=lambda: submitted.update(
            page=(m.snapshot(running).status, [r.id for r in m.queue()], len(m.runs()))))
        page.start()
        page.join(timeout=HANG)  # ...but a page reading the manager meanwhile is not held up by it
        assert not page.is_alive(), "a page waited for the registry's lock"
        assert submitted["page"][0] == "running" and submitted["page"][1][0] == running
        assert press.is_alive()  # the lock is still held: the page answered without it
        holder.execute("ROLLBACK")
        holder.close()
        press.join(timeout=HANG)
        assert not press.is_alive() and m.snapshot(submitted["id"]).owner == "bob"
    finally:
        release.set()
        m.close()


def test_a_runs_real_cause_of_failure_survives_a_registry_that_refused_it_and_a_restart(mnist, tmp_path, monkeypatch):
    from mnistlab.store import StoreError

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    m = JobManager(tmp_path / "runs", load_data=disk_full)
    real_ended = m.store.ended

    def refused(*args, **kwargs):
        raise StoreError("the run registry: database or disk is full")

    monkeypatch.setattr(m.store, "ended", refused)
    run_id = m.submit(arch.preset("tiny"), QUICK, owner="ann")
    snap = m.wait(run_id, timeout=HANG)
    assert snap.status == "failed" and "No space left" in snap.error and "could not record its end" in snap.error
    monkeypatch.setattr(m.store, "ended", real_ended)  # space is freed before the server stops
    m.close()  # which tries the refused write again
    again = JobManager(tmp_path / "runs", load_data=lambda: mnist)
    try:
        after = again.snapshot(run_id)
        assert after.status == "failed" and "No space left" in after.error  # not "the server stopped"
        assert again.recovery.interrupted == []
    finally:
        again.close()


def test_a_running_jobs_batch_losses_move_within_the_epoch(manager):
    """The Train page's loss curve has points inside an epoch, before the epoch's own row exists."""
    run_id = manager.submit(arch.preset("tiny"), train.TrainConfig(**{**QUICK.to_dict(), "epochs": 2}))
    snap = manager.wait_until(run_id, lambda r: r.history or not r.active, timeout=HANG)
    assert snap.status == "running", snap.error  # two epochs: the first has just ended
    first_epoch = [x for x, _ in snap.batch_losses if x <= 1]
    assert len(first_epoch) == 10 and 0 < first_epoch[0] < 1 and first_epoch[-1] == 1  # 1000 images, batches of 100
    assert all(loss > 0 for _, loss in snap.batch_losses)
    manager.cancel(run_id)
    manager.wait(run_id, timeout=HANG)


def test_k_slots_run_k_jobs_at_once_and_the_queue_waits_for_a_free_one(mnist, tmp_path):
    from mnistlab.executor import ThreadExecutor

    load, release = held(mnist)
    m = JobManager(tmp_path, executor=ThreadExecutor(load, slots=2))
    try:
        ids = [m.submit(arch.preset("tiny"), QUICK, owner=f"s{i}") for i in range(4)]
        for run_id in ids[:2]:
            m.wait_until(run_id, running, timeout=HANG)  # both held on loading the data, at once
        assert m.workers == 2
        assert [r.id for r in m.queue()] == ids  # every running job, then the waiting ones in order
        assert [m.snapshot(i).queue_position for i in ids] == [None, None, 1, 2]  # places until a slot is free
        assert [m.snapshot(i).status for i in ids] == ["running", "running", "queued", "queued"]
        release.set()
        done = [m.wait(i, timeout=HANG) for i in ids]
        assert all(d.status == "finished" for d in done)
        assert min(d.ended_at for d in done[:2]) <= min(d.started_at for d in done[2:])  # only once a slot freed
    finally:
        release.set()
        m.close()


def test_a_job_the_executor_cannot_start_fails_with_the_reason_and_the_queue_goes_on(mnist, tmp_path):
    from mnistlab.executor import ThreadExecutor

    class Refusing(ThreadExecutor):
        refused = False

        def submit(self, job):
            if not self.refused:
                self.refused = True
                raise OSError(24, "Too many open files")
            super().submit(job)

    m = JobManager(tmp_path, executor=Refusing(lambda: mnist))
    try:
        first, second = (m.submit(arch.preset("tiny"), QUICK, owner=f"s{i}") for i in range(2))
        bad = m.wait(first, timeout=HANG)
        assert bad.status == "failed" and "Too many open files" in bad.error
        assert m.store.get(first).error == bad.error
        assert m.wait(second, timeout=HANG).status == "finished"
    finally:
        m.close()
