"""The teacher's unlock: the secret set when the server started, and the form that checks it."""

from __future__ import annotations

import hmac
import logging
import math
import os

import streamlit as st

from .. import throttle
from . import identity

ENV_TEACHER = "MNISTLAB_TEACHER_SECRET"
log = logging.getLogger(__name__)


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
            _try_unlock(given)
    return False


def _try_unlock(given: str) -> None:
    """Check a guess, unless this session or the server has guessed wrong too often lately."""
    address = st.context.ip_address
    session, client = identity.owner_id(), address if isinstance(address, str) else "unknown"
    wait = throttle.shared.wait(session, client)
    if wait > 0:
        st.error(f"Too many wrong guesses lately; try again in {math.ceil(wait)} s.")
        return
    st.session_state.teacher_key = given
    if is_teacher():
        st.rerun()
    throttle.shared.failed(session, client)
    log.warning("a wrong teacher secret was given (session %s, client %s)", session, client)
    st.error("That is not the teacher secret.")
