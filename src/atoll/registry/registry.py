"""The ``Registry``: one synchronous façade over tenants, devices, credentials, keys, twins and
commands.

Methods taking ``tenant=`` scope the lookup to that tenant and raise ``NotFound`` for anything
outside it, so callers acting for an API key pass the key's tenant and cannot see other tenants.
``tenant=None`` means "trusted internal caller" (ingest, runtime).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from atoll.core import acl
from atoll.core.errors import AtollError, Conflict, InvalidInput, Unavailable
from atoll.core.lineage import ModelRecord, ModelRef
from atoll.registry import audit as _audit
from atoll.registry import commands as _commands
from atoll.registry import credentials as _credentials
from atoll.registry import device_types as _types
from atoll.registry import devices as _devices
from atoll.registry import invites as _invites
from atoll.registry import keys as _keys
from atoll.registry import maintenance as _maintenance
from atoll.registry import ml_models as _models
from atoll.registry import model_files as _model_files
from atoll.registry import portfolio as _portfolio
from atoll.registry import quotas as _quotas
from atoll.registry import rejections as _rejections
from atoll.registry import rul_configs as _rul_configs
from atoll.registry import rul_fits as _rul_fits
from atoll.registry import tables as t
from atoll.registry import tenants as _tenants
from atoll.registry import twins as _twins
from atoll.registry import usage as _usage
from atoll.registry import users as _users
from atoll.registry.engine import one_at_a_time, open_engine, sqlite_url
from atoll.registry.models import (
    ApiKey,
    AuditEntry,
    BootstrapSecrets,
    Command,
    DetectorBinding,
    Device,
    DeviceCredentials,
    DeviceIdentity,
    DeviceType,
    Invite,
    MaintenanceEvent,
    MetricSpec,
    ModelVersion,
    NewApiKey,
    NewInvite,
    Portfolio,
    Principal,
    Project,
    ProjectActivity,
    Rejection,
    RulConfig,
    RulFit,
    Tenant,
    Twin,
    UsageDay,
    User,
)
from atoll.registry.namespaces import DEFAULT_TENANT, prefix, qualify_id
from atoll.registry.tokens import matches, new_secret, now_us

SESSION_TTL_S = 12 * 3600
_UNSET: Any = object()


class Registry:
    """Open with ``Registry.open(data_dir)`` (SQLite) or ``Registry(url)`` (any SQLAlchemy URL).

    >>> import tempfile
    >>> reg = Registry.open(tempfile.mkdtemp())
    >>> boot = reg.bootstrap()
    >>> _ = reg.create_project(boot.tenant, "Lab", project_id="lab")
    >>> dev, creds = reg.register_device("lab", device_id="sensor-1")
    >>> reg.authenticate_device("sensor-1", creds.secret).project
    'lab'
    >>> reg.authenticate_device("sensor-1", "wrong") is None
    True
    >>> reg.close()
    """

    def __init__(
        self,
        url: str | Engine,
        *,
        auth_cache_ttl: float = 30.0,
        password_hasher: PasswordHasher | None = None,
    ) -> None:
        self.engine: Engine = url if isinstance(url, Engine) else open_engine(url)
        # Tests pass a cheap hasher; production keeps argon2-cffi's default (RFC 9106) cost.
        self._hasher = password_hasher or _users.DEFAULT_HASHER
        self._auth = _credentials.AuthCache(ttl=auth_cache_ttl)
        # SQLite allows one writer; serialising here avoids "database is locked" under threads
        # and makes read-modify-write (twin versions) atomic. PostgreSQL uses row locks instead.
        self._write_lock = threading.RLock() if self.engine.dialect.name == "sqlite" else None
        self._pending_rejections: dict[tuple[str, str, str], list] = {}
        self._rej_lock = threading.Lock()
        self._rej_flushed = time.monotonic()
        #: Metered use not yet in the database: ``(tenant, project, day) -> [messages, points,
        #: api_calls]`` (``atoll.registry.usage``), and whose project is whose.
        self._pending_usage: dict[_usage.Key, list[int]] = {}
        self._usage_lock = threading.Lock()
        self._project_tenant: dict[str, str] = {}

    @classmethod
    def open(cls, data_dir: str | Path, **kw: Any) -> Registry:
        return cls(sqlite_url(data_dir), **kw)

    def close(self) -> None:
        self.flush_rejections()
        with contextlib.suppress(AtollError):
            self.flush_usage()
        self.engine.dispose()

    # -- plumbing -----------------------------------------------------------------------------
    def _write(self):
        return _transaction(self.engine, self._write_lock)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A connection for reads; a database that cannot be reached is ``Unavailable`` (the
        pool reconnects by itself once it is back)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as e:
            raise Unavailable(f"registry database error: {e.orig}", hint="retry later") from e

    # -- bootstrap ----------------------------------------------------------------------------
    def bootstrap(self, *, username: str = "admin") -> BootstrapSecrets | None:
        """On the very first start, create the default tenant, an admin API key and an admin user.

        Returns the clear-text secrets once; ``None`` on every later start.
        """
        with self._write() as conn:
            one_at_a_time(conn)  # two nodes' first start: one bootstraps, the other sees it done
            done = conn.execute(
                select(t.meta.c.value).where(t.meta.c.key == "bootstrapped")
            ).first()
            if done:
                return None
            if not conn.execute(
                select(t.tenants.c.id).where(t.tenants.c.id == DEFAULT_TENANT)
            ).first():
                _tenants.create_tenant(conn, "Default", DEFAULT_TENANT)
            key = _keys.create(
                conn, DEFAULT_TENANT, "bootstrap admin", "admin", platform_admin=True
            )
            password = new_secret()[:24]
            _users.create(
                conn, DEFAULT_TENANT, username, password, "admin", self._hasher, platform_admin=True
            )
            conn.execute(insert(t.meta).values(key="bootstrapped", value=str(now_us())))
            _audit.record(conn, DEFAULT_TENANT, "system", "bootstrap", f"tenant:{DEFAULT_TENANT}")
        return BootstrapSecrets(DEFAULT_TENANT, key.token, username, password)

    # -- tenants and projects -----------------------------------------------------------------
    def create_tenant(self, name: str, tenant_id: str | None = None) -> Tenant:
        with self._write() as conn:
            return _tenants.create_tenant(conn, name, tenant_id)

    def get_tenant(self, tenant_id: str) -> Tenant:
        with self._read() as conn:
            return _tenants.get_tenant(conn, tenant_id)

    def list_tenants(self) -> list[Tenant]:
        with self._read() as conn:
            return _tenants.list_tenants(conn)

    def create_project(
        self,
        tenant: str,
        name: str,
        *,
        project_id: str | None = None,
        retention_days: int | None = None,
    ) -> Project:
        with self._write() as conn:
            return _tenants.create_project(conn, tenant, name, project_id, retention_days)

    def get_project(self, project: str, tenant: str | None = None) -> Project:
        with self._read() as conn:
            return _tenants.get_project(conn, project, tenant)

    def list_projects(self, tenant: str | None = None) -> list[Project]:
        with self._read() as conn:
            return _tenants.list_projects(conn, tenant)

    def project_activity(
        self, tenant: str | None = None, *, online_since: int
    ) -> list[ProjectActivity]:
        """Projects of ``tenant`` (all tenants: ``None``) with device counts, in one query."""
        with self._read() as conn:
            return _tenants.project_activity(conn, tenant, online_since)

    def update_project(
        self,
        project: str,
        tenant: str | None = None,
        *,
        name: str | None = None,
        retention_days: int | None = _UNSET,
    ) -> Project:
        with self._write() as conn:
            kw = {} if retention_days is _UNSET else {"retention_days": retention_days}
            return _tenants.update_project(conn, project, tenant, name=name, **kw)

    def delete_project(self, project: str, tenant: str | None = None) -> list[str]:
        """Delete a project and everything in it; returns the ids of the devices that went."""
        with self._write() as conn:
            ids = _tenants.delete_project(conn, project, tenant)
        for d in ids:
            self._auth.invalidate(d)
        return ids

    def retention(self) -> dict[str, int]:
        """``{project: retention_days}`` of every project
        that has a limit (for the retention job)."""
        return {p.id: p.retention_days for p in self.list_projects() if p.retention_days}

    # -- device types -------------------------------------------------------------------------
    def create_device_type(
        self,
        project: str,
        type_id: str,
        metrics: Iterable[MetricSpec | Mapping],
        *,
        name: str | None = None,
        tenant: str | None = None,
        detectors: Iterable[DetectorBinding | Mapping] = (),
    ) -> DeviceType:
        with self._write() as conn:
            return _types.create(conn, project, type_id, name, metrics, tenant, detectors)

    def get_device_type(self, project: str, type_id: str, tenant: str | None = None) -> DeviceType:
        with self._read() as conn:
            return _types.get(conn, project, type_id, tenant)

    def list_device_types(self, project: str, tenant: str | None = None) -> list[DeviceType]:
        with self._read() as conn:
            return _types.list_(conn, project, tenant)

    def update_device_type(
        self,
        project: str,
        type_id: str,
        *,
        name: str | None = None,
        metrics: Iterable[MetricSpec | Mapping] | None = None,
        tenant: str | None = None,
        detectors: Iterable[DetectorBinding | Mapping] | None = None,
    ) -> DeviceType:
        with self._write() as conn:
            dt = _types.update_(
                conn,
                project,
                type_id,
                name=name,
                metrics=metrics,
                tenant=tenant,
                detectors=detectors,
            )
        self._auth.invalidate()  # identities carry the schema
        return dt

    def delete_device_type(self, project: str, type_id: str, tenant: str | None = None) -> None:
        with self._write() as conn:
            _types.delete_(conn, project, type_id, tenant)

    # -- devices ------------------------------------------------------------------------------
    def register_device(
        self,
        project: str,
        *,
        device_id: str | None = None,
        name: str | None = None,
        device_type: str | None = None,
        labels: Mapping[str, str] | None = None,
        tenant: str | None = None,
        kind: str = "device",
        parent: str | None = None,
    ) -> tuple[Device, DeviceCredentials]:
        """Create a device with fresh credentials. The secret is in the answer and nowhere else.

        ``kind="gateway"`` makes a gateway (it speaks for child devices); ``parent`` (a gateway
        of the project, as chosen or as stored) makes a child of it."""
        with self._write() as conn:
            _quotas.check(conn, _tenants.get_project(conn, project, tenant).tenant, "devices")
            dev = _devices.create(
                conn,
                project,
                device_id=device_id,
                name=name,
                device_type=device_type,
                labels=labels,
                tenant=tenant,
                kind=kind,
                parent=parent,
            )
            creds = _credentials.issue(conn, dev.id)
        return replace(dev, has_credentials=True), creds

    def register_devices(
        self,
        project: str,
        devices: Iterable[Mapping[str, Any]],
        *,
        tenant: str | None = None,
    ) -> list[tuple[Device, DeviceCredentials]]:
        """Register many devices in one transaction: all of them, or none (the error names the
        culprit).

        Each item takes the keyword arguments of ``register_device`` (``device_id``, ``name``,
        ``device_type``, ``labels``, ``kind``, ``parent``; a parent may be a gateway registered
        earlier in the same batch).
        """
        out = []
        devices = list(devices)
        with self._write() as conn:
            owner = _tenants.get_project(conn, project, tenant).tenant
            _quotas.check(conn, owner, "devices", len(devices))
            for i, spec in enumerate(devices):
                extra = set(spec) - {
                    "device_id",
                    "name",
                    "device_type",
                    "labels",
                    "kind",
                    "parent",
                }
                if extra:
                    raise InvalidInput(f"devices[{i}]: unknown field(s) {', '.join(sorted(extra))}")
                try:
                    dev = _devices.create(conn, project, tenant=tenant, **spec)
                except AtollError as e:
                    raise type(e)(f"devices[{i}]: {e.message}", hint=e.hint) from None
                out.append((replace(dev, has_credentials=True), _credentials.issue(conn, dev.id)))
        return out

    def get_device(self, device_id: str, tenant: str | None = None) -> Device:
        with self._read() as conn:
            return _devices.get(conn, device_id, tenant)

    # -- maintenance records (atoll.registry.maintenance) ----------------------------------------
    def record_maintenance(
        self,
        device_id: str,
        kind: str,
        at: int,
        *,
        actor: str,
        part: str | None = None,
        cost: float | None = None,
        note: str | None = None,
        tenant: str | None = None,
    ) -> MaintenanceEvent:
        with self._write() as conn:
            _devices.get(conn, device_id, tenant)
            return _maintenance.record(
                conn, device_id, actor, kind=kind, at=at, part=part, cost=cost, note=note
            )

    def list_maintenance(
        self,
        device_id: str | None = None,
        *,
        project: str | None = None,
        tenant: str | None = None,
        kind: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 1000,
    ) -> list[MaintenanceEvent]:
        """A device's records, or every device's of ``project``; newest first."""
        with self._read() as conn:
            if device_id is not None:
                devices = [_devices.get(conn, device_id, tenant).id]
            elif project is not None:
                _tenants.get_project(conn, project, tenant)
                devices = list(_devices.profiles(conn, project))
            else:
                raise InvalidInput("name a device or a project")
            return _maintenance.list_(
                conn, devices, kind=kind, since=since, until=until, limit=limit
            )

    def delete_maintenance(
        self, device_id: str, event_id: str, tenant: str | None = None
    ) -> MaintenanceEvent:
        with self._write() as conn:
            _devices.get(conn, device_id, tenant)
            return _maintenance.remove(conn, device_id, event_id)

    def import_maintenance(
        self, project: str, rows: list[dict[str, Any]], *, actor: str, tenant: str | None = None
    ) -> int:
        """Checked rows (``maintenance.parse_csv``) of ``project``'s devices, all or none."""
        with self._write() as conn:
            pre = prefix(_tenants.get_project(conn, project, tenant).tenant)
            known = _devices.profiles(conn, project)
            # The device column may hold stored ids or the names chosen in the tenant.
            rows = [
                {**r, "device": r["device"] if r["device"] in known else pre + r["device"]}
                for r in rows
            ]
            strangers = sorted({r["device"] for r in rows} - set(known))
            if strangers:
                raise InvalidInput(
                    f"{len(strangers)} device(s) not in project {project!r}, nothing imported: "
                    + ", ".join(strangers[:10]),
                    hint="register them first, or fix the device column",
                )
            return _maintenance.insert_many(conn, rows, actor)

    # -- RUL fit jobs (atoll.registry.rul_fits) ---------------------------------------------------
    def create_rul_fit(
        self,
        project: str,
        device_type: str,
        *,
        params: dict[str, Any],
        requested_by: str,
        trigger: str = "api",
        tenant: str | None = None,
    ) -> RulFit:
        """A queued fit of ``device_type``'s RUL model (``NotFound`` for an unknown type)."""
        with self._write() as conn:
            owner = _tenants.get_project(conn, project, tenant).tenant
            _types.get(conn, project, device_type)
            return _rul_fits.create(
                conn,
                owner,
                project,
                device_type,
                params=params,
                requested_by=requested_by,
                trigger=trigger,
            )

    def get_rul_fit(self, project: str, fit_id: str, tenant: str | None = None) -> RulFit:
        with self._read() as conn:
            _tenants.get_project(conn, project, tenant)
            return _rul_fits.get(conn, project, fit_id)

    def list_rul_fits(
        self,
        project: str,
        tenant: str | None = None,
        *,
        device_type: str | None = None,
        limit: int = 100,
    ) -> list[RulFit]:
        """Newest first."""
        with self._read() as conn:
            _tenants.get_project(conn, project, tenant)
            return _rul_fits.list_(conn, project, device_type, limit)

    def set_rul_fit(self, fit_id: str, state: str, **fields: Any) -> None:
        """Move fit ``fit_id`` to ``state`` (``model``, ``error``, ``outcome``, ``progress``)."""
        with self._write() as conn:
            _rul_fits.set_state(conn, fit_id, state, **fields)

    # -- RUL configuration per device type (atoll.registry.rul_configs) --------------------------
    def put_rul_config(
        self,
        project: str,
        device_type: str,
        *,
        actor: str,
        tenant: str | None = None,
        **fields: Any,
    ) -> RulConfig:
        """Set ``device_type``'s RUL configuration (``cycle``, ``cap``, ``retrain_every``,
        ``on_failure``, ``auto_activate``)."""
        with self._write() as conn:
            owner = _tenants.get_project(conn, project, tenant).tenant
            _types.get(conn, project, device_type)
            return _rul_configs.put(conn, owner, project, device_type, actor=actor, **fields)

    def get_rul_config(
        self, project: str, device_type: str, tenant: str | None = None
    ) -> RulConfig:
        with self._read() as conn:
            _tenants.get_project(conn, project, tenant)
            return _rul_configs.get(conn, project, device_type)

    def rul_retraining(self) -> list[tuple[RulConfig, int | None]]:
        """Every configuration that retrains, with its type's newest failure record's time."""
        with self._read() as conn:
            return [
                (c, _rul_configs.newest_failure(conn, c.project, c.device_type))
                for c in _rul_configs.with_retraining(conn)
            ]

    def claim_rul_retraining(
        self, cfg: RulConfig, *, last_fit: int, failures_seen: int | None
    ) -> bool:
        with self._write() as conn:
            return _rul_configs.claim(conn, cfg, last_fit=last_fit, failures_seen=failures_seen)

    # -- the model registry (atoll.registry.ml_models) -------------------------------------------
    def register_model(
        self,
        project: str,
        *,
        actor: str,
        tenant: str | None = None,
        files: bytes | None = None,
        **fields: Any,
    ) -> ModelVersion:
        """The next version of ``fields["kind"]`` for ``fields["scope"]``, as a draft; with
        ``files`` (``model_files.pack``), its files are kept with it, for every node."""
        for attempt in range(5):  # two registrations at once may pick the same version
            try:
                with self._write() as conn:
                    owner = _tenants.get_project(conn, project, tenant).tenant
                    model = _models.register(conn, owner, project, actor=actor, **fields)
                    if files is not None:
                        _model_files.put(conn, model.id, files)
                    return model
            except Conflict as e:
                if not isinstance(e.__cause__, IntegrityError) or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def model_files(self, model_id: str) -> tuple[bytes, str] | None:
        """The packed files kept with model ``model_id`` and their SHA-256 (``None``: none)."""
        with self._read() as conn:
            return _model_files.get(conn, model_id)

    def get_model(self, project: str, model_id: str, tenant: str | None = None) -> ModelVersion:
        with self._read() as conn:
            _tenants.get_project(conn, project, tenant)
            return _models.get(conn, project, model_id)

    def list_models(
        self, project: str, tenant: str | None = None, **filters: Any
    ) -> list[ModelVersion]:
        """``filters``: ``kind``, ``scope``, ``state``, ``ref``, ``limit``."""
        with self._read() as conn:
            _tenants.get_project(conn, project, tenant)
            return _models.list_(conn, project, **filters)

    def model_versions(
        self, project: str, model_id: str, tenant: str | None = None
    ) -> list[ModelVersion]:
        """Every version of the model's kind and scope, newest first."""
        with self._read() as conn:
            _tenants.get_project(conn, project, tenant)
            m = _models.get(conn, project, model_id)
            return _models.versions(conn, project, m.kind, m.scope)

    def change_model(
        self, project: str, model_id: str, action: str, *, actor: str, tenant: str | None = None
    ) -> tuple[ModelVersion, list[str]]:
        """``approve``, ``activate``, ``retire`` or ``rollback``: the model now active (or
        changed) and the ids it retired; ``Conflict`` for a transition its state forbids."""
        for attempt in range(5):  # another node activated a version of the scope meanwhile
            try:
                with self._write() as conn:
                    _tenants.get_project(conn, project, tenant)
                    return _models.change(conn, project, model_id, action, actor)
            except Conflict as e:
                if not isinstance(e.__cause__, IntegrityError) or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def record_fitted_models(self, records: Iterable[ModelRecord]) -> int:
        """Detection's fitted models, kept as active detector versions (``ModelCatalog``)."""
        with self._write() as conn:
            return _models.record_fitted(conn, records)

    def forecaster_version(
        self, project: str, device: str, metric: str, *, algorithm: str, params: dict[str, Any]
    ) -> ModelRef | None:
        """The rules' forecaster of a series, filed as an active version (``ForecasterCatalog``,
        ``ml_models.file_forecaster``)."""
        for attempt in range(5):  # another node filed one at the same moment: read it again
            try:
                with self._write() as conn:
                    return _models.file_forecaster(conn, project, device, metric, algorithm, params)
            except Conflict as e:
                if not isinstance(e.__cause__, IntegrityError) or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def device_profiles(self, project: str) -> dict[str, tuple[str | None, dict[str, str]]]:
        """``{device id: (device type, labels)}`` of a project's devices, in one query: for
        services that meet a whole fleet at once (``atoll.registry.profiles``)."""
        with self._read() as conn:
            return _devices.profiles(conn, project)

    def list_devices(
        self,
        project: str,
        tenant: str | None = None,
        *,
        limit: int = 1000,
        offset: int = 0,
        device_type: str | None = None,
        search: str | None = None,
        seen_since: int | None = None,
        not_seen_since: int | None = None,
        parent: str | None = None,
        kind: str | None = None,
    ) -> list[Device]:
        with self._read() as conn:
            return _devices.list_(
                conn,
                project,
                tenant,
                limit=limit,
                offset=offset,
                device_type=device_type,
                search=search,
                seen_since=seen_since,
                not_seen_since=not_seen_since,
                parent=parent,
                kind=kind,
            )

    def count_devices(
        self,
        project: str,
        *,
        device_type: str | None = None,
        search: str | None = None,
        seen_since: int | None = None,
        not_seen_since: int | None = None,
        parent: str | None = None,
        kind: str | None = None,
    ) -> int:
        """How many devices ``list_devices`` would page through with the same filters."""
        with self._read() as conn:
            return _devices.count_matching(
                conn,
                project,
                device_type=device_type,
                search=search,
                seen_since=seen_since,
                not_seen_since=not_seen_since,
                parent=parent,
                kind=kind,
            )

    def update_device(
        self,
        device_id: str,
        tenant: str | None = None,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        device_type: str | None = _UNSET,
        disabled: bool | None = None,
        kind: str | None = None,
        parent: str | None = _UNSET,
    ) -> Device:
        """Change a device; ``parent=None`` detaches a child from its gateway."""
        with self._write() as conn:
            kw: dict[str, Any] = {} if device_type is _UNSET else {"device_type": device_type}
            if parent is not _UNSET:
                kw["parent"] = parent
            dev = _devices.update_(
                conn,
                device_id,
                tenant,
                name=name,
                labels=labels,
                disabled=disabled,
                kind=kind,
                **kw,
            )
        self._auth.invalidate(device_id)
        return dev

    def disable_device(
        self, device_id: str, tenant: str | None = None, disabled: bool = True
    ) -> Device:
        return self.update_device(device_id, tenant, disabled=disabled)

    def delete_device(self, device_id: str, tenant: str | None = None) -> Device:
        with self._write() as conn:
            dev = _devices.delete_(conn, device_id, tenant)
        self._auth.invalidate(device_id)
        return dev

    # -- credentials --------------------------------------------------------------------------
    def rotate_credentials(self, device_id: str, tenant: str | None = None) -> DeviceCredentials:
        with self._write() as conn:
            _devices.get(conn, device_id, tenant)
            creds = _credentials.issue(conn, device_id)
        self._auth.invalidate(device_id)
        return creds

    def revoke_credentials(self, device_id: str, tenant: str | None = None) -> None:
        with self._write() as conn:
            _devices.get(conn, device_id, tenant)
            _credentials.revoke(conn, device_id)
        self._auth.invalidate(device_id)

    def authenticate_device(self, device_id: str, secret: str) -> DeviceIdentity | None:
        """The device's identity if ``secret`` is its current secret and it is enabled, else
        ``None``.

        Hot path for ingest: a cached positive answer costs one SHA-256 and no I/O.
        """
        if not device_id or not secret:
            return None
        hit = self._auth.check(device_id, secret)
        if hit is not None:
            return hit
        with self._read() as conn:
            found = _credentials.load(conn, device_id)
        if found is None:
            return None
        secret_hash, disabled, identity = found
        if disabled or secret_hash is None or not matches(secret, secret_hash):
            return None
        self._auth.put(secret_hash, identity)
        return identity

    def authenticate_devices(
        self, credentials: Iterable[tuple[str, str]]
    ) -> dict[str, DeviceIdentity | None]:
        """``authenticate_device`` of many ``(device_id, secret)`` at once: the cache first, the
        rest read with one query per few hundred devices (the embedded broker re-checks every
        connection this way; one read each cost a quarter of its CPU with 10,000 devices)."""
        out: dict[str, DeviceIdentity | None] = {}
        misses: list[tuple[str, str]] = []
        for device_id, secret in credentials:
            hit = self._auth.check(device_id, secret) if device_id and secret else None
            if hit is not None:
                out[device_id] = hit
            else:
                misses.append((device_id, secret))
        if not misses:
            return out
        with self._read() as conn:
            found = _credentials.load_many(conn, sorted({d for d, _ in misses if d}))
        for device_id, secret in misses:
            row = found.get(device_id)
            out[device_id] = None
            if row is None or not secret:
                continue
            secret_hash, disabled, identity = row
            if not disabled and secret_hash is not None and matches(secret, secret_hash):
                self._auth.put(secret_hash, identity)
                out[device_id] = identity
        return out

    def device_disabled(self, device_id: str, secret: str) -> bool:
        """True if ``secret`` is right but the device
        is disabled (lets ingest say why it refuses)."""
        with self._read() as conn:
            found = _credentials.load(conn, device_id)
        return found is not None and found[1] and matches(secret, found[0])

    def device_identity(self, device_id: str) -> DeviceIdentity | None:
        """Project, tenant and telemetry schema of a device (no secret check), or ``None``."""
        with self._read() as conn:
            found = _credentials.load(conn, device_id)
        return None if found is None else found[2]

    def device_identities(self, device_ids: Iterable[str]) -> dict[str, DeviceIdentity | None]:
        """``device_identity`` of many devices by id (no secret check): remembered for the auth
        cache's time to live (an unknown id about a second), the rest read in one query; a
        disabled device is ``None``. For the devices a gateway speaks for, so a gateway's
        message costs no registry read."""
        out: dict[str, DeviceIdentity | None] = {}
        misses = []
        for device_id in device_ids:
            hit, identity = self._auth.known(device_id)
            if hit:
                out[device_id] = identity
            else:
                misses.append(device_id)
        if misses:
            with self._read() as conn:
                found = _credentials.load_many(conn, sorted(set(misses)))
            for device_id in misses:
                row = found.get(device_id)
                identity = None if row is None or row[1] else row[2]  # unknown or disabled
                self._auth.remember(device_id, identity)
                out[device_id] = identity
        return out

    def known_identities(self, device_ids: Iterable[str]) -> dict[str, DeviceIdentity | None]:
        """Those of ``device_identities`` that are remembered (no I/O: for the event loop)."""
        out = {}
        for device_id in device_ids:
            hit, identity = self._auth.known(device_id)
            if hit:
                out[device_id] = identity
        return out

    def adopt_child(
        self, gateway: str, child: str, device_type: str | None = None
    ) -> tuple[DeviceIdentity, bool]:
        """A gateway declares a child (``gateway/connect``): ``child`` (as the gateway knows it,
        without the tenant prefix) is registered in the gateway's project with the gateway as
        parent, without credentials (it speaks only through the gateway), unless it is already
        the gateway's child (then it is left as it is, its device type too). Returns the
        child's identity and whether it was created.

        Refused (``InvalidInput``, ``NotFound``, ``Conflict``, ``QuotaExceeded``) when the
        gateway is not one, the id is malformed or another tenant's, the device exists with
        another parent or none (a gateway never adopts an existing device), or the device type
        is not one of the project's, or the project is at its device quota."""
        with self._write() as conn:
            loaded = _credentials.load(conn, gateway)
            if loaded is None or loaded[2].kind != acl.GATEWAY:
                raise InvalidInput(f"device {gateway!r} is not a gateway")
            gw = loaded[2]
            child_id = self.child_id(gw.tenant, child)
            existing = _credentials.load(conn, child_id)
            if existing is not None:
                if not acl.is_gateway_child(gw, existing[2]):
                    raise Conflict(
                        f"device {child!r} exists and is not a child of gateway {gateway!r}",
                        hint="a gateway only speaks for devices registered with it as parent; "
                        f'an operator can PATCH /devices/{child_id} {{"parent": "{gateway}"}}',
                    )
                return existing[2], False  # its type stays what it is (PATCH changes it)
            _quotas.check(conn, gw.tenant, "devices")
            _devices.create(
                conn,
                gw.project,
                device_id=child_id,
                device_type=device_type,
                parent=gateway,
                tenant=gw.tenant,
            )
            created = _credentials.load(conn, child_id)
        assert created is not None
        self._auth.invalidate(child_id)
        return created[2], True

    @staticmethod
    def child_id(tenant: str, child: str) -> str:
        """The stored id of the device a gateway of ``tenant`` names ``child`` (its id as
        chosen); ``InvalidInput`` if malformed or in another tenant's namespace."""
        if not isinstance(child, str) or not child:
            raise InvalidInput("a child device id must be a non-empty string")
        return qualify_id("device", tenant, child)

    def touch_devices(self, seen: Mapping[str, int]) -> None:
        """Record ``last_seen`` (µs) for devices; ingest calls this in batches, not per message."""
        if not seen:
            return
        with self._write() as conn:
            _devices.touch_many(conn, seen)

    # -- rejections ---------------------------------------------------------------------------
    def record_rejection(
        self, device_id: str, transport: str, reason: str, message: str = ""
    ) -> None:
        """Count a refused message. Cheap: counts are buffered and written about once a second."""
        now = now_us()
        with self._rej_lock:
            slot = self._pending_rejections.setdefault(
                (device_id, transport, reason), [0, now, message]
            )
            slot[0] += 1
            slot[1], slot[2] = now, message
            due = time.monotonic() - self._rej_flushed > 1.0
        if due:
            self.flush_rejections()

    def record_rejections(self, rows: Iterable[tuple[str, str, str, str, int, int]]) -> None:
        """Add counted rejections ``(device, transport,
        reason, last_message, last_at_us, count)`` now."""
        with self._rej_lock:
            for device_id, transport, reason, message, at, n in rows:
                slot = self._pending_rejections.setdefault(
                    (device_id, transport, reason), [0, at, message]
                )
                slot[0] += n
                if at >= slot[1]:
                    slot[1], slot[2] = at, message
        self.flush_rejections()

    def flush_rejections(self) -> None:
        with self._rej_lock:
            pending, self._pending_rejections = self._pending_rejections, {}
            self._rej_flushed = time.monotonic()
        if not pending:
            return
        with self._write() as conn:
            known = {
                r.id
                for r in conn.execute(
                    select(t.devices.c.id).where(t.devices.c.id.in_({k[0] for k in pending}))
                )
            }
            # Unknown device ids come from attackers or typos; counting them would let anyone
            # grow the table, so they only reach the log.
            _rejections.record_many(
                conn,
                {key: (n, at, msg) for key, (n, at, msg) in pending.items() if key[0] in known},
            )

    # -- the project portfolio (atoll.registry.portfolio) -----------------------------------------
    def portfolios(self, projects: Iterable[Project]) -> dict[str, Portfolio]:
        """Each project's stage, owner and goals (never placed: an idea), in one query."""
        with self._read() as conn:
            return _portfolio.get_many(conn, projects)

    def set_portfolio(
        self,
        project: str,
        tenant: str | None = None,
        *,
        actor: str,
        stage: str | None = None,
        owner: Any = _UNSET,
        goals: str | None = None,
    ) -> tuple[Portfolio, Portfolio]:
        """Change a project's stage, owner (``None``: nobody) or goals; ``(before, after)``."""
        kw = {} if owner is _UNSET else {"owner": owner}
        for attempt in range(3):  # two first changes at once both insert: the loser updates
            try:
                with self._write() as conn:
                    p = _tenants.get_project(conn, project, tenant)
                    return _portfolio.put(
                        conn, p, actor=actor, at=now_us(), stage=stage, goals=goals, **kw
                    )
            except Conflict:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def failures(
        self, projects: Iterable[str], since: int, until: int
    ) -> list[tuple[str, str, int]]:
        """``(project, device, at)`` of the failures recorded in ``[since, until)``."""
        with self._read() as conn:
            return _portfolio.failures(conn, projects, since, until)

    # -- usage metering (atoll.registry.usage) ---------------------------------------------------
    def _meter(self, key: _usage.Key, messages: int, points: int, api_calls: int) -> None:
        """Add to a pending counter (the caller holds ``_usage_lock``)."""
        slot = self._pending_usage.get(key)
        if slot is None:
            self._pending_usage[key] = [messages, points, api_calls]
        else:
            slot[0] += messages
            slot[1] += points
            slot[2] += api_calls

    def count_api_call(self, tenant: str) -> None:
        """Meter one authenticated API request of ``tenant``: counted in memory, written by the
        next ``flush_usage`` (the ingest pipeline's counter flush, about once a second; a read
        of the usage; ``close``), never in the request itself."""
        with self._usage_lock:
            self._meter((tenant, "", _usage.hour_of(now_us())), 0, 0, 1)

    def record_usage(self, stored: Mapping[str, tuple[int, int]], at: int | None = None) -> None:
        """Meter telemetry stored: ``{project: (messages, points)}`` (ingest, once a second, even
        when empty), and write what is pending (API calls too)."""
        hour = _usage.hour_of(at if at is not None else now_us())
        missing = [p for p in stored if p not in self._project_tenant]
        if missing:
            with self._read() as conn:
                rows = conn.execute(
                    select(t.projects.c.id, t.projects.c.tenant).where(t.projects.c.id.in_(missing))
                )
                self._project_tenant.update((r[0], r[1]) for r in rows)
        with self._usage_lock:
            for project, (messages, points) in stored.items():
                tenant = self._project_tenant.get(project)
                if tenant is not None:  # a project deleted meanwhile: nobody to bill
                    self._meter((tenant, project, hour), messages, points, 0)
        self.flush_usage()

    def flush_usage(self) -> None:
        """Write the pending counters (as additions: several nodes add up)."""
        with self._usage_lock:
            pending, self._pending_usage = self._pending_usage, {}
        if not pending:
            return
        hours = {k: (v[0], v[1], v[2]) for k, v in pending.items()}
        days: dict[_usage.Key, tuple[int, int, int]] = {}
        for (tenant, project, hour), (m, p, a) in hours.items():
            key = (tenant, project, hour[:10])
            was = days.get(key, (0, 0, 0))
            days[key] = (was[0] + m, was[1] + p, was[2] + a)
        for attempt in range(3):  # another node created one of the period's rows at the same time
            try:
                with self._write() as conn:
                    _usage.add_many(conn, days)
                    _usage.add_many(conn, hours, hourly=True)
                return
            except Conflict:
                if attempt == 2:
                    raise
            except Unavailable:
                with self._usage_lock:  # kept for the next flush, not lost
                    for k, v in pending.items():
                        self._meter(k, *v)
                raise

    def usage_hourly(
        self, tenants: Iterable[str], since: str, until: str
    ) -> list[tuple[str, str, str, int, int, int]]:
        """``(tenant, project, hour, messages, points, api_calls)`` from hour ``since`` to hour
        ``until`` (``YYYY-MM-DDTHH``, UTC) inclusive; kept ``usage.HOURLY_DAYS`` days."""
        self.flush_usage()
        with self._read() as conn:
            return _usage.hourly(conn, tenants, since, until)

    def prune_usage(self, now: int | None = None) -> int:
        """Forget hourly counters older than ``usage.HOURLY_DAYS`` days (daily ones stay)."""
        cutoff = (now if now is not None else now_us()) - _usage.HOURLY_DAYS * 86_400_000_000
        with self._write() as conn:
            return _usage.prune_hourly(conn, _usage.hour_of(cutoff))

    def record_storage(self, held: Mapping[str, int], at: int | None = None) -> None:
        """A sample of the points each project holds in the store (``{project: points}``)."""
        owners = self._project_owners()
        day = _usage.day_of(at if at is not None else now_us())
        rows = {(owners[p], p): n for p, n in held.items() if p in owners}
        for attempt in range(3):
            try:
                with self._write() as conn:
                    _usage.set_storage(conn, day, rows)
                return
            except Conflict:
                if attempt == 2:
                    raise

    def usage(
        self,
        tenants: Iterable[str],
        *,
        projects: Iterable[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[UsageDay]:
        """Metered days of ``tenants`` (everything counted so far included), oldest first."""
        self.flush_usage()
        with self._read() as conn:
            return _usage.query(
                conn, tenants, projects=projects, since=since, until=until, limit=limit
            )

    def rejections(self, device_id: str, tenant: str | None = None) -> list[Rejection]:
        self.flush_rejections()
        with self._read() as conn:
            _devices.get(conn, device_id, tenant)
            return _rejections.list_(conn, device_id)

    # -- API keys, users, sessions ------------------------------------------------------------
    def create_api_key(
        self,
        tenant: str,
        name: str,
        role: str,
        *,
        platform_admin: bool = False,
        ttl_s: float | None = None,
        quota: bool = True,
    ) -> NewApiKey:
        """``quota=False``: not held to the tenant's API key quota (the recovery key of
        ``atoll admin create-key`` must work when the quota is used up)."""
        expires = now_us() + int(ttl_s * 1e6) if ttl_s else None
        with self._write() as conn:
            if quota and not name.startswith(_keys.SESSION_PREFIX):
                _quotas.check(conn, tenant, "api_keys")
            return _keys.create(
                conn, tenant, name, role, platform_admin=platform_admin, expires_at=expires
            )

    def authenticate_key(self, token: str) -> Principal | None:
        if not token:
            return None
        with self._read() as conn:
            return _keys.authenticate(conn, token)

    def list_api_keys(self, tenant: str) -> list[ApiKey]:
        with self._read() as conn:
            return _keys.list_(conn, tenant)

    def revoke_api_key(self, tenant: str, key_id: str) -> ApiKey:
        with self._write() as conn:
            return _keys.revoke(conn, tenant, key_id)

    def create_user(self, tenant: str, username: str, password: str, role: str) -> User:
        with self._write() as conn:
            return _users.create(conn, tenant, username, password, role, self._hasher)

    def list_users(self, tenant: str) -> list[User]:
        with self._read() as conn:
            return _users.list_(conn, tenant)

    def set_password(self, tenant: str, username: str, password: str) -> None:
        with self._write() as conn:
            _users.set_password(conn, tenant, username, password, self._hasher)
            _keys.revoke_sessions(conn, tenant, username)

    def change_password(
        self, username: str, current: str, new: str, *, keep_session: str | None = None
    ) -> bool:
        """A user changing their own password; ``False`` if ``current`` is wrong.

        Every other session of the user ends; ``keep_session`` (the key id of the session
        making the change) stays valid, so the user is not logged out of this browser.
        """
        _users.check_password(new)
        with self._write() as conn:
            user = _users.verify(conn, username, current, self._hasher)
            if user is None:
                return False
            if current == new:
                raise InvalidInput("the new password must differ from the current one")
            _users.set_password(conn, user.tenant, username, new, self._hasher)
            _keys.revoke_sessions(conn, user.tenant, username, keep=keep_session)
        return True

    # -- quotas -------------------------------------------------------------------------------
    def quotas(self, tenant: str) -> dict[str, _quotas.Usage]:
        """Each quota of ``tenant`` with its limit (``None``: none) and what is used."""
        with self._read() as conn:
            return _quotas.usage(conn, tenant)

    def ingest_rates(self) -> dict[str, float]:
        """Every tenant's ingest rate quota (points/s) that the platform operator set."""
        with self._read() as conn:
            return _quotas.ingest_rates(conn)

    def ingest_rate(self, tenant: str) -> float | None:
        with self._read() as conn:
            return _quotas.ingest_rate(conn, tenant)

    def storage_limit(self, tenant: str) -> int | None:
        """The tenant's storage quota in points (``None``: no limit)."""
        with self._read() as conn:
            return _quotas.storage_limit(conn, tenant)

    def _project_owners(self) -> dict[str, str]:
        """``{project: tenant}`` of every project."""
        with self._read() as conn:
            return dict(conn.execute(select(t.projects.c.id, t.projects.c.tenant)).all())

    def storage_by_tenant(self, held: Mapping[str, int]) -> dict[str, int]:
        """``{project: points held}`` (the store's ``usage``) summed per tenant."""
        owners = self._project_owners()
        out: dict[str, int] = {}
        for project, n in held.items():
            tenant = owners.get(project)
            if tenant is not None:
                out[tenant] = out.get(tenant, 0) + n
        return out

    def over_storage(self, held: Callable[[], Mapping[str, int]]) -> dict[str, tuple[int, int]]:
        """``{tenant: (points held, quota)}`` of the tenants at or over their storage quota;
        ``held()`` answers ``{project: points held}`` (asked only if some quota is set)."""
        with self._read() as conn:
            limits = _quotas.storage_limits(conn)
        if not limits:
            return {}
        per_tenant = self.storage_by_tenant(held())
        return {
            tenant: (per_tenant.get(tenant, 0), limit)
            for tenant, limit in limits.items()
            if per_tenant.get(tenant, 0) >= limit
        }

    def set_quotas(
        self, tenant: str, values: Mapping[str, int | float | None]
    ) -> dict[str, _quotas.Usage]:
        with self._write() as conn:
            return _quotas.set_(conn, tenant, dict(values))

    # -- invites ------------------------------------------------------------------------------
    def create_invite(
        self,
        tenant: str,
        username: str,
        role: str,
        created_by: str,
        ttl_s: float = _invites.DEFAULT_TTL_S,
    ) -> NewInvite:
        with self._write() as conn:
            return _invites.create(conn, tenant, username, role, created_by, ttl_s)

    def list_invites(self, tenant: str) -> list[Invite]:
        with self._read() as conn:
            return _invites.list_(conn, tenant)

    def revoke_invite(self, tenant: str, invite_id: str) -> Invite:
        with self._write() as conn:
            return _invites.revoke(conn, tenant, invite_id)

    def invite_for_token(self, token: str) -> Invite | None:
        """The pending invite a token opens, or ``None`` (unknown, used, revoked, expired)."""
        with self._read() as conn:
            return _invites.usable(conn, token)

    def accept_invite(
        self, token: str, password: str, *, ttl_s: float = SESSION_TTL_S
    ) -> tuple[User, NewApiKey] | None:
        """Create the invited user with ``password`` and log them in; ``None`` if the token
        does not open a pending invite. The token works once."""
        _users.check_password(password)
        with self._write() as conn:
            invite = _invites.usable(conn, token)
            if invite is None or not _invites.mark_used(conn, invite):
                return None
            user = _users.create(
                conn, invite.tenant, invite.username, password, invite.role, self._hasher
            )
            key = _keys.create(
                conn,
                user.tenant,
                _keys.SESSION_PREFIX + user.username,
                user.role,
                expires_at=now_us() + int(ttl_s * 1e6),
            )
        return user, key

    def update_user(
        self, tenant: str, username: str, *, role: str | None = None, disabled: bool | None = None
    ) -> User:
        """Change a user's role or status; their open sessions end (they log in again)."""
        with self._write() as conn:
            user = _users.update_(conn, tenant, username, role=role, disabled=disabled)
            if role is not None or disabled is not None:
                _keys.revoke_sessions(conn, tenant, username)
        return user

    def delete_user(self, tenant: str, username: str) -> None:
        with self._write() as conn:
            _users.delete_(conn, tenant, username)
            _keys.revoke_sessions(conn, tenant, username)

    def login(
        self, username: str, password: str, *, ttl_s: float = SESSION_TTL_S
    ) -> tuple[User, NewApiKey] | None:
        """Check a console password; on success issue a
        short-lived session key with the user's role."""
        with self._write() as conn:
            user = _users.verify(conn, username, password, self._hasher)
            if user is None:
                return None
            key = _keys.create(
                conn,
                user.tenant,
                _keys.SESSION_PREFIX + username,
                user.role,
                platform_admin=user.platform_admin,
                expires_at=now_us() + int(ttl_s * 1e6),
            )
            # Expired sessions are dead weight; drop them here rather than in a background job.
            conn.execute(
                delete(t.api_keys).where(
                    t.api_keys.c.expires_at.is_not(None), t.api_keys.c.expires_at < now_us()
                )
            )
        return user, key

    # -- twins --------------------------------------------------------------------------------
    def get_twin(self, device_id: str, tenant: str | None = None) -> Twin:
        with self._read() as conn:
            _devices.get(conn, device_id, tenant)
            return _twins.get(conn, device_id)

    def patch_desired(
        self, device_id: str, patch: Mapping[str, Any], tenant: str | None = None
    ) -> Twin:
        with self._write() as conn:
            _devices.get(conn, device_id, tenant)
            return _twins.patch_desired(conn, device_id, patch)

    def patch_reported(self, device_id: str, patch: Mapping[str, Any]) -> Twin:
        """Called by ingest for the authenticated device itself."""
        with self._write() as conn:
            _devices.get(conn, device_id)
            return _twins.patch_reported(conn, device_id, patch)

    # -- commands -----------------------------------------------------------------------------
    def create_command(
        self,
        device_id: str,
        name: str,
        args: Mapping[str, Any] | None = None,
        *,
        ttl_s: float = _commands.DEFAULT_TTL_S,
        tenant: str | None = None,
    ) -> Command:
        with self._write() as conn:
            dev = _devices.get(conn, device_id, tenant)
            if dev.disabled:
                raise InvalidInput(f"device {device_id!r} is disabled", hint="enable it first")
            return replace(_commands.create(conn, device_id, name, args, ttl_s), gateway=dev.parent)

    def get_command(self, device_id: str, command_id: str, tenant: str | None = None) -> Command:
        with self._write() as conn:
            _devices.get(conn, device_id, tenant)
            _commands.expire(conn, device_id=device_id)
            return _commands.get(conn, device_id, command_id)

    def list_commands(
        self,
        device_id: str,
        tenant: str | None = None,
        *,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Command]:
        with self._write() as conn:
            gateway = _devices.get(conn, device_id, tenant).parent
            found = _commands.list_(conn, device_id, status=status, limit=limit)
        return [replace(c, gateway=gateway) for c in found] if gateway else found

    def pending_child_commands(self, gateway: str, limit: int = 1000) -> list[Command]:
        """The pending commands of a gateway's children, oldest first (handed over when the
        gateway subscribes)."""
        with self._write() as conn:
            kids = conn.execute(
                select(t.devices.c.id).where(t.devices.c.parent == gateway)
            ).scalars()
            out = [
                replace(c, gateway=gateway)
                for kid in kids.all()
                for c in _commands.list_(conn, kid, status="pending", limit=limit)
            ]
        return sorted(out, key=lambda c: (c.created_at, c.id))[:limit]

    def mark_command_delivered(self, device_id: str, command_id: str) -> Command:
        with self._write() as conn:
            return _commands.set_status(conn, device_id, command_id, "delivered")

    def ack_command(self, device_id: str, command_id: str, ok: bool, result: Any = None) -> Command:
        """A device's acknowledgement: ``ok`` → acked, else
        failed. Raises for unknown or finished ones."""
        with self._write() as conn:
            return _commands.set_status(
                conn, device_id, command_id, "acked" if ok else "failed", result
            )

    def expire_commands(self) -> int:
        with self._write() as conn:
            return _commands.expire(conn)

    def claim_run(self, job: str, now: int, every: int) -> bool:
        """Whether a singleton job (retention, command expiry) runs now: its last run is at
        least ``every`` µs before ``now``, moved to ``now`` with compare-and-set, so of several
        nodes trying at once exactly one gets the slot."""
        key = f"run:{job}"[:64]
        with self._read() as conn:
            row = conn.execute(select(t.meta.c.value).where(t.meta.c.key == key)).first()
        if row is None:
            try:
                with self._write() as conn:
                    conn.execute(insert(t.meta).values(key=key, value=str(now)))
            except (IntegrityError, Conflict):
                return False  # another node's first run, just now
            return True
        with self._write() as conn:
            if now - int(row.value) < every:
                return False
            moved = conn.execute(
                update(t.meta)
                .where(t.meta.c.key == key, t.meta.c.value == row.value)
                .values(value=str(now))
            ).rowcount
            return moved == 1

    # -- audit --------------------------------------------------------------------------------
    def audit(
        self,
        tenant: str,
        actor: str,
        action: str,
        target: str,
        detail: Mapping[str, Any] | None = None,
        source: str | None = None,
    ) -> None:
        with self._write() as conn:
            _audit.record(conn, tenant, actor, action, target, detail, source)

    def audit_log(
        self,
        tenant: str,
        *,
        limit: int = 100,
        before_id: int | None = None,
        action: str | None = None,
        target: str | None = None,
        actor: str | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> list[AuditEntry]:
        """Newest first; ``actor`` matches part of the actor, ``action`` ending in ``.`` is a
        prefix; ``since``/``until`` bound the time (µs)."""
        with self._read() as conn:
            return _audit.list_(
                conn,
                tenant,
                limit=limit,
                before_id=before_id,
                action=action,
                target=target,
                actor=actor,
                since=since,
                until=until,
            )

    def audit_count(self, tenant: str, **filters: Any) -> int:
        """How many entries ``audit_log`` pages through with the same filters."""
        with self._read() as conn:
            return _audit.count(conn, tenant, **filters)

    def audit_actions(self, tenant: str) -> list[str]:
        with self._read() as conn:
            return _audit.actions(conn, tenant)


@contextmanager
def _transaction(engine: Engine, lock: threading.RLock | None) -> Iterator[Connection]:
    """``engine.begin()`` under the SQLite writer lock; translates driver errors at the edge."""
    if lock is not None:
        lock.acquire()
    try:
        with engine.begin() as conn:
            yield conn
    except IntegrityError as e:
        raise Conflict(f"conflicting change: {e.orig}") from e
    except OperationalError as e:
        raise Unavailable(f"registry database error: {e.orig}") from e
    finally:
        if lock is not None:
            lock.release()
