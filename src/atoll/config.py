"""Runtime settings: defaults, then ``ATOLL_*`` environment variables, then CLI flags.

Everything lives under one data directory (``ATOLL_HOME``, default ``./.atoll``).
Examples: ``ATOLL_HTTP_PORT=9000``, ``ATOLL_MQTT_MODE=external``,
``ATOLL_MQTT_URL=mqtt://admin:pw@127.0.0.1:1883``, ``ATOLL_STORE_URL=postgresql://...``,
``ATOLL_BUS_URL=nats://127.0.0.1:4222``, ``ATOLL_REGISTRY_URL=postgresql://...`` (docs/SCALING.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from atoll.ingest.quota import QuotaPolicy, Quotas, Rate
from atoll.ingest.validate import Limits


class QuotaOverride(BaseModel):
    """One tenant's rate limits; a field left out keeps the platform default."""

    device_rate: float | None = Field(None, ge=0)
    device_burst: float | None = Field(None, ge=0)
    tenant_rate: float | None = Field(None, ge=0)
    tenant_burst: float | None = Field(None, ge=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATOLL_", extra="ignore")

    home: Path = Field(default=Path(".atoll"), description="data directory")

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    #: Reverse proxies whose ``X-Forwarded-For``/``-Proto`` the HTTP API believes: addresses or
    #: networks (``10.0.0.0/8``), comma-separated in ``ATOLL_TRUSTED_PROXIES``. Empty (the default)
    #: = none: the client address is the socket's peer, so a forged header cannot dodge the
    #: per-address login limit. Behind a proxy on the same host, name it (``127.0.0.1``).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    #: embedded = in-process broker (default); external = attach to a broker at ``mqtt_url``;
    #: off = no MQTT (HTTP ingest only).
    mqtt_mode: Literal["embedded", "external", "off"] = "embedded"
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    #: Embedded mode, extra listeners on ``mqtt_host`` (None = off, 0 = any free port): MQTT over
    #: TLS (usually 8883), over WebSockets, and over WebSockets with TLS. The TLS ones need
    #: ``tls_cert`` (PEM certificate chain) and ``tls_key`` (its unencrypted PEM private key).
    mqtt_tls_port: int | None = None
    mqtt_ws_port: int | None = None
    mqtt_wss_port: int | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Embedded broker, every listener (``atoll.ingest.admission``): a connection must have sent
    #: its CONNECT (at most ``mqtt_max_connect_bytes``) within ``mqtt_connect_timeout_s`` of
    #: being accepted, TLS/WebSocket handshakes included. Connections over a cap are closed as
    #: soon as they are accepted. ``None`` caps are derived from the open-file limit
    #: (``mqtt_max_connections``: the limit less max(256, a quarter), at most 50,000;
    #: ``mqtt_max_unauthenticated``: a quarter of that, 16 to 1,024;
    #: ``mqtt_max_unauthenticated_per_address``: a quarter of that, at least 4), so the HTTP API,
    #: store and registry always keep file descriptors, and idle sockets from one address cannot
    #: keep devices elsewhere from connecting.
    mqtt_connect_timeout_s: float = Field(default=10.0, gt=0)
    mqtt_max_connect_bytes: int = Field(default=64 * 1024, ge=64)
    mqtt_max_connections: int | None = Field(default=None, ge=1)
    mqtt_max_connections_per_address: int = Field(default=1000, ge=1)
    mqtt_max_unauthenticated: int | None = Field(default=None, ge=1)
    mqtt_max_unauthenticated_per_address: int | None = Field(default=None, ge=1)
    #: External broker, e.g. ``mqtt://user:password@127.0.0.1:1883`` or ``mqtts://...:8883``.
    mqtt_url: str | None = None
    #: External broker over TLS: the PEM CA certificate that signed the broker's certificate;
    #: empty = the system's CAs.
    mqtt_ca_file: Path | None = None
    #: External mode: ingest workers sharing ``$share/atoll/...``. 0 = this process takes no
    #: device traffic and deletes the broker sessions of its former workers (after draining them).
    mqtt_workers: int = Field(default=2, ge=0)
    #: External mode: this process's name towards the broker. Its workers' client ids are
    #: ``atoll-ingest-{node}-{i}``, so it must be unique per process and stable across restarts.
    #: Empty = a random id made on the first start and kept in ``home``.
    mqtt_node_id: str | None = None
    #: External mode: how long the broker keeps a worker's session (and queues its share of the
    #: messages) while the worker is away.
    mqtt_session_expiry_s: int = 7 * 24 * 3600
    #: External mode: mosquitto password/ACL files Atoll writes, and how to make mosquitto reload
    #: them (a pid file; Atoll sends SIGHUP). Empty = Atoll does not manage broker auth.
    mosquitto_password_file: Path | None = None
    mosquitto_acl_file: Path | None = None
    mosquitto_pid_file: Path | None = None

    #: ``memory://`` | ``duckdb:///path`` | ``postgresql://...``; empty = DuckDB in ``home``.
    store_url: str | None = None
    bus_url: str = "memory://"
    #: Registry (and rules) database, any SQLAlchemy URL, e.g. ``postgresql://user@host/atoll``;
    #: empty = SQLite in ``home``. Several Atoll processes need a shared one.
    registry_url: str | None = None
    #: Which of ``atoll.platform.SERVICE_MODULES`` to run (detectors, rules…); None = all found.
    services: list[str] | None = None
    #: Detection service (docs/DETECTION.md, "In the platform"): seconds between scheduled refits
    #: of each fitted series on its stored history (0 = never), how far back a fit reads, and at
    #: most how many readings.
    #: The RUL service (docs/PREDICTIVE_MAINTENANCE.md): how often (s) it scores the devices that
    #: sent telemetry, and re-reads the active RUL models from the registry.
    rul_interval_s: float = Field(default=10.0, gt=0)
    rul_refresh_s: float = Field(default=30.0, gt=0)
    #: How often the RUL service looks for retrainings due (atoll.rul.retrain).
    rul_retrain_check_s: float = Field(default=60.0, gt=0)
    detect_refit_interval_s: float = Field(default=86_400.0, ge=0)
    detect_history_s: float = Field(default=7 * 86_400.0, gt=0)
    detect_max_history: int = Field(default=200_000, ge=256)
    #: With a NATS bus, detection is partitioned by device (docs/SCALING.md): a process holds a
    #: partition through a lease it renews; one not renewed for this many seconds is taken over.
    detect_lease_s: float = Field(default=6.0, gt=0)
    #: ...how late (s) a device's reading may arrive and still be judged in time order, and how
    #: often (s) each partition's state and stream position are checkpointed.
    detect_lateness_s: float = Field(default=2.0, ge=0)
    detect_checkpoint_s: float = Field(default=10.0, gt=0)
    #: With a NATS bus, rules are partitioned like detection (docs/RULES.md, "In a cluster"): the
    #: lease of a rules partition and of the singletons' leader (scheduled reports, retention,
    #: command expiry), and how often (s) a rules partition's state is checkpointed.
    rules_lease_s: float = Field(default=6.0, gt=0)
    rules_checkpoint_s: float = Field(default=10.0, gt=0)
    #: Load the forecasting library in the background once the API is up, so the first forecast
    #: does not wait for it (seconds of CPU; the test suite turns it off).
    forecast_preload: bool = True

    max_payload_bytes: int = 256 * 1024
    max_points_per_message: int = 10_000
    max_future_skew_s: float = 300.0
    out_of_range: Literal["flag", "reject"] = "flag"

    #: The writer group-commits at most this many points per store append.
    max_commit_points: int = 500_000
    #: Points that may wait for the writer before submitters are slowed down (back-pressure).
    max_queued_points: int = 2_000_000

    #: Rate limits in points per second, and the burst taken at once, for each device and for
    #: each tenant as a whole; a rate of 0 = unlimited (docs/DEVICES.md, "Rate limits").
    quota_device_rate: float = Field(default=1_000, ge=0)
    quota_device_burst: float = Field(default=10_000, ge=0)
    quota_tenant_rate: float = Field(default=10_000, ge=0)
    quota_tenant_burst: float = Field(default=20_000, ge=0)
    #: Per tenant id, e.g. ``ATOLL_QUOTA_TENANTS='{"acme": {"tenant_rate": 50000}}'``.
    quota_tenants: dict[str, QuotaOverride] = Field(default_factory=dict)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        if isinstance(v, str):
            return [part.strip() for part in v.split(",") if part.strip()]
        return v

    @field_validator("home")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @property
    def limits(self) -> Limits:
        return Limits(
            max_bytes=self.max_payload_bytes,
            max_points=self.max_points_per_message,
            max_future_skew_s=self.max_future_skew_s,
            out_of_range=self.out_of_range,
        )

    @property
    def quotas(self) -> Quotas:
        default = QuotaPolicy(
            device=Rate(self.quota_device_rate, self.quota_device_burst),
            tenant=Rate(self.quota_tenant_rate, self.quota_tenant_burst),
        )

        def policy(o: QuotaOverride) -> QuotaPolicy:
            def pick(value: float | None, fallback: float) -> float:
                return fallback if value is None else value

            return QuotaPolicy(
                device=Rate(
                    pick(o.device_rate, default.device.per_s),
                    pick(o.device_burst, default.device.burst),
                ),
                tenant=Rate(
                    pick(o.tenant_rate, default.tenant.per_s),
                    pick(o.tenant_burst, default.tenant.burst),
                ),
            )

        return Quotas(default, {t: policy(o) for t, o in self.quota_tenants.items()})

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"duckdb:///{(self.home / 'series.duckdb').resolve()}"

    @property
    def http_url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"

    @property
    def mqtt_public_url(self) -> str:
        if self.mqtt_mode == "external" and self.mqtt_url:
            from urllib.parse import urlsplit

            u = urlsplit(self.mqtt_url)
            return f"mqtt://{u.hostname}:{u.port or 1883}"
        return f"mqtt://{self.mqtt_host}:{self.mqtt_port}"
