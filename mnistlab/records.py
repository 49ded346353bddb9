"""What a run records, checked wherever it is read back (a registry row, a checkpoint file), and written as JSON
that any reader accepts.

A registry row or a checkpoint can be damaged by a full disk or forged by hand; the pages must never trust one.
``epoch_metrics`` accepts an epoch's record only with every field of the right type and range; ``json_safe`` turns
the NaN and infinities of a diverged run into ``null``, which strict JSON readers accept (bare ``NaN`` is not JSON).
"""

from __future__ import annotations

import math
from typing import Any

from .errors import MnistLabError

MAX_EPOCH = 1000  # far above any epoch limit; a bigger number is damage


class RecordError(MnistLabError):
    """A stored record that cannot be trusted; the message says which field is wrong."""


def _number(d: dict, key: str, lo: float = -math.inf, hi: float = math.inf, finite: bool = True) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RecordError(f"{key} is missing or not a number")
    try:
        v = float(v)
    except OverflowError:  # a whole number too big for a float (JSON allows 10**400)
        raise RecordError(f"{key} is far out of range") from None
    if math.isnan(v) or (finite and math.isinf(v)):
        if finite:
            raise RecordError(f"{key} is not a finite number")
        return float(v)
    if not lo <= v <= hi:
        raise RecordError(f"{key} is {v}, outside {lo}..{hi}")
    return float(v)


def _whole(d: dict, key: str, lo: int, hi: int) -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise RecordError(f"{key} is missing or not a whole number from {lo} to {hi}")
    return v


def epoch_metrics(d: Any) -> dict[str, Any]:
    """One epoch's record (``train.EpochEnd.to_dict()``), checked: accuracies in 0..100, times finite and not
    negative; a loss may be NaN or infinite (a diverged run is a real result). Raises RecordError."""
    if not isinstance(d, dict):
        raise RecordError("an epoch's record must be an object")
    clean = {"epoch": _whole(d, "epoch", 1, MAX_EPOCH), "epochs": _whole(d, "epochs", 1, MAX_EPOCH)}
    for key in ("train_accuracy", "test_accuracy"):
        clean[key] = _number(d, key, 0.0, 100.0)
    for key in ("train_loss", "test_loss"):  # None: a NaN that went through strict JSON
        clean[key] = math.nan if d.get(key, 0) is None else _number(d, key, finite=False)
    for key in ("seconds", "eval_seconds"):
        clean[key] = _number(d, key, 0.0)
    clean["lr"] = _number(d, "lr", 0.0)
    v = d.get("validation_accuracy")
    clean["validation_accuracy"] = None if v is None else _number(d, "validation_accuracy", 0.0, 100.0)
    return clean


def history(entries: Any) -> list[dict[str, Any]]:
    """A run's epochs, each checked, numbered 1, 2, 3... in order. Raises RecordError."""
    if not isinstance(entries, list):
        raise RecordError("the history must be a list")
    clean = [epoch_metrics(e) for e in entries]
    if [e["epoch"] for e in clean] != list(range(1, len(clean) + 1)):
        raise RecordError("the history's epochs are not numbered 1, 2, 3...")
    return clean


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None, so ``json.dumps(allow_nan=False)`` accepts it."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj
