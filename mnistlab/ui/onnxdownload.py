"""The Runs page's ONNX download: exported when a student asks for it (it takes seconds), then offered as a file."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from .. import onnxfile
from ..data import MEAN, STD

HELP = ("The network as an ONNX file, for ONNX Runtime or any other ONNX tool, without PyTorch. Its input 'image' "
        "is a float32 batch (N, 1, 28, 28), N any size: white digits on black in [0, 1], prepared as on the Draw "
        f"page and normalised as in training, (x − {MEAN}) / {STD} (the file's description says so too); its "
        "output 'logits' is (N, 10).")


@st.cache_data(max_entries=8, show_spinner=False)
def _exported(path: str, mtime: float) -> bytes:
    """One export per checkpoint version, shared by every session (a failure is not kept: a retry exports again)."""
    return onnxfile.export_checkpoint(path)


def offer(column, run_id: str, path: Path, epochs_done: int, finished: bool) -> None:
    """In ``column``: a button that exports run ``run_id``'s checkpoint ``path``, then its download."""
    try:
        mtime = path.lstat().st_mtime
    except OSError:  # deleted since the page looked: the page says so on its next run
        return
    asked = f"onnx_{run_id}_{mtime}"  # the weights of an active run change every epoch: one export per version
    if column.button("Export to ONNX", key="make_onnx", help=HELP):
        st.session_state["onnx_asked"] = asked
    if st.session_state.get("onnx_asked") != asked:
        return
    try:
        with column, st.spinner("Exporting to ONNX…"):
            data = _exported(str(path), mtime)
    except onnxfile.OnnxExportError as e:
        st.session_state.pop("onnx_asked", None)  # tried again only when asked again, not on every rerun
        column.error(f"The ONNX export failed: {e}")
        return
    column.download_button("ONNX file (.onnx)", data, file_name=f"{run_id}.onnx", mime="application/octet-stream",
                           key="dl_onnx", on_click="ignore",
                           help=HELP if finished else f"The weights after epoch {epochs_done}. " + HELP)
