"""Draw's receptive-field explorer and convolution step-through in a real browser (see browser.py), as a student uses
them: draw a digit, point at units, step and play. What is checked is what the page draws and says, against the
library's own numbers for the same drawing."""

import numpy as np
import pytest

from mnistlab import arch, checkpoint, convstep, drawing, receptive

from .browser import IDLE, PAD, WAIT_MS, open_draw, stroke, wait_for_prediction

ONE = [(0.45, 0.14), (0.50, 0.92)]
S = 8  # screen pixels per input pixel on the explorer's digit (rfexplorer.py)

# The bounding box, in the explorer digit canvas's pixels, of the amber frame (exactly #ffb000): the window shown.
AMBER_BOX = """(canvas) => {
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1;
    for (let i = 0; i < d.length; i += 4) {
        if (d[i] !== 255 || d[i + 1] !== 176 || d[i + 2] !== 0) continue;
        const x = (i / 4) % canvas.width, y = Math.floor(i / 4 / canvas.width);
        x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
    }
    return x1 < 0 ? null : [x0, y0, x1, y1];
}"""


def drawn_image(page) -> np.ndarray:
    """The 28x28 image the server made of the pad: the same PNG the pad sent, prepared by the same code."""
    url = page.locator(PAD).evaluate("(canvas) => canvas.toDataURL('image/png')")
    assert url.startswith(drawing.PNG_DATA_URL)
    return drawing.to_mnist(drawing.image_from_data_url(drawing.PNG_DATA_URL + url.split(",", 1)[1]))


def point_at(page, canvas, row: int, col: int, size: int, click: bool = False) -> None:
    box = canvas.bounding_box()
    x, y = box["x"] + (col + 0.5) / size * box["width"], box["y"] + (row + 0.5) / size * box["height"]
    page.mouse.move(x, y, steps=3)
    if click:
        page.mouse.down()
        page.mouse.up()


def wait_or_explain(page, condition: str, arg, why) -> None:
    """Wait until ``condition(arg)`` holds in the page; if it never does, fail with ``why()``, read at that moment."""
    try:
        page.wait_for_function(condition, arg=arg, timeout=WAIT_MS)
    except Exception:
        raise AssertionError(why()) from None


def shown_window(page, digit, margin: int, unit: str) -> tuple[int, int, int, int]:
    """Once the map says ``unit`` is the one pointed at: the window the digit's amber frame outlines, in input
    pixels (first row, last row, first column, last column)."""
    marked = page.locator('canvas[data-testid="rfMap"]')
    wait_or_explain(page, "([c, u]) => c.dataset.unit === u", [marked.element_handle(), unit],
                    lambda: f"the map marks unit {marked.get_attribute('data-unit')}, not the one pointed at ({unit})")
    x0, y0, x1, y1 = digit.evaluate(AMBER_BOX)
    return y0 // S - margin, (y1 + 1) // S - 1 - margin, x0 // S - margin, (x1 + 1) // S - 1 - margin


@pytest.mark.slow
def test_the_highlight_on_the_digit_follows_the_unit_pointed_at(server, browser):
    page, pad = open_draw(browser, server)
    stroke(page, pad.bounding_box(), ONE)
    wait_for_prediction(page, "1")
    page.wait_for_selector(IDLE, timeout=WAIT_MS)
    page.get_by_text("Receptive fields: what one unit can see").click()
    explorer = page.locator('[data-testid="rfExplorer"]')
    explorer.wait_for(timeout=WAIT_MS)
    page.wait_for_selector(IDLE, timeout=WAIT_MS)
    explorer.scroll_into_view_if_needed()
    best = arch.preset("best")  # the first model on the list
    layer = receptive.conv_layers(best)[4]  # conv 5: a 14x14 map whose edge units read padding
    explorer.get_by_role("button", name="conv 5", exact=True).click()
    page.wait_for_function("(e) => e.dataset.layer.startsWith('conv 5')", arg=explorer.element_handle())
    canvas, digit = page.locator('canvas[data-testid="rfMap"]'), page.locator('canvas[data-testid="rfDigit"]')
    margin = 6  # best's widest window reaches 6 px past the image: the padding drawn around the digit
    seen = []
    for row, col in [(0, 0), (7, 9), (13, 2)]:
        point_at(page, canvas, row, col, layer.size)
        w = receptive.window(best, layer.index, row, col)
        seen.append(shown_window(page, digit, margin, f"{row},{col}"))
        assert seen[-1] == (w.rows.lo, w.rows.hi, w.cols.lo, w.cols.hi), (row, col)
        assert digit.get_attribute("data-window") == ",".join(map(str, seen[-1]))
        past = ", ".join(f"{side} by {px} px" for side, px in w.past_edge.items())
        assert (f"reaches past the image ({past})" if past else "lies inside the image") in explorer.inner_text()
    assert len(set(seen)) == 3
    point_at(page, canvas, 3, 4, layer.size, click=True)  # pinned: it stays when the pointer leaves the map
    page.mouse.move(10, 10)
    w = receptive.window(best, layer.index, 3, 4)
    assert shown_window(page, digit, margin, "3,4") == (w.rows.lo, w.rows.hi, w.cols.lo, w.cols.hi)
    assert "(pinned)" in explorer.inner_text() and "lies inside the image" in explorer.inner_text()
    page.close()


def cell_of(page, stepper, at_least: int) -> int:
    """The step-through's cell, once it is at least ``at_least`` (row-major)."""
    wait_or_explain(page, "([e, n]) => +e.dataset.cell >= n", [stepper.element_handle(), at_least],
                    lambda: f"the step-through stayed at cell {stepper.get_attribute('data-cell')}, never reaching "
                            f"{at_least}")
    return int(stepper.get_attribute("data-cell"))


def f(x: float) -> str:
    return ("−" if x < 0 else "") + f"{abs(x):.3f}"


@pytest.mark.slow
def test_step_play_and_pause_through_the_first_convolution(server, browser):
    page, pad = open_draw(browser, server)
    stroke(page, pad.bounding_box(), ONE)
    wait_for_prediction(page, "1")
    page.wait_for_selector(IDLE, timeout=WAIT_MS)
    image = drawn_image(page)
    model = checkpoint.load(checkpoint.shipped()["best"]).model()
    channel = convstep.most_active(convstep.first_conv(model), image)
    page.get_by_text("Step through the first convolution").click()
    stepper = page.locator('[data-testid="convStep"]')
    stepper.wait_for(timeout=WAIT_MS)
    page.wait_for_selector(IDLE, timeout=WAIT_MS)
    stepper.scroll_into_view_if_needed()
    assert f"Channel {channel}'s output map" in stepper.inner_text()
    # Onto a cell on the stroke (tapping the output map), then one step right: the numbers are the library's.
    rows, cols = np.nonzero(image > 0.5)
    row, col = int(rows[len(rows) // 2]), int(cols[len(cols) // 2]) - 1
    point_at(page, stepper.locator("canvas.out"), row, col, 28, click=True)
    assert cell_of(page, stepper, row * 28 + col) == row * 28 + col
    before = stepper.locator(".sums").inner_text()
    stepper.get_by_role("button", name="Step ▶").click()
    assert cell_of(page, stepper, row * 28 + col + 1) == row * 28 + col + 1
    text = stepper.locator(".sums").inner_text()
    c = convstep.cell(model, image, channel, row, col + 1)
    assert text != before and f"cell (row {row}, column {col + 1}) of channel {channel} = {f(c.output)}" in text
    assert f"sum of the 9 products = {f(float((c.inputs * c.weights).sum()))}" in text
    assert f"the conv's output is {f(c.conv)}" in text and "BatchNorm: (" in text and "ReLU: max(0, " in text
    # Play: the kernel moves on by itself; Pause: it stops where it is.
    start = int(stepper.get_attribute("data-cell"))
    stepper.get_by_role("button", name="Play").click()
    cell_of(page, stepper, start + 3)
    stepper.get_by_role("button", name="Pause").click()
    try:
        page.wait_for_function("(e) => e.dataset.playing === 'false'", arg=stepper.element_handle(), timeout=WAIT_MS)
    except Exception:
        raise AssertionError("Pause did not stop the animation") from None
    paused = int(stepper.get_attribute("data-cell"))
    page.wait_for_timeout(1200)  # four of play's 300 ms steps: the time over which nothing may move
    assert int(stepper.get_attribute("data-cell")) == paused
    page.close()
