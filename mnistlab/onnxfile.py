"""A trained network as an ONNX file, to run without PyTorch (ONNX Runtime, a browser, a phone app).

The file takes what the network takes: a float32 batch ``image`` of shape (N, 1, 28, 28), N any size, each image a
white digit on black prepared as the Draw page prepares one and normalised as in training, (pixel / 255 - MEAN) /
STD; it gives ``logits`` (N, 10), whose softmax is the ten probabilities. The file's own doc string says so.

Which of torch's exporters: from torch 2.9 the default is the one built on ``torch.export`` (it needs onnxscript and
onnx, both in requirements.txt); the older TorchScript one is deprecated there and is to be removed. Before 2.9 (back
to 2.4, which requirements.txt accepts) the TorchScript one is the default, and the newer one is still a preview
whose options change between releases. So the export follows the installed torch's default.

An export takes seconds (ten or more for the first in a process, on a busy CPU), so the app runs each in a child
process (``python -m mnistlab.onnxfile CHECKPOINT OUT``): killed past a time limit, one at a time on the server, and
whatever the exporter does (a crash, a hang, its memory) stays out of the server.
"""

from __future__ import annotations

import copy
import inspect
import io
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from .data import MEAN, STD
from .errors import MnistLabError

__all__ = ["OnnxExportError", "onnx_bytes", "export_checkpoint", "exporter", "DOC", "EXPORT_SECONDS"]

log = logging.getLogger(__name__)

EXPORT_SECONDS = 120  # an export past this is stopped (a few seconds is usual; a busy shared CPU is slower)
MAX_ONNX_BYTES = 8 * 1024 * 1024  # a 200,000-parameter network (the spec's limit) is under 1 MB of weights
_ONE_AT_A_TIME = threading.Lock()  # each export is a process with its own torch: never thirty at once
DOC = (f"MNIST Lab network. Input 'image': float32 (N, 1, 28, 28), N any batch size: white digits on black in "
       f"[0, 1] (cropped, scaled to 20x20, centred by centre of mass in 28x28, as MNIST), normalised as "
       f"(x - {MEAN}) / {STD}. Output 'logits': (N, 10); softmax gives the probabilities of the digits 0-9.")


class OnnxExportError(MnistLabError):
    """The network could not be exported to ONNX: the message says why."""


def exporter() -> str:
    """The installed torch's default exporter: "dynamo" (torch.export-based) or "torchscript"."""
    return "dynamo" if torch.__version__ >= "2.9" else "torchscript"


def onnx_bytes(model: nn.Module, how: str | None = None) -> bytes:
    """``model`` ((N, 1, 28, 28) normalised -> (N, 10) logits) as an ONNX file with a dynamic batch size, in this
    process, with ``how`` (default: ``exporter()``). Raises OnnxExportError."""
    import onnx  # only an export needs it

    how = how or exporter()
    model = copy.deepcopy(model).float().cpu().eval()  # the caller's model (cached, on a GPU) stays as it is
    example = torch.zeros(2, 1, 28, 28)  # a batch of 2: an example of 1 would let the exporter fix the size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporters' notices about their own future, not the student's
            raw = _dynamo(model, example) if how == "dynamo" else _torchscript(model, example)
        proto = onnx.load_from_string(raw)
        proto.doc_string = DOC
        onnx.helper.set_model_props(proto, {"input": "image (N, 1, 28, 28), normalised", "output": "logits (N, 10)",
                                            "normalisation_mean": str(MEAN), "normalisation_std": str(STD)})
        onnx.checker.check_model(proto)
    except Exception as e:  # the exporters raise many kinds; the student needs one sentence
        raise OnnxExportError(f"the {how} exporter failed: {type(e).__name__}: {str(e)[:300]}") from e
    return proto.SerializeToString()


def _dynamo(model: nn.Module, example: torch.Tensor) -> bytes:
    program = torch.onnx.export(model, (example,), dynamo=True, input_names=["image"], output_names=["logits"],
                                dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    return program.model_proto.SerializeToString()


def _torchscript(model: nn.Module, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    # Before 2.5 there is no `dynamo` argument; before 2.9 False is its default.
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    torch.onnx.export(model, (example,), buffer, input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, **legacy)
    return buffer.getvalue()


def export_checkpoint(path: str | os.PathLike, timeout: float = EXPORT_SECONDS) -> bytes:
    """The network of checkpoint ``path`` as an ONNX file, exported in a child process stopped after ``timeout``
    seconds (the wait for another export included). Raises OnnxExportError with a message for a student."""
    started = time.monotonic()
    if not _ONE_AT_A_TIME.acquire(timeout=timeout):
        raise OnnxExportError("another ONNX export is running on the server; try again in a moment")
    try:
        with tempfile.TemporaryDirectory(prefix="mnistlab-onnx-") as folder:
            out = Path(folder) / "model.onnx"
            _run_child(Path(path), out, max(1.0, timeout - (time.monotonic() - started)))
            if not out.is_file() or out.stat().st_size > MAX_ONNX_BYTES:
                raise OnnxExportError("the exporter wrote no usable file")
            return out.read_bytes()
    finally:
        _ONE_AT_A_TIME.release()


def _run_child(path: Path, out: Path, timeout: float) -> None:
    package_parent = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "",  # the GPU is for training jobs; an export is small
           "PYTHONPATH": os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([sys.executable, "-m", "mnistlab.onnxfile", str(path), str(out)], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                              timeout=timeout)
    except subprocess.TimeoutExpired:  # subprocess.run has killed the child
        raise OnnxExportError(f"the export took longer than {timeout:g} s and was stopped; try again when the "
                              "server is less busy") from None
    except OSError as e:
        raise OnnxExportError(f"the exporter could not be started ({e.strerror})") from None
    if done.returncode != 0:
        log.warning("ONNX export of %s failed (exit %s):\n%s", path, done.returncode, done.stderr[-4000:])
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise OnnxExportError(lines[-1][:400] if done.returncode == 2 and lines
                              else f"the exporter stopped with an error (exit code {done.returncode})")


def main(argv: list[str]) -> int:
    """``CHECKPOINT OUT``: export; exit 2 with a one-line message on stderr for an error a student can cause."""
    from . import checkpoint

    if len(argv) != 2:
        print("usage: python -m mnistlab.onnxfile CHECKPOINT OUT", file=sys.stderr)
        return 2
    torch.set_num_threads(1)  # beside the server's own work, on a shared CPU
    try:
        raw = onnx_bytes(checkpoint.load(argv[0], follow_links=False).model())
    except MnistLabError as e:
        print(str(e), file=sys.stderr)
        return 2
    Path(argv[1]).write_bytes(raw)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
