"""SQL schema of the registry. Portable SQLAlchemy Core types only, so SQLite and PostgreSQL share
it.

Timestamps are integer µs since the epoch, like everywhere else in Atoll.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

ID = 64

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column(
        "tenant",
        String(ID),
        ForeignKey("tenants.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(200), nullable=False),
    Column("retention_days", Integer, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

device_types = Table(
    "device_types",
    metadata,
    Column("project", String(ID), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(ID), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # DetectorBinding.to_dict() per binding; NULL on databases made before bindings were kept.
    Column("detectors", JSON, nullable=True),
)

devices = Table(
    "devices",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column(
        "project",
        String(ID),
        ForeignKey("projects.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(200), nullable=False),
    Column("device_type", String(ID), nullable=True),
    Column("labels", JSON, nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    # SHA-256 hex of the secret; NULL once revoked.
    Column("secret_hash", String(64), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=True),
    # (Added later: ALTER TABLE on older databases.) "device" or "gateway"; a child device names
    # its gateway (a device of the same project) in ``parent``.
    Column("kind", String(16), nullable=False, server_default="device"),
    Column("parent", String(ID), nullable=True, index=True),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column(
        "tenant",
        String(ID),
        ForeignKey("tenants.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("platform_admin", Boolean, nullable=False, default=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("revoked", Boolean, nullable=False, default=False),
)

users = Table(
    "users",
    metadata,
    Column("username", String(200), primary_key=True),
    Column("tenant", String(ID), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    # Added after release: engine.open_engine adds it to older databases.
    Column("platform_admin", Boolean, nullable=False, default=False),
)

twins = Table(
    "twins",
    metadata,
    Column("device", String(ID), ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("desired", JSON, nullable=False),
    Column("desired_version", Integer, nullable=False),
    Column("desired_updated_at", BigInteger, nullable=True),
    Column("reported", JSON, nullable=False),
    Column("reported_version", Integer, nullable=False),
    Column("reported_updated_at", BigInteger, nullable=True),
)

commands = Table(
    "commands",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("device", String(ID), ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("args", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("result", JSON, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_commands_device_created", "device", "created_at"),
)

maintenance = Table(
    "maintenance",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("device", String(ID), ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("part", String(200), nullable=True),
    Column("cost", Float, nullable=True),
    Column("note", Text, nullable=False),
    Column("recorded_by", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_maintenance_device_at", "device", "at"),
)

# The model registry (atoll.registry.ml_models): one row per version of a fitted model.
# ``active_slot`` is "<project>|<kind>|<scope>" while the row is active, NULL otherwise: the
# unique constraint keeps at most one active version per kind and scope, on every database
# and whichever API node writes (NULLs never clash).
models = Table(
    "models",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant", String(ID), nullable=False),
    Column("project", String(ID), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("scope", String(300), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("active_slot", String(400), nullable=True),
    # A detector's model ref (``project/device/metric@version``), what its anomalies carry.
    Column("ref", String(500), nullable=True),
    Column("algorithm", String(200), nullable=False),
    Column("data_from", BigInteger, nullable=True),
    Column("data_to", BigInteger, nullable=True),
    Column("rows", BigInteger, nullable=True),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("code_version", String(64), nullable=False),
    Column("card", JSON, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("approved_by", String(200), nullable=True),
    Column("approved_at", BigInteger, nullable=True),
    Column("activated_at", BigInteger, nullable=True),
    Column("retired_at", BigInteger, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("project", "kind", "scope", "version", name="uq_model_version"),
    UniqueConstraint("active_slot", name="uq_model_active"),
    Index("ix_models_ref", "ref"),
    Index("ix_models_tenant_project", "tenant", "project"),
)

# RUL fit jobs (atoll.registry.rul_fits): a fit runs off the request on one node's RUL service;
# its state is here so that any node answers the poll.
rul_fits = Table(
    "rul_fits",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant", String(ID), nullable=False),
    Column("project", String(ID), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("device_type", String(ID), nullable=False),
    Column("state", String(16), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("params", JSON, nullable=False),
    Column("progress", String(200), nullable=True),
    Column("requested_by", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("started_at", BigInteger, nullable=True),
    Column("finished_at", BigInteger, nullable=True),
    Column("model", String(ID), nullable=True),
    Column("error", JSON, nullable=True),
    # What a retraining did with the version it filed (activated or not, and why).
    Column("outcome", JSON, nullable=True),
    Index("ix_rul_fits_project_created", "project", "created_at"),
)

# How a device type's RUL model is fitted, and when it is retrained (atoll.registry.rul_configs):
# ``retrain_every`` µs (NULL: no schedule), ``on_failure`` (a new failure record of the type),
# ``auto_activate`` (a retrained version not worse than the active one goes live). ``last_fit``
# and ``failures_seen`` (the newest failure record's created_at a fit knew of) are what the
# retraining compares with; a node claims a retraining by moving them (compare and set).
rul_configs = Table(
    "rul_configs",
    metadata,
    Column("project", String(ID), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("device_type", String(ID), primary_key=True),
    Column("tenant", String(ID), nullable=False),
    Column("cycle", BigInteger, nullable=False),
    Column("cap", Float, nullable=False),
    Column("retrain_every", BigInteger, nullable=True),
    Column("on_failure", Boolean, nullable=False, default=False),
    Column("auto_activate", Boolean, nullable=False, default=False),
    Column("last_fit", BigInteger, nullable=True),
    Column("failures_seen", BigInteger, nullable=True),
    Column("updated_by", String(200), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# The files of a fitted model (a gzipped tar of its directory), so that every node can load it
# (atoll.registry.model_files): kept with the model's record, deleted with it.
model_files = Table(
    "model_files",
    metadata,
    Column("model", String(ID), ForeignKey("models.id", ondelete="CASCADE"), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(ID), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("target", String(300), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("at", BigInteger, nullable=False),
    # Added later (ALTER TABLE on old databases): the client address the action came from.
    Column("source", String(100), nullable=True),
    Index("ix_audit_tenant_at", "tenant", "at"),
)

rejections = Table(
    "rejections",
    metadata,
    Column("device", String(ID), nullable=False),
    Column("transport", String(16), nullable=False),
    Column("reason", String(64), nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("last_at", BigInteger, nullable=False),
    Column("last_message", Text, nullable=False),
    UniqueConstraint("device", "transport", "reason", name="uq_rejection"),
)

#: A project's place in the lab's portfolio (``atoll.registry.portfolio``): its stage from idea
#: to production, who owns it, what it is for. One row per project, made on first change.
project_portfolio = Table(
    "project_portfolio",
    metadata,
    Column("project", String(ID), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("stage", String(16), nullable=False),
    Column("owner", String(200), nullable=True),
    Column("goals", Text, nullable=False),
    Column("stage_since", BigInteger, nullable=False),
    Column("updated_by", String(200), nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

#: Metered use per enterprise, project and UTC day (``atoll.registry.usage``): what a lab reports
#: on and bills or caps shared infrastructure by. ``project`` is ``""`` for what belongs to the
#: enterprise as a whole (API calls). Counters only grow; ``storage_points`` is the day's
#: largest snapshot of what the project holds in the store.
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("tenant", String(ID), nullable=False),
    Column("project", String(ID), nullable=False),
    Column("day", String(10), nullable=False),  # YYYY-MM-DD (UTC): sorts as it reads
    Column("messages", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("api_calls", BigInteger, nullable=False),
    Column("storage_points", BigInteger, nullable=True),
    UniqueConstraint("tenant", "project", "day", name="uq_usage_daily"),
    Index("ix_usage_day", "day"),
)

#: The same counters per UTC hour (``YYYY-MM-DDTHH``), for the lab's 24-hour trends; kept
#: ``usage.HOURLY_DAYS`` days (the retention job prunes them).
usage_hourly = Table(
    "usage_hourly",
    metadata,
    Column("tenant", String(ID), nullable=False),
    Column("project", String(ID), nullable=False),
    Column("hour", String(13), nullable=False),
    Column("messages", BigInteger, nullable=False),
    Column("points", BigInteger, nullable=False),
    Column("api_calls", BigInteger, nullable=False),
    UniqueConstraint("tenant", "project", "hour", name="uq_usage_hourly"),
    Index("ix_usage_hour", "hour"),
)

meta = Table(
    "registry_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# One-time invitations to become a console user of a tenant. Only the SHA-256 of the token
# is kept; a used, revoked or expired invite can no longer be accepted.
invites = Table(
    "invites",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("tenant", String(ID), ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("username", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_by", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    Column("revoked", Boolean, nullable=False, default=False),
    Index("ix_invites_tenant", "tenant"),
)

# Limits the platform operator sets per tenant (NULL: no limit). Rate limits of ingest are
# settings (atoll.ingest.quota); these are counts the registry enforces when things are made.
tenant_quotas = Table(
    "tenant_quotas",
    metadata,
    Column("tenant", String(ID), ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("max_devices", Integer, nullable=True),
    Column("max_api_keys", Integer, nullable=True),
    # Ingest rate of the tenant as a whole, points/s (atoll.ingest.quota's tenant bucket).
    Column("ingest_rate", Float, nullable=True),
    # Points the tenant's projects may hold in the store; at it, telemetry is refused.
    # (Added later: ALTER TABLE on older databases.)
    Column("max_points", BigInteger, nullable=True),
)
