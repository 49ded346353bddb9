"""Home: the challenge on one screen, how to use the pages, the best runs so far."""

import streamlit as st

from mnistlab import arch, rules
from mnistlab.ui import identity, resources

st.title("MNIST Lab")
st.markdown(f"""
### The challenge
Build a network that recognises handwritten digits (MNIST) and
1. reaches **at least {rules.TARGET_ACCURACY} %** accuracy on the 10,000 official test images (the last epoch
   counts),
2. with **fewer than {rules.PARAM_LIMIT:,} parameters**,
3. trained in **fewer than {rules.EPOCH_LIMIT} epochs**,
4. with **no fully connected layer**.

The app checks one more thing with the last three: the **receptive field** at the head must be at least
{rules.MIN_RECEPTIVE_FIELD} px, so that the network can see a whole digit at once.

### Why no fully connected layer?
A fully connected layer joins every value of the last feature map to every class: on a 7×7×32 map that alone is
15,690 parameters, most of the budget, and it memorises *where* things are. Instead, a **1×1 convolution** mixes
channels at each position for a handful of parameters (it is the "fully connected" part, applied per pixel), and
**global average pooling** (GAP) averages each of the final 10 maps into one score per digit, with no parameters at
all. The network stays small, and it has to learn *what* a digit looks like, wherever it is.
""")
st.markdown("""
### How to use the pages
- **Architecture**: start from a preset, change channel widths, dropout, batch-norm; the parameter count follows
  against the budget, with the layer table (output shapes, receptive field) and the checks. The page's address
  carries your network: share it.
- **Train**: train your network in the background, on the GPU if there is one, and watch the curves grow.
  Quick mode trains on 5,000 images for a fast look (not challenge-eligible).
- **Draw**: draw a digit and see what a preset or your own trained network predicts, and what each layer sees.
- **Runs**: every run on this server, kept across restarts: the leaderboard, curves side by side, and for one run
  its confusion matrix, the test digits it gets wrong, and its files to take home.
- **Teacher**: the whole class's queue, live, for the teacher (unlocked by the secret set when the server started).
""")

identity.name_field()

st.subheader("Best runs so far")
finished = [j for j in resources.job_manager().runs() if j.status == "finished"]
finished.sort(key=rules.rank_key)  # the leaderboard's order: runs that count for the challenge first
if finished:
    st.dataframe([{"final test accuracy (%)": round(j.final_test_accuracy, 2), "parameters": j.params,
                   "epochs": j.epochs, "student": j.student_name or "anonymous", "network": j.name,
                   "challenge-eligible": j.challenge_eligible} for j in finished[:10]],
                 hide_index=True, width="stretch")
else:
    st.caption("No run has finished on this server yet.")

st.subheader("The presets")
st.dataframe([{"preset": n, "parameters": arch.count_params(s), "note": arch.PRESET_NOTES.get(n, "")}
              for n, s in arch.PRESETS.items()], hide_index=True, width="stretch")
