"""What every session of this server shares, made once and cached: the job manager, loaded models, the data set."""

from __future__ import annotations

import numpy as np
import streamlit as st

from .. import analysis, checkpoint
from .. import data as mdata
from ..jobs import JobManager, default_runs_dir, shared_manager


@st.cache_resource
def job_manager() -> JobManager:
    """One manager, one worker thread, one device for every session of this server."""
    return shared_manager(default_runs_dir())


@st.cache_resource(max_entries=32)
def load_model(path: str, mtime: float):
    """A checkpoint's network in eval mode, cached per file version. Raises CheckpointError; never reads through a
    link (a runs folder is not to be trusted)."""
    return checkpoint.load(path, follow_links=False).model()


@st.cache_resource
def mnist() -> mdata.MNIST:
    """The data set, loaded once per server (fetched on first use if it is not cached yet)."""
    return mdata.load()


@st.cache_data(max_entries=16, show_spinner="Running the network on the 10,000 test images…")
def test_probabilities(path: str, mtime: float) -> np.ndarray:
    """(10000, 10) test-set probabilities of a checkpoint, cached per file version."""
    return analysis.test_predictions(load_model(path, mtime), mnist().test)
