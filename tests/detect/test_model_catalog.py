"""The detection service files every model it fits in the model registry (a real SQLite
registry behind the ``ModelCatalog`` port): an anomaly's model ref is one query from the record
that judged it."""

from __future__ import annotations

from argon2 import PasswordHasher

from atoll.bus.memory import MemoryBus
from atoll.detect.service import DetectionService
from atoll.registry import Registry
from atoll.store.memory import MemoryStore
from tests.detect.test_fit_on_history import (
    HISTORY,
    Collector,
    fault_run,
    ingest,
    stored_history,
    until,
)


async def test_an_anomaly_leads_to_the_registry_record_of_its_model(tmp_path):
    registry = Registry.open(
        tmp_path, password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    registry.create_project(registry.bootstrap().tenant, "P", project_id="p")
    store = MemoryStore()
    stored_history(store)

    bus = MemoryBus()
    got = Collector()
    await bus.subscribe("anomaly.>", got)
    svc = DetectionService(bus, store, refit_interval=0, snapshot_interval=0, catalog=registry)
    svc.file_interval = 0.05
    await svc.start()
    try:
        live = fault_run()
        await ingest(store, bus, HISTORY, live)
        await until(lambda: svc.stats["points"] >= len(live), "every live reading judged")
        await until(lambda: registry.list_models("p", kind="detector") != [], "the first record")
        (first,) = registry.list_models("p", kind="detector")
        assert (first.scope, first.version, first.state) == ("series:d1/temp", 1, "active")
        assert (first.created_by, first.approved_by, first.algorithm) == (
            "system",
            "system",
            "fitted",
        )
        assert first.rows == HISTORY and first.data_from is not None
        assert first.card["reason"] == "bound" and first.card["thresholds"]

        # Every anomaly names its model; the registry answers which record that was. (Judged is
        # not yet delivered: the bus hands the events over on its own schedule.)
        await until(lambda: any(e.is_anomaly for e in got.events), "an anomaly delivered")
        flagged = [e for e in got.events if e.is_anomaly]
        assert flagged and {e.model.id for e in flagged} == {first.ref}
        (judge,) = registry.list_models("p", ref=flagged[0].model.id)
        assert judge.id == first.id and judge.version == flagged[0].model.version

        # An operator's refit is the next version: active, the first one retired.
        (record,), _ = await svc.refit("p", "d1", actor="alice (k1)")
    finally:
        await svc.stop()  # files what is left
    versions = registry.list_models("p", kind="detector", scope="series:d1/temp")
    assert sorted((m.version, m.state, m.created_by) for m in versions) == [
        (1, "retired", "system"),
        (2, "active", "alice (k1)"),
    ]
    assert registry.list_models("p", ref=record.id)[0].card["reason"] == "manual"
    registry.close()
