"""Property-based fuzzing of the telemetry validator (issue 9): whatever a device sends, the
validator answers with a ``ParsedTelemetry`` or an ``InvalidInput`` carrying a documented reason,
never another exception; and what it accepts is stored as sent (finite floats, exact integers).

Bounded so the whole module takes a few seconds: no deadline per example (the machine is
shared), a fixed number of examples per property, and no example database to stay repeatable."""

import json
import math
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atoll.core.errors import InvalidInput
from atoll.ingest.validate import (
    DEFAULT_LIMITS,
    Limits,
    MetricSpec,
    ParsedTelemetry,
    TelemetrySchema,
    parse_telemetry,
)

NOW = 1_795_428_000_000_000  # 2026-11-23T10:00:00Z in µs
MIN_TS_MS = 100_000_000_000
# The reason codes docs/DEVICES.md lists for telemetry ("unparseable" is not among them: it
# counts a validator bug, and the validator has none to find here).
REASONS = {
    "malformed_json",
    "wrong_type",
    "not_finite",
    "unknown_series",
    "too_large",
    "future_timestamp",
    "bad_timestamp",
    "out_of_range",
    "empty",
    "integer_too_large",
}
SCHEMAS = [
    TelemetrySchema(),
    TelemetrySchema.of(
        [
            MetricSpec("temperature", min=-40, max=85),
            MetricSpec("count", type="int"),
            MetricSpec("on", type="bool"),
        ]
    ),
]
FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check(
    body: bytes, schema: TelemetrySchema, limits: Limits = DEFAULT_LIMITS
) -> ParsedTelemetry | None:
    """The property every input must satisfy; the parsed message, or None if refused."""
    try:
        parsed = parse_telemetry(
            body, project="p", device="d", schema=schema, limits=limits, now_us=NOW
        )
    except InvalidInput as e:  # TelemetryTooLarge is one too
        assert e.reason in REASONS, (e.reason, e.message)
        assert e.message and e.to_dict()["reason"] == e.reason
        return None
    assert isinstance(parsed, ParsedTelemetry) and len(parsed) > 0
    assert all(math.isfinite(x) for x in parsed.value)
    return parsed


# -- hostile documents ---------------------------------------------------------------------

names = st.one_of(
    st.sampled_from(["temperature", "count", "on", "humidity", "ts", "values", ""]),
    st.text(max_size=70),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: 401-digit integers included
    st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 2**63, 2**64, 10**400, -(10**400)]),
    st.floats(),  # NaN and ±inf too: json.dumps writes them as NaN/Infinity
    st.sampled_from([1e308, -1e308, 5e-324, 1e300]),
    st.text(max_size=30),
)
json_docs = st.recursive(
    scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=5), st.dictionaries(names, kids, max_size=5)),
    max_leaves=25,
)
iso = st.datetimes(timezones=st.one_of(st.none(), st.timezones())).map(lambda d: d.isoformat())
timestamps = st.one_of(
    st.none(),
    st.integers(),
    st.floats(),
    iso,
    st.text(max_size=30),
    st.booleans(),
    st.integers(min_value=MIN_TS_MS - 10, max_value=NOW // 1000 + 400_000),
    st.sampled_from(
        [
            1e308,
            -1e308,
            10**400,
            9223372036854775807,
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-11-23T10:00:00",
            "1973-03-03T09:46:40Z",
        ]
    ),
)
readings = st.fixed_dictionaries(
    {"values": st.one_of(st.dictionaries(names, json_docs, max_size=4), json_docs)},
    optional={"ts": timestamps, "extra": json_docs},
)
messages = st.one_of(readings, st.lists(readings, max_size=4), json_docs)


def dumps(doc) -> bytes:
    return json.dumps(doc).encode("utf-8", "surrogatepass")  # lone surrogates: invalid UTF-8


@FUZZ
@given(st.binary(max_size=300), st.sampled_from(SCHEMAS))
def test_arbitrary_bytes_are_parsed_or_refused_with_a_reason(body, schema):
    check(body, schema)


@FUZZ
@given(messages, st.sampled_from(SCHEMAS))
def test_arbitrary_json_documents_are_parsed_or_refused_with_a_reason(doc, schema):
    check(dumps(doc), schema)


@FUZZ
@given(
    messages, st.sampled_from(SCHEMAS), st.integers(min_value=0), st.binary(min_size=1, max_size=4)
)
def test_corrupted_documents_are_parsed_or_refused_with_a_reason(doc, schema, at, noise):
    body = dumps(doc)
    at %= len(body) + 1
    check(body[:at] + noise + body[at:], schema)  # e.g. invalid UTF-8 inside a key


@FUZZ
@given(messages, st.sampled_from(SCHEMAS))
def test_limits_hold_for_any_document(doc, schema):
    check(dumps(doc), schema, Limits(max_bytes=200, max_points=3, out_of_range="reject"))


# -- what is accepted is what was sent -----------------------------------------------------

metric_names = st.from_regex(r"\A[A-Za-z0-9_.\-]{1,64}\Z")
exact_ints = st.integers(min_value=-(2**53), max_value=2**53)
good_values = st.one_of(st.floats(allow_nan=False, allow_infinity=False), exact_ints, st.booleans())
good_ts = st.one_of(
    st.none(),
    st.integers(min_value=MIN_TS_MS, max_value=NOW // 1000 + 300_000),
    st.datetimes(
        min_value=datetime(1973, 3, 4), max_value=datetime(2026, 11, 22), timezones=st.just(UTC)
    ),
)
good_readings = st.lists(
    st.fixed_dictionaries(
        {"values": st.dictionaries(metric_names, good_values, min_size=1, max_size=4)},
        optional={"ts": good_ts},
    ),
    min_size=1,
    max_size=4,
)


def as_json(ts):
    if isinstance(ts, datetime):
        return ts.isoformat().replace("+00:00", "Z")
    return ts


def expected_us(ts) -> int | None:
    if ts is None:
        return None
    if isinstance(ts, datetime):
        return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    return ts * 1000


@settings(FUZZ, max_examples=150)
@given(good_readings, st.booleans())
def test_accepted_readings_round_trip_exactly(batch, as_one):
    doc = [{**r, "ts": as_json(r["ts"])} if "ts" in r else r for r in batch]
    body = dumps(doc[0] if as_one and len(doc) == 1 else doc)
    parsed = check(body, TelemetrySchema())
    assert parsed is not None, body
    got = [
        (parsed.metrics[k], t, x)
        for k, t, x in zip(parsed.key_index, parsed.ts, parsed.value, strict=True)
    ]
    want = [
        (name, expected_us(r.get("ts")), float(value))
        for r in batch
        for name, value in r["values"].items()
    ]
    assert [(m, x) for m, _, x in got] == [(m, x) for m, _, x in want]
    for (_, t, x), (_, wt, _wx), value in zip(
        got, want, [val for r in batch for val in r["values"].values()], strict=True
    ):
        assert wt is None or t == wt
        if type(value) is int:
            assert int(x) == value  # exact, not rounded
        elif type(value) is float:
            assert x == value and math.copysign(1, x) == math.copysign(1, value)


@settings(FUZZ, max_examples=150)
@given(
    st.integers(min_value=MIN_TS_MS, max_value=NOW // 1000 + 300_000),
    st.dictionaries(
        st.sampled_from(["temperature", "count", "on"]),
        st.one_of(st.floats(), st.integers(), st.booleans()),
        min_size=1,
    ),
)
def test_the_single_reading_fast_path_agrees_with_the_general_path(ts, values):
    schema = SCHEMAS[1]
    one = dumps({"ts": ts, "values": values})
    a, b = check(one, schema), check(b"[" + one + b"]", schema)
    assert a == b
    if a is None:
        ra = rb = None
        try:
            parse_telemetry(one, project="p", device="d", schema=schema, now_us=NOW)
        except InvalidInput as e:
            ra = e.reason
        try:
            parse_telemetry(b"[" + one + b"]", project="p", device="d", schema=schema, now_us=NOW)
        except InvalidInput as e:
            rb = e.reason
        assert ra == rb
