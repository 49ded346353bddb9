"""How robust is a prediction? Rotate, shift, scale, thicken or thin a 28x28 digit and watch the answer; find the
smallest nudge to its pixels that changes it.

Images are (28, 28) float arrays in [0, 1], white ink on black, as ``drawing.to_mnist`` makes them. Every transform
keeps the black background (0) outside the digit, as MNIST has."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from . import data as mdata


@dataclass(frozen=True)
class Range:
    """One transform's slider: its values lo..hi in steps, what it is called, its unit."""
    lo: float
    hi: float
    step: float
    label: str
    unit: str

    def values(self) -> np.ndarray:
        count = int(round((self.hi - self.lo) / self.step)) + 1
        return np.round(self.lo + self.step * np.arange(count), 6)


# The five transforms (the names are the fields of ``Settings``). Ranges reach well past what MNIST's writers did, so
# that each plot shows where the network gives up.
RANGES: dict[str, Range] = {
    "rotate": Range(-90, 90, 5, "rotate", "°"),
    "shift_x": Range(-8, 8, 1, "shift right", " px"),
    "shift_y": Range(-8, 8, 1, "shift down", " px"),
    "scale": Range(0.5, 1.6, 0.05, "scale", "×"),
    "thickness": Range(-2, 3, 1, "thicker (+) or thinner (−)", " px"),
}
MAX_VALUES = 256  # one sweep's images, a bound on its memory and time


@dataclass(frozen=True)
class Settings:
    """Where each slider is. Applied in this order: stroke width first (on the digit as drawn), then one affine map
    (rotation about the centre, clockwise for positive degrees; scale; shift)."""
    rotate: float = 0.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    scale: float = 1.0
    thickness: int = 0

    def __post_init__(self) -> None:  # plain numbers, whatever came in (numpy's, a slider's), as torchvision wants
        for kind in RANGES:
            value = getattr(self, kind)
            object.__setattr__(self, kind, int(value) if kind == "thickness" else float(value))

    def with_value(self, kind: str, value: float) -> "Settings":
        if kind not in RANGES:
            raise ValueError(f"unknown transform {kind!r}; one of {', '.join(RANGES)}")
        return replace(self, **{kind: value})


def _image_tensor(image: np.ndarray | torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(image, dtype=np.float32))
    if x.shape != (28, 28):
        raise ValueError(f"expected a 28x28 image, got shape {tuple(x.shape)}")
    return x


def _cross_max(x: torch.Tensor) -> torch.Tensor:
    """Each pixel the brightest of itself and its four neighbours (a grey-level dilation by a 3x3 cross): every stroke
    grows by one pixel on each side. (N, 1, H, W)."""
    p = F.pad(x, (1, 1, 1, 1))
    h, w = x.shape[-2:]
    shifted = [p[..., 1:h + 1, 1:w + 1], p[..., :h, 1:w + 1], p[..., 2:, 1:w + 1], p[..., 1:h + 1, :w],
               p[..., 1:h + 1, 2:]]
    return torch.stack(shifted).amax(0)


def thicken(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Strokes ``steps`` pixels thicker on each side (dilation), or thinner for a negative ``steps`` (erosion, the
    dilation of the background). (N, 1, H, W) in [0, 1]."""
    for _ in range(abs(int(steps))):
        x = _cross_max(x) if steps > 0 else 1 - _cross_max(1 - x)
    return x


def transform(image: np.ndarray | torch.Tensor, settings: Settings) -> torch.Tensor:
    """One (28, 28) image under ``settings``, as a (28, 28) float tensor in [0, 1]."""
    x = thicken(_image_tensor(image)[None, None], settings.thickness)
    if (settings.rotate, settings.shift_x, settings.shift_y, settings.scale) != (0, 0, 0, 1):
        x = TF.affine(x, angle=settings.rotate, translate=[settings.shift_x, settings.shift_y], scale=settings.scale,
                      shear=[0.0, 0.0], interpolation=InterpolationMode.BILINEAR, fill=0.0)
    return x[0, 0].clamp(0, 1)


@dataclass(frozen=True)
class Sweep:
    """A transform's whole range: each value's predicted digit and ten probabilities."""
    kind: str
    values: np.ndarray  # (N,)
    predictions: np.ndarray  # (N,) int
    probs: np.ndarray  # (N, 10)
    base: Settings = Settings()  # where the other transforms were held

    def changes(self) -> list[int]:
        """Indices i where the network changes its mind between values i - 1 and i."""
        return [int(i) for i in np.flatnonzero(self.predictions[1:] != self.predictions[:-1]) + 1]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(N, 28, 28) images in [0, 1] on the model's device -> (N, 10) float logits."""
    return model(mdata.normalise(images).unsqueeze(1)).float()


@torch.no_grad()
def sweep(model: nn.Module, image: np.ndarray, kind: str, values, base: Settings = Settings()) -> Sweep:
    """The predictions for ``image`` with transform ``kind`` set to each of ``values`` (the others as in ``base``),
    all in one forward pass."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if not 0 < len(values) <= MAX_VALUES:
        raise ValueError(f"a sweep takes 1 to {MAX_VALUES} values, not {len(values)}")
    batch = torch.stack([transform(image, base.with_value(kind, v)) for v in values])
    model.eval()
    probs = torch.softmax(_logits(model, batch.to(_device(model))), 1).cpu().numpy()
    return Sweep(kind, values, probs.argmax(1), probs, base)


# ------------------------------------------------------------------------------------------------ the nudge
# Pixel budgets tried, smallest first: how far (on the 0-1 scale) any one pixel may move. An untrained eye barely
# notices 0.1; at 0.4 the change is plain to see, so the search stops there.
BUDGETS = (0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.4)
STEPS = 10  # gradient steps at each budget before the next is tried (PGD), fewer once they stop gaining:
STALL = 2  # steps in a row without a new best margin
# How far (in logits) the new digit's score must lead the old one's for a nudge to count: a nudge right on the
# boundary would be a coin toss, one whose answer could differ in the last bits of another batch's arithmetic. With
# it the new digit leads by at least 55 % to 45 % of the two.
LEAD = 0.2


@dataclass(frozen=True)
class Nudge:
    """The smallest change found that makes the network name another digit (or, when none within the largest budget
    did, the last attempt, with ``flipped`` False)."""
    original: np.ndarray  # (28, 28) in [0, 1]
    nudged: np.ndarray  # (28, 28) in [0, 1]
    before: int  # the digit the network named for the original
    after: int  # ... and for the nudged image
    before_probs: np.ndarray  # (10,)
    after_probs: np.ndarray  # (10,)
    budget: float  # the largest change any pixel was allowed
    flipped: bool

    @property
    def change(self) -> np.ndarray:
        return self.nudged - self.original

    @property
    def pixels(self) -> int:
        """How many pixels changed at all."""
        return int(np.count_nonzero(self.change))

    @property
    def largest(self) -> float:
        """The largest change of any one pixel, on the 0-1 scale."""
        return float(np.abs(self.change).max()) if self.pixels else 0.0

    def words(self) -> str:
        return f"changed {self.pixels} pixel{'' if self.pixels == 1 else 's'} by at most {self.largest:.2f}"


def _margin(logits: torch.Tensor, digit: int) -> torch.Tensor:
    """(N,) how far the best other digit's score is above ``digit``'s: positive once the network changes its mind.
    (Unlike the cross-entropy, its gradient does not vanish when the network is certain.)"""
    others = logits.clone()
    others[:, digit] = -torch.inf
    return others.amax(1) - logits[:, digit]


def _attack(model: nn.Module, x0: torch.Tensor, digit: int, budgets: list[float]) -> tuple[torch.Tensor, float]:
    """Projected gradient ascent on the margin from ``x0`` (28, 28), under a budget that grows (``STEPS`` steps at
    each of ``budgets``) until the network names another digit: each step moves every pixel by a quarter of the
    budget in the direction that raises the margin, then back within the budget of its original value and inside
    [0, 1]. No random start, so the same image always gets the same nudge. Returns the last image and its budget."""
    x, budget = x0.clone(), 0.0
    for eps in budgets:
        best, stalled = -torch.inf, 0
        for _ in range(STEPS):
            x.requires_grad_(True)
            margin = _margin(_logits(model, x[None]), digit)
            if float(margin.detach()) > LEAD:
                return x.detach(), budget
            best, stalled = (float(margin.detach()), 0) if float(margin.detach()) > best else (best, stalled + 1)
            if stalled == STALL:  # this budget has given what it can: on to the next
                break
            (grad,) = torch.autograd.grad(margin.sum(), x)  # not into the weights' .grad
            with torch.no_grad():
                x = torch.minimum(torch.maximum(x + eps / 4 * grad.sign(), x0 - eps), x0 + eps).clamp(0, 1)
            budget = eps
    return x.detach(), budget


@torch.no_grad()
def _fewest_pixels(model: nn.Module, x0: torch.Tensor, x: torch.Tensor, digit: int,
                   order: torch.Tensor) -> torch.Tensor:
    """Of the change ``x - x0`` keep only its ``k`` most useful pixels (``order``), with ``k`` found by bisection as
    small as keeps another digit ``LEAD`` ahead of ``digit``; the rest go back to the original. (28, 28)."""
    delta = (x - x0).flatten()

    def kept(k: int) -> torch.Tensor:
        d = torch.zeros_like(delta)
        d[order[:k]] = delta[order[:k]]
        return (x0 + d.view_as(x0)).clamp(0, 1)

    lo, hi = 0, len(order)  # kept(hi) is x itself, which flips (by LEAD); kept(lo) is x0, which does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        flips = float(_margin(_logits(model, kept(mid)[None]), digit)) > LEAD
        lo, hi = (lo, mid) if flips else (mid, hi)
    return kept(hi)


def nudge(model: nn.Module, image: np.ndarray, budgets=BUDGETS) -> Nudge:
    """A small change to ``image`` that makes the network name another digit: gradient steps under the smallest of
    ``budgets`` (the most any one pixel may change) that gets there, then cut down to the fewest pixels that still
    do. ``flipped`` is False when even the largest budget did not."""
    model.eval()
    x0 = _image_tensor(image).to(_device(model))
    budgets = sorted(float(b) for b in budgets)
    if not budgets or budgets[0] <= 0 or budgets[-1] > 1:
        raise ValueError("budgets must be in (0, 1]")
    with torch.no_grad():
        before = int(_logits(model, x0[None]).argmax(1))
    x, budget = _attack(model, x0, before, budgets)
    x.requires_grad_(True)
    margin = _margin(_logits(model, x[None]), before)
    if float(margin.detach()) <= LEAD:
        return _result(model, x0, x.detach(), before, budget)
    (grad,) = torch.autograd.grad(margin.sum(), x)
    useful = ((x - x0) * grad).detach().flatten()  # each pixel's first-order share of the margin's rise
    order = torch.argsort(useful, descending=True, stable=True)
    return _result(model, x0, _fewest_pixels(model, x0, x.detach(), before, order), before, budget)


@torch.no_grad()
def _result(model: nn.Module, x0: torch.Tensor, x: torch.Tensor, before: int, budget: float) -> Nudge:
    probs = [torch.softmax(_logits(model, image[None]), 1)[0].cpu().numpy() for image in (x0, x)]  # one at a time,
    after = int(probs[1].argmax())  # as analysis.predict does
    return Nudge(x0.cpu().numpy(), x.cpu().numpy(), before, after, probs[0], probs[1], budget, after != before)
