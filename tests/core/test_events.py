"""atoll.core.events: the anomaly event's wire format, its subject, and the score series names."""

from __future__ import annotations

import orjson
import pytest

from atoll.bus.port import subject_matches
from atoll.core import topics
from atoll.core.errors import InvalidInput
from atoll.core.events import (
    AnomalyEvent,
    DetectorRef,
    decode_anomalies,
    encode_anomalies,
    joint_metric,
    score_metric,
    scored_metric,
)

T = 1_700_000_000_000_000


def test_wire_format_is_the_documented_json():
    single = AnomalyEvent(
        "p", "d", "temp", T, 0.99991, value=81.5, is_anomaly=True, detector=DetectorRef("ewma", 1)
    )
    joint = AnomalyEvent(
        "p",
        "d",
        joint_metric(["flow", "pressure"]),
        T + 1,
        0.25,
        values={"flow": 3.5, "pressure": None},
        is_anomaly=False,
        detector=DetectorRef("mahalanobis", 2),
    )
    assert orjson.loads(encode_anomalies([single, joint])) == [
        {
            "project": "p",
            "device": "d",
            "metric": "temp",
            "ts": T,
            "score": 0.99991,
            "value": 81.5,
            "is_anomaly": True,
            "detector": {"name": "ewma", "version": 1},
        },
        {
            "project": "p",
            "device": "d",
            "metric": "flow+pressure",
            "ts": T + 1,
            "score": 0.25,
            "values": {"flow": 3.5, "pressure": None},
            "is_anomaly": False,
            "detector": {"name": "mahalanobis", "version": 2},
        },
    ]
    # What is not said is left out (no "is_anomaly": null): the rules read "no decision".
    bare = AnomalyEvent("p", "d", "t", T, 0.5)
    assert orjson.loads(encode_anomalies([bare])) == [
        {"project": "p", "device": "d", "metric": "t", "ts": T, "score": 0.5}
    ]
    assert decode_anomalies(encode_anomalies([single, joint, bare])) == [single, joint, bare]


def test_decode_reads_one_event_or_a_list_and_an_integer_score():
    one = {"project": "p", "device": "d", "metric": "t", "ts": T, "score": 1}
    (e,) = decode_anomalies(orjson.dumps(one))
    assert e == AnomalyEvent("p", "d", "t", T, 1.0) and e.is_anomaly is None
    assert decode_anomalies(orjson.dumps([one, one])) == [e, e]
    assert decode_anomalies(b"[]") == []


@pytest.mark.parametrize(
    "data,why",
    [
        (b"not json", "bad anomaly event: JSON is malformed"),
        (b'{"project": "p", "device": "d", "metric": "t", "score": 1}', "missing required field"),
        # Timestamps on the bus are integer µs: no unit to guess.
        (
            b'{"project": "p", "device": "d", "metric": "t", "ts": "2023-11-14", "score": 1}',
            "Expected `int`, got `str` - at `$.ts`",
        ),
        (
            b'[{"project": "p", "device": "d", "metric": "t", "ts": 1, "score": "high"}]',
            "Expected `float`, got `str` - at `$[0].score`",
        ),
        (b"42", "Expected `object | array`, got `int`"),
    ],
)
def test_decode_refuses_what_is_not_an_anomaly_event(data, why):
    with pytest.raises(InvalidInput, match="bad anomaly event") as info:
        decode_anomalies(data)
    assert why in info.value.message


def test_events_are_frozen_and_know_their_subject():
    e = AnomalyEvent("plant", "boiler-1", "temp", T, 0.5)
    with pytest.raises(AttributeError):
        e.score = 1.0  # type: ignore[misc]
    assert e.subject == topics.bus_anomaly("plant", "boiler-1") == "anomaly.plant.boiler-1"
    assert subject_matches(topics.ALL_ANOMALIES, e.subject)
    assert subject_matches(topics.bus_anomaly("plant", "*"), e.subject)
    assert not subject_matches(topics.bus_anomaly("other", "*"), e.subject)


def test_score_series_names():
    for metric in ("temp", "flow+pressure", "a.b", "x_score", "anomaly_x"):
        assert scored_metric(score_metric(metric)) == metric
        assert scored_metric(metric) is None  # readings are not scores
    assert scored_metric(".anomaly_score") is None
    assert joint_metric(("flow", "pressure")) == "flow+pressure"
