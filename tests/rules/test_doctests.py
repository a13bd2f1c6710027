"""The docstring examples of the rules package run."""

from __future__ import annotations

import doctest

import pytest

import atoll.rules
from atoll.rules import clock, durations, model


@pytest.mark.parametrize("module", [atoll.rules, clock, durations, model])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
