"""Photos on the Draw page and the ONNX download: what they cost and how well they read.

    python benchmarks/photo_onnx.py [--photos 1000] [--parts photo photo_time refusals onnx]

- photo: the first N official test digits, each printed in dark ink (shade 0.12) on a 1200x900 photo of grey paper
  lit unevenly (0.45 at one corner to 0.85 at the other) with camera noise (sigma 0.04), at a random place and size,
  saved as JPEG (quality 85): the shipped `best`'s accuracy read through mnistlab/photo.py (automatic crop), against
  the same digits clean, and against one paper shade for the whole photo (the median of its border) with no crop.
- photo_time: a 4032x3024 phone photo (JPEG, and PNG) from bytes to the 28x28 image, median of 5.
- refusals: hostile uploads (a header claiming 400 megapixels, 11 MB of bytes, not an image, a GIF, a JPEG cut
  short) and the largest photo accepted (48 megapixels), each with its seconds and the process's peak memory.
- onnx: each shipped preset exported (in this process, and in the app's child process), its size, and ONNX Runtime
  against PyTorch on the 10,000 test images (predictions that differ, the largest logit difference, accuracy).
"""

import argparse
import io
import resource
import struct
import zlib
import statistics
import time

import numpy as np
import torch
from _common import emit, machine
from PIL import Image

from mnistlab import analysis, checkpoint, data, drawing, onnxfile, photo


def synthetic_photo(pixels: np.ndarray, rng: np.random.Generator, size=(1200, 900)) -> bytes:
    width, height = size
    side = int(rng.integers(250, 700))
    x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
    ink = np.zeros((height, width), np.float32)
    big = Image.fromarray(pixels).resize((side, side), Image.Resampling.BICUBIC)
    ink[y:y + side, x:x + side] = np.clip(np.asarray(big, np.float32) / 255, 0, 1)
    gx, gy = np.linspace(0, 1, width)[None, :], np.linspace(0, 1, height)[:, None]
    paper = 0.45 + 0.4 * (0.7 * gx + 0.3 * gy)
    value = np.clip(paper * (1 - ink) + 0.12 * ink + rng.normal(0, 0.04, (height, width)), 0, 1)
    buf = io.BytesIO()
    Image.fromarray((value * 255).astype(np.uint8)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def one_shade(value: np.ndarray) -> np.ndarray:
    """Inversion with one paper shade for the whole photo (the median of its border), no crop."""
    border = np.concatenate([value[0], value[-1], value[:, 0], value[:, -1]])
    paper = max(float(np.median(border)), 1e-6)
    return np.clip((paper - value) / paper, 0, 1) * 255


def read_or_none(model, prepare) -> int | None:
    try:
        return int(analysis.predict(model, prepare()).argmax())
    except drawing.DrawingError:
        return None


def photos(model, mnist, n: int) -> None:
    rng = np.random.default_rng(0)
    ours = clean = single = 0
    seconds = []
    for i in range(n):
        pixels, label = mnist.test.images[i].numpy(), int(mnist.test.labels[i])
        raw = synthetic_photo(pixels, rng)
        start = time.perf_counter()
        value = photo.image_from_photo(raw)
        ours += read_or_none(model, lambda: photo.photo_to_mnist(value)[0]) == label
        seconds.append(time.perf_counter() - start)
        single += read_or_none(model, lambda: drawing.to_mnist(one_shade(value))) == label
        clean += int(analysis.predict(model, pixels / 255.0).argmax()) == label
    emit({"bench": "photo", "photos": n, "accuracy_photo": round(100 * ours / n, 2),
          "accuracy_clean": round(100 * clean / n, 2), "accuracy_one_paper_shade": round(100 * single / n, 2),
          "median_seconds_1200x900": round(statistics.median(seconds), 4), **machine()})


def photo_time(mnist) -> None:
    rng = np.random.default_rng(1)
    big = synthetic_photo(mnist.test.images[0].numpy(), rng, size=(4032, 3024))
    shot = Image.open(io.BytesIO(big))
    for fmt in ("JPEG", "PNG"):
        buf = io.BytesIO()
        shot.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        raw = buf.getvalue()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            photo.photo_to_mnist(photo.image_from_photo(raw))
            times.append(time.perf_counter() - start)
        emit({"bench": "photo_time", "format": fmt, "pixels": "4032x3024", "megabytes": round(len(raw) / 2**20, 2),
              "median_seconds": round(statistics.median(times), 3), **machine()})


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IEND", b""))


def refusals(best, mnist) -> None:
    gif, jpeg, big = io.BytesIO(), io.BytesIO(), io.BytesIO()
    Image.new("L", (40, 40)).save(gif, "GIF")
    Image.new("RGB", (400, 400), "white").save(jpeg, "JPEG")
    sheet = Image.new("L", (8000, 6000), 200)
    digit = Image.fromarray(255 - mnist.test.images[0].numpy()).resize((3000, 3000), Image.Resampling.BICUBIC)
    sheet.paste(Image.eval(digit, lambda v: v * 200 // 255), (2500, 1500))  # dark ink on grey paper
    sheet.save(big, "JPEG", quality=90)
    cases = {"PNG header: 20000x20000": _png_header(20_000, 20_000), "11 MB of bytes": bytes(11 * 2**20),
             "not an image": b"%PDF-1.4\n" + bytes(1000), "a GIF": gif.getvalue(),
             "a JPEG cut short": jpeg.getvalue()[:300], f"8000x6000 JPEG ({big.tell() / 2**20:.1f} MB)": big.getvalue()}
    for name, raw in cases.items():
        start = time.perf_counter()
        try:
            image, _ = photo.photo_to_mnist(photo.image_from_photo(raw))
            outcome = f"accepted: read as a {int(analysis.predict(best, image).argmax())}"
        except drawing.DrawingError as e:
            outcome = f"refused: {e}"
        emit({"bench": "photo_refusal", "input": name, "outcome": outcome,
              "seconds": round(time.perf_counter() - start, 4),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})


def onnx(mnist) -> None:
    import onnxruntime

    x = data.normalise(mnist.test.images).unsqueeze(1).float()
    labels = mnist.test.labels.numpy()
    for name, path in checkpoint.shipped().items():
        model = checkpoint.load(path).model()
        start = time.perf_counter()
        raw = onnxfile.onnx_bytes(model)
        in_process = time.perf_counter() - start
        start = time.perf_counter()
        onnxfile.export_checkpoint(path)
        child = time.perf_counter() - start
        session = onnxruntime.InferenceSession(raw, providers=["CPUExecutionProvider"])
        got = np.concatenate([session.run(["logits"], {"image": x[i:i + 1000].numpy()})[0]
                              for i in range(0, len(x), 1000)])
        with torch.no_grad():
            expected = torch.cat([model(x[i:i + 1000]) for i in range(0, len(x), 1000)]).numpy()
        emit({"bench": "onnx", "preset": name, "exporter": onnxfile.exporter(), "kilobytes": round(len(raw) / 1024),
              "export_seconds_in_process": round(in_process, 2), "export_seconds_child_process": round(child, 2),
              "test_images": len(x), "predictions_differing": int((got.argmax(1) != expected.argmax(1)).sum()),
              "max_abs_logit_difference": float(np.abs(got - expected).max()),
              "accuracy_onnxruntime": round(100 * float((got.argmax(1) == labels).mean()), 2), **machine()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--parts", nargs="+", default=["photo", "photo_time", "refusals", "onnx"])
    args = parser.parse_args()
    mnist = data.load(fetch=False)
    best = checkpoint.load(checkpoint.shipped()["best"]).model()
    parts = {"photo": lambda: photos(best, mnist, args.photos), "photo_time": lambda: photo_time(mnist),
             "refusals": lambda: refusals(best, mnist), "onnx": lambda: onnx(mnist)}
    for part in args.parts:
        parts[part]()


if __name__ == "__main__":
    main()
