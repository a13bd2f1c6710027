"""The model registry on SQLite and PostgreSQL: versions, the lifecycle and its refusals, the
one-active line under concurrent activations from two nodes, detection's fitted models."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, func, select

from atoll.core.errors import Conflict, InvalidInput, NotFound
from atoll.core.lineage import ModelRecord
from atoll.registry import Registry
from atoll.registry import tables as t
from tests.registry.conftest import FAST_HASHER

CARD = {"kind": "rul", "validation": {"rmse": 12.3}, "training": {"units": 100}}


def _setup(reg: Registry) -> str:
    boot = reg.bootstrap()
    assert boot is not None
    reg.create_project(boot.tenant, "Plant", project_id="plant")
    return boot.tenant


def _register(reg: Registry, scope: str = "type:motor", **kw) -> str:
    fields = {
        "kind": "rul",
        "scope": scope,
        "algorithm": "lightgbm-gbdt",
        "code_version": "0.test",
        "card": CARD,
        "metrics": {"rmse": 12.3},
        "params": {"cap": 125},
        "rows": 20631,
        **kw,
    }
    return reg.register_model("plant", actor="alice", tenant="default", **fields).id


def _active(reg: Registry, scope: str = "type:motor") -> list[int]:
    return [m.version for m in reg.list_models("plant", kind="rul", scope=scope, state="active")]


def test_versions_lifecycle_and_rollback(any_registry):
    reg = any_registry
    _setup(reg)
    a, b, c = (_register(reg) for _ in range(3))
    assert [m.version for m in reg.model_versions("plant", a)] == [3, 2, 1]
    first = reg.get_model("plant", a, "default")
    assert (first.state, first.created_by, first.rows, first.card) == (
        "draft",
        "alice",
        20631,
        CARD,
    )
    # Another scope counts its own versions.
    assert reg.get_model("plant", _register(reg, "type:pump")).version == 1

    with pytest.raises(Conflict) as refused:
        reg.change_model("plant", a, "activate", actor="bob")
    assert "is draft" in refused.value.message and refused.value.hint == "allowed: approve, retire"
    for m in (a, b, c):
        approved, _ = reg.change_model("plant", m, "approve", actor="bob")
        assert (approved.state, approved.approved_by) == ("approved", "bob")
    reg.change_model("plant", a, "activate", actor="bob")
    now, retired = reg.change_model("plant", b, "activate", actor="bob")
    assert (now.state, retired) == ("active", [a])
    assert _active(reg) == [2]
    # Rollback of the active one: the previous approved version is active again.
    back, retired = reg.change_model("plant", b, "rollback", actor="bob")
    assert (back.id, back.version, back.state, retired) == (a, 1, "active", [b])
    assert reg.get_model("plant", b).state == "retired"
    with pytest.raises(Conflict, match="no earlier approved version"):
        reg.change_model("plant", a, "rollback", actor="bob")
    # A retired, once approved version can be activated again (roll forward).
    reg.change_model("plant", b, "activate", actor="bob")
    assert _active(reg) == [2]
    with pytest.raises(Conflict) as refused:
        reg.change_model("plant", b, "approve", actor="bob")
    assert refused.value.hint == "allowed: retire, rollback"
    # A draft retired without approval can never be activated.
    d = _register(reg)
    reg.change_model("plant", d, "retire", actor="bob")
    with pytest.raises(Conflict) as refused:
        reg.change_model("plant", d, "activate", actor="bob")
    assert "stays retired" in (refused.value.hint or "")
    assert [m.scope for m in reg.list_models("plant", state="draft")] == ["type:pump"]
    with pytest.raises(InvalidInput):
        reg.change_model("plant", d, "promote", actor="bob")


def test_scoping_and_bad_input(any_registry):
    reg = any_registry
    _setup(reg)
    acme = reg.create_tenant("Acme", tenant_id="acme")
    reg.create_project(acme.id, "Other", project_id="acme~other")
    m = _register(reg)
    with pytest.raises(NotFound):
        reg.get_model("plant", m, tenant="acme")
    with pytest.raises(NotFound):
        reg.list_models("plant", tenant="acme")
    with pytest.raises(NotFound):
        reg.change_model("plant", m, "approve", actor="x", tenant="acme")
    with pytest.raises(NotFound):  # a model is found only in its own project
        reg.get_model("acme~other", m)
    for scope in ("motor", "type:", "series:pump-1", "series:a/b c", "type:a/b"):
        with pytest.raises(InvalidInput, match="invalid model scope"):
            _register(reg, scope)
    with pytest.raises(InvalidInput, match="unknown model kind"):
        _register(reg, kind="oracle")
    with pytest.raises(InvalidInput, match="data_from is after data_to"):
        _register(reg, data_from=10, data_to=5)
    # NaN in a card is stored as null (PostgreSQL's JSON refuses NaN).
    nan = _register(reg, card={"rmse": float("nan")})
    assert reg.get_model("plant", nan).card == {"rmse": None}


def _two_nodes(reg: Registry) -> Registry:
    """A second registry on the same PostgreSQL database: another API node. (SQLite serves one
    node; its two threads share the registry and its writer lock.)"""
    if reg.engine.dialect.name != "postgresql":
        return reg
    url = reg.engine.url.render_as_string(hide_password=False)
    return Registry(url, password_hasher=FAST_HASHER)


def test_one_active_version_under_concurrent_activations(any_registry):
    reg = any_registry
    _setup(reg)
    other = _two_nodes(reg)
    try:
        for round_ in range(5):
            scope = f"type:t{round_}"
            ids = [_register(reg, scope) for _ in range(4)]
            for m in ids:
                reg.change_model("plant", m, "approve", actor="bob")
            reg.change_model("plant", ids[0], "activate", actor="bob")
            barrier = threading.Barrier(2)
            outcomes: list[object] = []

            def activate(
                node: Registry,
                model_id: str,
                barrier: threading.Barrier = barrier,
                outcomes: list[object] = outcomes,
            ) -> None:
                barrier.wait()
                try:
                    outcomes.append(node.change_model("plant", model_id, "activate", actor="n"))
                except Conflict as e:  # the loser may be told to retry; never two winners
                    outcomes.append(e)

            threads = [
                threading.Thread(target=activate, args=(reg, ids[1])),
                threading.Thread(target=activate, args=(other, ids[2])),
            ]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            assert len(outcomes) == 2
            with reg.engine.connect() as conn:
                n = conn.execute(
                    select(func.count())
                    .select_from(t.models)
                    .where(t.models.c.scope == scope, t.models.c.state == "active")
                ).scalar()
            assert n == 1
            active = _active(reg, scope)
            assert active in ([2], [3])
            winners = [o for o in outcomes if not isinstance(o, Conflict)]
            assert winners, outcomes
            # The last winner is what stays active; the first active version was retired.
            assert reg.get_model("plant", ids[0]).state == "retired"
    finally:
        if other is not reg:
            other.close()


def _record(version: int, metric: str = "temp", **kw) -> ModelRecord:
    return ModelRecord(
        f"plant/pump-1/{metric}@{version}",
        "plant",
        "pump-1",
        metric,
        version,
        "fitted",
        1_700_000_000_000_000 + version,
        "scheduled",
        params={"window": 32, "threshold": float("nan")},
        history_from=1_699_000_000_000_000,
        history_to=1_700_000_000_000_000,
        rows=5000,
        **kw,
    )


def test_a_fleets_first_fits_are_filed_in_a_few_statements_per_chunk(any_registry):
    """40,000 new series used to cost five statements each; now a chunk of 500 costs a few."""
    reg = any_registry
    tenant = _setup(reg)
    reg.create_project(tenant, "Mill", project_id="mill")

    def rec(project: str, device: int, version: int = 1) -> ModelRecord:
        return ModelRecord(
            f"{project}/d{device}/temp@{version}",
            project,
            f"d{device}",
            "temp",
            version,
            "default",
            1_700_000_000_000_000,
            "first fit",
        )

    reg.record_fitted_models([rec("plant", 0)])  # one already active, retired below
    statements: list[str] = []

    def count(*a: object) -> None:
        statements.append(str(a[2]))

    event.listen(reg.engine, "before_cursor_execute", count)
    try:
        batch = [rec("plant", i, 2 if i == 0 else 1) for i in range(700)]
        batch += [rec("mill", i) for i in range(300)] + [rec("plant", 0)]  # v1 again: updated
        assert reg.record_fitted_models(batch) == 1001
    finally:
        event.remove(reg.engine, "before_cursor_execute", count)
    # executemany is one statement here; 1,001 records: about 15 (it was about 5,000)
    assert len(statements) <= 20, len(statements)
    plant = reg.list_models("plant", kind="detector", limit=2000)
    assert len(plant) == 701  # d0 has v1 (retired) and v2 (active)
    active = {m.scope for m in plant if m.state == "active"}
    assert len(active) == 700 and "series:d0/temp" in active
    assert [m.version for m in plant if m.scope == "series:d0/temp" and m.state == "active"] == [2]
    assert len(reg.list_models("mill", kind="detector", limit=2000)) == 300
    log = reg.audit_log(tenant, action="model.register", limit=2000)
    assert len(log) == 1001  # d0's v1 was filed twice: once new, once updated in place


def test_detection_models_are_kept_active_and_found_by_ref(any_registry):
    reg = any_registry
    _setup(reg)
    assert reg.record_fitted_models([_record(1), _record(2, actor="alice (k1)")]) == 2
    # Records of a project the registry does not know are skipped, the others kept.
    stranger = ModelRecord("x/d/m@1", "nowhere", "d", "m", 1, "fitted", 1, "bound")
    assert reg.record_fitted_models([stranger, _record(1, "flow")]) == 1
    v1, v2 = (reg.list_models("plant", ref=f"plant/pump-1/temp@{v}")[0] for v in (1, 2))
    assert (v1.state, v2.state) == ("retired", "active")
    assert (v2.kind, v2.scope, v2.version, v2.algorithm) == (
        "detector",
        "series:pump-1/temp",
        2,
        "fitted",
    )
    assert (v1.created_by, v2.created_by, v2.approved_by) == ("system", "alice (k1)", "system")
    assert (v2.rows, v2.data_from, v2.params["threshold"]) == (5000, 1_699_000_000_000_000, None)
    assert v2.card["reason"] == "scheduled"
    # The same version filed again (a restart) updates the record instead of adding one.
    reg.record_fitted_models([_record(2)])
    assert len(reg.list_models("plant", kind="detector", scope="series:pump-1/temp")) == 2
    log = reg.audit_log("default", action="model.register")
    assert {e.target for e in log} == {f"model:{m.id}" for m in reg.list_models("plant")}
    # Only the detection service changes its detectors: the registry refuses, saying how.
    for action in ("retire", "rollback", "approve", "activate"):
        with pytest.raises(Conflict) as refused:
            reg.change_model("plant", v1.id if action == "activate" else v2.id, action, actor="b")
        assert "detection/refit" in (refused.value.hint or "")
    assert reg.get_model("plant", v2.id).state == "active"
