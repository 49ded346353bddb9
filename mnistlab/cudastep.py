"""The training step as one CUDA graph: captured once per run, replayed once per batch.

Why: a small network's eager step on a GPU is ~150 kernel launches of a few microseconds of work each, so the GPU
waits for Python most of the time (``benchmarks/gpu_check.py`` profiles both). A replayed graph is one launch per
step. The graph is captured with ``torch.cuda.graph`` directly, not through ``torch.compile``: Inductor's compile
costs seconds for every new architecture, and in a class every student's network is new.

What a graph needs, and how each need is met here:

- Inputs at fixed addresses: the epoch's batches are prepared before the epoch in a few batched ops
  (``DeviceLoader.fill``: the same shuffle and the same augmentation draws as per batch) into one buffer; the graph
  picks its batch with a counter on the device.
- A schedule that changes every step: the LR and momentum of every step come from the run's own scheduler, run in
  advance on a stand-in optimiser (``train._schedule``), into a table on the device that the graph reads by a second
  counter.
- The optimiser inside the graph: ``torch.optim.SGD`` reads its LR and momentum as Python numbers, which a capture
  would freeze, so the update is written here with foreach ops on device scalars: the same arithmetic (weight decay,
  momentum, Nesterov) up to rounding.
- No host synchronisation per step: the loss and the accuracy are summed on the device; the caller reads the last
  loss every few batches (its progress events) and the sums once per epoch.

The same step runs uncaptured on any device (``TrainConfig(cuda_graph="uncaptured")``), which is how the CPU tests
check its arithmetic against the eager loop. A capture that fails (an operation a graph cannot hold) is logged and
the run goes on with the eager step: the fast path never fails a student's run.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Callable, Sequence

import torch

from .data import DeviceLoader

log = logging.getLogger(__name__)

WARMUP_STEPS = 3  # eager steps on a side stream before the capture (lazy initialisation of cuDNN/cuBLAS, autograd)
_capturing = threading.Lock()  # one capture at a time in a process (torch.cuda.graph's own rule)

Losses = Callable[[torch.Tensor, torch.Tensor], "tuple[torch.Tensor, torch.Tensor, torch.Tensor]"]


def unsupported(optimizer: str, ema: float, precision: str, groups: Sequence[dict]) -> str | None:
    """Why a run's step cannot be captured (the eager step trains it), or None when it can."""
    if optimizer != "sgd":
        return f"the {optimizer} optimiser is not captured"
    if ema > 0:
        return "the weight average (ema) is updated eagerly"
    if precision == "fp16":
        return "fp16's loss scaling checks each step on the host"
    if any(g.get("dampening", 0) or g.get("maximize", False) for g in groups):
        return "SGD with dampening or maximize is not captured"
    return None


class GraphStep:
    """One run's training step over the prepared epoch: ``begin_epoch``, then ``ready`` (captures on its first
    call; False when the capture failed), then ``step`` once per batch, ``last_loss`` when a progress event is due,
    ``epoch_result`` at the end of the epoch.

    ``losses(x, y)`` is the run's loss, ``(loss to minimise, loss on the labels, logits)``; ``schedule[i][g]`` the
    (LR, momentum) of param group ``g`` after ``i`` scheduler steps; ``capture``: False runs the step uncaptured."""

    def __init__(self, model: torch.nn.Module, groups: Sequence[dict], loader: DeviceLoader, losses: Losses,
                 schedule: Callable[[], list[list[tuple[float, float]]]], precision: str, channels_last: bool,
                 capture: bool):
        self.model, self.loader, self.losses = model, loader, losses
        self.device = loader.device
        self.batch = min(loader.batch_size, len(loader.labels))
        self.batches = len(loader)
        self.channels_last = channels_last
        self.capture = capture
        self._schedule_source = schedule
        self._dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        dev = self.device
        # (params, weight decay, nesterov) per group, as the optimiser has them
        self.groups = [(list(g["params"]), float(g["weight_decay"]), bool(g["nesterov"])) for g in groups]
        n = self.batch * self.batches
        self.images = torch.empty((n, 1, 28, 28), device=dev)
        self.labels = torch.empty(n, dtype=torch.long, device=dev)
        self._offsets = torch.arange(self.batch, device=dev)
        self._buffers = [[torch.zeros_like(p) for p in params] for params, _, _ in self.groups]  # momentum
        self._position = torch.zeros(1, dtype=torch.long, device=dev)  # the batch within the epoch
        self._steps = torch.zeros(1, dtype=torch.long, device=dev)  # steps taken: the schedule's row
        self._loss_sum = torch.zeros((), device=dev)
        self._correct = torch.zeros((), dtype=torch.long, device=dev)
        self._last = torch.zeros((), device=dev)
        self._schedule: list[list[tuple[float, float]]] | None = None
        self._graph: torch.cuda.CUDAGraph | None = None
        self._failed = False
        # replays run on the current device's stream: a run on another GPU than the current one switches to it
        self._switch = dev.type == "cuda" and dev.index is not None
        self.steps_done = 0  # counted on the host too, for the optimiser's param groups

    # ---------------------------------------------------------------------------------------------- per epoch

    def begin_epoch(self, augment) -> None:
        """Shuffle, augment (``augment`` or None) and normalise the epoch's images into the step's buffers."""
        self.loader.augment = augment
        self.loader.fill(self.images, self.labels)
        self._position.zero_()
        self._loss_sum.zero_()
        self._correct.zero_()

    def ready(self) -> bool:
        """Prepared to step: the schedule on the device and, when capturing, the graph (captured on the first call).
        False when the capture failed: the caller trains this run with the eager step instead."""
        if self._failed:
            return False
        if self._schedule is None:
            self._schedule = self._schedule_source()
            table = torch.tensor(self._schedule, dtype=torch.float32)  # (steps + 1, groups, 2)
            self._lr = table[:, :, 0].contiguous().to(self.device)
            self._momentum = table[:, :, 1].contiguous().to(self.device)
        if self.capture and self._graph is None:
            try:
                self._capture()
            except Exception as e:  # any op a graph cannot hold; the eager step trains this run
                self._failed = True
                self._clear_grads()
                log.warning("training this network without a CUDA graph (the capture failed: %s: %s)",
                            type(e).__name__, " ".join(str(e).split())[:300])
                return False
        return True

    def step(self) -> None:
        if self._graph is not None:
            with torch.cuda.device(self.device) if self._switch else contextlib.nullcontext():
                self._graph.replay()
        else:
            self._body()
        self.steps_done += 1

    def last_loss(self) -> float:
        """The last step's loss on the labels (waits for the device)."""
        return self._last.item()

    def epoch_result(self) -> tuple[float, float]:
        """(mean loss on the labels, accuracy %) of the epoch's training batches (waits for the device)."""
        seen = self.batch * self.batches
        return self._loss_sum.item() / seen, 100.0 * self._correct.item() / seen

    def close(self) -> None:
        """Drop the graph and the gradients that live in its memory pool (the trained model outlives the step)."""
        self._graph = None
        self._clear_grads()
        self.losses = None  # it holds the run, which holds this step: let both go without waiting for a gc pass

    def sync_groups(self, opt: torch.optim.Optimizer) -> None:
        """Give the optimiser's param groups the LR and momentum its scheduler would have set by now."""
        if self._schedule is None:
            return
        row = self._schedule[min(self.steps_done, len(self._schedule) - 1)]
        for group, (lr, momentum) in zip(opt.param_groups, row):
            group["lr"], group["momentum"] = lr, momentum

    def prepared_batches(self):
        """The epoch's prepared batches, for the eager step after a failed capture."""
        for b in range(self.batches):
            x = self.images[b * self.batch : (b + 1) * self.batch]
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[b * self.batch : (b + 1) * self.batch]

    # ---------------------------------------------------------------------------------------------- the step

    def _autocast(self):
        if self._dtype is None:
            return contextlib.nullcontext()
        # no cast cache: a cache filled during a capture would hand later steps tensors of the graph's pool
        return torch.autocast(self.device.type, dtype=self._dtype, cache_enabled=False)

    def _clear_grads(self) -> None:
        for params, _, _ in self.groups:
            for p in params:
                p.grad = None

    def _body(self) -> None:
        """One step, written so that it can be captured: no host reads, every varying number on the device."""
        self._clear_grads()  # backward then writes fresh gradients (inside a capture: from the graph's pool)
        idx = self._position * self.batch + self._offsets
        x = self.images.index_select(0, idx)
        y = self.labels.index_select(0, idx)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            loss, label_loss, logits = self.losses(x, y)
        loss.backward()
        row = self._steps.clamp(max=self._lr.shape[0] - 1)
        lrs, momenta = self._lr.index_select(0, row)[0], self._momentum.index_select(0, row)[0]
        with torch.no_grad():
            for g, (params, weight_decay, nesterov) in enumerate(self.groups):
                live = [i for i, p in enumerate(params) if p.grad is not None]
                if live:
                    sgd_update([params[i] for i in live], [params[i].grad for i in live],
                               [self._buffers[g][i] for i in live], lrs[g], momenta[g], weight_decay, nesterov)
            self._loss_sum.add_(label_loss.detach() * len(y))
            self._correct.add_((logits.argmax(1) == y).sum())
            self._last.copy_(label_loss.detach())
            self._position.add_(1)
            self._steps.add_(1)

    def _state(self) -> list[torch.Tensor]:
        """Every tensor a step changes, so that the warm-up steps can be undone."""
        return [*self.model.parameters(), *self.model.buffers(), *(b for bufs in self._buffers for b in bufs),
                self._position, self._steps, self._loss_sum, self._correct, self._last]

    def _capture(self) -> None:
        """Warm up on a side stream, capture one step, then put back every tensor the warm-up changed (a capture
        itself runs nothing), so the run's first real step is its first step."""
        saved = [t.detach().clone() for t in self._state()]
        try:
            with torch.cuda.device(self.device):
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(WARMUP_STEPS):
                        self._body()
                torch.cuda.current_stream().wait_stream(side)
                self._clear_grads()
                graph = torch.cuda.CUDAGraph()
                # thread_local: the server's other threads may use CUDA (a page's prediction) during the capture
                with _capturing, torch.cuda.graph(graph, stream=side, capture_error_mode="thread_local"):
                    self._body()
                self._graph = graph
        finally:
            with torch.no_grad():
                for t, s in zip(self._state(), saved):
                    t.copy_(s)


def sgd_update(params: list[torch.Tensor], grads: list[torch.Tensor], buffers: list[torch.Tensor],
               lr: torch.Tensor, momentum: torch.Tensor, weight_decay: float, nesterov: bool) -> None:
    """SGD with momentum (no dampening), LR and momentum as device scalars: what ``torch.optim.SGD`` does, where a
    first step's momentum buffer starts as the gradient, i.e. from zeros. Changes ``params``, ``buffers`` and, without
    weight decay, ``grads`` in place."""
    d = torch._foreach_add(grads, params, alpha=weight_decay) if weight_decay else grads
    torch._foreach_mul_(buffers, momentum)
    torch._foreach_add_(buffers, d)
    if nesterov:
        torch._foreach_add_(d, torch._foreach_mul(buffers, momentum))
    else:
        d = buffers
    torch._foreach_sub_(params, torch._foreach_mul(d, lr))
