"""``SeriesStore`` on a PostgreSQL server (psycopg 3), for deployments that run one.

Same layout as the DuckDB store (catalog, raw points, 1-minute and 1-hour rollups with
min/max and their times, sum, count, first, last), in a schema of its own (default
``atoll_series``). PostgreSQL upserts through a B-tree cheaply, so each append merges its
rollups into the tiers in its own transaction; there is no pending/compaction step. Raw
points go in with binary ``COPY`` built from numpy, not row by row.

``(series, ts)`` is a point's identity (last write wins; a unique index). The ``latest`` table
holds each series' newest timestamp; an append locks its series (advisory locks, one per id
modulo 1,024) and reads it: a batch that is all newer takes the plain path, one that reaches
back deletes the stored versions of its points and rebuilds the tier buckets they were in.

Two writers adding points to one series (two nodes taking one device's messages, late ones
filling gaps included) do not wait for each other: an append takes the series' locks *shared*
unless it replaces stored points. Rollup and ``latest`` upserts combine commutatively (min,
max, sum, count, first, last), so two of them in any order give the same rows. The unique
index keeps them honest: a point another writer stored meanwhile makes the COPY fail, and the
append is done again under *exclusive* locks, as is one that replaces stored points (it
deletes them and rebuilds their buckets, which must not race another writer's combine).
"""

from __future__ import annotations

import logging
import re
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import psycopg
from numpy.typing import DTypeLike
from psycopg import sql as pgsql
from psycopg.abc import Params

from atoll.core.errors import InvalidInput, Unavailable
from atoll.core.points import PointBatch, SeriesKey
from atoll.store import plan, rollup
from atoll.store.port import AGGREGATES, Buckets, ProjectUsage, Series, StampSlot

log = logging.getLogger(__name__)

#: Longest wait between two attempts to reconnect the writer (also each attempt's timeout).
RECONNECT_MAX_S = 5

#: Processes that can write one schema at a time, each stamping its own residue of the
#: microseconds (``StampSlot``): the last two digits of a server-stamped timestamp.
STAMP_SLOTS = 100

_COLS = ", ".join(rollup.COLUMNS)
_ROLLUP_DDL = """(sid INTEGER NOT NULL, b BIGINT NOT NULL, vmin DOUBLE PRECISION, tmin BIGINT,
    vmax DOUBLE PRECISION, tmax BIGINT, vsum DOUBLE PRECISION, n BIGINT, tfirst BIGINT,
    vfirst DOUBLE PRECISION, tlast BIGINT, vlast DOUBLE PRECISION"""

#: Advisory locks an append takes at most (see ``newest_locked``).
_LOCK_SLOTS = 1024

_SCHEMA = [
    # Lock the series (advisory, until commit), then read their newest timestamps in a statement
    # of its own (so a snapshot taken after the locks are granted): one round trip for both.
    # A lock stands for every series with the same id modulo _LOCK_SLOTS: a batch of a large
    # fleet's series would otherwise need one lock each, and PostgreSQL's lock table (64 per
    # connection by default) is full after a few thousand ("out of shared memory"). Taken in
    # ascending order, so two writers never deadlock.
    f"""CREATE OR REPLACE FUNCTION newest_locked(space int, ids int[])
        RETURNS TABLE (sid int, ts bigint) LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock(space, s)
                FROM (SELECT DISTINCT i % {_LOCK_SLOTS} AS s FROM unnest(ids) AS i ORDER BY 1) q;
            RETURN QUERY SELECT l.sid, l.ts FROM latest l WHERE l.sid = ANY(ids);
        END $$""",
    # The same with shared locks: the plain path of writers that only add new points.
    f"""CREATE OR REPLACE FUNCTION newest_locked_shared(space int, ids int[])
        RETURNS TABLE (sid int, ts bigint) LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock_shared(space, s)
                FROM (SELECT DISTINCT i % {_LOCK_SLOTS} AS s FROM unnest(ids) AS i ORDER BY 1) q;
            RETURN QUERY SELECT l.sid, l.ts FROM latest l WHERE l.sid = ANY(ids);
        END $$""",
    """CREATE TABLE IF NOT EXISTS series (id SERIAL PRIMARY KEY, project TEXT NOT NULL,
        device TEXT NOT NULL, metric TEXT NOT NULL, UNIQUE (project, device, metric))""",
    """CREATE TABLE IF NOT EXISTS points (sid INTEGER NOT NULL, ts BIGINT NOT NULL,
        value DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS latest (sid INTEGER PRIMARY KEY, ts BIGINT NOT NULL,
        value DOUBLE PRECISION NOT NULL)""",
] + [
    f"CREATE TABLE IF NOT EXISTS rollup_{t // 1_000_000}s {_ROLLUP_DDL}, PRIMARY KEY (sid, b))"
    for t in plan.TIERS
]

#: The points' index: unique, so a point two writers add at once is stored once (the second
#: COPY fails and that append is done again under exclusive locks). Schemas made before it had
#: a plain index of the same columns, replaced on open.
_POINTS_KEY = "CREATE UNIQUE INDEX IF NOT EXISTS points_key ON points (sid, ts)"
_OLD_POINTS_INDEX = "points_sid_ts"


class _Exclusive(Exception):
    """This append needs the series' locks exclusively: it reaches into stored time, or met a
    point another writer added meanwhile."""


# Binary COPY: a fixed header, then per row a field count and (length, big-endian value) pairs.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_COPY_TRAILER = b"\xff\xff"
_WIRE = {"sid": ">i4", "n": ">i8", "b": ">i8"}  # others: t* -> int8, v* -> float8


#: Newest stored timestamp of a series with nothing stored: every timestamp is newer.
_NOTHING = np.iinfo(np.int64).min


def _ends(starts: np.ndarray, n: int) -> np.ndarray:
    """Last index of each run of a sorted batch, given where the runs start."""
    ends: np.ndarray = np.r_[starts[1:], n] - 1
    return ends


#: Stored points ``p`` at the keys in temp table ``batch_points``. The time span of each series
#: (``_spans``) makes the planner read them through the ``(sid, ts)`` index: joined on the keys
#: alone it prefers a sequential scan of every point.
_AT_KEYS = """unnest(%s::int[], %s::bigint[], %s::bigint[]) AS r(sid, lo, hi)
    JOIN points p ON p.sid = r.sid AND p.ts >= r.lo AND p.ts <= r.hi
    JOIN batch_points o ON o.sid = p.sid AND o.ts = p.ts"""


def _spans(sid: np.ndarray, ts: np.ndarray) -> list[list[int]]:
    """``[ids, first ts, last ts]`` of each series in a ``(sid, ts)``-sorted batch."""
    ids, starts = plan.series_runs(sid)
    return [ids.tolist(), ts[starts].tolist(), ts[_ends(starts, len(ts))].tolist()]


def _table(tier: int) -> str:
    return f"rollup_{tier // 1_000_000}s"


def _floor(col: str, width: int) -> str:
    # mod() truncates toward zero; this floors, so pre-epoch buckets align too. (mod(), not %,
    # which psycopg would read as a placeholder.)
    return f"({col} - mod(mod({col}, {width}) + {width}, {width}))"


def _argmin(x: str, by: str) -> str:
    return f"(array_agg({x} ORDER BY {by}))[1]"


def _argmax(x: str, by: str) -> str:
    return f"(array_agg({x} ORDER BY {by} DESC))[1]"


def _copy_rows(columns: dict[str, np.ndarray]) -> bytes:
    """Binary COPY payload for int32/int64/float64 columns, built without a Python loop."""
    names = list(columns)
    n = len(columns[names[0]])

    def wire(name: str) -> str:
        return _WIRE.get(name) or (">i8" if name.startswith("t") else ">f8")

    dtype = [("nf", ">i2")]
    for i, name in enumerate(names):
        dtype += [(f"len{i}", ">i4"), (name, wire(name))]
    rows = np.empty(n, dtype=dtype)
    rows["nf"] = len(names)
    for i, name in enumerate(names):
        rows[f"len{i}"] = np.dtype(wire(name)).itemsize
        rows[name] = columns[name]
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def _parse_array(data: bytes, wire: str, dtype: DTypeLike) -> np.ndarray:
    """A 1-D, NULL-free array in PostgreSQL's binary format (``array_send``): a 20-byte
    header, then a 4-byte length before every element."""
    items = np.frombuffer(data, np.dtype([("len", ">i4"), ("x", wire)]), offset=20)
    return items["x"].astype(dtype)


def _merge(table: str, source: str) -> str:
    """Upsert rollup rows from ``source``, combining with the row already there."""
    # In key order: two writers combining into the same rows lock them in the same order.
    return f"""INSERT INTO {table} AS o ({_COLS}) SELECT {_COLS} FROM {source} ORDER BY sid, b
        ON CONFLICT (sid, b) DO UPDATE SET
        vmin = LEAST(o.vmin, EXCLUDED.vmin),
        tmin = CASE WHEN EXCLUDED.vmin < o.vmin THEN EXCLUDED.tmin ELSE o.tmin END,
        vmax = GREATEST(o.vmax, EXCLUDED.vmax),
        tmax = CASE WHEN EXCLUDED.vmax > o.vmax THEN EXCLUDED.tmax ELSE o.tmax END,
        vsum = o.vsum + EXCLUDED.vsum,
        n = o.n + EXCLUDED.n,
        tfirst = LEAST(o.tfirst, EXCLUDED.tfirst),
        vfirst = CASE WHEN EXCLUDED.tfirst < o.tfirst THEN EXCLUDED.vfirst ELSE o.vfirst END,
        tlast = GREATEST(o.tlast, EXCLUDED.tlast),
        vlast = CASE WHEN EXCLUDED.tlast >= o.tlast THEN EXCLUDED.vlast ELSE o.vlast END"""


def _rollup_of_points(width: int, where: str, source: str = "points") -> str:
    return f"""SELECT sid, {_floor("ts", width)}, min(value), {_argmin("ts", "value, ts")},
        max(value), {_argmax("ts", "value")}, sum(value), count(*), min(ts),
        {_argmin("value", "ts")}, max(ts), {_argmax("value", "ts")}
        FROM {source} WHERE {where} GROUP BY 1, 2"""


def _rollup_of_rollups(source: str, width: int, where: str) -> str:
    return f"""SELECT sid, {_floor("b", width)}, min(vmin), {_argmin("tmin", "vmin")},
        max(vmax), {_argmax("tmax", "vmax")}, sum(vsum), sum(n)::BIGINT, min(tfirst),
        {_argmin("vfirst", "tfirst")}, max(tlast), {_argmax("vlast", "tlast")}
        FROM {source} WHERE {where} GROUP BY 1, 2"""


def _edges(select: str) -> str:
    """``select`` over raw points at both edges: ``[start, a)`` and ``[z, end)``, as two index
    ranges (one range with an OR filter would scan the whole middle)."""
    return (
        f"{select} FROM points WHERE sid = %(sid)s AND ts >= %(start)s AND ts < %(a)s"
        f" UNION ALL {select} FROM points WHERE sid = %(sid)s AND ts >= %(z)s AND ts < %(end)s"
    )


def _range_rows(tier: int | None) -> str:
    raw = _edges(
        """SELECT ts AS b, value AS vmin, ts AS tmin, value AS vmax, ts AS tmax,
        value AS vsum, 1::BIGINT AS n, ts AS tfirst, value AS vfirst, ts AS tlast, value AS vlast"""
    )
    if tier is None:
        return raw
    return f"""SELECT b, vmin, tmin, vmax, tmax, vsum, n, tfirst, vfirst, tlast, vlast
        FROM {_table(tier)} WHERE sid = %(sid)s AND b >= %(a)s AND b < %(z)s UNION ALL {raw}"""


def _chart_candidates(tier: int | None) -> str:
    raw = _edges("SELECT ts, value AS v")
    if tier is None:
        return raw
    inner = f"FROM {_table(tier)} WHERE sid = %(sid)s AND b >= %(a)s AND b < %(z)s"
    return (
        f"SELECT tmin AS ts, vmin AS v {inner} UNION ALL SELECT tmax, vmax {inner} UNION ALL {raw}"
    )


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except psycopg.OperationalError as e:  # the server went away, or cannot be reached
        raise Unavailable(
            f"PostgreSQL store: {what} failed: {e}".strip(),
            hint="retry later: the store reconnects by itself once PostgreSQL is back",
        ) from e
    except psycopg.Error as e:
        raise Unavailable(f"PostgreSQL store: {what} failed: {e}".strip()) from e


class PostgresStore:
    """A ``SeriesStore`` in schema ``schema`` of the database at ``url``.

    Appends and retention share one connection under a lock; each querying thread gets its
    own autocommit connection, so queries run concurrently and see committed data only.
    """

    def __init__(self, url: str, schema: str = "atoll_series"):
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise InvalidInput(f"bad PostgreSQL schema name {schema!r}", hint="use [a-z0-9_]")
        self.url, self.schema = url, schema
        self._lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[psycopg.Connection] = []
        self._closed = False
        # Reconnecting the writer after it broke (an outage, a server restart): not before
        # ``_retry_at`` (monotonic s); the wait doubles after each failed attempt.
        self._retry_at, self._backoff, self._down_since = 0.0, 0.0, 0.0
        try:
            # Autocommit, so only explicit transaction() blocks group statements: nothing can
            # sit in an implicit transaction that is never committed.
            self._writer = psycopg.connect(url, autocommit=True)
        except psycopg.Error as e:
            raise Unavailable(
                f"cannot connect to PostgreSQL at {url}: {e}",
                hint="check that the server runs and the URL (user, host, port, database) is right",
            ) from e
        with _translated("opening"), self._writer.transaction():
            # One process at a time creates the schema: concurrent CREATE ... IF NOT EXISTS of
            # one name fail on the catalog's unique index (two nodes starting on a fresh
            # database). The lock is the transaction's; the next process then finds it all.
            self._writer.execute(
                "SELECT pg_advisory_xact_lock(%s::int, 0)",
                [zlib.crc32(f"{schema}:ddl".encode()) - 2**31],
            )
            self._writer.execute(
                pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(schema))
            )
            self._writer.execute(
                pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(schema))
            )
            for ddl in _SCHEMA:
                self._writer.execute(ddl)
            #: Whether the points' key is unique: then plain appends share their locks.
            self._unique = self._unique_points_key()
            rows = self._writer.execute("SELECT project, device, metric, id FROM series").fetchall()
        with _translated("opening"):
            self._prepare_writer(self._writer)
        self._sids = {SeriesKey(p, d, m): i for p, d, m, i in rows}
        # Advisory locks of this schema's series: (schema hash, series id).
        self._lock_space = zlib.crc32(schema.encode()) - 2**31
        # Session advisory locks (space, n) of the stamp slots: held by the writer connection
        # while it lives, so a crashed process's slot is free again when its session ends.
        self._slot_space = zlib.crc32(f"{schema}:stamp-slot".encode()) - 2**31
        self._slot: StampSlot | None = None
        #: Appends done again under exclusive locks (they met another writer's point).
        self.exclusive_appends = 0

    def _unique_points_key(self) -> bool:
        """Make the points' index unique (``points_key``), replacing the plain one of older
        schemas; ``False`` if stored duplicates prevent it (then every append locks its series
        exclusively, as before)."""
        w = self._writer
        try:
            with w.transaction():  # a savepoint: a failure leaves the schema's transaction
                w.execute(_POINTS_KEY)
        except psycopg.errors.UniqueViolation as e:
            log.warning(
                "PostgreSQL store %s: points are stored twice, so their index cannot be unique "
                "(%s); writers of one series wait for each other",
                self.schema,
                e,
            )
            w.execute(f"CREATE INDEX IF NOT EXISTS {_OLD_POINTS_INDEX} ON points (sid, ts)")
            return False
        w.execute(f"DROP INDEX IF EXISTS {_OLD_POINTS_INDEX}")
        return True

    def _prepare_writer(self, conn: psycopg.Connection) -> None:
        """The writer session's search path and its temp tables (they live per session)."""
        conn.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(self.schema)))
        for tier in plan.TIERS:
            conn.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS batch_{_table(tier)} {_ROLLUP_DDL})"
                " ON COMMIT DELETE ROWS"
            )
        # Keys of a batch's points that may replace stored ones, and the buckets to rebuild.
        for ddl in (
            "batch_points (sid INTEGER NOT NULL, ts BIGINT NOT NULL)",
            "batch_buckets (sid INTEGER NOT NULL, b BIGINT NOT NULL)",
        ):
            conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {ddl} ON COMMIT DELETE ROWS")

    def _live_writer(self) -> psycopg.Connection:
        """The writer connection, reconnected if it broke; call with ``_lock`` held.

        While PostgreSQL is unreachable every write fails at once with ``Unavailable`` (ingest
        answers 503 or leaves the message unacknowledged), and a new connection is tried at
        most every ``RECONNECT_MAX_S`` s (0.25 s at first, doubling), so the store comes back
        by itself with the server, no restart needed.
        """
        w = self._writer
        if not w.closed:
            return w
        if self._closed:
            raise Unavailable("the PostgreSQL store is closed")
        now = time.monotonic()
        if not self._down_since:
            self._down_since = now
            log.warning("PostgreSQL store %s: connection lost; reconnecting", self.schema)
        if now < self._retry_at:
            raise self._down(f"next attempt in {self._retry_at - now:.1f} s")
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=RECONNECT_MAX_S)
            try:
                self._prepare_writer(conn)
                if self._slot is not None:  # the old session's slot went with it
                    slot = self._claim_slot(prefer=self._slot.slot, conn=conn)
                    if slot != self._slot:
                        log.warning(
                            "PostgreSQL store %s: stamp slot %d was taken while disconnected; "
                            "now %d",
                            self.schema,
                            self._slot.slot,
                            slot.slot,
                        )
                    self._slot = slot
            except BaseException:
                conn.close()
                raise
        except (psycopg.Error, Unavailable) as e:
            self._backoff = min(max(2 * self._backoff, 0.25), RECONNECT_MAX_S)
            self._retry_at = now + self._backoff
            raise self._down(str(e).strip() or type(e).__name__) from e
        log.warning(
            "PostgreSQL store %s: reconnected after %.1f s",
            self.schema,
            time.monotonic() - self._down_since,
        )
        self._writer, self._backoff, self._retry_at, self._down_since = conn, 0.0, 0.0, 0.0
        return conn

    def _down(self, detail: str) -> Unavailable:
        return Unavailable(
            f"PostgreSQL store: the database has been unreachable for "
            f"{time.monotonic() - self._down_since:.0f} s ({detail})",
            hint="nothing of this was stored; retry later: the store reconnects by itself",
        )

    # ------------------------------------------------------------------------ stamp slots

    def stamp_slot(self) -> StampSlot:
        """One of ``STAMP_SLOTS`` slots, claimed on first use and held by the writer session."""
        slot = self._slot
        if slot is None:
            with self._lock, _translated("claiming a stamp slot"):
                if self._slot is None:
                    self._slot = self._claim_slot(prefer=0, conn=self._live_writer())
                slot = self._slot
        return slot

    def _claim_slot(self, prefer: int, conn: psycopg.Connection) -> StampSlot:
        """The first free slot from ``prefer`` on (a session lock of ``conn``)."""
        for i in range(STAMP_SLOTS):
            n = (prefer + i) % STAMP_SLOTS
            row = conn.execute(
                "SELECT pg_try_advisory_lock(%s::int, %s::int)", [self._slot_space, n]
            ).fetchone()
            if row is not None and row[0]:
                return StampSlot(n, STAMP_SLOTS)
        raise Unavailable(
            f"all {STAMP_SLOTS} writer slots of PostgreSQL schema {self.schema} are taken",
            hint=f"at most {STAMP_SLOTS} Atoll processes can write one store at a time",
        )

    # ----------------------------------------------------------------------------- writes

    def _catalog(self, keys: tuple[SeriesKey, ...]) -> tuple[np.ndarray, dict[SeriesKey, int]]:
        """Series ids for ``keys``, registering new ones inside the caller's transaction.

        A batch's new series go in with one statement and come back with one query, whatever
        their number (the first readings of a large fleet bring tens of thousands at once).
        Two statements, not one with a CTE: the query must see rows another process committed
        while the insert waited on them."""
        sids = self._sids  # SeriesKey is a NamedTuple: plain tuples find it too
        new = [SeriesKey(*k) for k in dict.fromkeys(keys) if k not in sids]
        added: dict[SeriesKey, int] = {}
        if new:
            columns = [[k[i] for k in new] for i in range(3)]
            self._writer.execute(
                "INSERT INTO series (project, device, metric)"
                " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])"
                " ON CONFLICT DO NOTHING",
                columns,
            )
            rows = self._writer.execute(
                "SELECT s.project, s.device, s.metric, s.id FROM series s"
                " JOIN unnest(%s::text[], %s::text[], %s::text[]) AS n(p, d, m)"
                " ON s.project = n.p AND s.device = n.d AND s.metric = n.m",
                columns,
            ).fetchall()
            added = {SeriesKey(p, d, m): sid for p, d, m, sid in rows}
        # Per key of the batch, never per series known: a copy of the catalog per append
        # cost more than the append itself once a fleet had tens of thousands of series.
        if added:
            ids = [added[k] if k in added else sids[k] for k in keys]
        else:
            ids = list(map(sids.__getitem__, keys))
        return np.array(ids, dtype=np.int32), added

    def _copy(self, table: str, columns: dict[str, np.ndarray]) -> None:
        with self._writer.cursor().copy(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.write(_copy_rows(columns))

    def append(self, batch: PointBatch) -> None:
        plan.check_batch(batch)
        if not len(batch):
            return
        with self._lock, _translated("append"):
            w = self._live_writer()
            if self._unique:
                try:
                    self._append(w, batch, exclusive=False)
                    return
                except _Exclusive:
                    self.exclusive_appends += 1
            self._append(w, batch, exclusive=True)

    def _append(self, w: psycopg.Connection, batch: PointBatch, *, exclusive: bool) -> None:
        try:
            with w.transaction():
                lut, added = self._catalog(batch.keys)
                sid, ts, value = plan.one_per_timestamp(
                    lut[batch.key_index],
                    np.asarray(batch.ts, np.int64),
                    np.asarray(batch.value, np.float64),
                )
                ids, starts = plan.series_runs(sid)
                back = plan.reaching_back(ts, starts, self._newest_stored(ids, exclusive))
                replaced = None
                if back is not None:  # the batch reaches into stored time
                    same, replaced = plan.against_stored(
                        sid, ts, value, self._stored(sid, ts, back)
                    )
                    if not exclusive and replaced.any():  # it replaces points: alone
                        raise _Exclusive
                    # Points re-sent as stored are left out; late points that fill gaps combine
                    # like new ones (under shared locks too: the unique key keeps them single).
                    sid, ts, value, replaced = sid[~same], ts[~same], value[~same], replaced[~same]
                if len(ts):  # else: re-sent exactly as stored, nothing to write
                    self._write(sid, ts, value, replaced)
        except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected):
            if exclusive:
                raise
            raise _Exclusive from None  # another writer added one of these points meanwhile
        # Leaving the transaction block committed it: PostgreSQL has flushed its WAL.
        self._sids.update(added)

    def _write(
        self, sid: np.ndarray, ts: np.ndarray, value: np.ndarray, replaced: np.ndarray | None
    ) -> None:
        """Write a ``(sid, ts)``-sorted, duplicate-free batch; its ``replaced`` points take
        the place of stored ones (the tier buckets they touch are rebuilt)."""
        w = self._writer
        if replaced is not None and replaced.any():
            w.execute("TRUNCATE batch_points")
            self._copy("batch_points", {"sid": sid[replaced], "ts": ts[replaced]})
            w.execute(
                f"DELETE FROM points WHERE ctid IN (SELECT p.ctid FROM {_AT_KEYS})",
                _spans(sid[replaced], ts[replaced]),
            )
            inside, tsid, tb = plan.touched_buckets(sid, ts, replaced, plan.TIERS[0])
        else:  # live data, or late points filling gaps: they combine like any new ones
            inside = None
        self._copy("points", {"sid": sid, "ts": ts, "value": value})
        # Tier rows of untouched buckets combine; those that lost a point are rebuilt.
        fresh = slice(None) if inside is None else ~inside
        for tier in plan.TIERS:
            partials = rollup.of_points(sid[fresh], ts[fresh], value[fresh], tier)
            self._copy(f"batch_{_table(tier)}", partials)
            w.execute(_merge(_table(tier), f"batch_{_table(tier)}"))
        if inside is not None:
            self._rebuild(tsid, tb)
        ids, starts = plan.series_runs(sid)
        newest = [
            (int(i), int(ts[j]), float(value[j]))
            for i, j in zip(ids, _ends(starts, len(ts)), strict=True)
        ]
        w.execute(
            """INSERT INTO latest AS o
            SELECT * FROM unnest(%s::int[], %s::bigint[], %s::float8[])
            ON CONFLICT (sid) DO UPDATE SET
            value = CASE WHEN EXCLUDED.ts >= o.ts THEN EXCLUDED.value ELSE o.value END,
            ts = GREATEST(o.ts, EXCLUDED.ts)""",
            [list(c) for c in zip(*newest, strict=True)],
        )

    def _newest_stored(self, ids: np.ndarray, exclusive: bool = True) -> np.ndarray:
        """Newest stored timestamp of each series (int64 min when none), read after locking the
        series for this transaction: exclusively, a writer in another process waits, so its
        points and ours cannot both miss each other's; shared, writers that only add new
        points go on together (the unique key catches the same point added twice)."""
        ids = ids.tolist()  # ascending: writers lock in the same order, so never deadlock
        function = "newest_locked" if exclusive else "newest_locked_shared"
        stored: dict[int, int] = dict(
            self._writer.execute(
                f"SELECT * FROM {function}(%s::int, %s::int[])", [self._lock_space, ids]
            )
        )
        return np.array([stored.get(i, _NOTHING) for i in ids], np.int64)

    def _stored(
        self, sid: np.ndarray, ts: np.ndarray, back: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(sid, ts, value)`` of the stored points at the keys of the ``back`` points."""
        self._copy("batch_points", {"sid": sid[back], "ts": ts[back]})
        self._writer.execute("ANALYZE batch_points")
        rows = self._writer.execute(
            f"SELECT p.sid, p.ts, p.value FROM {_AT_KEYS}", _spans(sid[back], ts[back])
        ).fetchall()
        if not rows:
            return np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0)
        found_sid, found_ts, found_value = zip(*rows, strict=True)
        return np.array(found_sid), np.array(found_ts, np.int64), np.array(found_value)

    def _rebuild(self, sid: np.ndarray, b: np.ndarray) -> None:
        """Recompute 1-minute rows ``(sid, b)`` from the raw points, then the hours that hold
        them from the 1-minute rows."""
        w, finer = self._writer, None
        for tier in plan.TIERS:
            if finer is not None:
                _, sid, b = plan.touched_buckets(sid, b, np.ones(len(b), bool), tier)
            table = _table(tier)
            w.execute("TRUNCATE batch_buckets")
            self._copy("batch_buckets", {"sid": sid, "b": b})
            w.execute("ANALYZE batch_buckets")
            w.execute(
                f"DELETE FROM {table} r USING batch_buckets t WHERE r.sid = t.sid AND r.b = t.b"
            )
            if finer is None:
                source = f"""(SELECT p.* FROM batch_buckets t JOIN points p ON p.sid = t.sid
                    AND p.ts >= t.b AND p.ts < t.b + {tier}) s"""
                select = _rollup_of_points(tier, "TRUE", source)
            else:
                source = f"""(SELECT r.* FROM batch_buckets t JOIN {_table(finer)} r
                    ON r.sid = t.sid AND r.b >= t.b AND r.b < t.b + {tier}) s"""
                select = _rollup_of_rollups(source, tier, "TRUE")
            w.execute(f"INSERT INTO {table} ({_COLS}) {select}")
            finer = tier

    def delete_before(self, project: str, ts: int) -> int:
        ts = plan.clamp_ts(ts)
        sids = "sid IN (SELECT id FROM series WHERE project = %(project)s)"
        args = {"project": project, "cut": int(ts)}
        with self._lock, _translated("retention"):
            w = self._live_writer()
            return self._delete_before(w, sids, args, ts)

    def _delete_before(
        self, w: psycopg.Connection, sids: str, args: dict[str, Any], ts: int
    ) -> int:
        with w.transaction():
            gone = w.execute(f"DELETE FROM points WHERE {sids} AND ts < %(cut)s", args).rowcount
            finer = None
            for tier in plan.TIERS:
                table = _table(tier)
                w.execute(f"DELETE FROM {table} WHERE {sids} AND b < %(cut)s", args)
                # The bucket holding the cut lost only part of its points: rebuild it.
                if ts % tier:
                    lo, hi = ts // tier * tier, (ts // tier + 1) * tier
                    if finer is None:
                        select = _rollup_of_points(tier, f"{sids} AND ts >= {lo} AND ts < {hi}")
                    else:
                        select = _rollup_of_rollups(
                            _table(finer), tier, f"{sids} AND b >= {lo} AND b < {hi}"
                        )
                    w.execute(f"INSERT INTO {table} ({_COLS}) {select}", args)
                finer = tier
            w.execute(f"DELETE FROM latest WHERE {sids} AND ts < %(cut)s", args)
        return int(gone)

    # ---------------------------------------------------------------------------- queries

    @contextmanager
    def _reader(self, what: str) -> Iterator[psycopg.Connection]:
        conn = getattr(self._local, "conn", None)
        with _translated(what):
            if conn is None or conn.closed:  # new thread, or the old session broke: reconnect
                stale = conn
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=RECONNECT_MAX_S)
                conn.execute(
                    pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(self.schema))
                )
                self._local.conn = conn
                with self._lock:
                    if stale is not None and stale in self._readers:
                        self._readers.remove(stale)
                    self._readers.append(conn)
            yield conn

    def _query(self, what: str, sql: str, args: Params) -> list[tuple[Any, ...]]:
        with self._reader(what) as conn:
            return conn.execute(sql, args).fetchall()

    def query_raw(self, key: SeriesKey, start: int, end: int, limit: int | None = None) -> Series:
        start, end = plan.check_range(start, end)
        sid = self._sid(key)
        if sid is None or start >= end or (limit is not None and limit <= 0):
            return plan.EMPTY_SERIES
        sql = "SELECT ts, value AS v FROM points WHERE sid = %s AND ts >= %s AND ts < %s"
        args = [sid, int(start), int(end)]
        if limit is not None:
            sql += " ORDER BY ts LIMIT %s"
            args.append(int(limit))
        return self._fetch_ts_value("raw query", sql, args)

    def _fetch_ts_value(self, what: str, sql: str, args: Params) -> Series:
        """``(ts, value)`` rows as two binary arrays in one result row: numpy parses them
        directly, instead of Python building a tuple (or a COPY chunk) per row."""
        # Both aggregates see the rows in the same order; numpy sorts by time (cheaper than
        # sorting inside the aggregate).
        packed = f"SELECT array_send(array_agg(ts)), array_send(array_agg(v)) FROM ({sql}) q"
        with self._reader(what) as conn:
            row = conn.execute(packed, args, binary=True).fetchone()
        assert row is not None  # an aggregate without GROUP BY returns one row
        ts, value = row
        if ts is None:
            return plan.EMPTY_SERIES
        ts, value = _parse_array(ts, ">i8", np.int64), _parse_array(value, ">f8", np.float64)
        order = np.argsort(ts, kind="stable")
        return Series(ts[order], value[order])

    def _sid(self, key: SeriesKey) -> int | None:
        key = SeriesKey(*key)
        if key not in self._sids:
            # Another process may have registered it.
            found = self._query(
                "catalog lookup",
                "SELECT id FROM series WHERE project = %s AND device = %s AND metric = %s",
                list(key),
            )
            if found:
                self._sids[key] = found[0][0]
        return self._sids.get(key)

    def _range_args(self, sid: int, start: int, end: int, tier: int | None) -> dict[str, int]:
        a, z = plan.inner_span(start, end, tier)
        return {"sid": sid, "start": int(start), "end": int(end), "a": a, "z": z}

    def query_buckets(
        self, key: SeriesKey, start: int, end: int, bucket: int, aggs: tuple[str, ...] = AGGREGATES
    ) -> Buckets:
        aggs = plan.check_aggs(aggs)
        plan.check_bucket(bucket)
        start, end = plan.check_range(start, end)
        sid = self._sid(key)
        if sid is None or start >= end:
            return plan.empty_buckets(aggs)
        tier = plan.bucket_tier(bucket)
        if tier is None:
            # No tier fits: aggregating raw points in numpy beats array_agg(... ORDER BY) here.
            raw = self._fetch_ts_value(
                "bucket query",
                _edges("SELECT ts, value AS v"),
                self._range_args(sid, start, end, None),
            )
            return plan.buckets_of_points(raw.ts, raw.value, int(bucket), aggs)
        sql = f"""SELECT {_floor("b", int(bucket))} AS bs, min(vmin), max(vmax),
            sum(vsum) / sum(n), sum(n)::BIGINT, {_argmin("vfirst", "tfirst")},
            {_argmax("vlast", "tlast")}
            FROM ({_range_rows(tier)}) r GROUP BY bs ORDER BY bs"""
        rows = self._query("bucket query", sql, self._range_args(sid, start, end, tier))
        if not rows:
            return plan.empty_buckets(aggs)
        cols = list(zip(*rows, strict=True))
        named = dict(zip(("min", "max", "avg", "count", "first", "last"), cols[1:], strict=True))
        return Buckets(
            np.array(cols[0], np.int64),
            {a: np.array(named[a], np.int64 if a == "count" else np.float64) for a in aggs},
        )

    def query_chart(self, key: SeriesKey, start: int, end: int, width: int) -> Series:
        plan.check_width(width)
        start, end = plan.check_range(start, end)
        sid = self._sid(key)
        if sid is None or start >= end:
            return plan.EMPTY_SERIES
        tier = plan.chart_tier(start, end, width)
        args = self._range_args(sid, start, end, tier)
        candidates = self._fetch_ts_value("chart query", _chart_candidates(tier), args)
        return plan.pixel_extremes(
            candidates.ts, candidates.value, start, plan.pixel_us(start, end, width)
        )

    def _latest_rows(self, project: str, device: str | None) -> list[tuple[Any, ...]]:
        sql = """SELECT s.project, s.device, s.metric, l.ts, l.value
            FROM latest l JOIN series s ON s.id = l.sid WHERE s.project = %s"""
        args = [project]
        if device is not None:
            sql += " AND s.device = %s"
            args.append(device)
        return self._query("latest query", sql, args)

    def latest(self, project: str, device: str | None = None) -> dict[SeriesKey, tuple[int, float]]:
        return {
            SeriesKey(p, d, m): (int(t), float(v))
            for p, d, m, t, v in self._latest_rows(project, device)
        }

    def series(self, project: str, device: str | None = None) -> list[SeriesKey]:
        return sorted(SeriesKey(p, d, m) for p, d, m, _, _ in self._latest_rows(project, device))

    def usage(self, since: int) -> dict[str, ProjectUsage]:
        # The rollups, kept in the append's own transaction, are far smaller than the points:
        # the hour tier counts everything, the minute tier what came since (to the minute).
        minute = since - since % plan.MINUTE
        sql = f"""SELECT s.project, sum(h.n), coalesce(sum(m.n), 0), max(l.ts)
            FROM series s
            JOIN (SELECT sid, sum(n) AS n FROM {_table(plan.HOUR)} GROUP BY sid) h
                ON h.sid = s.id
            LEFT JOIN (SELECT sid, sum(n) AS n FROM {_table(plan.MINUTE)} WHERE b >= %s
                GROUP BY sid) m ON m.sid = s.id
            LEFT JOIN latest l ON l.sid = s.id
            GROUP BY s.project"""
        return {
            p: ProjectUsage(int(n), int(r), None if t is None else int(t))
            for p, n, r, t in self._query("usage query", sql, [minute])
        }

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for conn in [self._writer, *self._readers]:
                conn.close()
