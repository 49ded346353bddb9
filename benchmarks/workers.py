"""What a worker process costs: a preset trained through the JobManager on a thread of the server, then in a worker
process, the same job, on the same machine.

    python benchmarks/workers.py [--preset best] [--pairs] >> benchmarks/results/workers.jsonl

One line per job: the executor, the seconds from submit to the first batch (data loading, and for a process its
start and imports of torch), to the end, of training (the epochs' own ``seconds``, and each epoch's: the fastest is
the figure least disturbed by other programs) and of evaluation, the final accuracy. Each mode runs in this
script's process in turn, thread first, so each pays its own first-training warm-up once, as a server would.
``--pairs``: then two such jobs submitted together, one after the other on a thread against both at once in two
processes (each with half the cores), the wall time of the pair. Other programs using the CPU meanwhile change the
figures: run it on a quiet machine, and compare lines from the same run.
"""

import argparse
import tempfile
import time

from _common import emit, machine

from mnistlab import arch, train
from mnistlab.executor import ProcessExecutor
from mnistlab.jobs import JobManager

HANG = 3600


def first_batch(run) -> bool:
    return run.batch >= 1 or run.epochs_done >= 1 or not run.active


def measure(mode: str, preset: str, jobs: int) -> None:
    """``jobs`` copies of the preset's job, submitted together, on a thread (one after the other) or each in a
    worker process (all at once)."""
    executor = ProcessExecutor(jobs) if mode == "process" else None
    m = JobManager(tempfile.mkdtemp(prefix="mnistlab-workers-"), workers=1, executor=executor)
    try:
        t0 = time.time()
        ids = [m.submit(arch.preset(preset), train.recipe(preset), owner=f"s{i}") for i in range(jobs)]
        m.wait_until(ids[0], first_batch, timeout=HANG)
        first = time.time() - t0
        runs = [m.wait(i, timeout=HANG) for i in ids]
        for run in runs:
            assert run.status == "finished", run.error
            emit({"measure": "job", "executor": mode, "jobs_submitted": jobs, "preset": preset, "epochs": run.epochs,
                  "device": run.device, "precision": run.precision,
                  "submit_to_first_batch_s": round(first, 2) if run.id == ids[0] else None,
                  "submit_to_end_s": round(run.ended_at - t0, 2),
                  "train_s": round(sum(h["seconds"] for h in run.history), 2),
                  "epoch_s": [round(h["seconds"], 2) for h in run.history],
                  "eval_s": round(sum(h["eval_seconds"] for h in run.history), 2),
                  "final_test_accuracy": run.final_test_accuracy})
        if jobs > 1:
            emit({"measure": "jobs together", "executor": mode, "jobs": jobs,
                  "wall_s": round(max(r.ended_at for r in runs) - t0, 2)})
    finally:
        m.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="best")
    ap.add_argument("--pairs", action="store_true")
    args = ap.parse_args()
    emit({"machine": machine()})
    for jobs in (1, 2) if args.pairs else (1,):
        measure("thread", args.preset, jobs)
        measure("process", args.preset, jobs)


if __name__ == "__main__":
    main()
