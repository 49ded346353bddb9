"""The robustness lab: its transforms, sweeps and nudge (mnistlab/robustness.py), and its section on the Draw page
under AppTest (mnistlab/ui/robustness.py)."""

import json
from dataclasses import asdict

import numpy as np
import pytest

from mnistlab import analysis, checkpoint
from mnistlab import robustness as rb
from mnistlab.ui import robustness as ui

from .test_draw_page import data_url, draw_page, drawn, isolated_runs  # noqa: F401 (a fixture)

ONE = ([(0.48, 0.12), (0.5, 0.9)],)  # a drawn "1"


@pytest.fixture(scope="module")
def best():
    return checkpoint.load(checkpoint.shipped()["best"]).model()


@pytest.fixture(scope="module")
def digit(mnist):
    """The first test digit (a 7), in [0, 1]."""
    return mnist.test.images[0].float().numpy() / 255


def blob() -> np.ndarray:
    img = np.zeros((28, 28), np.float32)
    img[10:14, 12:15] = 1.0
    img[11, 13] = 0.5
    return img


# ------------------------------------------------------------------------------------------------ the transforms
def test_no_rotation_and_no_shift_is_the_image_itself(digit):
    assert np.array_equal(rb.transform(digit, rb.Settings()).numpy(), digit)
    same = rb.Settings().with_value("rotate", 0).with_value("shift_x", 0).with_value("shift_y", 0)
    assert np.array_equal(rb.transform(digit, same).numpy(), digit)


@pytest.mark.parametrize("dx,dy", [(3, 0), (0, -2), (-5, 4), (8, 8)])
def test_a_shift_moves_the_ink_by_exactly_that_many_pixels(dx, dy):
    img = blob()
    moved = rb.transform(img, rb.Settings(shift_x=dx, shift_y=dy)).numpy()
    expected = np.zeros_like(img)
    expected[10 + dy:14 + dy, 12 + dx:15 + dx] = 1.0
    expected[11 + dy, 13 + dx] = 0.5
    np.testing.assert_allclose(moved, expected, atol=1e-5)


def test_positive_degrees_turn_the_digit_clockwise():
    bar = np.zeros((28, 28), np.float32)
    bar[13:15, 14:26] = 1.0  # from the centre to the right
    turned = rb.transform(bar, rb.Settings(rotate=90)).numpy()
    assert turned[15:27, 12:16].sum() > 20 and turned[:13, :].sum() < 1  # now from the centre downwards


def test_thicker_and_thinner_strokes():
    dot = np.zeros((28, 28), np.float32)
    dot[14, 14] = 1.0
    assert rb.transform(dot, rb.Settings(thickness=1)).numpy().sum() == 5  # a plus: one pixel more on each side
    img = blob()
    thin = rb.transform(img, rb.Settings(thickness=-1)).numpy()
    thick = rb.transform(img, rb.Settings(thickness=2)).numpy()
    assert thin.sum() < img.sum() < thick.sum() and np.all(thin <= img) and np.all(thick >= img)
    assert np.argwhere(thin).tolist() == [[11, 13], [12, 13]]  # the 4x3 block loses its rim, and its
    assert thin[12, 13] == 0.5  # brightest pixel beside the dim one takes the dimmest value around it


def test_a_settings_value_of_an_unknown_transform_is_refused():
    with pytest.raises(ValueError, match="unknown transform"):
        rb.Settings().with_value("shear", 1)
    with pytest.raises(ValueError, match="28x28"):
        rb.transform(np.zeros((29, 28)), rb.Settings())


# ------------------------------------------------------------------------------------------------ sweeps
@pytest.mark.parametrize("kind", list(rb.RANGES))
def test_a_sweep_gives_one_prediction_per_value(best, digit, kind):
    values = rb.RANGES[kind].values()
    s = rb.sweep(best, digit, kind, values)
    assert len(s.predictions) == len(s.values) == len(values) and s.probs.shape == (len(values), 10)
    np.testing.assert_allclose(s.probs.sum(1), 1, atol=1e-5)
    at_rest = int(np.flatnonzero(values == ui.DEFAULTS[kind])[0])
    np.testing.assert_allclose(s.probs[at_rest], analysis.predict(best, digit), atol=1e-5)  # the untouched digit
    assert s.changes() == [i for i in range(1, len(values)) if s.predictions[i] != s.predictions[i - 1]]


def test_a_sweep_holds_the_other_transforms_where_they_are(best, digit):
    base = rb.Settings(rotate=40, thickness=1)
    s = rb.sweep(best, digit, "shift_x", [-3, 0, 2], base=base)
    shown = rb.transform(digit, base.with_value("shift_x", 2)).numpy()
    np.testing.assert_allclose(s.probs[2], analysis.predict(best, shown), atol=1e-5)


def test_a_rotation_sweep_sees_the_network_change_its_mind(best, digit):
    s = rb.sweep(best, digit, "rotate", rb.RANGES["rotate"].values())
    assert s.predictions[18] == 7 and s.changes()  # upright it is a 7; turned far, something else


def test_a_sweep_is_bounded(best, digit):
    with pytest.raises(ValueError, match="1 to"):
        rb.sweep(best, digit, "rotate", np.zeros(rb.MAX_VALUES + 1))
    with pytest.raises(ValueError, match="1 to"):
        rb.sweep(best, digit, "rotate", [])


# ------------------------------------------------------------------------------------------------ the nudge
@pytest.fixture(scope="module")
def nudged(best, digit):
    return rb.nudge(best, digit)


def test_a_nudge_flips_a_shipped_networks_answer_within_its_budget(best, digit, nudged):
    n = nudged
    assert n.flipped and n.before == 7 != n.after
    assert n.after == int(analysis.predict(best, n.nudged).argmax())  # the nudged image really reads as n.after
    np.testing.assert_allclose(n.after_probs, analysis.predict(best, n.nudged), atol=1e-5)
    assert n.budget in rb.BUDGETS and n.budget <= 0.2
    assert np.abs(n.nudged - digit).max() <= n.budget + 1e-6 and 0 <= n.nudged.min() and n.nudged.max() <= 1


def test_the_reported_change_is_the_arrays_change(digit, nudged):
    n = nudged
    change = n.nudged - digit
    assert np.array_equal(n.original, digit) and np.array_equal(n.change, change)
    assert n.pixels == np.count_nonzero(change) and 0 < n.pixels < 784
    assert n.largest == pytest.approx(float(np.abs(change).max()))
    assert n.words() == f"changed {n.pixels} pixels by at most {np.abs(change).max():.2f}"


def test_a_nudge_is_the_same_every_time(best, digit, nudged):
    again = rb.nudge(best, digit)
    assert np.array_equal(again.nudged, nudged.nudged) and again.after == nudged.after


def test_a_budget_too_small_says_it_did_not_flip(best, digit):
    n = rb.nudge(best, digit, budgets=(0.001,))
    assert not n.flipped and n.after == n.before == 7 and n.largest <= 0.001 + 1e-6
    with pytest.raises(ValueError):
        rb.nudge(best, digit, budgets=(0, 0.1))


# ------------------------------------------------------------------------------------------------ figures
def test_the_sweep_figure_marks_the_slider_and_each_change_of_mind(best, digit):
    s = rb.sweep(best, digit, "rotate", rb.RANGES["rotate"].values())
    fig = ui.sweep_figure(s, 7, 15.0, 7, 0.9)
    assert fig.layout.meta == {"kind": "rotate", "now": 15.0, "prediction": 7, "held": asdict(rb.Settings())}
    lines = [shape.x0 for shape in fig.layout.shapes]
    assert lines[-1] == 15.0 and len(lines) == len(s.changes()) + 1  # one dotted line per change, the slider
    assert fig.layout.annotations[-1].text == "now +15°: 7 (90%)"
    assert [t for t in fig.data[0].text if t] == [str(p) for p in s.predictions if p != 7]


def test_the_nudge_picture_is_red_for_ink_added_and_blue_for_ink_taken():
    change = np.zeros((28, 28))
    change[3, 4], change[5, 6] = 0.1, -0.05
    rgb = ui.signed_change(change, scale=1)
    assert rgb[3, 4, 0] == 255 and rgb[3, 4, 2] < 100 and rgb[5, 6, 2] > rgb[5, 6, 0] and rgb[0, 0].max() == 0


# ------------------------------------------------------------------------------------------------ the Draw page
def charts(at) -> dict:
    """The lab's plots, by transform: their figures' meta (kind, the slider's value, the answer there)."""
    metas = [json.loads(c.proto.spec)["layout"].get("meta") for c in at.get("plotly_chart")]
    return {m["kind"]: m for m in metas if m}


def shown(at, label: str) -> str:
    return next(m for m in at.metric if m.label == label).value


@pytest.mark.slow
def test_the_lab_is_computed_only_when_opened_and_shows_the_drawn_digit(monkeypatch):
    at = draw_page(monkeypatch, data_url(drawn(*ONE)))
    assert not at.exception and at.session_state["robust_lab"] is False and not charts(at)
    at.session_state["robust_lab"] = True  # as the student's click sets it
    at.run()
    assert not at.exception and not at.error
    assert set(charts(at)) == set(rb.RANGES) and all(m["now"] == ui.DEFAULTS[k] for k, m in charts(at).items())
    assert shown(at, "Prediction after the change") == "1" == str(charts(at)["rotate"]["prediction"])
    assert len([s for s in at.slider if s.key.startswith("robust_")]) == 5
    assert {c.value for c in at.caption} >= set(ui.WHY.values())  # each slider's reason beside it


@pytest.mark.slow
def test_moving_a_slider_changes_the_shown_prediction_and_the_marked_value(monkeypatch):
    at = draw_page(monkeypatch, data_url(drawn(*ONE)))
    at.session_state["robust_lab"] = True
    at.run()
    at.slider(key="robust_rotate").set_value(90).run()
    assert not at.exception
    after = shown(at, "Prediction after the change")
    assert after != "1" and charts(at)["rotate"]["now"] == 90
    assert all(m["held"]["rotate"] == 90 for m in charts(at).values())  # every plot holds the digit turned
    assert {m["prediction"] for m in charts(at).values()} == {int(after)}  # every plot marks the same answer
    at.button(key="robust_reset").click().run()
    assert not at.exception and not at.warning
    assert shown(at, "Prediction after the change") == "1" and charts(at)["rotate"]["now"] == 0
    assert at.slider(key="robust_rotate").value == 0


@pytest.mark.slow
def test_the_nudge_button_shows_a_flipped_prediction(monkeypatch):
    at = draw_page(monkeypatch, data_url(drawn(*ONE)))
    at.session_state["robust_lab"] = True
    at.run()
    at.button(key="robust_nudge").click().run()
    assert not at.exception
    assert shown(at, "Prediction after the nudge") != "1"
    assert any(s.value.startswith("From 1 to ") and "changed" in s.value for s in at.success)
    at.slider(key="robust_rotate").set_value(10).run()  # the nudge stays while the same digit is drawn
    assert shown(at, "Prediction after the nudge") != "1"

