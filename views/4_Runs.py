"""Runs: the leaderboard, curves side by side, and one run in depth (its mistakes, its files)."""

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import streamlit as st

from mnistlab import analysis, arch, checkpoint, export, rules
from mnistlab.jobs import JobError
from mnistlab.store import StoreError
from mnistlab.ui import figures, identity, labels, onnxdownload, outcome, resources, teacher

st.title("Runs")
manager = resources.job_manager()
owner, as_teacher = identity.owner_id(), teacher.is_teacher()
runs = manager.runs()
if not runs:
    st.info("No runs on this server yet: train a network on the Train page and it appears here.")
    st.stop()

# ------------------------------------------------------------------------------------------------ leaderboard
st.subheader("Leaderboard")
eligible_only = st.toggle(f"Challenge-eligible finished runs only (all {rules.TRAINING_IMAGES:,} training images, "
                          f"fewer than {rules.EPOCH_LIMIT} epochs, those of a mentor network included, fewer than "
                          f"{rules.PARAM_LIMIT:,} parameters, no fully connected layer, a receptive field of at least "
                          f"{rules.MIN_RECEPTIVE_FIELD} px)", key="eligible_only",
                          help="A high accuracy on a quick run or a giant network is easy; the challenge is reaching "
                               "it within every rule at once.")
ranked = sorted(runs, key=rules.rank_key)
board = [r for r in ranked if not eligible_only or (r.challenge_eligible and r.status == "finished")]
if not board:
    st.info("No finished run meets every rule yet: train one on all the images, in fewer epochs than the limit.")
else:
    st.dataframe(
        [{"final test accuracy (%)": r.final_test_accuracy, "student": r.student_name or "anonymous", "network": r.name,
          "parameters": r.params, "epochs": r.epochs, "status": r.status,
          "challenge-eligible": r.challenge_eligible and r.status == "finished",
          "training time (s)": round(r.train_seconds, 1), "device": r.device,
          "submitted": datetime.fromtimestamp(r.submitted_at), "id": r.id} for r in board],
        column_config={"final test accuracy (%)": st.column_config.NumberColumn(format="%.2f"),
                       "submitted": st.column_config.DatetimeColumn(format="D MMM, HH:mm")},
        placeholder="—",  # a run with no result yet, not "None"; the column stays numbers, so it sorts as numbers
        hide_index=True, width="stretch", key="leaderboard")
st.caption("Click a column's name to sort by it. The accuracy is the last epoch's on the 10,000 test images, "
           "never a best epoch picked afterwards.")

# ------------------------------------------------------------------------------------------------ compare
st.subheader("Compare")
# Run ids as options (labels change while a run trains, and a changed option would drop the choice).
with_curves = {r.id: r for r in ranked if r.history}
finished = [i for i, r in with_curves.items() if r.status == "finished"]
chosen = st.multiselect("Runs to overlay", list(with_curves), default=finished[:2],
                        format_func=lambda i: labels.run_label(with_curves[i]), key="compare",
                        help="Two curves side by side show what one change did: faster learning, a higher last "
                             "epoch, or a gap between training and test that means overfitting.")
if chosen:
    st.plotly_chart(figures.compare_curves([(labels.run_label(with_curves[i]), with_curves[i].history)
                                            for i in chosen]), width="stretch", key="compare_chart")

# ------------------------------------------------------------------------------------------------ one run
st.subheader("One run")
by_id = {r.id: r for r in runs}
ids = list(by_id)
mine = [i for i, r in by_id.items() if r.owner == owner]
default = ids.index(mine[0]) if mine else 0
run = by_id[st.selectbox("Run", ids, index=default, format_func=lambda i: labels.run_label(by_id[i]),
                         key="run_choice",
                         help="Its mistakes say more than its accuracy: click a cell of the confusion matrix to "
                              "see which digits it confuses, and why a person might too.")]

st.text(f"{run.name} by {run.student_name or 'anonymous'}: {run.status}, {run.epochs_done}/{run.epochs} epochs, "
        f"{run.params:,} parameters{', on ' + run.device if run.device else ''}")
outcome.ended_message(run)
if run.active:
    st.info("Still training: this view shows the epochs done so far; open this page again to see more."
            + (" Your Train page shows it live." if run.owner == owner else ""))
outcome.rule_checks(run)

if run.owner == owner or as_teacher:
    if run.active and st.button("Cancel this job", key="cancel_run"):
        manager.cancel(run.id, owner=owner, teacher=as_teacher)
        try:  # a job stops within a batch: wait that long, so that the page shows it cancelled
            manager.wait_until(run.id, lambda r: not r.active, timeout=5.0)
        except (TimeoutError, JobError):  # still stopping, or gone: the page says what it finds
            pass
        st.rerun()
    if not run.active and st.button("Delete this run", key="delete_run"):
        try:
            manager.delete(run.id, owner=owner, teacher=as_teacher)
            st.rerun()
        except JobError as e:
            st.error(str(e))

spec = arch.ArchSpec.from_dict(run.spec)
left, right = st.columns(2)
with left:
    st.markdown("**Network**")
    st.json(run.spec, expanded=False)
with right:
    st.markdown("**Settings**")
    st.dataframe([{"setting": k, "value": "—" if v is None else str(v)} for k, v in run.config.items()],
                 hide_index=True, width="stretch")
if run.history:
    st.plotly_chart(figures.training_curves(run.history), width="stretch", key="run_curves")

spec_json = json.dumps(run.spec, indent=2)
files = st.columns(4)
files[0].download_button("Spec (JSON)", spec_json, file_name=f"{export.filename(spec)[:-3]}.json",
                         mime="application/json", key="dl_spec")
files[1].download_button("Standalone PyTorch file", export.standalone_script(spec), file_name=export.filename(spec),
                         mime="text/x-python", key="dl_script")
path = Path(run.checkpoint_path) if run.checkpoint_path else None
if path is None or not path.exists():
    files[2].caption("Weights appear when its first epoch ends." if run.active
                     else "No weights: this run stopped before its first epoch ended." if path is None
                     else f"No weights: its checkpoint file {path.name} is missing from the runs folder.")
    st.stop()
try:
    weights = manager.store.checkpoint_bytes(run.id)  # a regular file inside the runs folder, never a link
except StoreError as e:
    files[2].caption(f"No weights to download: {e}")
    st.stop()
files[2].download_button("Checkpoint (.pt)", weights, file_name=f"{run.id}.pt",
                         mime="application/octet-stream", key="dl_checkpoint",
                         help=None if run.status == "finished" else f"The weights after epoch {run.epochs_done}.")
onnxdownload.offer(files[3], run.id, path, run.epochs_done, run.status == "finished")

# ------------------------------------------------------------------------------------------------ its mistakes
st.markdown("**Where it goes wrong: the confusion matrix on the 10,000 test images**")
if run.active:  # its weights change every epoch: running the test set for each would load the server for nothing
    st.caption("The confusion matrix appears when the run has ended.")
    st.stop()
try:
    probs = resources.test_probabilities(str(path), path.lstat().st_mtime)
except (checkpoint.CheckpointError, OSError) as e:
    st.error(f"The checkpoint could not be loaded: {e}")
    st.stop()
labels_true = resources.mnist().test.labels.numpy()
cm = analysis.confusion_matrix(labels_true, probs)

def pick_cell() -> None:
    """A click on a cell of the matrix chooses that (true, predicted) pair below."""
    points = st.session_state.confusion.selection.get("points", [])
    if points:
        st.session_state[f"cell_true_{run.id}"] = int(points[0]["y"])
        st.session_state[f"cell_pred_{run.id}"] = int(points[0]["x"])


off = cm.copy()
np.fill_diagonal(off, 0)
worst_true, worst_pred = np.unravel_index(int(off.argmax()), off.shape)
st.session_state.setdefault(f"cell_true_{run.id}", int(worst_true))  # the most common mistake, until one is chosen
st.session_state.setdefault(f"cell_pred_{run.id}", int(worst_pred))
picked = (st.session_state[f"cell_true_{run.id}"], st.session_state[f"cell_pred_{run.id}"])
st.plotly_chart(figures.confusion(cm, picked), width="stretch", key="confusion", on_select=pick_cell,
                selection_mode="points", config={"displayModeBar": False})
st.caption("Click a cell to see its test images below.")
c1, c2 = st.columns(2)
true = c1.selectbox("True digit", range(10), key=f"cell_true_{run.id}")
pred = c2.selectbox("Predicted as", range(10), key=f"cell_pred_{run.id}")
idx = analysis.misclassified(labels_true, probs, true, pred)
if true == pred:
    st.caption(f"The diagonal: {cm[true, true]} test images of a {true} recognised correctly.")
elif not len(idx):
    st.success(f"No {true} in the test set was taken for a {pred}.")
else:
    st.caption(f"{len(idx)} test image(s) of a {true} taken for a {pred}, most confident mistakes first "
               f"(showing {min(len(idx), 24)}).")
    shown = idx[:24]
    images = resources.mnist().test.images[shown].numpy() / 255.0
    st.image([figures.enlarge(im, 3) for im in images],
             caption=[f"#{i}: {probs[i, pred]:.0%} {pred}, {probs[i, true]:.0%} {true}" for i in shown])
