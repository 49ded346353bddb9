"""The canvas-to-MNIST preprocessing, on drawings made the way people draw: polylines with a round pen."""

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from mnistlab import drawing
from mnistlab.drawing import BlankDrawing, DrawingError, ink, is_blank, to_mnist

# Digits as polylines in a unit box (x right, y down), the longer side 1.
DIGITS = {
    "1": [[(0.5, 0.0), (0.5, 1.0)]],
    "7": [[(0.1, 0.0), (0.9, 0.0), (0.35, 1.0)]],
    "4": [[(0.6, 1.0), (0.6, 0.0), (0.05, 0.65), (0.85, 0.65)]],
    "0": [[(0.5 + 0.32 * math.sin(t), 0.5 - 0.5 * math.cos(t))
           for t in np.linspace(0, 2 * math.pi, 41)]],
    "2": [[(0.15, 0.25), (0.3, 0.05), (0.55, 0.0), (0.8, 0.15), (0.8, 0.4), (0.15, 1.0), (0.9, 1.0)]],
}


def render(digit="7", canvas=(280, 280), top_left=(40, 30), height=220, pen=20, slant_deg=0.0,
           transparent=False):
    """A white-on-black RGBA drawing of ``digit``, as a canvas in the browser makes it.

    The digit's unit box is scaled to ``height`` canvas pixels and put at ``top_left`` (x, y); ``slant_deg``
    rotates it about the box centre. With ``transparent`` the background is alpha 0 with arbitrary RGB.
    """
    width, h = canvas
    img = Image.new("RGB", (width, h), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    angle = math.radians(slant_deg)
    cos, sin = math.cos(angle), math.sin(angle)
    for stroke in DIGITS[digit]:
        points = []
        for x, y in stroke:
            x, y = x - 0.5, y - 0.5
            x, y = x * cos - y * sin, x * sin + y * cos
            points.append((top_left[0] + (x + 0.5) * height, top_left[1] + (y + 0.5) * height))
        draw.line(points, fill=(255, 255, 255), width=pen)
        r = pen / 2
        for px, py in points:  # round caps and joints, as a mouse or finger pen draws
            draw.ellipse((px - r, py - r, px + r, py + r), fill=(255, 255, 255))
    rgb = np.asarray(img)
    return _as_rgba(rgb, transparent)


def _as_rgba(rgb, transparent, seed=0):
    """Opaque black background, or straight-alpha white ink on a transparent background with random RGB."""
    if not transparent:
        return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    alpha = rgb[..., 0].copy()
    garbage = np.random.default_rng(seed).integers(0, 256, rgb.shape, dtype=np.uint8)
    colour = np.where(alpha[..., None] > 0, np.uint8(255), garbage)
    return np.dstack([colour, alpha])


def bbox(image, threshold=0.05):
    rows = np.flatnonzero((image > threshold).any(axis=1))
    cols = np.flatnonzero((image > threshold).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def centre_of_mass(image):
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    return (ys * image).sum() / image.sum(), (xs * image).sum() / image.sum()


def correlation(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


DRAWINGS = {
    "large centred": dict(top_left=(30, 30), height=220, pen=20),
    "small in a corner": dict(top_left=(10, 215), height=50, pen=6),
    "off-centre": dict(top_left=(150, 140), height=120, pen=12),
    "thin pen": dict(top_left=(40, 40), height=200, pen=3),
    "thick pen": dict(top_left=(30, 20), height=230, pen=40),
    "slanted right": dict(top_left=(50, 40), height=190, pen=18, slant_deg=25),
    "slanted left": dict(top_left=(50, 40), height=190, pen=18, slant_deg=-28),
    "wide canvas": dict(canvas=(400, 300), top_left=(230, 60), height=180, pen=16),
    "transparent": dict(top_left=(40, 30), height=200, pen=20, transparent=True),
}


@pytest.mark.parametrize("digit", ["7", "4", "0", "2"])
@pytest.mark.parametrize("how", DRAWINGS)
def test_output_is_an_mnist_image_in_a_20px_box_centred_by_mass(digit, how):
    out = to_mnist(render(digit, **DRAWINGS[how]))
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() == pytest.approx(1.0)
    height, width = bbox(out)
    assert 18 <= max(height, width) <= 21, (height, width)
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1, (cy, cx)


@pytest.mark.parametrize("digit", ["7", "4", "0", "2"])
def test_small_in_a_corner_and_large_in_the_centre_give_nearly_the_same_image(digit):
    small = to_mnist(render(digit, top_left=(12, 200), height=60, pen=6))
    large = to_mnist(render(digit, top_left=(30, 30), height=220, pen=22))
    assert correlation(small, large) > 0.8
    assert np.abs(small - large).mean() < 0.1


@pytest.mark.parametrize("pen", [3, 20, 40])
def test_a_one_keeps_its_aspect_ratio(pen):
    out = to_mnist(render("1", top_left=(60, 30), height=220, pen=pen))
    height, width = bbox(out)
    assert height >= 18 and width <= 6, (height, width)
    assert abs(centre_of_mass(out)[1] - 14) <= 1


@pytest.mark.parametrize("digit", ["7", "4", "0", "1"])
@pytest.mark.parametrize("how", ["large centred", "thin pen", "thick pen", "small in a corner"])
def test_transparent_and_black_backgrounds_give_the_same_result(digit, how):
    black = to_mnist(render(digit, **DRAWINGS[how]))
    clear = to_mnist(render(digit, **DRAWINGS[how], transparent=True))
    np.testing.assert_allclose(clear, black, atol=1e-5)


def test_antialiased_edges_count_the_same_with_alpha_or_grey():
    rgb = np.asarray(Image.fromarray(render("0")[..., :3]).filter(ImageFilter.GaussianBlur(3)))
    opaque = to_mnist(_as_rgba(rgb, transparent=False))
    straight = np.dstack([np.full_like(rgb, 255), rgb[..., 0]])  # white ink, the edges only partly opaque
    np.testing.assert_allclose(to_mnist(straight), opaque, atol=1e-4)
    assert 0.05 < ink(straight).mean() < 0.5


def test_grayscale_rgb_rgba_and_float_inputs_agree():
    rgba = render("4", pen=14)
    expected = to_mnist(rgba)
    for variant in (rgba[..., 0], rgba[..., :3], rgba.astype(np.float32), rgba[..., 0].astype(np.float64)):
        np.testing.assert_allclose(to_mnist(variant), expected, atol=1e-5)


def test_faint_noise_is_background():
    rng = np.random.default_rng(1)
    clean = render("7", top_left=(80, 80), height=120, pen=12)
    noisy = clean.copy()
    noise = rng.integers(0, 20, clean.shape[:2])  # below 0.1 of full ink, all over the canvas
    noisy[..., :3] = np.maximum(clean[..., :3], noise[..., None]).astype(np.uint8)
    np.testing.assert_allclose(to_mnist(noisy), to_mnist(clean), atol=1e-5)


def _dot(radius=10, canvas=(280, 280)):
    img = Image.new("RGB", canvas)
    ImageDraw.Draw(img).ellipse((130 - radius, 120 - radius, 130 + radius, 120 + radius), fill=(255, 255, 255))
    return _as_rgba(np.asarray(img), transparent=False)


def _stray_pixels():
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[..., 3] = 255
    for y, x in [(5, 7), (100, 200), (250, 30), (140, 141), (270, 270), (20, 260)]:
        canvas[y, x, :3] = 255
    return canvas


BLANKS = {
    "black": lambda: np.dstack([np.zeros((280, 280, 3), np.uint8), np.full((280, 280), 255, np.uint8)]),
    "fully transparent": lambda: np.zeros((280, 280, 4), np.uint8),
    "transparent white": lambda: np.dstack([np.full((280, 280, 3), 255, np.uint8), np.zeros((280, 280), np.uint8)]),
    "a tap with a big pen": lambda: _dot(radius=10),
    "a tap with a small pen": lambda: _dot(radius=2),
    "a tap on a wide canvas": lambda: _dot(radius=12, canvas=(400, 300)),
    "stray pixels": _stray_pixels,
    "faint noise": lambda: _as_rgba(np.random.default_rng(2).integers(0, 20, (280, 280, 3), dtype=np.uint8), False),
    "tiny scribble": lambda: render("7", top_left=(100, 100), height=2, pen=1),
}


@pytest.mark.parametrize("what", BLANKS)
def test_nothing_to_read_raises_blank_drawing(what):
    canvas = BLANKS[what]()
    with pytest.raises(BlankDrawing) as raised:
        to_mnist(canvas)
    assert str(raised.value).startswith("Draw a digit")
    assert is_blank(canvas)


@pytest.mark.parametrize("digit", ["1", "7", "0"])
def test_real_digits_are_not_blank(digit):
    assert not is_blank(render(digit))
    assert not is_blank(render(digit, top_left=(5, 5), height=40, pen=4))  # small, thin, in a corner
    assert not is_blank(render(digit, top_left=(120, 120), height=50, pen=12))  # small and thick


BAD = {
    "1-D": np.zeros(280, np.uint8),
    "4-D": np.zeros((1, 28, 28, 4), np.uint8),
    "2 channels": np.zeros((28, 28, 2), np.uint8),
    "1 channel": np.zeros((28, 28, 1), np.uint8),
    "5 channels": np.zeros((28, 28, 5), np.uint8),
    "empty": np.zeros((0, 0, 4), np.uint8),
    "strings": np.full((28, 28), "x"),
    "booleans": np.zeros((28, 28), bool),
    "objects": np.full((28, 28, 4), None, dtype=object),
    "NaN": np.full((28, 28, 4), np.nan, np.float32),
}


@pytest.mark.parametrize("what", BAD)
def test_malformed_input_raises_a_readable_drawing_error(what):
    with pytest.raises(DrawingError) as raised:
        to_mnist(BAD[what])
    assert not isinstance(raised.value, BlankDrawing)
    assert isinstance(raised.value, ValueError)
    assert len(str(raised.value)) > 20
    with pytest.raises(DrawingError):
        is_blank(BAD[what])


def _centred(digit):
    """An MNIST image moved by its sub-pixel offset so its centre of mass is exactly (14, 14).

    MNIST's own digits were centred to the nearest pixel (their centres of mass lie within 0.5 px of (14, 14));
    to_mnist centres to a fraction of a pixel, so this is what it should give back.
    """
    image = digit.astype(np.float32) / 255
    cy, cx = centre_of_mass(image)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    moved = Image.fromarray(image).transform((28, 28), Image.Transform.AFFINE, (1, 0, cx - 14, 0, 1, cy - 14),
                                             resample=Image.Resampling.BILINEAR)
    return np.asarray(moved)


def test_mnist_digits_scaled_up_to_a_canvas_come_back_as_themselves(mnist):
    images = mnist.test.images[:30].numpy()
    as_is = []
    for i, digit in enumerate(images):
        canvas = np.asarray(Image.fromarray(digit).resize((280, 280), Image.Resampling.BILINEAR))
        out = to_mnist(_as_rgba(np.dstack([canvas] * 3), transparent=False))
        assert correlation(out, _centred(digit)) > 0.9, i
        assert correlation(to_mnist(digit), _centred(digit)) > 0.9, i  # a 28x28 grayscale MNIST image as it is
        as_is.append(correlation(out, digit))
    assert np.mean(as_is) > 0.9  # even before the sub-pixel recentring


def _png(array: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def test_a_tiny_png_of_a_huge_image_is_refused_from_its_header():
    import resource

    line = np.zeros((3, 100_000, 4), np.uint8)
    line[..., 3] = 255
    line[1, :, :3] = 255
    raw = _png(line)
    assert len(raw) < 2000  # a few hundred bytes on the wire
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(DrawingError, match="100000x3 pixels"):
        drawing.image_from_png(raw)
    with pytest.raises(DrawingError, match="at most"):
        to_mnist(line)  # the array itself, as the old canvas path handed it over
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024  # KiB


def test_a_long_thin_line_costs_little_memory():
    import resource

    line = np.zeros((1, 4000, 4), np.uint8)
    line[..., 3] = 255
    line[0, :, :3] = 255
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = to_mnist(drawing.image_from_png(_png(line)))
    assert out.shape == (28, 28) and out.max() == 1.0  # read as a dash, centred
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB


@pytest.mark.parametrize("raw,message", [
    (b"", "could not be read"),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "could not be read"),
    (b"GIF89a" + b"\0" * 40, "could not be read|not a PNG"),
    (bytes(3 * 1024 * 1024), "too large"),
    ("not bytes", "too large"),
])
def test_whatever_the_browser_sends_is_a_drawing_error_never_a_traceback(raw, message):
    with pytest.raises(DrawingError, match=message):
        drawing.image_from_png(raw)


def test_a_real_canvas_png_decodes_to_the_same_digit():
    rgba = render("7")
    np.testing.assert_array_equal(drawing.image_from_png(_png(rgba)), rgba)


def _data_url(raw: bytes) -> str:
    import base64

    return drawing.PNG_DATA_URL + base64.b64encode(raw).decode()


def test_the_pads_data_url_decodes_to_the_same_digit():
    rgba = render("7")
    np.testing.assert_array_equal(drawing.image_from_data_url(_data_url(_png(rgba))), rgba)


@pytest.mark.parametrize("url,message", [
    ("data:image/png;base64,not base64 at all!", "could not be read \\(not base64\\)"),
    ("data:image/png;base64,ümlaut", "could not be read \\(not base64\\)"),
    ("javascript:alert(1)", "not a PNG data URL"),
    ("data:image/gif;base64,R0lGODlh", "not a PNG data URL"),
    (None, "could not be read"),
    ({"png": "data:image/png;base64,"}, "could not be read"),
    (12, "could not be read"),
    (_data_url(b"\x89PNG\r\n\x1a\n" + bytes(64)), "could not be read"),
    (drawing.PNG_DATA_URL + "A" * (drawing.MAX_DATA_URL - len(drawing.PNG_DATA_URL) + 4), "too large"),
])
def test_whatever_the_browser_sends_as_a_data_url_is_a_drawing_error_never_a_traceback(url, message):
    with pytest.raises(DrawingError, match=message):
        drawing.image_from_data_url(url)


def test_a_data_url_is_bounded_before_it_is_decoded():
    # Not base64 at all: at the bound it gets as far as decoding; one character past it, it is refused on its length.
    room = drawing.MAX_DATA_URL - len(drawing.PNG_DATA_URL)
    with pytest.raises(DrawingError, match="not base64"):
        drawing.image_from_data_url(drawing.PNG_DATA_URL + "!" * room)
    with pytest.raises(DrawingError, match="too large"):
        drawing.image_from_data_url(drawing.PNG_DATA_URL + "!" * (room + 1))
