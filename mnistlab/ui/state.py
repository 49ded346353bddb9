"""Resources shared by all sessions (the job manager, loaded models) and what one session chose (its spec)."""

from __future__ import annotations

import json
import uuid

import streamlit as st

from .. import arch, checkpoint
from ..arch import ArchSpec, SpecError
from ..jobs import JobManager, default_runs_dir

DEFAULT_PRESET = "best"
URL_KEY = "arch"


@st.cache_resource
def job_manager() -> JobManager:
    """One manager, one worker thread, one device for every session of this server."""
    return JobManager(default_runs_dir())


@st.cache_resource(max_entries=32)
def load_model(path: str, mtime: float):
    """A checkpoint's network in eval mode, cached per file version. Raises CheckpointError."""
    return checkpoint.load(path).model()


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
    """The spec a shared link carries; a malformed or hostile one gives the default with a message."""
    raw = st.query_params.get(URL_KEY)
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
