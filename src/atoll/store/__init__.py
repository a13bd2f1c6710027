"""Time-series storage: the SeriesStore port and its adapters.

>>> store = open_store("memory://")
>>> isinstance(store, SeriesStore)
True
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from atoll.core.errors import InvalidInput
from atoll.store.port import (
    AGGREGATES,
    ONE_WRITER,
    Buckets,
    ProjectUsage,
    Series,
    SeriesStore,
    StampSlot,
    UsageReader,
)

__all__ = [
    "AGGREGATES",
    "ONE_WRITER",
    "Buckets",
    "ProjectUsage",
    "Series",
    "SeriesStore",
    "StampSlot",
    "UsageReader",
    "open_store",
]

_FORMS = "memory://, duckdb:///abs/path.duckdb, duckdb://relative/path.duckdb or postgresql://..."


def open_store(url: str) -> SeriesStore:
    """Open the store a URL names.

    * ``memory://``: in-process, not durable.
    * ``duckdb:///var/lib/atoll/series.duckdb`` (absolute) or ``duckdb://data/series.duckdb``
      (relative); options after ``?`` are DuckDB settings, e.g. ``?memory_limit=1GB&threads=2``.
      ``duckdb://:memory:`` is DuckDB without a file.
    * ``postgresql://user@host:port/db``: PostgreSQL (psycopg 3); ``?schema=`` picks the schema
      (default ``atoll_series``), other options go to libpq.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InvalidInput(f"not a store URL: {url!r}", hint=f"use {_FORMS}")
    if scheme == "memory":
        from atoll.store.memory import MemoryStore

        return MemoryStore()
    if scheme == "duckdb":
        from atoll.store.duckdb import DuckDBStore

        path, _, query = rest.partition("?")
        if not path:
            raise InvalidInput(f"store URL {url!r} has no file path", hint=f"use {_FORMS}")
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return DuckDBStore(path, config=dict(parse_qsl(query)))
    if scheme in ("postgresql", "postgres"):
        from atoll.store.postgres import PostgresStore

        base, _, query = url.partition("?")
        options = dict(parse_qsl(query))
        schema = options.pop("schema", "atoll_series")
        rest = "&".join(f"{k}={v}" for k, v in options.items())
        return PostgresStore(f"{base}?{rest}" if rest else base, schema=schema)
    raise InvalidInput(f"unknown store scheme {scheme!r} in {url!r}", hint=f"use {_FORMS}")
