"""Registry databases made by older releases keep working after an upgrade."""

import sqlite3

from atoll.registry import Registry
from tests.api.conftest import FAST_HASHER


def test_old_database_gains_user_platform_admin_for_the_bootstrap_user(tmp_path):
    reg = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    boot = reg.bootstrap()
    reg.create_user("default", "second-admin", "a-long-password", "admin")
    reg.close()
    db = sqlite3.connect(tmp_path / "registry.sqlite")
    db.execute("ALTER TABLE users DROP COLUMN platform_admin")  # as made before the column existed
    db.commit()
    db.close()

    reg = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    _, boot_session = reg.login(boot.username, boot.password)
    _, other_session = reg.login("second-admin", "a-long-password")
    assert reg.authenticate_key(boot_session.token).platform_admin
    assert not reg.authenticate_key(other_session.token).platform_admin
    reg.close()


def test_old_database_gains_device_type_detector_bindings(tmp_path):
    reg = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    reg.bootstrap()
    reg.create_project("default", "Line", project_id="line")
    reg.create_device_type("line", "pump", [{"name": "flow"}])
    reg.close()
    db = sqlite3.connect(tmp_path / "registry.sqlite")
    db.execute("ALTER TABLE device_types DROP COLUMN detectors")  # made before bindings were kept
    db.commit()
    db.close()

    reg = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    assert reg.get_device_type("line", "pump").detectors == ()
    dt = reg.update_device_type("line", "pump", detectors=[{"metrics": ["flow"], "decision": {}}])
    assert dt.detectors[0].metrics == ("flow",) and dt.detectors[0].decision == {}
    reg.close()


def test_nodes_starting_at_once_on_a_fresh_postgresql_database_all_start():
    """Two (here four) nodes' first start on one empty database: the tables are created once
    and the default tenant and admin bootstrapped once; no node fails."""
    import threading

    from atoll.testing.postgres import throwaway_database

    with throwaway_database("atoll_fresh_registry", skip_if_unreachable=True) as url:
        go, done, failed = threading.Barrier(4), [], []

        def start() -> None:
            go.wait()
            try:
                reg = Registry(url, password_hasher=FAST_HASHER)
                done.append(reg.bootstrap())
                reg.close()
            except Exception as e:  # noqa: BLE001 - the assertion below names it
                failed.append(e)

        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not failed and len(done) == 4
        assert sum(b is not None for b in done) == 1  # one bootstrap, its secrets shown once


def test_old_database_gains_device_kind_and_parent(tmp_path):
    reg = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    reg.bootstrap()
    reg.create_project("default", "Line", project_id="line")
    reg.register_device("line", device_id="old-1")
    reg.close()
    db = sqlite3.connect(tmp_path / "registry.sqlite")
    db.execute("DROP INDEX ix_devices_parent")  # as made before gateways
    db.execute("ALTER TABLE devices DROP COLUMN parent")
    db.execute("ALTER TABLE devices DROP COLUMN kind")
    db.commit()
    db.close()

    reg = Registry.open(tmp_path, password_hasher=FAST_HASHER)
    old = reg.get_device("old-1")
    assert (old.kind, old.parent) == ("device", None)
    reg.update_device("old-1", kind="gateway")
    assert reg.register_device("line", device_id="k", parent="old-1")[0].parent == "old-1"
    assert [d.id for d in reg.list_devices("line", parent="old-1")] == ["k"]
    reg.close()
    db = sqlite3.connect(tmp_path / "registry.sqlite")
    assert "ix_devices_parent" in {r[1] for r in db.execute("PRAGMA index_list(devices)")}
    db.close()


def test_old_postgresql_database_gains_device_kind_and_parent():
    from sqlalchemy import create_engine, text

    from atoll.registry.tables import metadata
    from atoll.testing.postgres import throwaway_database

    with throwaway_database("atoll_gateway_columns", skip_if_unreachable=True) as url:
        reg = Registry(url, password_hasher=FAST_HASHER)
        reg.bootstrap()
        reg.create_project("default", "Line", project_id="line")
        reg.register_device("line", device_id="old-1")
        reg.close()
        engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE devices DROP COLUMN parent"))
            conn.execute(text("ALTER TABLE devices DROP COLUMN kind"))
        engine.dispose()
        reg = Registry(url, password_hasher=FAST_HASHER)
        assert reg.get_device("old-1").kind == "device"
        reg.update_device("old-1", kind="gateway")
        assert reg.register_device("line", device_id="k", parent="old-1")[0].parent == "old-1"
        reg.close()
        assert metadata.tables["devices"].c.parent.index
