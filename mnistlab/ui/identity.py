"""Who this browser session is: an anonymous owner id for its runs, and the name its student typed."""

from __future__ import annotations

import uuid

import streamlit as st


def owner_id() -> str:
    """This session's own id: its runs are its to cancel or delete."""
    if "owner_id" not in st.session_state:
        st.session_state.owner_id = uuid.uuid4().hex[:12]
    return st.session_state.owner_id


def student_name() -> str:
    """The name this session's student typed (plain text; never rendered as markdown)."""
    return st.session_state.get("student_name", "")


def name_field() -> None:
    """The text field where the student types the name shown with their runs."""
    # A widget's own state is dropped when its page is left, so the name is copied to a plain session key.
    def keep() -> None:
        st.session_state.student_name = st.session_state.student_name_input.strip()

    st.session_state.setdefault("student_name_input", student_name())
    st.text_input("Your name (shown with your runs)", key="student_name_input", max_chars=40, on_change=keep)
