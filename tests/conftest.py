"""Shared fixtures. A test that needs something missing (the data, a browser) fails in CI and skips elsewhere.

Tests wait on events (a run's change, a line a subprocess prints, an element a page shows), never on the clock:
``HANG`` is how long a wait may last before it counts as a hang, long enough for a busy two-core machine.
"""

import collections
import os
import queue
import subprocess
import threading
import time

import pytest

from mnistlab import data as mdata
from mnistlab import train
from mnistlab.jobs import JobManager

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
HANG = 300  # seconds: a wait that lasts this long is a hang, not a slow machine

QUICK = train.TrainConfig(epochs=1, train_subset=1000, batch_size=100, seed=0)  # a run of a few seconds


def need(condition: bool, why: str) -> None:
    """Fail loudly in CI, skip with the reason on a user's machine."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required for this test in CI: {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def data_root():
    root = mdata.default_root()
    need(not mdata.cache_problems(root), f"MNIST is not cached in {root}: run `python -m mnistlab data` first")
    return root


@pytest.fixture(scope="session")
def mnist(data_root):
    return mdata.load(data_root, fetch=False)


def held(mnist):
    """``(load_data, release)``: a ``load_data`` for a JobManager that holds the worker on its first job until
    ``release`` is set (a manager loads its data once, so only the first job waits), so that the queue can be looked
    at while nothing moves. Set ``release`` in a ``finally``."""
    release = threading.Event()

    def load():
        release.wait(HANG)
        return mnist

    return load, release


@pytest.fixture
def manager(mnist, tmp_path):
    """A job manager on a fresh registry (tmp_path/runs), training on the cached MNIST; closed after the test."""
    m = JobManager(tmp_path / "runs", load_data=lambda: mnist)
    yield m
    m.close()


class ProcessOutput:
    """A subprocess's stdout (text mode), read line by line on a thread so that its pipe never fills; a test waits
    for the line that says what it needs (the server is up, the run is mid-epoch) instead of guessing a delay."""

    def __init__(self, proc: subprocess.Popen):
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.seen: collections.deque[str] = collections.deque(maxlen=200)
        self.log: list[str] = []  # every line, as it is read
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.log.append(line)
            self._lines.put(line)
        self._lines.put(None)  # the process closed its output: it has ended

    def wait_for(self, text: str, timeout: float = HANG) -> str:
        """The first line (from here on) containing ``text``; fails when the process ends first or after
        ``timeout`` seconds (a hang)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line containing {text!r} within {timeout} s; last output:\n{self.tail()}")
            if line is None:
                self._lines.put(None)  # still ended for the next caller
                pytest.fail(f"the process ended before printing {text!r}; last output:\n{self.tail()}")
            self.seen.append(line)
            if text in line:
                return line

    def tail(self) -> str:
        return "".join(self.seen)[-3000:]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole test session (each test opens its own pages or contexts)."""
    from .browser import chromium

    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def server(tmp_path_factory, data_root):
    """`streamlit run app.py` on a fresh runs folder, shared by one test module; its URL."""
    from .browser import running_server

    with running_server(tmp_path_factory.mktemp("runs"), data_root) as url:
        yield url
