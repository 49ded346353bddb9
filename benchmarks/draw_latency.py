"""How fast the Draw page answers in a real browser: mouse up -> the prediction shows the new digit, idle and while a
training job runs; and how long the page takes to open.

    python benchmarks/draw_latency.py >> benchmarks/results/draw_latency.jsonl

Starts `streamlit run app.py` on a fresh runs folder and drives headless Chromium with Playwright (the browser tests'
helpers, tests/browser.py). The times are taken in the browser, with `performance.now()`:

- stroke -> prediction: from the `pointerup` that ends a stroke to the moment the "Prediction" metric's text
  becomes a digit (a MutationObserver); the canvas is cleared before each stroke, so the metric reads "—" first and
  any digit after the stroke is the new answer. Single-stroke digits, cycled, ``--strokes`` of them per condition
  (target: median <= 150 ms idle, <= 300 ms while training).
- while training: a quick-mode job with many epochs, started through the Train page in a second tab, as a student
  would; each stroke records whether a job was running then (read from the run registry, read-only).
- first render: navigation start -> the canvas is on the page and the app's script has finished running
  (`data-test-script-state` is notRunning), over ``--opens`` fresh tabs.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import emit, machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnistlab import data as mdata  # noqa: E402
from mnistlab.store import RunStore  # noqa: E402
from tests.browser import WAIT_MS, chromium, start_server  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402

# The drawing pad, or the Fabric.js canvas of streamlit-drawable-canvas (so that the page before it can be measured).
CANVAS = "canvas[data-testid=drawingPad], canvas.upper-canvas"

# Installed in every page before its scripts: stroke ends, every change of the prediction's text, and the first
# moment the page is ready (a canvas drawn on, the script not running), all on the page's own clock.
PROBE = """
window.__lab = {ups: [], preds: [], ready: null};
addEventListener('pointerup', () => window.__lab.ups.push(performance.now()), true);
const metric = () => [...document.querySelectorAll('[data-testid="stMetric"]')]
  .find(m => (m.textContent || '').includes('Prediction'));
let last = null;
new MutationObserver(() => {
  const m = metric();
  const v = m ? (m.querySelector('[data-testid="stMetricValue"]')?.textContent || '').trim() : null;
  if (v !== last) { last = v; window.__lab.preds.push([performance.now(), v]); }
}).observe(document, {subtree: true, childList: true, characterData: true});
const hasCanvas = () => [...document.querySelectorAll('[data-testid^="stBidiComponent"]')]
  .some(h => (h.shadowRoot || h).querySelector('canvas[data-testid=drawingPad], canvas.upper-canvas'));
const poll = () => {
  const state = document.querySelector('[data-testid=stApp]')?.getAttribute('data-test-script-state');
  if (state === 'notRunning' && hasCanvas()) window.__lab.ready = performance.now();
  else requestAnimationFrame(poll);
};
requestAnimationFrame(poll);
"""
IDLE = "() => document.querySelector('[data-testid=stApp]')?.getAttribute('data-test-script-state') === 'notRunning'"
BLANK = """() => window.__lab.preds.length && window.__lab.preds[window.__lab.preds.length - 1][1] === '—'"""
LOST_MS = 20_000  # a stroke with no answer by then was lost by the canvas (the app answers within a second)
ANSWERED = """(up) => window.__lab.preds.find(([t, v]) => t > up && /^[0-9]$/.test(v))"""

# Single-stroke digits as fractions of the canvas; none starts in the top-right corner, where the old canvas's
# hidden toolbar sits until the pointer has hovered for a moment.
STROKES = [
    [(0.50, 0.15), (0.46, 0.88)],  # 1
    [(0.20, 0.18), (0.75, 0.18), (0.40, 0.88)],  # 7
    [(0.45, 0.15), (0.25, 0.40), (0.30, 0.80), (0.60, 0.85), (0.72, 0.55), (0.60, 0.20), (0.45, 0.15)],  # 0
    [(0.25, 0.30), (0.45, 0.15), (0.70, 0.30), (0.30, 0.85), (0.75, 0.85)],  # 2
    [(0.25, 0.20), (0.70, 0.25), (0.45, 0.48), (0.72, 0.65), (0.30, 0.85)],  # 3
]


def stroke(page, box, points) -> None:
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x + points[0][0] * w, y + points[0][1] * h, steps=4)
    page.mouse.down()
    for fx, fy in points[1:]:
        page.mouse.move(x + fx * w, y + fy * h, steps=8)
    page.mouse.up()


def clear(page) -> None:
    button = page.get_by_role("button", name="Clear")
    if button.is_enabled():  # the pad's own Clear is off while it is empty
        button.click()
    page.wait_for_function(BLANK, timeout=WAIT_MS)
    page.wait_for_function(IDLE, timeout=WAIT_MS)


def open_draw(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.add_init_script(PROBE)
    page.goto(f"{url}/Draw")
    page.wait_for_function("() => window.__lab.ready !== null", timeout=WAIT_MS)
    return page


def latencies(page, n: int, training=None) -> tuple[list[float], int, list[bool]]:
    """``n`` strokes, each on a cleared canvas: ms from each pointerup to its prediction, how many strokes never got
    one (lost: no answer within LOST_MS), and whether a job ran at each stroke."""
    canvas = page.locator(CANVAS).first
    out, lost, running = [], 0, []
    for i in range(n):
        clear(page)
        if training is not None:
            running.append(training())
        stroke(page, canvas.bounding_box(), STROKES[i % len(STROKES)])
        up = page.evaluate("() => window.__lab.ups[window.__lab.ups.length - 1]")
        try:
            shown = page.wait_for_function(ANSWERED, arg=up, timeout=LOST_MS).json_value()
        except PlaywrightTimeout:
            lost += 1
            print(f"# stroke {i} ({i % len(STROKES)}): no prediction within {LOST_MS} ms", file=sys.stderr)
            continue
        out.append(shown[0] - up)
        page.wait_for_function(IDLE, timeout=WAIT_MS)  # the rest of the page too, before the next stroke
    return out, lost, running


def summary(name: str, ms: list[float], **extra) -> None:
    ms = sorted(ms)
    if not ms:
        emit({"measure": name, "n": 0, "load_avg_1min": round(os.getloadavg()[0], 2), **extra})
        return
    emit({"measure": name, "median_ms": round(statistics.median(ms), 1),
          "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 1), "max_ms": round(ms[-1], 1), "n": len(ms),
          "load_avg_1min": round(os.getloadavg()[0], 2), **extra})  # other work on the machine shows here


def start_training(browser, url: str):
    """A second tab on the Train page that starts a long quick-mode job (and starts another if one ends)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/Train")
    page.get_by_role("button", name="Start training").wait_for(timeout=WAIT_MS)
    page.wait_for_function(IDLE, timeout=WAIT_MS)
    page.get_by_role("spinbutton", name="epochs").fill("30")
    page.get_by_text("quick mode").click()

    def start() -> None:
        page.get_by_role("button", name="Start training").click()
        page.get_by_text("Epoch 1/30").wait_for(timeout=WAIT_MS)

    start()
    return page, start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--strokes", type=int, default=24, help="strokes per condition (idle, training)")
    p.add_argument("--opens", type=int, default=5, help="fresh tabs for the first render")
    p.add_argument("--label", default="", help="a note stored with each line (e.g. which version of the page)")
    args = p.parse_args()
    extra = {"label": args.label} if args.label else {}
    emit({"machine": machine(), **extra})
    runs = Path(tempfile.mkdtemp(prefix="draw-latency-"))
    proc, url = start_server(runs, mdata.default_root())
    try:
        with chromium() as browser:
            open_draw(browser, url).close()  # the server's first page loads the models and torch: not a student's
            opens = []
            for _ in range(args.opens):
                page = open_draw(browser, url)
                opens.append(page.evaluate("() => window.__lab.ready"))
                page.close()
            summary("first render (navigation -> canvas shown, app idle)", opens, **extra)

            page = open_draw(browser, url)
            ms, lost, _ = latencies(page, args.strokes)
            summary("stroke -> prediction, idle", ms, lost=lost, **extra)

            train_page, start = start_training(browser, url)

            def training() -> bool:
                if not RunStore(runs).runs(status=("running",)):  # a store that is only read takes no lock
                    start()
                return bool(RunStore(runs).runs(status=("running",)))

            ms, lost, running = latencies(page, args.strokes, training)
            summary("stroke -> prediction, while training", ms, lost=lost,
                    training_during=f"{sum(running)}/{len(running)}", **extra)
            train_page.get_by_role("button", name="Cancel").click()
            train_page.close()
            page.close()
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"# {time.perf_counter() - t0:.0f} s", file=sys.stderr)
