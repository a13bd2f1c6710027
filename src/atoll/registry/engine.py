"""Open the registry database: SQLite file (WAL) by default, any SQLAlchemy URL otherwise."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, select, text, update

from atoll.registry.tables import metadata, users


def sqlite_url(data_dir: str | Path) -> str:
    path = Path(data_dir) / "registry.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def normalise_url(url: str) -> str:
    """Plain ``postgresql://`` URLs use psycopg 3 (the driver Atoll ships), not psycopg2.

    >>> normalise_url("postgres://u@h/db")
    'postgresql+psycopg://u@h/db'
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            # WAL lets readers (API) run while the ingest path records rejections or acks.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    else:
        engine = create_engine(url, pool_pre_ping=True)
    with engine.begin() as conn:
        one_at_a_time(conn)
        metadata.create_all(conn)
        _add_platform_admin_to_users(conn)
        _add_detectors_to_device_types(conn)
        _add_source_to_audit_log(conn)
        _add_max_points_to_tenant_quotas(conn)
        _add_gateways_to_devices(conn)
    return engine


#: PostgreSQL advisory lock (one bigint key) that schema changes and the first start take.
_SETUP_LOCK = 0x61746F6C6C_7265  # "atoll" "re"(gistry)


def one_at_a_time(conn: Connection) -> None:
    """Serialise set-up on a shared database until ``conn``'s transaction ends: nodes started
    at once on a fresh PostgreSQL database would otherwise create the same tables (failing on
    the catalog's unique index) and bootstrap twice. SQLite serialises writers itself."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SETUP_LOCK})


def _add_detectors_to_device_types(conn: Connection) -> None:
    """Databases made before device types kept their detector bindings get the column (NULL:
    none bound, as before)."""
    if "detectors" not in {c["name"] for c in inspect(conn).get_columns("device_types")}:
        conn.execute(text("ALTER TABLE device_types ADD COLUMN detectors JSON"))


def _add_max_points_to_tenant_quotas(conn: Connection) -> None:
    """Databases made before the storage quota get its column (NULL: no limit)."""
    if "max_points" not in {c["name"] for c in inspect(conn).get_columns("tenant_quotas")}:
        conn.execute(text("ALTER TABLE tenant_quotas ADD COLUMN max_points BIGINT"))


def _add_gateways_to_devices(conn: Connection) -> None:
    """Databases made before gateways get ``devices.kind`` (every device a plain one) and
    ``devices.parent`` (none has a gateway), with the index ``create_all`` makes."""
    columns = {c["name"] for c in inspect(conn).get_columns("devices")}
    if "kind" not in columns:
        conn.execute(
            text("ALTER TABLE devices ADD COLUMN kind VARCHAR(16) NOT NULL DEFAULT 'device'")
        )
    if "parent" not in columns:
        conn.execute(text("ALTER TABLE devices ADD COLUMN parent VARCHAR(64)"))
        conn.execute(text("CREATE INDEX IF NOT EXISTS ix_devices_parent ON devices (parent)"))


def _add_source_to_audit_log(conn: Connection) -> None:
    """Databases made before the audit log kept the client address get the column (NULL:
    not known for the entries before)."""
    if "source" not in {c["name"] for c in inspect(conn).get_columns("audit_log")}:
        conn.execute(text("ALTER TABLE audit_log ADD COLUMN source VARCHAR(100)"))


def _add_platform_admin_to_users(conn: Connection) -> None:
    """Databases made before users had ``platform_admin`` get the column.

    Their bootstrap user is the oldest admin of the default tenant: it becomes the platform admin,
    as it would have been on a fresh start.
    """
    if "platform_admin" in {c["name"] for c in inspect(conn).get_columns("users")}:
        return
    conn.execute(text("ALTER TABLE users ADD COLUMN platform_admin BOOLEAN NOT NULL DEFAULT FALSE"))
    first = conn.execute(
        select(users.c.username)
        .where(users.c.tenant == "default", users.c.role == "admin")
        .order_by(users.c.created_at)
        .limit(1)
    ).scalar()
    if first is not None:
        conn.execute(update(users).where(users.c.username == first).values(platform_admin=True))
