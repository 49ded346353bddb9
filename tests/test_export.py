"""The standalone PyTorch file a student downloads: it rebuilds the network without mnistlab, loads the weights and
prepares an image as the Draw page does."""

import runpy
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mnistlab import analysis, arch, checkpoint, data, drawing, export, photo


def test_the_standalone_file_rebuilds_the_network_and_predicts_like_ours(tmp_path, mnist):
    ckpt = checkpoint.shipped()["best"]
    ours = checkpoint.load(ckpt).model()
    script = tmp_path / export.filename(ours.spec)
    script.write_text(export.standalone_script(ours.spec))
    Image.fromarray(mnist.test.images[0].numpy()).save(tmp_path / "digit.png")

    out = subprocess.run([sys.executable, "-I", str(script), str(ckpt), str(tmp_path / "digit.png")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    x = data.normalise(mnist.test.images[:256]).unsqueeze(1)
    with torch.no_grad():
        logits = ours(x)
    expected = int(logits[0].argmax())
    assert f"{arch.count_params(ours.spec):,} parameters loaded" in out.stdout
    assert f"digit.png: {expected} (" in out.stdout

    theirs = runpy.run_path(str(script))["load"](str(ckpt))
    with torch.no_grad():
        assert torch.allclose(theirs(x), logits, atol=1e-5)
    assert "mnistlab" not in script.read_text().replace("MNIST Lab", "")


def test_any_spec_a_student_names_gives_a_valid_file(tmp_path):
    spec = arch.ArchSpec.from_dict({**arch.preset("tiny").to_dict(), "name": 'my """net\\ 🚀'})
    script = tmp_path / export.filename(spec)
    script.write_text(export.standalone_script(spec))
    net = runpy.run_path(str(script))["Net"]()
    assert sum(p.numel() for p in net.parameters()) == arch.count_params(spec)
    assert net.state_dict().keys() == arch.build(spec).state_dict().keys()
    assert np.isclose(runpy.run_path(str(script))["MEAN"], data.MEAN)


def digit_on_canvas(mnist, index=0, size=280, side=70, at=(12, 20)):
    """MNIST test digit ``index``, enlarged to ``side`` pixels and pasted at ``at`` (x, y) on a black canvas: a
    small, off-centre digit, as uint8 (size, size)."""
    canvas = Image.new("L", (size, size))
    canvas.paste(Image.fromarray(mnist.test.images[index].numpy()).resize((side, side), Image.Resampling.BICUBIC), at)
    return np.asarray(canvas)


def pngs(mnist, folder):
    """The images a student might bring home, as PNG files: name -> (path, the same digit as light ink on black)."""
    small = digit_on_canvas(mnist)
    large = digit_on_canvas(mnist, index=1, side=270, at=(5, 5))
    canvas_like = np.dstack([np.full_like(small, 255)] * 3 + [small])  # white ink on transparent, as Draw's canvas
    images = {"small": (Image.fromarray(small), small), "large": (Image.fromarray(large), large),
              "rgba": (Image.fromarray(canvas_like, "RGBA"), small),
              "on_paper": (Image.fromarray(np.dstack([255 - small] * 3), "RGB"), small),
              "grey_paper": (Image.fromarray((200 - small * (170 / 255)).astype(np.uint8)), small)}
    out = {}
    for name, (image, light_on_black) in images.items():
        image.save(folder / f"{name}.png")
        out[name] = (folder / f"{name}.png", light_on_black)
    return out


@pytest.fixture
def standalone(tmp_path):
    script = tmp_path / "standalone.py"
    script.write_text(export.standalone_script(arch.preset("tiny")))
    return runpy.run_path(str(script))


def test_the_standalone_file_prepares_an_image_exactly_as_the_draw_page_does(tmp_path, mnist, standalone):
    for name, (path, light_on_black) in pngs(mnist, tmp_path).items():
        image, inverted = standalone["prepare"](str(path))
        # what the Draw page does with the same file uploaded as a photo, its crop left as it starts
        draw, draw_inverted = photo.photo_to_mnist(photo.image_from_photo(path.read_bytes()))
        assert inverted == draw_inverted == name.endswith("paper"), name
        assert image.shape == (28, 28) and image.dtype == np.float32
        np.testing.assert_allclose(image, draw, atol=1e-6, err_msg=name)
        # and inverted or not, the digit comes out as it would from white ink on black drawn on the pad (near enough
        # from grey paper, whose darkest ink is not black)
        np.testing.assert_allclose(image, drawing.to_mnist(light_on_black), atol=0.1 if "grey" in name else 1e-2,
                                   err_msg=name)


@pytest.mark.slow
def test_the_file_reads_a_small_off_centre_7_says_when_it_inverts_and_when_it_cannot_read(tmp_path, mnist):
    """A small 7 in a corner reads as a 7 (a plain resize to 28x28 made it a 1); dark ink on white paper is
    inverted, with a line that says so; an image with nothing on it, or not an image, is a line, not a traceback."""
    ckpt = checkpoint.shipped()["tiny"]
    model = checkpoint.load(ckpt).model()
    seven = next(i for i in range(100) if int(mnist.test.labels[i]) == 7)
    small = digit_on_canvas(mnist, index=seven, side=60, at=(10, 15))
    Image.fromarray(small).save(tmp_path / "seven.png")
    Image.fromarray(255 - small).save(tmp_path / "paper.png")
    Image.new("L", (100, 100)).save(tmp_path / "blank.png")
    (tmp_path / "notes.png").write_text("not an image")
    resized = np.asarray(Image.fromarray(small).resize((28, 28)), dtype=np.float32) / 255
    assert int(analysis.predict(model, resized).argmax()) != 7  # why the crop and centring matter

    script = tmp_path / "net.py"
    script.write_text(export.standalone_script(arch.preset("tiny")))
    out = subprocess.run([sys.executable, "-I", str(script), str(ckpt), "seven.png", "paper.png", "blank.png",
                          "notes.png"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr  # 1: some images were not read
    lines = out.stdout.splitlines()
    assert [line.split(" (")[0] for line in lines if "%" in line] == ["seven.png: 7", "paper.png: 7"]
    assert [line for line in lines if "inverted" in line] == [
        "paper.png: dark ink on a light background, inverted to MNIST's white on black"]
    assert any(line.startswith("blank.png: not read: Draw a digit") for line in lines), lines
    assert any(line.startswith("notes.png: not read: ") for line in lines), lines


def test_a_phone_photo_is_shrunk_not_refused(tmp_path, mnist, standalone):
    photo = np.asarray(Image.fromarray(digit_on_canvas(mnist)).resize((3000, 3000)))
    assert photo.shape[0] * photo.shape[1] > drawing.MAX_PIXELS  # the Draw page would refuse it
    Image.fromarray(photo).save(tmp_path / "photo.png")
    image, inverted = standalone["prepare"](str(tmp_path / "photo.png"))
    assert not inverted
    assert np.abs(image - drawing.to_mnist(digit_on_canvas(mnist))).mean() < 0.01  # shrunk twice: near, not equal


def test_the_copied_preprocessing_is_the_draw_pages_own_source():
    """Copied from the source, so a change to drawing.py reaches the next download without anyone copying it."""
    import inspect

    source = export.preprocessing_source()
    for function in (drawing.to_mnist, drawing.ink, drawing._box, drawing._shrink):
        assert inspect.getsource(function) in source
    assert f"WORK_SIDE = {drawing.WORK_SIDE}" in source and "class BlankDrawing(DrawingError):" in source
    assert "mnistlab" not in source.lower().replace("mnist lab", "")
