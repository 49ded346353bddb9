"""A simulated class: many browser sessions submit together while pages are rendered; what happened, counted.

Used by tests/test_classroom.py (correctness, a small class) and benchmarks/classroom_load.py (the figures, 30
sessions). Each session is a Streamlit ``AppTest`` of the real app with its own session state, all sharing the one
job manager, as browser tabs on one server do.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("views/0_Home.py", "views/2_Train.py", "views/4_Runs.py")


@dataclass
class ClassResult:
    accepted: dict[int, list[str]] = field(default_factory=dict)  # session -> its run ids
    refused: dict[int, list[str]] = field(default_factory=dict)  # session -> messages shown
    exceptions: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)  # run id -> final status
    registry_rows: int = 0
    registry_ids: set[str] = field(default_factory=set)
    integrity: str = ""
    render_seconds: list[float] = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def render_p95(self) -> float:
        times = sorted(self.render_seconds)
        return times[int(0.95 * (len(times) - 1))] if times else float("nan")

    @property
    def render_median(self) -> float:
        return statistics.median(self.render_seconds) if self.render_seconds else float("nan")


def _session(preset: str, epochs: int, name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page("views/2_Train.py")
    at.query_params["arch"] = preset
    at.session_state["student_name"] = name
    at.run()
    at.number_input[0].set_value(epochs)
    next(t for t in at.toggle if "quick mode" in t.label).set_value(True)
    return at


def _press_start(at: AppTest, i: int, result: ClassResult) -> None:
    before = at.session_state["job_id"] if "job_id" in at.session_state else None
    next(b for b in at.button if b.label == "Start training").click()
    at.run()
    if at.exception:
        result.exceptions.append(f"session {i}: {at.exception[0].value}")
    after = at.session_state["job_id"] if "job_id" in at.session_state else None
    errors = [e.value for e in at.error]
    if after != before:
        result.accepted.setdefault(i, []).append(after)
    elif errors:
        result.refused.setdefault(i, []).extend(errors)
    else:
        result.exceptions.append(f"session {i}: Start was neither accepted nor refused with a message")


def simulate(sessions: int, preset: str = "tiny", epochs: int = 1, timeout: float = 600,
             all_pressed: Callable[[], None] = lambda: None) -> ClassResult:
    """``sessions`` students press Start within a moment of each other and at once press it again (refused while
    their job is active), then keep looking at the pages (timed) and pressing Start while their job waits; then the
    registry is checked. ``all_pressed`` is called after the first two rounds of presses (a test that holds the
    worker releases it there, so that every second press meets an active job).

    AppTest swaps a process-wide Streamlit runtime in and out around each run, so the sessions take turns (each
    run is a few tens of milliseconds); the job manager itself is hammered from many threads in test_store."""
    from mnistlab.ui import resources

    result = ClassResult()
    students = [_session(preset, epochs, f"student {i}") for i in range(sessions)]
    manager = resources.job_manager()
    t0 = time.monotonic()
    for i, at in enumerate(students):
        _press_start(at, i, result)
    for i, at in enumerate(students):
        _press_start(at, i, result)
    all_pressed()
    turn = 0
    while manager.queue() and time.monotonic() - t0 < timeout:
        for page in PAGES:
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
            at.switch_page(page)
            start = time.perf_counter()
            at.run()
            result.render_seconds.append(time.perf_counter() - start)
            if at.exception:
                result.exceptions.append(f"{page}: {at.exception[0].value}")
        i = turn % sessions  # one student, impatient, presses Start again
        turn += 1
        if manager.snapshot(result.accepted[i][-1]).active if i in result.accepted else False:
            _press_start(students[i], i, result)
    for runs in result.accepted.values():
        for run_id in runs:
            result.statuses[run_id] = manager.wait(run_id, timeout=max(1.0, timeout - (time.monotonic() - t0))).status
    result.wall_seconds = time.monotonic() - t0
    result.registry_rows = manager.store.count()
    result.registry_ids = {r.id for r in manager.store.runs()}
    result.integrity = manager.store.integrity()
    return result
