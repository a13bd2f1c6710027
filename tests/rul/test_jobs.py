"""RUL fits off the request, against a real server (SQLite registry, memory store, the real RUL
service): ``POST .../rul/fit`` answers the job at once, the job runs on the service's worker and
is polled until done (with its draft) or failed (with the refusal); ``wait=true`` keeps the
synchronous answer."""

from __future__ import annotations

import time

import httpx
import pytest

import atoll
from atoll.client import RulFitJob


def _poll(client: atoll.Client, fit_id: str) -> RulFitJob:
    for _ in range(600):
        job = client.rul_fit("plant", fit_id)
        if job.state in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"fit {fit_id} did not end")


def test_a_fit_is_a_job_polled_until_its_draft(motors):
    server, client, _, _, csv = motors
    client.import_maintenance("plant", csv)
    job = client.start_rul_fit("plant", "motor")
    assert job.state in ("queued", "running", "done") and job.device_type == "motor"
    assert job.trigger == "api" and job.cycle_seconds == 3600 and job.model is None
    done = _poll(client, job.id)
    assert done.state == "done" and done.error is None
    assert done.model is not None and done.model.state == "draft" and done.model.version == 1
    assert done.started_at is not None and done.finished_at is not None
    assert done.created_at <= done.started_at <= done.finished_at
    # Who asked is who registered it, in the registry and in the audit log.
    assert done.model.created_by == done.requested_by
    log = client.audit(limit=50)
    asked = [e for e in log if e.action == "rul.fit"]
    filed = [e for e in log if e.action == "model.register"]
    assert asked and asked[0].target == f"fit:{job.id}"
    assert filed and filed[0].detail["fit"] == job.id
    assert [j.id for j in client.rul_fits("plant")] == [job.id]

    # The SDK's fit_rul waits on the job, showing each poll.
    seen: list[str] = []
    model = client.fit_rul("plant", "motor", on_progress=lambda j: seen.append(j.state))
    assert model.version == 2 and model.card and model.card["fleet"]["trajectories"] == 12
    assert seen[-1] == "done" and set(seen) <= {"queued", "running", "done"}
    assert [j.model.version for j in client.rul_fits("plant") if j.model] == [2, 1]


def test_a_refused_fit_fails_its_job_with_the_reason(motors):
    server, client, *_ = motors
    job = client.start_rul_fit("plant", "motor")
    failed = _poll(client, job.id)
    assert failed.state == "failed" and failed.model is None
    assert failed.error is not None and failed.error["error"] == "invalid_input"
    assert "0 run-to-failure trajectories" in failed.error["message"]
    assert "record failures" in failed.error["hint"]
    # Waiting clients get it as the error it is.
    with pytest.raises(atoll.InvalidInput, match="0 run-to-failure"):
        client.fit_rul("plant", "motor")
    with httpx.Client(base_url=server.url + "/api/v1") as http:
        key = {"Authorization": f"Bearer {server.boot.api_key}"}
        r = http.post(
            "/projects/plant/rul/fit?wait=true", json={"device_type": "motor"}, headers=key
        )
        assert r.status_code == 400 and "0 run-to-failure" in r.json()["message"]
        r = http.post("/projects/plant/rul/fit", json={"device_type": "motor"}, headers=key)
        assert r.status_code == 202 and r.json()["state"] in ("queued", "running", "failed")
        # An unknown type or job is a 404 at once; no job is filed for it.
        r = http.post("/projects/plant/rul/fit", json={"device_type": "lathe"}, headers=key)
        assert r.status_code == 404
        assert http.get("/projects/plant/rul/fits/fit-nope", headers=key).status_code == 404
    assert {j.device_type for j in client.rul_fits("plant")} == {"motor"}


def test_wait_true_answers_the_draft(motors):
    server, client, _, _, csv = motors
    client.import_maintenance("plant", csv)
    with httpx.Client(base_url=server.url + "/api/v1", timeout=120) as http:
        key = {"Authorization": f"Bearer {server.boot.api_key}"}
        r = http.post(
            "/projects/plant/rul/fit?wait=true", json={"device_type": "motor"}, headers=key
        )
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "draft" and r.json()["card"]["fleet"]["device_type"] == "motor"
