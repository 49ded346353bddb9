"""A class on one server: every press of Start is accepted or refused with a message, and no run is lost."""

import threading

import pytest
import streamlit as st

from .classroom import simulate
from .conftest import HANG


@pytest.mark.slow
def test_a_class_submitting_together_loses_nothing(tmp_path, monkeypatch, data_root):
    monkeypatch.setenv("MNISTLAB_RUNS", str(tmp_path / "runs"))
    st.cache_resource.clear()
    from mnistlab import data
    from mnistlab.ui import resources

    release, real_load = threading.Event(), data.load

    def held_load(*args, **kwargs):  # the worker's first job waits here until every student has pressed twice
        release.wait(timeout=HANG)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(data, "load", held_load)
    try:
        sessions = 5
        r = simulate(sessions, preset="tiny", epochs=1, all_pressed=release.set)
        assert not r.exceptions, r.exceptions
        assert sorted(r.accepted) == list(range(sessions))  # everybody's first press got a run in
        # One active job per session: a second press is accepted only once the first run has ended (the press
        # may race the end of a one-epoch run), and refused, saying why, while it waits or trains.
        manager = resources.job_manager()
        for ids in r.accepted.values():
            runs = [manager.snapshot(i) for i in ids]
            assert all(a.ended_at is not None and a.ended_at <= b.submitted_at for a, b in zip(runs, runs[1:]))
        messages = [m for ms in r.refused.values() for m in ms]
        assert sorted(r.refused) == list(range(sessions))  # every second press met an active job
        assert all("already have a job" in m for m in messages)
        accepted = {run_id for ids in r.accepted.values() for run_id in ids}
        assert set(r.statuses.values()) == {"finished"}
        assert r.registry_ids == accepted and r.registry_rows == len(accepted)  # exactly those rows, none lost
        assert r.integrity == "ok"
        assert len(r.render_seconds) >= 3  # pages were rendered while the class trained
    finally:
        resources.job_manager().close()
        st.cache_resource.clear()
