"""Who this browser is: an anonymous owner id for its runs, and the name its student typed.

Both are remembered in the browser (two cookies), so a reload or a new tab is still the same student: their jobs are
still theirs to watch and cancel, and the one-job-per-student limit still holds. The id is a random 128-bit token
(unguessable: it is what lets a browser cancel or delete its runs); the name is only a label the class sees.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from urllib.parse import unquote

import streamlit as st

OWNER_COOKIE = "mnistlab_owner"
NAME_COOKIE = "mnistlab_name"
MAX_NAME = 40
_OWNER = re.compile(r"[0-9a-f]{32}")
_MAX_COOKIE = 400  # longer than any name we write, percent-encoded: anything longer was not written by us

# Sets the two cookies from the data it is given; rendered on every run, so a changed name is written at once.
# SameSite=Strict: the browser sends them only to this server's own pages.
_REMEMBER_JS = """
export default function({ data }) {
  const year = 60 * 60 * 24 * 365;
  for (const [name, value] of Object.entries(data || {})) {
    document.cookie = `${name}=${encodeURIComponent(value)}; path=/; max-age=${year}; SameSite=Strict`;
  }
}
"""
_remember = st.components.v2.component("mnistlab_remember_student", js=_REMEMBER_JS)


def _cookie(name: str) -> str | None:
    """A cookie the browser sent when the session began, or None; bounded before it is decoded."""
    try:
        raw = st.context.cookies.get(name)
    except Exception:  # no browser behind this session (a test, a script): nothing remembered
        return None
    if not isinstance(raw, str) or len(raw) > _MAX_COOKIE:
        return None
    return unquote(raw)


def clean_name(text: str) -> str:
    """A typed or remembered name as it is stored and shown: printable characters only, at most 40."""
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")  # no control or format characters
    return text.strip()[:MAX_NAME].strip()


def owner_id() -> str:
    """This student's id: the browser's remembered one, or a new one for a new browser."""
    if "owner_id" not in st.session_state:
        remembered = _cookie(OWNER_COOKIE)
        st.session_state.owner_id = (remembered if remembered and _OWNER.fullmatch(remembered)
                                     else secrets.token_hex(16))
    return st.session_state.owner_id


def student_name() -> str:
    """The name this student typed, here or in an earlier visit from this browser (plain text; never markdown)."""
    if "student_name" not in st.session_state:
        st.session_state.student_name = clean_name(_cookie(NAME_COOKIE) or "")
    return st.session_state.student_name


def remember() -> None:
    """Write the id and name into the browser's cookies (an invisible element; call once per run, in the sidebar)."""
    _remember(data={OWNER_COOKIE: owner_id(), NAME_COOKIE: student_name()}, key="remember_student",
              width="content", height="content")


def name_field() -> None:
    """The text field where the student types the name shown with their runs."""
    # A widget's own state is dropped when its page is left, so the name is copied to a plain session key.
    def keep() -> None:
        st.session_state.student_name = clean_name(st.session_state.student_name_input)

    st.session_state.setdefault("student_name_input", student_name())
    st.text_input("Your name (shown with your runs)", key="student_name_input", max_chars=MAX_NAME, on_change=keep)


def latest_run(manager):
    """The run this student started last (from any tab, before any reload), or None."""
    mine = manager.runs(owner=owner_id())
    return mine[0] if mine else None
