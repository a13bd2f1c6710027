"""The edge agent's durable buffer: every reading is on local disk before ``put`` returns.

Storage. The buffer is a directory of *segments*, each one SQLite database
(``seg-<first seq>.db``, table ``r(seq, dev, ts, v)``, WAL journal, ``synchronous=FULL``), plus
``state.json`` (the acknowledged position and the counters, replaced atomically). SQLite rather
than a hand-written framed log: it is in the standard library and among the best-tested storage
engines there is; a commit is atomic and synced, a torn write is rolled back on open, and a
damaged page is reported as ``sqlite3.DatabaseError`` (and found by ``PRAGMA quick_check``)
instead of being parsed as data. What a framed log would add (CRCs, recovery scans, torn-tail
handling) would be our own code to get right; splitting into segment files keeps what SQLite
cannot do cheaply, giving space back, to deleting a whole file.

Writes. ``put`` queues its readings; one writer commits everything queued in one transaction
(group commit: many connectors' puts share one fsync), then every waiting ``put`` returns.
Every reading gets the next sequence number; a connector puts each series in time order, so
sequence order keeps per-series order.

Forwarding position. The forwarder reads after its cursor (``read``) and reports what the
platform acknowledged, in order (``ack``); ``save_position`` persists it (the agent does so
every fraction of a second and on stop). After a crash, forwarding resumes after the last saved
position: a few messages may be sent twice, which the platform absorbs (one row per series and
timestamp). Segments whose every reading is acknowledged are deleted.

Full. ``max_bytes`` bounds the segment files. With ``drop_oldest`` the oldest segment none of
whose readings is in flight is deleted and its unsent readings counted in ``dropped`` (the
count is saved before the file goes, so a crash cannot lose or double it); with
``stop_reading``, ``put`` raises ``BufferStopped`` until the forwarder has drained a segment.

Damage. A segment SQLite cannot read (checked with ``quick_check`` before it is first read, or
failing while read) is moved to ``quarantine/``, counted with the readings it held
(``quarantined``, ``quarantined_readings``), and forwarding goes on with the next one: damage
never stops the agent.

>>> import tempfile
>>> from atoll.edge.port import EdgeReading
>>> b = DurableBuffer(tempfile.mkdtemp(), max_bytes=10_000_000).open()
>>> b.append([EdgeReading("press-1", 1_795_428_000_000_000, {"t": 21.5})])
>>> [(r.seq, r.device, r.values) for r in b.read(after=0, max_bytes=65536)]
[(1, 'press-1', b'{"t":21.5}')]
>>> b.ack(1); b.stats().depth
0
>>> b.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Literal, Self

import orjson

from atoll.edge.port import BufferStopped, EdgeReading

log = logging.getLogger("atoll.edge.buffer")

FullPolicy = Literal["drop_oldest", "stop_reading"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS r(seq INTEGER PRIMARY KEY, dev TEXT NOT NULL, "
    "ts INTEGER NOT NULL, v BLOB NOT NULL)"
)
_ROW_OVERHEAD = 24  # bytes a row costs beyond its text, as estimated before writing


class BufferInUse(RuntimeError):
    """Another process (another agent) has the buffer directory open."""


@dataclass(frozen=True, slots=True)
class Row:
    """One buffered reading: its sequence number, child device, µs timestamp, values as JSON."""

    seq: int
    device: str
    ts_us: int
    values: bytes


@dataclass(slots=True)
class BufferStats:
    depth: int  # readings not yet acknowledged by the platform
    bytes: int  # size of the segment files
    oldest_unsent_age_s: float | None  # age of the next reading to forward (by its timestamp)
    dropped: int  # readings deleted unsent because the buffer was full (drop_oldest)
    quarantined: int  # damaged segments moved aside
    quarantined_readings: int  # unsent readings they held (as far as known)
    segments: int
    acked: int  # the acknowledged position (sequence number)
    stopped: int  # puts refused because the buffer was full (stop_reading)

    def to_dict(self) -> dict[str, int | float | None]:
        return asdict(self)


@dataclass(slots=True)
class _State:
    acked: int = 0
    dropped: int = 0
    quarantined: int = 0
    quarantined_readings: int = 0
    next_seq: int = 1  # a floor for the next sequence number (past anything quarantined)


@dataclass(slots=True)
class _Segment:
    path: Path
    first: int
    last: int  # last sequence number written (first - 1 while empty)
    size: int = 0
    checked: bool = False
    conn: sqlite3.Connection | None = field(default=None, repr=False)

    def files(self) -> list[Path]:
        return [self.path, *(Path(f"{self.path}{s}") for s in ("-wal", "-shm", "-journal"))]

    def measure(self) -> int:
        total = 0
        for f in self.files():
            with contextlib.suppress(FileNotFoundError):
                total += f.stat().st_size
        self.size = total
        return total

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
            self.conn = None


def _segment_name(first: int) -> str:
    return f"seg-{first:016d}.db"


def _connect(path: Path, *, create: bool = False) -> sqlite3.Connection:
    if not create and not path.exists():
        raise sqlite3.DatabaseError(f"{path.name} is missing")
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    if create:  # the segment being written; a closed one is in rollback mode (needs no -shm)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(_SCHEMA)
    return conn


def _damaged(e: sqlite3.Error) -> bool:
    """Whether an error means the file is damaged, not that the disk is full or busy."""
    text = str(e).lower()
    return not any(w in text for w in ("full", "locked", "busy", "out of memory"))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DurableBuffer:
    """Segmented SQLite buffer; see the module's documentation.

    The synchronous methods (``append``, ``read``, ``stats`` …) are for one thread at a time;
    the agent calls them through ``put``/``read_async``/…, which run them on the buffer's own
    I/O thread. ``ack`` may be called from any thread.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int,
        policy: FullPolicy = "drop_oldest",
        segment_bytes: int | None = None,
    ) -> None:
        if policy not in ("drop_oldest", "stop_reading"):
            raise ValueError(f"unknown full policy {policy!r}: use drop_oldest or stop_reading")
        self.dir = Path(directory)
        self.max_bytes = int(max_bytes)
        self.policy: FullPolicy = policy
        # Several segments fit under the cap, so dropping one frees a fraction of it.
        self.segment_bytes = segment_bytes or max(64 * 1024, min(self.max_bytes // 8, 64 << 20))
        self._segments: list[_Segment] = []
        self._active: _Segment | None = None
        self._state = _State()
        self._saved_acked = -1
        self._acked = 0
        self._ack_lock = threading.Lock()
        self._sent = 0  # highest sequence number handed to the forwarder
        self._next_seq = 1
        self._stopped = 0
        self.commits = 0  # transactions written (group commit makes it fewer than puts)
        self.disk_full = 0  # commits refused by a full disk (before max_bytes was reached)
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edge-buffer")
        self._pending: list[tuple[Sequence[EdgeReading], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._appended: asyncio.Event | None = None  # set after each commit (for the forwarder)
        self._lock_file: IO[str] | None = None

    # --- opening and closing -------------------------------------------------------------

    def open(self) -> Self:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.dir / "lock", "a")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise BufferInUse(
                f"another process uses the buffer at {self.dir}: one agent per buffer directory"
            ) from None
        (self.dir / "quarantine").mkdir(exist_ok=True)
        self._load_state()
        self._acked = self._sent = self._state.acked
        for stale in self.dir.glob("*.dropping"):  # counted before a crash, not yet deleted
            stale.unlink()
        for tmp in self.dir.glob("state.json.tmp"):
            tmp.unlink()
        damaged: list[tuple[_Segment, str]] = []
        for path in sorted(self.dir.glob("seg-*.db")):
            try:
                first = int(path.name[4:-3])
            except ValueError:
                self._quarantine_path(path, "not a segment name")
                continue
            seg = _Segment(path, first, first - 1)
            try:
                conn = _connect(path)
                try:
                    lo, hi = conn.execute("SELECT min(seq), max(seq) FROM r").fetchone()
                    try:  # folds in a crashed writer's WAL; later, if the disk is full now
                        conn.execute("PRAGMA journal_mode=DELETE")
                    except sqlite3.OperationalError as e:
                        if _damaged(e):
                            raise
                finally:
                    conn.close()
            except sqlite3.DatabaseError as e:
                if not _damaged(e):
                    raise
                self._segments.append(seg)
                damaged.append((seg, f"cannot open: {e}"))
                continue
            if hi is None:  # created, nothing committed
                for f in seg.files():
                    f.unlink(missing_ok=True)
                continue
            seg.last = hi
            seg.measure()
            if hi <= self._state.acked:  # acknowledged before the crash, not yet deleted
                for f in seg.files():
                    f.unlink(missing_ok=True)
                continue
            self._segments.append(seg)
        for seg, reason in damaged:
            self._quarantine(seg, reason)
        self._saved_acked = self._state.acked
        last = max((s.last for s in self._segments), default=0)
        self._next_seq = max(last + 1, self._state.acked + 1, self._state.next_seq)
        return self

    def close(self) -> None:
        if self._segments or self._state.acked != self._acked:
            with contextlib.suppress(OSError):
                self.save_position()
        self._roll()
        for seg in self._segments:
            seg.close()
        self._io.shutdown(wait=True)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None

    # --- writing ---------------------------------------------------------------------------

    async def put(self, readings: Sequence[EdgeReading]) -> None:
        """``ReadingSink.put``: return once ``readings`` are committed (group commit)."""
        if not readings:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._pending.append((readings, fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        await fut

    async def _write_pending(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            readings = [r for rs, _ in batch for r in rs]
            try:
                await loop.run_in_executor(self._io, self.append, readings)
            except Exception as e:  # BufferStopped, or the disk failed: every waiter hears it
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)
            if self._appended is not None:
                self._appended.set()

    async def settle(self) -> None:
        """Wait until every queued put is committed (or refused), e.g. before stopping."""
        while self._writer is not None and not self._writer.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(self._writer)

    def appended_event(self) -> asyncio.Event:
        """Set after every commit: the forwarder waits on it when it has caught up."""
        if self._appended is None:
            self._appended = asyncio.Event()
        return self._appended

    def append(self, readings: Sequence[EdgeReading]) -> None:
        """Commit ``readings`` durably (one transaction, one fsync), or raise ``BufferStopped``."""
        rows = []
        estimate = 0
        seq = self._next_seq
        for r in readings:
            v = orjson.dumps(dict(r.values))
            rows.append((seq, r.device, r.ts_us, v))
            estimate += len(v) + len(r.device) + _ROW_OVERHEAD
            seq += 1
        self._collect()
        if self.bytes() + estimate > self.max_bytes:
            self._make_room(estimate)
        while True:
            try:
                seg = self._writable()
                self._commit(seg, rows)
                break
            except sqlite3.OperationalError as e:
                if "full" not in str(e):  # SQLITE_FULL: "database or disk is full"
                    raise
                # The disk filled before max_bytes did: the same policy, for the same reason.
                self.disk_full += 1
                if self.policy == "stop_reading" or not self._drop_one():
                    self._stopped += 1
                    raise BufferStopped(f"disk full under {self.dir}: {e}") from e
        self._next_seq = seq
        seg.last = seq - 1
        if seg.first == seg.last - len(rows) + 1:  # its first commit: make the file's name durable
            _fsync_dir(self.dir)
        if seg.measure() >= self.segment_bytes:
            self._roll()

    def _writable(self) -> _Segment:
        if self._active is None:
            path = self.dir / _segment_name(self._next_seq)
            seg = _Segment(path, self._next_seq, self._next_seq - 1, checked=True)
            try:
                seg.conn = _connect(path, create=True)
            except sqlite3.Error:
                seg.close()  # a file without its table would look damaged at the next open
                for f in seg.files():
                    f.unlink(missing_ok=True)
                raise
            self._segments.append(seg)
            self._active = seg
        return self._active

    def _commit(self, seg: _Segment, rows: list[tuple[int, str, int, bytes]]) -> None:
        assert seg.conn is not None
        try:
            seg.conn.execute("BEGIN")
            seg.conn.executemany("INSERT INTO r VALUES (?, ?, ?, ?)", rows)
            seg.conn.execute("COMMIT")
            self.commits += 1
        except sqlite3.DatabaseError:
            with contextlib.suppress(sqlite3.Error):
                seg.conn.execute("ROLLBACK")
            raise

    def _roll(self) -> None:
        seg = self._active
        if seg is None:
            return
        self._active = None
        if seg.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                # Closed segments are only read: rollback mode needs no -wal/-shm files to read
                # (so a full disk does not stop forwarding).
                seg.conn.execute("PRAGMA journal_mode=DELETE")
        seg.close()
        seg.measure()

    def _make_room(self, needed: int) -> None:
        if self.policy == "stop_reading":
            self._stopped += 1
            raise BufferStopped(
                f"buffer full ({self.bytes()} of {self.max_bytes} bytes): stop reading until "
                "the forwarder drains it"
            )
        while self.bytes() + needed > self.max_bytes:
            if not self._drop_one():
                return  # everything left is in flight: it goes over the cap until acked

    def _drop_one(self) -> bool:
        """Drop the oldest segment none of whose readings is in flight (they are counted once,
        as delivered); False if there is none."""
        victim = next(
            (s for s in self._segments if s.first > self._sent and s.last >= s.first), None
        )
        if victim is None:
            return False
        if victim is self._active:
            self._roll()
        self._drop(victim)
        return True

    def _drop(self, seg: _Segment) -> None:
        seg.close()
        unsent = seg.last - max(seg.first, self._acked + 1) + 1
        moved = []
        for f in seg.files():
            if f.exists():
                target = Path(f"{f}.dropping")
                f.rename(target)
                moved.append(target)
        self._segments.remove(seg)
        self._state.dropped += max(0, unsent)
        try:
            self._write_state()
        except OSError:  # the disk is full: make room first, then save the count
            for f in moved:
                f.unlink(missing_ok=True)
            self._write_state()
        for f in moved:
            f.unlink(missing_ok=True)
        log.warning("buffer full: dropped %d unsent readings (%s)", unsent, seg.path.name)

    # --- reading and acknowledging ---------------------------------------------------------

    def read(self, after: int, max_bytes: int, max_rows: int = 100_000) -> list[Row]:
        """Readings with a sequence number above ``after``, in order, up to about ``max_bytes``
        of values and device ids. A damaged segment met on the way is quarantined and skipped."""
        out: list[Row] = []
        budget = max_bytes
        for seg in list(self._segments):
            if seg.last <= after or budget <= 0 or len(out) >= max_rows:
                continue
            got: list[Row] = []
            try:
                conn = self._reader(seg)
                cur = conn.execute(
                    "SELECT seq, dev, ts, v FROM r WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after, max_rows - len(out)),
                )
                while budget > 0:
                    chunk = cur.fetchmany(512)
                    if not chunk:
                        break
                    for seq, dev, ts, v in chunk:
                        got.append(Row(seq, dev, ts, v))
                        budget -= len(v) + len(dev) + _ROW_OVERHEAD
                        if budget <= 0:
                            break
                cur.close()
            except sqlite3.DatabaseError as e:
                if not _damaged(e):
                    log.warning("cannot read %s now: %s", seg.path.name, e)
                    break
                self._quarantine(seg, str(e))
                budget = max_bytes - sum(len(r.values) + len(r.device) + _ROW_OVERHEAD for r in out)
                continue
            out.extend(got)
            if seg is not self._active and got and got[-1].seq >= seg.last:
                seg.close()  # read to its end: the cursor moves on
        if out:
            self._sent = max(self._sent, out[-1].seq)
        return out

    def _reader(self, seg: _Segment) -> sqlite3.Connection:
        if seg.conn is None:
            seg.conn = _connect(seg.path)
        if not seg.checked:
            result = seg.conn.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {result}")
            seg.checked = True
        return seg.conn

    def ack(self, seq: int) -> None:
        """The platform acknowledged every reading up to ``seq`` (callers ack in order)."""
        with self._ack_lock:
            if seq > self._acked:
                self._acked = seq

    @property
    def acked(self) -> int:
        return self._acked

    @property
    def last_seq(self) -> int:
        """The sequence number of the last reading committed."""
        return self._next_seq - 1

    def rewind(self) -> None:
        """Forget what is in flight (a new connection resends from the acknowledged position)."""
        self._sent = self._acked

    def save_position(self) -> None:
        """Persist the acknowledged position and delete fully acknowledged segments."""
        self._collect()
        if self._acked != self._saved_acked:
            try:
                self._write_state()
            except OSError as e:  # a full disk: the position is saved at a later try
                log.warning("cannot save the forwarding position: %s", e)

    def _collect(self) -> None:
        acked = self._acked
        for seg in list(self._segments):
            if seg.last <= acked and seg is not self._active and seg.last >= seg.first:
                # Deleted before the position is saved: a crash then resends from an older
                # position, which finds only the later segments: nothing unacknowledged is lost.
                seg.close()
                for f in seg.files():
                    f.unlink(missing_ok=True)
                self._segments.remove(seg)

    # --- damage ----------------------------------------------------------------------------

    def _quarantine(self, seg: _Segment, reason: str) -> None:
        seg.close()
        if seg is self._active:
            self._active = None
        idx = self._segments.index(seg) if seg in self._segments else -1
        if seg.last >= seg.first:
            end = seg.last
        elif 0 <= idx < len(self._segments) - 1:
            end = self._segments[idx + 1].first - 1
        else:
            end = seg.first - 1  # unknown: the newest segment could not be read at all
        lost = max(0, end - max(seg.first, self._acked + 1) + 1)
        size = seg.measure()
        # A sequence number is never reused, even if the damaged file held more than we know.
        self._state.next_seq = max(self._state.next_seq, self._next_seq, seg.first + size + 1)
        self._next_seq = max(self._next_seq, self._state.next_seq)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for f in seg.files():
            if f.exists():
                f.rename(self.dir / "quarantine" / f"{stamp}-{f.name}")
        if seg in self._segments:
            self._segments.remove(seg)
        self._state.quarantined += 1
        self._state.quarantined_readings += lost
        try:
            self._write_state()
        except OSError as e:  # a full disk: the counts are saved with the next position
            log.warning("cannot save the buffer's state: %s", e)
        log.error(
            "quarantined damaged segment %s (%s): %d unsent readings", seg.path.name, reason, lost
        )

    def _quarantine_path(self, path: Path, reason: str) -> None:
        path.rename(self.dir / "quarantine" / f"{time.strftime('%Y%m%dT%H%M%S')}-{path.name}")
        self._state.quarantined += 1
        self._write_state()
        log.error("quarantined %s: %s", path.name, reason)

    # --- state -----------------------------------------------------------------------------

    def _load_state(self) -> None:
        path = self.dir / "state.json"
        if not path.exists():
            return
        try:
            raw = json.loads(path.read_text())
            self._state = _State(**{k: int(raw[k]) for k in asdict(_State()) if k in raw})
        except (ValueError, TypeError, KeyError) as e:
            # The position is lost: resend everything still buffered (harmless, only slower).
            path.rename(self.dir / "quarantine" / f"{time.strftime('%Y%m%dT%H%M%S')}-state.json")
            self._state = _State()
            self._state.quarantined += 1
            log.error("state.json unreadable (%s): resending every buffered reading", e)

    def _write_state(self) -> None:
        self._state.acked = self._acked
        self._state.next_seq = max(self._state.next_seq, self._next_seq)
        tmp = self.dir / "state.json.tmp"
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(asdict(self._state)))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / "state.json")
        _fsync_dir(self.dir)
        self._saved_acked = self._state.acked

    # --- status ----------------------------------------------------------------------------

    def bytes(self) -> int:
        return sum(s.size for s in self._segments)

    def stats(self) -> BufferStats:
        acked = self._acked
        depth = sum(max(0, s.last - max(s.first, acked + 1) + 1) for s in self._segments)
        age = None
        for seg in self._segments:
            if seg.last <= acked:
                continue
            try:
                row = (
                    self._reader(seg)
                    .execute("SELECT ts FROM r WHERE seq > ? ORDER BY seq LIMIT 1", (acked,))
                    .fetchone()
                )
            except sqlite3.DatabaseError as e:
                if not _damaged(e):
                    break
                self._quarantine(seg, str(e))
                return self.stats()
            if row is not None:
                age = max(0.0, round(time.time() - row[0] / 1e6, 3))
                break
        return BufferStats(
            depth=depth,
            bytes=self.bytes(),
            oldest_unsent_age_s=age,
            dropped=self._state.dropped,
            quarantined=self._state.quarantined,
            quarantined_readings=self._state.quarantined_readings,
            segments=len(self._segments),
            acked=acked,
            stopped=self._stopped,
        )

    # --- the same, on the I/O thread -------------------------------------------------------

    async def read_async(self, after: int, max_bytes: int) -> list[Row]:
        return await asyncio.get_running_loop().run_in_executor(
            self._io, self.read, after, max_bytes
        )

    async def save_position_async(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._io, self.save_position)

    async def stats_async(self) -> BufferStats:
        return await asyncio.get_running_loop().run_in_executor(self._io, self.stats)


def inspect(directory: str | Path) -> BufferStats:
    """The buffer's counters read from its files without changing anything (``atoll edge
    status``, also while an agent runs)."""
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"no buffer at {d}")
    state = _State()
    with contextlib.suppress(OSError, ValueError, TypeError):
        raw = json.loads((d / "state.json").read_text())
        state = _State(**{k: int(raw[k]) for k in asdict(_State()) if k in raw})
    depth = size = segments = 0
    oldest: int | None = None
    for path in sorted(d.glob("seg-*.db")):
        seg = _Segment(path, 0, 0)
        size += seg.measure()
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                n, first_ts = conn.execute(
                    "SELECT count(*), (SELECT ts FROM r WHERE seq > ?1 ORDER BY seq LIMIT 1) "
                    "FROM r WHERE seq > ?1",
                    (state.acked,),
                ).fetchone()
            finally:
                conn.close()
        except sqlite3.DatabaseError:
            continue
        segments += 1
        depth += n
        if oldest is None and first_ts is not None:
            oldest = first_ts
    return BufferStats(
        depth=depth,
        bytes=size,
        oldest_unsent_age_s=None if oldest is None else round(time.time() - oldest / 1e6, 3),
        dropped=state.dropped,
        quarantined=state.quarantined,
        quarantined_readings=state.quarantined_readings,
        segments=segments,
        acked=state.acked,
        stopped=0,
    )
