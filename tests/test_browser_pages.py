"""The Architecture and Runs pages in a real browser, and the standalone file a student downloads from Runs (see
browser.py). One server for the module, on a runs folder seeded before it starts.

Each test says in its docstring which defect of the classroom UX list it guards (its number there)."""

import dataclasses
import re
import shutil
import subprocess
import sys
import time
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from mnistlab import analysis, arch, checkpoint, rules
from mnistlab.jobs import JobManager
from mnistlab.store import Run

from .browser import WAIT_MS, running_server, settle
from .conftest import HANG, QUICK, held

VIEWPORT = {"width": 1400, "height": 1000}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, mnist):
    """A runs folder with two quick runs trained here (3 and 2 epochs: curves), one cancelled before it started (no
    accuracy), and one with the shipped ``tiny`` weights (it reads digits reliably) recorded as a quick run, so
    that no run counts for the challenge."""
    folder = tmp_path_factory.mktemp("runs")
    load, release = held(mnist)
    manager = JobManager(folder, load_data=load)
    try:
        ids = {"ann": manager.submit(arch.preset("lean"), dataclasses.replace(QUICK, epochs=3),
                                     owner="ann", student_name="Ann")}
        ids["bob"] = manager.submit(arch.preset("seed"), QUICK, owner="bob", student_name="Bob")
        manager.cancel(ids["bob"], owner="bob")  # the worker is held on Ann's run: Bob's never starts
        release.set()
        assert manager.wait(ids["ann"], timeout=HANG).status == "finished"
        ids["cy"] = manager.submit(arch.preset("tiny"), dataclasses.replace(QUICK, epochs=2),
                                   owner="cy", student_name="Cy")
        assert manager.wait(ids["cy"], timeout=HANG).status == "finished"
        _shipped_run(manager, "tiny", "Tess")
    finally:
        release.set()
        manager.close()
    return folder


def _shipped_run(manager: JobManager, preset: str, student: str) -> str:
    """A finished quick run whose weights are the shipped preset's, as the worker would have left it."""
    shipped = checkpoint.load(checkpoint.shipped()[preset])
    spec = shipped.spec
    run_id = f"shipped-{preset}"
    manager.store.add(Run(id=run_id, owner="someone", student_name=student, name=spec.name, spec=spec.to_dict(),
                          config={**shipped.config, "train_subset": 5000}, params=arch.count_params(spec),
                          epochs=len(shipped.history), submitted_at=time.time()))
    manager.store.started(run_id)
    for epoch in shipped.history:
        manager.store.add_epoch(run_id, epoch)
    path = manager.store.checkpoint_path(run_id)
    shutil.copy(checkpoint.shipped()[preset], path)
    manager.store.ended(run_id, "finished", checkpoint=str(path))
    return run_id


@pytest.fixture(scope="module")
def app(seeded, data_root):
    """The app's URL, its server on the seeded runs folder."""
    with running_server(seeded, data_root) as url:
        yield url


def choose(page, label: str, option: str) -> None:
    """Pick the option containing ``option`` in the select box labelled ``label``, typing it as a filter (a list
    opened by a click or a key alone does not always stay open while the page settles)."""
    box = page.get_by_role("combobox", name=label, exact=True)
    box.click()
    box.press_sequentially(option)
    page.locator("[role=option]", has_text=option).click()
    settle(page)


def open_page(browser, url: str, ready: str | re.Pattern):
    """A new browser context (a student of their own) on ``url``, once the page shows ``ready`` (text that appears
    when it has run to its end) and the app has settled."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.goto(url)
    page.get_by_text(ready).first.wait_for(timeout=WAIT_MS)
    settle(page)
    return context, page


RUNS_READY = "Click a cell to see its test images"  # the newest run's confusion matrix: the page's last part
ARCHITECTURE_READY = "Layer by layer"


def digit_png(mnist, path, digit: int, on_paper: bool = False):
    """MNIST test digit ``digit`` drawn small (60 px) near the top left of a 280x280 image: light on black, or dark
    ink on white paper."""
    index = next(i for i in range(1000) if int(mnist.test.labels[i]) == digit)
    canvas = Image.new("L", (280, 280))
    canvas.paste(Image.fromarray(mnist.test.images[index].numpy()).resize((60, 60), Image.Resampling.BICUBIC),
                 (10, 15))
    pixels = np.asarray(canvas)
    Image.fromarray(255 - pixels if on_paper else pixels).save(path)
    return path


# ------------------------------------------------------------------------------------------------ Runs: downloads
@pytest.mark.slow
def test_the_standalone_download_reads_a_small_off_centre_7_and_says_when_it_inverts(app, browser, mnist, tmp_path):
    """(12) The standalone file only resized an image to 28x28: a small off-centre 7 was read as a 1, and dark ink
    on white paper was read wrong without a word. Now it prepares an image as the Draw page does, and says when it
    inverts one."""
    context, page = open_page(browser, f"{app}/Runs", RUNS_READY)
    choose(page, "Run", "shipped-tiny")
    files = {}
    for button in ("Standalone PyTorch file", "Checkpoint (.pt)"):
        with page.expect_download(timeout=WAIT_MS) as download:
            page.get_by_role("button", name=button).click()
        files[button] = tmp_path / download.value.suggested_filename
        download.value.save_as(files[button])
    context.close()
    digit_png(mnist, tmp_path / "seven.png", 7)
    digit_png(mnist, tmp_path / "paper.png", 3, on_paper=True)

    out = subprocess.run([sys.executable, "-I", str(files["Standalone PyTorch file"]), str(files["Checkpoint (.pt)"]),
                          "seven.png", "paper.png"], cwd=tmp_path, capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^seven\.png: 7 \(", out.stdout, re.M), out.stdout
    assert re.search(r"^paper\.png: 3 \(", out.stdout, re.M), out.stdout
    assert re.search(r"^paper\.png: .*inverted", out.stdout, re.M), out.stdout
    assert not re.search(r"^seven\.png: .*inverted", out.stdout, re.M), out.stdout


# ------------------------------------------------------------------------------------------------ Architecture
BUDGET_LABEL_AND_BAR = """chart => {
    const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
    const label = [...chart.querySelectorAll('.annotation-text')].find(t => t.textContent.includes('budget'));
    return {label: box(label), bar: box(chart.querySelector('.bars .point path')),
            chart: box(chart.querySelector('svg.main-svg')),
            count: chart.querySelector('.bars .point text')?.textContent};
}"""


def budget_label_is_readable(page, params: int) -> None:
    """Once the budget bar shows ``params``: its label lies inside the chart, clear of the bar."""
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    chart.locator(".bars .point text", has_text=f"{params:,}").wait_for(timeout=WAIT_MS)
    shapes = chart.evaluate(BUDGET_LABEL_AND_BAR)
    (l0, t0, r0, b0), (l1, t1, r1, b1), (cl, ct, cr, cb) = shapes["label"], shapes["bar"], shapes["chart"]
    assert cl <= l0 and r0 <= cr and ct <= t0 and b0 <= cb, shapes  # not cut off
    assert r0 <= l1 or r1 <= l0 or b0 <= t1 or b1 <= t0, shapes  # not covered by the bar


@pytest.mark.slow
def test_an_error_shows_in_the_block_that_caused_it_and_the_budget_label_stays_readable(app, browser):
    """(11) The over-200k-parameters error appeared under the general controls, far from the block just widened;
    past the budget, the red bar covered its "20,000 budget" label."""
    context, page = open_page(browser, f"{app}/Architecture", ARCHITECTURE_READY)
    best = arch.preset("best").to_dict()
    budget_label_is_readable(page, arch.count_params(arch.preset("best")))
    blocks = [dict(b) for b in best["blocks"]]
    blocks[1]["widths"] = [256, *blocks[1]["widths"][1:]]
    wide = arch.ArchSpec.from_dict({**best, "blocks": blocks})  # valid; its second conv at 256 too is not
    for label in ("conv 1 width", "conv 2 width"):  # block 2's: each label's second field
        field = page.get_by_label(label, exact=True).nth(1)
        field.fill("256")
        field.press("Enter")
        settle(page)
    assert arch.count_params(wide) > 5 * rules.PARAM_LIMIT
    budget_label_is_readable(page, arch.count_params(wide))  # the last valid network, far past the budget

    error = page.locator('[data-testid="stAlert"]', has_text=f"over the limit of {arch.MAX_PARAMS:,}")
    assert error.count() == 1
    block = page.locator('[data-testid="stVerticalBlock"]', has=page.get_by_text("Block 2", exact=True)).last
    assert block.locator('[data-testid="stAlert"]', has_text=f"over the limit of {arch.MAX_PARAMS:,}").count() == 1
    assert "Block 3" not in block.inner_text() and "Block 1" not in block.inner_text()  # the block's own container
    context.close()


@pytest.mark.slow
def test_a_shared_custom_network_opens_with_no_preset_chosen(app, browser):
    """(11) A shared custom network opened with the first preset chosen, and a hint to load it over the network."""
    custom = arch.ArchSpec.from_dict({**arch.preset("lean").to_dict(), "name": "custom", "dropout": 0.05})
    context, page = open_page(browser, f"{app}/Architecture?arch={urllib.parse.quote(custom.to_json())}",
                              ARCHITECTURE_READY)
    preset = page.get_by_role("combobox", name="Start from a preset", exact=True)
    assert preset.input_value() == "" and preset.get_attribute("placeholder") == "a custom network"
    assert page.get_by_text(re.compile("to replace the network below")).count() == 0
    metric = page.locator('[data-testid="stMetric"]', has_text="Parameters").locator('[data-testid="stMetricValue"]')
    assert metric.inner_text() == f"{arch.count_params(custom):,}"
    context.close()


# ------------------------------------------------------------------------------------------------ Runs
# Every text drawn on the leaderboard's canvas (the grid is drawn, not written into the page).
RECORD_LEADERBOARD_TEXT = """(() => {
    window.drawnOnLeaderboard = [];
    const fillText = CanvasRenderingContext2D.prototype.fillText;
    CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
        if (document.querySelector('[data-testid="stDataFrame"]')?.contains(this.canvas))
            window.drawnOnLeaderboard.push(String(text));
        return fillText.call(this, text, ...rest);
    };
})();"""


# The leaderboard's first column, top to bottom, from the grid's accessible table ('' where a run has none), once it
# shows the runs sorted by it, ascending (no accuracy first) or not; the grid redraws its table as it sorts.
SORTED_ACCURACY_COLUMN = """(ascending) => {
    const table = document.querySelector('[data-testid="stDataFrame"] table');
    const column = table && [...table.querySelectorAll('tbody tr')].map(row => row.children[0].textContent);
    return column && column.length === 4 && (column[0] === '') === ascending && column;
}"""


@pytest.mark.slow
def test_the_leaderboard_shows_a_dash_for_no_accuracy_the_comparison_whole_epochs_and_no_match_in_words(app, browser):
    """(10) The leaderboard said "None" for a run without an accuracy; the comparison had ticks at half epochs and an
    unlabelled target line; "eligible only" with no match showed an empty grid."""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(RECORD_LEADERBOARD_TEXT)
    page = context.new_page()
    page.goto(f"{app}/Runs")
    page.get_by_text(RUNS_READY).wait_for(timeout=WAIT_MS)
    settle(page)
    page.wait_for_function("() => window.drawnOnLeaderboard.includes('Bob')", timeout=WAIT_MS)
    drawn = page.evaluate("window.drawnOnLeaderboard")
    assert "None" not in drawn and "—" in drawn  # Bob's run was cancelled before it started

    # sorted by accuracy: the runs without one stay together at one end, the rest in order
    grid = page.locator('[data-testid="stDataFrame"] .dvn-scroller').first
    for ascending in (True, False):
        grid.click(position={"x": 40, "y": 15})  # the accuracy column's header
        column = page.wait_for_function(SORTED_ACCURACY_COLUMN, arg=ascending, timeout=WAIT_MS).json_value()
        values = [float(v) for v in column if v]
        assert values == sorted(values, reverse=not ascending) and len(values) == 3, column
        assert column.index("") == (0 if ascending else len(column) - 1), column

    # one run of 3 epochs overlaid: whole epochs only, and the target line says what it is
    page.get_by_role("button", name=re.compile(r"^Remove tiny by Tess")).click()
    settle(page)
    page.wait_for_function("""() => document.querySelector('[data-testid="stPlotlyChart"]')
        ?.querySelectorAll('.scatterlayer .trace').length === 1""", timeout=WAIT_MS)  # Ann's run only
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    ticks = chart.locator(".xtick text").all_text_contents()
    assert ticks and all(re.fullmatch(r"\d+", t) for t in ticks) and {"1", "2", "3"} <= set(ticks), ticks
    assert chart.locator(".annotation-text", has_text=f"target {rules.TARGET_ACCURACY} %").count() == 1

    page.get_by_text("Challenge-eligible finished runs only").click()
    page.get_by_text(re.compile("No finished run meets every rule yet")).wait_for(timeout=WAIT_MS)
    assert page.locator('[data-testid="stDataFrame"] th', has_text="final test accuracy").count() == 0  # no grid
    context.close()


@pytest.mark.slow
def test_clicking_a_cell_of_the_confusion_matrix_shows_its_test_images(app, browser, mnist):
    """(6) A click on a cell of the confusion matrix did nothing in a browser (a heatmap's cells cannot be
    selected): now it picks that (true, predicted) pair and shows its test images."""
    probs = analysis.test_predictions(checkpoint.load(checkpoint.shipped()["tiny"]).model(), mnist.test)
    cm = analysis.confusion_matrix(mnist.test.labels.numpy(), probs)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    off[np.unravel_index(off.argmax(), off.shape)] = 0  # the cell the page opens on
    true, pred = (int(i) for i in np.unravel_index(off.argmax(), off.shape))
    count = int(cm[true, pred])

    context, page = open_page(browser, f"{app}/Runs", RUNS_READY)
    choose(page, "Run", "shipped-tiny")
    chart = page.locator('[data-testid="stPlotlyChart"]', has=page.locator(".heatmaplayer"))
    chart.wait_for(timeout=WAIT_MS)
    chart.scroll_into_view_if_needed()
    plot = chart.locator(".nsewdrag").first.bounding_box()
    page.mouse.move(plot["x"] + (pred + 0.5) * plot["width"] / 10, plot["y"] + (true + 0.5) * plot["height"] / 10,
                    steps=5)
    # plotly clicks whatever the pointer hovers: wait until that is the cell, then click
    chart.locator(".hoverlayer .hovertext", has_text=f"true {true}, predicted {pred}: {count}").wait_for(
        timeout=WAIT_MS)
    page.mouse.down()
    page.mouse.up()
    page.get_by_text(f"{count} test image(s) of a {true} taken for a {pred}").wait_for(timeout=WAIT_MS)
    assert page.get_by_role("combobox", name="True digit", exact=True).input_value() == str(true)
    assert page.get_by_role("combobox", name="Predicted as", exact=True).input_value() == str(pred)
    shown = page.get_by_text(re.compile(rf"^#\d+: \d+% {pred}, \d+% {true}$"))
    assert shown.count() == min(count, 24)
    context.close()


@pytest.mark.slow
def test_a_running_job_points_only_its_own_student_to_the_train_page(app, browser):
    """(10) Every student looking at someone else's running job on Runs was told "its page on Train shows it live";
    only its own student has that page."""
    owner_context, owner = open_page(browser, f"{app}/Train", "Start training")
    owner.get_by_label("epochs", exact=True).fill("30")
    owner.get_by_text("quick mode").click()
    owner.get_by_role("button", name="Start training").click()
    owner.get_by_text(re.compile(r"Epoch \d+/30")).wait_for(timeout=WAIT_MS)
    owner.get_by_role("link", name="Runs").click()
    owner.get_by_text(re.compile("Still training.*Your Train page shows it live")).wait_for(timeout=WAIT_MS)

    other_context, other = open_page(browser, f"{app}/Runs", "Still training")  # the newest run
    choose(other, "Run", "running")
    other.get_by_text(re.compile("Still training")).wait_for(timeout=WAIT_MS)
    assert other.get_by_text(re.compile(r"Train page|page on Train")).count() == 0
    other_context.close()

    owner.get_by_role("button", name="Cancel this job").click()
    owner.get_by_text(re.compile("Cancelled after")).wait_for(timeout=WAIT_MS)  # said on Runs first
    owner.get_by_role("link", name="Train").click()  # the live view: it says when the job has stopped
    owner.get_by_text(re.compile("Cancelled after")).wait_for(timeout=WAIT_MS)
    owner_context.close()
