"""A photo of a handwritten digit (mnistlab/photo.py, and the Draw page's Photo under AppTest): synthetic photos with
grey, unevenly lit, noisy paper; MNIST test digits printed dark on light; crops, orientation, image modes, and files
that are too big or not images at all."""

import inspect
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from mnistlab import analysis, checkpoint, drawing, photo
from mnistlab.drawing import BlankDrawing, DrawingError

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------------ synthetic photos

def paper_photo(digit=None, size=(1200, 900), at=(300, 200), side=500, paper=(0.45, 0.85), noise=0.04, shade=0.12,
                seed=0) -> np.ndarray:
    """A photo (uint8 RGB, ``size`` = (W, H)) of paper lit unevenly (its shade running from ``paper[0]`` at the top
    left to ``paper[1]`` at the bottom right) with camera noise, and ``digit`` (light on black, uint8, any size)
    drawn on it in dark ink of shade ``shade``, ``side`` pixels a side at ``at`` (x, y)."""
    width, height = size
    ink = np.zeros((height, width), np.float32)
    if digit is not None:
        big = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
        ink[at[1]:at[1] + side, at[0]:at[0] + side] = np.clip(np.asarray(big, np.float32) / 255, 0, 1)
    x, y = np.linspace(0, 1, width, dtype=np.float32)[None, :], np.linspace(0, 1, height, dtype=np.float32)[:, None]
    sheet = paper[0] + (paper[1] - paper[0]) * (0.7 * x + 0.3 * y)
    noisy = sheet * (1 - ink) + shade * ink + np.random.default_rng(seed).normal(0, noise, (height, width))
    value = np.clip(noisy, 0, 1) * 255
    return np.dstack([value * 0.97, value, value * 0.92]).astype(np.uint8)  # a warm white balance


def encoded(array: np.ndarray, fmt="PNG", **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **options)
    return buf.getvalue()


def read(raw: bytes, box=None):
    return photo.photo_to_mnist(photo.image_from_photo(raw), box)


@pytest.fixture(scope="module")
def best():
    return checkpoint.load(checkpoint.shipped()["best"]).model()


def digit(mnist, i) -> tuple[np.ndarray, int]:
    return mnist.test.images[i].numpy(), int(mnist.test.labels[i])


def predicted(model, image) -> int:
    return int(analysis.predict(model, image).argmax())


# ------------------------------------------------------------------------------------------------ the paper

def test_grey_unevenly_lit_noisy_paper_is_background_not_ink():
    blank = paper_photo()
    value = photo.image_from_photo(encoded(blank, "JPEG", quality=85))
    one_shade = np.clip((np.median(value) - value) / np.median(value), 0, 1)  # one paper shade for the whole photo
    assert (one_shade > drawing.INK_THRESHOLD).mean() > 0.2  # would read a third of the sheet as faint ink
    assert (photo.paper_to_ink(value) / 255 > drawing.INK_THRESHOLD).mean() < 0.001
    with pytest.raises(BlankDrawing):
        read(encoded(blank, "JPEG", quality=85))


@pytest.mark.slow
def test_a_photo_of_an_mnist_digit_on_grey_paper_reads_as_the_digit_does(mnist, best):
    hits = 0
    for i in range(20):
        pixels, label = digit(mnist, i)
        image, inverted = read(encoded(paper_photo(pixels, seed=i), "JPEG", quality=85))
        assert inverted
        assert np.abs(image - drawing.to_mnist(pixels)).mean() < 0.06, i  # near the clean digit's own preparation
        hits += predicted(best, image) == label
    assert hits == 20


def test_without_the_inversion_dark_ink_on_paper_is_not_read(mnist, best):
    """What inverting buys: the same photo read as light ink on a dark background is not the digit."""
    pixels, label = digit(mnist, 0)
    value = photo.image_from_photo(encoded(paper_photo(pixels), "JPEG", quality=85))
    assert predicted(best, read(encoded(paper_photo(pixels), "JPEG", quality=85))[0]) == label
    box = photo.auto_crop(value)
    as_light_ink = photo.paper_to_ink(1 - photo.crop(value, box))  # the light-on-dark branch of photo_ink
    try:
        wrong = predicted(best, drawing.to_mnist(as_light_ink))
    except BlankDrawing:
        wrong = None
    assert wrong != label


def test_an_mnist_digit_printed_dark_on_white_and_enlarged_reads_as_itself(mnist, best):
    for i in range(10):
        pixels, label = digit(mnist, i)
        page = np.full((700, 600), 255, np.uint8)
        page[100:660, 20:580] = 255 - np.asarray(Image.fromarray(pixels).resize((560, 560), Image.Resampling.BICUBIC))
        image, inverted = read(encoded(page))
        assert inverted and predicted(best, image) == label
        np.testing.assert_allclose(image, drawing.to_mnist(np.asarray(Image.fromarray(pixels).resize((560, 560),
                                   Image.Resampling.BICUBIC))), atol=0.05)


def test_light_ink_on_a_dark_noisy_board_is_read_as_it_is(mnist, best):
    pixels, label = digit(mnist, 3)
    board = 255 - paper_photo(pixels, paper=(0.55, 0.75), shade=0.1)  # chalk on a blackboard
    image, inverted = read(encoded(board))
    assert not inverted and predicted(best, image) == label


def test_a_canvas_drawing_uploaded_as_a_photo_reads_as_on_the_pad():
    canvas = np.zeros((280, 280, 4), np.uint8)
    canvas[40:240, 130:150] = 255  # a "1", white on transparent, as the pad's PNG
    image, inverted = read(encoded(canvas))
    assert not inverted
    np.testing.assert_allclose(image, drawing.to_mnist(canvas), atol=1e-2)


# ------------------------------------------------------------------------------------------------ the crop

def test_the_automatic_crop_holds_the_digit_with_a_margin_and_leaves_out_a_far_speck(mnist):
    pixels, _ = digit(mnist, 0)
    shot = paper_photo(pixels, at=(600, 300), side=400, noise=0.02)
    shot[50:56, 60:66] = 10  # a speck of dirt far from the digit
    left, top, right, bottom = photo.auto_crop(photo.image_from_photo(encoded(shot)))
    ys, xs = np.nonzero(np.asarray(Image.fromarray(pixels).resize((400, 400))) > 60)
    assert left < (600 + xs.min()) / 1200 and right > (600 + xs.max()) / 1200
    assert top < (300 + ys.min()) / 900 and bottom > (300 + ys.max()) / 900
    assert left > 60 / 1200 and top > 56 / 900  # the speck is outside
    assert photo.auto_crop(np.full((100, 80), 0.8, np.float32)) == (0.0, 0.0, 1.0, 1.0)  # nothing to crop round


def test_a_crop_the_student_chooses_is_what_is_read(mnist, best):
    pixels, label = digit(mnist, 0)  # a 7
    raw = encoded(paper_photo(pixels, noise=0.02))
    whole = read(raw, (0, 0, 1, 1))[0]
    assert predicted(best, whole) == label
    top_bar_only = read(raw, (0.25, 0.2, 0.7, 0.42))[0]  # only the 7's top bar: no longer a 7
    assert predicted(best, top_bar_only) != label
    with pytest.raises(BlankDrawing):
        read(raw, (0.0, 0.0, 0.15, 0.15))  # plain paper
    for bad in [(0.5, 0, 0.4, 1), (0, 0, 1.2, 1), (-0.1, 0, 1, 1), (0, 0, 1), ("a", 0, 1, 1), (0, float("nan"), 1, 1)]:
        with pytest.raises(DrawingError, match="crop"):
            read(raw, bad)


# ------------------------------------------------------------------------------------------------ files

def test_exif_orientation_turns_the_photo_upright(mnist):
    pixels, _ = digit(mnist, 0)
    upright = paper_photo(pixels, size=(900, 1200), at=(200, 350), noise=0.02)
    stored = np.ascontiguousarray(np.rot90(upright))  # the sensor's view: turned a quarter anticlockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to display"
    turned = photo.image_from_photo(encoded(stored, "JPEG", quality=90, exif=exif.tobytes()))
    plain = photo.image_from_photo(encoded(upright, "JPEG", quality=90))
    assert turned.shape == plain.shape
    assert np.abs(turned - plain).mean() < 0.02
    np.testing.assert_allclose(read(encoded(stored, "JPEG", quality=90, exif=exif.tobytes()))[0],
                               read(encoded(upright, "JPEG", quality=90))[0], atol=0.05)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16", "RGBA-transparent", "CMYK"])
def test_every_image_mode_reads_alike(mnist, mode):
    pixels, _ = digit(mnist, 1)
    shot = paper_photo(pixels, noise=0.0, paper=(0.9, 0.9), shade=0.05)
    reference = read(encoded(shot))[0]
    grey = Image.fromarray(shot).convert("L")
    if mode == "RGBA-transparent":  # dark ink on a transparent background, as a paint program saves it
        paper = np.median(np.asarray(grey))  # the ink's opacity: how much darker than the paper it was
        alpha = np.clip((paper - np.asarray(grey, np.float32)) / paper * 255, 0, 255).astype(np.uint8)
        img = Image.fromarray(np.dstack([np.zeros_like(alpha)] * 3 + [alpha]), "RGBA")
    elif mode == "I;16":
        img = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    elif mode == "P":
        img = Image.fromarray(shot).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    else:
        img = Image.fromarray(shot).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG" if mode == "CMYK" else "PNG")
    image, inverted = read(buf.getvalue())
    assert inverted
    assert np.abs(image - reference).mean() < 0.03, mode


@pytest.mark.slow
def test_a_4032x3024_phone_photo_is_shrunk_and_read(mnist, best):
    pixels, label = digit(mnist, 2)
    shot = paper_photo(pixels, size=(4032, 3024), at=(1400, 900), side=1300, noise=0.05)
    raw = encoded(shot, "JPEG", quality=90)
    value = photo.image_from_photo(raw)
    assert max(value.shape) == photo.PHOTO_SIDE
    assert predicted(best, read(raw)[0]) == label
    png = encoded(shot[::2, ::2])  # and a PNG (it has no reduced-scale decoding)
    assert predicted(best, read(png)[0]) == label


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with no image data: what a decompression bomb's
    header looks like (its size is read before anything is decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("raw,message", [
    (png_header_only(20_000, 20_000), "megapixels"),
    (png_header_only(100_000, 600), "megapixels"),
    (png_header_only(5_000, 4_000), "PNG"),  # 20 megapixels: a PNG decodes at full size, so fewer than a JPEG
    (b"\x89PNG\r\n\x1a\n" + bytes(photo.MAX_PHOTO_BYTES), "MB"),
    (b"hello, this is not an image", "not a PNG or JPEG"),
    (b"%PDF-1.4\n" + bytes(1000), "not a PNG or JPEG"),
    (encoded(np.zeros((40, 40), np.uint8), "GIF"), "not a PNG or JPEG"),
    (encoded(np.zeros((40, 40, 3), np.uint8), "JPEG")[:200], "not a PNG or JPEG"),  # cut short
    (b"", "not a PNG or JPEG"),
    ("a string", "could not be read"),
])
def test_a_file_that_is_too_big_or_not_a_photo_is_a_message(raw, message):
    with pytest.raises(DrawingError, match=message):
        photo.image_from_photo(raw)


def test_a_photo_with_a_damaged_exif_block_is_read_as_it_lies():
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), "white").save(buf, "PNG", exif=b"MM\x00*\x00")  # Pillow raises struct.error on it
    assert photo.image_from_photo(buf.getvalue()).shape == (30, 40)


def test_a_large_image_is_shrunk_before_its_mode_is_converted(monkeypatch):
    """A palette or 16-bit image converted at full size cost hundreds of MB per upload: the conversion must only
    ever see the shrunk image."""
    seen = []
    convert = Image.Image.convert
    monkeypatch.setattr(Image.Image, "convert", lambda img, *a, **k: seen.append(img.size) or convert(img, *a, **k))
    for mode in ("P", "I;16"):
        buf = io.BytesIO()
        Image.new(mode, (3000, 2500)).save(buf, "PNG")
        photo.image_from_photo(buf.getvalue())
    assert seen and max(max(size) for size in seen) <= 2 * photo.PHOTO_SIDE


def test_what_the_standalone_file_copies_is_this_code():
    from mnistlab import export

    source = export.preprocessing_source()
    for function in (photo.photo_grey, photo.photo_to_mnist, photo.paper_to_ink, photo.background, photo.auto_crop):
        assert inspect.getsource(function).rstrip() in source


# ------------------------------------------------------------------------------------------------ the Draw page

@pytest.fixture
def isolated_runs(tmp_path, monkeypatch, data_root):
    import streamlit as st

    monkeypatch.setenv("MNISTLAB_RUNS", str(tmp_path / "runs"))
    st.cache_resource.clear()
    yield
    from mnistlab.ui import resources

    resources.job_manager().close()
    st.cache_resource.clear()


def photo_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("views/3_Draw.py")
    at.run()
    at.segmented_control(key="draw_source").set_value("Photo").run()
    return at


def prediction(at) -> str:
    return next(m for m in at.metric if m.label == "Prediction").value


def test_the_photo_tab_asks_for_a_photo(isolated_runs):
    at = photo_page()
    assert not at.exception and not at.error
    assert prediction(at) == "—"
    assert any("Upload a photo" in i.value for i in at.info)
    assert at.file_uploader(key="photo_upload").allowed_type == [".png", ".jpg", ".jpeg"]
    assert not at.slider  # no crop, and no pen, before there is a photo


def test_an_uploaded_photo_is_read_and_its_crop_can_be_moved(isolated_runs, mnist):
    pixels, label = digit(mnist, 0)
    at = photo_page()
    at.file_uploader(key="photo_upload").set_value(("seven.jpg", encoded(paper_photo(pixels), "JPEG"),
                                                    "image/jpeg")).run()
    assert not at.exception and not at.error
    assert prediction(at) == str(label)
    assert any("inverted" in c.value for c in at.caption)
    captions = [c for image in at.get("image") for c in image.captions]
    assert any("red box" in c for c in captions) and any("what the network sees" in c for c in captions)
    crop_x, crop_y = at.slider(key="photo_crop_x").value, at.slider(key="photo_crop_y").value
    assert 15 < crop_x[0] < crop_x[1] < 75 and 10 < crop_y[0] < crop_y[1] < 85  # round the digit
    at.slider(key="photo_crop_x").set_value((0, 12)).run()  # onto plain paper
    assert prediction(at) == "—" and any("No digit inside the crop" in i.value for i in at.info)
    at.slider(key="photo_crop_x").set_value(crop_x).run()
    assert prediction(at) == str(label)


def test_a_file_that_is_not_an_image_is_a_message_never_a_traceback(isolated_runs):
    at = photo_page()
    at.file_uploader(key="photo_upload").set_value(("digit.png", b"MZ\x90\x00 not a png", "image/png")).run()
    assert not at.exception
    assert prediction(at) == "—"
    assert any("not a PNG or JPEG" in e.value for e in at.error)


def test_the_webcam_replaces_the_upload(isolated_runs, mnist):
    pixels, label = digit(mnist, 1)
    at = photo_page()
    at.toggle(key="photo_camera").set_value(True).run()
    assert not at.file_uploader and at.camera_input
    at.camera_input(key="photo_shot").set_value(("shot.jpg", encoded(paper_photo(pixels), "JPEG"),
                                                 "image/jpeg")).run()
    assert not at.exception and not at.error
    assert prediction(at) == str(label)
