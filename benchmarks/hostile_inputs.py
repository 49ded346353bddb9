"""What each hostile input costs the server before it is refused: seconds and the process's memory high-water mark.

Every input that crosses a boundary is tried, one after another in one process, as a crafted request or a damaged
runs folder would present it: canvas PNGs, shared-link specs, checkpoint files. Each line says whether it was
refused, with the message a student or teacher would read, how long the refusal took and the peak memory so far.

    python benchmarks/hostile_inputs.py
"""

import io
import os
import resource
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from _common import emit, machine
from PIL import Image

from mnistlab import checkpoint, drawing
from mnistlab.arch import ArchSpec
from mnistlab.errors import MnistLabError


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _line(height: int, width: int) -> np.ndarray:
    a = np.zeros((height, width, 4), np.uint8)
    a[..., 3] = 255
    a[height // 2, :, :3] = 255
    return a


def _canvas_inputs():
    for h, w in ((3, 100_000), (1, 8000), (1, 4000)):
        raw = _png(_line(h, w))
        yield f"canvas PNG {w}x{h} ({len(raw)} bytes)", lambda raw=raw: drawing.to_mnist(drawing.image_from_png(raw))
    yield "canvas array 3x100000", lambda: drawing.to_mnist(_line(3, 100_000))
    yield "canvas: not a PNG", lambda: drawing.image_from_png(b"\x89PNG\r\n\x1a\n" + bytes(64))
    yield "canvas: 3 MB of bytes", lambda: drawing.image_from_png(bytes(3 * 1024 * 1024))


def _spec_inputs():
    one = '{"blocks": [{"widths": [8]}]'
    yield "spec: dropout of 401 digits", lambda: ArchSpec.from_json(one + ', "dropout": 1' + "0" * 400 + "}")
    yield "spec: name with a lone surrogate", lambda: ArchSpec.from_json(one + ', "name": "x\\ud800"}')
    yield "spec: 1 MB of JSON", lambda: ArchSpec.from_json(one + ', "name": "' + "x" * 1_000_000 + '"}')
    yield "spec: nested 100k deep", lambda: ArchSpec.from_json("[" * 100_000 + "]" * 100_000)


def _checkpoint_inputs(folder: Path):
    fifo = folder / "fifo.pt"
    os.mkfifo(fifo)
    yield "checkpoint: a FIFO", lambda: checkpoint.load(fifo)
    zero = folder / "zero.pt"
    zero.symlink_to("/dev/zero")
    yield "checkpoint: a link to /dev/zero", lambda: checkpoint.load(zero)
    sparse = folder / "sparse.pt"
    with open(sparse, "wb") as f:
        f.truncate(20 * 1024**3)
    yield "checkpoint: a 20 GB sparse file", lambda: checkpoint.load(sparse)
    bomb = folder / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("archive/data.pkl", "w", force_zip64=True) as member:
            for _ in range(4096):  # 4 GiB of zeros, about 4 MB on disk
                member.write(bytes(1 << 20))
    yield f"checkpoint: a zip bomb ({bomb.stat().st_size:,} bytes, 4 GiB inflated)", lambda: checkpoint.load(bomb)


def main() -> None:
    emit({"machine": machine()})
    with tempfile.TemporaryDirectory() as tmp:
        cases = [*_canvas_inputs(), *_spec_inputs(), *_checkpoint_inputs(Path(tmp))]
        emit({"before_any_input": {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)},
              "note": "the library and torch loaded, the hostile files written"})
        for name, attempt in cases:
            t0 = time.perf_counter()
            try:
                attempt()
                outcome = "accepted"
            except (MnistLabError, ValueError) as e:
                outcome = f"refused: {str(e)[:120]}"
            emit({"input": name, "outcome": outcome, "seconds": round(time.perf_counter() - t0, 4),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})


if __name__ == "__main__":
    main()
