"""``GET /api/v1/metrics`` on a real ``atoll up`` (ingest, detection and rules running): the
node's counters in the Prometheus text format, for the platform admin only."""

from __future__ import annotations

import asyncio

import httpx
from argon2 import PasswordHasher
from prometheus_client.parser import text_string_to_metric_families

from atoll.config import Settings
from atoll.platform import Platform

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_what_the_services_did_and_only_the_platform_admin_reads_them(
    tmp_path,
):
    settings = Settings(
        home=tmp_path,
        http_port=0,
        mqtt_mode="off",
        services=["atoll.detect.service", "atoll.rules.service"],
    )
    async with Platform(settings, password_hasher=FAST) as p:
        admin = {"Authorization": f"Bearer {p.bootstrap.api_key}"}
        async with httpx.AsyncClient(base_url=p.http_url + "/api/v1") as http:
            await http.post("/projects", json={"name": "Lab", "id": "lab"}, headers=admin)
            r = await http.post("/projects/lab/devices", json={"id": "s1"}, headers=admin)
            secret = r.json()["credentials"]["secret"]
            for i in range(5):
                r = await http.post(
                    "/ingest/telemetry",
                    auth=("s1", secret),
                    json={"ts": 1_700_000_000_000 + i * 1000, "values": {"t": 20.0 + i}},
                )
                assert r.status_code < 300, r.text
            r = await http.post("/ingest/telemetry", auth=("s1", secret), content=b"{bad")
            assert r.status_code == 400

            for _ in range(200):  # the detection service scores from the bus, asynchronously
                r = await http.get("/metrics", headers=admin)
                assert r.status_code == 200, r.text
                got = samples(r.text)
                if got.get(("atoll_detect_points_total", ())) == 5:
                    break
                await asyncio.sleep(0.05)
            assert r.headers["content-type"].startswith("text/plain")
            assert got[("atoll_ingest_messages_total", ())] == 5
            assert got[("atoll_ingest_points_total", ())] == 5
            assert got[("atoll_ingest_by_reason_total", (("reason", "malformed_json"),))] == 1
            assert got[("atoll_detect_points_total", ())] == 5
            assert got[("atoll_detect_skipped_late_total", ())] == 0
            assert got[("atoll_rules_readings_total", ())] == 5
            assert got[("process_resident_memory_bytes", ())] > 0

            # A tenant's admin (even of the default tenant's users) is not the platform's.
            r = await http.post("/tenants", json={"name": "Acme", "id": "acme"}, headers=admin)
            acme = {"Authorization": f"Bearer {r.json()['admin_key']['token']}"}
            r = await http.get("/metrics", headers=acme)
            assert r.status_code == 403 and "platform admin" in r.json()["message"]
            assert (await http.get("/metrics")).status_code == 401


def test_the_sdk_reads_the_metrics(tmp_path):
    from atoll.client import Client

    async def main() -> str:
        settings = Settings(home=tmp_path, http_port=0, mqtt_mode="off", services=[])
        async with Platform(settings, password_hasher=FAST) as p:
            key = p.bootstrap.api_key

            def read() -> str:
                with Client(p.http_url, key) as c:
                    return c.metrics()

            return await asyncio.to_thread(read)

    text = asyncio.run(main())
    assert "atoll_ingest_messages_total 0.0" in text and "process_cpu_seconds_total" in text
