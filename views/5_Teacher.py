"""Teacher: every run live, the queue, and the power to cancel or delete any job; unlocked by the server's secret."""

import streamlit as st

from mnistlab.jobs import JobError
from mnistlab.ui import labels, resources, teacher

st.title("Teacher view")
if not teacher.teacher_login():
    st.stop()

manager = resources.job_manager()
st.caption(f"Unlocked for this browser session. Jobs run {labels.at_a_time(manager.workers)} on: "
           f"{manager.device}; at most {manager.max_queue} may wait, one per student, "
           f"{manager.max_epochs} epochs each.")
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


def cancel(run_id: str) -> None:
    try:
        manager.cancel(run_id, teacher=True)
    except JobError as e:
        st.session_state.teacher_message = str(e)


@st.fragment(run_every=1.0)
def live_queue() -> None:
    """The queue as it is now, each job with its own Cancel: a job started since the page opened is here too."""
    st.subheader("Queue")
    if message := st.session_state.pop("teacher_message", None):
        st.error(labels.plain(message))
    queue = manager.queue()
    if not queue:
        st.caption("Nothing is training or waiting.")
    for r in queue:
        place = "training now" if r.status == "running" else f"waiting, place {r.queue_position}"
        text, button = st.columns([5, 1], vertical_alignment="center")
        text.text(f"{r.student_name or 'anonymous'} · {r.name}, {r.params:,} parameters · {place} · "
                  f"epoch {r.epochs_done}/{r.epochs} · {r.id}")
        button.button("Cancel", key=f"cancel_{r.id}", on_click=cancel, args=(r.id,))

    st.subheader("All runs")
    st.dataframe([{"student": r.student_name or "anonymous", "network": r.name, "status": r.status,
                   "final test accuracy (%)": r.final_test_accuracy, "epochs": f"{r.epochs_done}/{r.epochs}",
                   "error": r.error or "", "id": r.id} for r in manager.runs()],
                 column_config={"final test accuracy (%)": st.column_config.NumberColumn(format="%.2f")},
                 hide_index=True, width="stretch", key="all_runs")


live_queue()


@st.fragment(run_every=2.0)
def delete_one() -> None:
    """Pick an ended run, then confirm: nothing is chosen for the teacher, and nothing goes at one click. Live like
    the queue: a run that ended since the page opened can be chosen."""
    st.subheader("Delete a run")
    if deleted := st.session_state.get("teacher_deleted"):  # said until the next run is chosen
        st.success(f"Deleted {labels.plain(deleted)}.")
    ended = {r.id: r for r in manager.runs() if not r.active}
    if not ended:
        st.caption("No ended runs.")
        return
    target = st.selectbox("Run", list(ended), index=None, placeholder="Choose a run to delete",
                          format_func=lambda i: labels.run_label(ended[i]), key="delete_choice")
    if target is None:
        return
    st.session_state.pop("teacher_deleted", None)
    st.warning(f"Delete {labels.plain(labels.run_label(ended[target]))} and its checkpoint for good?")
    if st.button("Yes, delete it", key="delete_confirm"):
        try:
            manager.delete(target, teacher=True)
            st.session_state.teacher_deleted = labels.run_label(ended[target])
            st.session_state.pop("delete_choice", None)
            st.rerun()
        except JobError as e:
            st.error(labels.plain(str(e)))


delete_one()
