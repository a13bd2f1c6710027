"""Model lineage: which model of normal judged a series, fitted on what, when and why.

Every time the detection service builds or fits the detector of a series (or of a device's
jointly judged group, whose ``metric`` is ``joint_metric(...)``, e.g. ``"flow+pressure"``), it
writes a :class:`ModelRecord`: a new ``version`` of that series' model, with the history it was
fitted on (``history_from``/``history_to`` in µs, ``rows`` used, ``excluded`` readings left out
because an earlier model flagged them), the detector's calibrated thresholds (``describe``) and
the ``reason``:

* ``bound``: the series was first met (its detector chosen from the binding, the device's
  label or the default), fitted on its stored history when there was enough of it;
* ``scheduled``: the periodic refit (``refit_interval``);
* ``manual``: an operator asked for a refit (``POST .../detection/refit``);
* ``accept``: an operator accepted a range of readings as the new normal;
* ``restored``: the series' detector came from a snapshot written before model records existed.

Anomaly events name the model that judged them (:class:`ModelRef`, ``id`` and ``version``).
A ``ModelLog`` keeps the records; the detection service's own (``atoll.detect.lineage``) saves
them with its state snapshot. Issue #14 moves them into a model registry behind this port.

>>> r = ModelRecord("p/d/temp@1", "p", "d", "temp", 1, "fitted", 1_700_000_000_000_000, "bound")
>>> r.ref, decode_record(encode_record(r)) == r
(ModelRef(id='p/d/temp@1', version=1), True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from atoll.core.points import SeriesKey

#: Why a model was (re)built; see the module's documentation.
REASONS = ("bound", "scheduled", "manual", "accept", "restored")


class ModelRef(msgspec.Struct, frozen=True):
    """The model that judged a reading: its record's ``id`` and the series' model ``version``."""

    id: str
    version: int


class ModelRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """One version of a series' model (times in µs since the epoch)."""

    id: str
    project: str
    device: str
    metric: str
    version: int
    #: The detector kind that judges the series (``"fitted"``, ``"ensemble"``, ``"joint"``...).
    detector: str
    fitted_at: int
    reason: str
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    #: The stored history it was fitted on (``None``: nothing stored was fitted; it learns online).
    history_from: int | None = None
    history_to: int | None = None
    #: Finite readings fitted on, and readings left out because a model had flagged them.
    rows: int = 0
    excluded: int = 0
    #: What the fit chose and calibrated, in the data's units (``FittedDetector.describe()``;
    #: per metric for a jointly judged group). ``None`` for a detector that is not fitted.
    thresholds: dict[str, Any] | None = None
    #: Who asked (``manual``, ``accept``): the API caller as the audit log names them.
    actor: str | None = None
    #: ``accept``: the accepted range ``[from, to)`` in µs.
    accepted_from: int | None = None
    accepted_to: int | None = None

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.id, self.version)

    @property
    def key(self) -> SeriesKey:
        return SeriesKey(self.project, self.device, self.metric)


def model_id(key: SeriesKey, version: int) -> str:
    """``"<project>/<device>/<metric>@<version>"``: readable, unique per series and version."""
    return f"{key.project}/{key.device}/{key.metric}@{version}"


class ModelLog(Protocol):
    """Where model records go (the detection service's in-memory log, later a registry)."""

    def add(self, record: ModelRecord) -> None:
        """Keep ``record``; it becomes its series' current model."""

    def current(self, key: SeriesKey) -> ModelRecord | None:
        """The series' latest record."""

    def history(self, key: SeriesKey) -> list[ModelRecord]:
        """The series' records kept, oldest first."""


class ModelCatalog(Protocol):
    """Where the detection service files the models it fits and puts to work (the platform's
    model registry, ``Registry.record_fitted_models``): each becomes an active ``detector``
    version there, so an anomaly's ``ModelRef`` leads to its registry record."""

    def record_fitted_models(self, records: Sequence[ModelRecord]) -> int:
        """Keep ``records`` (a version already kept is updated); how many were kept."""


class ForecasterCatalog(Protocol):
    """Where the rules service files the forecaster its ``forecast`` conditions use (the
    platform's model registry, ``Registry.forecaster_version``): one active ``forecaster``
    version per series, kept while its kind, parameters and code version stay the same, so a
    stored forecast's ``ModelRef`` leads to its registry record."""

    def forecaster_version(
        self, project: str, device: str, metric: str, *, algorithm: str, params: dict[str, Any]
    ) -> ModelRef | None:
        """The active version for the series with these parameters at this code version
        (filed, active and approved by ``system``, when there is none); ``None`` when the
        registry does not know the project."""


class SeriesDetection(msgspec.Struct, frozen=True, omit_defaults=True):
    """What judges one series of a device now (``GET .../detection``)."""

    metric: str
    #: The detector kind judging it now (``"fitted"``, ``"ensemble"``, ...).
    detector: str
    #: The name it was chosen by (``"default"``, a binding's detector, the device's label).
    chosen: str
    #: Metrics judged together (a jointly judged group), else empty.
    metrics: tuple[str, ...] = ()
    model: ModelRecord | None = None
    #: ``is_anomaly`` of the last reading judged, and since when (µs) it has been up.
    flagged: bool = False
    flagged_since: int | None = None
    last_ts: int | None = None
    #: A fit on stored history is queued or running for this series.
    fitting: bool = False


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ModelRecord)


def encode_record(record: ModelRecord) -> bytes:
    return _encoder.encode(record)


def decode_record(blob: bytes) -> ModelRecord:
    return _decoder.decode(blob)


__all__ = [
    "REASONS",
    "ForecasterCatalog",
    "ModelCatalog",
    "ModelLog",
    "ModelRecord",
    "ModelRef",
    "SeriesDetection",
    "decode_record",
    "encode_record",
    "model_id",
]
