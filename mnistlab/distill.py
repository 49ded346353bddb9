"""Learning from a mentor (knowledge distillation): a trained network's softened predictions as extra targets.

A label says only "this is a 7"; a trained mentor's probabilities also say "and it looks a little like a 1", which
tells a small student more per image. The student's loss mixes the two:

    (1 - w) * cross_entropy(student, labels) + w * T^2 * KL(softmax(mentor / T) || softmax(student / T))

(T^2 keeps the soft part's gradients on the same scale whatever the temperature T.) The mentor's own training counts
towards the challenge's epoch limit: its epochs are added to the student's.
"""

from __future__ import annotations

import stat
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checkpoint
from .arch import count_params
from .errors import MnistLabError

MAX_CHAIN = 5  # a mentor that learnt from a mentor...: deeper than this is refused (and a cycle cannot loop)


class MentorError(MnistLabError):
    """A mentor that cannot be used; the message says why."""


def plausible_name(name: object) -> bool:
    """A string that can name a network to learn from (a preset or a path); says nothing of whether it exists."""
    return isinstance(name, str) and 0 < len(name) <= 500 and "\0" not in name


def mentor_path(name: str) -> Path:
    """A shipped preset's name (``"best"``) means its shipped weights; anything else is a checkpoint path (relative
    to the current folder)."""
    return checkpoint.shipped().get(name) or Path(name)


@lru_cache(maxsize=16)
def _load(path: str, mtime_ns: int, size: int) -> checkpoint.Checkpoint:
    return checkpoint.load(path)  # keyed by mtime and size too, so a replaced file is read again


def load(name: str) -> checkpoint.Checkpoint:
    """The mentor's checkpoint, read with the safe loader."""
    if not plausible_name(name):
        raise MentorError(f"{name!r} cannot name a network to learn from")
    path = mentor_path(name)
    try:
        info = path.stat()
    except OSError as e:
        presets = ", ".join(checkpoint.shipped())
        raise MentorError(f"the network to learn from, {name!r}, is neither a shipped preset ({presets}) "
                           f"nor a readable checkpoint: {e.strerror or e}") from None
    if not stat.S_ISREG(info.st_mode) or info.st_size > checkpoint.MAX_BYTES:  # never read a device, pipe or giant
        raise MentorError(f"the network to learn from, {name!r}, is not a checkpoint file")
    try:
        return _load(str(path), info.st_mtime_ns, info.st_size)
    except checkpoint.CheckpointError as e:
        raise MentorError(f"the network to learn from, {name!r}, cannot be used: {e}") from None


def model(name: str, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The mentor network, in eval mode, its weights frozen (``load`` has checked that they fit its spec)."""
    return load(name).model(device).requires_grad_(False)


def lineage(name: str) -> list[tuple[str, int, int]]:
    """(name, epochs, parameters) for the mentor, its own mentor, and so on: from the files, or from the chain a
    checkpoint recorded when it was trained."""
    chain: list[tuple[str, int, int]] = []
    while name:
        ckpt = load(name)
        chain.append((name, len(ckpt.history), count_params(ckpt.spec)))
        recorded = ckpt.config.get("distill_chain")
        if recorded is not None:
            links = _links(recorded, name)
            if links[0][0] != ckpt.config.get("distill_from"):
                raise MentorError(f"{name!r} carries a damaged record of what it learnt from")
            chain += links
            name = ""
        else:
            name = ckpt.config.get("distill_from") or ""  # load() refuses anything that is not a name
        if len(chain) > MAX_CHAIN:
            raise MentorError(f"more than {MAX_CHAIN} networks learnt from one another in a chain")
    return chain


def chain_ok(recorded: object) -> bool:
    """A recorded chain has the shape ``lineage`` gives: 1 to MAX_CHAIN (name, epochs, parameters) links."""
    def link_ok(link: object) -> bool:
        return (isinstance(link, (list, tuple)) and len(link) == 3 and plausible_name(link[0])
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in link[1:]))

    return isinstance(recorded, (list, tuple)) and 0 < len(recorded) <= MAX_CHAIN and all(map(link_ok, recorded))


def _links(recorded: object, source: str) -> list[tuple[str, int, int]]:
    if not chain_ok(recorded):
        raise MentorError(f"{source!r} carries a damaged record of what it learnt from")
    return [tuple(link) for link in recorded]


def loss(student_logits: torch.Tensor, mentor_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """The soft part of the loss: T^2 * KL(mentor || student), both softened by T, averaged over the batch."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(mentor_logits / t, dim=1),
                    log_target=True, reduction="batchmean") * (t * t)
