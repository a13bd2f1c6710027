import math

import numpy as np
import pytest

from atoll.core.errors import InvalidInput, PayloadTooLarge
from atoll.ingest.validate import (
    Limits,
    MetricSpec,
    TelemetrySchema,
    merge,
    parse_telemetry,
)

SCHEMA = TelemetrySchema.of(
    [
        MetricSpec("temperature", min=-40, max=85),
        MetricSpec("count", type="int"),
        MetricSpec("on", type="bool"),
    ]
)
NOW = 1_795_428_000_000_000  # 2026-11-23T10:00:00Z in µs


def parse(body, **kw):
    kw.setdefault("schema", SCHEMA)
    return parse_telemetry(body, project="p", device="d", now_us=NOW, **kw)


def reason(body, **kw):
    with pytest.raises(InvalidInput) as e:
        parse(body, **kw)
    return e.value.reason, e.value.message


def test_single_reading_without_ts_uses_server_time():
    b = parse(b'{"values": {"temperature": 21.5, "on": true}}').batch()
    assert b.ts.tolist() == [NOW, NOW]
    assert b.value.tolist() == [21.5, 1.0]
    assert [k.metric for k in b.keys] == ["temperature", "on"]


def test_server_stamps_never_repeat_so_no_reading_overwrites_another():
    # The store keeps one value per (series, ts): readings stamped by the server must differ.
    body = b'[{"values": {"temperature": 1}}, {"values": {"temperature": 2}},'
    body += b' {"values": {"temperature": 3}}]'
    first = parse_telemetry(body, project="p", device="d", schema=SCHEMA).batch()
    second = parse_telemetry(body, project="p", device="d", schema=SCHEMA).batch()
    ts = first.ts.tolist() + second.ts.tolist()
    assert ts == sorted(ts) and len(set(ts)) == 6
    assert first.value.tolist() == [1.0, 2.0, 3.0]
    # Readings without ts in a batch take consecutive microseconds, in batch order.
    assert parse(body).batch().ts.tolist() == [NOW, NOW + 1, NOW + 2]


def test_batch_with_iso_and_epoch_ms_timestamps():
    body = (
        b'[{"ts": "2026-11-23T09:00:00Z", "values": {"temperature": 1}},'
        b' {"ts": 1795424400000, "values": {"temperature": 2, "count": 3}},'
        b' {"ts": "2026-11-23T11:00:00+02:00", "values": {"count": 4.0}}]'
    )
    b = parse(body).batch()
    assert b.ts.tolist() == [1795424400000000, 1795424400000000, 1795424400000000, 1795424400000000]
    assert b.value.tolist() == [1, 2, 3, 4]
    assert b.key_index.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize(
    "body, want",
    [
        (b'{"values": {"temperature": 1', "malformed_json"),
        (b"not json", "malformed_json"),
        (b'{"values": {"temperature": NaN}}', "not_finite"),
        (b'{"values": {"temperature": -Infinity}}', "not_finite"),
        (b'{"values": {"temperature": 1e999}}', "not_finite"),
        (b'{"values": {"temperature": "21.5"}}', "wrong_type"),
        (b'{"values": {"temperature": null}}', "wrong_type"),
        (b'{"values": {"temperature": true}}', "wrong_type"),
        (b'{"values": {"count": 1.5}}', "wrong_type"),
        (b'{"values": {"on": 1}}', "wrong_type"),
        (b'{"values": [1, 2]}', "wrong_type"),
        (b'{"temperature": 1}', "wrong_type"),
        (b"42", "wrong_type"),
        (b'{"values": {"humidity": 1}}', "unknown_series"),
        (b'{"ts": "2030-01-01T00:00:00Z", "values": {"temperature": 1}}', "future_timestamp"),
        (b'{"ts": 1795428000, "values": {"temperature": 1}}', "bad_timestamp"),
        (b'{"ts": "yesterday", "values": {"temperature": 1}}', "bad_timestamp"),
        (b'{"values": {}}', "empty"),
        (b"[]", "empty"),
    ],
)
def test_bad_input_has_precise_reason(body, want):
    got, message = reason(body)
    assert got == want, message
    assert message


def test_unknown_series_names_the_metric_and_lists_declared_ones():
    with pytest.raises(InvalidInput) as e:
        parse(b'{"values": {"humidity": 1}}')
    assert "humidity" in e.value.message
    assert "temperature" in e.value.hint


def test_wrong_type_names_the_metric():
    _, message = reason(b'[{"values": {"temperature": 1}}, {"values": {"temperature": "x"}}]')
    assert "$[1].values.temperature" in message and "string" in message


def test_small_clock_skew_is_accepted():
    ts_ms = NOW // 1000 + 60_000
    b = parse(b'{"ts": %d, "values": {"temperature": 1}}' % ts_ms).batch()
    assert b.ts.tolist() == [ts_ms * 1000]


def test_oversize_by_bytes_and_points():
    limits = Limits(max_bytes=100, max_points=3)
    with pytest.raises(PayloadTooLarge):
        parse(b'{"values": {"temperature": 1}}' + b" " * 100, limits=limits)
    body = b"[" + b",".join([b'{"values": {"temperature": 1}}'] * 4) + b"]"
    with pytest.raises(PayloadTooLarge):
        parse(body, limits=Limits(max_points=3))
    assert len(parse(body, limits=Limits(max_points=4))) == 4


def test_out_of_range_is_flagged_by_default_and_rejected_on_request():
    p = parse(b'{"values": {"temperature": 900, "count": 1}}')
    assert p.out_of_range == 1 and p.out_of_range_metrics == ("temperature",)
    assert p.batch().value.tolist() == [900, 1]
    got, _ = reason(b'{"values": {"temperature": 900}}', limits=Limits(out_of_range="reject"))
    assert got == "out_of_range"


def test_open_schema_accepts_any_sane_metric():
    p = parse(b'{"values": {"x.y-1": 2, "b": false}}', schema=TelemetrySchema())
    assert p.batch().value.tolist() == [2, 0]
    got, _ = reason(b'{"values": {"bad name!": 2}}', schema=TelemetrySchema())
    assert got == "unknown_series"


def test_merge_dedups_keys_across_messages():
    a = parse(b'{"values": {"temperature": 1, "count": 2}}')
    b = parse_telemetry(
        b'{"values": {"count": 3}}', project="p", device="e", schema=SCHEMA, now_us=NOW
    )
    c = parse(b'{"values": {"count": 4}}')
    m = merge([a, b, c])
    assert len(m.keys) == 3
    got = {k: v.tolist() for k, (t, v) in m.split().items()}
    assert got[("p", "d", "count")] == [2, 4]
    assert got[("p", "e", "count")] == [3]
    assert not np.isnan(m.value).any() and all(math.isfinite(v) for v in m.value)


def test_merge_keeps_every_point_with_its_series_in_order():
    bodies = [
        (b'{"ts": %d, "values": {"temperature": %d}}' % (NOW // 1000 - i, i), "d") for i in range(5)
    ]
    bodies += [
        (b'[{"values": {"count": 7, "temperature": 8}}, {"values": {"count": 9}}]', "d"),
        (b'{"values": {"count": 1}}', "e"),
        (b'{"values": {"temperature": 2}}', "d"),
    ]
    msgs = [parse_telemetry(b, project="p", device=d, schema=SCHEMA, now_us=NOW) for b, d in bodies]
    m = merge(msgs)
    want = [
        (p.device, p.metrics[k], t, v)
        for p in msgs
        for k, t, v in zip(p.key_index, p.ts, p.value, strict=True)
    ]
    got = [
        (m.keys[k].device, m.keys[k].metric, t, v)
        for k, t, v in zip(m.key_index.tolist(), m.ts.tolist(), m.value.tolist(), strict=True)
    ]
    assert got == want
    assert len(m.keys) == len(set(m.keys)) == 3


# epoch ms, 1000 s before NOW: the shape the single-reading fast path takes
TS = b'"ts": 1795427000000'


@pytest.mark.parametrize(
    "values",
    [
        b'{"temperature": 21.5}',
        b'{"temperature": 21}',
        b'{"temperature": 99.5}',  # flagged
        b'{"temperature": -40, "count": 3}',
        b'{"count": 3.0}',
        b'{"on": true}',
        b'{"temperature": 1e308}',
    ],
)
def test_a_single_reading_parses_as_the_same_reading_in_a_batch(values):
    one = b"{" + TS + b', "values": ' + values + b"}"
    assert parse(one) == parse(b"[" + one + b"]")
    assert parse(one, schema=TelemetrySchema()) == parse(
        b"[" + one + b"]", schema=TelemetrySchema()
    )


@pytest.mark.parametrize(
    "values, want",
    [
        (b'{"temperature": 1e999}', "not_finite"),
        (b'{"temperature": -1e999}', "not_finite"),
        (b'{"temperature": true}', "wrong_type"),
        (b'{"count": 1.5}', "wrong_type"),
        (b'{"humidity": 1}', "unknown_series"),
        (b"{}", "empty"),
    ],
)
def test_a_single_reading_with_ts_is_refused_with_the_same_reason(values, want):
    assert reason(b"{" + TS + b', "values": ' + values + b"}")[0] == want
    assert reason(b'{"ts": 1895427000000, "values": {"temperature": 1}}')[0] == "future_timestamp"
    assert (
        reason(
            b"{" + TS + b', "values": {"temperature": 100}}', limits=Limits(out_of_range="reject")
        )[0]
        == "out_of_range"
    )


MIN_TS_MS = 100_000_000_000  # 1973-03-03T09:46:40Z: the first accepted timestamp, in both formats


@pytest.mark.parametrize(
    "ts",
    [
        b"%d" % MIN_TS_MS,
        b'"1973-03-03T09:46:40Z"',
        b'"1973-03-03T11:46:40+02:00"',
        b"%d.0" % MIN_TS_MS,
    ],
)
def test_epoch_ms_and_iso_timestamps_start_at_the_same_instant(ts):
    assert parse(b'{"ts": %s, "values": {"temperature": 1}}' % ts).ts == [MIN_TS_MS * 1000]


@pytest.mark.parametrize(
    "ts",
    [
        b"%d" % (MIN_TS_MS - 1),
        b'"1973-03-03T09:46:39.999Z"',
        b'"0001-01-01T00:00:00Z"',
        b'"1970-01-01T00:00:00Z"',
        b"-1e308",
    ],
)
def test_epoch_ms_and_iso_timestamps_before_the_range_are_refused(ts):
    assert reason(b'{"ts": %s, "values": {"temperature": 1}}' % ts)[0] == "bad_timestamp"


@pytest.mark.parametrize(
    "ts", [b"1e308", b"1" * 401, b"9223372036854775807", b'"9999-12-31T23:59:59Z"']
)
def test_timestamps_after_the_range_are_refused_as_future(ts):
    got, message = reason(b'{"ts": %s, "values": {"temperature": 1}}' % ts)
    assert got == "future_timestamp" and "s in the future" in message


def test_an_iso_timestamp_without_offset_is_refused():
    got, message = reason(b'{"ts": "2026-11-23T10:00:00", "values": {"temperature": 1}}')
    assert got == "bad_timestamp" and "offset" in message


@pytest.mark.parametrize("schema", [SCHEMA, TelemetrySchema()], ids=["int metric", "no type"])
def test_integers_are_exact_up_to_2_to_the_53_and_refused_beyond(schema):
    for n in (2**53, -(2**53), 2**53 - 1, 123456789012345678 // 10**3):
        assert parse(b'{"values": {"count": %d}}' % n, schema=schema).value == [n]
    for n in (b"%d" % (2**53 + 1), b"%d" % -(2**53 + 1), b"1" * 401):
        got, message = reason(b'{"values": {"count": %s}}' % n, schema=schema)
        assert got == "integer_too_large" and "2^53" in message
    assert reason(b'{"values": {"count": 1e300}}')[0] == "integer_too_large"


def test_a_float_metric_rounds_large_integers_like_any_number_and_refuses_overflow():
    assert parse(b'{"values": {"temperature": 9007199254740993}}').value == [2.0**53]
    assert reason(b'{"values": {"temperature": %s}}' % (b"1" * 401))[0] == "not_finite"
    assert (
        reason(b'{"ts": 1795427000000, "values": {"temperature": %s}}' % (b"1" * 401))[0]
        == "not_finite"
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"values": {"t\xffx": 1}}',
        b'{"values": {"t": 1, "\xff": 2}}',
        b'{"values": {"t": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}",
    ],
)
def test_invalid_utf8_and_deep_nesting_are_malformed_json(body):
    assert reason(body, schema=TelemetrySchema())[0] == "malformed_json"


def test_a_refusal_carries_its_reason_in_the_error_body():
    with pytest.raises(InvalidInput) as e:
        parse(b'{"values": {"humidity": 1}}')
    assert e.value.to_dict()["reason"] == "unknown_series"
    with pytest.raises(PayloadTooLarge) as e:
        parse(b" " * 300_000)
    assert e.value.to_dict()["reason"] == "too_large"


def test_server_clocks_in_different_slots_never_share_a_microsecond():
    from atoll.ingest.validate import ServerClock
    from atoll.store import StampSlot

    a, b = ServerClock(lambda: StampSlot(0, 100)), ServerClock(lambda: StampSlot(1, 100))
    stamps = {0: [], 1: []}
    for _ in range(200):
        for node, clock in enumerate((a, b)):
            first, step = clock.reserve(("p", "d"), 5)
            stamps[node] += [first + i * step for i in range(5)]
    for node, ts in stamps.items():
        assert ts == sorted(ts) and len(set(ts)) == len(ts)  # strictly increasing per node
        assert {t % 100 for t in ts} == {node}
    assert not set(stamps[0]) & set(stamps[1])


def test_a_server_clock_forgetting_idle_devices_still_never_repeats_a_stamp():
    from atoll.ingest.validate import ServerClock

    clock = ServerClock()
    seen: dict[str, list[int]] = {}
    for i in range(3 * ServerClock.SWEEP_AT):  # sweeps run in between
        device = f"d{i % 50}" if i % 2 else f"once{i}"
        seen.setdefault(device, []).append(clock.reserve(("p", device), 1)[0])
    for ts in seen.values():
        assert ts == sorted(ts) and len(set(ts)) == len(ts)
    assert len(clock._last) <= 2 * ServerClock.SWEEP_AT


def test_a_batch_without_ts_may_be_stamped_ahead_of_the_clock_but_is_never_refused():
    # 5,000 readings of one device, 100 µs apart in slot 0 of 100: half a second of stamps.
    from atoll.ingest.validate import ServerClock
    from atoll.store import StampSlot

    clock = ServerClock(lambda: StampSlot(0, 100))
    body = b"[" + b",".join([b'{"values": {"temperature": 1}}'] * 5_000) + b"]"
    limits = Limits(max_future_skew_s=0.2)
    for _ in range(2):
        p = parse_telemetry(
            body, project="p", device="d", schema=SCHEMA, limits=limits, stamps=clock
        )
        assert len(set(p.ts)) == 5_000 and all(t % 100 == 0 for t in p.ts)
