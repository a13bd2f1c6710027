"""The storage quota (issue #13 item 3): an enterprise whose projects hold as many points as its
quota allows has its telemetry refused (HTTP 403 ``quota_exceeded`` with the reason; a counted
rejection per device), until the quota is raised, on a real ``atoll up`` and its store."""

from __future__ import annotations

import httpx
from argon2 import PasswordHasher

from atoll.config import Settings
from atoll.platform import Platform

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


async def test_telemetry_is_refused_at_the_storage_quota_and_accepted_once_raised(tmp_path):
    settings = Settings(home=tmp_path, http_port=0, mqtt_mode="off", services=[])
    async with Platform(settings, password_hasher=FAST) as p:
        admin = {"Authorization": f"Bearer {p.bootstrap.api_key}"}
        async with httpx.AsyncClient(base_url=p.http_url + "/api/v1") as http:
            r = await http.post("/tenants", json={"name": "Acme", "id": "acme"}, headers=admin)
            acme = {"Authorization": f"Bearer {r.json()['admin_key']['token']}"}
            await http.post("/projects", json={"name": "Press", "id": "press"}, headers=acme)
            r = await http.post("/projects/acme~press/devices", json={"id": "d1"}, headers=acme)
            device = ("acme~d1", r.json()["credentials"]["secret"])
            await http.post("/projects", json={"name": "Lab", "id": "lab"}, headers=admin)
            r = await http.post("/projects/lab/devices", json={"id": "other"}, headers=admin)
            other = ("other", r.json()["credentials"]["secret"])

            async def send(who, i: int) -> httpx.Response:
                return await http.post(
                    "/ingest/telemetry",
                    auth=who,
                    json={"ts": 1_700_000_000_000 + i, "values": {"t": float(i), "u": 1.0}},
                )

            for i in range(2):  # 4 points
                assert (await send(device, i)).status_code < 300
            # Only the platform operator sets it; at it, the answer says who holds what.
            r = await http.put("/tenants/acme/quotas", json={"storage_points": 4}, headers=acme)
            assert r.status_code == 403
            h = admin
            r = await http.put("/tenants/acme/quotas", json={"storage_points": 4}, headers=h)
            assert r.status_code == 200, r.text
            assert r.json()["storage_points"] == {"limit": 4, "used": 4}

            r = await send(device, 2)
            assert r.status_code == 403, r.text
            body = r.json()
            assert body["error"] == "quota_exceeded"
            assert "storage quota: 4 of 4 points held" in body["message"]
            assert "storage_points" in body["hint"]
            assert (await send(other, 0)).status_code < 300  # another enterprise is not held
            await p.pipeline.flush_counters()  # refusals reach the registry once a second
            r = await http.get("/devices/acme~d1/rejections", headers=acme)
            (refusal,) = [x for x in r.json() if x["reason"] == "storage_quota"]
            assert refusal["count"] == 1 and refusal["transport"] == "http"

            r = await http.put("/tenants/acme/quotas", json={"storage_points": None}, headers=h)
            assert r.json()["storage_points"] == {"limit": None, "used": 4}
            assert (await send(device, 3)).status_code < 300
            r = await http.put("/tenants/acme/quotas", json={"storage_points": -1}, headers=h)
            assert r.status_code == 422
