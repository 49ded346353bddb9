"""Several jobs at once, each in its own worker process: overlap, cancel, a killed process, the registry, K.

The processes are real ("spawn", as on a GPU server) and K = 2 on this 2-core CPU; most tests share one manager so
that torch is imported by two processes once, not per test. Each test waits on the runs' events, never on the clock.
"""

import logging
import os
import re
import select
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mnistlab import arch, checkpoint, devices, train
from mnistlab.executor import ProcessExecutor, ThreadExecutor
from mnistlab.jobs import JobManager
from mnistlab.store import RunStore

from .conftest import HANG, QUICK, ProcessOutput, need

ROOT = Path(__file__).resolve().parent.parent
TINY = arch.preset("tiny")
LONG = train.TrainConfig(epochs=30, train_subset=5000, batch_size=100, seed=0)  # ~1 s an epoch here: cancelled
LONGER = replace(LONG, train_subset=20000)  # still training after a process has been started and run a job


def _count_batches(counter) -> None:
    """Runs in each worker process before its first job: every batch the trainer reports adds one to ``counter``
    (memory shared with the test), before the report leaves the process."""
    real_train = train.train

    def observed(spec, config=None, data=None, on_event=None, **kwargs):
        def listen(event):
            if isinstance(event, train.BatchProgress):
                counter.value += 1
            on_event(event)

        return real_train(spec, config, data, on_event=listen, **kwargs)

    train.train = observed


@pytest.fixture(scope="module")
def batches():
    import multiprocessing

    return multiprocessing.get_context("spawn").Value("q", 0, lock=False)


@pytest.fixture(scope="module")
def pool(tmp_path_factory, data_root, batches):
    """A manager whose jobs run in two worker processes, shared by this module's tests."""
    executor = ProcessExecutor(2, data_root=data_root, initializer=_count_batches, initargs=(batches,))
    m = JobManager(tmp_path_factory.mktemp("runs"), executor=executor)
    yield m
    m.close()


@pytest.fixture
def processes(pool):
    """The shared manager, with nothing of this test's left running afterwards."""
    yield pool
    for run in pool.queue():
        pool.cancel(run.id)
        pool.wait(run.id, timeout=HANG)


def training(run) -> bool:
    return run.batch >= 1 or run.epochs_done >= 1 or not run.active


@pytest.mark.slow
def test_two_jobs_train_at_the_same_time_each_in_its_own_process(processes):
    m = processes
    assert m.workers == 2
    first, second = (m.submit(TINY, LONG, owner=f"overlap-{i}") for i in range(2))
    third = m.submit(TINY, QUICK, owner="overlap-2")
    assert [r.id for r in m.queue()] == [first, second, third]  # running ones first, then the waiting one
    assert m.wait_until(first, training, timeout=HANG).active
    assert m.wait_until(second, training, timeout=HANG).active
    assert m.snapshot(first).active  # the first was still training when the second had trained a batch
    assert m.snapshot(third).queue_position == 1  # its place until a worker is free
    pids = {m._executor.pid(first), m._executor.pid(second)}
    assert None not in pids and len(pids) == 2 and os.getpid() not in pids
    m.cancel(first)
    assert m.wait(third, timeout=HANG).status == "finished"  # it took the first's worker
    m.cancel(second)
    assert [m.wait(i, timeout=HANG).status for i in (first, second)] == ["cancelled", "cancelled"]


def test_cancel_stops_a_job_in_a_worker_process_within_one_batch(processes, batches):
    m = processes
    batches.value = 0
    long = train.TrainConfig(epochs=20, train_subset=5000, batch_size=64)  # 78 batches an epoch, each reported
    run_id = m.submit(TINY, long, owner="cancel")
    assert m.wait_until(run_id, lambda r: r.batch >= 2 or not r.active, timeout=HANG).active
    m.cancel(run_id)
    at_cancel = batches.value  # read once the flag is set: only a batch already under way may still end
    snap = m.wait(run_id, timeout=HANG)
    assert snap.status == "cancelled" and snap.epochs_done < 20
    assert at_cancel >= 2
    assert batches.value - at_cancel <= 1, f"{batches.value - at_cancel} batches ran after the cancel"


@pytest.mark.slow
def test_a_worker_process_killed_mid_epoch_fails_only_its_run_and_is_replaced(processes):
    m = processes
    victim = m.submit(TINY, LONG, owner="kill-victim")
    other = m.submit(TINY, LONGER, owner="kill-other")
    m.wait_until(victim, lambda r: (r.epochs_done >= 1 and r.batch >= 1) or not r.active, timeout=HANG)
    assert m.wait_until(other, training, timeout=HANG).active
    os.kill(m._executor.pid(victim), signal.SIGKILL)
    snap = m.wait(victim, timeout=HANG)
    assert snap.status == "failed" and re.search(r"worker process .*died \(signal 9, killed", snap.error)
    stored = m.store.get(victim)
    assert stored.status == "failed" and stored.error == snap.error and stored.epochs_done >= 1
    ck = checkpoint.load(stored.checkpoint_path)  # the last completed epoch's weights (or one more) are kept
    assert stored.epochs_done <= len(ck.history) <= stored.epochs_done + 1
    assert ck.history[:stored.epochs_done] == stored.history
    following = m.submit(TINY, QUICK, owner="kill-next")  # the other worker is busy: this one needs a new process
    assert m.wait(following, timeout=HANG).status == "finished"
    assert m.snapshot(other).active  # it trained on through all of this
    m.cancel(other)
    assert m.wait(other, timeout=HANG).status == "cancelled"


def test_a_failing_job_in_a_worker_process_records_its_error_and_the_process_goes_on(processes):
    need(not torch.backends.mps.is_available(), "this test asks for a device that must be missing: MPS")
    m = processes
    bad = m.submit(TINY, replace(QUICK, device="mps"), owner="fail")
    snap = m.wait(bad, timeout=HANG)
    assert snap.status == "failed" and re.search(r"DeviceError: .*MPS", snap.error)
    assert m.store.get(bad).error == snap.error
    assert m.wait(m.submit(TINY, QUICK, owner="fail"), timeout=HANG).status == "finished"


@pytest.mark.slow
def test_a_job_in_a_worker_process_is_recorded_as_one_on_a_thread(processes, manager):
    assert isinstance(manager._executor, ThreadExecutor) and manager.workers == 1
    seen = {}
    for name, m in (("process", processes), ("thread", manager)):
        run_id = m.submit(TINY, QUICK, owner=f"same-{name}", student_name="Ann")
        snap = m.wait(run_id, timeout=HANG)
        stored = m.store.get(run_id)
        ck = checkpoint.load(stored.checkpoint_path)
        assert snap.status == stored.status == "finished" and stored.device and stored.precision
        assert stored.device == m.device  # the pages name the threads a job trains with, not the server's
        assert stored.history == snap.history == ck.history and len(stored.history) == 1
        assert Path(stored.checkpoint_path) == m.store.checkpoint_path(run_id)
        assert stored.final_test_accuracy == stored.history[-1]["test_accuracy"]
        seen[name] = (stored.precision, sorted(stored.history[0]), ck.spec, ck.config,
                      {k: ck.meta[k] for k in ("owner", "student_name", "status", "epochs_completed")})
    assert seen["process"][1:4] == seen["thread"][1:4] and seen["process"][0] == seen["thread"][0]
    assert seen["process"][4] == {**seen["thread"][4], "owner": "same-process"}


@pytest.mark.parametrize("text, workers", [("3", 3), (" 32 ", 32), ("1", 1)])
def test_the_workers_setting_is_taken_when_it_is_a_whole_number_from_1_to_32(monkeypatch, text, workers):
    monkeypatch.setenv("MNISTLAB_WORKERS", text)
    assert devices.default_workers(torch.device("cpu")) == workers


@pytest.mark.parametrize("text", ["0", "33", "-2", "2.5", "many"])
def test_a_bad_workers_setting_is_logged_and_the_default_used(monkeypatch, caplog, text):
    monkeypatch.setenv("MNISTLAB_WORKERS", text)
    with caplog.at_level(logging.WARNING, logger="mnistlab.devices"):
        assert devices.default_workers(torch.device("cpu")) == 1
    assert "MNISTLAB_WORKERS" in caplog.text and "1 to 32" in caplog.text


@pytest.mark.parametrize("free_gib, cores, workers", [(139, 16, 8), (7, 16, 3), (139, 4, 3), (1, 16, 1),
                                                      (139, 1, 1)])
def test_the_default_on_a_gpu_follows_its_free_memory_and_the_cores(monkeypatch, free_gib, cores, workers):
    monkeypatch.delenv("MNISTLAB_WORKERS", raising=False)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free_gib << 30, 141 << 30))
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert devices.default_workers(torch.device("cuda")) == workers
    assert devices.default_workers(torch.device("cpu")) == 1  # one job at a time on a CPU: it uses every core


def test_the_manager_takes_its_workers_from_the_setting(monkeypatch, tmp_path, mnist):
    monkeypatch.setenv("MNISTLAB_WORKERS", "2")
    m = JobManager(tmp_path / "a")
    try:
        assert m.workers == 2 and isinstance(m._executor, ProcessExecutor)
    finally:
        m.close()
    m = JobManager(tmp_path / "b", load_data=lambda: mnist)  # data given in-process: jobs train on a thread
    try:
        assert m.workers == 1 and isinstance(m._executor, ThreadExecutor)
    finally:
        m.close()
    with pytest.raises(ValueError, match="1 to 32"):
        JobManager(tmp_path / "c", workers=33)


KILL_SCRIPT = textwrap.dedent("""
    import sys
    from mnistlab import arch, train
    from mnistlab.jobs import JobManager
    m = JobManager(sys.argv[1])  # MNISTLAB_WORKERS=2: jobs in worker processes
    run_id = m.submit(arch.preset("tiny"), train.TrainConfig(epochs=30, train_subset=2000, batch_size=100), owner="s1")
    run = m.wait_until(run_id, lambda r: r.epochs_done >= 1 and r.batch >= 1, timeout=float(sys.argv[2]))
    print("mid-epoch", run_id, m._executor.pid(run_id), m.workers, flush=True)
    m.wait(run_id, timeout=float(sys.argv[2]))  # killed long before this returns
""")


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Whether the process ``pid`` (not a child of ours) ends within ``timeout`` seconds: woken by its end."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


@pytest.mark.slow
def test_a_killed_server_takes_its_worker_processes_with_it_and_its_run_is_interrupted(data_root, tmp_path):
    need(hasattr(os, "pidfd_open"), "waiting for another process's end needs pidfd_open (Linux)")
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(tmp_path), str(HANG)], cwd=ROOT,
                            env={**os.environ, "MNISTLAB_DATA": str(data_root), "MNISTLAB_WORKERS": "2"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = ProcessOutput(proc)
        _, run_id, pid, workers = out.wait_for("mid-epoch").split()
        assert workers == "2" and int(pid) != proc.pid
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=HANG) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
    assert wait_for_exit(int(pid), HANG), "the worker process outlived its server"
    killed_at = len(RunStore(tmp_path).get(run_id).history)  # nothing trains on: this is the last word
    store = RunStore(tmp_path)  # the restarted server
    assert store.recover().interrupted == [run_id]
    after = store.get(run_id)
    assert after.status == "interrupted" and after.epochs_done == killed_at >= 1
    assert store.integrity() == "ok"
    store.close()
