"""Docstring examples in the detect package are tests."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "atoll.detect",
    "atoll.detect.gaussian",
    "atoll.detect.ewma",
    "atoll.detect.seasonal",
    "atoll.detect.mahalanobis",
    "atoll.detect.threshold",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
