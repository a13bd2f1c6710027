"""The docstring examples of the simulator and the solution catalog run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "atoll.sim",
    "atoll.sim.fleet",
    "atoll.sim.evaluate",
    "atoll.sim.faults",
    "atoll.solutions",
    "atoll.solutions.catalog",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_public_surface():
    import atoll.sim
    import atoll.solutions

    assert sorted(atoll.sim.__all__) == [
        "Broker",
        "Fault",
        "Fleet",
        "MqttFleet",
        "Reading",
        "RunStats",
        "SimDevice",
        "evaluate",
        "load_credentials",
        "plan_devices",
        "provision",
        "read_ground_truth",
        "save_credentials",
        "write_ground_truth",
    ]
    for module in (atoll.sim, atoll.solutions):
        for name in module.__all__:
            assert getattr(module, name) is not None, name
