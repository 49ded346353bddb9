"""Draw's robustness lab: sliders that rotate, shift, scale, thicken or thin the student's digit, with the network's
answer across each transform's whole range; and the smallest nudge to the pixels that changes its mind."""

from __future__ import annotations

import hashlib
from dataclasses import asdict

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from .. import analysis
from .. import robustness as rb
from .figures import GREEN, GREY, RED, enlarge

SCALE = 4
SIDE = 28 * SCALE  # the 28x28 images here are 112 px a side, each pixel a 4x4 block, all at the same size
KEY = "robust_"  # this section's session-state keys
DEFAULTS = {kind: getattr(rb.Settings(), kind) for kind in rb.RANGES}
WHY = {
    "rotate": "People slant their digits, but MNIST's are nearly upright: turned far, a digit looks like nothing the "
              "network learned from (positive turns it clockwise).",
    "shift_x": "Convolutions find a stroke anywhere, yet every MNIST digit was centred by its centre of mass: moved "
               "off-centre, parts of it fall near the edge, where the filters see less of it.",
    "shift_y": "The same up and down: pushed far enough, part of the digit goes off the edge, and what is left can "
               "read as another digit.",
    "scale": "MNIST's digits all fill a 20×20 box, so the filters learned strokes of one size; much smaller or "
             "larger, the strokes and gaps are of sizes it never saw.",
    "thickness": "Pens differ: a thicker stroke fills in the holes of 0s, 6s, 8s and 9s, a thinner one breaks it "
                 "apart (each step adds or takes away a pixel on each side of every stroke).",
}


def _slider(kind: str):
    r = rb.RANGES[kind]
    if kind == "scale":
        return st.slider(f"{r.label} ({r.unit.strip()})", float(r.lo), float(r.hi), float(DEFAULTS[kind]),
                         float(r.step), key=KEY + kind, format="%.2f")
    return st.slider(f"{r.label} ({r.unit.strip()})", int(r.lo), int(r.hi), int(DEFAULTS[kind]), int(r.step),
                     key=KEY + kind)


def _settings() -> rb.Settings:
    """Every slider's value as the session holds it, read before the sliders are drawn, so that each transform's
    plot can hold the others where the student put them."""
    s = rb.Settings()
    for kind in rb.RANGES:
        s = s.with_value(kind, st.session_state.get(KEY + kind, DEFAULTS[kind]))
    return s


def _reset() -> None:
    for kind in rb.RANGES:  # forgotten, not set: each slider comes back at its default, with no warning about both
        st.session_state.pop(KEY + kind, None)


def _show(value: float, kind: str) -> str:
    return f"{value:.2f}{rb.RANGES[kind].unit}" if kind == "scale" else f"{value:+g}{rb.RANGES[kind].unit}"


def sweep_figure(sweep: rb.Sweep, digit: int, now: float, now_digit: int, now_prob: float) -> go.Figure:
    """The probability of ``digit`` (the drawn digit's answer) across a transform's range, each value that the
    network calls something else marked in red with what it calls it, a dotted line wherever it changes its mind, and
    the slider's value as a solid line labelled with the answer there."""
    kind, x = sweep.kind, sweep.values
    other = sweep.predictions != digit
    said = [f"{_show(v, kind)}: says {p} ({q[p]:.0%})" for v, p, q in zip(x, sweep.predictions, sweep.probs)]
    fig = go.Figure(go.Scatter(
        x=x, y=sweep.probs[:, digit], mode="lines+markers+text", line_color="#1f77b4", customdata=said,
        marker=dict(color=[RED if o else GREEN for o in other], size=7),
        text=[str(p) if o else "" for p, o in zip(sweep.predictions, other)], textposition="top center",
        textfont=dict(color=RED), hovertemplate="%{customdata}<extra></extra>"))
    for i in sweep.changes():
        fig.add_vline(x=(x[i - 1] + x[i]) / 2, line_dash="dot", line_color=GREY)
    fig.add_vline(x=now, line_color="#31333f", line_width=2)
    fig.add_annotation(x=now, y=1.12, yref="y", showarrow=False, yanchor="bottom",
                       text=f"now {_show(now, kind)}: {now_digit} ({now_prob:.0%})",
                       font=dict(color=GREEN if now_digit == digit else RED, size=13),
                       bgcolor="rgba(255,255,255,0.9)")  # over the slider's line, readable
    fig.update_layout(height=210, margin=dict(l=10, r=10, t=30, b=10), showlegend=False,
                      meta=dict(kind=kind, now=float(now), prediction=int(now_digit), held=asdict(sweep.base)),
                      xaxis=dict(title=f"{rb.RANGES[kind].label} ({rb.RANGES[kind].unit.strip()})",
                                 range=[x[0] - (x[1] - x[0]), x[-1] + (x[1] - x[0])]),
                      yaxis=dict(title=f"P({digit})", range=[0, 1.3], tickformat=".0%", tickvals=[0, 0.5, 1]))
    return fig


def signed_change(change: np.ndarray, scale: int = SCALE) -> np.ndarray:
    """A (28, 28) signed change as uint8 RGB, enlarged: red where ink was added, blue where it was taken away, black
    where nothing changed; scaled to its largest change, so that a faint nudge still shows."""
    peak = float(np.abs(change).max()) or 1.0
    s = np.clip(change / peak, -1, 1)[..., None]
    rgb = np.where(s > 0, s * np.array([1.0, 0.2, 0.2]), -s * np.array([0.3, 0.55, 1.0]))
    return np.kron((rgb * 255).astype(np.uint8), np.ones((scale, scale, 1), dtype=np.uint8))


def _transforms(model, image: np.ndarray) -> None:
    settings = _settings()
    base = analysis.predict(model, image)
    digit = int(base.argmax())
    shown = rb.transform(image, settings).numpy()
    probs = analysis.predict(model, shown)
    now = int(probs.argmax())
    drawn, changed, answer = st.columns(3)
    drawn.image(enlarge(image, SCALE), caption=f"as drawn: {digit} ({base[digit]:.0%})", width=SIDE,
                output_format="PNG")
    changed.image(enlarge(shown, SCALE), caption="after the sliders", width=SIDE, output_format="PNG")
    answer.metric("Prediction after the change", str(now), f"{probs[now]:.0%} sure", delta_color="off",
                  delta_arrow="off")
    answer.button("Back to the digit as drawn", key=KEY + "reset", on_click=_reset)
    st.caption(f"Each plot runs one slider over its whole range, the others held where they are: the line is how sure "
               f"the network stays that it is a {digit}; a red point is another answer, a dotted line where it "
               "changes its mind, the solid line where the slider is now.")
    for kind, r in rb.RANGES.items():
        control, plot = st.columns([1, 2], vertical_alignment="center")
        with control:
            value = _slider(kind)
            st.caption(WHY[kind])
        sweep = rb.sweep(model, image, kind, r.values(), base=settings)
        plot.plotly_chart(sweep_figure(sweep, digit, value, now, float(probs[now])), width="stretch",
                          config={"displayModeBar": False}, key=KEY + "plot_" + kind)


def _fingerprint(model, image: np.ndarray) -> str:
    """The model's weights and the image, hashed: a nudge is kept only for the digit and the network it was for."""
    digest = hashlib.sha256(np.ascontiguousarray(image, dtype=np.float32).tobytes())
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def _nudge(model, image: np.ndarray) -> None:
    st.markdown("**The smallest nudge**")
    st.caption("A few gradient steps push every pixel a little (at most a small budget, grown until it works) in the "
               "direction that lowers the network's answer; then only the pixels that matter most are kept. A change "
               "you can hardly see can make it name another digit: it never learned what a digit is, only what the "
               "training digits looked like.")
    fingerprint = _fingerprint(model, image)
    if st.button("Nudge my digit", key=KEY + "nudge"):
        with st.spinner("Looking for the smallest nudge…"):
            st.session_state[KEY + "nudged"] = (fingerprint, rb.nudge(model, image))
    kept = st.session_state.get(KEY + "nudged")
    if kept is None or kept[0] != fingerprint:  # none yet, or made for another drawing or model
        return
    n: rb.Nudge = kept[1]
    cols = st.columns(4)
    cols[0].image(enlarge(n.original, SCALE), caption=f"as drawn: {n.before} ({n.before_probs[n.before]:.0%})",
                  width=SIDE, output_format="PNG")
    cols[1].image(signed_change(n.change), caption="the nudge: red adds ink, blue takes it away", width=SIDE,
                  output_format="PNG")
    cols[2].image(enlarge(n.nudged, SCALE), caption="nudged", width=SIDE, output_format="PNG")
    cols[3].metric("Prediction after the nudge", str(n.after), f"{n.after_probs[n.after]:.0%} sure",
                   delta_color="off", delta_arrow="off")
    if n.flipped:
        st.success(f"From {n.before} to {n.after}: {n.words()} (on the 0–1 brightness scale, of 784 pixels). "
                   f"The network now gives {n.before} only {n.after_probs[n.before]:.0%}.")
    else:
        st.info(f"No nudge of at most {n.budget:.2f} per pixel changed its mind: this digit is a sturdy "
                f"{n.before}. (The last try {n.words()}.)")


@st.fragment
def _lab(model, image: np.ndarray) -> None:
    # A slider reruns only this lab: the drawing's other views above are not computed again.
    _transforms(model, image)
    _nudge(model, image)


def section(model, image: np.ndarray) -> None:
    """The robustness lab, in an expander whose content is computed only while it is open."""
    with st.expander("How sure is it, really? Rotate, shift, scale, thicken, nudge", key=KEY + "lab",
                     on_change="rerun") as lab:
        if lab.open:
            _lab(model, image)
