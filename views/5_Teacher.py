"""Teacher: every run live, the queue, and the power to cancel or delete any job; unlocked by the server's secret."""

import streamlit as st

from mnistlab.jobs import JobError
from mnistlab.ui import labels, resources, teacher

st.title("Teacher view")
if not teacher.teacher_login():
    st.stop()

manager = resources.job_manager()
st.caption(f"Unlocked for this browser session. Jobs run one at a time on: {manager.device}; "
           f"at most {manager.max_queue} may wait, one per browser session, {manager.max_epochs} epochs each.")
if st.button("Lock the teacher view", key="lock"):
    st.session_state.teacher_key = ""
    st.rerun()


def set_job_limit() -> None:
    manager.max_job_minutes = float(st.session_state.max_job_minutes)


if manager.store.rejected:
    with st.expander(f"{len(manager.store.rejected)} damaged run record(s) are hidden from every page"):
        st.caption("Rows of the registry or files in the runs folder that do not check (damaged or edited by hand). "
                   "They are left out of every page and never count for the challenge.")
        st.dataframe([{"run or file": key, "why": why} for key, why in manager.store.rejected.items()],
                     hide_index=True, width="stretch")

st.number_input("Longest job a student may start (minutes, as estimated for this server's device)", 1.0, 600.0,
                value=float(manager.max_job_minutes), step=1.0, key="max_job_minutes", on_change=set_job_limit,
                help="A job whose network, epochs and images would hold the worker longer is refused with a message "
                     "that says how much smaller to make it. Jobs already queued are not affected.")


@st.fragment(run_every=1.0)
def live() -> None:
    st.subheader("Queue")
    queue = manager.queue()
    if not queue:
        st.caption("Nothing is training or waiting.")
    else:
        st.dataframe([{"place": "running" if r.status == "running" else r.queue_position,
                       "student": r.student_name or "anonymous", "network": r.name, "parameters": r.params,
                       "epoch": f"{r.epochs_done}/{r.epochs}", "progress": r.progress, "id": r.id} for r in queue],
                     column_config={"progress": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)},
                     hide_index=True, width="stretch", key="queue_table")

    st.subheader("All runs")
    runs = manager.runs()
    st.dataframe([{"student": r.student_name or "anonymous", "network": r.name, "status": r.status,
                   "final test accuracy (%)": r.final_test_accuracy, "epochs": f"{r.epochs_done}/{r.epochs}",
                   "error": r.error or "", "id": r.id} for r in runs],
                 column_config={"final test accuracy (%)": st.column_config.NumberColumn(format="%.2f")},
                 hide_index=True, width="stretch", key="all_runs")


live()

# Outside the live fragment, so a choice being made is not redrawn under the teacher's cursor every second.
runs = {r.id: r for r in manager.runs()}


def act_on_one(title: str, ids: list[str], form: str, button: str, action, none_left: str) -> None:
    """A form to pick one run and act on it as the teacher; a refusal from the manager is shown, not raised."""
    st.subheader(title)
    if not ids:
        st.caption(none_left)
        return
    with st.form(f"{form}_form"):
        target = st.selectbox("Run", ids, format_func=lambda i: labels.run_label(runs[i]), key=f"{form}_choice")
        if st.form_submit_button(button):
            try:
                action(target, teacher=True)
                st.rerun()
            except JobError as e:
                st.error(str(e))


act_on_one("Cancel a job", [i for i, r in runs.items() if r.active], "cancel", "Cancel this job", manager.cancel,
           "No job is queued or running.")
act_on_one("Delete a run", [i for i, r in runs.items() if not r.active], "delete", "Delete it and its checkpoint",
           manager.delete, "No ended runs.")
