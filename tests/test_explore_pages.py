"""The receptive-field explorer and the convolution step-through on Draw, and the receptive-field growth chart on
Architecture, under Streamlit's AppTest (no browser; what the browser does with them: test_browser_explore.py)."""

import json

import numpy as np

from mnistlab import arch, checkpoint, convstep, drawing, receptive
from mnistlab.ui import convstep as convstep_ui

from .test_app import page
from .test_draw_page import data_url, draw_page, drawn, isolated_runs  # noqa: F401 (isolated_runs: a fixture)

ONE = [(0.48, 0.12), (0.5, 0.9)]


def sent(at, name: str) -> list[dict]:
    """The data each mounted components-v2 element ``name`` was given."""
    out = []

    def walk(node):
        for child in getattr(node, "children", {}).values():
            if getattr(child, "type", "") == "bidi_component" and child.proto.component_name == name:
                out.append(json.loads(child.proto.json))
            walk(child)

    walk(at._tree)
    return out


def test_both_sections_wait_closed_until_asked_for(monkeypatch):
    at = draw_page(monkeypatch, data_url(drawn(ONE)))
    assert not at.exception
    labels = [e.label for e in at.expander]
    assert "Receptive fields: what one unit can see of your digit" in labels
    assert "Step through the first convolution" in labels
    assert at.session_state["rf_explorer"] is False and at.session_state["conv_step"] is False
    assert not sent(at, "mnistlab_rf_explorer") and not sent(at, "mnistlab_conv_step")  # nothing computed


def test_the_explorer_gets_the_drawn_digit_and_every_conv_layers_windows(monkeypatch):
    at = draw_page(monkeypatch, data_url(drawn(ONE)))
    at.session_state["rf_explorer"] = True  # as the student's click sets it
    at.run()
    assert not at.exception
    (data,) = sent(at, "mnistlab_rf_explorer")
    image = drawing.to_mnist(drawn(ONE))
    assert data["image"] == [int(round(float(p) * 255)) for p in image.ravel()]
    best = arch.preset("best")  # the first model on the list
    layers = receptive.conv_layers(best)
    assert [layer["name"] for layer in data["layers"]] == [c.name for c in layers]
    for layer, c in zip(data["layers"], layers):
        assert layer["spans"] == [[s.lo, s.hi, s.full_lo, s.full_hi] for s in receptive.spans(best, c.index)]
        assert len(layer["map"]) == c.size**2 and 0 <= min(layer["map"]) <= max(layer["map"]) <= 255
    assert data["margin"] == 6  # best's head reaches 6 px past the image


def test_the_step_through_shows_the_most_active_channel_then_the_one_chosen(monkeypatch):
    at = draw_page(monkeypatch, data_url(drawn(ONE)))
    at.session_state["conv_step"] = True
    at.run()
    assert not at.exception
    image = drawing.to_mnist(drawn(ONE))
    fc = convstep.first_conv(checkpoint.load(checkpoint.shipped()["best"]).model())
    active = convstep.most_active(fc, image)
    channel = at.selectbox(key="conv_step_channel")
    assert channel.value is None and channel.format_func(None) == f"the most active: channel {active}"
    assert any("3×3 conv with padding 1" in c.value for c in at.caption)
    (data,) = sent(at, "mnistlab_conv_step")
    assert data == json.loads(json.dumps(convstep_ui.stepper_data(fc, image, active)))
    at.selectbox(key="conv_step_channel").set_value(3).run()
    (data,) = sent(at, "mnistlab_conv_step")
    assert data["channel"] == 3 and data["conv"] == convstep_ui.stepper_data(fc, image, 3)["conv"]


def test_a_channel_the_next_model_lacks_goes_back_to_the_most_active(monkeypatch):
    at = draw_page(monkeypatch, data_url(drawn(ONE)))
    at.session_state["conv_step"] = True
    at.run()
    at.selectbox(key="conv_step_channel").set_value(12).run()  # best's first conv has 16 channels, tiny's 6
    at.selectbox(key="model_choice").set_value("preset:tiny").run()
    assert not at.exception
    (data,) = sent(at, "mnistlab_conv_step")
    assert at.selectbox(key="conv_step_channel").value is None and data["channel"] < 6
    assert data["pad"] == 0 and data["side"] == 26  # tiny has no padding


def test_the_architecture_page_ends_with_the_growth_chart_and_the_count_before_the_pool():
    at = page("views/1_Architecture.py").run()
    assert not at.exception
    (chart,) = [c for c in at.get("plotly_chart") if c.proto.id.endswith("rf_growth")]
    figure = json.loads(chart.proto.spec)
    texts = [a["text"] for a in figure["layout"]["annotations"]]
    bars = figure["data"][0]
    table = at.dataframe[0].value  # the page's layer table: the chart must tell the same story
    gap = int(np.flatnonzero(table["role"] == "global average pool")[0])
    before, through = int(table["receptive field"].iloc[gap - 1]), int(table["receptive field"].iloc[gap])
    assert f"before the pool: {before} px" in texts and f"through the GAP: {through} px" in texts
    assert bars["y"][bars["x"].index("GAP")] == through and bars["y"][bars["x"].index("GAP") - 1] == before
    assert bars["y"][-1] == int(table["receptive field"].iloc[-1])
    assert any(line["y0"] == 28 for line in figure["layout"]["shapes"])  # the image's 28 px
    assert np.all(np.diff(bars["y"]) >= 0)  # the view only grows
    caption = [c.value for c in at.caption if "global average pool" in c.value]
    assert caption and f"sees {before} px" in caption[0]
