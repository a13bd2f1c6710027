"""Tables of the rules service (SQLAlchemy Core). All prefixed ``rules_`` so they can live in
the registry's database next to its own tables."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from atoll.registry.engine import one_at_a_time

metadata = sa.MetaData()

rules = sa.Table(
    "rules_rules",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("project", sa.String(128), nullable=False, index=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

channels = sa.Table(
    "rules_channels",
    metadata,
    sa.Column("project", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
)

alarms = sa.Table(
    "rules_alarms",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(128), nullable=False),
    sa.Column("rule_id", sa.String(128), nullable=False),
    sa.Column("rule_name", sa.String(200), nullable=False),
    sa.Column("device", sa.String(128), nullable=False),
    sa.Column("metric", sa.String(200), nullable=True),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # active | acknowledged | cleared
    sa.Column("acknowledged", sa.Boolean, nullable=False, default=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("detail", sa.Text, nullable=False, default=""),
    sa.Column("context", sa.JSON, nullable=True),  # added later: ALTER TABLE on old databases
    sa.Column("raised_at", sa.BigInteger, nullable=False),
    sa.Column("acknowledged_at", sa.BigInteger, nullable=True),
    sa.Column("acknowledged_by", sa.String(128), nullable=True),
    sa.Column("cleared_at", sa.BigInteger, nullable=True),
    sa.Column("cleared_by", sa.String(128), nullable=True),
    sa.Column("escalation_level", sa.Integer, nullable=False, default=0),
    sa.Column("last_notified_at", sa.BigInteger, nullable=True),
    sa.Column("notifications", sa.Integer, nullable=False, default=0),
    # The stream position of the message that raised it (partitioned rules; added later): a
    # message delivered again after a crash cannot raise or clear out of turn.
    sa.Column("raised_seq", sa.BigInteger, nullable=True),
    # Added later (ALTER TABLE on old databases): the operator's verdict on the alarm
    # (real | false | unsure, what detection precision is computed from) and who owns it.
    sa.Column("feedback", sa.String(16), nullable=True),
    sa.Column("feedback_by", sa.String(128), nullable=True),
    sa.Column("feedback_at", sa.BigInteger, nullable=True),
    sa.Column("assignee", sa.String(128), nullable=True),
    sa.Column("assigned_at", sa.BigInteger, nullable=True),
    sa.Index("rules_alarms_project_status", "project", "status"),
    # The database itself guarantees one open alarm per (rule, device).
    sa.Index(
        "rules_alarms_one_open",
        "rule_id",
        "device",
        unique=True,
        sqlite_where=sa.text("status != 'cleared'"),
        postgresql_where=sa.text("status != 'cleared'"),
    ),
)

alarm_events = sa.Table(
    "rules_alarm_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "alarm_id",
        sa.Integer,
        sa.ForeignKey("rules_alarms.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("severity", sa.String(16), nullable=True),
    sa.Column("detail", sa.Text, nullable=False, default=""),
)

comments = sa.Table(
    "rules_alarm_comments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "alarm_id",
        sa.Integer,
        sa.ForeignKey("rules_alarms.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("author", sa.String(128), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

deliveries = sa.Table(
    "rules_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.BigInteger, nullable=False),
    sa.Column("project", sa.String(128), nullable=False, index=True),
    sa.Column("channel", sa.String(128), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("alarm_id", sa.Integer, nullable=True, index=True),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    # pending | ok | failed; a pending row outlives a crash and is sent again on the next start.
    sa.Column("status", sa.String(16), nullable=True, index=True),
    sa.Column("payload", sa.JSON, nullable=True),
    # The rules process sending it (partitioned rules; added later): a pending row of a process
    # that is gone (its member lease lapsed) is taken over by one live process and sent.
    sa.Column("owner", sa.String(200), nullable=True),
)

reports = sa.Table(
    "rules_reports",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("project", sa.String(128), nullable=False, index=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("last_run", sa.BigInteger, nullable=True),
)

# Forecasts evaluated for ``forecast`` conditions (``atoll.rules.forecasting``): each one made,
# with the model that made it, or why none was (``status`` crosses | clear | skipped).
forecasts = sa.Table(
    "rules_forecasts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project", sa.String(128), nullable=False),
    sa.Column("rule_id", sa.String(128), nullable=False),
    sa.Column("device", sa.String(128), nullable=False),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("evaluated_at", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("horizon_us", sa.BigInteger, nullable=False),
    sa.Column("level", sa.Float, nullable=False),
    sa.Column("crossing_ts", sa.BigInteger, nullable=True),
    sa.Column("earliest", sa.BigInteger, nullable=True),
    sa.Column("latest", sa.BigInteger, nullable=True),
    sa.Column("last_value", sa.Float, nullable=True),
    sa.Column("step_us", sa.BigInteger, nullable=True),
    sa.Column("history_from", sa.BigInteger, nullable=True),
    sa.Column("history_to", sa.BigInteger, nullable=True),
    sa.Column("rows", sa.Integer, nullable=True),
    # The model: the forecaster as it named itself (``auto:autoets``) and its registry record.
    sa.Column("model", sa.String(200), nullable=True),
    sa.Column("model_id", sa.String(300), nullable=True),
    sa.Column("model_version", sa.Integer, nullable=True),
    sa.Column("seconds", sa.Float, nullable=True),
    # The path: {"ts": [...], "mean": [...], "lo": [...], "hi": [...]} (µs, the series' units).
    sa.Column("path", sa.JSON, nullable=True),
    sa.Index("rules_forecasts_rule_device", "rule_id", "device", "evaluated_at"),
)

# Leases (``atoll.rules.lease``): which process runs the timer pass, until when (µs).
leases = sa.Table(
    "rules_leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
)


def connect(url_or_engine: str | sa.Engine | None = None) -> sa.Engine:
    """An engine with the rules tables created. ``None`` means a private in-memory SQLite."""
    if isinstance(url_or_engine, sa.Engine):
        engine = url_or_engine
    else:
        url = url_or_engine or "sqlite://"
        if url in ("sqlite://", "sqlite:///:memory:"):
            # One connection shared by every thread, or each would see its own empty DB.
            engine = sa.create_engine(
                url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            for prefix in ("postgresql://", "postgres://"):
                if url.startswith(prefix):  # psycopg 3 is the driver Atoll ships, not psycopg2
                    url = "postgresql+psycopg://" + url[len(prefix) :]
            engine = sa.create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _fk_on(dbapi_conn, _):
            dbapi_conn.execute("PRAGMA foreign_keys=ON")

    with engine.begin() as conn:
        one_at_a_time(conn)  # nodes starting at once on a fresh database: one creates
        metadata.create_all(conn)
        _add_missing_columns(conn)
    return engine


def _add_missing_columns(conn: sa.Connection) -> None:
    """Columns added after a database was created (nullable ones only): ALTER TABLE ADD."""
    inspector = sa.inspect(conn)
    for table in metadata.sorted_tables:
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for col in table.columns:
            if col.name not in have and col.nullable:
                kind = col.type.compile(dialect=conn.dialect)
                conn.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {kind}'))
