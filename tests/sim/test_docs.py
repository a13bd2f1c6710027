"""The public surface of the simulator and the solution catalog (their docstring examples run
under pytest's ``--doctest-modules``)."""

from __future__ import annotations


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
