"""The durable buffer: on disk before put returns, resumes after a crash, bounded, damage-proof."""

from __future__ import annotations

import asyncio
import os
import subprocess

import pytest

from atoll.edge.buffer import BufferInUse, DurableBuffer, inspect
from atoll.edge.port import BufferStopped, EdgeReading

T0 = 1_795_428_000_000_000


def readings(n: int, start: int = 0, devices: int = 3) -> list[EdgeReading]:
    return [
        EdgeReading(f"dev-{i % devices}", T0 + (start + i) * 1000, {"x": float(start + i)})
        for i in range(n)
    ]


def drain(b: DurableBuffer, after: int = 0) -> list:
    out = []
    while rows := b.read(after, max_bytes=64 * 1024):
        out.extend(rows)
        after = rows[-1].seq
    return out


def test_put_read_ack_and_resume_after_reopen(tmp_path):
    b = DurableBuffer(tmp_path, max_bytes=10 << 20).open()
    b.append(readings(100))
    rows = drain(b)
    assert [r.seq for r in rows] == list(range(1, 101))
    assert [r.ts_us for r in rows] == [T0 + i * 1000 for i in range(100)]
    b.ack(40)
    b.save_position()
    b.ack(60)  # acknowledged but not saved: lost with a crash, so resent (harmless)
    # a crash: no close(), no saved position; the process's files and lock go with it
    for seg in b._segments:
        seg.close()
    b._lock_file.close()
    b2 = DurableBuffer(tmp_path, max_bytes=10 << 20).open()
    assert b2.acked == 40
    assert [r.seq for r in drain(b2, b2.acked)] == list(range(41, 101))
    assert b2.stats().depth == 60
    b2.append(readings(5, start=100))  # numbering goes on after what is there
    assert [r.seq for r in drain(b2, 100)] == [101, 102, 103, 104, 105]
    b2.close()


def test_one_process_per_buffer(tmp_path):
    b = DurableBuffer(tmp_path, max_bytes=10 << 20).open()
    with pytest.raises(BufferInUse, match="another process uses the buffer"):
        DurableBuffer(tmp_path, max_bytes=10 << 20).open()
    b.close()
    DurableBuffer(tmp_path, max_bytes=10 << 20).open().close()


def test_group_commit_puts_share_transactions(tmp_path):
    async def main():
        b = DurableBuffer(tmp_path, max_bytes=10 << 20).open()
        await asyncio.gather(*(b.put(readings(1, start=i)) for i in range(300)))
        rows = drain(b)
        b.close()
        return b.commits, rows

    commits, rows = asyncio.run(main())
    assert len(rows) == 300
    assert sorted(r.ts_us for r in rows) == [T0 + i * 1000 for i in range(300)]
    assert commits < 300 / 5, f"{commits} transactions for 300 puts: no group commit"


def test_acknowledged_segments_are_deleted(tmp_path):
    b = DurableBuffer(tmp_path, max_bytes=10 << 20, segment_bytes=64 * 1024).open()
    for k in range(20):
        b.append(readings(200, start=k * 200))
    assert b.stats().segments > 3
    rows = drain(b)
    b.ack(rows[-1].seq)
    b.save_position()
    st = b.stats()
    assert st.depth == 0 and st.segments <= 1
    b.close()


def test_drop_oldest_counts_what_it_drops(tmp_path):
    b = DurableBuffer(tmp_path, max_bytes=300_000, segment_bytes=40_000).open()
    total = 0
    for k in range(60):
        b.append(readings(200, start=k * 200))
        total += 200
        assert b.bytes() <= 300_000 + 40_000
    rows = drain(b)
    st = b.stats()
    assert st.dropped > 0
    assert len(rows) + st.dropped == total
    # what is left is the newest readings, in order, without gaps inside a segment
    assert rows[-1].ts_us == T0 + (total - 1) * 1000
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    b.close()
    assert inspect(tmp_path).dropped == st.dropped


def test_drop_oldest_spares_readings_in_flight(tmp_path):
    b = DurableBuffer(tmp_path, max_bytes=200_000, segment_bytes=40_000).open()
    b.append(readings(400))
    in_flight = b.read(0, max_bytes=10_000)  # sent, not yet acknowledged
    for k in range(1, 40):
        b.append(readings(400, start=k * 400))
    assert any(s.first <= in_flight[-1].seq for s in b._segments)
    b.ack(in_flight[-1].seq)
    rest = drain(b, in_flight[-1].seq)
    assert len(in_flight) + len(rest) + b.stats().dropped == 40 * 400
    b.close()


def test_stop_reading_refuses_until_drained(tmp_path):
    b = DurableBuffer(tmp_path, max_bytes=150_000, segment_bytes=30_000, policy="stop_reading")
    b.open()
    written = 0
    with pytest.raises(BufferStopped):
        for k in range(100):
            b.append(readings(200, start=k * 200))
            written += 200
    assert b.stats().stopped == 1 and b.stats().dropped == 0
    rows = drain(b)
    assert len(rows) == written
    b.ack(rows[-1].seq)
    b.save_position()
    b.append(readings(200, start=written))  # room again
    assert len(drain(b, rows[-1].seq)) == 200
    b.close()


def test_put_raises_buffer_stopped_to_every_waiter(tmp_path):
    async def main():
        b = DurableBuffer(tmp_path, max_bytes=70_000, segment_bytes=20_000, policy="stop_reading")
        b.open()
        results = []
        for k in range(50):
            res = await asyncio.gather(
                b.put(readings(100, start=k * 200)),
                b.put(readings(100, start=k * 200 + 100)),
                return_exceptions=True,
            )
            results.append(res)
        b.close()
        return results

    results = asyncio.run(main())
    assert any(isinstance(x, BufferStopped) for r in results for x in r)
    assert results[0] == [None, None]


def _corrupt(path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(os.urandom(4096))


def test_damaged_segment_is_quarantined_and_counted(tmp_path):
    b = DurableBuffer(tmp_path, max_bytes=10 << 20, segment_bytes=64 * 1024).open()
    for k in range(30):
        b.append(readings(200, start=k * 200))
    b.close()
    segs = sorted(tmp_path.glob("seg-*.db"))
    assert len(segs) >= 4
    _corrupt(segs[1], 4096 * 3)  # a b-tree page inside
    segs[2].write_bytes(os.urandom(8192))  # not a database at all

    b = DurableBuffer(tmp_path, max_bytes=10 << 20, segment_bytes=64 * 1024).open()
    rows = drain(b)
    st = b.stats()
    assert st.quarantined == 2
    assert len(rows) + st.quarantined_readings == 30 * 200
    assert len(list((tmp_path / "quarantine").glob("*seg-*.db"))) == 2
    seqs = [r.seq for r in rows]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # new readings get numbers never used before, and the next open is clean
    b.append(readings(10, start=10_000))
    assert len(drain(b, seqs[-1])) == 10
    b.close()
    b = DurableBuffer(tmp_path, max_bytes=10 << 20).open()
    assert b.stats().quarantined == 2
    b.close()


def test_unreadable_state_file_resends_everything(tmp_path):
    b = DurableBuffer(tmp_path, max_bytes=10 << 20).open()
    b.append(readings(50))
    b.ack(20)
    b.close()
    (tmp_path / "state.json").write_text("{not json")
    b = DurableBuffer(tmp_path, max_bytes=10 << 20).open()
    assert b.acked == 0 and len(drain(b)) == 50 and b.stats().quarantined == 1
    b.close()


def test_inspect_reads_without_changing(tmp_path):
    b = DurableBuffer(tmp_path, max_bytes=10 << 20).open()
    b.append(readings(30))
    b.ack(10)
    b.save_position()
    st = inspect(tmp_path)
    assert st.depth == 20 and st.acked == 10 and st.oldest_unsent_age_s is not None
    b.close()
    with pytest.raises(FileNotFoundError):
        inspect(tmp_path / "nope")


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs: the disk fills before the buffer's max_bytes does."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("policy", ["drop_oldest", "stop_reading"])
def test_full_disk_follows_the_policy(small_disk, policy):
    b = DurableBuffer(small_disk, max_bytes=1 << 30, segment_bytes=256 * 1024, policy=policy)
    b.open()
    accepted = stopped = 0
    for k in range(200):  # ~10 MiB of readings into 3 MiB of disk
        try:
            b.append(readings(500, start=k * 500))
            accepted += 500
        except BufferStopped:
            stopped += 1
    assert b.disk_full > 0
    rows = drain(b)
    st = b.stats()
    if policy == "drop_oldest":
        assert st.dropped > 0
        assert len(rows) + st.dropped == accepted
    else:
        assert stopped > 0 and st.dropped == 0 and len(rows) == accepted
        b.ack(rows[-1].seq)
        b.save_position()  # acknowledged segments go: room again
        b.append(readings(500, start=10**6))
    b.close()
    b = DurableBuffer(small_disk, max_bytes=1 << 30, policy=policy).open()  # and it reopens
    assert b.stats().quarantined == 0
    b.close()
