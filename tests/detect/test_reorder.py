"""The reorder buffer puts late readings back in time order within the allowed lateness."""

import numpy as np

from atoll.core.points import SeriesKey
from atoll.detect.reorder import ReorderBuffer

K = SeriesKey("p", "d", "temp")
S = 1_000_000


def _unit(*seconds):
    ts = np.asarray([int(s * S) for s in seconds], dtype=np.int64)
    return (K, None, ts, ts.astype(np.float64) / S)


def test_holds_until_newer_readings_pass_the_lateness_then_sorts():
    buf = ReorderBuffer(lateness=2.0)
    buf.add([_unit(10, 12)], now=0.0)
    buf.add([_unit(11)], now=0.1)  # late by one second: still in time
    # 10 is two seconds older than the newest (12): due; 11 and 12 wait.
    [(_, _, ts, _)] = buf.due(now=0.2)
    assert ts.tolist() == [10 * S]
    buf.add([_unit(15)], now=0.3)
    [(_, _, ts, values)] = buf.due(now=0.4)
    assert ts.tolist() == [11 * S, 12 * S] and values.tolist() == [11.0, 12.0]
    assert len(buf) == 1  # 15 waits for what may still come before it


def test_everything_leaves_in_order_after_waiting_the_lateness():
    buf = ReorderBuffer(lateness=10.0)
    buf.add([_unit(5, 3)], now=0.0)
    buf.add([_unit(4)], now=0.5)
    assert buf.due(now=9.9) == []  # none is 10 s older than the newest, none waited 10 s
    (key, _, ts, values), *rest = buf.due(now=10.0)
    assert key == K and not rest
    assert ts.tolist() == [3 * S, 4 * S, 5 * S] and values.tolist() == [3.0, 4.0, 5.0]
    assert len(buf) == 0


def test_rows_restore_round_trip():
    buf = ReorderBuffer(lateness=5.0)
    buf.add([_unit(1, 2)], now=0.0)
    again = ReorderBuffer(lateness=5.0)
    again.restore(buf.rows(), now=0.0)
    [(_, _, ts, _)] = again.due(now=0.0, everything=True)
    assert ts.tolist() == [1 * S, 2 * S]


def test_replay_releases_by_event_time_only():
    buf = ReorderBuffer(lateness=1.0)
    buf.add([_unit(1, 5)], now=0.0)
    [(_, _, ts, _)] = buf.due(now=100.0, waited=False)  # long waited, but replaying
    assert ts.tolist() == [1 * S] and len(buf) == 1


def test_waiting_releases_only_what_waited_and_what_is_older():
    buf = ReorderBuffer(lateness=1.0)
    buf.add([_unit(10)], now=0.0)
    buf.add([_unit(12)], now=0.9)
    [(_, _, ts, _)] = buf.due(now=1.0)  # 10 waited a second; 12 just came
    assert ts.tolist() == [10 * S]
    buf.add([_unit(11.5)], now=1.1)  # late, but within the lateness of 12
    assert buf.due(now=1.2) == []
    [(_, _, ts, _)] = buf.due(now=2.0)
    assert ts.tolist() == [11.5 * S, 12 * S]
