"""How a run is named in a list, the same way on every page."""

from __future__ import annotations

from ..store import Run


def run_label(run: Run) -> str:
    """Network, student, result, id (the name is the student's own text)."""
    by = f" by {run.student_name}" if run.student_name else ""
    result = (f"{run.final_test_accuracy:.2f} %" if run.final_test_accuracy is not None
              else f"{run.status} after epoch {run.epochs_done}/{run.epochs}" if run.epochs_done else run.status)
    return f"{run.name}{by} · {result} · {run.id}"
