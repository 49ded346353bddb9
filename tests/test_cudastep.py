"""The CUDA-graph training step, checked on the CPU: its batches, its optimiser arithmetic and its schedule, its
progress, and its fallback when a capture fails. The capture itself needs a GPU: ``benchmarks/gpu_check.py``."""

import contextlib
import copy
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mnistlab import arch, cudastep, train
from mnistlab import data as mdata
from mnistlab.augment import Affine
from mnistlab.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
SPEC = arch.preset("tiny")  # small and quick, with BatchNorm: running statistics a warm-up would change


def synthetic(train_images: int = 640, test_images: int = 200, seed: int = 0) -> mdata.MNIST:
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> mdata.Split:
        return mdata.Split(torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8),
                           torch.randint(0, 10, (n,), generator=g))

    return mdata.MNIST(train=split(train_images), test=split(test_images))


def states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fill_serves_the_batches_that_iterating_would():
    split = synthetic(1000).train

    def loader():
        return mdata.DeviceLoader(split, 64, shuffle=True, augment=Affine().scaled(0.5),
                                  generator=torch.Generator().manual_seed(3), channels_last=True, drop_last=True)

    iterated = loader()
    for _ in range(2):  # the second epoch too: the generator must be where iterating leaves it
        xs, ys = zip(*iterated)
    filled = loader()
    images, labels = torch.empty(len(filled) * 64, 1, 28, 28), torch.empty(len(filled) * 64, dtype=torch.long)
    for _ in range(2):
        filled.fill(images, labels, chunk=100)  # chunks that do not line up with the batches
    assert torch.equal(images, torch.cat(xs)) and torch.equal(labels, torch.cat(ys))
    assert torch.equal(filled.generator.get_state(), iterated.generator.get_state())


@pytest.mark.parametrize("schedule,momentum,weight_decay", [("onecycle", 0.9, 5e-4), ("cosine", 0.0, 5e-4),
                                                            ("constant", 0.5, 0.0)])
def test_the_graph_update_is_sgd_with_the_scheduled_lr_and_momentum(schedule, momentum, weight_decay):
    cfg = TrainConfig(lr=0.1, momentum=momentum, weight_decay=weight_decay, schedule=schedule)
    torch.manual_seed(0)
    model = arch.build(SPEC).to(memory_format=torch.channels_last)
    twin = copy.deepcopy(model)
    steps = 40
    opt = train._optimizer(model, cfg)
    sched = train._scheduler(opt, cfg, steps)
    rows = train._schedule(cfg, steps)
    groups = [(g["params"], g["weight_decay"], g["nesterov"]) for g in train._optimizer(twin, cfg).param_groups]
    buffers = [[torch.zeros_like(p) for p in params] for params, _, _ in groups]
    g = torch.Generator().manual_seed(1)
    for i in range(steps):
        assert [(pg["lr"], pg["momentum"]) for pg in opt.param_groups] == rows[i]
        grads = [torch.randn(p.shape, generator=g) for p in model.parameters()]
        for p, grad in zip(model.parameters(), grads):
            p.grad = grad.clone()
        opt.step()
        sched.step()
        by_param = dict(zip(twin.parameters(), grads))
        with torch.no_grad():
            for k, (params, wd, nesterov) in enumerate(groups):
                lr, mom = (torch.tensor(v) for v in rows[i][k])
                cudastep.sgd_update(params, [by_param[p].clone() for p in params], buffers[k], lr, mom, wd, nesterov)
    assert [(pg["lr"], pg["momentum"]) for pg in opt.param_groups] == rows[steps]
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_uncaptured_steps_are_the_eager_steps():
    mnist = synthetic()
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05, seed=4, device="cpu", precision="fp32")
    eager = train._setup(SPEC, replace(cfg, cuda_graph="off"), mnist, None)
    graph = train._setup(SPEC, replace(cfg, cuda_graph="uncaptured"), mnist, None)
    assert eager.graph is None and isinstance(graph.graph, cudastep.GraphStep)
    eager.model.train()
    graph.model.train()
    eager.loader.augment = eager.augment
    graph.graph.begin_epoch(graph.augment)
    assert graph.graph.ready()
    losses = []
    for x, y in list(eager.loader)[:3]:
        losses.append(train._step(eager, x, y)[0].item())
        graph.graph.step()
        losses.append(graph.graph.last_loss())
        ea, gr = eager.model.state_dict(), graph.model.state_dict()
        for k in ea:
            torch.testing.assert_close(gr[k], ea[k], rtol=1e-5, atol=1e-6)
    assert losses[0] == losses[1]  # the same images and weights: the same first loss, exactly
    assert losses[2] != losses[0] and losses[3] == pytest.approx(losses[2], rel=1e-5)


@pytest.mark.slow
def test_training_with_the_uncaptured_step_reports_and_learns_as_the_eager_loop(mnist):
    data = mdata.MNIST(train=mnist.train, test=mnist.test.subset(1000))
    cfg = TrainConfig(epochs=2, train_subset=2000, batch_size=100, lr=0.1, seed=2, device="cpu")
    runs = {}
    for mode in ("off", "uncaptured"):
        events = []
        runs[mode] = (train.train(SPEC, replace(cfg, cuda_graph=mode), data, on_event=events.append),
                      [e for e in events if isinstance(e, train.BatchProgress)])
    (eager, eager_progress), (graph, graph_progress) = runs["off"], runs["uncaptured"]
    assert [(e.epoch, e.batch) for e in graph_progress] == [(e.epoch, e.batch) for e in eager_progress]
    assert graph_progress[0].loss == eager_progress[0].loss
    assert [h.lr for h in graph.history] == [h.lr for h in eager.history]  # the optimiser's groups follow the table
    for g, e in zip(graph.history, eager.history):
        assert abs(g.train_accuracy - e.train_accuracy) < 3 and abs(g.test_accuracy - e.test_accuracy) < 3
    assert graph.history[-1].test_accuracy > 75  # it learns: 84 % after these 40 steps


class _FakeStream:
    def wait_stream(self, other) -> None:
        pass


class _CaptureThatFails:
    """Runs the step for real (on the CPU), as far as a capture gets, then fails as CUDA does on an op it cannot
    hold: what a failed capture leaves behind is a warmed-up, stepped model that must be put back."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        raise RuntimeError("operation not permitted when stream is capturing")


@pytest.mark.slow
def test_a_failed_capture_is_logged_once_and_the_eager_step_trains_as_if_nothing_happened(monkeypatch, caplog):
    mnist = synthetic()
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05, seed=5, device="cpu", precision="fp32")
    eager = train.train(SPEC, replace(cfg, cuda_graph="off"), mnist)
    monkeypatch.setattr(train, "_graph_mode", lambda cfg, dev: "capture")
    monkeypatch.setattr(torch.cuda, "device", lambda dev: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "Stream", _FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: _FakeStream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", object)
    monkeypatch.setattr(torch.cuda, "graph", _CaptureThatFails)
    warm_ups = []
    real_body = cudastep.GraphStep._body
    monkeypatch.setattr(cudastep.GraphStep, "_body", lambda self: warm_ups.append(1) or real_body(self))
    with caplog.at_level(logging.WARNING, logger="mnistlab.cudastep"):
        fell_back = train.train(SPEC, replace(cfg, cuda_graph="auto"), mnist)
    assert len(warm_ups) == cudastep.WARMUP_STEPS + 1  # the warm-up and the failed capture did run steps
    warnings = [r for r in caplog.records if r.name == "mnistlab.cudastep"]
    assert len(warnings) == 1 and "without a CUDA graph" in warnings[0].getMessage()
    assert "not permitted" in warnings[0].getMessage()
    assert states_equal(fell_back.model, eager.model)  # those steps were undone: bit for bit the eager run
    assert [h.train_loss for h in fell_back.history] == [h.train_loss for h in eager.history]


@pytest.mark.parametrize("changes,captured", [
    ({}, True), ({"optimizer": "adamw"}, False), ({"ema": 0.99}, False), ({"cuda_graph": "off"}, False)])
def test_only_what_a_graph_can_hold_takes_the_graph_step(changes, captured):
    cfg = TrainConfig(**{"epochs": 1, "device": "cpu", "cuda_graph": "uncaptured", **changes})
    r = train._setup(SPEC, cfg, synthetic(), None)
    assert (r.graph is not None) == captured
    auto_on_the_cpu = train._setup(SPEC, replace(cfg, cuda_graph="auto"), synthetic(), None)
    assert auto_on_the_cpu.graph is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_gpu_check_without_cuda_says_so_in_one_line_and_exits_2():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["cuda"] is False and "CUDA" in json.loads(lines[0])["message"]


def replace(cfg: TrainConfig, **changes) -> TrainConfig:
    return TrainConfig(**{**cfg.to_dict(), **changes})


def test_gpu_check_reads_a_profiler_trace_per_step():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    events = [
        {"ph": "X", "cat": "cpu_op", "name": "aten::conv2d", "ts": 0.0, "dur": 100.0},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaGraphLaunch", "ts": 10.0, "dur": 5.0},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 20.0, "dur": 5.0},
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaStreamSynchronize", "ts": 90.0, "dur": 10.0},
        {"ph": "X", "cat": "kernel", "name": "a", "ts": 20.0, "dur": 30.0},
        {"ph": "X", "cat": "kernel", "name": "b", "ts": 40.0, "dur": 20.0},  # overlaps a: counted once in busy
        {"ph": "X", "cat": "gpu_memcpy", "name": "copy", "ts": 150.0, "dur": 50.0},
        {"ph": "i", "cat": "kernel", "name": "marker", "ts": 5.0},  # not a timed event
    ]
    figures = gpu_check.trace_figures(events, steps=2)
    assert figures["gpu_ms_per_step"] == 0.05  # (30 + 20 + 50) us over 2 steps
    assert figures["gpu_busy_in_profile"] == 0.45  # (40 + 50) us busy in a 200 us span
    assert figures["kernels_per_step"] == 1.0 and figures["kernel_launches_per_step"] == 0.5
    assert figures["graph_launches_per_step"] == 0.5 and figures["syncs_per_step"] == 0.5
