"""Turn a drawing from the app's canvas into a 28x28 MNIST-style image.

MNIST digits were made from scanned handwriting by a fixed recipe, and a model only sees drawings the way it saw
MNIST if they go through the same one:

1. take the ink (white on black) and crop it to its bounding box;
2. scale it, keeping the aspect ratio, so the longer side is 20 px, with an anti-aliasing filter, so the edges of
   the strokes become grey levels rather than jagged steps;
3. place it in a 28x28 image so that the ink's centre of mass sits at pixel (14, 14).

``to_mnist`` follows this recipe for an RGBA drawing (white ink on a black or transparent background), such as the
app's drawing pad sends as a PNG data URL (read by ``image_from_data_url``). Two details differ from a plain
crop-resize-paste: the scaling and the centring are one Lanczos resampling, so the centre of mass lands on (14, 14)
to a fraction of a pixel (MNIST's own lie within half a pixel of it), and the result is scaled so its brightest ink
is 1.0, as in MNIST, so that a thin pen on a big canvas does not come out faint. Ink fainter than 0.1 is noise, and
a canvas with nothing on it worth reading (nothing, a few stray pixels, a single tap of the pen) raises
``BlankDrawing``.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
from PIL import Image

from .errors import MnistLabError

__all__ = ["DrawingError", "BlankDrawing", "to_mnist", "is_blank", "ink", "image_from_png", "image_from_data_url"]

SIZE = 28  # the MNIST image
BOX = 20  # the longer side of the digit inside it
CENTRE = 14.0  # where the centre of mass goes (MNIST's own mean, in pixel indices, is 14.0)
INK_THRESHOLD = 0.1  # fainter pixels are background (noise), and not part of the bounding box
# A canvas is blank with fewer inked pixels than 0.05% of it (or than 5), with a bounding box whose longer side is
# under 3 canvas pixels, or with just a dot, a single tap of the pen: a round blob (shorter side >= 0.75 of the
# longer), solid (>= 60% of its box inked), and small (longer side < 15% of the canvas's shorter side).
MIN_INKED_FRACTION, MIN_INKED = 0.0005, 5
MIN_SIDE = 3
DOT_SIDE, DOT_ROUNDNESS, DOT_FILL = 0.15, 0.75, 0.6
# What a drawing may cost. The canvas is 280x280 (twice that on a high-density screen); anything far bigger is not a
# drawing, and is refused before it is decoded or copied. A crop longer than WORK_SIDE is first shrunk to it, so
# the one resampling in to_mnist stays small whatever the input's shape (its padding grows with the crop's side).
MAX_SIDE, MAX_PIXELS = 4096, 4096 * 1024
MAX_PNG_BYTES = 2 * 1024 * 1024
PNG_DATA_URL = "data:image/png;base64,"  # how the browser's canvas sends its drawing
MAX_DATA_URL = len(PNG_DATA_URL) + 4 * -(-MAX_PNG_BYTES // 3)  # the longest that can hold MAX_PNG_BYTES
WORK_SIDE = 280


class DrawingError(MnistLabError):
    """The drawing cannot be used: the message says why."""


class BlankDrawing(DrawingError):
    """The canvas has no digit on it (empty, a dot, a few stray pixels)."""

    def __init__(self, detail: str = "the canvas is empty"):
        super().__init__(f"Draw a digit: {detail}.")


def ink(image: np.ndarray) -> np.ndarray:
    """The ink of a canvas image as float32 (H, W) in [0, 1].

    ``image`` is RGBA or RGB (H, W, 4 or 3), or grayscale (H, W), uint8 or float in 0-255. The ink is the
    luminance of the colour weighted by its alpha, so a transparent background counts as black whatever its RGB.
    """
    try:
        array = np.asarray(image)
    except ValueError as error:  # e.g. ragged nested lists
        raise DrawingError(f"expected an image array: {error}") from None
    if array.ndim >= 2 and (max(array.shape[:2]) > MAX_SIDE or array.shape[0] * array.shape[1] > MAX_PIXELS):
        raise DrawingError(f"the image is {array.shape[1]}x{array.shape[0]} pixels; a drawing is at most "
                           f"{MAX_SIDE} pixels a side")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise DrawingError(f"expected an image of numbers (uint8 or float, 0-255), got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[2] in (3, 4):
        rgb = array[..., :3].astype(np.float32)
        value = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if array.shape[2] == 4:
            value = value * (np.clip(array[..., 3].astype(np.float32), 0, 255) / 255)
    elif array.ndim == 2:
        value = array.astype(np.float32)
    else:
        raise DrawingError(f"expected an RGBA (H, W, 4), RGB (H, W, 3) or grayscale (H, W) image, "
                           f"got shape {array.shape}")
    if value.size == 0:
        raise DrawingError(f"the image is empty (shape {array.shape})")
    if not np.isfinite(value).all():
        raise DrawingError("the image contains NaN or infinite values")
    return np.clip(value / 255, 0, 1)


def _box(value: np.ndarray) -> tuple[int, int, int, int]:
    """The bounding box (top, bottom, left, right; exclusive ends) of the ink, or BlankDrawing."""
    mask = value >= INK_THRESHOLD
    inked = int(mask.sum())
    if inked == 0:
        raise BlankDrawing()
    if inked < max(MIN_INKED, MIN_INKED_FRACTION * value.size):
        raise BlankDrawing("there are only a few stray pixels")
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    height, width = bottom - top, right - left
    longer, shorter = max(height, width), min(height, width)
    if longer < MIN_SIDE:
        raise BlankDrawing("the ink is too small")
    if (longer < DOT_SIDE * min(value.shape) and shorter >= DOT_ROUNDNESS * longer
            and inked >= DOT_FILL * height * width):
        raise BlankDrawing("there is only a dot")
    return int(top), int(bottom), int(left), int(right)


def is_blank(image: np.ndarray) -> bool:
    """Whether ``to_mnist`` would refuse the image as blank (a malformed image still raises DrawingError)."""
    try:
        _box(ink(image))
    except BlankDrawing:
        return True
    return False


def to_mnist(image: np.ndarray) -> np.ndarray:
    """The drawing as an MNIST image: float32 (28, 28) in [0, 1], white digit on black, maximum 1.0.

    Raises BlankDrawing (message "Draw a digit: ...") for an empty canvas, a dot or stray pixels, and DrawingError
    for an array that is not an image.
    """
    value = ink(image)
    top, bottom, left, right = _box(value)
    crop = value[top:bottom, left:right]
    crop = np.where(crop >= INK_THRESHOLD, crop, np.float32(0))  # faint noise is background, not ink
    crop = _shrink(crop)
    scale = BOX / max(crop.shape)

    # Where the scaled box goes in the 28x28 frame (PIL's continuous coordinates: pixel i spans [i, i + 1)) so that
    # the centre of mass lands on the centre of pixel (14, 14), to a fraction of a pixel; clamped to stay inside.
    # One anti-aliased resampling then does both the scaling and the sub-pixel shift, from the source region that
    # maps onto the frame: the crop with zeros around it, as the frame reaches past its edges.
    pads, source = [], [0.0] * 4
    for axis, n in enumerate(crop.shape):
        profile = crop.sum(axis=1 - axis)
        com = profile @ np.arange(n, dtype=np.float32) / profile.sum()
        offset = float(np.clip(CENTRE + 0.5 - (com + 0.5) * scale, 0, SIZE - n * scale))
        before, after = int(offset / scale) + 1, int((SIZE - offset) / scale - n) + 2
        pads.append((before, after))
        source[1 - axis], source[3 - axis] = before - offset / scale, before + (SIZE - offset) / scale
    padded = np.pad(crop, pads)
    out = Image.fromarray(padded).resize((SIZE, SIZE), Image.Resampling.LANCZOS, box=tuple(source))
    out = np.clip(np.asarray(out, dtype=np.float32), 0, 1)  # Lanczos rings a little below 0 and above 1
    peak = out.max()
    if peak <= 0:
        raise BlankDrawing("the ink is too faint")
    return out / peak


def _shrink(crop: np.ndarray) -> np.ndarray:
    """A crop longer than WORK_SIDE, shrunk (area average, aspect kept) so its longer side is WORK_SIDE."""
    longer = max(crop.shape)
    if longer <= WORK_SIDE:
        return crop
    size = [max(1, round(n * WORK_SIDE / longer)) for n in crop.shape]
    return np.asarray(Image.fromarray(crop).resize((size[1], size[0]), Image.Resampling.BOX), dtype=np.float32)


def image_from_png(raw: bytes) -> np.ndarray:
    """The RGBA array of a PNG the browser sent (the canvas), checked before it is decoded: its size in bytes, then
    its width and height from the header. Raises DrawingError for anything else."""
    if not isinstance(raw, (bytes, bytearray)) or len(raw) > MAX_PNG_BYTES:
        raise DrawingError("the drawing sent by the browser is too large to be the canvas")
    try:
        with Image.open(io.BytesIO(raw)) as img:  # reads the header only
            width, height = img.size
            if img.format != "PNG":
                raise DrawingError("the drawing sent by the browser is not a PNG image")
            if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
                raise DrawingError(f"the drawing sent by the browser is {width}x{height} pixels; the canvas is "
                                   f"at most {MAX_SIDE} a side")
            return np.asarray(img.convert("RGBA"))
    except DrawingError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:  # PIL's ways of saying "damaged"
        raise DrawingError(f"the drawing sent by the browser could not be read ({type(e).__name__})") from None


def image_from_data_url(url: object) -> np.ndarray:
    """The RGBA array of a canvas drawing sent as a PNG data URL, checked before it is decoded: that it is text, its
    length, its prefix and its base64, then the PNG as in ``image_from_png``. Raises DrawingError for anything else."""
    if not isinstance(url, str) or len(url) > MAX_DATA_URL:
        raise DrawingError("the drawing sent by the browser is too large to be the canvas" if isinstance(url, str)
                           else "the drawing sent by the browser could not be read")
    if not url.startswith(PNG_DATA_URL):
        raise DrawingError("the drawing sent by the browser could not be read (not a PNG data URL)")
    try:
        raw = base64.b64decode(url[len(PNG_DATA_URL):], validate=True)
    except (binascii.Error, ValueError):  # ValueError: characters outside ASCII
        raise DrawingError("the drawing sent by the browser could not be read (not base64)") from None
    return image_from_png(raw)
