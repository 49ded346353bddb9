"""How a network is trained: config, device choice, the loop, events, cancellation, evaluation.

``train(spec, config, data, on_event, cancel)`` runs the loop and returns a ``TrainResult``; it never prints.
Progress goes to ``on_event`` as small dataclasses (``Started``, ``BatchProgress``, ``EpochEnd``), so a CLI
progress bar, a background job manager or a test can all listen the same way. Setting the ``cancel`` event from
another thread stops the loop within one batch.

Where the speed comes from (each trick measured by ``benchmarks/step_time.py`` and ``benchmarks/seed_vs_ours.py``):
the data is one tensor on the device with batched augmentation (no DataLoader workers); batch 128 and channels_last;
bf16 autocast where the CPU or GPU has native bf16, with evaluation in fp32 (``benchmarks/time_to_target.py
--precision fp32`` shows the final accuracy holds); an evaluation batch of 256. On CUDA the whole step is one
captured CUDA graph (``cudastep.py``; ``benchmarks/gpu_check.py`` compares it with the eager step there).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F

from . import cudastep
from . import data as mdata
from . import distill
from .arch import ArchSpec, build, count_params
from .augment import Affine
from .devices import autocast, device_name, pick_device, pick_precision
from .errors import MnistLabError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "constant", "cosine")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# auto: on CUDA, the step captured as one CUDA graph where the run allows it (cudastep.unsupported), else eager;
# off: the eager step; uncaptured: the graph's step run eagerly on any device (how the CPU tests check it)
CUDA_GRAPH = ("auto", "off", "uncaptured")
MAX_EPOCHS = 100


class ConfigError(MnistLabError):
    """An invalid training config; the message names the problem."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 4
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05  # the peak LR for one-cycle, the constant LR otherwise
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    label_smoothing: float = 0.0
    augment: float = 0.5  # strength of the random affine (0 = off, 1 = rotation 8 deg, scale 8 %, shift 2 px)
    clean_epochs: int = 0  # train the last N epochs on unaugmented images
    ema: float = 0.0  # evaluate and keep a moving average of the weights, this decay per step (0 = off)
    # Distillation (distill.py): learn from a trained network too, a shipped preset's name ("best") or a checkpoint
    distill_from: str | None = None
    distill_weight: float = 0.5  # the share of the loss given to its soft targets
    distill_temperature: float = 1.5  # how much its probabilities are softened
    # (name, epochs, parameters) of distill_from and of what it learnt from, recorded when training is set up: the
    # rules read this record, so a mentor retrained or deleted later does not change an old run's verdict
    distill_chain: tuple[tuple[str, int, int], ...] | None = None
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto: bf16 on CUDA / CPUs with native bf16, else fp32
    channels_last: bool = True
    train_subset: int | None = None  # quick runs: train on the first N images (not challenge-eligible)
    validation: int = 0  # hold N training images out as a validation split (evaluated, never trained on)
    eval_batch_size: int = 256  # measured: 256 evaluates 10k in 0.9 s here, 1000 in 2.6 s
    cuda_graph: str = "auto"  # one of CUDA_GRAPH

    def __post_init__(self) -> None:
        if isinstance(self.distill_chain, (list, tuple)):  # lists from JSON; a malformed chain is left for validate()
            chain = tuple(tuple(link) if isinstance(link, (list, tuple)) else link for link in self.distill_chain)
            object.__setattr__(self, "distill_chain", chain)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_distill_chain(self) -> "TrainConfig":
        """This config with ``distill_chain`` recorded from the files as they are now (a ConfigError if the network
        to learn from cannot be read), whatever chain it carried; unchanged without ``distill_from``."""
        if not self.distill_from:
            return self
        try:
            chain = tuple(distill.lineage(self.distill_from))
        except distill.MentorError as e:
            raise ConfigError(str(e)) from None
        return replace(self, distill_chain=chain)

    @classmethod
    def from_dict(cls, d: Any) -> "TrainConfig":
        if not isinstance(d, dict):
            raise ConfigError("a training config must be an object")
        names = {f.name: f for f in fields(cls)}
        unknown = set(d) - set(names)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(sorted(map(str, unknown)))}")
        try:
            cfg = cls(**d)
        except TypeError as e:
            raise ConfigError(str(e)) from None
        cfg.validate()
        return cfg

    def validate(self) -> None:
        def whole(name: str, lo: int, hi: int) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"{name} must be a whole number from {lo} to {hi}")

        def number(name: str, lo: float, hi: float) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v <= hi):
                raise ConfigError(f"{name} must be a number from {lo} to {hi}")

        whole("epochs", 1, MAX_EPOCHS)
        whole("batch_size", 1, 4096)
        whole("eval_batch_size", 1, 10000)
        whole("seed", 0, 2**31 - 1)
        whole("validation", 0, 30000)
        whole("clean_epochs", 0, self.epochs)
        if self.train_subset is not None:
            whole("train_subset", 1, 60000)
        number("lr", 1e-6, 10.0)
        number("momentum", 0.0, 0.999)
        number("weight_decay", 0.0, 0.1)
        number("label_smoothing", 0.0, 0.5)
        number("augment", 0.0, 3.0)
        number("ema", 0.0, 0.9999)
        number("distill_weight", 0.0, 1.0)
        number("distill_temperature", 0.5, 20.0)
        if self.distill_from is not None and not distill.plausible_name(self.distill_from):
            raise ConfigError("distill_from must be a shipped preset's name or a checkpoint path")
        if self.distill_chain is not None and not (self.distill_from and distill.chain_ok(self.distill_chain)):
            raise ConfigError("distill_chain must list (name, epochs, parameters) of the networks it learnt from")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}")
        if not isinstance(self.cuda_graph, str) or self.cuda_graph not in CUDA_GRAPH:
            raise ConfigError(f"cuda_graph must be one of {', '.join(CUDA_GRAPH)}")


# ---------------------------------------------------------------------------------------------------- events


@dataclass
class Started:
    device: str
    precision: str
    params: int
    epochs: int
    batches_per_epoch: int
    train_images: int


@dataclass
class BatchProgress:
    epoch: int
    batch: int  # 1-based, batches done in this epoch
    batches: int
    loss: float


@dataclass
class Evaluating:
    epoch: int
    images: int  # the test set, and a validation split if there is one


@dataclass
class EpochEnd:
    epoch: int
    epochs: int
    train_loss: float
    train_accuracy: float  # percent
    test_loss: float
    test_accuracy: float  # percent, on the official 10k test set
    seconds: float  # training time of this epoch (evaluation excluded)
    eval_seconds: float
    lr: float
    validation_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Event = Started | BatchProgress | Evaluating | EpochEnd


@dataclass
class TrainResult:
    spec: ArchSpec
    config: TrainConfig
    model: torch.nn.Module
    status: str  # finished | cancelled
    history: list[EpochEnd] = field(default_factory=list)
    device: str = ""
    precision: str = ""
    train_seconds: float = 0.0

    @property
    def final_test_accuracy(self) -> float | None:
        """The last completed epoch's test accuracy (never a best-epoch pick)."""
        return self.history[-1].test_accuracy if self.history else None


# ---------------------------------------------------------------------------------------------------- loop


@torch.no_grad()
def evaluate(model: torch.nn.Module, split: mdata.Split, device: torch.device | None = None,
             batch_size: int = 1000, channels_last: bool = False) -> tuple[float, float]:
    """(mean loss, accuracy %) in fp32 with the model in eval mode."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    loader = mdata.DeviceLoader(split, batch_size, device, channels_last=channels_last)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    for x, y in loader:
        logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    n = len(split)
    return loss_sum.item() / n, 100.0 * correct.item() / n


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on BatchNorm and bias parameters (1-D tensors): measured to help small nets.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps: int):
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.25,
                                                   div_factor=10.0, final_div_factor=100.0)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


def load_mentor(cfg: TrainConfig, device: torch.device | str = "cpu") -> torch.nn.Module | None:
    """The frozen network ``cfg.distill_from`` names, or None; a ConfigError says why it cannot be used."""
    if not cfg.distill_from:
        return None
    try:
        return distill.model(cfg.distill_from, device)
    except distill.MentorError as e:
        raise ConfigError(str(e)) from None


@dataclass
class _Run:
    """Everything one training run works with, set up by ``_setup``."""

    cfg: TrainConfig
    dev: torch.device
    precision: str
    model: torch.nn.Module
    loader: mdata.DeviceLoader
    augment: Affine | None
    opt: torch.optim.Optimizer
    sched: Any
    scaler: torch.amp.GradScaler
    mentor: torch.nn.Module | None
    ema: torch.optim.swa_utils.AveragedModel | None
    data: mdata.MNIST
    result: TrainResult
    graph: cudastep.GraphStep | None = None  # the step as a CUDA graph (or uncaptured), when the run uses it


def _setup(spec: ArchSpec, cfg: TrainConfig, data: mdata.MNIST | None, mentor: torch.nn.Module | None) -> _Run:
    cfg.validate()
    if mentor is not None and not cfg.distill_from:
        raise ConfigError("a network to learn from was given, but the config's distill_from does not say which")
    cfg = cfg.with_distill_chain()
    dev = pick_device(cfg.device)
    precision = pick_precision(cfg.precision, dev)
    mentor = mentor if mentor is not None else load_mentor(cfg, dev)
    if mentor is not None:
        mentor = mentor.to(dev).eval()
        if cfg.channels_last:
            mentor = mentor.to(memory_format=torch.channels_last)
    data = data or mdata.load(validation=cfg.validation, seed=cfg.seed)

    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = build(spec).to(dev)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_split = data.train.subset(cfg.train_subset)
    aug = Affine().scaled(cfg.augment) if cfg.augment > 0 else None
    loader = mdata.DeviceLoader(train_split, cfg.batch_size, dev, shuffle=True, augment=aug, generator=gen,
                                channels_last=cfg.channels_last, drop_last=len(train_split) > cfg.batch_size)
    opt = _optimizer(model, cfg)
    ema = None
    if cfg.ema > 0:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    result = TrainResult(spec, cfg, model if ema is None else ema.module, "finished", device=device_name(dev),
                         precision=precision)
    r = _Run(cfg, dev, precision, model, loader, aug, opt, _scheduler(opt, cfg, cfg.epochs * len(loader)),
             torch.amp.GradScaler(dev.type, enabled=precision == "fp16"), mentor, ema, data, result)
    r.graph = _graph_step(r)
    return r


def _graph_step(r: _Run) -> cudastep.GraphStep | None:
    """The run's step as a CUDA graph (``cuda_graph`` auto on CUDA) or uncaptured, when its config allows; else None
    (the eager step)."""
    cfg = r.cfg
    mode = _graph_mode(cfg, r.dev)
    if mode is None:
        return None
    why = cudastep.unsupported(cfg.optimizer, cfg.ema, r.precision, r.opt.param_groups)
    if why is not None:
        cudastep.log.info("the eager step trains this run: %s", why)
        return None
    steps = cfg.epochs * len(r.loader)
    try:
        return cudastep.GraphStep(r.model, r.opt.param_groups, r.loader, lambda x, y: _losses(r, x, y),
                                  lambda: _schedule(cfg, steps), r.precision, cfg.channels_last,
                                  capture=mode == "capture")
    except torch.OutOfMemoryError as e:  # the epoch's buffers: the eager step needs less memory
        cudastep.log.warning("training without a CUDA graph: %s", " ".join(str(e).split())[:300])
        return None


def _graph_mode(cfg: TrainConfig, dev: torch.device) -> str | None:
    """"capture", "uncaptured", or None for the eager step."""
    if cfg.cuda_graph == "uncaptured":
        return "uncaptured"
    return "capture" if cfg.cuda_graph == "auto" and dev.type == "cuda" else None


def _schedule(cfg: TrainConfig, steps: int) -> list[list[tuple[float, float]]]:
    """(LR, momentum) of each param group after 0, 1, ..., ``steps`` scheduler steps: the run's own scheduler on a
    stand-in optimiser with the same groups, so a captured step can read what ``_scheduler`` would set."""
    # a weight and a bias: the same two groups; on "meta", so that making it draws nothing from the seeded generator
    stand_in = _optimizer(torch.nn.Linear(1, 1, device="meta"), cfg)
    sched = _scheduler(stand_in, cfg, steps)
    stand_in.step()  # no gradients: changes nothing, but the scheduler knows the optimiser has stepped
    rows = []
    for i in range(steps + 1):
        if i:
            sched.step()
        rows.append([(g["lr"], g.get("momentum", 0.0)) for g in stand_in.param_groups])
    return rows


def _losses(r: _Run, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(the loss to minimise, the loss on the labels, the logits) of one batch, in whatever autocast the caller set."""
    cfg = r.cfg
    logits = r.model(x)
    label_loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
    loss = label_loss
    if r.mentor is not None:
        with torch.no_grad():
            soft = r.mentor(x).float()
        loss = ((1 - cfg.distill_weight) * label_loss
                + cfg.distill_weight * distill.loss(logits.float(), soft, cfg.distill_temperature))
    return loss, label_loss, logits


def _step(r: _Run, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step; returns (the loss on the labels, the logits), both detached."""
    with autocast(r.dev, r.precision):
        loss, label_loss, logits = _losses(r, x, y)
    r.opt.zero_grad(set_to_none=True)
    r.scaler.scale(loss).backward()
    r.scaler.step(r.opt)
    r.scaler.update()
    r.sched.step()
    if r.ema is not None:
        r.ema.update_parameters(r.model)
    return label_loss.detach(), logits.detach()


def _train_epoch(r: _Run, epoch: int, emit: Callable[[Event], None], cancel: threading.Event | None
                 ) -> tuple[float, float] | None:
    """One pass over the training images: (mean loss on the labels, accuracy %), or None when cancelled."""
    r.model.train()
    augment = None if epoch > r.cfg.epochs - r.cfg.clean_epochs else r.augment
    if r.graph is None:
        r.loader.augment = augment
        return _eager_epoch(r, epoch, iter(r.loader), emit, cancel)
    r.graph.begin_epoch(augment)
    if r.graph.ready():
        return _graph_epoch(r, epoch, emit, cancel)
    # the capture failed: this epoch's prepared batches, then the loader (the same draws), go to the eager step
    batches, r.graph = r.graph.prepared_batches(), None
    return _eager_epoch(r, epoch, batches, emit, cancel)


def _graph_epoch(r: _Run, epoch: int, emit: Callable[[Event], None], cancel: threading.Event | None
                 ) -> tuple[float, float] | None:
    """The epoch with the graph's step: nothing waits for the device but a progress event and the epoch's end."""
    g = r.graph
    batches = g.batches
    report_every = max(1, batches // 50)
    for b in range(1, batches + 1):
        if cancel is not None and cancel.is_set():
            return None
        g.step()
        if b % report_every == 0 or b == batches:
            emit(BatchProgress(epoch, b, batches, g.last_loss()))
    g.sync_groups(r.opt)
    return g.epoch_result()


def _eager_epoch(r: _Run, epoch: int, loader, emit: Callable[[Event], None], cancel: threading.Event | None
                 ) -> tuple[float, float] | None:
    """The epoch with the eager step, over ``loader``'s batches."""
    loss_sum = torch.zeros((), device=r.dev)
    correct = torch.zeros((), device=r.dev, dtype=torch.long)
    seen, batches = 0, len(r.loader)
    report_every = max(1, batches // 50)
    for b, (x, y) in enumerate(loader, 1):
        if cancel is not None and cancel.is_set():
            return None
        label_loss, logits = _step(r, x, y)
        loss_sum += label_loss * len(y)  # the loss on the labels, comparable with or without a mentor
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if b % report_every == 0 or b == batches:
            emit(BatchProgress(epoch, b, batches, label_loss.item()))
    if r.dev.type == "cuda":
        torch.cuda.synchronize(r.dev)
    return loss_sum.item() / seen, 100.0 * correct.item() / seen


def _evaluate_epoch(r: _Run) -> tuple[float, float, float | None]:
    """(test loss, test accuracy %, validation accuracy % or None) of the weights the run keeps."""
    cfg = r.cfg
    test_loss, test_acc = evaluate(r.result.model, r.data.test, r.dev, cfg.eval_batch_size, cfg.channels_last)
    val_acc = None
    if r.data.validation is not None:
        val_acc = evaluate(r.result.model, r.data.validation, r.dev, cfg.eval_batch_size, cfg.channels_last)[1]
    return test_loss, test_acc, val_acc


def train(spec: ArchSpec, config: TrainConfig | None = None, data: mdata.MNIST | None = None,
          on_event: Callable[[Event], None] | None = None, cancel: threading.Event | None = None,
          on_epoch: Callable[[TrainResult], None] | None = None, mentor: torch.nn.Module | None = None
          ) -> TrainResult:
    """Train ``spec`` with ``config``; events go to ``on_event``; ``on_epoch`` gets the result so far (model and
    history) after each epoch, before the epoch's event, e.g. to save a checkpoint; ``cancel`` stops within a batch.
    ``mentor``: a network to distil from in place of the one ``config.distill_from`` names (e.g. one trained on the
    same validation split), which must still name one, for the record; it is put in eval mode."""
    emit = on_event or (lambda event: None)
    r = _setup(spec, config or TrainConfig(), data, mentor)
    result = r.result
    emit(Started(result.device, r.precision, count_params(spec), r.cfg.epochs, len(r.loader), len(r.loader.labels)))
    try:
        return _epochs(r, emit, cancel, on_epoch)
    finally:
        if r.graph is not None:
            r.graph.close()


def _epochs(r: _Run, emit: Callable[[Event], None], cancel: threading.Event | None,
            on_epoch: Callable[[TrainResult], None] | None) -> TrainResult:
    result = r.result
    for epoch in range(1, r.cfg.epochs + 1):
        t0 = time.perf_counter()
        trained = _train_epoch(r, epoch, emit, cancel)
        result.train_seconds += time.perf_counter() - t0
        if trained is None:
            result.status = "cancelled"
            return result
        seconds, t1 = time.perf_counter() - t0, time.perf_counter()
        emit(Evaluating(epoch, len(r.data.test) + (len(r.data.validation) if r.data.validation else 0)))
        test_loss, test_acc, val_acc = _evaluate_epoch(r)
        end = EpochEnd(epoch, r.cfg.epochs, trained[0], trained[1], test_loss, test_acc, seconds,
                       time.perf_counter() - t1, r.opt.param_groups[0]["lr"], val_acc)
        result.history.append(end)
        if on_epoch is not None:
            on_epoch(result)
        emit(end)
    return result


# The recipe each preset ships with, chosen among alternatives on a 10k validation split held out of the training
# set (benchmarks/preset_search.py; seed's is lean's, unsearched); the final-epoch test figures per seed come from
# benchmarks/time_to_target.py.
RECIPES: dict[str, dict[str, Any]] = {
    "best": {"epochs": 4, "batch_size": 64, "lr": 0.05, "augment": 0.5},
    "lean": {"epochs": 8, "batch_size": 128, "lr": 0.1, "augment": 0.5},
    "tiny": {"epochs": 15, "batch_size": 128, "lr": 0.1, "augment": 0.5},
    "micro": {"epochs": 12, "batch_size": 128, "lr": 0.1, "augment": 0.5},
    "seed": {"epochs": 8, "batch_size": 128, "lr": 0.1, "augment": 0.5},
}


def recipe(preset_name: str) -> TrainConfig:
    """The tuned config for a preset; the defaults for anything else."""
    return TrainConfig(**RECIPES.get(preset_name, {}))
