"""A photo or scan of a handwritten digit (an upload, the webcam, a file at home) turned into what ``drawing.to_mnist``
takes: light ink on black.

A photo is not a drawing. It is big (a phone's is 4032x3024), turned by its EXIF orientation, often dark ink on
light paper, and the paper is grey, lit unevenly and noisy. So, in order:

1. ``photo_grey``: decode (a JPEG at a reduced scale), shrink to at most ``PHOTO_SIDE`` a side,
   turn upright, and take the luminance in [0, 1]; transparent parts count as the paper the ink lies on.
2. ``crop``: the part the student chose, as fractions of the photo (``auto_crop``: the ink with a margin round it).
3. ``photo_ink``: light ink on a dark background is read as it is; dark ink on light paper is inverted. Either way
   the background's own shade is estimated where it lies (``background``: a smooth surface fitted to the paper,
   not one shade for the whole photo), so a shadow or a gradient is background and not faint ink, and what departs
   from the background by no more than its noise is background too.

The standalone file a student downloads (``export.py``) copies these functions' source, so a photo reads the same at
home as on the Draw page. ``image_from_photo`` is the Draw page's bounded entry: bytes from a browser are checked
(size, then format and pixel count from the header) before anything is decoded.
"""

from __future__ import annotations

import io
import logging
import threading

import numpy as np
from PIL import Image

from .drawing import INK_THRESHOLD, DrawingError, ink, to_mnist

log = logging.getLogger(__name__)

__all__ = ["photo_grey", "photo_ink", "photo_to_mnist", "auto_crop", "crop", "image_from_photo", "paper_shade",
           "on_paper", "paper_to_ink", "MAX_PHOTO_BYTES", "MAX_PHOTO_PIXELS"]

PHOTO_SIDE = 1024  # a photo is shrunk to this many pixels a side first: a digit needs far fewer
MAX_PHOTO_BYTES = 10 * 1024 * 1024  # a phone's JPEG is 2-6 MB
MAX_PHOTO_PIXELS = 50_000_000  # a 48-megapixel phone photo; refused from the header beyond (decoding costs memory)
# A PNG or a progressive JPEG decodes at full size (a baseline JPEG at 1/8): up to 4 bytes a pixel, so fewer.
MAX_FULL_DECODE_PIXELS = 16_000_000
DECODING = threading.BoundedSemaphore(2)  # photos decoded at once on the server: a class uploading together waits
PHOTO_FORMATS = ("PNG", "JPEG")  # (the JPEG reader also opens a phone's JPEG with a preview inside, MPO)
FIT_SIDE = 64  # the background is fitted to a grid of cells this many long
PAPER_PERCENTILE = 90  # a cell's paper: its lightest tenth (a stroke crossing it is darker)
FIT_ROUNDS = 6  # each round leaves out what lies off the surface (the ink), then fits again
NOISE_SPREADS = 4.0  # darker than the background by up to this many of its noise's spreads is still background
CROP_MASS = 0.005  # the automatic crop leaves out this share of the ink's mass at each side (a speck far away) ...
CROP_MARGIN = 0.15  # ... and adds this much of the ink's longer extent round it


def paper_shade(value: np.ndarray) -> float:
    """The shade of an image's background, from its luminance ((H, W) in [0, 1]): the median of its border, 0 for
    black, 1 for white paper."""
    return float(np.median(np.concatenate([value[0], value[-1], value[1:-1, 0], value[1:-1, -1]])))


def on_paper(value: np.ndarray) -> bool:
    """Whether an image is dark ink on light paper, as a scan, a photo or a paint program makes it, rather than
    MNIST's (and the Draw page's canvas's) light ink on a dark background."""
    return paper_shade(value) > 0.5


def background(value: np.ndarray) -> np.ndarray:
    """The paper's shade at every pixel of an image of dark ink on light paper ((H, W) in [0, 1]): a quadratic
    surface (light that falls off across the page, a vignette) fitted to the lightest pixels of each cell of a grid
    FIT_SIDE cells long (paper, wherever a cell has some), each round leaving out the cells that lie far off the
    last fit (those all ink)."""
    h, w = value.shape
    cell = max(1, -(-max(h, w) // FIT_SIDE))
    gh, gw = max(1, h // cell), max(1, w // cell)
    cells = value[:gh * cell, :gw * cell].reshape(gh, min(cell, h), gw, min(cell, w))
    shade = np.percentile(cells, PAPER_PERCENTILE, axis=(1, 3)).astype(np.float64).ravel()
    ys, xs = np.mgrid[0:gh, 0:gw]
    terms = _surface_terms((xs.ravel() + 0.5) / gw * 2 - 1, (ys.ravel() + 0.5) / gh * 2 - 1)
    keep = np.ones(shade.size, bool)
    for round_ in range(FIT_ROUNDS):
        coef = np.linalg.lstsq(terms[keep], shade[keep], rcond=None)[0]
        off = shade - terms @ coef
        if round_ == 0:  # the ink has pulled the first fit down: the cells most above it are paper
            keep = off >= np.percentile(off, 75)
            continue
        spread = 1.4826 * np.median(np.abs(off[keep] - np.median(off[keep]))) + 1e-3
        keep = (off > -3 * spread) & (off < 4 * spread)  # ink lies below the paper; glare a little above
        if keep.sum() < 6:
            break
    x = ((np.arange(w) + 0.5) / w * 2 - 1)[None, :]
    y = ((np.arange(h) + 0.5) / h * 2 - 1)[:, None]
    surface = sum(c * t for c, t in zip(coef, _surface_terms(x, y, stack=False)))
    return np.clip(surface, 1e-3, 1).astype(np.float32)


def _surface_terms(x, y, stack=True):
    terms = [np.ones_like(x * y), x, y, x * x, x * y, y * y]
    return np.stack(terms, axis=-1) if stack else terms


def paper_to_ink(value: np.ndarray) -> np.ndarray:
    """Dark ink on light paper ((H, W) in [0, 1]) turned into light ink on black, as a grayscale image in 0-255. A
    pixel's ink is how much darker it is than the paper there, as a share of the paper's shade; the darkening the
    paper's grain and the camera's noise make (a few spreads of it) is taken off, so that paper, grey or not, lit
    evenly or not, becomes black rather than faint ink everywhere."""
    paper = background(value)
    dark = (paper - value) / paper  # signed: the paper's noise lies on both sides of its own level, the ink above
    noise = _noise(dark)
    floor = _paper_level(dark, noise) + NOISE_SPREADS * noise
    return np.clip((dark - floor) / max(1 - floor, 1e-6), 0, 1) * 255


def _noise(dark: np.ndarray) -> float:
    """The spread of a pixel's noise, from the differences of pixels two apart (next neighbours share a photo's blur):
    the ink's edges are too few of them to move their median, however much of the image is ink."""
    pairs = [(dark[:, 2:] - dark[:, :-2]).ravel(), (dark[2:] - dark[:-2]).ravel()]
    differences = np.abs(np.concatenate(pairs))
    return 1.4826 * float(np.median(differences)) / np.sqrt(2) if differences.size else 0.0


def _paper_level(dark: np.ndarray, noise: float) -> float:
    """Where the paper lies on the scale of darkness: the commonest value (the ink's values spread out, the paper's
    crowd round one), in steps of a quarter of the noise's spread."""
    step = max(noise / 4, 1 / 512)
    counts, edges = np.histogram(dark, bins=np.arange(-1 - step / 2, 1 + step, step))  # 0 the middle of a bin
    return float(edges[counts.argmax()] + step / 2)


def photo_ink(value: np.ndarray) -> tuple[np.ndarray, bool]:
    """The ink of a photo's luminance ((H, W) in [0, 1]) as light ink on black in 0-255, and whether it was
    inverted (dark ink on light paper). Light ink on a dark background has its background taken off the same way."""
    if on_paper(value):
        return paper_to_ink(value), True
    return paper_to_ink(1 - value), False


def photo_grey(img: Image.Image) -> np.ndarray:
    """An opened image (a photo, a scan, a drawing; any mode) upright (its EXIF orientation), shrunk to at most
    PHOTO_SIDE a side, as its luminance, float32 (H, W) in [0, 1]. Transparent parts take the shade of the paper
    the drawn part lies on: white under dark ink, black under light ink."""
    try:
        orientation = int(img.getexif().get(0x0112, 1))  # EXIF's Orientation: how the camera was held
    except Exception:  # a damaged EXIF block (Pillow raises struct.error and others): read the photo as it lies
        orientation = 1
    img.draft(None, (PHOTO_SIDE, PHOTO_SIDE))  # a JPEG decodes at 1/2 to 1/8 of its size, if that is still enough
    if max(img.size) > 2 * PHOTO_SIDE:  # shrunk before any conversion, which would copy the full-size image
        scale = 2 * PHOTO_SIDE / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        plain = img.mode in ("L", "LA", "RGB", "RGBA", "CMYK", "YCbCr")  # (others only resize pixel by pixel)
        img = img.resize(size, Image.Resampling.BOX if plain else Image.Resampling.NEAREST)
    if img.mode.startswith("I") or img.mode == "F":  # 16- or 32-bit grey: to 8 bits by its own range
        grey = np.asarray(img, dtype=np.float32)
        img = Image.fromarray((grey * (255 / max(float(grey.max()), 255.0))).astype(np.uint8))
    elif img.mode in ("1", "P", "PA"):  # (a palette's colours, and its transparency, as colours)
        img = img.convert("RGBA")
    img.thumbnail((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.LANCZOS)
    turn = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}.get(orientation)
    if turn is not None:
        img = img.transpose(turn)
    rgba = np.asarray(img.convert("RGBA"))
    value = ink(rgba[..., :3])
    alpha = rgba[..., 3].astype(np.float32) / 255
    if alpha.min() < 1:
        drawn = float((value * alpha).sum() / max(alpha.sum(), 1e-6))  # the mean shade of what is drawn
        value = value * alpha + (1.0 if drawn < 0.5 else 0.0) * (1 - alpha)
    return value.astype(np.float32)


def auto_crop(value: np.ndarray) -> tuple[float, float, float, float]:
    """A crop (left, top, right, bottom, as fractions of the image) round the ink of a photo's luminance: the box
    that holds all but CROP_MASS of its ink at each side, widened by CROP_MARGIN of its longer side; the whole
    image if it has none."""
    ink_value = photo_ink(value)[0]
    ink_value = np.where(ink_value >= INK_THRESHOLD * 255, ink_value, 0)
    if ink_value.sum() <= 0:
        return 0.0, 0.0, 1.0, 1.0
    ends = []
    for profile in (ink_value.sum(axis=0), ink_value.sum(axis=1)):  # across, then down
        mass = np.cumsum(profile) / profile.sum()
        ends.append((int(np.searchsorted(mass, CROP_MASS)), int(np.searchsorted(mass, 1 - CROP_MASS)) + 1))
    margin = CROP_MARGIN * max(last - first for first, last in ends) + 2  # a "1" gets paper on both sides too
    box = [(max(0.0, (first - margin) / n), min(1.0, (last + margin) / n))
           for (first, last), n in zip(ends, (ink_value.shape[1], ink_value.shape[0]))]
    (left, right), (top, bottom) = box
    return left, top, right, bottom


def crop(value: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The part of an image inside ``box`` (left, top, right, bottom, fractions of its width and height, each in
    [0, 1], left < right and top < bottom). Raises DrawingError for any other box."""
    try:
        left, top, right, bottom = (float(f) for f in box)
    except (TypeError, ValueError):
        raise DrawingError("the crop must be four numbers: left, top, right, bottom") from None
    if not (0 <= left < right <= 1 and 0 <= top < bottom <= 1):
        raise DrawingError("the crop must lie inside the photo, its left before its right, its top above its bottom")
    h, w = value.shape[:2]
    x0, y0 = min(int(left * w), w - 1), min(int(top * h), h - 1)
    x1, y1 = max(int(np.ceil(right * w)), x0 + 1), max(int(np.ceil(bottom * h)), y0 + 1)
    return value[y0:y1, x0:x1]


def photo_to_mnist(value: np.ndarray, box: tuple[float, float, float, float] | None = None
                   ) -> tuple[np.ndarray, bool]:
    """A photo's luminance (``photo_grey``) as the network sees it, cropped to ``box`` (``auto_crop`` if None):
    float32 (28, 28), white digit on black; and whether it was inverted. Raises BlankDrawing, DrawingError."""
    light, inverted = photo_ink(crop(value, auto_crop(value) if box is None else box))
    return to_mnist(light), inverted


def image_from_photo(raw: bytes) -> np.ndarray:
    """The luminance (``photo_grey``) of a PNG or JPEG a browser sent, checked before it is decoded: its size in
    bytes, then its format and pixel count from its header. Raises DrawingError for anything else."""
    if not isinstance(raw, (bytes, bytearray)):
        raise DrawingError("the photo could not be read")
    if len(raw) > MAX_PHOTO_BYTES:
        raise DrawingError(f"the photo is {len(raw) / 2**20:.1f} MB; at most {MAX_PHOTO_BYTES // 2**20} MB, please")
    try:
        with Image.open(io.BytesIO(raw), formats=PHOTO_FORMATS) as img:  # reads the header only
            width, height = img.size
            full = img.format != "JPEG" or bool(img.info.get("progressive") or img.info.get("progression"))
            most = MAX_FULL_DECODE_PIXELS if full else MAX_PHOTO_PIXELS
            if width * height > most:
                kind = " for a PNG or a progressive JPEG" if full else ""
                raise DrawingError(f"the photo is {width}x{height} pixels; at most {most / 1e6:.0f} megapixels"
                                   f"{kind}, please")
            with DECODING:
                return photo_grey(img)
    except DrawingError:
        raise
    except Image.DecompressionBombError:  # Pillow's own limit, far above ours, met while reading the header
        raise DrawingError(f"the photo has far more than {MAX_PHOTO_PIXELS / 1e6:.0f} megapixels") from None
    except (OSError, ValueError, SyntaxError):  # PIL's ways of saying "not this"
        raise DrawingError("that file is not a PNG or JPEG image that can be read") from None
    except Exception:  # Pillow meeting a crafted file in a way not foreseen: the teacher's log has it
        log.exception("a photo that could not be read")
        raise DrawingError("that file is not a PNG or JPEG image that can be read") from None
