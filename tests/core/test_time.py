"""atoll.core.time: explicit units in, µs out; the documented magnitude rule; durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from atoll.core.errors import InvalidInput
from atoll.core.time import (
    MS,
    NS,
    US,
    InvalidTime,
    S,
    TimeUnit,
    datetime_to_us,
    floor_to,
    from_us,
    guess_epoch_unit,
    parse_duration,
    parse_iso,
    parse_timestamp,
    parse_timestamp_any_unit,
    to_us,
    us_to_datetime,
)

T = 1_700_000_000_123_456  # 2023-11-14T22:13:20.123456Z in µs


@pytest.mark.parametrize(
    "value,unit,us",
    [
        (1_700_000_000, S, 1_700_000_000_000_000),
        (1_700_000_000_123, MS, 1_700_000_000_123_000),
        (T, US, T),
        (T * 1000 + 499, NS, T),
        (T * 1000 + 500, NS, T + 1),  # nearest µs
        (1.25, S, 1_250_000),
        (0.5, MS, 500),
        (-1, S, -1_000_000),  # before the epoch
        (2**70, S, 2**70 * 1_000_000),  # integers stay exact at any size
    ],
)
def test_to_us_in_every_unit(value, unit, us):
    assert to_us(value, unit) == us


@pytest.mark.parametrize("unit", list(TimeUnit))
def test_round_trips_through_us(unit):
    step = 1000 if unit is NS else 1  # µs is the finest unit kept
    for value in (0, 1, 7, -3, 1_700_000_000, 1_700_000_000_123):
        assert from_us(to_us(value * step, unit), unit) == value * step
    for us in (0, 1, 999, T, -T, 2**62):
        # floor_to: the whole units in ``us``, rounded down.
        if unit is NS:
            assert floor_to(us, unit) == us * 1000
        else:
            assert to_us(floor_to(us, unit), unit) <= us < to_us(floor_to(us, unit) + 1, unit)


def test_floor_to_rounds_down_also_before_the_epoch():
    assert floor_to(1_999, MS) == 1 and floor_to(-1, MS) == -1 and floor_to(-1_000, MS) == -1


@pytest.mark.parametrize("bad", [True, None, "1", float("nan"), float("inf"), [1]])
def test_to_us_refuses_what_is_not_a_finite_number(bad):
    with pytest.raises(InvalidTime, match="is not a number of ms"):
        to_us(bad, MS)


@pytest.mark.parametrize(
    "value,unit",
    [
        (0, S),
        (99_999_999_999, S),  # year 5138 in seconds: still seconds
        (-1_700_000_000, S),
        (1e11, MS),
        (1_700_000_000_000, MS),
        (99_999_999_999_999, MS),
        (1e14, US),
        (T, US),
        (-T, US),
    ],
)
def test_guess_epoch_unit_boundaries(value, unit):
    assert guess_epoch_unit(value) is unit


def test_datetime_round_trips_exactly():
    for us in (0, 1, -1, T, -T, 253_402_300_799_999_999):  # up to 9999-12-31T23:59:59.999999
        assert datetime_to_us(us_to_datetime(us)) == us
        assert parse_iso(us_to_datetime(us).isoformat()) == us
    # Float seconds would be off by a µs here; the integer arithmetic is not.
    assert datetime_to_us(datetime(2023, 11, 14, 22, 13, 20, 123_457, tzinfo=UTC)) == T + 1


def test_iso_offsets_and_naive_times_are_utc():
    plus2 = timezone(timedelta(hours=2))
    assert parse_iso("2023-11-15T00:13:20.123456+02:00") == T
    assert parse_iso("2023-11-14T22:13:20.123456Z") == T
    assert parse_iso(" 2023-11-14T22:13:20.123456 ") == T
    assert datetime_to_us(datetime(2023, 11, 15, 0, 13, 20, 123_456, tzinfo=plus2)) == T
    assert datetime_to_us(datetime(2023, 11, 14, 22, 13, 20, 123_456)) == T


def test_parse_timestamp_takes_numbers_in_the_unit_it_is_told():
    assert parse_timestamp("1700000000", S) == 1_700_000_000_000_000
    assert parse_timestamp("1700000000", MS) == 1_700_000_000_000
    assert parse_timestamp(1_700_000_000_123.456, MS) == T
    assert parse_timestamp("2023-11-14T22:13:20.123456Z", S) == T  # text is not a number
    assert parse_timestamp(us_to_datetime(T), NS) == T
    with pytest.raises(InvalidTime, match="'soon' is not an ISO-8601 timestamp"):
        parse_timestamp("soon", S)


@pytest.mark.parametrize(
    "value",
    [
        1_700_000_000.123456,
        "1700000000.123456",
        1_700_000_000_123.456,
        "1700000000123.456",
        T,
        str(T),
        "2023-11-14T22:13:20.123456Z",
        datetime(2023, 11, 14, 22, 13, 20, 123_456, tzinfo=UTC),
    ],
)
def test_parse_timestamp_any_unit_reads_s_ms_us_and_iso(value):
    assert parse_timestamp_any_unit(value) == T


@pytest.mark.parametrize("bad", [None, True, "", "nan", "1e400", "yesterday", [T]])
def test_parse_timestamp_any_unit_errors_are_clear(bad):
    with pytest.raises(InvalidTime, match="is not (a timestamp|an ISO-8601 timestamp)"):
        parse_timestamp_any_unit(bad)


def test_invalid_time_is_invalid_input_and_value_error():
    with pytest.raises(InvalidTime) as info:
        parse_duration("soon")
    assert isinstance(info.value, InvalidInput) and isinstance(info.value, ValueError)
    assert info.value.status == 400 and str(info.value) == info.value.message


@pytest.mark.parametrize(
    "value,us",
    [
        ("30s", 30_000_000),
        ("5m", 300_000_000),
        ("1h", 3_600_000_000),
        ("7d", 604_800_000_000),
        ("1w", 604_800_000_000),
        ("500ms", 500_000),
        ("250us", 250),
        ("250µs", 250),
        ("1.5h", 5_400_000_000),
        (".5s", 500_000),
        ("1h30m", 5_400_000_000),
        ("1h 30m", 5_400_000_000),
        (" 2d12h ", 216_000_000_000),
        ("90", 90_000_000),
        ("2.5", 2_500_000),
        (90, 90_000_000),
        (2.5, 2_500_000),
        (0, 0),
        ("0s", 0),
    ],
)
def test_parse_duration(value, us):
    assert parse_duration(value) == us


def test_parse_duration_numbers_take_the_unit_they_are_told():
    assert parse_duration(250, unit=MS) == 250_000
    assert parse_duration("250", unit=MS) == 250_000
    assert parse_duration("250s", unit=MS) == 250_000_000  # a written unit wins


@pytest.mark.parametrize(
    "value,message",
    [
        ("soon", "'soon' is not a duration; use seconds or e.g. 500ms, 30s, 5m, 1h30m, 7d, 1w"),
        ("5 minutes", "'5 minutes' is not a duration"),
        ("1h30", "'1h30' is not a duration"),
        ("m", "'m' is not a duration"),
        ("", "'' is not a duration"),
        ("-5m", "'-5m' is not a duration"),
        ("1e400", "'1e400' is not a duration"),
        (None, "None is not a duration"),
        (True, "True is not a duration"),
        (float("nan"), "nan is not a duration"),
        (-5, "duration -5 must not be negative"),
        ("-5", "duration '-5' must not be negative"),
    ],
)
def test_parse_duration_errors_say_what_is_wrong(value, message):
    with pytest.raises(InvalidTime) as info:
        parse_duration(value)
    assert info.value.message.startswith(message)


def test_parse_duration_positive():
    assert parse_duration("1us", positive=True) == 1
    for zero in ("0s", 0, "0"):
        with pytest.raises(InvalidTime, match="must be positive"):
            parse_duration(zero, positive=True)
