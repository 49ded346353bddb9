"""The run registry: rows that survive a restart, recovery after a crash, and the limits of a shared server."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mnistlab import arch, checkpoint, train
from mnistlab.jobs import JobError, JobManager
from mnistlab.store import Run, RunStore, StoreError

from .conftest import HANG, QUICK, ProcessOutput, held

ROOT = Path(__file__).resolve().parent.parent


STORED = train.TrainConfig(epochs=2, train_subset=1000, batch_size=100, seed=0)  # the runs written by hand here


def a_run(run_id="r1", owner="s1", status="queued"):
    spec = arch.preset("tiny")
    return Run(id=run_id, owner=owner, student_name="Ann", name=spec.name, spec=spec.to_dict(),
               config=STORED.to_dict(), params=arch.count_params(spec), epochs=2, status=status,
               submitted_at=time.time())


def opened(directory):
    """A store as a starting server opens it: its tables made, its lock held, recovery done."""
    store = RunStore(directory)
    store.recover()
    return store


def epoch(n, acc):
    return train.EpochEnd(epoch=n, epochs=2, train_loss=0.1, train_accuracy=97.0, test_loss=0.05, test_accuracy=acc,
                          seconds=1.0, eval_seconds=0.1, lr=0.01).to_dict()


def test_a_run_is_a_row_with_its_epochs_and_survives_a_new_store(tmp_path):
    store = opened(tmp_path)
    store.add(a_run())
    store.started("r1")
    store.set_device("r1", "CPU", "bf16")
    store.add_epoch("r1", epoch(1, 98.0))
    store.add_epoch("r1", epoch(2, 99.1))
    store.ended("r1", "finished", checkpoint=str(tmp_path / "r1.pt"))
    store.close()
    again = RunStore(tmp_path).get("r1")
    assert again.status == "finished" and again.device == "CPU" and again.student_name == "Ann"
    assert [h["test_accuracy"] for h in again.history] == [98.0, 99.1]
    assert again.final_test_accuracy == 99.1  # the last epoch, not the best
    assert again.spec == arch.preset("tiny").to_dict() and again.config == STORED.to_dict()
    with sqlite3.connect(tmp_path / "runs.sqlite3") as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("SELECT final_test_accuracy, eligible FROM runs").fetchone() == (99.1, 0)


def test_unknown_runs_and_bad_transitions_are_clear_errors(tmp_path):
    store = opened(tmp_path)
    with pytest.raises(StoreError, match="no run 'x'"):
        store.get("x")
    with pytest.raises(StoreError, match="no run"):
        store.started("x")
    store.add(a_run())
    with pytest.raises(StoreError, match="not an end state"):
        store.ended("r1", "running")
    with pytest.raises(StoreError, match="cancel it first"):
        store.delete("r1")
    with pytest.raises(StoreError, match="UNIQUE"):
        store.add(a_run())  # the same id twice


def test_recovery_marks_a_dead_servers_runs_interrupted_and_keeps_their_epochs(tmp_path):
    dead = opened(tmp_path)
    dead.add(a_run("running"))
    dead.started("running")
    dead.add_epoch("running", epoch(1, 97.5))
    dead.add(a_run("waiting", owner="s2"))
    dead.add(a_run("done", owner="s3"))
    dead.add_epoch("done", epoch(1, 98.0))
    dead.add_epoch("done", epoch(2, 99.0))
    dead.ended("done", "finished")
    live = RunStore(tmp_path)
    assert live.recover().interrupted == []  # the first server is still alive: its runs are left alone
    dead.close()  # what the OS does when the process dies
    assert sorted(live.mark_interrupted()) == ["running", "waiting"]
    r = live.get("running")
    assert r.status == "interrupted" and len(r.history) == 1 and "1 completed epoch" in r.error
    assert live.get("waiting").status == "interrupted" and "before this run started" in live.get("waiting").error
    assert live.get("done").status == "finished"
    assert live.integrity() == "ok"


def test_runs_live_in_the_registry_and_survive_a_restart(mnist, tmp_path):
    m = JobManager(tmp_path, load_data=lambda: mnist)
    run_id = m.submit(arch.preset("tiny"), QUICK, owner="s1", student_name="Ann")
    assert m.wait(run_id, timeout=HANG).status == "finished"
    m.close()
    m2 = JobManager(tmp_path, load_data=lambda: mnist)
    try:
        (run,) = m2.runs()
        assert run.id == run_id and run.status == "finished" and run.student_name == "Ann" and len(run.history) == 1
        assert checkpoint.load(run.checkpoint_path).spec == arch.preset("tiny")
        assert m2.recovery.interrupted == []
    finally:
        m2.close()


def test_one_active_job_per_session_and_an_epoch_limit(manager):
    long = train.TrainConfig(epochs=30, train_subset=1000, batch_size=100)  # still active when s1 asks again
    manager.submit(arch.preset("tiny"), long, owner="s1")
    with pytest.raises(JobError, match="already have a job"):
        manager.submit(arch.preset("tiny"), QUICK, owner="s1")
    manager.submit(arch.preset("tiny"), QUICK, owner="s2")  # another session is not held back
    with pytest.raises(JobError, match="at most 30 epochs"):
        manager.submit(arch.preset("tiny"), train.TrainConfig(epochs=31), owner="s3")
    with pytest.raises(arch.SpecError, match="200,000"):
        manager.submit(arch.ArchSpec.from_dict({**arch.preset("best").to_dict(),
                                                "blocks": [{"widths": [256, 256, 256]}]}), QUICK, owner="s4")


def test_only_the_owner_or_the_teacher_cancels_or_deletes(manager):
    first = manager.submit(arch.preset("tiny"), QUICK, owner="s1")
    second = manager.submit(arch.preset("tiny"), QUICK, owner="s2")
    with pytest.raises(JobError, match="only the person who started"):
        manager.cancel(second, owner="s1")
    assert manager.snapshot(second).active
    manager.cancel(second, owner="s1", teacher=True)
    assert manager.wait(second, timeout=HANG).status == "cancelled"  # at once if queued, within a batch if running
    assert manager.wait(first, timeout=HANG).status == "finished"
    with pytest.raises(JobError, match="only the person who started"):
        manager.delete(first, owner="s2")
    manager.delete(first, owner="s1")
    with pytest.raises(JobError, match="no run"):
        manager.snapshot(first)
    assert [r.id for r in manager.runs()] == [second]


def test_a_cancelled_run_keeps_its_history(manager):
    cfg = train.TrainConfig(epochs=30, train_subset=600, batch_size=100)
    run_id = manager.submit(arch.preset("tiny"), cfg, owner="s1")
    live = manager.wait_until(run_id, lambda r: r.epochs_done >= 1 or not r.active, timeout=HANG)
    assert live.active and live.checkpoint_path  # pages (Draw, Runs) can use its weights while it still trains
    manager.cancel(run_id, owner="s1")
    run = manager.wait(run_id, timeout=HANG)
    assert run.status == "cancelled" and run.epochs_done >= 1
    stored = manager.store.get(run_id)
    ck = checkpoint.load(stored.checkpoint_path)  # the weights of its last completed epoch, matching its history
    assert ck.history == stored.history and ck.meta["status"] == "partial"


KILL_SCRIPT = textwrap.dedent("""
    import sys
    from mnistlab import arch, train, data
    from mnistlab.jobs import JobManager
    m = JobManager(sys.argv[1], load_data=lambda: data.load(fetch=False))
    run_id = m.submit(arch.preset("tiny"), train.TrainConfig(epochs=30, train_subset=2000, batch_size=100), owner="s1")
    print("submitted", run_id, flush=True)
    run = m.wait_until(run_id, lambda r: r.epochs_done >= 2 and r.batch >= 1, timeout=float(sys.argv[2]))
    print("mid-epoch", run.epochs_done + 1, flush=True)  # two epochs recorded, a batch of the next one done
    m.wait(run_id, timeout=float(sys.argv[2]))  # killed long before this returns
""")


def test_a_server_killed_mid_epoch_leaves_an_interrupted_run_and_a_sound_database(data_root, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(tmp_path), str(HANG)], cwd=ROOT,
                            env={**os.environ, "MNISTLAB_DATA": str(data_root)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        out = ProcessOutput(proc)
        run_id = out.wait_for("submitted").split()[1]
        in_epoch = int(out.wait_for("mid-epoch").split()[1])
        assert in_epoch >= 3
        run = RunStore(tmp_path).get(run_id)  # as a page reads it, while the server trains
        assert run.status == "running" and run.epochs_done >= in_epoch - 1
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=HANG) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
    killed_at = len(RunStore(tmp_path).get(run.id).history)
    assert killed_at >= in_epoch - 1
    store = RunStore(tmp_path)  # the restarted server
    assert store.recover().interrupted == [run.id]
    after = store.get(run.id)
    assert after.status == "interrupted" and after.epochs_done == killed_at >= 2
    assert f"during epoch {killed_at + 1}" in after.error
    assert store.integrity() == "ok"
    assert store.count() == 1
    ck = checkpoint.load(after.checkpoint_path)  # the weights of a completed epoch survive too, usable at once
    assert killed_at <= len(ck.history) <= killed_at + 1 and ck.history[:killed_at] == after.history


def test_thirty_sessions_submitting_at_the_same_instant_are_each_accepted_or_refused(mnist, tmp_path):
    import threading

    load, release = held(mnist)  # the worker takes at most one job off the queue while they submit
    m = JobManager(tmp_path, load_data=load, max_queue=10)
    go = threading.Barrier(30)
    outcome: dict[int, str] = {}

    def student(i):
        go.wait()
        try:
            outcome[i] = m.submit(arch.preset("tiny"), train.TrainConfig(epochs=1, train_subset=200), owner=f"s{i}")
        except JobError as e:
            outcome[i] = f"refused: {e}"

    threads = [threading.Thread(target=student, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        accepted = {v for v in outcome.values() if not v.startswith("refused")}
        refused = [v for v in outcome.values() if v.startswith("refused")]
        assert len(outcome) == 30 and 10 <= len(accepted) <= 11  # the queue's 10, plus one the worker took at once
        assert all("queue is full" in v for v in refused)
        assert {r.id for r in m.runs()} == accepted
        release.set()
        for run_id in accepted:
            assert m.wait(run_id, timeout=HANG).status == "finished"
        assert m.store.integrity() == "ok"
    finally:
        release.set()
        m.close()


def finished_runs(mnist, directory, n=2):
    """n quick runs trained to the end by a real manager (so each has its checkpoint file), then the server stops."""
    m = JobManager(directory, load_data=lambda: mnist)
    ids = []
    for i in range(n):
        ids.append(m.submit(arch.preset("tiny"), QUICK, owner=f"s{i}", student_name=f"Student {i}"))
        assert m.wait(ids[-1], timeout=HANG).status == "finished"
    m.close()
    return ids


@pytest.mark.parametrize("damage", ["garbage", "emptied"])
def test_a_damaged_or_emptied_registry_is_rebuilt_from_the_checkpoints(mnist, tmp_path, damage):
    ids = finished_runs(mnist, tmp_path)
    before = {r.id: r for r in RunStore(tmp_path).runs()}
    registry = tmp_path / "runs.sqlite3"
    for part in tmp_path.glob("runs.sqlite3-*"):
        part.unlink()  # as if the WAL had been checkpointed into the file before the damage
    registry.write_bytes(os.urandom(4096) if damage == "garbage" else b"")
    store = RunStore(tmp_path)
    notice = store.recover().notice
    after = {r.id: r for r in store.runs()}
    assert set(after) == set(ids)
    for run_id in ids:
        assert after[run_id].status == "finished" and after[run_id].student_name == before[run_id].student_name
        assert after[run_id].final_test_accuracy == before[run_id].final_test_accuracy
        assert after[run_id].history == before[run_id].history
        assert checkpoint.load(after[run_id].checkpoint_path).history == after[run_id].history
    assert "2 run(s) were restored from their checkpoint files" in notice
    if damage == "garbage":
        assert "could not be read" in notice
        assert list(tmp_path.glob("runs.sqlite3.damaged-*"))  # kept for a closer look, not deleted
    assert store.integrity() == "ok"
    store.close()


def test_damaged_or_forged_rows_are_left_out_listed_and_never_eligible(tmp_path):
    store = opened(tmp_path)
    ids = ("r1", "r2", "r3", "r4", "r5", "r6")
    for run_id in ids:
        store.add(a_run(run_id, owner=run_id))
        store.add_epoch(run_id, epoch(1, 98.0))
        store.add_epoch(run_id, epoch(2, 99.0))
        store.ended(run_id, "finished")
    bad_epoch = '{"epoch": 2, "epochs": 2, "test_accuracy": "ninety-nine", "train_accuracy": 97}'
    no_seconds = {k: v for k, v in epoch(2, 99.0).items() if k != "seconds"}
    with sqlite3.connect(tmp_path / "runs.sqlite3") as con:
        con.execute("UPDATE epochs SET metrics = '{\"epoch\": 2, \"test_' WHERE run_id = 'r1' AND epoch = 2")
        con.execute("UPDATE runs SET spec = '{\"blocks\": [' WHERE id = 'r2'")
        con.execute("UPDATE epochs SET metrics = ? WHERE run_id = 'r4' AND epoch = 2", (bad_epoch,))
        con.execute("UPDATE epochs SET metrics = ? WHERE run_id = 'r5' AND epoch = 2", (json.dumps(no_seconds),))
        con.execute("UPDATE runs SET origin = 'handmade', student_name = x'00ff' WHERE id = 'r6'")
    runs = {r.id: r for r in store.runs()}
    assert set(runs) == {"r3"}  # the others cannot be understood: left out, not a traceback
    assert set(store.rejected) == {"r1", "r2", "r4", "r5", "r6"} and "test_accuracy" in store.rejected["r4"]
    assert "seconds" in store.rejected["r5"]
    with sqlite3.connect(tmp_path / "runs.sqlite3") as con:  # a forged "eligible" flag on a quick run
        con.execute("UPDATE runs SET eligible = 1 WHERE id = 'r3'")
        con.execute("UPDATE epochs SET test_accuracy = 100.0, metrics = ? WHERE run_id = 'r3' AND epoch = 2",
                    (json.dumps(epoch(2, 100.0)),))
    forged = store.get("r3")
    assert forged.final_test_accuracy == 100.0 and not forged.challenge_eligible  # judged again: 1,000 images
    store.close()


def test_a_moved_runs_folder_keeps_its_checkpoints_and_deletes_only_its_own(mnist, tmp_path):
    import shutil

    first, _ = finished_runs(mnist, tmp_path / "old")
    shutil.copytree(tmp_path / "old", tmp_path / "new", ignore=shutil.ignore_patterns("servers"))
    store = opened(tmp_path / "new")
    run = store.get(first)
    assert Path(run.checkpoint_path) == tmp_path / "new" / f"{first}.pt"
    store.delete(first)
    assert not (tmp_path / "new" / f"{first}.pt").exists()
    assert (tmp_path / "old" / f"{first}.pt").exists()  # the other copy is not touched
    store.close()


def test_an_unreadable_registry_while_serving_keeps_live_runs_and_says_why(mnist, tmp_path):
    m = JobManager(tmp_path, load_data=lambda: mnist)
    try:
        job = m.submit(arch.preset("tiny"), train.TrainConfig(epochs=30, train_subset=1000, batch_size=100),
                       owner="ann")
        (tmp_path / "runs.sqlite3").write_bytes(b"")  # someone empties the file under a running server
        for part in tmp_path.glob("runs.sqlite3-*"):
            part.unlink()
        runs = m.runs()
        assert [r.id for r in runs] == [job]  # what the server holds in memory, not a traceback
        assert "cannot be read" in m.registry_error and "restart the server" in m.registry_error
        snap = m.wait_until(job, lambda r: r.epochs_done >= 2 or not r.active, timeout=HANG)
        assert snap.status == "running" and snap.epochs_done >= 2  # training carries on past epochs it cannot record
        assert checkpoint.load(m.store.checkpoint_path(job)).history[:2] == snap.history[:2]
    finally:
        m.close()


def test_a_locked_registry_is_not_taken_for_a_damaged_one_and_leaves_no_lock_file(tmp_path):
    store = opened(tmp_path)
    store.add(a_run("keep"))
    store.close()
    holder = sqlite3.connect(tmp_path / "runs.sqlite3", isolation_level=None)  # another program, a real lock
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="locked") as refused:
            RunStore(tmp_path, wait=0.2).recover()
        assert refused.value.busy and not refused.value.damaged
        assert not list((tmp_path / "servers").glob("*.lock"))  # the failed start left no lock file behind
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not list(tmp_path.glob("runs.sqlite3.damaged-*"))  # nothing set aside
    assert [r.id for r in RunStore(tmp_path).runs()] == ["keep"]


def test_adopting_checkpoints_skips_a_bad_file_and_a_run_already_there(mnist, tmp_path):
    ids = finished_runs(mnist, tmp_path, n=1)
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    store = opened(tmp_path)  # starts despite the bad file
    assert store.adopt_checkpoints() == []  # the trained run has its row; the bad file is skipped
    assert [r.id for r in store.runs()] == ids
    store.close()


def test_a_checkpoint_copied_into_the_runs_folder_counts_only_if_its_weights_earn_its_claim(mnist, tmp_path):
    best = checkpoint.load(checkpoint.shipped()["best"])  # a genuine full-data run, as a finished run leaves it
    runs = tmp_path / "runs"
    genuine = checkpoint.save(checkpoint.Checkpoint(best.spec, best.state_dict, best.config, best.history,
                                                    {**best.meta, "status": "finished"}), runs / "a0a0a0a0a0a0.pt")
    untrained = arch.build(best.spec).state_dict()  # the same claims (99.4 % and more) with untrained weights
    forged = checkpoint.save(checkpoint.Checkpoint(best.spec, untrained, best.config, best.history,
                                                   {**best.meta, "status": "finished"}), runs / "f0f0f0f0f0f0.pt")
    m = JobManager(runs, load_data=lambda: mnist)
    try:
        assert sorted(m.recovery.restored) == [genuine.stem, forged.stem]
        ok = m.wait_until(genuine.stem, lambda r: r.origin != "restored", timeout=HANG)
        bad = m.wait_until(forged.stem, lambda r: r.origin != "restored", timeout=HANG)
        assert ok.origin == "verified" and ok.challenge_eligible and ok.final_test_accuracy >= 99.4
        assert bad.origin == "mismatch" and not bad.challenge_eligible and "re-evaluates to" in bad.error
    finally:
        m.close()


def test_a_registry_locked_when_the_server_starts_is_tried_again_by_a_later_page(tmp_path):
    opened(tmp_path).close()
    holder = sqlite3.connect(tmp_path / "runs.sqlite3", isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    m = JobManager(tmp_path, load_data=lambda: pytest.fail("nothing trains here"))
    try:
        assert m.problem and "locked" in m.check_registry()  # training is off while another program holds it
        holder.execute("ROLLBACK")
        holder.close()
        assert m.check_registry() is None and m.problem is None  # the next page finds it free: training is on
    finally:
        m.close()
