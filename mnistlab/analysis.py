"""Looking inside a trained network: predictions, feature maps, saliency, confusion matrix, mistakes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import data as mdata
from .arch import Net, plan


def _as_batch(image: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """A (28, 28) image in [0, 1] (or a stack of them) -> the normalised (N, 1, 28, 28) network input."""
    x = torch.as_tensor(np.asarray(image, dtype=np.float32))
    if x.ndim == 2:
        x = x.unsqueeze(0)
    return mdata.normalise(x).unsqueeze(1).to(device)


@torch.no_grad()
def predict(model: nn.Module, image: np.ndarray) -> np.ndarray:
    """Class probabilities (10,) for one (28, 28) image in [0, 1]."""
    model.eval()
    device = next(model.parameters()).device
    return torch.softmax(model(_as_batch(image, device)).float(), 1)[0].cpu().numpy()


@dataclass
class FeatureMaps:
    name: str  # e.g. "conv 2 (3x3, 32 ch)"
    maps: np.ndarray  # (channels, height, width), float32


@torch.no_grad()
def feature_maps(model: Net, image: np.ndarray) -> list[FeatureMaps]:
    """The activation of every conv layer for one image: after its ReLU where it has one, else the conv output."""
    model.eval()
    device = next(model.parameters()).device
    x = _as_batch(image, device)
    out: list[FeatureMaps] = []
    pending: str | None = None  # the name of a conv whose activation is not recorded yet

    def record() -> None:
        nonlocal pending
        if pending is not None:
            out.append(FeatureMaps(pending, x[0].float().cpu().numpy()))
            pending = None

    for layer, p in zip(model.layers, plan(model.spec)):
        if p.type in ("Conv2d", "MaxPool2d", "AvgPool2d"):
            record()
        x = layer(x)
        if p.type == "Conv2d":
            kind = "head" if p.role == "head" else ("1x1" if p.kernel == 1 else "3x3")
            pending = f"conv {len(out) + 1} ({kind}, {p.out_channels} ch)"
        elif p.type == "ReLU":
            record()
    record()
    return out


def saliency(model: nn.Module, image: np.ndarray, target: int | None = None) -> np.ndarray:
    """|d score / d pixel| for the predicted (or given) class: which pixels the decision leans on. (28, 28)."""
    model.eval()
    device = next(model.parameters()).device
    x = _as_batch(image, device).requires_grad_(True)
    logits = model(x)
    cls = int(logits.argmax(1)) if target is None else target
    logits[0, cls].backward()
    g = x.grad[0, 0].abs().cpu().numpy()
    return g / g.max() if g.max() > 0 else g


@torch.no_grad()
def test_predictions(model: nn.Module, split: mdata.Split, batch_size: int = 500) -> np.ndarray:
    """Probabilities (N, 10) for a whole split."""
    model.eval()
    device = next(model.parameters()).device
    probs = [torch.softmax(model(x).float(), 1).cpu() for x, _ in mdata.DeviceLoader(split, batch_size, device)]
    return torch.cat(probs).numpy()


def confusion_matrix(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(10, 10) counts: row = true digit, column = predicted digit."""
    pred = probs.argmax(1)
    cm = np.zeros((10, 10), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels), pred), 1)
    return cm


def misclassified(labels: np.ndarray, probs: np.ndarray, true: int, predicted: int) -> np.ndarray:
    """Indices of test images of digit ``true`` predicted as ``predicted``, most confident mistakes first."""
    labels = np.asarray(labels)
    pred = probs.argmax(1)
    idx = np.flatnonzero((labels == true) & (pred == predicted))
    return idx[np.argsort(-probs[idx, predicted])]
