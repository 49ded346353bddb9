"""The Draw page under Streamlit's AppTest (no browser), its drawing pad replaced by one that sends what a test says,
and the page's figures."""

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from mnistlab import analysis, checkpoint, drawing
from mnistlab.ui import drawpad, figures

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_runs(tmp_path, monkeypatch, data_root):
    import streamlit as st

    monkeypatch.setenv("MNISTLAB_RUNS", str(tmp_path / "runs"))
    st.cache_resource.clear()  # a fresh job manager per test
    yield
    from mnistlab.ui import resources

    resources.job_manager().close()
    st.cache_resource.clear()


def draw_page(monkeypatch, sent=None) -> AppTest:
    """Draw, run once, its pad having sent ``sent`` (what a browser, or a crafted request, could send)."""
    monkeypatch.setattr(drawpad, "drawing_pad", lambda pen, key="drawing_pad", restore=None: sent)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("views/3_Draw.py")
    return at.run()


def prediction(at: AppTest) -> str:
    return next(m for m in at.metric if m.label == "Prediction").value


def data_url(array: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return drawing.PNG_DATA_URL + base64.b64encode(buf.getvalue()).decode()


def drawn(*lines, pen=18) -> np.ndarray:
    """A 280x280 pad drawing (white on black) of polylines given as fractions of the pad."""
    img = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    d = ImageDraw.Draw(img)
    for line in lines:
        d.line([(x * 280, y * 280) for x, y in line], fill=(255, 255, 255, 255), width=pen, joint="curve")
    return np.asarray(img)


def test_a_blank_pad_asks_for_a_digit(monkeypatch):
    at = draw_page(monkeypatch)
    assert not at.exception and not at.error
    assert prediction(at) == "—"
    assert any(i.value.startswith("Draw a digit") for i in at.info)
    assert not at.get("plotly_chart")  # nothing to look inside yet


@pytest.mark.parametrize("sent,message", [
    ("data:image/png;base64,not base64 at all!", "could not be read"),
    ("javascript:alert(1)", "could not be read"),
    ("data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(64)).decode(), "could not be read"),
    ({"objects": []}, "could not be read"),
    ("data:image/png;base64," + "A" * (3 * 1024 * 1024), "too large"),
])
def test_a_crafted_drawing_is_a_message_never_a_traceback(monkeypatch, sent, message):
    at = draw_page(monkeypatch, sent)
    assert not at.exception
    assert prediction(at) == "—"
    assert any(message in e.value for e in at.error)


def test_a_png_of_a_huge_image_is_refused_from_its_header(monkeypatch):
    line = np.zeros((3, 100_000, 4), np.uint8)
    line[..., 3] = 255
    line[1, :, :3] = 255
    at = draw_page(monkeypatch, data_url(line))
    assert not at.exception and any("pixels" in e.value for e in at.error)


def test_a_drawn_one_is_predicted_with_what_the_network_saw_and_its_head_maps(monkeypatch):
    at = draw_page(monkeypatch, data_url(drawn([(0.48, 0.12), (0.5, 0.9)])))
    assert not at.exception and not at.error
    assert prediction(at) == "1"
    assert not at.warning  # a clear digit: no "not sure"
    assert len(at.get("plotly_chart")) == 2  # the ten probabilities, the ten head maps
    captions = [c for image in at.get("image") for c in image.captions]
    assert len(captions) == 2  # feature maps only when asked for
    assert captions[0].startswith("what the network sees") and "SmoothGrad" in captions[1]


def test_a_scribble_gets_the_not_sure_hint(monkeypatch):
    # An "E": the shipped best's top probability for it is under half (a digit's is over 0.9).
    e = drawn([(0.7, 0.15), (0.3, 0.15), (0.3, 0.85), (0.7, 0.85)], [(0.3, 0.5), (0.6, 0.5)])
    at = draw_page(monkeypatch, data_url(e))
    assert not at.exception
    assert prediction(at) != "—"  # it still names a digit ...
    assert any(w.value.startswith("Not sure this is a digit") for w in at.warning)  # ... and says it is unsure


def test_every_conv_layers_maps_only_once_the_expander_is_opened(monkeypatch):
    at = draw_page(monkeypatch, data_url(drawn([(0.48, 0.12), (0.5, 0.9)])))
    assert at.session_state["all_feature_maps"] is False and len(at.get("image")) == 2
    at.session_state["all_feature_maps"] = True  # as the student's click sets it
    at.run()
    assert not at.exception
    layers = [m.value for m in at.markdown if m.value.startswith("**conv ")]
    assert len(layers) == len(at.get("image")) - 2 > 3  # one grid per conv layer of best
    assert layers[-1].startswith("**conv 8 (head, 10 ch)**")


# ------------------------------------------------------------------------------------------------ the figures
def test_the_head_maps_share_one_scale_and_label_each_digit_the_winner_in_bold():
    maps = np.random.default_rng(0).normal(size=(10, 3, 3))
    maps[6] += 4.0  # digit 6 wins
    fig = figures.head_maps(maps)
    assert len(fig.data) == 1 and fig.data[0].type == "heatmap"  # one trace: one colour scale for all ten
    assert fig.data[0].zmin == -fig.data[0].zmax == -float(np.abs(maps).max())  # centred on 0
    texts = [a.text for a in fig.layout.annotations]
    assert [t.removeprefix("<b>")[:2] for t in texts] == [f"{d}:" for d in range(10)]
    assert [t for t in texts if t.startswith("<b>")] == [f"<b>6: {maps[6].mean():+.1f}</b>"]
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.isfinite(z).sum() == 90 and np.nanmax(z) == maps.max()  # every value, none rescaled


def test_the_saliency_overlay_is_the_digit_at_the_same_size_with_red_for_and_blue_against():
    image = np.zeros((28, 28), np.float32)
    image[4:24, 13:15] = 1.0
    sal = np.zeros((28, 28), np.float32)
    sal[4:24, 13:15] = 1.0  # the stroke: for
    sal[4:8, 18:22] = -1.0  # a corner: against
    out = figures.saliency_overlay(image, sal, 6)
    assert out.shape == figures.enlarge(image, 6).shape + (3,)  # the same size as what the network sees
    r, g, b = (out[..., i].astype(int) for i in range(3))
    assert (r[30, 80] > b[30, 80] + 100) and (b[30, 115] > r[30, 115] + 100)  # red for, blue against
    quiet = figures.saliency_overlay(image, np.zeros_like(sal), 6)
    assert quiet[60, 80].min() > 100 and quiet[60, 20].max() == 0  # no saliency: the grey digit on black


def test_a_real_model_gives_a_head_map_figure_whose_winner_is_its_prediction():
    model = checkpoint.load(checkpoint.shipped()["tiny"]).model()
    image = drawing.to_mnist(drawn([(0.48, 0.12), (0.5, 0.9)]))
    fig = figures.head_maps(analysis.head_maps(model, image))
    assert [a.text for a in fig.layout.annotations if a.text.startswith("<b>")][0].startswith("<b>1:")
