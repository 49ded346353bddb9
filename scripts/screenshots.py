"""The README's screenshots: every page at desktop and phone width, in a real browser, as a student and a teacher see
them in a lesson (a finished run, one training, a digit drawn).

    python scripts/screenshots.py            # writes docs/screenshots/<page>-<desktop|phone>.png

Needs what the browser tests need (Chromium, playwright, MNIST cached). Each image is the top of the page (one
screen), halved and reduced to a 64-colour palette, so the twelve stay small in the repository.
"""

import io
import re
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnistlab import arch, data, train  # noqa: E402
from mnistlab.jobs import JobManager  # noqa: E402
from tests.browser import PAD, chromium, served, settle, stroke  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
SIZES = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
SECRET = "screenshots"
WAIT = 300_000
SEVEN = [(0.15, 0.2), (0.8, 0.2), (0.4, 0.9)]


def seed(runs: Path) -> None:
    mnist = data.load(data.default_root(), fetch=False)
    manager = JobManager(runs, load_data=lambda: mnist)
    run_id = manager.submit(arch.preset("best"), train.TrainConfig(epochs=2, train_subset=5000, batch_size=64),
                            owner="screens", student_name="Ada")
    manager.wait(run_id, timeout=WAIT)
    manager.close()


def save(page, name: str, phone: bool) -> None:
    shot = Image.open(io.BytesIO(page.screenshot()))
    if not phone:
        shot = shot.resize((shot.width // 2, shot.height // 2), Image.LANCZOS)
    shot = shot.convert("RGB").quantize(64, method=Image.Quantize.MEDIANCUT)
    path = OUT / f"{name}-{'phone' if phone else 'desktop'}.png"
    shot.save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")


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


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp()) / "runs"
    seed(runs)
    with served(runs, data.default_root(), env={"MNISTLAB_TEACHER_SECRET": SECRET}) as server, \
            chromium() as browser:
        for size in SIZES:
            shoot(browser, server.url, size)


if __name__ == "__main__":
    main()
