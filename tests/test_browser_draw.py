"""The Draw page in a real browser (see browser.py): strokes, the prediction, what the network looked at, a phone."""

import pytest

from .browser import (DIGITS, IDLE, PAD, PREDICTION_SHOWN, TWO_STROKES, WAIT_MS, clear_pad, draw, ink, open_draw,
                      prediction, stroke, wait_for_prediction)

ONE = [(0.45, 0.14), (0.50, 0.92)]  # a "1"
TOP_RIGHT_ONE = [(0.62, 0.06), (0.50, 0.92)]  # a "1" begun at the top right of the pad


@pytest.mark.slow
def test_draw_a_digit_and_read_the_prediction(server, browser):
    page, pad = open_draw(browser, server)
    assert prediction(page) == "—"
    seen = {}
    for digit, strokes in DIGITS.items():
        draw(page, pad.bounding_box(), strokes, gap_ms=0)
        page.wait_for_function(PREDICTION_SHOWN, timeout=WAIT_MS)
        seen[digit] = prediction(page)
        clear_pad(page)
    assert seen == {d: d for d in DIGITS}
    page.close()


@pytest.mark.slow
def test_strokes_are_never_lost(server, browser):
    """Guards against lost strokes: a first stroke right after the page opens (on the old canvas, one begun at its
    top right before the pointer had hovered a moment went to a hidden toolbar, and the page then read nothing), a
    second stroke begun 150 ms after the first (a quick "4" or "7"), and a digit begun the moment Clear is pressed.
    Each must stay on the pad and be read whole."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/Draw")
    pad = page.locator(PAD)
    pad.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(300)  # the input: the student starts drawing 300 ms after the pad appears
    stroke(page, pad.bounding_box(), TOP_RIGHT_ONE)
    wait_for_prediction(page, "1")
    assert min(ink(page, TOP_RIGHT_ONE)) > 200  # both ends of the stroke are on the pad
    clear_pad(page)
    for digit, strokes in TWO_STROKES.items():
        draw(page, pad.bounding_box(), strokes, gap_ms=150)  # 150 ms between strokes: the input
        wait_for_prediction(page, digit)  # the first stroke alone reads as another digit
        second = strokes[1]
        assert min(ink(page, [second[0], second[-1]])) > 200, digit
        if digit == "4":
            page.get_by_role("button", name="Undo").click()  # takes back the upright: an "L", read as a 6
            wait_for_prediction(page, "6")
            assert max(ink(page, [second[0], second[-1]])) == 0
        page.get_by_role("button", name="Clear").click()  # and the next digit at once, as a student does
    page.wait_for_function(f"() => !({PREDICTION_SHOWN})()", timeout=WAIT_MS)
    assert max(ink(page, [p for strokes in TWO_STROKES.values() for s in strokes for p in s])) == 0
    page.close()


HEAD_MAPS = """() => {
    const plot = [...document.querySelectorAll('.js-plotly-plot')]
        .find(p => (p.layout.annotations || []).some(a => /^(<b>)?0: /.test(a.text)));
    if (!plot) return null;
    const t = plot.data[0];
    return {traces: plot.data.length, type: t.type, zmin: t.zmin, zmax: t.zmax,
            labels: plot.layout.annotations.map(a => a.text)};
}"""

# The two 28x28 views as the browser shows them: their sizes, and the mean brightness of the saliency image where
# the digit has ink and where it has none, and how many of its pixels are clearly red or blue.
VIEWS = """async () => {
    const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
    const find = (word) => imgs.find(i => i.closest('[data-testid="stImage"]').textContent.includes(word));
    const seen = find('what the network sees'), leaned = find('SmoothGrad');
    const pixels = (img) => {
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(img, 0, 0);
        return ctx.getImageData(0, 0, c.width, c.height).data;
    };
    const a = pixels(seen), b = pixels(leaned);
    let inkSum = 0, inkN = 0, bgSum = 0, bgN = 0, red = 0, blue = 0;
    for (let i = 0; i < a.length; i += 4) {
        const v = Math.max(b[i], b[i + 1], b[i + 2]);
        if (a[i] > 128) { inkSum += v; inkN++; } else { bgSum += v; bgN++; }
        if (b[i] > b[i + 2] + 60) red++;
        if (b[i + 2] > b[i] + 60) blue++;
    }
    const box = (img) => { const r = img.getBoundingClientRect(); return [r.width, r.height]; };
    return {seen: box(seen), leaned: box(leaned), natural: [seen.naturalWidth, leaned.naturalWidth],
            ink: inkSum / inkN, background: bgSum / bgN, red, blue};
}"""


@pytest.mark.slow
def test_head_maps_are_labelled_on_one_scale_and_saliency_overlays_the_digit(server, browser):
    """Guards the "look inside" views: the ten head maps were unlabelled, each on its own scale, so the winner did
    not stand out; the saliency map was speckle, not on the digit, at another size than the 28x28 image."""
    page, pad = open_draw(browser, server)
    stroke(page, pad.bounding_box(), ONE)
    wait_for_prediction(page, "1")
    page.wait_for_selector(IDLE, timeout=WAIT_MS)
    page.wait_for_function(HEAD_MAPS, timeout=WAIT_MS)
    head = page.evaluate(HEAD_MAPS)
    assert head["traces"] == 1 and head["type"] == "heatmap"  # all ten maps in one heatmap: one colour scale
    assert head["zmin"] == -head["zmax"] != 0  # centred on 0: red for a digit, blue against
    assert [label.removeprefix("<b>")[:2] for label in head["labels"]] == [f"{d}:" for d in range(10)]
    assert [label for label in head["labels"] if label.startswith("<b>")] == [head["labels"][1]]  # the winner
    views = page.evaluate(VIEWS)
    assert views["seen"] == views["leaned"] and views["natural"][0] == views["natural"][1]  # the same size
    assert views["ink"] > 1.5 * views["background"]  # the digit shows through the map laid over it
    assert views["red"] > 0 and views["blue"] > 0  # signed: for and against
    page.close()


@pytest.mark.slow
def test_at_phone_width_the_prediction_is_in_view_after_a_stroke(server, browser):
    """Guards the phone layout (390x844): the prediction was below the fold after every digit, and the canvas's
    toolbar lay over the pen slider."""
    page, pad = open_draw(browser, server, viewport={"width": 390, "height": 844})
    stroke(page, pad.bounding_box(), ONE)
    wait_for_prediction(page, "1")
    page.wait_for_selector(IDLE, timeout=WAIT_MS)
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Prediction").bounding_box()
    assert 0 <= metric["y"] and metric["y"] + metric["height"] <= 844
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="pen width").bounding_box()
    parts = pad.evaluate("""canvas => [...canvas.getRootNode().querySelectorAll('*')]
        .map(e => e.getBoundingClientRect()).filter(r => r.width && r.height)
        .map(r => ({x: r.x, y: r.y, width: r.width, height: r.height}))""")

    def overlaps(a, b) -> bool:
        return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
                and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])

    assert not [p for p in parts if overlaps(p, slider)]  # no part of the pad lies over the pen slider
    page.close()


@pytest.mark.slow
def test_a_drawing_and_the_pen_width_survive_a_look_at_the_photo_side(server, browser):
    """Guards the Draw | Photo switch: the pad leaves the page while Photo is chosen, and its strokes and the pen
    width were lost on the way back."""
    page, pad = open_draw(browser, server)
    pen = page.locator('[data-testid="stSlider"]').filter(has_text="pen width").get_by_role("slider")
    pen.focus()
    page.keyboard.press("ArrowRight")  # 18 -> 19
    page.wait_for_function("thumb => thumb.value === '19'", arg=pen.element_handle(), timeout=WAIT_MS)
    page.wait_for_selector(IDLE, timeout=WAIT_MS)
    stroke(page, pad.bounding_box(), ONE)
    wait_for_prediction(page, "1")
    page.get_by_role("radio", name="Photo").click()
    page.locator('[data-testid="stFileUploader"]').wait_for(timeout=WAIT_MS)
    page.wait_for_function(f"() => !({PREDICTION_SHOWN})()", timeout=WAIT_MS)
    page.get_by_role("radio", name="Draw").click()
    wait_for_prediction(page, "1")  # read again from the pad's own drawing, with no new stroke
    assert min(ink(page, ONE)) > 200
    assert pen.input_value() == "19"
    page.get_by_role("button", name="Clear").click()  # a restored drawing clears like any other
    page.wait_for_function(f"() => !({PREDICTION_SHOWN})()", timeout=WAIT_MS)
    assert max(ink(page, ONE)) == 0
    page.close()
