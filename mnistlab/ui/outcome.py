"""How a run ended and which rules it meets, said the same way on every page."""

import streamlit as st

from ..store import Run
from .labels import plain


def ended_message(run: Run) -> None:
    """An error or warning for a run that did not finish; nothing for one that did or is still going."""
    if run.status == "failed":
        st.error(f"Training failed: {plain(run.error or '')}")
    elif run.status == "interrupted":
        st.warning(f"Interrupted: {plain(run.error or '')}")
    elif run.status == "cancelled":
        st.warning(f"Cancelled after {run.epochs_done} epoch(s).")


def rule_checks(run: Run) -> None:
    for rule in run.verdict().rules:
        st.write(("✅ " if rule.passed else "❌ ") + rule.detail)
