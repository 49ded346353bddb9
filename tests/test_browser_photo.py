"""The Draw page's Photo in a real browser (see browser.py), as a student uses it: choose Photo, upload a photo of a
digit in dark ink on grey, unevenly lit paper, read the prediction, then move the crop."""

import pytest
from PIL import Image

from .browser import WAIT_MS, open_draw, prediction, wait_for_prediction
from .test_photo import paper_photo

UPLOAD = '[data-testid="stFileUploader"] input[type="file"]'


def crop_thumbs(page, which: str):
    """The two thumbs (start, end) of the crop slider whose label has ``which`` in it."""
    return page.locator('[data-testid="stSlider"]').filter(has_text=which).get_by_role("slider")


def press(page, thumb, key: str, times: int) -> None:
    thumb.focus()
    for _ in range(times):
        page.keyboard.press(key)


def wait_for_other_than(page, digit: str) -> None:
    """Wait until the prediction reads something other than ``digit`` ("—" included)."""
    shows = """(digit) => [...document.querySelectorAll('[data-testid="stMetric"]')]
        .some(m => m.textContent.includes('Prediction')
                   && m.querySelector('[data-testid="stMetricValue"]').textContent.trim() !== digit)"""
    page.wait_for_function(shows, arg=digit, timeout=WAIT_MS)


@pytest.mark.slow
def test_upload_a_photo_of_a_digit_on_paper_read_it_and_move_the_crop(server, browser, mnist, tmp_path):
    seven = mnist.test.images[0].numpy()
    assert int(mnist.test.labels[0]) == 7
    Image.fromarray(paper_photo(seven)).save(tmp_path / "seven.png")  # dark ink, grey paper lit unevenly, noise

    page, _ = open_draw(browser, server)
    page.get_by_role("radio", name="Photo").click()  # the segmented control above the pad
    upload = page.locator(UPLOAD)
    upload.wait_for(state="attached", timeout=WAIT_MS)
    assert prediction(page) == "—"
    upload.set_input_files(str(tmp_path / "seven.png"))
    wait_for_prediction(page, "7")
    page.get_by_text("inverted to white on black").wait_for(timeout=WAIT_MS)
    page.get_by_text("the red box is the crop").wait_for(timeout=WAIT_MS)

    # The crop starts round the digit; the student pulls its right edge in, onto the 7's top bar and the top of its
    # stroke down: no longer a 7. Then back out again.
    right_edge = crop_thumbs(page, "left to right").nth(1)
    start = int(right_edge.input_value())
    press(page, right_edge, "ArrowLeft", 20)
    wait_for_other_than(page, "7")
    press(page, right_edge, "ArrowRight", 20)
    wait_for_prediction(page, "7")
    assert int(right_edge.input_value()) == start
    page.close()
