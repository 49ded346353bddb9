"""The README's screenshots: every page at desktop and phone width, in a real browser, as a student and a teacher see
them in a lesson (a finished run, one training, a digit drawn).

    python scripts/screenshots.py            # the pages, then the features
    python scripts/screenshots.py --pages    # docs/screenshots/<page>-<desktop|phone>.png
    python scripts/screenshots.py --features # docs/screenshots/feature-<name>.png, one teaching feature each

Needs what the browser tests need (Chromium, playwright, MNIST cached). Each page image is the top of the page (one
screen), halved and reduced to a 64-colour palette, so the twelve stay small in the repository. Each feature image
is that feature's own element, as a student leaves it after using it (a digit drawn, a step taken, a unit pointed
at), reduced the same way. --features alone seeds a smaller run, so that it takes a minute or two.
"""

import argparse
import io
import re
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnistlab import arch, checkpoint, convstep, data, drawing, receptive, train  # noqa: E402
from mnistlab.jobs import JobManager  # noqa: E402
from mnistlab.ui import robustness  # noqa: E402
from tests.browser import (PAD, PREDICTION_SHOWN, chromium, served, settle, stroke,  # noqa: E402
                           wait_for_prediction)
from tests.test_browser_photo import UPLOAD  # noqa: E402
from tests.test_browser_robustness import HELD  # noqa: E402
from tests.test_photo import paper_photo  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
SIZES = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
SECRET = "screenshots"
WAIT = 300_000
SEVEN = [(0.15, 0.2), (0.8, 0.2), (0.4, 0.9)]


def seed(runs: Path, epochs: int = 2, images: int = 5000) -> None:
    mnist = data.load(data.default_root(), fetch=False)
    manager = JobManager(runs, load_data=lambda: mnist)
    run_id = manager.submit(arch.preset("best"), train.TrainConfig(epochs=epochs, train_subset=images, batch_size=64),
                            owner="screens", student_name="Ada")
    manager.wait(run_id, timeout=WAIT)
    manager.close()


def reduce(png: bytes, halve: bool) -> Image.Image:
    shot = Image.open(io.BytesIO(png))
    if halve:
        shot = shot.resize((shot.width // 2, shot.height // 2), Image.LANCZOS)
    return shot.convert("RGB").quantize(64, method=Image.Quantize.MEDIANCUT)


def keep(shot: Image.Image, name: str) -> None:
    path = OUT / f"{name}.png"
    shot.save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")


def save(page, name: str, phone: bool) -> None:
    keep(reduce(page.screenshot(), not phone), f"{name}-{'phone' if phone else 'desktop'}")


def shoot(browser, url: str, size: str) -> None:
    phone = size == "phone"
    context = browser.new_context(viewport=SIZES[size], device_scale_factor=1, is_mobile=phone, has_touch=phone)
    page = context.new_page()

    def visit(path: str) -> None:
        page.goto(f"{url}/{path}")
        settle(page)

    visit("")
    field = page.get_by_label("Your name")
    field.fill("Ben")
    field.press("Enter")
    settle(page)
    save(page, "home", phone)
    visit("Architecture")
    save(page, "architecture", phone)
    visit("Train")
    page.get_by_label("epochs", exact=True).fill("20")
    page.get_by_text("quick mode").click()
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(re.compile(r"Epoch 2/20")).wait_for(timeout=WAIT)
    settle(page)
    save(page, "train", phone)
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Cancelled").wait_for(timeout=WAIT)
    visit("Draw")
    canvas = page.locator(PAD)
    canvas.scroll_into_view_if_needed()
    stroke(page, canvas.bounding_box(), SEVEN)
    settle(page)
    page.get_by_text(re.compile(r"\d+ % sure|sure", re.I)).first.wait_for(timeout=WAIT)
    save(page, "draw", phone)
    visit("Runs")
    save(page, "runs", phone)
    visit("Teacher")
    page.get_by_label("Teacher secret").fill(SECRET)
    page.get_by_role("button", name="Unlock").click()
    page.get_by_text("All runs").wait_for(timeout=WAIT)
    settle(page)
    save(page, "teacher", phone)
    context.close()


# ------------------------------------------------------------------------------------------------ the features
# Tall, so that every feature fits on one screen: Streamlit scrolls its own main column, not the document, and a
# picture of an element only partly on screen is cut off there.
FEATURE_VIEW = {"width": 1000, "height": 2400}
FEATURE_SCALE = 1.5  # taken at 1.5 x and halved: three quarters of the size on screen, text still sharp, files small
# The page's header and sidebar hidden: nothing lies over the feature, and its column is as wide as the screen.
BARE = """document.addEventListener('DOMContentLoaded', () => {
    const style = document.createElement('style');
    style.textContent = '[data-testid="stHeader"], [data-testid="stSidebar"] { display: none !important; }';
    document.head.append(style);
});"""
ONNX_READY = "ONNX file (.onnx)"
LOADED = "() => [...document.images].every(i => i.complete && i.naturalWidth > 0)"  # st.image loads after the run


def save_feature(element, name: str) -> None:
    """Just ``element``, once every image on the page has loaded."""
    element.scroll_into_view_if_needed()
    element.page.mouse.move(0, 0)
    element.page.wait_for_function(LOADED)
    keep(reduce(element.screenshot(animations="disabled"), True), f"feature-{name}")


def clip(page, *parts) -> bytes:
    """The smallest rectangle round ``parts`` (locators), the first scrolled to the top of the screen."""
    parts[0].evaluate("(e) => e.scrollIntoView({block: 'start', behavior: 'instant'})")  # no smooth scroll to wait out
    page.mouse.move(0, 0)  # no hover effect on the picture
    boxes = [p.bounding_box() for p in parts]
    x0, y0 = min(b["x"] for b in boxes) - 8, min(b["y"] for b in boxes) - 8
    x1, y1 = max(b["x"] + b["width"] for b in boxes) + 8, max(b["y"] + b["height"] for b in boxes) + 8
    page.wait_for_function(LOADED)
    return page.screenshot(clip={"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}, animations="disabled")


def save_clip(page, name: str, *parts) -> None:
    keep(reduce(clip(page, *parts), True), f"feature-{name}")


def save_stitched(page, name: str, *spans) -> None:
    """Several clips, one above the other, a grey line between them where the page's part in between is left out."""
    shots = [reduce(clip(page, *span), True).convert("RGB") for span in spans]
    gap = 12
    whole = Image.new("RGB", (max(s.width for s in shots), sum(s.height for s in shots) + gap * (len(shots) - 1)),
                      "white")
    y = 0
    for i, shot in enumerate(shots):
        if i:
            whole.paste((200, 200, 200), (0, y - gap // 2 - 1, whole.width, y - gap // 2 + 1))
        whole.paste(shot, (0, y))
        y += shot.height + gap
    keep(whole.quantize(64, method=Image.Quantize.MEDIANCUT), f"feature-{name}")


def on_draw(context, url: str):
    page = context.new_page()
    page.goto(f"{url}/Draw")
    page.locator(PAD).wait_for()
    settle(page)
    return page


def expand(page, title: str, shown: str) -> None:
    """Open the Draw page's expander whose title begins with ``title``; returns once ``shown`` is on the page."""
    page.get_by_text(title).click()
    page.locator(shown).first.wait_for()
    settle(page)


def tap(page, canvas, row: int, col: int, size: int) -> None:
    """A click on unit (row, col) of a canvas that shows a size x size map."""
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.click(box["x"] + (col + 0.5) / size * box["width"], box["y"] + (row + 0.5) / size * box["height"])


def conv_step(page) -> None:
    """The step-through two cells before the strongest output of its channel, then two steps on, onto it."""
    sent = page.locator(PAD).evaluate("(canvas) => canvas.toDataURL('image/png')")
    image = drawing.to_mnist(drawing.image_from_data_url(drawing.PNG_DATA_URL + sent.split(",", 1)[1]))
    expand(page, "Step through the first convolution", '[data-testid="convStep"]')
    stepper = page.locator('[data-testid="convStep"]')
    fc = convstep.first_conv(checkpoint.load(checkpoint.shipped()["best"]).model())  # the Draw page's first model
    strongest = int(convstep.channel_maps(fc, image, convstep.most_active(fc, image)).after[-1].argmax())
    start = max(strongest - 2, 0)
    tap(page, stepper.locator("canvas.out"), start // 28, start % 28, 28)
    for n in range(3):
        if n:
            stepper.get_by_role("button", name="Step ▶").click()
        page.wait_for_function("([e, n]) => +e.dataset.cell === n", arg=[stepper.element_handle(), start + n])
    save_feature(page.locator(".st-key-conv_step"), "conv-step")
    page.get_by_text("Step through the first convolution").click()  # closed: later reruns need not redraw it
    stepper.wait_for(state="detached")


def receptive_fields(page) -> None:
    """The explorer on conv 5, one unit pointed at (and pinned, so that it stays while the picture is taken)."""
    expand(page, "Receptive fields: what one unit can see", '[data-testid="rfExplorer"]')
    explorer = page.locator('[data-testid="rfExplorer"]')
    explorer.get_by_role("button", name="conv 5", exact=True).click()
    page.wait_for_function("(e) => e.dataset.layer.startsWith('conv 5')", arg=explorer.element_handle())
    size = receptive.conv_layers(arch.preset("best"))[4].size  # best is the Draw page's first model
    unit = page.locator('canvas[data-testid="rfMap"]')
    tap(page, unit, 4, 9, size)
    page.wait_for_function("(c) => c.dataset.unit === '4,9'", arg=unit.element_handle())
    save_feature(page.locator(".st-key-rf_explorer"), "receptive-field")
    page.get_by_text("Receptive fields: what one unit can see").click()
    explorer.wait_for(state="detached")


def robustness_lab(page) -> None:
    """The lab with the digit turned by 30 degrees, then nudged until the network names another digit."""
    expand(page, "How sure is it, really?", '.js-plotly-plot')
    page.wait_for_function(HELD, arg=0)
    thumb = page.locator('[data-testid="stSlider"]').filter(has_text="rotate").get_by_role("slider")
    thumb.focus()
    for _ in range(6):  # six steps of 5 degrees
        thumb.press("ArrowRight")
    page.wait_for_function(HELD, arg=30)
    page.get_by_role("button", name="Nudge my digit").click()
    page.locator('[data-testid="stMetric"]').filter(has_text="Prediction after the nudge").wait_for()
    settle(page)
    lab = page.locator(f".st-key-{robustness.KEY}lab")
    rotate_row = page.locator('[data-testid="stHorizontalBlock"]').filter(has=thumb).last
    nudge = lab.get_by_text("The smallest nudge")
    save_stitched(page, "robustness", (lab.locator("summary"), rotate_row),
                  (nudge, lab.locator('[data-testid="stAlert"]').filter(has_text="changed")))


def photo(context, url: str, folder: Path) -> None:
    """A photo of a test 7 in dark ink on unevenly lit grey paper, uploaded; the Photo column with its answer."""
    mnist = data.load(data.default_root(), fetch=False)
    Image.fromarray(paper_photo(mnist.test.images[0].numpy())).save(folder / "seven.png")
    page = on_draw(context, url)
    page.get_by_role("radio", name="Photo").click()
    upload = page.locator(UPLOAD)
    upload.wait_for(state="attached")
    upload.set_input_files(str(folder / "seven.png"))
    wait_for_prediction(page, "7")
    page.get_by_text("the red box is the crop").wait_for()
    settle(page)
    save_feature(page.locator('[data-testid="stColumn"]').filter(has=upload), "photo")
    page.close()


def other_pages(page, url: str) -> None:
    """Architecture's growth chart, the Runs page's downloads with ONNX, Home's presets, Lessons' first step."""
    page.goto(f"{url}/Architecture")
    page.locator(".st-key-rf_growth .js-plotly-plot .main-svg").first.wait_for()
    settle(page)
    save_feature(page.locator(".st-key-rf_growth"), "rf-growth")
    page.goto(f"{url}/Runs")
    page.get_by_role("button", name="Export to ONNX").click()
    ready = page.locator('[data-testid="stDownloadButton"]').filter(has_text=ONNX_READY)
    ready.wait_for()
    settle(page)
    row = page.locator('[data-testid="stHorizontalBlock"]').filter(has=ready).last
    save_feature(row, "onnx")
    lessons(page, url)
    page.set_viewport_size({**FEATURE_VIEW, "width": 1300})  # the table's notes in full
    page.goto(url)
    page.get_by_text("The presets").wait_for()
    settle(page)
    save_feature(page.locator('[data-testid="stDataFrame"]').last, "presets")


def lessons(page, url: str) -> None:
    """Step 1 of the Lessons page, from the step picker to its question (skipped, saying so, if the page fails)."""
    page.goto(f"{url}/Lessons")
    try:
        heading = page.get_by_role("heading", name=re.compile(r"^Step 1"))
        heading.wait_for()
        settle(page)
        save_clip(page, "lessons", page.locator('[data-testid="stRadio"]').filter(has_text="1. ").first,
                  page.locator('[data-testid="stExpander"]').filter(has_text="Show the answer"))
    except Exception as e:  # the page is optional here: the other pictures stand without it
        print(f"Lessons: not taken ({str(e).splitlines()[0]})")


def shoot_features(browser, url: str) -> None:
    context = browser.new_context(viewport=FEATURE_VIEW, device_scale_factor=FEATURE_SCALE)
    context.add_init_script(BARE)
    page = on_draw(context, url)
    page.locator(PAD).scroll_into_view_if_needed()
    stroke(page, page.locator(PAD).bounding_box(), SEVEN)
    page.wait_for_function(PREDICTION_SHOWN)
    settle(page)
    conv_step(page)
    receptive_fields(page)
    robustness_lab(page)
    page.close()
    with tempfile.TemporaryDirectory() as folder:
        photo(context, url, Path(folder))
    other_pages(context.new_page(), url)
    context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", action="store_true", help="only the pages")
    parser.add_argument("--features", action="store_true", help="only the features")
    args = parser.parse_args()
    pages, features = (args.pages, args.features) if args.pages or args.features else (True, True)
    OUT.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp()) / "runs"
    if pages:
        seed(runs)
    else:  # the Runs feature needs only some finished run's weights
        seed(runs, epochs=1, images=1000)
    # No file watcher: a file edited while the script runs would put a "source file changed" prompt on every page.
    env = {"MNISTLAB_TEACHER_SECRET": SECRET, "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}
    with served(runs, data.default_root(), env=env) as server, chromium() as browser:
        if pages:
            for size in SIZES:
                shoot(browser, server.url, size)
        if features:
            shoot_features(browser, server.url)


if __name__ == "__main__":
    main()
