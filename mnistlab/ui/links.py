"""The network this session works on, and the shared link (``?arch=``) that carries it."""

from __future__ import annotations

import json

import streamlit as st

from .. import arch
from ..arch import ArchSpec, SpecError

DEFAULT_PRESET = "best"
URL_KEY = "arch"


def read_shared_link() -> str | None:
    """Once per session, take the network a shared link carries (else the default) as this session's; return what
    is wrong with the link, if anything, for the page to show. Later calls do nothing and return None."""
    if "spec" in st.session_state:
        return None
    spec, message = spec_from_link(st.query_params.get(URL_KEY))
    set_spec(spec)
    return message


def current_spec() -> ArchSpec:
    """The spec this session is working on (the default preset until one is chosen or read from a link)."""
    try:
        return ArchSpec.from_dict(st.session_state["spec"])
    except (KeyError, SpecError):
        return arch.preset(DEFAULT_PRESET)


def set_spec(spec: ArchSpec) -> None:
    st.session_state.spec = spec.to_dict()


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
    """Put the spec in the page's address (a preset by its name), so that the address can be shared."""
    value = spec.name if arch.PRESETS.get(spec.name) == spec else spec.to_json()
    if st.query_params.get(URL_KEY) != value:
        st.query_params[URL_KEY] = value


def spec_text(spec: ArchSpec) -> str:
    """The spec as indented JSON, for students to read or copy."""
    return json.dumps(spec.to_dict(), indent=2)
