"""Two ``atoll up`` nodes with the RUL service on one PostgreSQL (store and registry): a model
fitted on node a scores on node b, which never held its files. b loads them from the registry,
where they were kept with the model's version. Skipped (with the reason) without PostgreSQL."""

from __future__ import annotations

import asyncio
import time

from argon2 import PasswordHasher

import atoll
from atoll.config import Settings
from atoll.platform import Platform
from atoll.registry import model_files
from atoll.testing import rul_fleet as synthetic
from atoll.testing.postgres import database_fixture

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
HOUR = synthetic.HOUR

pg_db = database_fixture("atoll_rul")


def _node(tmp_path, name: str, pg: str) -> Platform:
    settings = Settings(
        home=tmp_path / name,
        store_url=pg,
        registry_url=pg,
        http_port=0,
        mqtt_mode="off",
        services=["rul"],
        rul_interval_s=0.2,
        rul_refresh_s=0.2,
    )
    return Platform(settings, password_hasher=FAST)


async def test_a_model_fitted_on_one_node_scores_on_the_other(tmp_path, pg_db):
    a, b = _node(tmp_path, "a", pg_db), _node(tmp_path, "b", pg_db)
    await a.start()
    await b.start()
    try:
        assert a.bootstrap is not None  # the first node made the platform's secrets
        key = a.bootstrap.api_key

        def on_a() -> tuple[str, dict[str, str]]:
            with atoll.Client(a.http_url, key) as c:
                c.create_project("Plant", id="plant")
                c.create_device_type("plant", "motor", synthetic.METRICS)
                motors = synthetic.fleet(6)
                motors[0].current, motors[0].current_life = 90, 100
                secrets = {
                    m.device: c.register_device(
                        "plant", id=m.device, device_type="motor"
                    ).credentials.secret
                    for m in motors
                }
                end = time.time_ns() // 1000 // HOUR * HOUR - HOUR
                assert a.store is not None
                c.import_maintenance("plant", synthetic.history(a.store, "plant", motors, end))
                model = c.fit_rul("plant", "motor")
                c.approve_model("plant", model.id)
                c.activate_model("plant", model.id)
                return model.id, secrets

        model_id, secrets = await asyncio.to_thread(on_a)
        a_dir = tmp_path / "a" / "models" / "rul" / model_id
        b_dir = tmp_path / "b" / "models" / "rul" / model_id
        assert (a_dir / "model.json").is_file() and not b_dir.exists()
        assert b.registry is not None
        stored = b.registry.model_files(model_id)
        assert stored is not None and model_files.digest(stored[0]) == stored[1]

        def on_b() -> list:
            with atoll.DeviceClient(b.http_url, "m0", secrets["m0"]) as d:
                d.send({"vibration": 2.5, "temperature": 51.0}, ts=time.time_ns() // 1_000_000)
            with atoll.Client(b.http_url, key) as c:
                for _ in range(200):
                    due = c.maintenance_due("plant")
                    if due:
                        return due
                    time.sleep(0.1)
            return []

        due = await asyncio.to_thread(on_b)
        assert [d.device for d in due] == ["m0"], "node b did not score with the model of node a"
        assert due[0].model is not None and due[0].model.id == model_id
        # Node b unpacked the same files node a wrote.
        assert sorted(p.name for p in b_dir.iterdir()) == sorted(p.name for p in a_dir.iterdir())
        assert (b_dir / "model.json").read_bytes() == (a_dir / "model.json").read_bytes()
    finally:
        await b.stop()
        await a.stop()
