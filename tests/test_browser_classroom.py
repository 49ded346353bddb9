"""A lesson in real browsers: students in their own browser contexts (their own cookies), and a teacher, on one server.

Each test names the classroom defect it guards (the numbers of the classroom UX list in the issue tracker).
"""

import re

import pytest

from .browser import PAD, WAIT_MS, served, settle

SECRET = "chalk-and-talk"
LONG = "30"  # epochs: a quick run that is still training when the test looks at it (it is always cancelled)


@pytest.fixture(scope="module")
def classroom(tmp_path_factory, data_root):
    """A server with a teacher secret; its `Server` (URL and log)."""
    with served(tmp_path_factory.mktemp("runs"), data_root, env={"MNISTLAB_TEACHER_SECRET": SECRET}) as server:
        yield server


def student(browser, url: str, name: str, path: str = "Train"):
    """A new browser (context: its own cookies) on ``path``, the student's name typed on the Train page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/{path}")
    settle(page)
    field = page.get_by_label("Your name")
    field.fill(name)
    field.press("Enter")
    # remembered by the browser once the app has taken it
    page.wait_for_function(f"() => document.cookie.includes('mnistlab_name={name}')", timeout=WAIT_MS)
    return context, page


def start_long_quick_run(page) -> None:
    page.get_by_label("epochs", exact=True).fill(LONG)
    page.get_by_text("quick mode").click()
    page.get_by_role("button", name="Start training").click()


def toggle_on(page, label: str) -> bool:
    return page.locator('[data-testid="stCheckbox"]', has_text=label).locator("input").is_checked()


@pytest.mark.slow
def test_a_reload_or_a_new_tab_is_the_same_student_with_the_same_settings(classroom, browser):
    """(3) a reload lost the student: their job, their name, the one-job limit; (4) the Train settings reset after
    another page was visited, so the next Start launched a full run; (5) no curve until the first epoch ended;
    (13) students saw Streamlit's Deploy button."""
    context, page = student(browser, classroom.url, "Ada")
    assert page.get_by_role("button", name="Deploy").count() == 0
    start_long_quick_run(page)
    page.get_by_text(re.compile(rf"Epoch \d+/{LONG}")).wait_for(timeout=WAIT_MS)
    page.wait_for_function("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .some(plot => (plot.data || []).some(trace => trace.name === 'train loss (batches, smoothed)'))""",
                           timeout=WAIT_MS)  # the curve that moves within an epoch is drawn

    # (4) another page and back, by the sidebar: the settings of the run just started are still there
    page.get_by_role("link", name="Draw").click()
    page.locator(PAD).wait_for(timeout=WAIT_MS)
    page.get_by_role("link", name="Train").click()
    page.get_by_text(re.compile(rf"Epoch \d+/{LONG}")).wait_for(timeout=WAIT_MS)
    assert page.get_by_label("epochs", exact=True).input_value() == LONG
    assert toggle_on(page, "quick mode")

    # (3) a reload: still Ada, still her job, and she can still cancel it
    page.reload()
    page.get_by_text(re.compile(rf"Epoch \d+/{LONG}")).wait_for(timeout=WAIT_MS)
    assert page.get_by_label("Your name").input_value() == "Ada"
    assert page.get_by_label("epochs", exact=True).input_value() == LONG and toggle_on(page, "quick mode")

    # a new tab of the same browser: the same student, so a second job is refused
    tab = context.new_page()
    tab.goto(f"{classroom.url}/Train")
    tab.get_by_text(re.compile(rf"Epoch \d+/{LONG}")).wait_for(timeout=WAIT_MS)
    tab.get_by_role("button", name="Start training").click()
    tab.get_by_text(re.compile(r"Not started.*already", re.I)).wait_for(timeout=WAIT_MS)
    tab.get_by_role("button", name="Cancel").click()
    page.get_by_text(re.compile(r"Cancelled after")).wait_for(timeout=WAIT_MS)  # seen by the first tab too
    context.close()


def open_teacher_page(browser, url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{url}/Teacher")
    page.get_by_label("Teacher secret").fill(SECRET)
    page.get_by_role("button", name="Unlock").click()
    page.get_by_role("heading", name="All runs").wait_for(timeout=WAIT_MS)
    return context, page


def queue_row(page, name: str):
    return page.locator('[data-testid="stHorizontalBlock"]').filter(has_text=re.compile(rf"^{name} · ")).last


@pytest.mark.slow
def test_the_teacher_page_is_live_cancels_with_a_reason_and_deletes_only_after_confirming(classroom, browser):
    """(1) the teacher page was frozen at the moment it opened; (8) it flooded the log with a traceback every second
    while a job waited; (9) a cancelled student saw no who or why; (2) Delete had no confirmation and a run chosen in
    advance."""
    teacher_context, teacher = open_teacher_page(browser, classroom.url)
    ben_context, ben = student(browser, classroom.url, "Ben")
    cleo_context, cleo = student(browser, classroom.url, "Cleo")
    start_long_quick_run(ben)
    ben.get_by_text(re.compile(rf"Epoch \d+/{LONG}")).wait_for(timeout=WAIT_MS)
    start_long_quick_run(cleo)
    cleo.get_by_text(re.compile(r"Queued: position 1")).wait_for(timeout=WAIT_MS)

    # (1) both jobs appear on the page the teacher opened before they existed, each with its own Cancel
    queue_row(teacher, "Ben").filter(has_text="training now").wait_for(timeout=WAIT_MS)
    queue_row(teacher, "Cleo").filter(has_text="waiting, place 1").wait_for(timeout=WAIT_MS)
    # (8) the page has redrawn the waiting job every second until Ben's first epoch ended: the log stayed clean
    ben.get_by_text(re.compile(rf"Epoch 2/{LONG}")).wait_for(timeout=WAIT_MS)
    queue_row(teacher, "Cleo").filter(has_text="waiting, place 1").wait_for(timeout=WAIT_MS)
    log = "".join(classroom.output.log)
    assert "Traceback" not in log and "ArrowTypeError" not in log, log[-3000:]

    # (9) the teacher cancels both; each student is told who did it
    queue_row(teacher, "Cleo").get_by_role("button", name="Cancel").click()
    cleo.get_by_text(re.compile(r"cancelled by the teacher", re.I)).wait_for(timeout=WAIT_MS)
    queue_row(teacher, "Ben").get_by_role("button", name="Cancel").click()
    ben.get_by_text(re.compile(r"cancelled by the teacher", re.I)).wait_for(timeout=WAIT_MS)
    teacher.get_by_text("Nothing is training or waiting").wait_for(timeout=WAIT_MS)

    # (2) nothing is chosen for the teacher and nothing is deleted before a confirmation
    teacher.get_by_placeholder("Choose a run to delete").wait_for(timeout=WAIT_MS)
    assert teacher.get_by_role("button", name="Yes, delete it").count() == 0
    teacher.get_by_placeholder("Choose a run to delete").click()
    teacher.get_by_role("option", name=re.compile("Ben")).click()
    teacher.get_by_text(re.compile(r"Delete .*Ben.* for good\?")).wait_for(timeout=WAIT_MS)
    teacher.get_by_role("button", name="Yes, delete it").click()
    teacher.get_by_text(re.compile(r"Deleted .*Ben")).wait_for(timeout=WAIT_MS)
    teacher.get_by_placeholder("Choose a run to delete").click()
    options = teacher.get_by_role("option")
    options.first.wait_for(timeout=WAIT_MS)
    names = options.all_inner_texts()
    assert not any("Ben" in n for n in names) and any("Cleo" in n for n in names), names
    for context in (teacher_context, ben_context, cleo_context):
        context.close()
