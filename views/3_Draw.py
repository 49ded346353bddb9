"""Draw: a digit on the canvas, the network's prediction, and what each layer sees."""

from pathlib import Path

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from mnistlab import analysis, checkpoint, drawing
from mnistlab.ui import figures, labels, resources

st.title("Draw a digit")

# Options are stable keys: a run's label changes as it trains, and a changed option would reset the choice.
models: dict[str, tuple[str, str]] = {f"preset:{name}": (f"preset · {name}", str(path))
                                      for name, path in checkpoint.shipped().items()}
for run in resources.job_manager().runs():
    if run.checkpoint_path and Path(run.checkpoint_path).exists():
        models[f"run:{run.id}"] = (f"run · {labels.run_label(run)}", run.checkpoint_path)
if not models:
    st.error("No trained model is available: the shipped weights are missing and no run has finished yet.")
    st.stop()
# Opened from the Train page, Draw starts on the network this session just trained.
just_trained = f"run:{st.session_state.get('job_id')}"
choice = st.selectbox("Model", list(models), format_func=lambda key: models[key][0], key="model_choice",
                      index=list(models).index(just_trained) if just_trained in models else 0)
try:
    path = models[choice][1]
    model = resources.load_model(path, Path(path).lstat().st_mtime)
except (checkpoint.CheckpointError, OSError) as e:
    st.error(f"That model could not be loaded: {e}")
    st.stop()

if "clears" not in st.session_state:
    st.session_state.clears = 0


def clear() -> None:
    # A changed initial drawing makes the canvas reload it, i.e. empty itself. (Changing the canvas key instead
    # remounts a canvas that, in streamlit-drawable-canvas 0.13, no longer takes strokes.)
    st.session_state.clears += 1


left, right = st.columns([1, 1], gap="large")
with left:
    pen = st.slider("pen width", 6, 40, 18)
    result = st_canvas(stroke_width=pen, stroke_color="#FFFFFF", background_color="#000000", width=280, height=280,
                       drawing_mode="freedraw", return_image_data=True, key="canvas",
                       initial_drawing={"objects": [], "clears": st.session_state.clears})
    st.button("Clear", on_click=clear)
    st.caption("White ink on black, like MNIST. Draw big or small, anywhere: the digit is cropped, scaled to "
               "20×20 and centred by its centre of mass, as MNIST was made.")

def canvas_png() -> bytes:
    """The PNG the browser sent for the canvas; whatever it sent is checked before it is decoded."""
    try:
        raw = result.image_bytes if result is not None else None
    except (ValueError, TypeError):  # not a base64 data URL: not what our canvas sends
        raise drawing.DrawingError("the drawing sent by the browser could not be read") from None
    if raw is None:
        raise drawing.BlankDrawing("the canvas is empty")
    return raw


image = None
with right:
    try:
        image = drawing.to_mnist(drawing.image_from_png(canvas_png()))
    except drawing.DrawingError as e:
        st.metric("Prediction", "—")
        (st.info if isinstance(e, drawing.BlankDrawing) else st.error)(str(e))
    else:
        probs = analysis.predict(model, image)
        top = int(probs.argmax())
        st.metric("Prediction", str(top), f"{probs[top]:.0%} sure", delta_color="off", delta_arrow="off")
        st.plotly_chart(figures.probabilities(probs), width="stretch", config={"displayModeBar": False})
        a, b = st.columns(2)
        a.image(figures.enlarge(image, 6), caption="what the network sees (28×28)")
        b.image(figures.enlarge(analysis.saliency(model, image), 6),
                caption="saliency: pixels the decision leans on")

if image is not None:
    st.subheader("Look inside: every conv layer's feature maps")
    st.caption("Each small square is one channel's response (bright = strong). Early layers find strokes and edges; "
               "later ones respond to parts of digits; the head has one map per digit.")
    for fm in analysis.feature_maps(model, image):
        st.markdown(f"**{fm.name}** — {fm.maps.shape[1]}×{fm.maps.shape[2]}")
        scale = max(1, 96 // fm.maps.shape[1])
        st.image(figures.tile(fm.maps, columns=16, scale=scale))
