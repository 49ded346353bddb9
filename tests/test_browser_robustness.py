"""Draw's robustness lab in a real browser (see browser.py), as a student uses it: draw a digit, open the lab, turn
the digit with the rotate slider from the keyboard, and nudge it until the network names another digit."""

import pytest

from .browser import WAIT_MS, open_draw, stroke, wait_for_prediction

ONE = [(0.45, 0.14), (0.50, 0.92)]

# The lab's plot for one transform, as the browser holds it: the slider's value it marks, the answer marked there,
# and the label written beside that line.
PLOT = """(kind) => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')]
        .find(p => p.layout.meta && p.layout.meta.kind === kind);
    if (!plot) return null;
    const notes = plot.layout.annotations || [];
    return {now: plot.layout.meta.now, prediction: plot.layout.meta.prediction,
            label: notes.length ? notes[notes.length - 1].text : null};
}"""


# Once every plot of the lab holds the digit turned by ``angle`` and the rotate plot marks it: the run that drew them
# drew the metrics above them too (the page has no stale part left from an earlier run).
HELD = """(angle) => {
    const plots = [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.layout.meta && p.layout.meta.held);
    return plots.length === 5 && plots.every(p => p.layout.meta.held.rotate === angle)
        && plots.some(p => p.layout.meta.kind === 'rotate' && p.layout.meta.now === angle);
}"""


def metric(page, label: str):
    return page.locator('[data-testid="stMetric"]').filter(has_text=label).locator('[data-testid="stMetricValue"]')


@pytest.mark.slow
def test_turn_the_digit_with_the_slider_and_nudge_it(server, browser):
    page, pad = open_draw(browser, server)
    stroke(page, pad.bounding_box(), ONE)
    wait_for_prediction(page, "1")
    page.get_by_text("How sure is it, really?").click()
    page.wait_for_function(HELD, arg=0, timeout=WAIT_MS)
    start = page.evaluate(PLOT, "rotate")
    assert start["now"] == 0 and start["prediction"] == 1 and start["label"].startswith("now +0°: 1")
    assert metric(page, "Prediction after the change").inner_text().strip() == "1"

    thumb = page.locator('[data-testid="stSlider"]').filter(has_text="rotate").get_by_role("slider")
    thumb.focus()
    for _ in range(18):  # 18 steps of 5 degrees: the "1" lies on its side
        thumb.press("ArrowRight")
    page.wait_for_function(HELD, arg=90, timeout=WAIT_MS)  # waits out the runs of the presses before the last
    turned = page.evaluate(PLOT, "rotate")
    shown = metric(page, "Prediction after the change").inner_text().strip()
    assert turned["label"].startswith(f"now +90°: {shown} ")  # the line marks the slider, labelled with the answer
    assert shown == str(turned["prediction"]) != "1"  # turned on its side, the "1" is read as another digit
    assert page.evaluate(PLOT, "shift_x")["prediction"] == turned["prediction"]  # every plot marks that answer

    page.get_by_role("button", name="Nudge my digit").click()
    nudged = metric(page, "Prediction after the nudge")
    nudged.wait_for(timeout=WAIT_MS)
    assert nudged.inner_text().strip() != "1"
    said = page.locator('[data-testid="stAlert"]').filter(has_text="From 1 to ").inner_text()
    assert f"From 1 to {nudged.inner_text().strip()}: changed " in said and " pixels by at most " in said
    assert page.locator('[data-testid="stImage"]').filter(has_text="the nudge: red adds ink").count() == 1
    page.close()
