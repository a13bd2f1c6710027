"""Fixtures for the whole suite."""

from __future__ import annotations

import os

import pytest

from atoll.core.errors import NotFound

# Platforms started by the tests (in process or as `atoll up` subprocesses, which inherit this)
# do not load the forecasting library in the background: seconds of CPU each, on every start.
os.environ.setdefault("ATOLL_FORECAST_PRELOAD", "0")


@pytest.fixture(scope="session")
def nab_corpus():
    """The NAB corpus (``../shared/datasets/nab`` or ``$ATOLL_NAB_DIR``); the test is skipped,
    saying where it looked, when a clone has no corpus beside it."""
    from atoll.detect.nab import load_corpus

    try:
        return load_corpus()
    except NotFound as e:
        pytest.skip(f"optional NAB corpus absent: {e.message}")


@pytest.fixture(scope="session")
def smap_msl_corpus():
    """The SMAP/MSL corpus (``../shared/datasets/smap_msl`` or ``$ATOLL_SMAP_MSL_DIR``); the test
    is skipped, saying where it looked, when a clone has no corpus beside it."""
    from atoll.detect.smap_msl import load_corpus

    try:
        return load_corpus()
    except NotFound as e:
        pytest.skip(f"optional SMAP/MSL corpus absent: {e.message}")
