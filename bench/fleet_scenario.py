"""The set-up shared by the fleet detection benchmarks (``detect_fleet.py``, ``detect_alarms.py``).

A seeded ``atoll.sim`` fleet starting at a fixed virtual time, fault-free for ``--learn-days``,
then ``--faults`` faults on distinct devices until ``--days``; its readings tick by tick as
``(device, metric, ts, value)`` rows; one printed line per scored result and the JSON file with
the machine and the date.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from atoll.sim.faults import Fault
from atoll.sim.fleet import Fleet

START = 1_764_000_000.0  # a fixed virtual start (a Monday, 16:00 UTC) keeps runs reproducible
DAY = 86_400.0

Row = tuple[str, str, float, float]  # device id, metric, epoch seconds, value


def add_arguments(parser: argparse.ArgumentParser, *, devices: int, faults: int) -> None:
    """The fleet, fault and scoring options both benchmarks take."""
    parser.add_argument("--devices", type=int, default=devices)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument(
        "--learn-days", type=float, default=1.0, help="fault-free commissioning at the start"
    )
    parser.add_argument("--step", type=float, default=30.0, help="seconds between readings")
    parser.add_argument("--faults", type=int, default=faults)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--grace",
        type=float,
        default=300.0,
        help="seconds after a fault's end that a detection still counts",
    )
    parser.add_argument("--json", help="write the results here")


@dataclass
class Scenario:
    fleet: Fleet
    faults: list[Fault]
    learn_end: float  # epoch seconds: faults start after it
    end: float

    def ticks(self, step: float) -> Iterator[list[Row]]:
        """Every device's reading at each tick from the start to ``end``, as rows."""
        for readings in self.fleet.history(self.end, step):
            yield [
                (self.fleet.devices[r.device].device_id, metric, r.ts, float(v))
                for r in readings
                for metric, v in r.values.items()
            ]


def scenario(
    template: str, args: argparse.Namespace, *, kinds: Iterable[str] | None = None
) -> Scenario:
    """The fleet of ``args`` with its faults planned; with ``kinds``, at most one fault per
    device that can have one of them."""
    fleet = Fleet.build(template, args.devices, seed=args.seed, start=START)
    learn_end, end = START + args.learn_days * DAY, START + args.days * DAY
    count = args.faults
    if kinds is not None:
        kinds = set(kinds)
        count = min(
            count,
            sum(
                1
                for i in range(len(fleet.devices))
                if {k.value for k in fleet.device_type(i).faults} & kinds
            ),
        )
    return Scenario(fleet, fleet.plan_faults(count, learn_end, end, kinds=kinds), learn_end, end)


def summary(label: str, res: dict[str, Any], *, noun: str = "detections", extra: str = "") -> str:
    """One line for an ``atoll.sim.evaluate`` result."""
    ttd = "-" if res["median_ttd"] is None else f"{res['median_ttd']:.0f}s"
    prec = "-" if res["precision"] is None else f"{res['precision']:.2f}"
    kinds = ", ".join(f"{k} {v['detected']}/{v['faults']}" for k, v in res["by_kind"].items())
    return (
        f"{label:28s} {noun} {res['detections']:5d}  precision {prec:>5s}  recall "
        f"{res['recall']:.2f}  median TTD {ttd:>6s}  {extra}by kind {kinds}"
    )


def write_json(path: str | None, out: dict[str, Any]) -> None:
    """``out`` plus the machine and the date, to ``path`` (nothing without a path)."""
    if not path:
        return
    out = {
        **out,
        "machine": {"python": platform.python_version(), "cores": os.cpu_count()},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
