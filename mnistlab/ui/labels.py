"""Text on the pages: how a run is named in a list, the same way everywhere, and outside words shown as plain text."""

from __future__ import annotations

import re

from ..store import Run


def run_label(run: Run) -> str:
    """Network, student, result, id (the name is the student's own text)."""
    by = f" by {run.student_name}" if run.student_name else ""
    result = (f"{run.final_test_accuracy:.2f} %" if run.final_test_accuracy is not None
              else f"{run.status} after epoch {run.epochs_done}/{run.epochs}" if run.epochs_done else run.status)
    return f"{run.name}{by} · {result} · {run.id}"


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=])")


def plain(text: str) -> str:
    """Text that Streamlit's markdown (st.error, st.warning, ...) shows as it is: a message can carry words from a
    shared link or a stored record, which must never become a link, an image or a colour."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def at_a_time(workers: int) -> str:
    """How many jobs train at once, as a sentence ends: "one at a time", "up to 4 at a time"."""
    return "one at a time" if workers <= 1 else f"up to {workers} at a time"
