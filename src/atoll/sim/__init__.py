"""The device fleet simulator: realistic signals, injected faults with ground truth, MQTT load.

>>> from atoll import sim
>>> fleet = sim.Fleet.build("manufacturing", 4, seed=7, start=1_700_000_000.0)
>>> len(fleet.advance(1_700_000_001.0))  # one second at 1 reading/s: every device once
4
"""

from atoll.sim.evaluate import evaluate
from atoll.sim.faults import Fault, read_ground_truth, write_ground_truth
from atoll.sim.fleet import Fleet, Reading, SimDevice, plan_devices

__all__ = [
    "Fault",
    "Fleet",
    "Reading",
    "SimDevice",
    "evaluate",
    "plan_devices",
    "read_ground_truth",
    "write_ground_truth",
]
