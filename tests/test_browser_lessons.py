"""Lessons in a real browser (see browser.py): a student opens a step's network and recipe and finds them on the
Architecture and Train pages; a teacher's fixing link shows those controls disabled, survives a reload and a page
switch, and lets go when the student leaves the lesson."""

import re

import pytest

from mnistlab import arch, lessons

from .browser import WAIT_MS, settle

VIEWPORT = {"width": 1400, "height": 1000}
FIXED = "fixed by the lesson"


def student(browser, url: str, ready: str):
    """A new student (browser context) on ``url``, once it shows ``ready`` and has settled."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.goto(url)
    page.get_by_text(ready).first.wait_for(timeout=WAIT_MS)
    settle(page)
    return context, page


def params_shown(page) -> str:
    metric = page.locator('[data-testid="stMetric"]', has_text="Parameters").first
    return metric.locator('[data-testid="stMetricValue"]').inner_text()


@pytest.mark.slow
def test_a_student_opens_a_step_and_finds_its_network_and_recipe(server, browser):
    step = lessons.step(5)
    context, page = student(browser, f"{server}/Lessons?lesson=5", f"Step 5: {step.title}")
    page.get_by_role("button", name="Open this network and recipe").click()
    page.get_by_text("See it on Architecture").click()
    page.get_by_text("Layer by layer").wait_for(timeout=WAIT_MS)
    settle(page)
    assert params_shown(page) == f"{arch.count_params(step.spec):,}"
    widths = page.get_by_label("conv 2 width", exact=True)
    assert [widths.nth(i).input_value() for i in range(2)] == ["16", "32"]  # best's blocks 1 and 2
    assert not widths.first.is_disabled()  # opened, not fixed: the student's to change
    page.get_by_text("Train this network").click()
    page.get_by_text(f"Network: {step.spec.name}").wait_for(timeout=WAIT_MS)
    settle(page)
    assert page.get_by_role("spinbutton", name="learning rate").input_value() == f"{step.config.lr:.3f}"
    assert page.get_by_role("spinbutton", name="epochs").input_value() == str(lessons.EPOCHS)
    context.close()


@pytest.mark.slow
def test_a_fixing_link_shows_the_controls_disabled_until_the_student_leaves(server, browser):
    step = lessons.step(2)
    context, page = student(browser, f"{server}/Architecture?lesson=2&controls=fixed", FIXED)
    page.get_by_text("Layer by layer").wait_for(timeout=WAIT_MS)
    widths = page.get_by_label("conv 1 width", exact=True)
    widths.nth(2).wait_for(timeout=WAIT_MS)  # block 3's: the editor has rendered
    assert widths.count() == 3 and all(widths.nth(i).is_disabled() for i in range(3))
    assert page.get_by_role("button", name="+ add block").is_disabled()
    assert params_shown(page) == f"{arch.count_params(step.spec):,}"

    page.reload()  # the address carries the lesson: a reload (a new session) is still fixed
    page.get_by_text(FIXED).wait_for(timeout=WAIT_MS)
    settle(page)
    assert page.get_by_label("conv 1 width", exact=True).first.is_disabled()

    page.locator('[data-testid="stSidebarNav"]').get_by_text("Train", exact=True).click()
    page.get_by_text(f"Network: {step.spec.name}").wait_for(timeout=WAIT_MS)
    settle(page)
    assert page.get_by_text(FIXED).count() == 1
    assert all(page.get_by_role("spinbutton", name=name).is_disabled() for name in ("epochs", "learning rate"))
    page.wait_for_url(re.compile(r"lesson=2.*controls=fixed|controls=fixed.*lesson=2"), timeout=WAIT_MS)

    page.get_by_role("button", name="Leave the lesson").click()
    page.get_by_text(FIXED).wait_for(state="detached", timeout=WAIT_MS)
    settle(page)
    assert not page.get_by_role("spinbutton", name="epochs").is_disabled()
    assert "controls=" not in page.url
    context.close()
