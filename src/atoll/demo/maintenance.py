"""The demo's predictive maintenance: motors wear out, a crew records it, an RUL model warns.

The manufacturing template's motors wear to failure in the simulator (``Fleet(wear=True)``,
``atoll.sim.wear``): vibration and bearing temperature creep up, the motor fails and is repaired
as new. Everything else goes through the public API, as the plant's people would do it:

* the crew's log of the back-filled hour (each failure and its repair) is imported as a CSV;
* the planner fits the motor type's RUL model on that history (``POST .../rul/fit``), approves
  and activates it, and adds the rule ``rul < horizon`` that raises a maintenance alarm;
* while the demo runs, the crew records each failure and repair when it happens.

``maintenance_report`` then says, for each motor that failed while the demo was live, how long
before its failure the maintenance alarm was first seen (or that it was not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from atoll.core.errors import AtollError
from atoll.sim.faults import iso
from atoll.sim.fleet import DeviceFailure, Fleet

#: The maintenance alarm: raised when the motor's estimated RUL falls under this (hours).
HORIZON_H = 0.15  # 9 minutes: the demo's motors last 18 to 30
#: One cycle of the RUL model: the demo's time scale is minutes.
CYCLE = "1m"
#: The RUL target's cap, in cycles: early wear does not show, so a young motor is "20 min +".
CAP = 20.0
log = logging.getLogger(__name__)

RULE_NAME = "Motor due for maintenance"
PART = "drive-end bearing"


def failure_rows(failures: list[DeviceFailure]) -> str:
    """The crew's log as the import's CSV (``device,at,kind,part,cost,note``): each failure and
    its repair a second later.

    >>> print(failure_rows([DeviceFailure("m-1", 1_700_000_000.0, 1_699_998_800.0)]), end="")
    device,at,kind,part,cost,note
    m-1,2023-11-14T22:13:20.000Z,failure,drive-end bearing,,bearing seized
    m-1,2023-11-14T22:13:21.000Z,repair,drive-end bearing,420,bearing replaced
    """
    lines = ["device,at,kind,part,cost,note"]
    for f in failures:
        lines.append(f"{f.device},{iso(f.at)},failure,{PART},,bearing seized")
        lines.append(f"{f.device},{iso(f.at + 1.0)},repair,{PART},420,bearing replaced")
    return "\n".join(lines) + "\n"


@dataclass
class Commissioned:
    """What the planner set up: the active RUL model and the maintenance rule."""

    model_id: str
    version: int
    device_type: str
    trajectories: int
    rmse_cycles: float | None
    fit_seconds: float
    rule_id: str


def commission(client: Any, project: str, device_type: str) -> Commissioned:
    """Fit ``device_type``'s RUL model on the stored history, approve and activate it, and add
    the maintenance rule (``client``: an ``atoll.Client`` with the operator role)."""
    t0 = time.perf_counter()
    model = client.fit_rul(project, device_type, cycle=CYCLE, cap=CAP)
    fit_s = time.perf_counter() - t0
    client.approve_model(project, model.id, "demo: cross-validated on the line's own failures")
    client.activate_model(project, model.id, "demo: put to work on the live motors")
    rule = client.create_rule(
        project,
        {
            "name": RULE_NAME,
            "severity": "major",
            "description": "The motor's remaining useful life (its type's RUL model) is under "
            f"{HORIZON_H * 60:.0f} minutes: plan the bearing change.",
            "target": {"device_type": device_type},
            "condition": {"type": "threshold", "metric": "rul", "op": "<", "value": HORIZON_H},
        },
    )
    card = model.card or {}
    return Commissioned(
        model.id,
        model.version,
        device_type,
        int((card.get("fleet") or {}).get("trajectories") or 0),
        (model.metrics or {}).get("rmse"),
        fit_s,
        rule.id,
    )


async def crew(
    client: Any,
    project: str,
    fleet: Fleet,
    since: float,
    stop: asyncio.Event,
    on_failure: Callable[[DeviceFailure], None] | None = None,
) -> None:
    """Record each failure from ``since`` on (and its repair) when it happens, until ``stop``."""
    t = since
    while not stop.is_set():
        now = time.time()
        for f in fleet.failures(t, now):
            try:
                await asyncio.to_thread(client.import_maintenance, project, failure_rows([f]))
            except AtollError as e:  # the log is the crew's; the demo goes on
                log.warning("recording %s's failure failed: %s", f.device, e)
            if on_failure:
                on_failure(f)
        t = now
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def maintenance_report(
    failures: list[DeviceFailure], first_seen: dict[str, list[float]]
) -> list[dict[str, Any]]:
    """Per failure: the first maintenance alarm seen on its device during its run, and how long
    before the failure (``first_seen``: device -> when each of its maintenance alarms was first
    seen, epoch s)."""
    out = []
    for f in failures:
        seen = [t for t in first_seen.get(f.device, ()) if f.began < t <= f.at]
        first = min(seen) if seen else None
        out.append(
            {
                "device": f.device,
                "failed_at": f.at,
                "life_s": round(f.at - f.began, 1),
                "alarmed_before_s": None if first is None else round(f.at - first, 1),
            }
        )
    return out
