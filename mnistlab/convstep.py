"""The first convolution, number by number: for one output cell of one channel, the nine input values under the
3x3 kernel, its nine weights, the bias, their multiply-add, and what the layers after the conv (ReLU, BatchNorm,
Dropout, in the spec's order) make of it, exactly as the model computes it when it predicts.

What the conv multiplies is the normalised input, not the 0-1 pixel: (pixel - MEAN) / STD, as in training, so black
is -0.42 and white 2.82. Padding adds a ring of zeros to that normalised input (a dark grey, not black).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .arch import Net, plan
from .data import MEAN, STD
from .layerplan import LayerPlan


@dataclass(frozen=True)
class After:
    """One layer after the conv, as it acts on one value in eval mode (BatchNorm with its running averages)."""

    name: str  # "ReLU", "BatchNorm", "Dropout"
    mean: float = 0.0  # BatchNorm only: (x - mean) / sqrt(var + eps) * gamma + beta
    var: float = 1.0
    eps: float = 0.0
    gamma: float = 1.0
    beta: float = 0.0

    def apply(self, x: np.ndarray | float) -> np.ndarray | float:
        if self.name == "ReLU":
            return np.maximum(x, 0.0)
        if self.name == "BatchNorm":
            return (x - self.mean) / np.sqrt(self.var + self.eps) * self.gamma + self.beta
        return x  # Dropout is off when the model predicts: the value passes through


@dataclass(frozen=True)
class FirstConv:
    """The first conv of a network and the layers that act on its output before the next conv or pool."""

    padding: int
    weights: np.ndarray  # (channels, 3, 3), float64
    bias: np.ndarray  # (channels,), zeros when the conv has no bias
    has_bias: bool
    after: tuple[tuple[After, ...], ...]  # per channel: the layers after the conv, in order

    @property
    def channels(self) -> int:
        return self.weights.shape[0]


def first_conv(model: Net) -> FirstConv:
    """The first conv layer of ``model`` and what follows it, read from the model's own modules."""
    layers = plan(model.spec)
    conv: torch.nn.Conv2d = model.layers[0]
    weights = conv.weight.detach().double().cpu().numpy()[:, 0]
    bias = conv.bias.detach().double().cpu().numpy() if conv.bias is not None else np.zeros(weights.shape[0])
    after = [[] for _ in range(weights.shape[0])]
    for p, module in zip(layers[1:], list(model.layers)[1:]):
        if p.type in ("Conv2d", "MaxPool2d", "AvgPool2d"):
            break
        for c, steps in enumerate(after):
            steps.append(_after(p, module, c))
    return FirstConv(layers[0].padding, weights, bias, conv.bias is not None, tuple(map(tuple, after)))


def _after(p: LayerPlan, module: torch.nn.Module, c: int) -> After:
    if p.type == "BatchNorm2d":
        stats = (module.running_mean, module.running_var, module.weight.detach(), module.bias.detach())
        mean, var, gamma, beta = (float(t[c]) for t in stats)
        return After("BatchNorm", mean, var, float(module.eps), gamma, beta)
    return After("ReLU" if p.type == "ReLU" else "Dropout")


def normalised(image: np.ndarray, padding: int) -> np.ndarray:
    """The (28, 28) image in [0, 1] as the conv reads it: normalised, with ``padding`` rings of zeros, float64."""
    x = (np.asarray(image, dtype=np.float32) - np.float32(MEAN)) / np.float32(STD)  # as data.normalise, in float32
    return np.pad(x.astype(np.float64), padding)


@dataclass(frozen=True)
class Cell:
    """One output cell of the first conv, with every number that makes it."""

    channel: int
    row: int
    col: int
    pixels: np.ndarray  # (3, 3) the drawing's values in [0, 1] under the kernel; NaN where it lies on padding
    inputs: np.ndarray  # (3, 3) what the conv multiplies: normalised values, 0 on padding
    weights: np.ndarray  # (3, 3)
    bias: float
    conv: float  # (inputs * weights).sum() + bias: the conv's output
    after: tuple[tuple[str, float], ...]  # (layer, value after it), in the model's order

    @property
    def output(self) -> float:
        """The value the next layer receives."""
        return self.after[-1][1] if self.after else self.conv


def cell(model: Net, image: np.ndarray, channel: int, row: int, col: int) -> Cell:
    """The numbers of output cell (row, col) of ``channel``."""
    fc = first_conv(model)
    x = normalised(image, fc.padding)
    side = x.shape[0] - 2
    if not (0 <= channel < fc.channels and 0 <= row < side and 0 <= col < side):
        raise IndexError(f"no cell ({row}, {col}) of channel {channel}: the map is {side}x{side}, "
                         f"{fc.channels} channels")
    inputs = x[row:row + 3, col:col + 3]
    raw = np.pad(np.asarray(image, dtype=np.float64), fc.padding, constant_values=np.nan)
    value = float((inputs * fc.weights[channel]).sum() + fc.bias[channel])
    steps, v = [], value
    for a in fc.after[channel]:
        v = float(a.apply(v))
        steps.append((a.name, v))
    return Cell(channel, row, col, raw[row:row + 3, col:col + 3], inputs, fc.weights[channel],
                float(fc.bias[channel]), value, tuple(steps))


@dataclass(frozen=True)
class ChannelMaps:
    """One channel of the first conv over the whole image: the conv's map and the map after each later layer."""

    conv: np.ndarray  # (side, side)
    after: tuple[np.ndarray, ...]  # one map per ``FirstConv.after`` step


def channel_maps(fc: FirstConv, image: np.ndarray, channel: int) -> ChannelMaps:
    """Every cell of ``channel`` at once: the same multiply-add as ``cell``, slid over the padded input."""
    x = normalised(image, fc.padding)
    windows = np.lib.stride_tricks.sliding_window_view(x, (3, 3))  # (side, side, 3, 3)
    conv = np.einsum("ijkl,kl->ij", windows, fc.weights[channel]) + fc.bias[channel]
    maps, v = [], conv
    for a in fc.after[channel]:
        v = a.apply(v)
        maps.append(v)
    return ChannelMaps(conv, tuple(maps))


def activity(fc: FirstConv, image: np.ndarray) -> np.ndarray:
    """(channels,) each channel's mean activation after its ReLU (as the feature maps show it)."""
    out = []
    for c in range(fc.channels):
        maps = channel_maps(fc, image, c)
        names = [a.name for a in fc.after[c]]
        out.append(maps.after[names.index("ReLU")].mean() if "ReLU" in names else maps.conv.mean())
    return np.asarray(out)


def most_active(fc: FirstConv, image: np.ndarray) -> int:
    """The channel with the highest mean activation: the default one to step through."""
    return int(np.argmax(activity(fc, image)))
