"""The layer plan: the flat list of layers a spec stands for, before any torch module exists.

It is the single source of what each layer is: ``LayerPlan.module`` builds it, ``out_size`` gives the map it makes,
``grow`` the receptive field it sees, ``params`` and ``macs`` what it costs. ``arch`` validates and builds from it,
``arch.summary`` tabulates it, ``analysis`` walks it beside the built module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:
    from .arch import ArchSpec

NUM_CLASSES = 10
INPUT_SIZE = 28


@dataclass(frozen=True)
class LayerPlan:
    """One layer of the network as the spec describes it, before any torch module exists: the single source of its
    module (``module``), its output size, its receptive-field step and its cost."""

    type: str  # the torch class name: Conv2d, ReLU, BatchNorm2d, Dropout2d, MaxPool2d, AvgPool2d
    in_channels: int
    out_channels: int
    in_size: int  # the input map's side in pixels
    kernel: int = 1
    padding: int = 0
    stride: int = 1
    bias: bool = False
    role: str = ""  # what it is for, shown in the table: "3x3 conv", "transition", "head", ...
    block: int | None = None  # the 1-based block it belongs to; None for the head

    @property
    def out_size(self) -> int:
        if self.type in ("Conv2d", "MaxPool2d", "AvgPool2d"):
            return (self.in_size + 2 * self.padding - self.kernel) // self.stride + 1
        return self.in_size

    @property
    def params(self) -> int:
        if self.type == "Conv2d":
            return self.in_channels * self.out_channels * self.kernel**2 + (self.out_channels if self.bias else 0)
        if self.type == "BatchNorm2d":
            return 2 * self.out_channels  # weight and bias; running stats are buffers, not parameters
        return 0

    @property
    def macs(self) -> int:
        if self.type != "Conv2d":
            return 0
        return self.out_size**2 * self.out_channels * self.in_channels * self.kernel**2

    def grow(self, rf: int, jump: int) -> tuple[int, int]:
        """(receptive field, jump) after this layer, from those before it.

        The teaching point, written out: a window of k inputs spaced ``jump`` pixels apart widens the view by
        (k - 1) * jump, and a stride of s spaces the outputs s times further apart. Global average pooling over an
        n x n map is a window of n."""
        return rf + (self.kernel - 1) * jump, jump * self.stride

    def module(self, dropout: float) -> nn.Module:
        if self.type == "Conv2d":
            return nn.Conv2d(self.in_channels, self.out_channels, self.kernel, stride=self.stride,
                             padding=self.padding, bias=self.bias)
        if self.type == "ReLU":
            return nn.ReLU()
        if self.type == "BatchNorm2d":
            return nn.BatchNorm2d(self.out_channels)
        if self.type == "Dropout2d":
            return nn.Dropout2d(dropout)
        if self.type == "MaxPool2d":
            return nn.MaxPool2d(self.kernel, self.stride)
        if self.type == "AvgPool2d":
            return nn.AvgPool2d(self.kernel)  # the whole map: global average pooling
        raise AssertionError(self.type)


class _Planner:
    """Appends layers, keeping track of the channels and map size that the next layer receives."""

    def __init__(self, spec: ArchSpec):
        self.spec, self.layers, self.channels, self.size = spec, [], 1, INPUT_SIZE

    def add(self, type_: str, out_channels: int | None = None, **kw: Any) -> None:
        layer = LayerPlan(type_, self.channels, out_channels or self.channels, self.size, **kw)
        self.layers.append(layer)
        self.channels, self.size = layer.out_channels, layer.out_size

    def conv_unit(self, width: int, padding: int, with_bn: bool, block: int) -> None:
        """A 3x3 conv, then ReLU and BatchNorm in the spec's order, then dropout."""
        spec = self.spec
        self.add("Conv2d", width, kernel=3, padding=padding, bias=spec.bias, role="3x3 conv", block=block)
        after = ["ReLU", "BatchNorm2d"] if spec.order == "relu_bn" else ["BatchNorm2d", "ReLU"]
        for type_ in after:
            if type_ == "ReLU" or (spec.batchnorm and with_bn):
                self.add(type_, block=block)
        if spec.dropout > 0:
            self.add("Dropout2d", block=block)

    def gap(self) -> None:
        side = max(self.size, 1)  # a map shrunk to nothing is reported by validate(), not divided by here
        self.add("AvgPool2d", kernel=side, stride=side, role="global average pool")


def plan(spec: ArchSpec) -> list[LayerPlan]:
    """The flat list of layers the spec stands for, each with the map size it receives."""
    p = _Planner(spec)
    last_block = len(spec.blocks)
    for bi, block in enumerate(spec.blocks, 1):
        for wi, width in enumerate(block.widths, 1):
            is_last_conv = bi == last_block and wi == len(block.widths)
            p.conv_unit(width, block.padding, with_bn=spec.last_conv_bn or not is_last_conv, block=bi)
        if block.pool:
            p.add("MaxPool2d", kernel=2, stride=2, role="max-pool", block=bi)
        if block.transition is not None:
            p.add("Conv2d", block.transition, kernel=1, bias=spec.bias, role="1x1 transition", block=bi)
    if spec.head == "gap_conv1":
        p.gap()
        p.add("Conv2d", NUM_CLASSES, kernel=1, bias=True, role="head")
    else:
        p.add("Conv2d", NUM_CLASSES, kernel=3 if spec.head == "conv3" else 1, bias=spec.bias, role="head")
        p.gap()
    return p.layers
