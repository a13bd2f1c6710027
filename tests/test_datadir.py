"""The data directory is private: ``atoll.datadir.secure`` on its own, and after a real start."""

import os
import stat

from argon2 import PasswordHasher

from atoll import datadir
from atoll.config import Settings
from atoll.platform import Platform

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def _open_to_others(home):
    """Every path under ``home`` (itself included) that group or others may use."""
    found = []
    for root, dirs, files in os.walk(home):
        for path in [root] + [os.path.join(root, n) for n in dirs + files]:
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                found.append((os.path.relpath(path, home), oct(mode & 0o777)))
    return found


def test_secure_leaves_symlinks_and_their_targets_alone(tmp_path):
    outside = tmp_path / "shared.pem"
    outside.write_text("x")
    outside.chmod(0o644)
    home = tmp_path / "home"
    home.mkdir()
    (home / "cert.pem").symlink_to(outside)
    datadir.secure(home)
    assert outside.stat().st_mode & 0o777 == 0o644
    assert _open_to_others(home) == []


async def test_platform_start_makes_the_data_directory_private(tmp_path):
    home = tmp_path / "atoll"
    # An install made before the rule: world-readable registry, store and a nested directory.
    old = os.umask(0o022)
    try:
        first = Platform(
            Settings(home=home, http_port=0, mqtt_port=0, services=[]), password_hasher=FAST
        )
        await first.start()
        first.registry.create_project("default", "Lab", project_id="lab")
        await first.stop()
        (home / "cache" / "numba").mkdir(parents=True, mode=0o755)
        (home / "cache" / "numba" / "kernel.nbi").write_bytes(b"x")
        for path in [home, home / "registry.sqlite", home / "cache", home / "cache" / "numba"]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (home / "cache" / "numba" / "kernel.nbi").chmod(0o644)
        assert _open_to_others(home)

        p = Platform(
            Settings(home=home, http_port=0, mqtt_port=0, services=[]), password_hasher=FAST
        )
        await p.start()
        try:
            names = {str(q.relative_to(home)) for q in home.rglob("*")}
            assert {"registry.sqlite", "series.duckdb"} <= names, names
            assert _open_to_others(home) == []
            assert home.stat().st_mode & 0o777 == 0o700
        finally:
            await p.stop()
    finally:
        os.umask(old)


async def test_a_fresh_data_directory_is_private_after_start(tmp_path):
    home = tmp_path / "fresh"
    old = os.umask(0o022)
    try:
        p = Platform(
            Settings(home=home, http_port=0, mqtt_mode="off", services=[]), password_hasher=FAST
        )
        await p.start()
        try:
            p.registry.create_project("default", "Lab", project_id="lab")
            assert _open_to_others(home) == []
        finally:
            await p.stop()
    finally:
        os.umask(old)
