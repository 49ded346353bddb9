"""A student in a real browser: `streamlit run app.py` headless, driven by Playwright in Chromium (see browser.py)."""

import re
import signal

import pytest

from mnistlab.store import RunStore

from .browser import WAIT_MS, settle, start_server
from .conftest import HANG


@pytest.mark.slow
def test_start_a_quick_run_and_see_the_curves(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/Train")
    settle(page)
    page.get_by_text("quick mode").click()
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(re.compile(r"Epoch \d+/\d+, batch \d+/\d+")).wait_for(timeout=WAIT_MS)  # training, in words
    page.wait_for_selector(".js-plotly-plot", timeout=WAIT_MS)  # the curves appear after the first epoch
    assert page.locator(".js-plotly-plot").count() >= 1
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("text=Cancelled", timeout=WAIT_MS)
    page.close()


@pytest.mark.slow
def test_a_server_killed_mid_training_comes_back_with_the_run_interrupted(browser, tmp_path, data_root):
    runs = tmp_path / "runs"
    proc, url = start_server(runs, data_root)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/Train")
        settle(page)
        page.get_by_label("epochs", exact=True).fill("30")
        page.get_by_text("quick mode").click()
        page.get_by_role("button", name="Start training").click()
        # The page's progress line says when two epochs are done and a batch of the third is: mid-epoch 3.
        page.get_by_text(re.compile(r"Epoch 3/30, batch [1-9]")).wait_for(timeout=WAIT_MS)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=HANG) == -signal.SIGKILL
        page.close()
    finally:
        proc.kill()
        proc.wait()
    killed = RunStore(runs).runs()[0]  # a store that is only read takes no server's lock and recovers nothing
    assert killed.status == "running" and killed.epochs_done >= 2  # what the dead server left behind

    proc, url = start_server(runs, data_root)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/Runs")
        page.wait_for_selector("text=Interrupted: The server stopped during epoch", timeout=WAIT_MS)
        page.close()
        after = RunStore(runs).get(killed.id)
        assert after.status == "interrupted" and after.epochs_done == killed.epochs_done >= 2
        assert f"during epoch {killed.epochs_done + 1}" in after.error
        assert after.history == killed.history
        assert RunStore(runs).integrity() == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=HANG)
