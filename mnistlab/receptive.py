"""Receptive fields unit by unit: which pixels of the 28x28 input one unit of a feature map can see, and how the
view grows from layer to layer.

``arch.summary`` counts one number per layer (the receptive field and the jump); this module places the window. Along
one axis, unit i of a layer with kernel k, padding p and stride s reads the units i*s - p ... i*s - p + k - 1 of the
map before it; walking that back to the input gives the pixels the unit depends on. Its "full" window is the
textbook one, rf pixels wide starting at ``offset + i * jump``: where that reaches past the image, the unit reads
padding (zeros), not ink. The pixels it can really see are the full window clipped, layer by layer, to each map (a
max-pool that drops an odd map's last row clips it one more row). Every layer is square and acts on rows and
columns alike, so one axis describes both.
"""

from __future__ import annotations

from dataclasses import dataclass

from .arch import ArchSpec
from .layerplan import INPUT_SIZE, LayerPlan, plan

GEOMETRY = ("Conv2d", "MaxPool2d", "AvgPool2d")  # the layers that change where a unit looks; the rest act in place


@dataclass(frozen=True)
class Span:
    """The pixels one unit sees along one axis, both ends included: ``lo``-``hi`` inside the image; ``full_lo``-
    ``full_hi`` the full window, which may reach past the image (there the unit reads padding)."""

    lo: int
    hi: int
    full_lo: int
    full_hi: int

    @property
    def before(self) -> int:
        """How many pixels the full window reaches past the image's first edge (top or left)."""
        return max(0, -self.full_lo)

    @property
    def after(self) -> int:
        """How many pixels the full window reaches past the image's last edge (bottom or right)."""
        return max(0, self.full_hi - (INPUT_SIZE - 1))


@dataclass(frozen=True)
class Window:
    """What one unit sees of the 28x28 input: its rows and its columns."""

    rows: Span
    cols: Span

    @property
    def size(self) -> int:
        """The receptive field: the full window's side in pixels."""
        return self.rows.full_hi - self.rows.full_lo + 1

    @property
    def past_edge(self) -> dict[str, int]:
        """The image edges the full window reaches past, and by how many pixels (empty: it lies inside)."""
        sides = {"top": self.rows.before, "bottom": self.rows.after, "left": self.cols.before,
                 "right": self.cols.after}
        return {side: px for side, px in sides.items() if px}


@dataclass(frozen=True)
class ConvLayer:
    """One conv layer whose feature map a student can point into: its place in the plan and its map's side."""

    index: int  # 0-based, in ``plan(spec)`` (and in the built ``Net.layers``)
    name: str  # as ``analysis.feature_maps`` names it: "conv 3 (1x1, 8 ch)"
    size: int  # the map's side


def conv_layers(spec: ArchSpec) -> list[ConvLayer]:
    """Every conv layer, in order, named as the feature maps are."""
    out = []
    for i, layer in enumerate(plan(spec)):
        if layer.type == "Conv2d":
            kind = "head" if layer.role == "head" else ("1x1" if layer.kernel == 1 else "3x3")
            out.append(ConvLayer(i, f"conv {len(out) + 1} ({kind}, {layer.out_channels} ch)", layer.out_size))
    return out


def _full(layers: list[LayerPlan], unit: int) -> tuple[int, int]:
    """The full window along one axis of ``unit`` in the output of the last of ``layers``: (first, last) pixel."""
    offset, jump, rf = 0, 1, 1
    for layer in layers:
        offset -= layer.padding * jump
        rf, jump = layer.grow(rf, jump)
    return offset + unit * jump, offset + unit * jump + rf - 1


def _seen(layers: list[LayerPlan], unit: int) -> tuple[int, int]:
    """The input pixels ``unit`` of the last of ``layers`` depends on, along one axis: walked back one layer at a
    time, each time clipped to the map that layer reads (padding holds no pixels)."""
    lo = hi = unit
    for layer in reversed(layers):
        lo = max(0, lo * layer.stride - layer.padding)
        hi = min(layer.in_size - 1, hi * layer.stride - layer.padding + layer.kernel - 1)
    return lo, hi


def spans(spec: ArchSpec, index: int) -> list[Span]:
    """One ``Span`` per unit along an axis of the output of plan layer ``index`` (0-based)."""
    layers = plan(spec)[: index + 1]
    return [Span(*_seen(layers, u), *_full(layers, u)) for u in range(layers[-1].out_size)]


def window(spec: ArchSpec, index: int, row: int, col: int) -> Window:
    """What unit (row, col) of plan layer ``index``'s output sees of the input."""
    along = spans(spec, index)
    size = len(along)
    if not (0 <= row < size and 0 <= col < size):
        raise IndexError(f"unit ({row}, {col}) is outside the {size}x{size} map")
    return Window(along[row], along[col])


@dataclass(frozen=True)
class Step:
    """One layer that widens the view: its receptive field and jump after it, as ``arch.summary`` counts them."""

    index: int  # 1-based, as in the layer table
    label: str  # "conv 2", "pool 1", "GAP"
    receptive_field: int
    jump: int
    gap: bool  # the global average pool


def growth(spec: ArchSpec) -> list[Step]:
    """The receptive field after each conv and pool, in order, through the global average pool."""
    steps, rf, jump, convs, pools = [], 1, 1, 0, 0
    for i, layer in enumerate(plan(spec), 1):
        rf, jump = layer.grow(rf, jump)
        if layer.type == "Conv2d":
            convs += 1
            label = "head" if layer.role == "head" else f"conv {convs}" + (" (1x1)" if layer.kernel == 1 else "")
        elif layer.type == "MaxPool2d":
            pools += 1
            label = f"pool {pools}"
        elif layer.type == "AvgPool2d":
            label = "GAP"
        else:
            continue
        steps.append(Step(i, label, rf, jump, layer.type == "AvgPool2d"))
    return steps


def before_gap(spec: ArchSpec) -> int:
    """The receptive field of the last layer before the global average pool: what one place of the map the pool
    averages sees. (Through the pool the count grows by (n - 1) x jump, however small the view before it.)"""
    steps = growth(spec)
    at = next(i for i, s in enumerate(steps) if s.gap)
    return steps[at - 1].receptive_field if at else 1
