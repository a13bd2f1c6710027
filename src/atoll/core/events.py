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

  An event that is anomalous (``is_anomaly`` true, or a score at or above the detector's
  threshold) also carries its explanation: ``expected`` (per metric, the value and band the model
  expected, in the metric's units), ``contributors`` (what made it abnormal, shares summing to 1)
  and ``model`` (the :class:`atoll.core.lineage.ModelRef` of the model that judged it). The
  detection service stores the band of those readings as the series :func:`expected_metric`
  (``"temp.expected_lo"``, ``"temp.expected_hi"``) so charts can draw it.

>>> e = AnomalyEvent("p", "d", "temp", 1_700_000_000_000_000, 0.5, value=20.5, is_anomaly=False)
>>> decode_anomalies(encode_anomalies([e])) == [e], e.subject
(True, 'anomaly.p.d')
>>> score_metric("temp"), scored_metric("temp.anomaly_score"), scored_metric("temp")
('temp.anomaly_score', 'temp', None)
>>> expected_metric("temp", "lo"), derived_metric("temp.expected_hi"), derived_metric("temp")
('temp.expected_lo', True, False)
>>> derived_metric("rul"), derived_metric("rul_lo"), derived_metric("rule_count")
(True, True, False)
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from atoll.core import topics
from atoll.core.errors import InvalidInput
from atoll.core.lineage import ModelRef

SCORE_SUFFIX = ".anomaly_score"
#: Suffixes of the expected band's series (``expected_metric``).
EXPECTED_SUFFIXES = {"lo": ".expected_lo", "hi": ".expected_hi"}
_DERIVED = (SCORE_SUFFIX, *EXPECTED_SUFFIXES.values())
#: The series the RUL service writes on a device (``atoll.rul.service``): the estimate and its
#: interval in hours, and the registry version of the model that judged.
RUL_METRICS = ("rul", "rul_lo", "rul_hi", "rul_model_version")


def score_metric(metric: str) -> str:
    """Name of the series holding ``metric``'s anomaly scores."""
    return metric + SCORE_SUFFIX


def scored_metric(series_metric: str) -> str | None:
    """The metric whose anomaly scores the series ``series_metric`` holds; ``None`` when it
    holds readings."""
    if series_metric.endswith(SCORE_SUFFIX) and len(series_metric) > len(SCORE_SUFFIX):
        return series_metric[: -len(SCORE_SUFFIX)]
    return None


def expected_metric(metric: str, side: str) -> str:
    """Name of the series holding the low (``side="lo"``) or high (``"hi"``) edge of the band
    ``metric``'s model expected, for the readings it judged anomalous."""
    return metric + EXPECTED_SUFFIXES[side]


def derived_metric(series_metric: str) -> bool:
    """Whether the series holds the detection service's output (scores, expected bands) or the
    RUL service's, not readings: it is never judged itself."""
    return series_metric.endswith(_DERIVED) or series_metric in RUL_METRICS


def joint_metric(metrics: Iterable[str]) -> str:
    """Name under which a jointly judged group of metrics is scored (``"flow+pressure"``)."""
    return "+".join(metrics)


class DetectorRef(msgspec.Struct, frozen=True):
    """Which detector (and version of its state format) gave a score."""

    name: str
    version: int = 1


class Expected(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a model expected of one metric, in the metric's units: ``value`` and the band
    ``[lo, hi]`` (any may be ``None`` when the model has no such notion).
    docs/DETECTION.md ("Explanations") says what each detector reports."""

    value: float | None = None
    lo: float | None = None
    hi: float | None = None


class Contributor(msgspec.Struct, frozen=True):
    """A sensor (jointly judged groups) or a signal of the model (``"nn"``, ``"ar"``,
    ``"band"``...) and its share of the anomaly; the shares of an event sum to 1."""

    name: str
    share: float


class AnomalyEvent(msgspec.Struct, frozen=True, omit_defaults=True):
    """One judged reading. ``ts`` is µs since the epoch; ``score`` is in [0, 1].

    ``value`` is the reading of a metric judged alone; ``values`` those of a jointly judged group
    (``None`` where a metric had no reading). ``is_anomaly`` is the detector's decision, ``None``
    when it gave none (the rules then compare the score with their own threshold).

    Anomalous events (``is_anomaly``, or a score at or above the detector's threshold) also carry
    their explanation: ``expected`` by metric, ``contributors`` (largest share first) and the
    ``model`` that judged them. Other events leave them out."""

    project: str
    device: str
    metric: str
    ts: int
    score: float
    value: float | None = None
    values: dict[str, float | None] | None = None
    is_anomaly: bool | None = None
    detector: DetectorRef | None = None
    expected: dict[str, Expected] | None = None
    contributors: list[Contributor] | None = None
    model: ModelRef | None = None

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
    "EXPECTED_SUFFIXES",
    "SCORE_SUFFIX",
    "AnomalyEvent",
    "Contributor",
    "DetectorRef",
    "Expected",
    "ModelRef",
    "decode_anomalies",
    "derived_metric",
    "encode_anomalies",
    "expected_metric",
    "joint_metric",
    "score_metric",
    "scored_metric",
]
