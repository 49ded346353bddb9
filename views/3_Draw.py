"""Draw: a digit on the pad, the network's prediction the moment a stroke ends, and what it looked at."""

from pathlib import Path

import streamlit as st

from mnistlab import analysis, checkpoint, drawing
from mnistlab.ui import convstep, drawpad, figures, labels, photo, resources, rfexplorer, robustness

SCALE = 6  # the 28x28 images are shown 168 px a side, each pixel a 6x6 block

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
                      index=list(models).index(just_trained) if just_trained in models else 0,
                      help="Each network learnt on its own: draw the same digit for a preset and for your run, and "
                           "see where they disagree.")
try:
    path = models[choice][1]
    model = resources.load_model(path, Path(path).lstat().st_mtime)
except (checkpoint.CheckpointError, OSError) as e:
    st.error(f"That model could not be loaded: {e}")
    st.stop()


def look_inside(model, image, probs) -> None:
    """The ten probabilities, the 28x28 image the network saw, and the pixels its answer leaned on."""
    st.plotly_chart(figures.probabilities(probs), width="stretch", config={"displayModeBar": False},
                    key="probabilities")
    seen, leaned = st.columns(2)
    side = 28 * SCALE  # both at the same size, pixel for pixel
    seen.image(figures.enlarge(image, SCALE), caption="what the network sees (28×28)", width=side,
               output_format="PNG")
    leaned.image(figures.saliency_overlay(image, analysis.smoothgrad(model, image), SCALE), width=side,
                 caption="red: ink here makes it this digit; blue: ink here would not (SmoothGrad)",
                 output_format="PNG")


def head(model, image) -> None:
    """The last conv layer's ten maps, one per digit; every conv layer's maps once asked for."""
    st.subheader("Look inside: one map per digit")
    st.caption("The last conv layer makes ten maps, one per digit; each map's average is that digit's score, and "
               "the highest wins. All ten share one colour scale: red for the digit, blue against.")
    st.plotly_chart(figures.head_maps(analysis.head_maps(model, image)), width="stretch",
                    config={"displayModeBar": False}, key="head_maps")
    with st.expander("Every conv layer's feature maps", key="all_feature_maps", on_change="rerun") as maps:
        if maps.open:  # computed only when asked for
            st.caption("Each small square is one channel's response (bright = strong), each on its own scale. "
                       "Early layers find strokes and edges; later ones respond to parts of digits.")
            for fm in analysis.feature_maps(model, image):
                st.markdown(f"**{fm.name}** — {fm.maps.shape[1]}×{fm.maps.shape[2]}")
                st.image(figures.tile(fm.maps, columns=16, scale=max(1, 96 // fm.maps.shape[1])))


@st.fragment
def draw(model) -> None:
    # A stroke reruns only this fragment: the model list and the registry above are not read again.
    source = photo.source()
    pad_side, answer_side = st.columns([1, 1], gap="large")
    with pad_side:
        try:
            if source == photo.PHOTO:  # the upload or the webcam, and its crop, in place of the pad
                st.session_state.pad_away = True
                image = photo.photo_digit()
            else:
                # The kept drawing goes back to the browser only when the pad may be new: not with every stroke.
                back = st.session_state.pop("pad_away", False)
                sent = drawpad.drawing_pad(st.session_state.get("pen", 18),
                                           restore=st.session_state.get("drawn") if back else None)
                st.session_state.drawn = None  # kept only once it checks: a pad back on the page redraws it
                if sent is None:
                    raise drawing.BlankDrawing()
                image = drawing.to_mnist(drawing.image_from_data_url(sent))
                st.session_state.drawn = sent
        except drawing.DrawingError as e:
            image, problem = None, e
        # Directly under the pad, so that on a phone, where the columns stack, the answer is in view after a stroke.
        if image is None:
            st.metric("Prediction", "—")
            (st.info if isinstance(problem, drawing.BlankDrawing) else st.error)(str(problem))
        else:
            probs = analysis.predict(model, image)
            top = int(probs.argmax())
            st.metric("Prediction", str(top), f"{probs[top]:.0%} sure", delta_color="off", delta_arrow="off")
            if analysis.unsure(probs):
                st.warning(f"Not sure this is a digit: the network's best guess gets only {probs[top]:.0%}. It "
                           "knows only digits, so it always names one, and a scribble can still get a confident "
                           "answer.")
        if source == photo.PHOTO:
            photo.crop_controls()
        else:
            st.slider("pen width", 6, 40, 18, key="pen", persist_state="session",
                      help="MNIST's strokes are a few of its 28 pixels wide: try a thin or a fat pen and see "
                           "whether the network still knows the digit.")
            st.caption("White ink on black, like MNIST. Draw big or small, anywhere: the digit is cropped, scaled "
                       "to 20×20 and centred by its centre of mass, as MNIST was made.")
    if image is not None:
        with answer_side:
            look_inside(model, image, probs)
        head(model, image)
        convstep.section(model, image)  # from the first layer's arithmetic, to what a unit sees, to how sure it is
        rfexplorer.section(model, image)
        robustness.section(model, image)


st.session_state.pad_away = True  # a run of the whole page: the pad may have been on another page meanwhile
draw(model)
