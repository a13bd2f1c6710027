"""Retraining against a real server (SQLite registry, memory store, the real RUL service looking
for retrainings every 0.3 s): a failure recorded after the configuration retrains the type's
model in the background; with ``auto_activate`` the new version goes live only when its
cross-validated RMSE is not worse than the active one's; a schedule retrains too; each outcome
is audited."""

from __future__ import annotations

import time

from atoll.rul.retrain import ACTOR
from tests.client.conftest import wait_for


def _done(client, n: int):
    def ended():
        jobs = client.rul_fits("plant")
        return len(jobs) >= n and all(j.state in ("done", "failed") for j in jobs) and jobs

    return wait_for(ended, timeout=60)


def test_a_new_failure_retrains_and_the_better_version_goes_live(motors):
    server, client, _, _, csv = motors
    lines = csv.splitlines()
    client.import_maintenance("plant", "\n".join(lines[:-1]) + "\n")  # all but the last failure
    first = client.fit_rul("plant", "motor")
    client.approve_model("plant", first.id)
    client.activate_model("plant", first.id)
    cfg = client.set_rul_config("plant", "motor", on_failure=True, auto_activate=True)
    assert (
        cfg.retrain
        == {
            "on_failure": True,
            "auto_activate": True,
        }
        and cfg.cycle_seconds == 3600
    )
    assert client.rul_config("plant", "motor").updated_by == cfg.updated_by
    # The failures recorded before the configuration retrain nothing.
    time.sleep(1.0)
    assert len(client.rul_fits("plant")) == 1

    client.import_maintenance("plant", lines[0] + "\n" + lines[-1] + "\n")
    jobs = _done(client, 2)
    assert jobs, "no retraining after the new failure"
    job = jobs[0]
    assert job.trigger == "failure" and job.state == "done" and job.requested_by == ACTOR
    assert job.model is not None and job.model.version == 2
    new, old = job.model.metrics["rmse"], first.metrics["rmse"]
    out = job.outcome
    assert out is not None and out["model"] == job.model.id and out["rmse"] == new
    assert out["active_before"] == first.id and out["active_rmse"] == old
    # Live only if not worse than the version that was active.
    assert out["activated"] == (new <= old), out
    active = client.models("plant", kind="rul", state="active")
    assert [m.id for m in active] == [job.model.id if new <= old else first.id]
    audit = [e for e in client.audit(limit=50) if e.action == "rul.retrain"]
    assert audit and audit[0].actor == ACTOR and audit[0].detail["activated"] == out["activated"]
    assert audit[0].detail["fit"] == job.id
    # The retraining knew that failure: nothing more is due.
    time.sleep(1.0)
    assert len(client.rul_fits("plant")) == 2


def test_a_schedule_retrains_and_without_auto_activate_it_stays_a_draft(motors):
    server, client, _, _, csv = motors
    client.import_maintenance("plant", csv)
    first = client.fit_rul("plant", "motor")
    client.approve_model("plant", first.id)
    client.activate_model("plant", first.id)
    client.set_rul_config("plant", "motor", every="1h")
    time.sleep(1.0)
    assert len(client.rul_fits("plant")) == 1  # not due for an hour
    # An hour on: the retrainer (the service's own, on the real registry) finds it due.
    later = time.time_ns() // 1000 + 3_600_000_000
    (queued,) = server.rul.retrainer.check(now=later)
    assert queued.trigger == "schedule"
    assert server.rul.retrainer.check(now=later) == []  # claimed: not twice
    jobs = _done(client, 2)
    job = jobs[0]
    assert job.id == queued.id and job.state == "done" and job.model is not None
    assert job.outcome is not None and job.outcome["activated"] is False
    assert "auto_activate is off" in job.outcome["reason"]
    assert client.model("plant", job.model.id).state == "draft"
    assert [m.id for m in client.models("plant", kind="rul", state="active")] == [first.id]
    audit = [e for e in client.audit(limit=50) if e.action == "rul.retrain"]
    assert audit and audit[0].detail["activated"] is False


def test_the_configuration_refuses_bad_input(motors):
    import pytest

    import atoll

    _, client, *_ = motors
    with pytest.raises(atoll.NotFound):
        client.rul_config("plant", "motor")
    with pytest.raises(atoll.NotFound):
        client.set_rul_config("plant", "lathe")
    with pytest.raises(atoll.InvalidInput):
        client.set_rul_config("plant", "motor", every="10s")
    with pytest.raises(atoll.InvalidInput):
        client.set_rul_config("plant", "motor", cycle="soon")


async def test_retraining_on_the_platform_with_its_embedded_store(tmp_path):
    """The same path on ``atoll up``'s own composition: the DuckDB store, the SQLite registry and
    the RUL service the platform creates (looking for retrainings every 0.3 s)."""
    import asyncio

    from argon2 import PasswordHasher

    import atoll
    from atoll.config import Settings
    from atoll.platform import Platform
    from atoll.testing import rul_fleet as synthetic

    settings = Settings(
        home=tmp_path,
        http_port=0,
        mqtt_mode="off",
        services=["rul"],
        rul_interval_s=0.2,
        rul_refresh_s=0.2,
        rul_retrain_check_s=0.3,
    )
    fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    async with Platform(settings, password_hasher=fast) as p:
        assert p.bootstrap is not None and p.store is not None
        key = p.bootstrap.api_key

        def run() -> None:
            with atoll.Client(p.http_url, key) as c:
                c.create_project("Plant", id="plant")
                c.create_device_type("plant", "motor", synthetic.METRICS)
                motors = synthetic.fleet(6)
                for m in motors:
                    c.register_device("plant", id=m.device, device_type="motor")
                end = time.time_ns() // 1000 // synthetic.HOUR * synthetic.HOUR - synthetic.HOUR
                lines = synthetic.history(p.store, "plant", motors, end).splitlines()
                c.import_maintenance("plant", "\n".join(lines[:-1]) + "\n")
                first = c.fit_rul("plant", "motor")
                c.set_rul_config("plant", "motor", on_failure=True, auto_activate=True)
                c.import_maintenance("plant", lines[0] + "\n" + lines[-1] + "\n")
                jobs = _done(c, 2)
                assert jobs, "no retraining after the new failure"
                job = jobs[0]
                assert job.trigger == "failure" and job.state == "done" and job.model
                # No version was active: with auto_activate the retrained one goes live.
                assert job.outcome is not None and job.outcome["activated"] is True
                assert job.outcome["reason"].endswith("no version active")
                active = c.models("plant", kind="rul", state="active")
                assert [m.id for m in active] == [job.model.id] and job.model.id != first.id
                assert c.model("plant", first.id).state == "draft"

        await asyncio.to_thread(run)
