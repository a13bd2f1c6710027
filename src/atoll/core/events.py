"""Anomaly events and score series: the detection service's output, read by the rules, the live
feed of the console and the demo.

For every reading of a series ``(project, device, metric)`` it judges, the detection service

* stores the score (0 to 1) as the series :func:`score_metric` (``"temp.anomaly_score"``) of
  the same project and device; a group of metrics judged together is one series,
  :func:`joint_metric` (``"flow+pressure"``), scored as ``"flow+pressure.anomaly_score"``;
* publishes an :class:`AnomalyEvent`: one JSON list per device and message on
  ``anomaly.{project}.{device}`` (``topics.bus_anomaly``), written by :func:`encode_anomalies`
  and read by :func:`decode_anomalies`::

      [{"project": "p", "device": "d", "metric": "temp", "ts": 1700000000000000, "score": 0.99991,
        "value": 81.5, "is_anomaly": true, "detector": {"name": "ewma", "version": 1}}]

>>> e = AnomalyEvent("p", "d", "temp", 1_700_000_000_000_000, 0.5, value=20.5, is_anomaly=False)
>>> decode_anomalies(encode_anomalies([e])) == [e], e.subject
(True, 'anomaly.p.d')
>>> score_metric("temp"), scored_metric("temp.anomaly_score"), scored_metric("temp")
('temp.anomaly_score', 'temp', None)
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from atoll.core import topics
from atoll.core.errors import InvalidInput

SCORE_SUFFIX = ".anomaly_score"


def score_metric(metric: str) -> str:
    """Name of the series holding ``metric``'s anomaly scores."""
    return metric + SCORE_SUFFIX


def scored_metric(series_metric: str) -> str | None:
    """The metric whose anomaly scores the series ``series_metric`` holds; ``None`` when it
    holds readings."""
    if series_metric.endswith(SCORE_SUFFIX) and len(series_metric) > len(SCORE_SUFFIX):
        return series_metric[: -len(SCORE_SUFFIX)]
    return None


def joint_metric(metrics: Iterable[str]) -> str:
    """Name under which a jointly judged group of metrics is scored (``"flow+pressure"``)."""
    return "+".join(metrics)


class DetectorRef(msgspec.Struct, frozen=True):
    """Which detector (and version of its state format) gave a score."""

    name: str
    version: int = 1


class AnomalyEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    """One judged reading. ``ts`` is µs since the epoch; ``score`` is in [0, 1].

    ``value`` is the reading of a metric judged alone; ``values`` those of a jointly judged group
    (``None`` where a metric had no reading). ``is_anomaly`` is the detector's decision, ``None``
    when it gave none (the rules then compare the score with their own threshold)."""

    project: str
    device: str
    metric: str
    ts: int
    score: float
    value: float | None = None
    values: dict[str, float | None] | None = None
    is_anomaly: bool | None = None
    detector: DetectorRef | None = None

    @property
    def subject(self) -> str:
        """The bus subject this event is published on."""
        return topics.bus_anomaly(self.project, self.device)


_encoder = msgspec.json.Encoder()
# One event or a list: producers publish lists, a single object is read all the same.
_decoder = msgspec.json.Decoder(list[AnomalyEvent] | AnomalyEvent)


def encode_anomalies(events: list[AnomalyEvent]) -> bytes:
    """The payload of an ``anomaly.*`` message (events of one device)."""
    return _encoder.encode(events)


def decode_anomalies(data: bytes) -> list[AnomalyEvent]:
    """The events of an ``anomaly.*`` message; :class:`InvalidInput` when it is not one.

    >>> decode_anomalies(b'{"project": "p", "device": "d", "metric": "t", "ts": 1.5, "score": 1}')
    Traceback (most recent call last):
    ...
    atoll.core.errors.InvalidInput: bad anomaly event: Expected `int`, got `float` - at `$.ts`
    """
    try:
        doc = _decoder.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise InvalidInput(f"bad anomaly event: {exc}") from None
    return doc if isinstance(doc, list) else [doc]


__all__ = [
    "SCORE_SUFFIX",
    "AnomalyEvent",
    "DetectorRef",
    "decode_anomalies",
    "encode_anomalies",
    "joint_metric",
    "score_metric",
    "scored_metric",
]
