"""Train: hand the current network to the shared job manager and watch it learn."""

import streamlit as st

from mnistlab import arch, distill, rules, train
from mnistlab.errors import MnistLabError
from mnistlab.jobs import JobError
from mnistlab.ui import figures, identity, links, outcome, resources

st.title("Train")
manager = resources.job_manager()
spec = links.current_spec()
summary = arch.summary(spec)
owner = identity.owner_id()
st.caption(f"Jobs from every session run one at a time on: {manager.device}")
st.text(f"Network: {spec.name}, {summary.total_params:,} parameters "  # the name may come from a shared link
        f"({'within' if summary.total_params < rules.PARAM_LIMIT else 'over'} the {rules.PARAM_LIMIT:,} budget). "
        "Change it on the Architecture page.")

recipe = train.recipe(spec.name)
try:
    mentor_epochs = sum(epochs for _, epochs, _ in distill.lineage("best"))
except distill.MentorError:  # the shipped weights are missing or damaged: nothing to learn from
    mentor_epochs = None
with st.form("settings"):
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("epochs", 1, manager.max_epochs, value=recipe.epochs)
    batch_size = c2.selectbox("batch size", [64, 128, 256, 512], index=[64, 128, 256, 512].index(recipe.batch_size))
    lr = c3.number_input("learning rate (peak)", 0.001, 1.0, value=recipe.lr, step=0.01, format="%.3f")
    augment = c4.toggle("augmentation", value=recipe.augment > 0,
                        help="random rotation, scale and shift of each training image")
    learn_from_best = st.toggle(
        "learn from the shipped best network too (distillation)", disabled=mentor_epochs is None,
        value=recipe.distill_from is not None and mentor_epochs is not None,
        help="Besides the labels, your network learns from the best network's probabilities (\"a 7, a little like "
             f"a 1\"), which tells a small network more per image. Its {mentor_epochs} training epochs count towards "
             f"the {rules.EPOCH_LIMIT}-epoch limit." if mentor_epochs
             else "Not available: the shipped best network's weights are missing or damaged.")
    quick = st.toggle("quick mode: train on 5,000 images (fast, but not challenge-eligible)", value=False)
    start = st.form_submit_button("Start training", type="primary")

if start:
    cfg = train.TrainConfig(**{**recipe.to_dict(), "epochs": int(epochs), "batch_size": int(batch_size),
                               "lr": float(lr), "augment": recipe.augment if augment else 0.0,
                               "distill_from": (recipe.distill_from or "best") if learn_from_best else None,
                               "train_subset": 5000 if quick else None})
    try:
        st.session_state.job_id = manager.submit(spec, cfg, owner=owner, student_name=identity.student_name())
    except MnistLabError as e:  # a refusal (the queue, the config, the spec), said in words
        st.error(f"Not started: {e}")


@st.fragment(run_every=1.0)
def live() -> None:
    job_id = st.session_state.get("job_id")
    if not job_id:
        st.info("No training started from this session yet.")
        return
    try:
        job = manager.snapshot(job_id)
    except JobError:
        st.info("That run is gone: it was deleted.")
        return
    if job.status == "queued":
        if any(r.status == "running" for r in manager.queue()):
            st.info(f"Queued: position {job.queue_position} for {manager.device}. Jobs run one at a time; "
                    "another session's job is using it now.")
        else:
            st.info(f"Starting on {manager.device}…")
    elif job.status == "running":
        st.progress(job.progress, text=outcome.stage_text(job, manager.device))
    if job.active:
        # A callback runs before the rerun the click causes, so that rerun already shows the cancelled job (and
        # works whether the click reruns the fragment or, e.g. under AppTest, the whole page).
        st.button("Cancel", key="cancel", on_click=manager.cancel, args=(job_id,), kwargs={"owner": owner})
    if job.history:
        st.plotly_chart(figures.training_curves(job.history), width="stretch", key="curves")
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
