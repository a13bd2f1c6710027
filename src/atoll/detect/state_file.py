"""The detection service's state file, written in pieces and only re-encoding what changed.

The file is one msgpack map ``{"format": F, "series": [row, ...], "models": [...], "bindings":
[...], "fleets": [...]}`` (``DetectionService._load`` reads it whole). A row holds one series'
detector state, tens of kilobytes for the default detector, so 40,000 series make a file of
gigabytes. ``StateFile`` writes it without ever holding it in memory: the caller hands it rows
already encoded (a few hundred at a time, so the encoding never holds the interpreter for long), or
asks it to copy rows that did not change from the file it wrote last time (byte ranges, read and
written by the kernel). It remembers where each row went.

Written to a temporary file, synced, then renamed over the old one: a crash mid-write keeps the
previous file. Rows are only copied from a file this object wrote and that is still the one at
``path`` (same inode, size and mtime); otherwise every row must be encoded again.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import BinaryIO

import msgspec

_COPY_CHUNK = 8 << 20
_tmp_names = itertools.count()


def _array32(n: int) -> bytes:
    # msgpack "array 32": valid for any length, so the header can be written before the rows.
    return b"\xdd" + n.to_bytes(4, "big")


def _key(name: str) -> bytes:
    return msgspec.msgpack.encode(name)


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._rows: dict[Hashable, tuple[int, int]] = {}
        self._stamp: tuple[int, int, int] | None = None

    def _current_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def reusable(self) -> bool:
        """Whether rows can be copied from the file at ``path`` (it is the one written last)."""
        return self._stamp is not None and self._stamp == self._current_stamp()

    def saved(self, key: Hashable) -> bool:
        return key in self._rows

    def begin(self, fmt: int, rows: int, tail: Sequence[str]) -> Writing:
        """Start a new file of ``rows`` series rows, then the entries named ``tail`` (blocking
        I/O: call it from a thread other than the event loop's)."""
        return Writing(self, fmt, rows, tuple(tail))


class Writing:
    """One file being written; ``encoded`` and ``copied`` add rows in order, then ``finish``
    (or ``abort``). Blocking I/O: call from a thread other than the event loop's."""

    def __init__(self, owner: StateFile, fmt: int, rows: int, tail: tuple[str, ...]) -> None:
        if len(tail) > 13:
            raise ValueError("at most 13 entries after the series")
        self.owner = owner
        self.tail = tail
        self.rows_left = rows
        path = owner.path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.with_name(f"{path.name}.{os.getpid()}-{next(_tmp_names)}.tmp")
        self._old: BinaryIO | None = None
        if owner.reusable():
            try:
                self._old = open(path, "rb")  # noqa: SIM115 - closed by finish/abort
            except OSError:
                self._old = None
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._f: BinaryIO = os.fdopen(fd, "wb", buffering=0)
        self._pos = 0
        self._new: dict[Hashable, tuple[int, int]] = {}
        self.copied_rows = 0
        self.copied_bytes = 0
        self._write(bytes([0x80 | (2 + len(tail))]) + _key("format") + msgspec.msgpack.encode(fmt))
        self._write(_key("series") + _array32(rows))

    def _write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = self._f.write(view)
            view = view[n:]
        self._pos += len(data)

    def can_copy(self, key: Hashable) -> bool:
        return self._old is not None and key in self.owner._rows

    def encoded(self, keys: Sequence[Hashable], rows: Sequence[bytes]) -> None:
        """Rows encoded by the caller (``msgspec.msgpack.encode(row)`` each), in file order."""
        for key, row in zip(keys, rows, strict=True):
            self._new[key] = (self._pos, len(row))
            self._write(row)
        self.rows_left -= len(rows)

    def copied(self, keys: Sequence[Hashable]) -> None:
        """Rows unchanged since the last file: copied from it (runs of adjacent rows at once)."""
        assert self._old is not None
        old = self.owner._rows
        run_start = run_end = -1
        run_pos = self._pos  # where the current run starts in the new file
        for key in keys:
            off, n = old[key]
            if off != run_end:
                self._copy(run_start, run_end)
                run_start = run_end = off
                run_pos = self._pos
            self._new[key] = (run_pos + off - run_start, n)
            run_end = off + n
        self._copy(run_start, run_end)
        self.rows_left -= len(keys)
        self.copied_rows += len(keys)

    def _copy(self, start: int, end: int) -> None:
        if start < 0 or end <= start:
            return
        assert self._old is not None
        self._old.seek(start)
        left = end - start
        while left:
            chunk = self._old.read(min(left, _COPY_CHUNK))
            if not chunk:
                raise OSError(f"{self.owner.path} is shorter than the rows it held")
            self._write(chunk)
            left -= len(chunk)
        self.copied_bytes += end - start

    def finish(self, tail: dict[str, object]) -> None:
        """Write the map's other entries (those named at ``begin``), sync, and put the file in
        place."""
        if self.rows_left:
            raise ValueError(f"{self.rows_left} series rows were announced but not written")
        if tuple(tail) != self.tail:
            raise ValueError(f"entries {tuple(tail)} after the series, announced {self.tail}")
        for name, value in tail.items():
            self._write(_key(name) + msgspec.msgpack.encode(value))
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        self._close_old()
        os.replace(self.tmp, self.owner.path)
        self.owner._rows = self._new
        self.owner._stamp = self.owner._current_stamp()

    def abort(self) -> None:
        self._f.close()
        self._close_old()
        self.tmp.unlink(missing_ok=True)

    def _close_old(self) -> None:
        if self._old is not None:
            self._old.close()
            self._old = None
