"""What the browser tests share: `streamlit run app.py` headless on a loopback port, Chromium driven by Playwright,
and the moves of a student (a stroke on the canvas, waiting for the app to settle).

Needs Debian's Chromium (/usr/bin/chromium, or $MNISTLAB_CHROMIUM) and the playwright package; scripts/test.sh
installs both. In CI a missing browser fails these tests; elsewhere they skip, saying why. The fixtures
(``browser`` for the whole session, ``server`` per test module) are in conftest.py.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import NamedTuple

from .conftest import HANG, ProcessOutput, need

ROOT = Path(__file__).resolve().parent.parent
WAIT_MS = HANG * 1000  # Playwright's waits, in milliseconds: a guard against a hang, not a deadline
CHROMIUM = os.environ.get("MNISTLAB_CHROMIUM", "/usr/bin/chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server(NamedTuple):
    proc: subprocess.Popen
    url: str
    output: ProcessOutput  # everything the server prints: its log


def launch(runs_dir: Path, data_root: Path, env: dict[str, str] | None = None) -> Server:
    """`streamlit run app.py` on a free loopback port, its runs in ``runs_dir`` (``env`` added to its environment);
    returns once it has said that it listens (the URL it prints once its server has started) and answers its health
    check."""
    port = free_port()
    env = {**os.environ, "MNISTLAB_RUNS": str(runs_dir), "MNISTLAB_DATA": str(data_root), **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    out = ProcessOutput(proc)  # also keeps the pipe drained for as long as the server runs
    try:
        out.wait_for(url)
        assert urllib.request.urlopen(f"{url}/_stcore/health", timeout=HANG).read() == b"ok"
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return Server(proc, url, out)


def start_server(runs_dir: Path, data_root: Path) -> tuple[subprocess.Popen, str]:
    """`launch`, for a test that stops (or kills) the server itself."""
    server = launch(runs_dir, data_root)
    return server.proc, server.url


@contextlib.contextmanager
def served(runs_dir: Path, data_root: Path, env: dict[str, str] | None = None):
    """A launched `Server` for the duration of the block."""
    server = launch(runs_dir, data_root, env)
    try:
        yield server
    finally:
        server.proc.terminate()
        server.proc.wait(timeout=HANG)


@contextlib.contextmanager
def chromium():
    """Headless Chromium (Debian's binary), or a failure in CI / a skip elsewhere saying what is missing."""
    need(Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is not None,
         f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "the playwright package is not installed (pip install playwright)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                    "--disable-background-networking", "--disable-component-update",
                                    "--disable-sync", "--no-first-run"])
        # Every wait of every page (navigation, a click's wait for its element) gets the hang guard, not Playwright's
        # 30 s default: a busy two-core machine can take longer than that to serve a page.
        def patient(make):
            def new(*args, **kwargs):
                made = make(*args, **kwargs)
                made.set_default_timeout(WAIT_MS)
                made.set_default_navigation_timeout(WAIT_MS)
                return made
            return new

        b.new_context, b.new_page = patient(b.new_context), patient(b.new_page)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def running_server(runs_dir: Path, data_root: Path):
    """A server for the duration of the block; its URL."""
    with served(runs_dir, data_root) as server:
        yield server.url


def settle(page, timeout: float = WAIT_MS) -> None:
    """Wait until the app is idle: its script not running, its status widget gone. (A test that has just acted waits
    for what its action shows, not for this: the rerun an action causes may not have begun yet.)"""
    page.wait_for_selector(IDLE, state="attached", timeout=timeout)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=timeout)


def stroke(page, box, points, lifted_at: float | None = None, gap_ms: float = 0) -> float:
    """One stroke through points given as fractions of the canvas; returns when the pen was lifted (time.monotonic).

    The first stroke of a drawing (no ``lifted_at``) comes in from outside the canvas and the pen goes down at once,
    as a hand does. A next stroke moves, pen up, from where the last one ended to its start, and the pen goes down
    ``gap_ms`` after ``lifted_at``: that pause is the test's input (how soon a student begins the next stroke)."""
    x0, y0 = box["x"], box["y"]
    start = (x0 + points[0][0] * box["width"], y0 + points[0][1] * box["height"])
    if lifted_at is None:
        page.mouse.move(x0 - 20, y0 - 20)
        page.mouse.move(*start, steps=8)
    else:
        page.mouse.move(*start, steps=4)
        left = gap_ms - (time.monotonic() - lifted_at) * 1000
        if left > 0:
            page.wait_for_timeout(left)  # the pause between strokes: the input, not a wait for the app
    page.mouse.down()
    for fx, fy in points[1:]:
        page.mouse.move(x0 + fx * box["width"], y0 + fy * box["height"], steps=12)
    page.mouse.up()
    return time.monotonic()


def prediction(page) -> str:
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Prediction")
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


PREDICTION_SHOWN = """() => [...document.querySelectorAll('[data-testid="stMetric"]')]
    .some(m => m.innerText.includes('Prediction') && !m.innerText.includes('—'))"""

DIGITS = {
    # a "7": top bar then a long diagonal, drawn small in the upper left
    "7": [[(0.10, 0.10), (0.45, 0.10), (0.25, 0.55)]],
    # a "1": one slanted stroke, large
    "1": [[(0.55, 0.10), (0.45, 0.90)]],
    # a "0": an oval, off-centre to the right
    "0": [[(0.70, 0.20), (0.58, 0.30), (0.55, 0.55), (0.62, 0.80), (0.75, 0.82), (0.85, 0.60), (0.84, 0.32),
           (0.70, 0.20)]],
}

# ------------------------------------------------------------------------------------------------ the Draw page
PAD = 'canvas[data-testid="drawingPad"]'  # the drawing pad (mnistlab/ui/drawpad.py), inside its shadow root
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'

# Digits of two strokes, each of whose first stroke alone reads as another digit (a "6", a "2"), so a lost second
# stroke shows in the prediction. The second starts at the top right, where the old canvas hid a toolbar until the
# pointer had hovered there a moment.
TWO_STROKES = {
    "4": [[(0.30, 0.12), (0.20, 0.60), (0.70, 0.60)], [(0.62, 0.06), (0.60, 0.92)]],
    "7": [[(0.20, 0.12), (0.78, 0.12)], [(0.78, 0.12), (0.42, 0.90)]],
}


def draw(page, box, strokes, gap_ms: float) -> None:
    """A digit of several strokes, each begun ``gap_ms`` after the one before was lifted."""
    lifted = None
    for points in strokes:
        lifted = stroke(page, box, points, lifted, gap_ms)


def open_draw(browser, server: str, viewport: dict | None = None):
    """A new page on Draw, once its pad is shown and the app has finished its first run; (page, pad locator)."""
    page = browser.new_page(viewport=viewport or {"width": 1400, "height": 1000})
    page.goto(f"{server}/Draw")
    pad = page.locator(PAD)
    pad.wait_for(timeout=WAIT_MS)
    page.wait_for_selector(IDLE, timeout=WAIT_MS)
    return page, pad


def wait_for_prediction(page, digit: str) -> None:
    """Wait until the prediction reads ``digit`` (WAIT_MS guards a hang); a failure says what it read instead."""
    shows = """(digit) => [...document.querySelectorAll('[data-testid="stMetric"]')]
        .some(m => m.textContent.includes('Prediction')
                   && m.querySelector('[data-testid="stMetricValue"]').textContent.trim() === digit)"""
    try:
        page.wait_for_function(shows, arg=digit, timeout=WAIT_MS)
    except Exception:
        raise AssertionError(f"the prediction reads {prediction(page)!r}, not {digit!r}") from None


def ink(page, points) -> list[float]:
    """How bright the pad is (0-255, the brightest pixel within 3 px) at each point, given as fractions of it."""
    return page.locator(PAD).evaluate("""(canvas, points) => points.map(([fx, fy]) => {
        const x = Math.round(fx * canvas.width), y = Math.round(fy * canvas.height);
        const d = canvas.getContext('2d').getImageData(Math.max(0, x - 3), Math.max(0, y - 3), 7, 7).data;
        let best = 0;
        for (let i = 0; i < d.length; i += 4) best = Math.max(best, d[i]);
        return best;
    })""", [list(p) for p in points])


def clear_pad(page) -> None:
    """The pad's Clear; returns once the app says to draw a digit again."""
    page.get_by_role("button", name="Clear").click()
    page.wait_for_function(f"() => !({PREDICTION_SHOWN})()", timeout=WAIT_MS)
