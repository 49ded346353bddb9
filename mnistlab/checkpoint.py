"""Our checkpoint format: save, and load with ``torch.load(weights_only=True)`` plus structural checks.

A checkpoint is a plain dict of tensors, strings and numbers (nothing that needs an arbitrary unpickler):
``{"format": "mnistlab-checkpoint", "version": 1, "spec": {...}, "config": {...}, "history": [...],
"state_dict": {...}, "meta": {...}}``. Anything else (a pickle payload, a truncated file, a state_dict that does not fit
its spec) is refused with a CheckpointError whose message says why.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import records
from .arch import ArchSpec, Net, SpecError, build
from .errors import MnistLabError

FORMAT = "mnistlab-checkpoint"
VERSION = 1
WEIGHTS_DIR = Path(__file__).parent / "weights"
# Our largest legal network (200k parameters, fp32) with a 100-epoch history is under 1 MB; torch stores members
# uncompressed, so a checkpoint inflates to about its own size. Anything much bigger is not ours, and is refused
# before it is read (the file) or inflated (its members).
MAX_BYTES = 4 * 1024 * 1024
MAX_INFLATED = 8 * 1024 * 1024
MAX_MEMBERS = 2000  # one per tensor, plus torch's own few


class CheckpointError(MnistLabError):
    """Not a usable mnistlab checkpoint; the message says why."""


@dataclass
class Checkpoint:
    spec: ArchSpec
    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def model(self, device: torch.device | str = "cpu") -> Net:
        """The network with these weights, in eval mode."""
        net = build(self.spec)
        try:
            net.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as e:
            first = str(e).strip().splitlines()
            raise CheckpointError(f"the weights do not fit the network in the checkpoint's spec: "
                                  f"{' '.join(first[:3])}") from None
        return net.to(device).eval()


def to_bytes(ckpt: Checkpoint) -> bytes:
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "spec": ckpt.spec.to_dict(),
        "config": ckpt.config,
        "history": ckpt.history,
        "meta": ckpt.meta,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in ckpt.state_dict.items()},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def save(ckpt: Checkpoint, path: Path | str) -> Path:
    """Write atomically (a temp file renamed into place), so a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(to_bytes(ckpt))
    os.replace(tmp, path)
    return path


def from_bytes(blob: bytes, source: str = "the file") -> Checkpoint:
    if len(blob) > MAX_BYTES:
        raise CheckpointError(f"{source} is {len(blob):,} bytes, far larger than any mnistlab checkpoint")
    _check_archive(blob, source)
    try:
        obj = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused a global: never executed, whatever torch calls it
        raise CheckpointError(f"{source} was refused and not loaded: it carries objects other than tensors and "
                              "plain data, a possible pickle payload") from None
    except Exception as e:  # truncated/corrupt archives raise RuntimeError, EOFError, zipfile errors, ...
        raise CheckpointError(f"{source} could not be read (corrupt or truncated): {type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else ''}") from None
    return _from_payload(obj, source)


def _check_archive(blob: bytes, source: str) -> None:
    """A zip archive of a plausible size once inflated, each member intact: checked from the archive's directory
    before anything is inflated, then member by member (CRC-32) within that bound."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        raise CheckpointError(f"{source} is not an mnistlab checkpoint (not a PyTorch zip archive; "
                              "it may be truncated, or a raw pickle)") from None
    inflated = sum(m.file_size for m in members)
    if len(members) > MAX_MEMBERS or inflated > MAX_INFLATED:
        raise CheckpointError(f"{source} would inflate to {inflated:,} bytes in {len(members)} parts, far more than "
                              "any mnistlab checkpoint; it was not opened")
    try:
        damaged = archive.testzip()  # reads each member up to its declared size, no further
    except Exception:  # zipfile raises many types on broken archives; torch.load then reports it as corrupt
        damaged = None
    if damaged:
        raise CheckpointError(f"{source} is corrupt: its part {damaged!r} fails its checksum (a damaged copy; "
                              "copy or train it again)")


def _from_payload(obj: Any, source: str) -> Checkpoint:
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{source} is a PyTorch file but not an mnistlab checkpoint")
    if obj.get("version") != VERSION:
        raise CheckpointError(f"{source} has checkpoint version {obj.get('version')!r}; this mnistlab reads {VERSION}")
    try:
        spec = ArchSpec.from_dict(obj.get("spec"))
    except SpecError as e:
        raise CheckpointError(f"{source} has an invalid architecture spec: {e}") from None
    state = obj.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"{source} has no usable state_dict")
    config, history, meta = obj.get("config", {}), obj.get("history", []), obj.get("meta", {})
    if not isinstance(config, dict) or not isinstance(history, list) or not isinstance(meta, dict):
        raise CheckpointError(f"{source} has malformed config/history/meta")
    if not _plain_data([config, history, meta]):
        raise CheckpointError(f"{source} has a record (config, history or meta) that is not small plain data")
    ckpt = Checkpoint(spec, state, config, history, meta)
    try:
        ckpt.model()
    except CheckpointError as e:
        raise CheckpointError(f"{source}: {e}") from None
    return ckpt


MAX_NODES, MAX_DEPTH = 100_000, 16  # a real record has a few thousand values, nested four deep


def _plain_data(root: Any) -> bool:
    """Whether ``root`` is small plain data: dicts with text keys, lists, text, finite-sized numbers, None; at most
    MAX_NODES values (a value reached twice counts twice: a pickle can share one object at every level and make a
    few bytes stand for terabytes of JSON) and MAX_DEPTH levels."""
    stack, seen = [(root, 0)], 0
    while stack:
        value, depth = stack.pop()
        seen += 1
        if seen > MAX_NODES or depth > MAX_DEPTH:
            return False
        if isinstance(value, dict):
            if not all(isinstance(k, str) and len(k) <= 200 for k in value):
                return False
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)
        elif isinstance(value, str):
            if len(value) > 10_000:
                return False
        elif isinstance(value, int) and not isinstance(value, bool):
            if abs(value) > 2**63:
                return False
        elif not (value is None or isinstance(value, (bool, float))):
            return False
    return True


def load(path: Path | str, follow_links: bool = True) -> Checkpoint:
    """Read and check a checkpoint file. ``follow_links=False`` refuses a symbolic link (files in the runs folder)."""
    path = Path(path)
    return from_bytes(read_regular_file(path, MAX_BYTES, follow_links), source=str(path))


def read_regular_file(path: Path | str, limit: int, follow_links: bool = True) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes. A FIFO, a device (/dev/zero), a folder, a link when
    ``follow_links`` is off, or a giant (a sparse 20 GB file) is refused from its ``stat`` before anything is read,
    and opening never blocks (a FIFO with no writer would hang every page)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if follow_links else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except ValueError:  # a NUL in the name
        raise CheckpointError(f"cannot read {path!r}: not a file name") from None
    except OSError as e:
        why = "it is a link" if not follow_links and Path(path).is_symlink() else (e.strerror or str(e))
        raise CheckpointError(f"cannot read {path}: {why}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(f"{path} is not a regular file")
        if info.st_size > limit:
            raise CheckpointError(f"{path} is {info.st_size:,} bytes, far larger than any mnistlab checkpoint")
        chunks, size = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # it grew while being read
                raise CheckpointError(f"{path} is larger than any mnistlab checkpoint")
        return b"".join(chunks)
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    finally:
        os.close(fd)


def from_result(result, meta: dict[str, Any] | None = None) -> Checkpoint:
    """A checkpoint from a ``train.TrainResult``."""
    return Checkpoint(
        spec=result.spec,
        state_dict={k: v.detach().cpu().contiguous() for k, v in result.model.state_dict().items()},
        config=result.config.to_dict(),
        history=[h.to_dict() for h in result.history],
        meta={"status": result.status, "device": result.device, "precision": result.precision,
              "train_seconds": result.train_seconds, **(meta or {})},
    )


def history_json(ckpt: Checkpoint) -> str:
    """The run's record as strict JSON (a diverged run's NaN losses become null)."""
    return json.dumps(records.json_safe({"spec": ckpt.spec.to_dict(), "config": ckpt.config,
                                         "history": ckpt.history, "meta": ckpt.meta}), indent=2, allow_nan=False)


def shipped() -> dict[str, Path]:
    """The trained checkpoint shipped for each preset that has one: name -> path."""
    return {p.stem: p for p in sorted(WEIGHTS_DIR.glob("*.pt"))}
