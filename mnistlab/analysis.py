"""Looking inside a trained network: predictions, feature maps, head maps, saliency, confusion matrix, mistakes."""

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


# Below this top probability the page says the network is not sure the drawing is a digit. Real digits rarely fall
# under it (drawn ones: none for best, seed, lean, one thin "1" for tiny; MNIST test digits: 1-2 %), while about a
# third of letters, shapes and scribbles do. A network trained only on digits always answers a digit, often confidently
# for a scribble: a low top probability is the one sign it gives, not a proof either way.
UNSURE_BELOW = 0.8


def unsure(probs: np.ndarray) -> bool:
    """Whether the network's top probability is too low to call the drawing a digit (``UNSURE_BELOW``)."""
    return float(np.max(probs)) < UNSURE_BELOW


@torch.no_grad()
def head_maps(model: Net, image: np.ndarray) -> np.ndarray:
    """(10, h, w): each digit's score at each place of the last feature map, before the global average pool; the
    mean of digit d's map is d's logit, so the winner's map is the one that is highest on average.

    A 3x3 or 1x1 head's output is that map. A "gap_conv1" head pools first; its 1x1 conv is applied at every place of
    the map it would have pooled instead, which gives the same mean, as a 1x1 conv and an average commute."""
    model.eval()
    x = _as_batch(image, next(model.parameters()).device)
    for layer, p in zip(model.layers, plan(model.spec)):
        if p.role == "head":
            return layer(x)[0].float().cpu().numpy()
        if p.role != "global average pool":  # only a gap_conv1 head has the pool before it
            x = layer(x)
    raise ValueError("the network has no head")  # every spec has one (arch.validate)


def smoothgrad(model: nn.Module, image: np.ndarray, target: int | None = None, samples: int = 16,
               noise: float = 0.2, seed: int = 0) -> np.ndarray:
    """SmoothGrad saliency, signed, (28, 28) in [-1, 1]: the gradient of the predicted (or given) digit's score with
    respect to each pixel, averaged over ``samples`` copies of the image with Gaussian noise (``noise`` of the 0-1
    pixel range) added. Positive: more ink there would raise the score; negative: it would lower it.

    The plain gradient of one image is speckle (neighbouring pixels flip sign); averaging over nearby images keeps what
    is stable: the strokes that make the digit, and the places where ink would turn it into another one. The noise is
    seeded, so one drawing always gives the same map."""
    model.eval()
    device = next(model.parameters()).device
    base = torch.as_tensor(np.asarray(image, dtype=np.float32))
    gen = torch.Generator().manual_seed(seed)
    noisy = base.unsqueeze(0) + noise * torch.randn((samples, *base.shape), generator=gen)
    x = _as_batch(noisy, device).requires_grad_(True)
    if target is None:
        with torch.no_grad():
            target = int(model(_as_batch(base, device)).argmax(1))
    model(x)[:, target].float().sum().backward()
    g = x.grad[:, 0].mean(0).cpu().numpy()
    peak = float(np.abs(g).max())
    return g / peak if peak > 0 else g


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
