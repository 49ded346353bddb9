"""Batched random affine augmentation (rotation, scale, shift) with tensor ops, on whatever device the batch is on.

One ``affine_grid`` + ``grid_sample`` call transforms a whole batch; no per-sample Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Affine:
    degrees: float = 8.0  # rotation drawn from [-degrees, degrees]
    scale: float = 0.08  # zoom factor drawn from [1 - scale, 1 + scale]
    shift: float = 2.0  # translation in pixels, per axis, drawn from [-shift, shift]

    def scaled(self, strength: float) -> "Affine":
        return Affine(self.degrees * strength, self.scale * strength, self.shift * strength)

    @property
    def is_identity(self) -> bool:
        return self.degrees == 0 and self.scale == 0 and self.shift == 0


def random_affine(x: torch.Tensor, aug: Affine, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply an independent random affine map to each image of ``x`` (N, C, H, W), float, background 0.

    Random numbers are drawn on the CPU generator (so a seed gives the same draws on every device) and moved over.
    """
    if aug.is_identity:
        return x
    n, _, h, w = x.shape
    u = torch.rand(n, 4, generator=generator) * 2 - 1  # uniform in [-1, 1]
    angle = u[:, 0] * math.radians(aug.degrees)
    zoom = 1 + u[:, 1] * aug.scale
    # affine_grid maps output coordinates to input coordinates in [-1, 1]; dividing by the zoom enlarges the digit.
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    tx, ty = u[:, 2] * aug.shift * 2 / w, u[:, 3] * aug.shift * 2 / h
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
