"""What happened to this server's runs that every session should be told."""

from __future__ import annotations

import streamlit as st

from .resources import job_manager


def server_notices() -> None:
    """An unreadable registry (every time), and, once per session, a registry set aside or runs restored or
    interrupted when the server started."""
    manager = job_manager()
    if problem := manager.check_registry():
        st.error(problem)
    if st.session_state.get("notices_seen"):
        return
    st.session_state.notices_seen = True
    if manager.recovery.notice:
        st.warning(manager.recovery.notice)
    if manager.recovery.interrupted:
        stopped = len(manager.recovery.interrupted)
        st.info(f"The server was restarted: {stopped} run(s) that were training or waiting were "
                "stopped. Their completed epochs are kept; see the Runs page.")
