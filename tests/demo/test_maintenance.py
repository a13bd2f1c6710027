"""The demo's predictive maintenance against a real server (SQLite registry, memory store, real
ingest, rules and RUL services): the line's motors wear out in the simulator, the crew's log of
the back-filled hour is imported, the motor RUL model is fitted, approved and activated through
the API with its maintenance rule, and the motors near their failure get the alarm, the others
not."""

from __future__ import annotations

import asyncio
import time

import numpy as np

import atoll
from atoll.core.points import PointBatch, SeriesKey
from atoll.demo.lab import LAB, build_lab
from atoll.demo.maintenance import HORIZON_H, RULE_NAME, failure_rows, maintenance_report
from atoll.demo.runner import DemoSummary, _commission, _worn
from atoll.sim import Fleet
from atoll.sim.fleet import DeviceFailure
from tests.api.serving import ApiServer
from tests.client.conftest import wait_for


def _store_history(store, fleet: Fleet, until: float, step: float) -> None:
    """The fleet's readings up to ``until`` straight into the store (the back-fill's content)."""
    per: dict[SeriesKey, tuple[list[int], list[float]]] = {}
    for readings in fleet.history(until, step):
        for r in readings:
            d = fleet.devices[r.device]
            for k, v in r.values.items():
                ts, vs = per.setdefault(SeriesKey(d.project or "", d.device_id, k), ([], []))
                ts.append(int(r.ts * 1e6))
                vs.append(float(v))
    keys = tuple(per)
    store.append(
        PointBatch(
            keys,
            np.concatenate([np.full(len(per[k][0]), i, np.int32) for i, k in enumerate(keys)]),
            np.concatenate([np.asarray(per[k][0], np.int64) for k in keys]),
            np.concatenate([np.asarray(per[k][1]) for k in keys]),
        )
    )


def test_motors_near_failure_get_the_maintenance_alarm(tmp_path):
    with ApiServer(tmp_path, rul=True) as server:
        admin = atoll.Client(server.url, server.boot.api_key)
        built = build_lab(admin, lambda key: atoll.Client(server.url, key), 14, lab=[LAB[0]])
        (b,) = built
        client = atoll.Client(server.url, b.api_key)
        now = time.time()
        fleet = Fleet(b.devices, seed=7, start=now - 3600, templates=[b.template], wear=True)
        _store_history(server.store, fleet, now, 5.0)
        [(_, _, device_type)] = _worn(built, [client])
        assert device_type == "motor"

        said: list[str] = []
        summary = DemoSummary()
        asyncio.run(_commission(summary, fleet, b, client, "motor", now, said.append))
        assert summary.rul_note is None, summary.rul_note
        m = summary.rul_model
        assert m is not None and m["trajectories"] >= 10 and m["rmse_cycles"] < 5
        model = client.model(b.project, m["model_id"])
        assert model.state == "active" and model.approved_by and model.params["cycle_seconds"] == 60
        rule = client.rule(b.project, m["rule_id"])
        assert rule.name == RULE_NAME
        assert rule.condition["metric"] == "rul" and rule.condition["value"] == HORIZON_H
        # Done as the operator would: each step is in the audit log.
        actions = {e.action for e in client.audit(limit=200)}
        assert {"model.register", "model.approve", "model.activate"} <= actions
        # The history's failures were imported (each with its repair).
        failed = fleet.failures(fleet.start, now)
        logged = client.maintenance(project=b.project, kind="failure", limit=1000)
        assert len(logged) == len(failed) >= 10

        # One reading per motor now: the RUL service judges the last complete minute.
        motors = [d for d in b.devices if d.device_type == "motor"]
        for d in motors:
            with atoll.DeviceClient(server.url, d.device_id, d.secret) as dc:
                dc.send({"current": 30.0}, ts=int(now * 1000))
        due = wait_for(lambda: len(client.maintenance_due(b.project)) == len(motors))
        assert due, "the RUL service judged no motor"
        # Time left to each motor's next failure, as the simulator plans it.
        ahead = {f.device: f.at - now for f in reversed(fleet.failures(now, now + 7200))}
        alarmed = wait_for(
            lambda: {a.device for a in client.alarms(project=b.project) if a.rule_name == RULE_NAME}
        )
        assert alarmed, "no maintenance alarm"
        for device in alarmed:  # never a motor with most of its life ahead
            assert ahead[device] < 15 * 60, (device, ahead[device])
        near = [d for d, left in ahead.items() if 60 < left < 6 * 60]
        assert near  # seed 7: the line has motors that close to their failure
        for device, left in ahead.items():  # every motor 1-6 min from failure is warned
            if 60 < left < 6 * 60:
                assert device in alarmed, (device, left)
        admin.close()
        client.close()


def test_the_crew_log_and_the_report():
    f = DeviceFailure("m-1", 1_700_000_000.0, 1_699_998_800.0)
    rows = failure_rows([f]).splitlines()
    assert rows[1].startswith("m-1,2023-11-14T22:13:20.000Z,failure")
    assert rows[2].startswith("m-1,2023-11-14T22:13:21.000Z,repair")
    # Alarms first seen during the run count, before the run (the last one's) do not.
    report = maintenance_report([f], {"m-1": [1_699_998_000.0, 1_699_999_700.0]})
    assert report == [
        {"device": "m-1", "failed_at": f.at, "life_s": 1200.0, "alarmed_before_s": 300.0}
    ]
    assert maintenance_report([f], {})[0]["alarmed_before_s"] is None
