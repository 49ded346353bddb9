"""How a network is trained: config, device choice, the loop, events, cancellation, evaluation.

``train(spec, config, data, on_event, cancel)`` runs the loop and returns a ``TrainResult``; it never prints.
Progress goes to ``on_event`` as small dataclasses (``Started``, ``BatchProgress``, ``EpochEnd``), so a CLI
progress bar, a background job manager or a test can all listen the same way. Setting the ``cancel`` event from
another thread stops the loop within one batch.

Speed tricks, each measured on the 2-core dev CPU (seed network, one 60k epoch; benchmarks/results/):
- data as one tensor on the device, batched augmentation: no DataLoader workers (seed recipe: 40.6 s per epoch)
- batch 128 + channels_last (step_time.py: 36.9 s -> 29.9 s in fp32)
- bf16 autocast where the CPU has native bf16 (29.9 s -> 13.3 s); evaluation stays fp32. Final accuracy holds:
  `best` over seeds 1-3 ends at 99.46/99.49/99.46 % in bf16 and 99.52/99.46/99.44 % in fp32 (time_to_target.py)
- evaluation batch 256 rather than 1000 (10k test images in 0.9 s instead of 2.6 s)
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from . import data as mdata
from . import distill
from .arch import CHALLENGE_PARAMS, ArchSpec, build, count_params, summary
from .augment import Affine

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("onecycle", "constant", "cosine")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MAX_EPOCHS = 100


class ConfigError(ValueError):
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
    # rules read this record, so a teacher retrained or deleted later does not change an old run's verdict
    distill_chain: tuple[tuple[str, int, int], ...] | None = None
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    precision: str = "auto"  # auto: bf16 on CUDA / CPUs with native bf16, else fp32
    channels_last: bool = True
    train_subset: int | None = None  # quick runs: train on the first N images (not challenge-eligible)
    validation: int = 0  # hold N training images out as a validation split (evaluated, never trained on)
    eval_batch_size: int = 256  # measured: 256 evaluates 10k in 0.9 s here, 1000 in 2.6 s

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
        except distill.TeacherError as e:
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

    @property
    def challenge_eligible(self) -> bool:
        """Full training data and fewer than 20 epochs, those of a network it learns from included (the
        architecture checks live in arch.summary)."""
        return self.train_subset is None and self.validation == 0 and all(ok for _, ok in _training_rules(self))


TARGET_ACCURACY = 99.4  # percent, final epoch, official 10k test set


def challenge_rules(spec: ArchSpec, cfg: TrainConfig, final_test_accuracy: float | None = None
                    ) -> list[tuple[str, bool]]:
    """Each challenge rule, in words, and whether a run of ``spec`` with ``cfg`` meets it; the accuracy rule comes
    first, and only once there is a final accuracy to judge."""
    checks = [(c.detail, c.passed) for c in summary(spec).checks] + _training_rules(cfg)
    checks += [("trained on all 60,000 training images", cfg.train_subset is None and cfg.validation == 0)]
    if final_test_accuracy is not None:
        checks.insert(0, (f"final test accuracy {final_test_accuracy:.2f} % (needs at least {TARGET_ACCURACY} %)",
                          final_test_accuracy >= TARGET_ACCURACY))
    return checks


def _training_rules(cfg: TrainConfig) -> list[tuple[str, bool]]:
    """The epoch limit, which counts the epochs of a network it learns from (and of the one that learnt from) too;
    that network must be within the parameter budget itself, or it would pass a bigger network's knowledge on."""
    if not cfg.distill_from:
        return [(f"fewer than 20 epochs ({cfg.epochs})", cfg.epochs < 20)]
    try:
        if cfg.distill_chain is None:  # a config from before the chain was recorded: read the files as they are
            chain = distill.lineage(cfg.distill_from)
        elif distill.chain_ok(cfg.distill_chain):
            chain = cfg.distill_chain
        else:  # only a config that skipped validate(), e.g. a damaged registry row
            raise distill.TeacherError("its record of the networks it learnt from is damaged")
    except distill.TeacherError as e:
        return [(f"fewer than 20 epochs: {e}", False)]
    epochs = cfg.epochs + sum(n for _, n, _ in chain)
    taught = " + ".join(f"{n} for {Path(name).name}" for name, n, _ in chain)
    text = f"fewer than 20 epochs, counting those of the network it learnt from ({cfg.epochs} + {taught} = {epochs})"
    rules = [(text, epochs < 20)]
    rules += [(f"{Path(name).name}, which it learnt from, has fewer than {CHALLENGE_PARAMS:,} parameters too ({p:,})",
               p < CHALLENGE_PARAMS) for name, _, p in chain]
    return rules


# ---------------------------------------------------------------------------------------------------- devices


def pick_device(name: str = "auto") -> torch.device:
    """CUDA, then Apple MPS, then the CPU; an explicit name must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"unknown device {name!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA was asked for, but no CUDA GPU is available here")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("Apple MPS was asked for, but it is not available here")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unsupported device {name!r}")
    return dev


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    if dev.type == "mps":
        return "Apple MPS"
    return f"CPU ({torch.get_num_threads()} threads)"


def cpu_has_native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_precision(requested: str, dev: torch.device) -> str:
    if requested == "auto":
        if dev.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if dev.type == "cpu":
            return "bf16" if cpu_has_native_bf16() else "fp32"
        return "fp32"
    if requested == "fp16" and dev.type == "cpu":
        raise ConfigError("fp16 training is for GPUs; use bf16 or fp32 on the CPU")
    return requested


def _autocast(dev: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(dev.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


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


Event = Started | BatchProgress | EpochEnd


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


def load_teacher(cfg: TrainConfig, device: torch.device | str = "cpu") -> torch.nn.Module | None:
    """The frozen network ``cfg.distill_from`` names, or None; a ConfigError says why it cannot be used."""
    if not cfg.distill_from:
        return None
    try:
        return distill.model(cfg.distill_from, device)
    except distill.TeacherError as e:
        raise ConfigError(str(e)) from None


def train(spec: ArchSpec, config: TrainConfig | None = None, data: mdata.MNIST | None = None,
          on_event: Callable[[Event], None] | None = None, cancel: threading.Event | None = None,
          on_epoch: Callable[[TrainResult], None] | None = None, teacher: torch.nn.Module | None = None
          ) -> TrainResult:
    """Train ``spec`` with ``config``; events go to ``on_event``; ``on_epoch`` gets the result so far (model and
    history) after each epoch, before the epoch's event, e.g. to save a checkpoint; ``cancel`` stops within a batch.
    ``teacher``: a network to distil from in place of the one ``config.distill_from`` names (e.g. one trained on the
    same validation split), which must still name one, for the record; it is put in eval mode."""
    cfg = config or TrainConfig()
    cfg.validate()
    if teacher is not None and not cfg.distill_from:
        raise ConfigError("a network to learn from was given, but the config's distill_from does not say which")
    cfg = cfg.with_distill_chain()
    emit = on_event or (lambda event: None)
    dev = pick_device(cfg.device)
    precision = pick_precision(cfg.precision, dev)
    teacher = teacher if teacher is not None else load_teacher(cfg, dev)
    if teacher is not None:
        teacher = teacher.to(dev).eval()
        if cfg.channels_last:
            teacher = teacher.to(memory_format=torch.channels_last)
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
    sched = _scheduler(opt, cfg, cfg.epochs * len(loader))
    scaler = torch.amp.GradScaler(dev.type, enabled=precision == "fp16")

    ema = None
    if cfg.ema > 0:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    result = TrainResult(spec, cfg, model if ema is None else ema.module, "finished", device=device_name(dev),
                         precision=precision)
    emit(Started(result.device, precision, count_params(spec), cfg.epochs, len(loader), len(train_split)))
    report_every = max(1, len(loader) // 50)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        loader.augment = None if epoch > cfg.epochs - cfg.clean_epochs else aug
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), device=dev, dtype=torch.long)
        seen = 0
        for b, (x, y) in enumerate(loader, 1):
            if cancel is not None and cancel.is_set():
                result.status = "cancelled"
                result.train_seconds += time.perf_counter() - t0
                return result
            with _autocast(dev, precision):
                logits = model(x)
                label_loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                loss = label_loss
                if teacher is not None:
                    with torch.no_grad():
                        soft = teacher(x).float()
                    loss = ((1 - cfg.distill_weight) * label_loss
                            + cfg.distill_weight * distill.loss(logits.float(), soft, cfg.distill_temperature))
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += label_loss.detach() * len(y)  # the loss on the labels, comparable with or without a teacher
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            if b % report_every == 0 or b == len(loader):
                emit(BatchProgress(epoch, b, len(loader), label_loss.item()))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - t0
        result.train_seconds += seconds
        t1 = time.perf_counter()
        test_loss, test_acc = evaluate(result.model, data.test, dev, cfg.eval_batch_size, cfg.channels_last)
        val_acc = None
        if data.validation is not None:
            val_acc = evaluate(result.model, data.validation, dev, cfg.eval_batch_size, cfg.channels_last)[1]
        end = EpochEnd(epoch, cfg.epochs, loss_sum.item() / seen, 100.0 * correct.item() / seen, test_loss,
                       test_acc, seconds, time.perf_counter() - t1, opt.param_groups[0]["lr"], val_acc)
        result.history.append(end)
        if on_epoch is not None:
            on_epoch(result)
        emit(end)
    return result


# The recipe each preset ships with, compared with alternatives on a 10k validation split held out of the training
# set (benchmarks/preset_search.py; seed's is lean's, unsearched); the final-epoch test figures per seed come from
# benchmarks/time_to_target.py. Learning from best (distill.py) was tried and not adopted; see the README.
RECIPES: dict[str, dict[str, Any]] = {
    "best": {"epochs": 4, "batch_size": 64, "lr": 0.05, "augment": 0.5},
    "lean": {"epochs": 8, "batch_size": 128, "lr": 0.1, "augment": 0.5},
    "tiny": {"epochs": 15, "batch_size": 128, "lr": 0.1, "augment": 0.5},
    "seed": {"epochs": 8, "batch_size": 128, "lr": 0.1, "augment": 0.5},
}


def recipe(preset_name: str) -> TrainConfig:
    """The tuned config for a preset; the defaults for anything else."""
    return TrainConfig(**RECIPES.get(preset_name, {}))
