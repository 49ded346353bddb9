"""Resources shared by all sessions (the job manager, loaded models) and what one session chose (its spec)."""

from __future__ import annotations

import hmac
import json
import os
import uuid

import numpy as np
import streamlit as st

from .. import arch, checkpoint, inspect
from .. import data as mdata
from ..arch import ArchSpec, SpecError
from ..jobs import JobManager, default_runs_dir, shared_manager
from ..store import Run

DEFAULT_PRESET = "best"
URL_KEY = "arch"


@st.cache_resource
def job_manager() -> JobManager:
    """One manager, one worker thread, one device for every session of this server."""
    return shared_manager(default_runs_dir())


@st.cache_resource(max_entries=32)
def load_model(path: str, mtime: float):
    """A checkpoint's network in eval mode, cached per file version. Raises CheckpointError."""
    return checkpoint.load(path).model()


@st.cache_resource
def mnist() -> mdata.MNIST:
    """The data set, loaded once per server (fetched on first use if it is not cached yet)."""
    return mdata.load()


@st.cache_data(max_entries=16, show_spinner="Running the network on the 10,000 test images…")
def test_probabilities(path: str, mtime: float) -> np.ndarray:
    """(10000, 10) test-set probabilities of a checkpoint, cached per file version."""
    return inspect.test_predictions(load_model(path, mtime), mnist().test)


def run_label(run: Run) -> str:
    """How a run is named in a list: network, who, result, id (the name is the student's own text)."""
    who = f" by {run.who}" if run.who else ""
    result = (f"{run.final_test_accuracy:.2f} %" if run.final_test_accuracy is not None
              else f"{run.status} after epoch {run.epoch}/{run.epochs}" if run.epoch else run.status)
    return f"{run.name}{who} · {result} · {run.id}"


def session_id() -> str:
    if "session_id" not in st.session_state:
        st.session_state.session_id = uuid.uuid4().hex[:12]
    return st.session_state.session_id


def who() -> str:
    """The name this session's student typed (plain text; never rendered as markdown)."""
    return st.session_state.get("who", "")


def name_field() -> None:
    # A widget's own state is dropped when its page is left, so the name is copied to a plain session key.
    def keep() -> None:
        st.session_state.who = st.session_state.who_input.strip()

    st.session_state.setdefault("who_input", who())
    st.text_input("Your name (shown with your runs)", key="who_input", max_chars=40, on_change=keep)


def current_spec() -> ArchSpec:
    """The spec this session is working on: its own choice, else the URL's, else the default preset."""
    if "spec" not in st.session_state:
        spec, message = spec_from_url()
        st.session_state.spec = spec.to_dict()
        if message:
            st.session_state.url_message = message
    try:
        return ArchSpec.from_dict(st.session_state.spec)
    except SpecError:
        return arch.preset(DEFAULT_PRESET)


def set_spec(spec: ArchSpec) -> None:
    st.session_state.spec = spec.to_dict()


def spec_from_url() -> tuple[ArchSpec, str | None]:
    """The spec the page's address carries (``?arch=``)."""
    return spec_from_link(st.query_params.get(URL_KEY))


def spec_from_link(raw: str | None) -> tuple[ArchSpec, str | None]:
    """The spec a shared link carries; a malformed or hostile one gives the default with a message."""
    if raw is None:
        return arch.preset(DEFAULT_PRESET), None
    if raw in arch.PRESETS:
        return arch.preset(raw), None
    if len(raw) > 4000:
        return arch.preset(DEFAULT_PRESET), "The link's network is too long to be one of ours; showing the default."
    try:
        return ArchSpec.from_json(raw), None
    except SpecError as e:
        return arch.preset(DEFAULT_PRESET), f"The link's network is not valid ({e}); showing the default network."


def spec_to_url(spec: ArchSpec) -> None:
    value = spec.name if arch.PRESETS.get(spec.name) == spec else spec.to_json()
    if st.query_params.get(URL_KEY) != value:
        st.query_params[URL_KEY] = value


def spec_text(spec: ArchSpec) -> str:
    return json.dumps(spec.to_dict(), indent=2)


ENV_TEACHER = "MNISTLAB_TEACHER_SECRET"


def teacher_secret() -> str:
    """The secret the teacher set when starting the server ($MNISTLAB_TEACHER_SECRET or a Streamlit secret
    ``teacher_secret``); empty when none is set, and then nothing unlocks the teacher view."""
    secret = os.environ.get(ENV_TEACHER, "")
    if not secret:
        try:
            secret = str(st.secrets.get("teacher_secret", ""))
        except Exception:  # no secrets.toml at all: Streamlit raises rather than returning nothing
            secret = ""
    return secret.strip()


def is_teacher() -> bool:
    secret = teacher_secret()
    given = st.session_state.get("teacher_key", "").strip()  # trimmed as the secret is
    return bool(secret) and hmac.compare_digest(given.encode(), secret.encode())


def teacher_login() -> bool:
    """The unlock form; True once this session has given the right secret."""
    if is_teacher():
        return True
    if not teacher_secret():
        st.info(f"The teacher view is off on this server: no secret is set. To turn it on, start the server with "
                f"`{ENV_TEACHER}=... streamlit run app.py` (or `teacher_secret` in .streamlit/secrets.toml).")
        return False
    with st.form("teacher_login"):
        given = st.text_input("Teacher secret", type="password")
        if st.form_submit_button("Unlock"):
            st.session_state.teacher_key = given
            if is_teacher():
                st.rerun()
            st.error("That is not the teacher secret.")
    return False


def server_notices() -> None:
    """What happened to this server's runs that everyone should know: an unreadable registry (every time), and,
    once per session, a registry set aside or runs restored or interrupted when the server started."""
    manager = job_manager()
    if problem := manager.check_registry():
        st.error(problem)
    if st.session_state.get("notices_seen"):
        return
    st.session_state.notices_seen = True
    if manager.store.notice:
        st.warning(manager.store.notice)
    if manager.recovered:
        st.info(f"The server was restarted: {len(manager.recovered)} run(s) that were training or waiting were "
                "stopped. Their completed epochs are kept; see the Runs page.")

