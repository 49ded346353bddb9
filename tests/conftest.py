"""Shared fixtures. A test that needs something missing (the data, a browser) fails in CI and skips elsewhere."""

import os

import pytest

from mnistlab import data as mdata

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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
