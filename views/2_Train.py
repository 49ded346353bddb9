"""Train: hand the current network to the shared job manager and watch it learn."""

import streamlit as st

from mnistlab import arch, distill, lessons, rules, train
from mnistlab.errors import MnistLabError
from mnistlab.jobs import JobError
from mnistlab.ui import figures, identity, labels, lessonlink, links, outcome, resources, trainform

st.title("Train")
manager = resources.job_manager()
fixed = lessonlink.fixed_by_lesson()  # a lesson's network and recipe, if a lesson fixes them
spec = links.current_spec()
summary = arch.summary(spec)
owner = identity.owner_id()
# The student's latest run, whichever tab started it and across reloads: still theirs to watch and cancel.
latest = identity.latest_run(manager)
st.session_state.job_id = latest.id if latest else None
st.caption(f"Jobs from every session run {labels.at_a_time(manager.workers)} on: {manager.device}")
st.text(f"Network: {spec.name}, {summary.total_params:,} parameters "  # the name may come from a shared link
        f"({'within' if summary.total_params < rules.PARAM_LIMIT else 'over'} the {rules.PARAM_LIMIT:,} budget). "
        + ("Change it on the Architecture page." if fixed is None else "The lesson fixes it."))

recipe = lessons.recipe_for(spec) or train.recipe(spec.name)
lessonlink.recipe_note(spec)
try:
    mentor_epochs = sum(epochs for _, epochs, _ in distill.lineage("best"))
except distill.MentorError:  # the shipped weights are missing or damaged: nothing to learn from
    mentor_epochs = None
identity.name_field()
cfg = trainform.form(recipe, spec.name, manager.max_epochs, mentor_epochs, latest, fixed=fixed)
if cfg is not None:
    try:
        st.session_state.job_id = manager.submit(spec, cfg, owner=owner, student_name=identity.student_name())
    except MnistLabError as e:  # a refusal (the queue, the config, the spec), said in words
        st.error(f"Not started: {e}")


@st.fragment(run_every=1.0)
def live() -> None:
    job_id = st.session_state.get("job_id")
    if not job_id:
        st.info("You have not started a training run yet.")
        return
    try:
        job = manager.snapshot(job_id)
    except JobError:
        st.info("That run is gone: it was deleted.")
        return
    if job.status == "queued":
        if any(r.status == "running" for r in manager.queue()):
            st.info(f"Queued: position {job.queue_position} for {manager.device}. Jobs run "
                    f"{labels.at_a_time(manager.workers)}; other sessions' jobs are using it now.")
        else:
            st.info(f"Starting on {manager.device}…")
    elif job.status == "running":
        st.progress(job.progress, text=outcome.stage_text(job, manager.device))
    if job.active:
        # A callback runs before the rerun the click causes, so that rerun already shows the cancelled job (and
        # works whether the click reruns the fragment or, e.g. under AppTest, the whole page).
        st.button("Cancel", key="cancel", on_click=manager.cancel, args=(job_id,), kwargs={"owner": owner})
    if job.history or job.batch_losses:
        st.plotly_chart(figures.training_curves(job.history, job.batch_losses), width="stretch", key="curves")
    if job.status == "finished":
        outcome.headline(job)
        acc = job.final_test_accuracy
        st.metric("Final test accuracy (last epoch, 10,000 test images)", f"{acc:.2f} %")
        outcome.rule_checks(job)
        st.page_link("views/3_Draw.py", label="Draw a digit for this network →", icon="✏️")
    outcome.ended_message(job)
    if not job.active:
        st.page_link("views/4_Runs.py", label="All runs: leaderboard, comparison, mistakes →", icon="🏆")


live()
