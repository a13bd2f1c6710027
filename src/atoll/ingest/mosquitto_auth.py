"""Device auth and ACLs for an external Mosquitto: Atoll writes its password and ACL files.

Why files (and not the dynamic-security plugin): they work with a stock ``mosquitto.conf``
(``password_file`` + ``acl_file``), need no admin channel, and survive a broker restart.
Mosquitto hashes are PBKDF2-SHA512 (``$7$``), the same ``mosquitto_passwd`` writes, so the
device's MQTT password is its Atoll secret. Atoll only sees a secret in clear when it issues
one, so the registry's credential operations are observed (``attach``) and each change
rewrites the files and sends mosquitto ``SIGHUP`` (via its pid file) to reload them.

Several Atoll processes may manage the same files (external mode with more than one node on
the broker's machine). Each change therefore re-reads the files under a lock file
(``fcntl.flock``), applies only its own change and writes them back, so one process never
drops a device another one just registered. They must all use the same ingest user.

ACLs are *patterns* on the device's own username (``%u``), so they never need rewriting; they
are written from Atoll's one ACL table (``atoll.core.acl.mosquitto_acl``)::

    pattern write atoll/v1/devices/%u/telemetry
    ...
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import secrets
import signal
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from atoll.core.acl import mosquitto_acl

log = logging.getLogger(__name__)

ITERATIONS = 101  # what mosquitto_passwd 2.0 uses


def mosquitto_hash(password: str, *, salt: bytes | None = None) -> str:
    """``$7$`` PBKDF2-SHA512 entry, as ``mosquitto_passwd`` writes it."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS)
    return f"$7${ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


class MosquittoAuth:
    """Keeps ``password_file`` and ``acl_file`` in step with the registry's device credentials."""

    def __init__(
        self,
        password_file: Path,
        acl_file: Path,
        pid_file: Path | None,
        *,
        admin_user: str = "atoll-ingest",
        admin_password: str | None = None,
    ) -> None:
        self.password_file = Path(password_file)
        self.acl_file = Path(acl_file)
        self.pid_file = Path(pid_file) if pid_file else None
        self.admin_user = admin_user
        self._lock = threading.Lock()
        # Hashes of disabled devices are parked here so enabling them again needs no new secret.
        self._parked_file = self.password_file.with_suffix(".disabled.json")
        self._file_lock = self.password_file.with_name(self.password_file.name + ".lock")
        self._admin_hash = mosquitto_hash(admin_password) if admin_password is not None else None
        self._entries: dict[str, str] = {}
        self._parked: dict[str, str] = {}
        self._seen: tuple | None = None  # the files as this instance last read or wrote them
        self._load()

    def _stamp(self) -> tuple:
        return tuple(
            (st.st_ino, st.st_mtime_ns, st.st_size) if (st := _stat(f)) else None
            for f in (self.password_file, self._parked_file)
        )

    def _load(self) -> None:
        """Take the files as they are now (another process may have changed them)."""
        stamp = self._stamp()
        if stamp == self._seen:
            return
        self._seen = stamp
        self._entries, self._parked = {}, {}
        if self.password_file.exists():
            for line in self.password_file.read_text().splitlines():
                user, sep, h = line.partition(":")
                if sep and user:
                    self._entries[user] = h
        if self._parked_file.exists():
            self._parked = json.loads(self._parked_file.read_text())
        if self._admin_hash is not None:
            self._entries[self.admin_user] = self._admin_hash

    @contextlib.contextmanager
    def _changing(self):
        """Re-read, let the caller change the entries, write back; one writer at a time."""
        self.password_file.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self._file_lock, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._load()
            yield
            self._write()
        self.reload()

    # -- changes ----------------------------------------------------------------------------------

    def set_secret(self, device: str, secret: str) -> None:
        with self._changing():
            self._parked.pop(device, None)
            self._entries[device] = mosquitto_hash(secret)

    def set_secrets(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Many devices' ``(device, secret)`` (a batch registration): one write, one reload."""
        with self._changing():
            for device, secret in pairs:
                self._parked.pop(device, None)
                self._entries[device] = mosquitto_hash(secret)

    def remove(self, device: str) -> None:
        with self._changing():
            self._entries.pop(device, None)
            self._parked.pop(device, None)

    def set_disabled(self, device: str, disabled: bool) -> None:
        with self._changing():
            if disabled and device in self._entries:
                self._parked[device] = self._entries.pop(device)
            elif not disabled and device in self._parked:
                self._entries[device] = self._parked.pop(device)

    def devices(self) -> set[str]:
        return set(self._entries) - {self.admin_user}

    def apply(self) -> None:
        """Write both files atomically and ask mosquitto to reload them."""
        with self._changing():
            pass

    def _write(self) -> None:
        text = "".join(f"{u}:{h}\n" for u, h in sorted(self._entries.items()))
        _atomic_write(self.password_file, text)
        _atomic_write(self._parked_file, json.dumps(self._parked))
        _atomic_write(self.acl_file, mosquitto_acl(self.admin_user))
        self._seen = self._stamp()

    def reload(self) -> None:
        if self.pid_file is None or not self.pid_file.exists():
            return
        try:
            os.kill(int(self.pid_file.read_text().strip()), signal.SIGHUP)
        except (ValueError, ProcessLookupError, PermissionError) as e:
            log.warning(
                "could not signal mosquitto to reload its auth files (%s): %s", self.pid_file, e
            )

    # -- registry ----------------------------------------------------------------------------------

    def sync(self, registry: Any) -> None:
        """Drop entries of devices that no longer exist, lost their secret or are disabled."""
        alive: set[str] = set()
        disabled: set[str] = set()
        for project in registry.list_projects():
            offset = 0
            while True:
                batch = registry.list_devices(project.id, limit=1000, offset=offset)
                for d in batch:
                    if d.has_credentials:
                        (disabled if d.disabled else alive).add(d.id)
                if len(batch) < 1000:
                    break
                offset += 1000
        with self._changing():
            for dev in list(self._entries):
                if dev == self.admin_user:
                    continue
                if dev in disabled:
                    self._parked[dev] = self._entries.pop(dev)
                elif dev not in alive:
                    del self._entries[dev]

    def attach(self, registry: Any) -> None:
        """Observe the registry's credential operations (on this instance only)."""

        def after(name, fn):
            original = getattr(registry, name)

            @functools.wraps(original)
            def wrapper(*args, **kw):
                result = original(*args, **kw)
                try:
                    fn(result, *args, **kw)
                except Exception:  # the registry change happened; the broker catches up on restart
                    log.exception("could not update mosquitto auth after %s", name)
                return result

            setattr(registry, name, wrapper)

        after("register_device", lambda r, *a, **k: self.set_secret(r[1].device, r[1].secret))
        after(
            "register_devices",
            lambda r, *a, **k: self.set_secrets((c.device, c.secret) for _, c in r),
        )
        after("rotate_credentials", lambda r, *a, **k: self.set_secret(r.device, r.secret))
        after("revoke_credentials", lambda r, device_id, *a, **k: self.remove(device_id))
        after("delete_device", lambda r, device_id, *a, **k: self.remove(device_id))
        after("disable_device", lambda r, *a, **k: self.set_disabled(r.id, r.disabled))
        after("update_device", lambda r, *a, **k: self.set_disabled(r.id, r.disabled))


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
