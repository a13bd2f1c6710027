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
