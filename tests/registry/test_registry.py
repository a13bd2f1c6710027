import sqlite3

import pytest

from atoll.core.errors import Conflict, InvalidInput, NotFound
from atoll.registry import MetricSpec, Registry
from tests.registry.conftest import FAST_HASHER


def _lab(reg: Registry):
    boot = reg.bootstrap()
    reg.create_project(boot.tenant, "Lab", project_id="lab", retention_days=30)
    reg.create_device_type(
        "lab",
        "thermo",
        [
            {"name": "temperature", "unit": "°C", "type": "float", "min": -40, "max": 85},
            MetricSpec("on", type="bool"),
        ],
    )
    return boot


def test_bootstrap_creates_unique_secrets_once(tmp_path):
    a = Registry.open(tmp_path / "a", password_hasher=FAST_HASHER)
    b = Registry.open(tmp_path / "b", password_hasher=FAST_HASHER)
    sa, sb = a.bootstrap(), b.bootstrap()
    assert sa.api_key != sb.api_key and sa.password != sb.password
    assert a.bootstrap() is None
    principal = a.authenticate_key(sa.api_key)
    assert principal.role == "admin" and principal.platform_admin and principal.tenant == "default"
    assert a.authenticate_key(sb.api_key) is None
    assert a.login("admin", sa.password) is not None
    assert a.login("admin", "wrong password") is None
    a.close()
    b.close()


def test_secrets_are_stored_hashed_only(tmp_path):
    reg = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    boot = _lab(reg)
    _, creds = reg.register_device("lab", device_id="s1")
    reg.close()
    dump = "\n".join(sqlite3.connect(tmp_path / "registry.sqlite").iterdump())
    assert creds.secret not in dump
    assert boot.api_key.split("_", 2)[2] not in dump
    assert boot.password not in dump
    assert "$argon2" in dump


def test_device_lifecycle_and_auth(any_registry):
    reg = any_registry
    _lab(reg)
    dev, creds = reg.register_device(
        "lab", device_id="s1", device_type="thermo", labels={"room": "a"}
    )
    assert len(creds.secret) >= 43 and dev.has_credentials
    ident = reg.authenticate_device("s1", creds.secret)
    assert ident.project == "lab" and ident.tenant == "default"
    assert ident.metrics["temperature"].max == 85 and ident.metrics["on"].type == "bool"
    assert reg.authenticate_device("s1", creds.secret + "x") is None
    assert reg.authenticate_device("nope", creds.secret) is None
    # Cached positive answer still honours rotation immediately.
    new = reg.rotate_credentials("s1")
    assert reg.authenticate_device("s1", creds.secret) is None
    assert reg.authenticate_device("s1", new.secret) is not None
    reg.disable_device("s1")
    assert reg.authenticate_device("s1", new.secret) is None
    reg.disable_device("s1", disabled=False)
    assert reg.authenticate_device("s1", new.secret) is not None
    reg.revoke_credentials("s1")
    assert reg.authenticate_device("s1", new.secret) is None
    assert not reg.get_device("s1").has_credentials
    assert reg.device_identity("s1").device_type == "thermo"


def test_schema_change_reaches_cached_identity(registry):
    _lab(registry)
    _, creds = registry.register_device("lab", device_id="s1", device_type="thermo")
    assert "humidity" not in registry.authenticate_device("s1", creds.secret).metrics
    registry.update_device_type("lab", "thermo", metrics=[{"name": "humidity", "unit": "%"}])
    assert "humidity" in registry.authenticate_device("s1", creds.secret).metrics


def test_tenant_scoping_hides_other_tenants(any_registry):
    reg = any_registry
    _lab(reg)
    reg.create_tenant("Other", "other")
    theirs = reg.create_project("other", "Theirs", project_id="theirs").id
    x1 = reg.register_device(theirs, device_id="x1")[0].id
    with pytest.raises(NotFound):
        reg.get_project(theirs, tenant="default")
    with pytest.raises(NotFound):
        reg.get_device(x1, tenant="default")
    with pytest.raises(NotFound):
        reg.rotate_credentials(x1, tenant="default")
    with pytest.raises(NotFound):
        reg.register_device(theirs, tenant="default")
    with pytest.raises(NotFound):
        reg.patch_desired(x1, {"a": 1}, tenant="default")
    assert [p.id for p in reg.list_projects("default")] == ["lab"]


def test_chosen_ids_live_in_the_tenants_namespace_so_taken_never_leaks(any_registry):
    reg = any_registry
    _lab(reg)
    reg.create_tenant("Acme", "acme")
    reg.create_tenant("Beta", "beta")
    pa = reg.create_project("acme", "Line", project_id="line")
    pb = reg.create_project("beta", "Line", project_id="line")  # was 409: acme's id leaked
    assert (pa.id, pb.id) == ("acme~line", "beta~line")
    da, creds = reg.register_device(pa.id, device_id="pump", tenant="acme")
    db, _ = reg.register_device(pb.id, device_id="pump", tenant="beta")
    dd, _ = reg.register_device("lab", device_id="pump")
    assert (da.id, db.id, dd.id) == ("acme~pump", "beta~pump", "pump")
    assert reg.authenticate_device("acme~pump", creds.secret).tenant == "acme"
    # "taken" now only ever names the caller's own id; the full form is accepted too.
    for chosen in ("pump", "beta~pump"):
        with pytest.raises(Conflict):
            reg.register_device(pb.id, device_id=chosen, tenant="beta")
    with pytest.raises(Conflict):
        reg.create_project("beta", "Again", project_id="line")
    # Another tenant's namespace cannot be named (a rule about the text, not about what exists).
    with pytest.raises(InvalidInput):
        reg.register_device(pb.id, device_id="acme~valve", tenant="beta")
    with pytest.raises(InvalidInput):
        reg.register_device(pb.id, device_id="x" * 60, tenant="beta")  # 'beta~' + 60 > 64
    pw = "correct horse battery"
    assert reg.create_user("acme", "alice", pw, "admin").username == "acme~alice"
    assert reg.create_user("beta", "alice", pw, "viewer").username == "beta~alice"
    assert reg.create_user("default", "alice", pw, "viewer").username == "alice"
    with pytest.raises(InvalidInput):
        reg.create_user("default", "acme~bob", pw, "viewer")  # no squatting acme's namespace
    user, _ = reg.login("acme~alice", pw)
    assert (user.tenant, user.role) == ("acme", "admin")
    assert reg.login("alice", pw)[0].tenant == "default"


def test_ids_and_conflicts(registry):
    _lab(registry)
    with pytest.raises(InvalidInput):
        registry.register_device("lab", device_id="bad/id")
    with pytest.raises(InvalidInput):
        registry.register_device("lab", device_id="a.b")
    registry.register_device("lab", device_id="s1")
    with pytest.raises(Conflict):
        registry.register_device("lab", device_id="s1")
    with pytest.raises(NotFound):
        registry.register_device("lab", device_type="missing")
    with pytest.raises(InvalidInput):
        registry.create_device_type("lab", "t2", [{"name": "x", "type": "complex"}])
    with pytest.raises(InvalidInput):
        registry.create_device_type("lab", "t2", [{"name": "x", "min": 5, "max": 1}])
    with pytest.raises(InvalidInput):
        registry.update_project("lab", retention_days=0)
    assert registry.update_project("lab", retention_days=None).retention_days is None


def test_twin_merge_and_versions(any_registry):
    reg = any_registry
    _lab(reg)
    reg.register_device("lab", device_id="s1")
    assert reg.get_twin("s1").desired_version == 0
    t1 = reg.patch_desired("s1", {"interval": 10, "led": {"r": 1, "g": 2}})
    t2 = reg.patch_desired("s1", {"led": {"g": None}, "mode": "eco"})
    assert t2.desired == {"interval": 10, "led": {"r": 1}, "mode": "eco"}
    assert (t1.desired_version, t2.desired_version) == (1, 2)
    r = reg.patch_reported("s1", {"fw": "1.2"})
    assert r.reported == {"fw": "1.2"} and r.reported_version == 1 and r.desired_version == 2
    with pytest.raises(InvalidInput):
        reg.patch_desired("s1", ["not", "an", "object"])


def test_command_states(any_registry):
    reg = any_registry
    _lab(reg)
    reg.register_device("lab", device_id="s1")
    c = reg.create_command("s1", "reboot", {"delay": 1})
    assert c.status == "pending"
    assert reg.mark_command_delivered("s1", c.id).status == "delivered"
    done = reg.ack_command("s1", c.id, True, {"uptime": 0})
    assert done.status == "acked" and done.result == {"uptime": 0}
    with pytest.raises(Conflict):
        reg.ack_command("s1", c.id, True)
    with pytest.raises(NotFound):
        reg.ack_command("s1", "c-unknown", True)
    failed = reg.create_command("s1", "x")
    assert reg.ack_command("s1", failed.id, False, "boom").status == "failed"
    short = reg.create_command("s1", "y", ttl_s=0.001)
    import time

    time.sleep(0.01)
    assert reg.get_command("s1", short.id).status == "expired"
    with pytest.raises(Conflict):
        reg.ack_command("s1", short.id, True)
    assert [x.name for x in reg.list_commands("s1")] == ["y", "x", "reboot"]


def test_rejection_counters(registry):
    _lab(registry)
    registry.register_device("lab", device_id="s1")
    for _ in range(3):
        registry.record_rejection("s1", "mqtt", "malformed_json", "line 1")
    registry.record_rejection("s1", "http", "nan", "temperature is NaN")
    registry.record_rejection("ghost", "mqtt", "unknown_device", "")
    rows = {(r.transport, r.reason): r.count for r in registry.rejections("s1")}
    assert rows == {("mqtt", "malformed_json"): 3, ("http", "nan"): 1}
    registry.record_rejection("s1", "mqtt", "malformed_json", "again")
    assert {r.reason: r.count for r in registry.rejections("s1")}["malformed_json"] == 4


def test_many_devices_authenticated_at_once(any_registry):
    from atoll.core.errors import Forbidden, Unauthenticated
    from atoll.registry.directory import RegistryDirectory

    reg = any_registry
    _lab(reg)
    secrets = {}
    for i in range(4):
        _, creds = reg.register_device("lab", device_id=f"s{i}", device_type="thermo")
        secrets[f"s{i}"] = creds.secret
    one = reg.authenticate_device("s0", secrets["s0"])  # cached
    reg.disable_device("s2")
    pairs = [
        ("s0", secrets["s0"]),
        ("s1", secrets["s1"]),
        ("s2", secrets["s2"]),  # disabled
        ("s3", "wrong"),
        ("ghost", "x"),
        ("", ""),
    ]
    got = reg.authenticate_devices(pairs)
    assert got["s0"] == one and got["s1"] == reg.authenticate_device("s1", secrets["s1"])
    assert got["s1"].metrics is not None and "temperature" in got["s1"].metrics
    assert {d for d, i in got.items() if i is None} == {"s2", "s3", "ghost", ""}
    refused = RegistryDirectory(reg).recheck_devices(pairs)
    assert set(refused) == {"s2", "s3", "ghost", ""}
    assert isinstance(refused["s2"], Forbidden) and isinstance(refused["s3"], Unauthenticated)


def test_rejection_counters_of_many_devices_in_one_flush(any_registry):
    reg = any_registry
    _lab(reg)
    for i in range(3):
        reg.register_device("lab", device_id=f"s{i}")
    reg.record_rejection("s0", "mqtt", "throttled", "first")
    reg.flush_rejections()
    reg.record_rejections(
        [
            ("s0", "mqtt", "throttled", "paused " + "x" * 600, 20, 5),  # existing: bumped
            ("s1", "mqtt", "throttled", "paused", 10, 2),  # new
            ("s1", "mqtt", "throttled", "later", 30, 1),  # same key: added up, last message
            ("s2", "http", "nan", "NaN", 5, 1),
            ("ghost", "mqtt", "throttled", "", 5, 1),  # unknown: not counted
        ]
    )
    got = {
        (d, r.transport, r.reason): (r.count, r.last_at, r.last_message)
        for d in ("s0", "s1", "s2")
        for r in reg.rejections(d)
    }
    assert got == {
        ("s0", "mqtt", "throttled"): (6, 20, "paused " + "x" * 493),
        ("s1", "mqtt", "throttled"): (3, 30, "later"),
        ("s2", "http", "nan"): (1, 5, "NaN"),
    }


def test_api_keys_and_roles(registry):
    _lab(registry)
    k = registry.create_api_key("default", "ci", "viewer")
    p = registry.authenticate_key(k.token)
    assert p.role == "viewer" and not p.can("operator") and p.can("viewer")
    registry.revoke_api_key("default", k.key.id)
    assert registry.authenticate_key(k.token) is None
    assert registry.authenticate_key("atk_garbage") is None
    with pytest.raises(InvalidInput):
        registry.create_api_key("default", "x", "root")
    expired = registry.create_api_key("default", "x", "admin", ttl_s=-1)
    assert registry.authenticate_key(expired.token) is None


def test_audit_is_append_only_and_tenant_scoped(registry):
    _lab(registry)
    registry.create_tenant("Other", "other")
    registry.audit("default", "key:1", "device.create", "device:s1", {"name": "s1"})
    registry.audit("other", "key:2", "device.create", "device:x")
    log = registry.audit_log("default")
    assert log[0].action == "device.create" and log[0].detail == {"name": "s1"}
    assert all(e.tenant == "default" for e in log)
    assert not hasattr(registry, "delete_audit")


def test_data_survives_reopen(tmp_path):
    reg = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    _lab(reg)
    _, creds = reg.register_device("lab", device_id="s1")
    reg.close()
    again = Registry.open(tmp_path)
    assert again.authenticate_device("s1", creds.secret).project == "lab"
    assert again.retention() == {"lab": 30}
    again.close()


def test_batched_rejections_are_added(registry):
    _lab(registry)
    registry.register_device("lab", device_id="s1")
    registry.record_rejections(
        [
            ("s1", "mqtt", "not_finite", "NaN", 5, 2),
            ("s1", "mqtt", "not_finite", "Inf", 9, 3),
            ("ghost", "mqtt", "wrong_type", "x", 1, 1),
        ]
    )
    (row,) = registry.rejections("s1")
    assert (row.count, row.last_message, row.last_at) == (5, "Inf", 9)


def test_usage_from_two_nodes_adds_up(any_registry, tmp_path):
    """Two registries on one database (two nodes) meter the same project and day: their counts
    add up instead of one overwriting the other, whoever creates the day's row."""
    from atoll.registry import Registry

    reg = any_registry
    t = reg.create_tenant("Acme", tenant_id="acme")
    p = reg.create_project(t.id, "Press", project_id="press")
    other = Registry(
        str(reg.engine.url.render_as_string(hide_password=False)), password_hasher=None
    )
    try:
        at = 1_795_428_000_000_000  # 2026-11-23
        reg.record_usage({p.id: (2, 20)}, at=at)
        other.record_usage({p.id: (3, 30)}, at=at)
        reg.record_usage({p.id: (1, 5), "gone": (9, 9)}, at=at)  # an unknown project: dropped
        reg.count_api_call("acme")
        other.count_api_call("acme")
        other.flush_usage()
        days = reg.usage(["acme"])
        got = {(u.project, u.day): (u.messages, u.points, u.api_calls) for u in days}
        assert got[(p.id, "2026-11-23")] == (6, 55, 0)
        assert sum(u.api_calls for u in days if u.project == "") == 2
        reg.record_storage({p.id: 40}, at=at)
        reg.record_storage({p.id: 35}, at=at)  # a smaller later sample: the day keeps its largest
        (day,) = [u for u in reg.usage(["acme"], since="2026-11-23", until="2026-11-23")]
        assert day.storage_points == 40
    finally:
        other.close()


def test_hourly_usage_is_kept_eight_days_and_daily_usage_stays(any_registry):
    reg = any_registry
    reg.create_tenant("Acme", tenant_id="acme")
    p = reg.create_project("acme", "Press", project_id="press")
    now = 1_795_428_000_000_000  # 2026-11-23T10
    old = now - 10 * 86_400_000_000
    reg.record_usage({p.id: (1, 4)}, at=old)
    reg.record_usage({p.id: (2, 6)}, at=now)
    hours = reg.usage_hourly(["acme"], "2026-11-01T00", "2026-11-30T23")
    assert [(h[2], h[3], h[4]) for h in hours] == [("2026-11-13T10", 1, 4), ("2026-11-23T10", 2, 6)]
    assert reg.prune_usage(now) == 1
    assert [h[2] for h in reg.usage_hourly(["acme"], "2026-11-01T00", "2026-11-30T23")] == [
        "2026-11-23T10"
    ]
    assert [(u.day, u.points) for u in reg.usage(["acme"], since="2026-11-01")] == [
        ("2026-11-13", 4),
        ("2026-11-23", 6),
    ]
