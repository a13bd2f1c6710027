"""The device fleet simulator: realistic signals, injected faults with ground truth, MQTT load.

>>> from atoll import sim
>>> fleet = sim.Fleet.build("manufacturing", 4, seed=7, start=1_700_000_000.0)
>>> len(fleet.advance(1_700_000_001.0))  # one second at 1 reading/s: every device once
4
"""

from atoll.sim.evaluate import evaluate
from atoll.sim.faults import Fault, read_ground_truth, write_ground_truth
from atoll.sim.fleet import Fleet, Reading, SimDevice, plan_devices
from atoll.sim.mqtt import Broker, MqttFleet, RunStats
from atoll.sim.provision import load_credentials, provision, save_credentials

__all__ = [
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
