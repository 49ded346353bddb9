"""The Draw page's photo: a handwritten digit on paper, uploaded (PNG, JPEG) or taken with the webcam, cropped by the
student, then read as a drawing is (``mnistlab/photo.py`` prepares it, bounded before anything is decoded)."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from .. import drawing
from .. import photo as lib

DRAW, PHOTO = "Draw", "Photo"
CROP_X, CROP_Y = "photo_crop_x", "photo_crop_y"  # the crop, in percent of the photo's width and height
HELD = "photo_held"  # (the file's id, its luminance): decoded once, not on every move of a crop slider
PREVIEW_SIDE = 280
CROP_WHY = ("The network reads only what is inside the crop, scaled to 20×20 as MNIST was: cut a stroke off, or let "
            "a smudge in, and see the answer change.")
MAX_MB = lib.MAX_PHOTO_BYTES // 2**20


class NoPhoto(drawing.BlankDrawing):
    """No photo yet, or no digit inside the crop: a hint, not an error."""

    def __init__(self, text: str):
        drawing.DrawingError.__init__(self, text)


def source() -> str:
    """Where the digit comes from: the pad or a photo."""
    return st.segmented_control("Where the digit comes from", [DRAW, PHOTO], default=DRAW, required=True,
                                key="draw_source", label_visibility="collapsed",
                                format_func=lambda option: {DRAW: "✏️ Draw", PHOTO: "📷 Photo"}[option])


def photo_digit() -> np.ndarray:
    """The photo's digit as the network sees it, (28, 28), shown above with the crop drawn on it. Raises NoPhoto
    (nothing to read yet) or DrawingError (a file that is not a photo we can read), with the message to show."""
    if st.toggle("Take it with the webcam", key="photo_camera", persist_state="page"):
        file = st.camera_input("A photo of a digit on paper", key="photo_shot")
    else:
        file = st.file_uploader(f"A photo of a handwritten digit (PNG or JPEG, up to {MAX_MB} MB)",
                                type=["png", "jpg", "jpeg"], key="photo_upload", max_upload_size=MAX_MB)
    if file is None:
        st.session_state.pop(HELD, None)
        raise NoPhoto("Upload a photo of a handwritten digit, or take one: dark ink on light paper, or light on "
                      "dark, one digit, as large as you like.")
    grey = _held(file)
    (left, right), (top, bottom) = st.session_state[CROP_X], st.session_state[CROP_Y]
    box = (left / 100, top / 100, right / 100, bottom / 100)
    st.image(preview(grey, box), caption="your photo; the red box is the crop the network reads",
             width=PREVIEW_SIDE, output_format="PNG")
    if right <= left or bottom <= top:
        raise NoPhoto("The crop is empty: widen it round the digit.")
    try:
        image, inverted = lib.photo_to_mnist(grey, box)
    except drawing.BlankDrawing:
        raise NoPhoto("No digit inside the crop: move the crop onto the digit.") from None
    if inverted:
        st.caption("Dark ink on light paper: inverted to white on black, as MNIST is; the paper's own shade and "
                   "its noise become black.")
    return image


def _held(file) -> np.ndarray:
    """The photo's luminance, decoded when a new photo arrives (its crop then starts round its ink)."""
    held = st.session_state.get(HELD)
    if held is not None and held[0] == file.file_id and CROP_X in st.session_state and CROP_Y in st.session_state:
        return held[1]
    st.session_state.pop(HELD, None)  # a new file that fails leaves no crop of the last photo on the page
    if file.size > lib.MAX_PHOTO_BYTES:  # also refused by the uploader, and again by image_from_photo
        raise drawing.DrawingError(f"the photo is over {MAX_MB} MB")
    grey = lib.image_from_photo(file.getvalue())
    left, top, right, bottom = lib.auto_crop(grey)
    st.session_state[CROP_X] = (math.floor(left * 100), math.ceil(right * 100))
    st.session_state[CROP_Y] = (math.floor(top * 100), math.ceil(bottom * 100))
    st.session_state[HELD] = (file.file_id, grey)
    return grey


def crop_controls() -> None:
    """The crop's sliders (shown once there is a photo): it starts round the ink, with a margin."""
    if HELD not in st.session_state:
        return
    st.slider("crop: left to right (% of the photo's width)", 0, 100, key=CROP_X, persist_state="page",
              help=CROP_WHY)
    st.slider("crop: top to bottom (% of the photo's height)", 0, 100, key=CROP_Y, persist_state="page",
              help=CROP_WHY)


def preview(grey: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """The photo at PREVIEW_SIDE a side at most, in grey, with the crop drawn on it in red."""
    img = Image.fromarray((np.clip(grey, 0, 1) * 255).astype(np.uint8)).convert("RGB")
    img.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    w, h = img.size
    left, top, right, bottom = box
    ImageDraw.Draw(img).rectangle((left * w, top * h, max(left * w, right * w - 1), max(top * h, bottom * h - 1)),
                                  outline=(255, 40, 40), width=2)
    return np.asarray(img)
