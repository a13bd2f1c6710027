"""Embedded default ``SeriesStore`` on DuckDB, with rollup tiers for fast charts at any zoom.

Layout (see docs/STORAGE.md for why):

* ``series``: the catalog, one small integer id per ``SeriesKey``.
* ``points``: raw ``(sid, ts, value, seq)``, appended in bulk from numpy arrays; ``seq``
  numbers the appends (constant per append, so it compresses to almost nothing).
* ``rollup_60s`` / ``rollup_3600s``: per series and bucket, min/max with their times,
  sum, count, first and last, one row per bucket.
* ``store_meta``: ``compacted_seq``, the last append already folded into the tiers.

An append is one plain bulk insert and a commit. Every few seconds the writer folds the
points of the appends after ``compacted_seq`` into both tiers (upserts that combine rows, so
late and out-of-order points are exact) and advances ``compacted_seq`` in the same
transaction. Queries read the tiers plus the few raw points not folded in yet, inside one
snapshot, so every answer is exact at every moment while an append stays cheap.

The newest point of every series is kept in memory (rebuilt from the tiers on open). It makes
``(series, ts)`` identity cheap: a batch whose points are all newer than their series' newest
stored point (live data) is a plain insert; one that reaches back deletes the stored versions
of its points, inserts, and rebuilds the tier buckets it touched, in one transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from atoll.core.errors import InvalidInput, Unavailable
from atoll.core.points import PointBatch, SeriesKey
from atoll.store import plan, rollup
from atoll.store.port import AGGREGATES, ONE_WRITER, Buckets, ProjectUsage, Series, StampSlot

log = logging.getLogger(__name__)

_ROLLUP_COLUMNS = "sid, b, vmin, tmin, vmax, tmax, vsum, n, tfirst, vfirst, tlast, vlast"

_ROLLUP_DDL = """sid INTEGER NOT NULL, b BIGINT NOT NULL, vmin DOUBLE, tmin BIGINT, vmax DOUBLE,
    tmax BIGINT, vsum DOUBLE, n BIGINT, tfirst BIGINT, vfirst DOUBLE, tlast BIGINT, vlast DOUBLE"""

_SCHEMA = [
    "CREATE SEQUENCE IF NOT EXISTS series_id START 1",
    """CREATE TABLE IF NOT EXISTS series (
        id INTEGER PRIMARY KEY, project VARCHAR NOT NULL, device VARCHAR NOT NULL,
        metric VARCHAR NOT NULL, UNIQUE (project, device, metric))""",
    """CREATE TABLE IF NOT EXISTS points (
        sid INTEGER NOT NULL, ts BIGINT NOT NULL, value DOUBLE, seq BIGINT NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS store_meta (name VARCHAR PRIMARY KEY, value BIGINT NOT NULL)",
    "INSERT INTO store_meta VALUES ('compacted_seq', 0) ON CONFLICT DO NOTHING",
] + [
    f"CREATE TABLE IF NOT EXISTS rollup_{t // plan.MINUTE * 60}s"
    f" ({_ROLLUP_DDL}, PRIMARY KEY (sid, b))"
    for t in plan.TIERS
]

_COMPACTED = "SELECT value FROM store_meta WHERE name = 'compacted_seq'"


def _table(tier: int) -> str:
    return f"rollup_{tier // plan.MINUTE * 60}s"


def _floor(col: str, width: int) -> str:
    # DuckDB's % truncates toward zero; this floors, so pre-epoch buckets align too.
    return f"({col} - ((({col} % {width}) + {width}) % {width}))"


def _rollup_of_points(source: str, width: int, where: str = "TRUE") -> str:
    """Rollup rows (``_ROLLUP_COLUMNS``) of raw points."""
    return f"""SELECT sid, {_floor("ts", width)} AS b, min(value) AS vmin,
        arg_min(ts, value) AS tmin, max(value) AS vmax, arg_max(ts, value) AS tmax,
        sum(value) AS vsum, count(*) AS n, min(ts) AS tfirst, arg_min(value, ts) AS vfirst,
        max(ts) AS tlast, arg_max(value, ts) AS vlast FROM {source} WHERE {where} GROUP BY ALL"""


def _rollup_of_rollups(source: str, width: int, where: str = "TRUE") -> str:
    """Coarser rollup rows from finer ones (``width`` a multiple of theirs)."""
    return f"""SELECT sid, {_floor("b", width)} AS b, min(vmin) AS vmin,
        arg_min(tmin, vmin) AS tmin, max(vmax) AS vmax, arg_max(tmax, vmax) AS tmax,
        sum(vsum) AS vsum, sum(n)::BIGINT AS n, min(tfirst) AS tfirst,
        arg_min(vfirst, tfirst) AS vfirst, max(tlast) AS tlast, arg_max(vlast, tlast) AS vlast
        FROM {source} WHERE {where} GROUP BY ALL"""


def _merge(table: str, select: str) -> str:
    """Insert rollup rows, combining with any row already there for the same bucket."""
    new, old = "excluded", table
    return f"""INSERT INTO {table} ({_ROLLUP_COLUMNS}) {select}
        ON CONFLICT (sid, b) DO UPDATE SET
        vmin = CASE WHEN {new}.vmin < {old}.vmin THEN {new}.vmin ELSE {old}.vmin END,
        tmin = CASE WHEN {new}.vmin < {old}.vmin THEN {new}.tmin ELSE {old}.tmin END,
        vmax = CASE WHEN {new}.vmax > {old}.vmax THEN {new}.vmax ELSE {old}.vmax END,
        tmax = CASE WHEN {new}.vmax > {old}.vmax THEN {new}.tmax ELSE {old}.tmax END,
        vsum = {old}.vsum + {new}.vsum,
        n = {old}.n + {new}.n,
        tfirst = CASE WHEN {new}.tfirst < {old}.tfirst THEN {new}.tfirst ELSE {old}.tfirst END,
        vfirst = CASE WHEN {new}.tfirst < {old}.tfirst THEN {new}.vfirst ELSE {old}.vfirst END,
        tlast = CASE WHEN {new}.tlast >= {old}.tlast THEN {new}.tlast ELSE {old}.tlast END,
        vlast = CASE WHEN {new}.tlast >= {old}.tlast THEN {new}.vlast ELSE {old}.vlast END"""


def _edges(select: str) -> str:
    """``select`` over raw points at both edges: ``[start, a)`` and ``[z, end)``, as two index
    ranges (one range with an OR filter would scan the whole middle)."""
    return (
        f"{select} FROM points WHERE sid = $sid AND ts >= $start AND ts < $a"
        f" UNION ALL {select} FROM points WHERE sid = $sid AND ts >= $z AND ts < $end"
    )


def _middle(tier: int, tier_columns: str, raw_columns: str) -> str:
    """The aligned middle ``[a, z)``: tier rows, plus raw points not folded into them yet."""
    return (
        f"SELECT {tier_columns} FROM {_table(tier)} WHERE sid = $sid AND b >= $a AND b < $z"
        f" UNION ALL SELECT {raw_columns} FROM points"
        " WHERE sid = $sid AND seq > $compacted AND ts >= $a AND ts < $z"
    )


_RAW_AS_ROLLUP = """ts AS b, value AS vmin, ts AS tmin, value AS vmax, ts AS tmax,
    value AS vsum, 1 AS n, ts AS tfirst, value AS vfirst, ts AS tlast, value AS vlast"""


def _range_rows(tier: int | None) -> str:
    """Rollup-shaped rows of a query range: tier rows for the aligned middle ``[a, z)``,
    raw points for the partial buckets at the edges."""
    raw = _edges(f"SELECT {_RAW_AS_ROLLUP}")
    if tier is None:
        return raw
    columns = "b, vmin, tmin, vmax, tmax, vsum, n, tfirst, vfirst, tlast, vlast"
    return f"{_middle(tier, columns, _RAW_AS_ROLLUP)} UNION ALL {raw}"


def _chart_candidates(tier: int | None) -> str:
    """Points a chart may show: each tier bucket's min and max, raw points otherwise."""
    raw = _edges("SELECT ts, value AS v")
    if tier is None:
        return raw
    lows = _middle(tier, "tmin AS ts, vmin AS v", "ts, value")
    highs = f"SELECT tmax, vmax FROM {_table(tier)} WHERE sid = $sid AND b >= $a AND b < $z"
    return f"{lows} UNION ALL {highs} UNION ALL {raw}"


class _Newest:
    """The newest stored ``(ts, value)`` of each series, in arrays indexed by series id (ids come
    from a sequence, so they are dense). An append reads and updates it with a few array
    operations: a Python loop per series of the batch (three of them) was half of the ingest
    writer thread's time with 10,000 devices each sending one reading. Reads and updates hold a
    lock of their own (queries read it while the writer appends)."""

    NONE = np.iinfo(np.int64).min  # nothing stored: every timestamp is newer

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._lock = threading.Lock()
        top = max((int(r[0]) for r in rows), default=0)
        self.ts = np.full(max(64, top + 1), self.NONE, dtype=np.int64)
        self.value = np.zeros(len(self.ts))
        for sid, t, v in rows:
            self.ts[int(sid)], self.value[int(sid)] = int(t), float(v)

    def _room(self, top: int) -> None:
        n = len(self.ts)
        if top >= n:
            grow = max(top + 1, 2 * n) - n
            self.ts = np.concatenate([self.ts, np.full(grow, self.NONE, dtype=np.int64)])
            self.value = np.concatenate([self.value, np.zeros(grow)])

    def stored(self, ids: np.ndarray) -> np.ndarray:
        """Newest stored timestamp of each of ``ids`` (``NONE``: nothing stored)."""
        if not len(ids):
            return np.empty(0, np.int64)
        with self._lock:
            self._room(int(ids.max()))
            stored: np.ndarray = self.ts[ids]
            return stored

    def note(self, sid: np.ndarray, ts: np.ndarray, value: np.ndarray) -> None:
        """Points just stored, sorted by ``(sid, ts)`` with one per ``(sid, ts)``: each run's
        last point is its series' newest, unless one stored before is newer."""
        ids, starts = plan.series_runs(sid)
        if not len(ids):
            return
        last = np.r_[starts[1:], len(sid)] - 1
        with self._lock:
            self._room(int(ids.max()))
            newer = ts[last] >= self.ts[ids]
            self.ts[ids[newer]] = ts[last][newer]
            self.value[ids[newer]] = value[last][newer]

    def items(self) -> list[tuple[int, tuple[int, float]]]:
        """``(sid, (ts, value))`` of every series with something stored."""
        with self._lock:
            have = np.flatnonzero(self.ts != self.NONE)
            ts, value = self.ts[have].tolist(), self.value[have].tolist()
        return list(zip(have.tolist(), zip(ts, value, strict=True), strict=True))

    def forget(self, sids: list[int]) -> None:
        with self._lock:
            self.ts[sids] = self.NONE


def _run(cur: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> list[tuple[Any, ...]]:
    # DuckDB refuses new work on a cursor until the previous result is fully read.
    return cur.execute(sql, params).fetchall()


@contextmanager
def _registered(
    cur: duckdb.DuckDBPyConnection, name: str, columns: dict[str, np.ndarray]
) -> Iterator[None]:
    """numpy columns visible to SQL as view ``name`` (no copy, no per-row Python)."""
    cur.register(name, columns)
    try:
        yield
    finally:
        cur.unregister(name)


def _insert_points(
    cur: duckdb.DuckDBPyConnection, sid: np.ndarray, ts: np.ndarray, value: np.ndarray, seq: int
) -> None:
    """Insert points; ``append`` unregisters ``_batch`` after its commit (the fast path then
    runs exactly the statements of the append-only version, in the same order)."""
    cur.register("_batch", {"sid": sid, "ts": ts, "value": value})
    _run(cur, "INSERT INTO points SELECT sid, ts, value, $seq FROM _batch", {"seq": seq})


def _set_compacted(cur: duckdb.DuckDBPyConnection, seq: int) -> None:
    _run(cur, "UPDATE store_meta SET value = ? WHERE name = 'compacted_seq'", [int(seq)])


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except duckdb.Error as e:
        raise Unavailable(f"DuckDB store: {what} failed: {e}") from e


class DuckDBStore:
    """A ``SeriesStore`` in one DuckDB file (or ``":memory:"``).

    One writer at a time (appends and retention take a lock); queries run concurrently
    on their own cursors and see only committed appends.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        config: dict[str, str] | None = None,
        *,
        compact_points: int = 1_000_000,
        compact_seconds: float = 5.0,
    ):
        """``config``: DuckDB settings. Appended points are folded into the rollup tiers once
        ``compact_points`` have piled up or the oldest is ``compact_seconds`` old."""
        self.path = str(path)
        self._compact_points, self._compact_seconds = compact_points, compact_seconds
        self._pending = 0
        self._pending_since: float | None = None
        try:
            self._db = duckdb.connect(self.path, config=dict(config or {}))
        except duckdb.IOException as e:
            raise Unavailable(
                f"cannot open DuckDB store at {self.path}: {e}",
                hint="only one process may open a DuckDB file; is another Atoll running on it?",
            ) from e
        except duckdb.Error as e:
            raise InvalidInput(
                f"cannot open DuckDB store at {self.path}: {e}",
                hint="check the file path and the DuckDB settings after '?' in the store URL",
            ) from e
        self._lock = threading.Lock()
        self._cursor_lock = threading.Lock()
        self._writer = self._db.cursor()
        self._closed = False
        with _translated("opening"):
            for ddl in _SCHEMA:
                _run(self._writer, ddl)
            rows = _run(self._writer, "SELECT project, device, metric, id FROM series")
            self._sids: dict[SeriesKey, int] = {SeriesKey(p, d, m): i for p, d, m, i in rows}
            self._keys = {i: k for k, i in self._sids.items()}
            ((self._seq,),) = _run(self._writer, "SELECT coalesce(max(seq), 0) FROM points")
            ((self._compacted,),) = _run(self._writer, _COMPACTED)
            # Retention may have deleted the newest appends; never reuse a folded number.
            self._seq = max(self._seq, self._compacted)
            # 1-minute rollups of the appends since the last compaction, computed in numpy at
            # append time (cheap: the arrays are at hand); None = unknown, re-read the points.
            self._partials: list[dict[str, np.ndarray]] | None = None
            self._compact()  # appends a crash left unfolded
            newest = _run(
                self._writer,
                f"SELECT sid, max(tlast), arg_max(vlast, tlast) FROM {_table(plan.TIERS[-1])} "
                "GROUP BY sid",
            )
        self._latest = _Newest(newest)

    # ----------------------------------------------------------------------------- writes

    def _catalog(self, keys: tuple[SeriesKey, ...]) -> tuple[np.ndarray, dict[SeriesKey, int]]:
        """Series ids for ``keys``, registering new ones inside the caller's transaction.

        All of a batch's new series go in with one statement and come back with one query: the
        first readings of a large fleet bring tens of thousands at once (one statement each
        took ~7 ms, minutes for 40,000)."""
        sids = self._sids  # SeriesKey is a NamedTuple: plain tuples find it too
        new = [SeriesKey(*k) for k in dict.fromkeys(keys) if k not in sids]
        added: dict[SeriesKey, int] = {}
        if new:
            columns = [[k[i] for k in new] for i in range(3)]
            _run(
                self._writer,
                "INSERT INTO series SELECT nextval('series_id'), p, d, m"
                " FROM (SELECT unnest($1::VARCHAR[]) AS p, unnest($2::VARCHAR[]) AS d,"
                " unnest($3::VARCHAR[]) AS m) ON CONFLICT DO NOTHING",
                columns,
            )
            rows = _run(
                self._writer,
                "SELECT s.project, s.device, s.metric, s.id FROM series s"
                " JOIN (SELECT unnest($1::VARCHAR[]) AS p, unnest($2::VARCHAR[]) AS d,"
                " unnest($3::VARCHAR[]) AS m) n"
                " ON s.project = n.p AND s.device = n.d AND s.metric = n.m",
                columns,
            )
            added = {SeriesKey(p, d, m): sid for p, d, m, sid in rows}
        # Per key of the batch, never per series known: a copy of the catalog per append
        # cost more than the append itself once a fleet had tens of thousands of series.
        if added:
            ids = [added[k] if k in added else sids[k] for k in keys]
        else:
            ids = list(map(sids.__getitem__, keys))
        return np.array(ids, dtype=np.int32), added

    def append(self, batch: PointBatch) -> None:
        plan.check_batch(batch)
        if not len(batch):
            return
        with self._lock, _translated("append"):
            w = self._writer
            seq = self._seq + 1
            w.begin()
            try:
                lut, added = self._catalog(batch.keys)
                sid, ts, value = plan.one_per_timestamp(
                    lut[batch.key_index],
                    np.ascontiguousarray(batch.ts, dtype=np.int64),
                    np.ascontiguousarray(batch.value, dtype=np.float64),
                )
                ids, starts = plan.series_runs(sid)
                stored = self._latest.stored(ids)
                back = plan.reaching_back(ts, starts, stored)
                replaced = None
                if back is not None:  # rare: the batch reaches into stored time
                    same, replaced = plan.against_stored(
                        sid, ts, value, self._stored(sid, ts, back)
                    )
                    sid, ts, value, replaced = sid[~same], ts[~same], value[~same], replaced[~same]
                    if not replaced.any():  # re-sent as stored, or late points filling gaps
                        replaced = None
                if replaced is not None:
                    self._replace(sid, ts, value, replaced, seq)
                elif len(ts):
                    _insert_points(w, sid, ts, value, seq)
                w.commit()  # DuckDB writes and syncs its WAL on commit: durable from here
            except BaseException:
                w.rollback()
                raise
            finally:
                w.unregister("_batch")
            self._sids.update(added)
            self._keys.update({i: k for k, i in added.items()})
            if not len(ts):
                return  # everything was stored already
            self._seq = seq
            self._latest.note(sid, ts, value)
            if replaced is not None:  # _replace folded everything into the tiers
                self._compacted = seq
                self._partials = []
                self._pending, self._pending_since = 0, None
                return
            if self._partials is not None:
                self._partials.append(rollup.of_points(sid, ts, value, plan.TIERS[0]))
            if self._pending_since is None:
                self._pending_since = time.monotonic()
            self._pending += len(ts)
            if (
                self._pending >= self._compact_points
                or time.monotonic() - self._pending_since >= self._compact_seconds
            ):
                try:
                    self._compact()
                except duckdb.Error:
                    # The batch is committed; failing append now would make the sender retry.
                    # Queries stay exact from raw points; retry later.
                    log.exception("DuckDB store: compaction failed, will retry")

    def _stored(
        self, sid: np.ndarray, ts: np.ndarray, back: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(sid, ts, value)`` of the stored points at the keys of the ``back`` points."""
        with _registered(self._writer, "_keys", {"sid": sid[back], "ts": ts[back]}):
            got = self._writer.execute(
                """SELECT p.sid, p.ts, p.value FROM points p JOIN _keys k
                ON p.sid = k.sid AND p.ts = k.ts WHERE p.ts >= ? AND p.ts <= ?""",
                [int(ts[back].min()), int(ts[back].max())],
            ).fetchnumpy()
        return np.asarray(got["sid"]), np.asarray(got["ts"]), np.asarray(got["value"])

    def _replace(
        self, sid: np.ndarray, ts: np.ndarray, value: np.ndarray, back: np.ndarray, seq: int
    ) -> None:
        """Append a ``(sid, ts)``-sorted batch whose ``back`` points replace stored ones,
        inside the caller's transaction: delete the stored versions, insert the batch, fold
        everything pending into the tiers and rebuild the tier buckets that lost a point from
        the raw points. Leaves every append up to ``seq`` folded."""
        w = self._writer
        inside, tsid, tb = plan.touched_buckets(sid, ts, back, plan.TIERS[0])
        # Pending appends and the batch's points outside the rebuilt buckets combine as usual.
        rows = [rollup.of_points(sid[~inside], ts[~inside], value[~inside], plan.TIERS[0])]
        if self._seq > self._compacted:
            rows.append(self._unfolded())
        self._fold({c: np.concatenate([r[c] for r in rows]) for c in rollup.COLUMNS})
        with _registered(w, "_over", {"sid": sid[back], "ts": ts[back]}):
            _run(
                w,
                """DELETE FROM points USING _over o WHERE points.sid = o.sid AND points.ts = o.ts
                AND points.ts >= ? AND points.ts <= ?""",
                [int(ts[back].min()), int(ts[back].max())],
            )
        _insert_points(w, sid, ts, value, seq)
        finer = None
        for tier in plan.TIERS:
            if finer is not None:  # the coarser buckets that hold the rebuilt finer ones
                _, tsid, tb = plan.touched_buckets(tsid, tb, np.ones(len(tb), bool), tier)
            col, source = ("ts", "points") if finer is None else ("b", _table(finer))
            span = f"s.{col} >= {int(tb.min())} AND s.{col} < {int(tb.max()) + tier}"
            rows_of = _rollup_of_points if finer is None else _rollup_of_rollups
            select = rows_of(
                f"""(SELECT s.* FROM {source} s JOIN _touched t
                ON s.sid = t.sid AND {_floor(f"s.{col}", tier)} = t.b WHERE {span})""",
                tier,
            )
            with _registered(w, "_touched", {"sid": tsid, "b": tb}):
                table = _table(tier)
                _run(
                    w,
                    f"DELETE FROM {table} USING _touched t WHERE {table}.sid = t.sid"
                    f" AND {table}.b = t.b",
                )
                _run(w, f"INSERT INTO {table} ({_ROLLUP_COLUMNS}) {select}")
            finer = tier
        _set_compacted(w, seq)

    def _unfolded(self) -> dict[str, np.ndarray]:
        """1-minute rollup rows of the appends after ``compacted_seq``."""
        if self._partials is None:
            # After a restart: roll up the unfolded points again from the table.
            fresh = self._writer.execute(
                "SELECT sid, ts, value FROM points WHERE seq > ? AND seq <= ?",
                [int(self._compacted), int(self._seq)],
            ).fetchnumpy()
            return rollup.of_points(fresh["sid"], fresh["ts"], fresh["value"], plan.TIERS[0])
        return {c: np.concatenate([p[c] for p in self._partials]) for c in rollup.COLUMNS}

    def _fold(self, rows: dict[str, np.ndarray]) -> None:
        """Combine 1-minute rollup rows into both tiers (inside the caller's transaction)."""
        if not len(rows["sid"]):
            return
        with _registered(self._writer, "_fresh", rows):
            # Appends may have split a bucket: combine their rows before the upserts.
            for tier in plan.TIERS:
                _run(self._writer, _merge(_table(tier), _rollup_of_rollups("_fresh", tier)))

    def _compact(self) -> None:
        """Fold the points of appends after ``compacted_seq`` into the tiers (caller holds the
        lock, or is ``__init__``)."""
        if self._seq > self._compacted:
            w = self._writer
            w.begin()
            try:
                self._fold(self._unfolded())
                _set_compacted(w, self._seq)
                w.commit()
            except BaseException:
                w.rollback()
                raise
            self._compacted = self._seq
        self._partials = []
        self._pending, self._pending_since = 0, None

    def compact(self) -> None:
        """Fold recent appends into the rollup tiers now (appends do this every few seconds)."""
        with self._lock, _translated("compaction"):
            self._compact()

    def delete_before(self, project: str, ts: int) -> int:
        ts = plan.clamp_ts(ts)
        sids = "sid IN (SELECT id FROM series WHERE project = $project)"
        args = {"project": project, "cut": int(ts)}
        with self._lock, _translated("retention"):
            self._compact()
            w = self._writer
            w.begin()
            try:
                ((gone,),) = _run(w, f"DELETE FROM points WHERE {sids} AND ts < $cut", args)
                finer = None
                for tier in plan.TIERS:
                    table = _table(tier)
                    _run(w, f"DELETE FROM {table} WHERE {sids} AND b < $cut", args)
                    # The bucket holding the cut lost only part of its points: rebuild it.
                    if ts % tier:
                        lo, hi = ts // tier * tier, (ts // tier + 1) * tier
                        edge = f"{sids} AND {{col}} >= {lo} AND {{col}} < {hi}"
                        select = (
                            _rollup_of_points("points", tier, edge.format(col="ts"))
                            if finer is None
                            else _rollup_of_rollups(_table(finer), tier, edge.format(col="b"))
                        )
                        _run(
                            w,
                            f"INSERT INTO {table} ({_ROLLUP_COLUMNS}) {select}",
                            {"project": project},
                        )
                    finer = tier
                w.commit()
            except BaseException:
                w.rollback()
                raise
            # A series whose newest point is older than the cut has nothing left.
            self._latest.forget(
                [
                    sid
                    for sid, (t, _) in self._latest.items()
                    if t < ts and self._keys[sid].project == project
                ]
            )
        return int(gone)

    # ---------------------------------------------------------------------------- queries

    def _read(
        self, what: str, sql: str, args: dict[str, int] | list[int], tier: int | None = None
    ) -> dict[str, Any]:
        """Run one query in a snapshot of its own. With a tier, the query also sees
        ``$compacted`` from that same snapshot, so tier rows and not-yet-folded raw points
        never overlap or leave a gap, whatever compaction does meanwhile."""
        with _translated(what):
            with self._cursor_lock:  # the root connection is shared by all threads
                cur = self._db.cursor()
            with cur:
                cur.begin()
                try:
                    if tier is not None:
                        assert isinstance(args, dict)  # tier queries bind named parameters
                        ((args["compacted"],),) = _run(cur, _COMPACTED)
                    return cur.execute(sql, args).fetchnumpy()
                finally:
                    cur.rollback()  # read-only

    def query_raw(self, key: SeriesKey, start: int, end: int, limit: int | None = None) -> Series:
        start, end = plan.check_range(start, end)
        sid = self._sids.get(SeriesKey(*key))
        if sid is None or start >= end or (limit is not None and limit <= 0):
            return plan.EMPTY_SERIES
        sql = "SELECT ts, value FROM points WHERE sid = ? AND ts >= ? AND ts < ? ORDER BY ts"
        args = [sid, int(start), int(end)]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        got = self._read("raw query", sql, args)
        return Series(np.asarray(got["ts"], np.int64), np.asarray(got["value"], np.float64))

    def count_raw(
        self, keys: Sequence[SeriesKey], start: Sequence[int], end: Sequence[int]
    ) -> list[int]:
        """One join of the wanted ``(series, span)`` rows with the points of their overall
        span: a single scan of the recent points for all, not one per series."""
        out = [0] * len(keys)
        want = [
            (j, sid, int(a), int(z))
            for j, (k, a, z) in enumerate(zip(keys, start, end, strict=True))
            if (sid := self._sids.get(SeriesKey(*k))) is not None and a < z
        ]
        if not want:
            return out
        columns = [np.array(c, dtype=np.int64) for c in zip(*want, strict=True)]
        cols = dict(zip("jsaz", columns, strict=True))
        a, z = cols["a"], cols["z"]
        with _translated("count query"):
            with self._cursor_lock:  # the root connection is shared by all threads
                cur = self._db.cursor()
            with cur, _registered(cur, "_want", cols):
                rows = _run(
                    cur,
                    """SELECT w.j, count(*) FROM _want w JOIN points p
                    ON p.sid = w.s AND p.ts >= w.a AND p.ts < w.z
                    WHERE p.ts >= ? AND p.ts < ? GROUP BY w.j""",
                    [int(a.min()), int(z.max())],
                )
        for i, n in rows:
            out[i] = int(n)
        return out

    def _range_args(self, sid: int, start: int, end: int, tier: int | None) -> dict[str, int]:
        a, z = plan.inner_span(start, end, tier)
        return {"sid": sid, "start": int(start), "end": int(end), "a": a, "z": z}

    def query_buckets(
        self, key: SeriesKey, start: int, end: int, bucket: int, aggs: tuple[str, ...] = AGGREGATES
    ) -> Buckets:
        aggs = plan.check_aggs(aggs)
        plan.check_bucket(bucket)
        start, end = plan.check_range(start, end)
        sid = self._sids.get(SeriesKey(*key))
        if sid is None or start >= end:
            return plan.empty_buckets(aggs)
        tier = plan.bucket_tier(bucket)
        sql = f"""SELECT {_floor("b", int(bucket))} AS bs, min(vmin) AS min, max(vmax) AS max,
            sum(vsum) / sum(n) AS avg, sum(n)::BIGINT AS count,
            arg_min(vfirst, tfirst) AS first, arg_max(vlast, tlast) AS last
            FROM ({_range_rows(tier)}) GROUP BY bs ORDER BY bs"""
        got = self._read("bucket query", sql, self._range_args(sid, start, end, tier), tier)
        return Buckets(
            np.asarray(got["bs"], np.int64),
            {a: np.asarray(got[a], np.int64 if a == "count" else np.float64) for a in aggs},
        )

    def query_chart(self, key: SeriesKey, start: int, end: int, width: int) -> Series:
        plan.check_width(width)
        start, end = plan.check_range(start, end)
        sid = self._sids.get(SeriesKey(*key))
        if sid is None or start >= end:
            return plan.EMPTY_SERIES
        tier = plan.chart_tier(start, end, width)
        sql = f"""SELECT arg_min(ts, v) AS tmin, min(v) AS vmin, arg_max(ts, v) AS tmax,
            max(v) AS vmax FROM ({_chart_candidates(tier)}) GROUP BY (ts - $start) // $px"""
        args = self._range_args(sid, start, end, tier)
        args["px"] = plan.pixel_us(start, end, width)
        got = self._read("chart query", sql, args, tier)
        return plan.interleave_min_max(got["tmin"], got["vmin"], got["tmax"], got["vmax"])

    def latest(self, project: str, device: str | None = None) -> dict[SeriesKey, tuple[int, float]]:
        out = {}
        for sid, newest in self._latest.items():
            key = self._keys[sid]
            if key.project == project and (device is None or key.device == device):
                out[key] = newest
        return out

    def series(self, project: str, device: str | None = None) -> list[SeriesKey]:
        return sorted(self.latest(project, device))

    def usage(self, since: int) -> dict[str, ProjectUsage]:
        # Raw points, not the rollups: they hold the appends not folded yet, and DuckDB counts
        # a column of many millions of rows in well under a second.
        got = self._read(
            "usage query",
            """SELECT s.project AS project, count(*) AS points,
                count(*) FILTER (WHERE p.ts >= $since) AS recent, max(p.ts) AS last_ts
                FROM points p JOIN series s ON s.id = p.sid GROUP BY s.project""",
            {"since": int(since)},
        )
        return {
            str(p): ProjectUsage(int(n), int(r), int(t))
            for p, n, r, t in zip(
                got["project"], got["points"], got["recent"], got["last_ts"], strict=True
            )
        }

    def stamp_slot(self) -> StampSlot:
        return ONE_WRITER  # one process opens the file for writing

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with _translated("closing"):
                self._compact()
            self._writer.close()
            self._db.close()
