"""How fast each page appears in a real browser: `streamlit run app.py` headless, Chromium driven by Playwright.

    python benchmarks/page_render.py [--loads 5] >> benchmarks/results/page_render.jsonl

For each page, a new browser context (a student opening a link: a new session, no cache of this session) loads the
page's address; two times from the moment `goto` is called: the page's title shown (what the student sees first)
and the app idle (every element drawn, the script finished). Median and max over ``--loads`` loads, first with the
server idle, then while a training job (quick mode, many epochs) runs on the same CPU. The runs folder is seeded
with one finished quick run, so that Runs and Draw have a run to show. Target: ≤ 1.5 s for the title.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import emit, machine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mnistlab import arch, data, train  # noqa: E402
from mnistlab.jobs import JobManager  # noqa: E402
from tests.browser import chromium, served, settle  # noqa: E402

PAGES = {"Home": "MNIST Lab", "Architecture": "Architecture", "Train": "Train", "Draw": "Draw a digit",
         "Runs": "Runs", "Teacher": "Teacher view"}


def seed(runs: Path, mnist) -> None:
    manager = JobManager(runs, load_data=lambda: mnist)
    run_id = manager.submit(arch.preset("tiny"), train.TrainConfig(epochs=1, train_subset=1000, batch_size=100),
                            owner="benchmark", student_name="benchmark")
    manager.wait(run_id, timeout=600)
    manager.close()


def load_once(browser, url: str, path: str, title: str) -> tuple[float, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    t0 = time.perf_counter()
    page.goto(f"{url}/{path}")
    page.get_by_role("heading", name=title, exact=False).first.wait_for(timeout=120_000)
    shown = time.perf_counter() - t0
    settle(page)
    idle = time.perf_counter() - t0
    context.close()
    return shown, idle


def start_training(browser, url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/Train")
    settle(page)
    page.get_by_label("epochs", exact=True).fill("30")
    page.get_by_text("quick mode").click()
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Epoch 1/30").wait_for(timeout=120_000)
    return context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    mnist = data.load(data.default_root(), fetch=False)
    runs = Path(tempfile.mkdtemp()) / "runs"
    seed(runs, mnist)
    with served(runs, data.default_root(), env={"MNISTLAB_TEACHER_SECRET": "benchmark"}) as server, \
            chromium() as browser:
        load_once(browser, server.url, "", "MNIST Lab")  # the server's first session imports torch and the pages
        for while_training in (False, True):
            trainer = start_training(browser, server.url) if while_training else None
            for path, title in PAGES.items():
                times = [load_once(browser, server.url, path, title) for _ in range(args.loads)]
                shown, idle = [t for t, _ in times], [t for _, t in times]
                emit({"measure": "first render", "page": path, "while_training": while_training,
                      "loads": args.loads, "title_median_s": round(statistics.median(shown), 3),
                      "title_max_s": round(max(shown), 3), "idle_median_s": round(statistics.median(idle), 3),
                      "idle_max_s": round(max(idle), 3), **machine()})
            if trainer is not None:
                trainer.close()


if __name__ == "__main__":
    main()
