"""Architecture: edit a network and watch its parameter count against the challenge's budget."""

import streamlit as st

from mnistlab import arch, rules
from mnistlab.ui import figures, lessonlink, links
from mnistlab.ui import rfexplorer

st.title("Architecture")

left, right = st.columns([3, 2], gap="medium")
with left:
    spec, error = lessonlink.architecture_controls()  # the editor, unless a lesson fixes or hides it
summary = arch.summary(spec)
with right:
    st.metric("Parameters", f"{summary.total_params:,}",
              delta=f"{rules.PARAM_LIMIT - 1 - summary.total_params:,} left in the budget"
              if summary.total_params < rules.PARAM_LIMIT else
              f"{summary.total_params - rules.PARAM_LIMIT + 1:,} over the budget",
              delta_color="normal" if summary.total_params < rules.PARAM_LIMIT else "inverse")
    st.plotly_chart(figures.budget_bar(summary.total_params), width="stretch",
                    config={"displayModeBar": False})
    if error:
        st.caption("Showing the last valid network until the problem on the left is fixed.")
    st.subheader("Challenge checks")
    for check in rules.architecture(summary):
        (st.success if check.passed else st.error)(check.detail, icon="✅" if check.passed else "❌")
    st.caption(f"{summary.total_macs / 1e6:.2f} M multiply-adds per image. "
               "Share this network: copy the page's address, it carries the network.")

st.subheader("Layer by layer")
st.dataframe(
    [{"#": r.index, "layer": r.type, "role": r.role, "output": "×".join(map(str, r.output_shape)),
      "params": r.params, "receptive field": r.receptive_field, "jump": r.jump, "MACs": r.macs}
     for r in summary.layers],
    hide_index=True, width="stretch")
with st.expander("The network as JSON"):
    st.code(links.spec_text(spec), language="json")
st.page_link("views/2_Train.py", label="Train this network →", icon="🏋️")
rfexplorer.growth_chart(spec)
