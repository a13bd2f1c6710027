"""The docstring examples of the simulator and the solution catalog run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["atoll.sim", "atoll.sim.fleet", "atoll.sim.evaluate", "atoll.solutions",
           "atoll.solutions.catalog"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
