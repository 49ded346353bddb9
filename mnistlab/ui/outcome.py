"""How a run ended and which rules it meets, said the same way on every page."""

import time

import streamlit as st

from .. import cost

from ..store import Run
from .labels import plain


def ended_message(run: Run) -> None:
    """An error or warning for a run that did not finish; nothing for one that did or is still going."""
    if run.status == "failed":
        st.error(f"Training failed: {plain(run.error or '')}")
    elif run.status == "interrupted":
        st.warning(f"Interrupted: {plain(run.error or '')}")
    elif run.status == "cancelled":
        why = f" {plain(run.error)}" if run.error else ""
        st.warning(f"Cancelled after {run.epochs_done} epoch(s).{why}")


def rule_checks(run: Run) -> None:
    for rule in run.verdict().rules:
        st.write(("✅ " if rule.passed else "❌ ") + rule.detail)


def stage_text(run: Run, device: str) -> str:
    """Where a running job is: starting, epoch e/E batch b/B, or evaluating; with the time left at its pace."""
    where = f"{run.device} ({run.precision})" if run.device else device
    epoch = min(run.epochs_done + 1, run.epochs)
    if not run.batches:
        return f"Starting on {where}: loading the data and building the network…"
    if run.stage == "evaluating":
        text = f"Epoch {epoch}/{run.epochs} trained: evaluating on the 10,000 test images…"
    else:
        text = f"Epoch {epoch}/{run.epochs}, batch {run.batch}/{run.batches} on {where}"
    if run.started_at and run.progress > 0.02:  # the pace so far, once there is enough of it to go by
        elapsed = time.time() - run.started_at
        text += f" · about {cost.say_duration(elapsed / run.progress * (1 - run.progress))} left"
    return text


def headline(run: Run) -> None:
    """One line at the end: the challenge met, or the rules that are not."""
    verdict = run.verdict()
    if verdict.met:
        st.success("Challenge met: every rule holds.", icon="🏆")
    else:
        st.error(f"Not met yet: {plain('; '.join(rule.detail for rule in verdict.failed))}.")
