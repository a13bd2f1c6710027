"""The detection service: a detector on every telemetry stream of the platform.

It subscribes to ``telemetry.>`` (what ingest publishes after each durable store append) and keeps
one detector per series ``(project, device, metric)``: the one bound to the device's type for that
metric (``bind``, e.g. from a solution template's ``detectors``), else the device's ``detector``
label, else ``"default"``. ``bind(..., jointly=True)`` judges a machine's metrics together with one
multivariate detector per device, scored as the series ``"<m1>+<m2>"``. For each message it then

* stores every score as the series ``<metric>.anomaly_score`` (``score_metric``, same project and
  device), appended by a writer task that batches many messages into one store append;
* publishes one message on ``anomaly.{project}.{device}`` per device, a list of
  ``atoll.core.events.AnomalyEvent``, one per scored reading (the rules engine's hysteresis needs
  the low scores too);

* learns from the readings, in time order. A reading not newer than the last one the series'
  detector saw (a redelivery, or late data) is neither scored nor learned.

**Fitted on stored history.** A series whose detector can be fitted (``"default"``, which
resolves to ``fitted`` with enough history, or a binding naming ``fitted``) is scored by the
fallback (``"default"`` with no history: ``ensemble``) from its first reading while its stored
history (the last ``history_window`` seconds, at most ``max_history`` readings) is read and fitted
in a thread of its own, one series at a time; the fitted model then takes over, brought up to date
with the readings scored meanwhile. With fewer than ``MIN_HISTORY`` finite readings the fallback
stays. Every ``refit_interval`` seconds (0: never) each such series is refitted on its history
without the readings a model flagged, so a fault is never learned as normal; ``refit`` does it on
demand and ``accept`` learns a range of readings as the new normal (an operator's decision). Each
build or fit writes a ``atoll.core.lineage.ModelRecord`` (``models``).

**Explanations.** An anomalous event (``is_anomaly``, or a score at or above the threshold) carries
what the model expected (``expected``), what contributed (``contributors``) and the ``model`` that
judged it; the expected band of those readings is stored as ``<metric>.expected_lo``/``_hi``.

State survives restarts: every detector's ``state()`` (and the ``bind`` choices, the model
records, the flagged spans) go to ``<home>/detect/state.msgpack``
(written atomically) every ``snapshot_interval`` seconds and on ``stop``, and is restored on
``start``.

Off the event loop (ingest's acknowledgements share it): all detector work (decoding, scoring,
building the events, restoring and encoding state) runs in one worker thread per service, in
arrival order. ``start`` returns at once; a daemon thread first compiles (or loads from numba's
cache) the kernels of every configured detector (``atoll.detect.warmup``), while telemetry
queues; ``stop`` with nothing queued does not wait for it. The
queue is bounded (``max_queued_bytes``): a message that does not fit is dropped from detection
(it is stored all the same), counted in ``stats["dropped_messages"]`` and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from atoll.bus.partitions import CheckpointStore, PartitionedConsumer
from atoll.bus.port import Message, MessageBus, Subscription
from atoll.core import topics
from atoll.core.errors import AtollError, InvalidInput, NotFound, Unavailable
from atoll.core.events import (
    AnomalyEvent,
    Contributor,
    DetectorRef,
    Expected,
    derived_metric,
    encode_anomalies,
    expected_metric,
    joint_metric,
    score_metric,
)
from atoll.core.lineage import ModelCatalog, ModelRecord, ModelRef, SeriesDetection, model_id
from atoll.core.points import PointBatch, SeriesKey
from atoll.core.tasks import cancel_and_wait
from atoll.detect.episodes import EpisodeDecider, decider
from atoll.detect.fitted import FittedDetector
from atoll.detect.fleet import FleetBaseline, fleet_baseline
from atoll.detect.lineage import MemoryModelLog
from atoll.detect.multivariate import Joint, PerSensor
from atoll.detect.partitioned import PartitionedDetection
from atoll.detect.port import Detector, Explained, Explaining
from atoll.detect.registry import (
    DEFAULT_WITH_HISTORY,
    MIN_HISTORY,
    for_features,
    get_detector,
    resolve,
    restore,
)
from atoll.detect.state_file import StateFile
from atoll.detect.threshold import Thresholded, decide_many, explain_many
from atoll.detect.warmup import use_kernel_cache, warm_up
from atoll.registry.profiles import DeviceProfiles
from atoll.service import ServiceContext
from atoll.store.port import RawCounts, SeriesStore

log = logging.getLogger(__name__)

DEVICE_LABEL = "detector"
_STATE_FORMAT = 1
#: Messages handed to the worker thread at once (one hop to the thread per chunk, not per message).
_CHUNK_MESSAGES = 256
#: What a queued message costs besides its bytes (the bytes object and the deque slot).
_MESSAGE_OVERHEAD = 100
_US = 1_000_000
#: End of a flagged span that is still open.
_OPEN = 2**62
#: Flagged spans kept per series (the oldest go first), to leave out of refits.
MAX_SPANS = 64
#: First fits done in one go by the fit thread.
FIT_BATCH = 64
#: Contributors listed per event (largest shares first).
MAX_CONTRIBUTORS = 5
#: The contributor of a reading the episode decision found frozen (the same value too long).
FROZEN = "frozen"
#: The contributor of a reading only its fleet baseline flagged (off its siblings' pack).
FLEET = "fleet"
#: The contributor of a series that went silent while its device reports (``_silent``).
SILENT = "silent"
#: Silent: no reading for this many usual intervals, and at least this many seconds...
SILENT_INTERVALS, SILENT_MIN_S = 10, 30
#: ...once the usual interval has been learned from this many readings.
SILENT_AFTER = 100


@dataclass
class _Tracked:
    detector: Detector
    name: str
    last_ts: int = -(2**63)
    #: Episode decisions for ``is_anomaly`` (``None``: the detector's reading-level decision).
    episodes: EpisodeDecider | None = None
    #: What the detector was chosen by (``None``: restored from a snapshot that did not say).
    choice: Choice | None = None
    #: The current model record's reference (``models`` holds the record).
    model: ModelRef | None = None
    #: ``[start, end)`` µs of readings flagged by the detector or the decision (end ``_OPEN``
    #: while up): left out of refits.
    spans: list[list[int]] = field(default_factory=list)
    #: When the published ``is_anomaly`` rose (µs), ``None`` while it is down.
    since: int | None = None
    #: Wall-clock seconds from which a scheduled refit is due.
    refit_after: float = 0.0
    #: Readings waiting for the first fit on stored history (``None``: none wait), so the first
    #: live reading is judged by the fitted model; their count and last timestamp.
    parked: list[_Unit] | None = None
    parked_n: int = 0
    parked_last: int = -(2**63)
    #: ``time.monotonic()`` when the series started parking.
    parked_since: float = 0.0
    #: The usual interval between readings (µs, a moving average) and the readings it has seen
    #: (not saved: learned again after a restart), for the silence check.
    interval: float = 0.0
    seen: int = 0


#: ``(key, choice, timestamps, values)``: one detector's readings of one message.
_Unit = tuple[SeriesKey, "Choice | None", np.ndarray, np.ndarray]


@dataclass
class _FitJob:
    key: SeriesKey
    reason: str
    #: The history ends before this (µs); ``None``: after the last reading judged.
    until: int | None = None
    actor: str | None = None
    waiters: list[asyncio.Future] = field(default_factory=list)


@dataclass
class _FitPlan:
    job: _FitJob
    choice: Choice
    until: int
    spans: list[tuple[int, int]]
    #: Stored scores at or above it are left out too (``None``: don't read the scores).
    score_threshold: float | None


@dataclass
class _Fit:
    detector: Detector
    name: str
    history_from: int | None
    history_to: int | None
    rows: int
    excluded: int


@dataclass
class _Scored:
    """One message's results, computed in the worker thread and sent out on the event loop."""

    scores: PointBatch | None
    #: ``(subject, JSON list)`` per device, and the events they carry.
    payloads: list[tuple[str, bytes]]
    events: list[AnomalyEvent]
    points: int
    anomalies: int
    seconds: float
    #: Telemetry messages it answers (0: readings that waited for a fit).
    messages: int = 1


@dataclass(frozen=True)
class Choice:
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    #: Metrics judged together by one device-level detector (empty: this metric alone).
    jointly: tuple[str, ...] = ()
    #: Decision threshold for ``is_anomaly`` (``None``: the detector's own default).
    threshold: float | None = None
    #: ``EpisodeDecider`` settings: ``is_anomaly`` is true for whole episodes (docs/DETECTION.md).
    decision: dict[str, Any] | None = None
    #: ``FleetBaseline`` settings: each device is also judged against its siblings of the type.
    fleet: dict[str, Any] | None = None


class DetectionService:
    def __init__(
        self,
        bus: MessageBus,
        store: SeriesStore | None,
        *,
        registry: Any = None,
        state_path: str | os.PathLike | None = None,
        snapshot_interval: float = 30.0,
        group: str | None = "detect",
        default: str = "default",
        kernel_cache: str | os.PathLike | None = None,
        max_queued_bytes: int = 64 * 2**20,
        refit_interval: float = 86_400.0,
        history_window: float = 7 * 86_400.0,
        max_history: int = 200_000,
        partitions: PartitionedConsumer | None = None,
        checkpoints: CheckpointStore | None = None,
        lateness: float = 0.0,
        checkpoint_interval: float = 10.0,
        catalog: ModelCatalog | None = None,
    ) -> None:
        if refit_interval < 0 or history_window <= 0 or max_history < MIN_HISTORY:
            raise InvalidInput(
                "need refit_interval >= 0 (0: never), history_window > 0 and "
                f"max_history >= {MIN_HISTORY}"
            )
        self.bus, self.store, self.registry = bus, store, registry
        #: Seconds between scheduled refits of a fitted series (0: never).
        self.refit_interval = float(refit_interval)
        #: How far back (s) and how many readings of stored history a fit reads at most.
        self.history_window, self.max_history = float(history_window), int(max_history)
        #: How often (s) the scheduler looks for series due for a refit.
        self.refit_check = max(1.0, min(self.refit_interval, 600.0))
        #: Readings a series may park while it waits for its first fit, and for how long (s).
        self.max_parked = 20_000
        self.max_park_seconds = 10.0
        self.models = MemoryModelLog()
        #: The model registry every new record is filed in (``None``: kept here only); records
        #: wait in ``_to_file`` and a task files them in batches, off the scoring path.
        self.catalog = catalog
        self._to_file: deque[ModelRecord] = deque()
        self._filer: asyncio.Task | None = None
        self.file_interval = 1.0
        self._by_device: dict[tuple[str, str], list[SeriesKey]] = {}
        self._fit_jobs: dict[SeriesKey, _FitJob] = {}
        self._fit_running: SeriesKey | None = None
        #: Whether a detector class explains itself (``isinstance`` on a Protocol is slow).
        self._explains: dict[type, bool] = {}
        #: Installs (or releases) of finished fits, done by the worker while the next fit runs.
        self._finishing: set[asyncio.Future] = set()
        self._fit_wake = asyncio.Event()
        self._fitter: asyncio.Task | None = None
        self._fit_pool: ThreadPoolExecutor | None = None
        self._refitter: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.state_path = Path(state_path) if state_path is not None else None
        self.snapshot_interval = snapshot_interval
        #: Series whose state changed since it was last written (only these are encoded again),
        #: with a count that tells a change made after a series was encoded.
        self._dirty: dict[SeriesKey, int] = {}
        self._marks = itertools.count()
        self._state_file: StateFile | None = None
        self._snapshot_lock = asyncio.Lock()
        #: Series encoded per hop to the worker while snapshotting (scoring goes on in between).
        self.snapshot_slice = 256
        #: Every this many snapshots, every series is encoded again (whatever was marked).
        self.full_snapshot_every = 10
        #: Seconds the snapshot on ``stop`` may spend encoding: past it, series already in the
        #: last snapshot keep that state (up to one snapshot interval of learning is lost for
        #: them) rather than the stop taking minutes for a fleet of 40,000 series.
        self.stop_snapshot_s = 20.0
        self._since_full = 0
        self.group, self.default = group, default
        self.series: dict[SeriesKey, _Tracked] = {}
        self._bindings: dict[tuple[str, str, str | None], Choice] = {}
        self._stored_choice: dict[tuple[str, str], tuple[float, dict[str | None, Choice]]] = {}
        #: One fleet baseline per (project, device type, metric) bound with ``fleet``.
        self._fleets: dict[tuple[str, str, str], FleetBaseline] = {}
        self._profiles: DeviceProfiles | None = None
        self.device_cache_seconds = 60.0
        self._sub: Subscription | None = None
        #: Partitioned consumption (``atoll.detect.partitioned``) instead of one group
        #: subscription: this process judges the devices of the partitions it owns.
        self.partitioned = (
            PartitionedDetection(
                self,
                partitions,
                checkpoints,
                lateness=lateness,
                checkpoint_interval=checkpoint_interval,
                encode_choice=_choice_row,
                decode_choice=_choice_of_row,
            )
            if partitions is not None
            else None
        )
        self._snapshotter: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()
        self._pending: list[PointBatch] = []
        self._pending_points = 0
        self.max_pending_points = 200_000
        self._wake = asyncio.Event()
        self._writer: asyncio.Task | None = None
        #: Directory for numba's cache if the sources' own ``__pycache__`` is read-only.
        self.kernel_cache = Path(kernel_cache) if kernel_cache is not None else None
        #: Compiles the kernels of ``[(detector, width)]`` (replaceable, e.g. by a test).
        self.warm_up: Callable[[list[tuple[Detector, int]]], Any] = warm_up
        #: Set once the kernels are ready; telemetry that arrives before waits in the queue.
        self.ready = asyncio.Event()
        self._worker: ThreadPoolExecutor | None = None
        self._inbox: deque[bytes] = deque()
        self._inbox_bytes = 0
        self.max_queued_bytes = max_queued_bytes
        self._arrived = asyncio.Event()
        self._pump: asyncio.Task | None = None
        self._closing = False
        self._drop_logged = -math.inf
        self.stats = {
            "messages": 0,
            "points": 0,
            "stored": 0,
            "anomalies": 0,
            "skipped_late": 0,
            "bad_messages": 0,
            "store_errors": 0,
            "snapshots": 0,
            "snapshot_rows_encoded": 0,
            "snapshot_rows_copied": 0,
            "snapshot_rows_stale": 0,
            "state_dropped": 0,
            "seconds": 0.0,
            "queued_messages": 0,
            "queued_bytes": 0,
            "dropped_messages": 0,
            "dropped_bytes": 0,
            "warm_up_seconds": 0.0,
            "warmed_detectors": 0,
            "fits": 0,
            "fits_declined": 0,
            "fits_failed": 0,
            "fit_seconds": 0.0,
            "explained": 0,
            "frozen": 0,
            "silent": 0,
            "replayed": 0,
            "checkpoints": 0,
        }

    # -- configuration ----------------------------------------------------------------------------
    def bind(
        self,
        project: str,
        device_type: str,
        detector: str,
        metrics: list[str] | None = None,
        params: dict[str, Any] | None = None,
        *,
        jointly: bool = False,
        threshold: float | None = None,
        decision: dict[str, Any] | None = None,
        fleet: dict[str, Any] | None = None,
    ) -> None:
        """Use ``detector`` for ``metrics`` (all when ``None``) of devices of ``device_type``.

        ``threshold`` overrides the detector's own decision threshold for ``is_anomaly`` (fewer
        or more alarms, same scores). ``decision`` (e.g. ``{}`` for the defaults, or
        ``{"z": 5, "min_count": 3, "window": 300}``) makes ``is_anomaly`` an episode decision
        (``atoll.detect.episodes``) instead of a per-reading one; univariate metrics only.

        With ``jointly=True`` the listed metrics of each device are judged together by one
        multivariate detector (``for_features``), readings lined up by timestamp; the score is the
        series ``<m1+m2+...>.anomaly_score`` and events carry ``"values"`` instead of ``"value"``.

        ``fleet`` (e.g. ``{}``) also judges each device's reading against its siblings' of the
        type (``atoll.detect.fleet``): one ``FleetBaseline`` per project, type and metric; a
        device off the pack is anomalous whatever its own detector says.
        """
        choices = binding_choices(detector, metrics, params, jointly, threshold, decision, fleet)
        for m, c in choices.items():
            self._bindings[(project, device_type, m)] = c

    def _stored(self, project: str, device_type: str) -> dict[str | None, Choice]:
        """The bindings the registry keeps for the device type (``DeviceType.detectors``, set
        through the API or a template), by metric (``None``: every metric); cached like
        ``_device_info``. A binding the registry holds but this service cannot use is logged
        and skipped (the API checks them with ``check_binding`` before they are kept)."""
        now = time.monotonic()
        hit = self._stored_choice.get((project, device_type))
        if hit is not None and hit[0] > now:
            return hit[1]
        out: dict[str | None, Choice] = {}
        get_type = getattr(self.registry, "get_device_type", None)
        if get_type is not None:
            with contextlib.suppress(AtollError):
                for b in get_type(project, device_type).detectors:
                    try:
                        got = binding_choices(
                            b.detector,
                            list(b.metrics) or None,
                            b.params,
                            b.jointly,
                            b.threshold,
                            b.decision,
                            b.fleet,
                        )
                    except AtollError as exc:
                        log.warning(
                            "device type %s/%s: binding %r unusable (%s)",
                            project,
                            device_type,
                            b.detector,
                            exc.message,
                        )
                        continue
                    for m, c in got.items():
                        out.setdefault(m, c)  # the first binding of a metric wins
        self._stored_choice[(project, device_type)] = (now + self.device_cache_seconds, out)
        return out

    async def rebind(self, project: str, device_type: str) -> int:
        """The device type's bindings changed: its devices' series whose detector is no longer
        the one chosen start again with the new one (fitted on their stored history when it
        can be). Returns how many series were replaced."""
        return await self._in_worker(self._rebind, project, device_type)

    def _rebind(self, project: str, device_type: str) -> int:
        self._stored_choice.pop((project, device_type), None)
        if self._profiles is not None:
            self._profiles.forget(project)
        for k in [k for k in self._fleets if k[:2] == (project, device_type)]:
            del self._fleets[k]  # the pack is learned again under the new binding
        replaced = 0
        for key in [k for k in self.series if k.project == project]:
            if self._device_info(key.project, key.device)[0] != device_type:
                continue
            t = self.series[key]
            if t.choice is not None and "+" not in key.metric and t.choice == self.choose(key):
                continue
            del self.series[key]
            keys = self._by_device.get((key.project, key.device), [])
            if key in keys:
                keys.remove(key)
            replaced += 1
        return replaced

    def _device_info(self, project: str, device: str) -> tuple[str | None, dict[str, str]]:
        # Only consulted for series without a detector yet (in the worker thread), read per
        # project in bulk and again after ``device_cache_seconds``, so a device's new type or
        # label applies to its next new series.
        if self.registry is None:
            return None, {}
        if self._profiles is None:
            self._profiles = DeviceProfiles(self.registry)
        self._profiles.max_age = self.device_cache_seconds
        with contextlib.suppress(AtollError):
            profile = self._profiles.get(project, device)
            if profile is not None:
                return profile
        return None, {}

    def choose(self, key: SeriesKey) -> Choice:
        device_type, labels = self._device_info(key.project, key.device)
        if device_type is not None:
            for m in (key.metric, None):
                c = self._bindings.get((key.project, device_type, m))
                if c is not None:
                    return c
            stored = self._stored(key.project, device_type)
            for m in (key.metric, None):
                c = stored.get(m)
                if c is not None:
                    return c
        if labels.get(DEVICE_LABEL):
            return Choice(labels[DEVICE_LABEL])
        return Choice(self.default)

    def _build(
        self, c: Choice, key: SeriesKey | None = None, history: int = 0
    ) -> tuple[Choice, Detector]:
        try:
            det = (
                for_features(len(c.jointly), c.name, history=history, **c.params)
                if c.jointly
                else get_detector(resolve(c.name, history), **c.params)
            )
        except AtollError as exc:
            log.warning(
                "detector %r for %s unusable (%s); using the default", c.name, key, exc.message
            )
            c, det = Choice(self.default), get_detector(self.default)
        if c.threshold is not None:
            det = Thresholded(det, c.threshold)
        return c, det

    @staticmethod
    def fittable(c: Choice) -> bool:
        """Whether ``c``'s detector is fitted on stored history (``default`` or ``fitted``)."""
        return resolve(c.name, MIN_HISTORY) == DEFAULT_WITH_HISTORY

    def _tracked(
        self, key: SeriesKey, choice: Choice | None = None, ts: np.ndarray | None = None
    ) -> _Tracked:
        t = self.series.get(key)
        self._dirty[key] = next(self._marks)  # the caller is about to score or park readings of it
        if t is None:
            c, det = self._build(choice or self.choose(key), key)
            t = _Tracked(det, resolve(c.name), episodes=decider(c.decision), choice=c)
            t.refit_after = time.time() + self.refit_interval
            self._add_series(key, t)
            if (
                self.store is not None
                and ts is not None
                and self.fittable(c)
                and self._want_fit_threadsafe(key, "bound", int(ts[0]))
            ):
                t.parked = []  # judged once fitted on its history (or found to have too little)
                t.parked_since = time.monotonic()
            else:
                self._record(key, t, "bound")
        return t

    def _add_series(self, key: SeriesKey, t: _Tracked) -> None:
        self.series[key] = t
        self._dirty[key] = next(self._marks)
        self._by_device.setdefault((key.project, key.device), []).append(key)

    def _choice_of(self, key: SeriesKey, t: _Tracked) -> Choice:
        """What a series' detector is chosen by (looked up again for old snapshots' series)."""
        if t.choice is not None:
            return t.choice
        if "+" not in key.metric:
            return self.choose(key)
        group = tuple(key.metric.split("+"))
        device_type, _ = self._device_info(key.project, key.device)
        for (project, dt, _m), c in self._bindings.items():
            if project == key.project and dt == device_type and c.jointly == group:
                return c
        return Choice(t.name, jointly=group)

    # -- model records ----------------------------------------------------------------------------
    def _record(self, key: SeriesKey, t: _Tracked, reason: str, **fields: Any) -> ModelRecord:
        """A new version of the series' model: what judges it now, and why."""
        inner, threshold = _unwrap(t.detector)
        params = dict(inner.params()) if hasattr(inner, "params") else {}
        if threshold is not None:
            params["threshold"] = threshold
        version = self.models.next_version(key)
        names = t.choice.jointly if t.choice is not None and t.choice.jointly else None
        record = ModelRecord(
            model_id(key, version),
            key.project,
            key.device,
            key.metric,
            version,
            str(getattr(inner, "kind", t.name) or t.name),
            time.time_ns() // 1000,
            reason,
            params=params,
            thresholds=_describe(inner, names),
            **fields,
        )
        self.models.add(record)
        if self.catalog is not None:
            self._to_file.append(record)
        t.model = record.ref
        self._dirty[key] = next(self._marks)
        return record

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Subscribe and return; kernels compile in a thread of their own meanwhile (``ready``)."""
        self._closing = self._stopping = False
        self._loop = asyncio.get_running_loop()
        if self.state_path is not None:
            await self._in_worker(self._load)
        if self.store is not None:
            self._writer = asyncio.create_task(self._write_forever(), name="detect-score-writer")
        self._pump = asyncio.create_task(self._pump_forever(), name="detect-pump")
        if self.partitioned is not None:
            await self.partitioned.start()
        else:
            self._sub = await self.bus.subscribe(
                topics.ALL_TELEMETRY, self._on_telemetry, group=self.group
            )
        if self.state_path is not None and self.snapshot_interval > 0:
            self._snapshotter = asyncio.create_task(
                self._snapshot_forever(), name="detect-snapshots"
            )
        if self.store is not None and self.refit_interval > 0:
            self._refitter = asyncio.create_task(self._refit_forever(), name="detect-refits")
        if self.catalog is not None:
            self._filer = asyncio.create_task(self._file_forever(), name="detect-model-filer")

    async def stop(self) -> None:
        """Unsubscribe, score what is queued (after the warm-up, if that is still running), store
        the scores and save the state."""
        self._stopping = True
        await cancel_and_wait(self._snapshotter, self._refitter, self._fitter)
        self._snapshotter = self._refitter = self._fitter = None
        for job in self._fit_jobs.values():
            for waiter in job.waiters:
                if not waiter.done():
                    waiter.set_exception(
                        Unavailable("the detection service stopped before the fit")
                    )
        self._fit_jobs.clear()
        if self._fit_pool is not None:
            self._fit_pool.shutdown(wait=False)  # a fit under way ends on its own
            self._fit_pool = None
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        if self.partitioned is not None:
            await self.partitioned.stop()  # checkpoints and hands over every partition
        if self._pump is not None:
            self._closing = True
            self._arrived.set()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
        # Fits that did not happen: what waited for them is judged by the detectors there are.
        await asyncio.gather(*self._finishing, return_exceptions=True)
        await self._release_parked()
        async with self._lock:
            if self._writer is not None:
                # Between two flushes: cancelled inside one, the writer would drop the batch it
                # had taken (scores published but never stored).
                async with self._flush_lock:
                    self._writer.cancel()
                await asyncio.gather(self._writer, return_exceptions=True)
                self._writer = None
            if self.store is not None:
                await self.flush()
            await self.snapshot(deadline=time.monotonic() + self.stop_snapshot_s)
        if self._filer is not None:
            self._filer.cancel()
            await asyncio.gather(self._filer, return_exceptions=True)
            self._filer = None
        try:
            await self.file_models()
        except Exception:
            log.exception("filing model records in the model registry failed")
        if self._worker is not None:
            self._worker.shutdown(wait=False)  # idle by now; a later ``process`` makes a new one
            self._worker = None

    def _submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        # One thread: detector state is only ever touched there, in submission order.
        self._loop = asyncio.get_running_loop()
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atoll-detect")
        return asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def _in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._submit(fn, *args)

    def _warm_up_units(self) -> list[Choice]:
        """The detectors configured now: the default, every binding, every restored series'."""
        wanted: dict[tuple[str, int], Choice] = {}
        for c in [Choice(self.default), *self._bindings.values()]:
            wanted.setdefault((resolve(c.name), len(c.jointly)), c)
        for key, t in list(self.series.items()):
            width = key.metric.count("+") + 1 if t.detector.multivariate else 0
            wanted.setdefault(
                (t.name, width), Choice(t.name, jointly=("",) * width if width else ())
            )
        return list(wanted.values())

    def _warm_up_now(self, choices: list[Choice]) -> int:
        # In its own thread: the first call of each kernel compiles it (or loads it from numba's
        # cache). The detectors are throw-away ones, so no series state is touched here.
        if self.kernel_cache is not None:
            use_kernel_cache(self.kernel_cache)
        units = [(self._build(c)[1], len(c.jointly)) for c in choices]
        return int(self.warm_up(units) or 0)

    async def _warm(self) -> None:
        """Compile the kernels in a daemon thread, not in the worker: a cold cache takes tens of
        seconds on a busy machine, and stopping must not wait for that (nor must the process's
        exit, which joins executor threads) when nothing is queued to score."""
        t0 = time.perf_counter()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        choices = self._warm_up_units()  # read on the loop, where bindings change

        def settle(result: int | None, error: BaseException | None) -> None:
            if done.done():  # the service stopped meanwhile
                return
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(result or 0)

        def run() -> None:
            result: int | None = None
            error: BaseException | None = None
            try:
                result = self._warm_up_now(choices)
            except Exception as exc:
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop closed while this compiled
                loop.call_soon_threadsafe(settle, result, error)

        threading.Thread(target=run, name="atoll-detect-warm-up", daemon=True).start()
        try:
            self.stats["warmed_detectors"] = await done
        except Exception:  # scoring still works: a kernel then compiles on its first series
            log.exception("warming up the detectors' kernels failed")
        self.stats["warm_up_seconds"] = time.perf_counter() - t0
        self.ready.set()
        log.info(
            "detectors ready after %.1f s (%d queued messages)",
            self.stats["warm_up_seconds"],
            len(self._inbox),
        )

    async def file_models(self) -> int:
        """File the model records made since the last call in the catalog; how many. A failed
        batch waits for the next call (records made meanwhile are filed after it)."""
        if self.catalog is None or not self._to_file:
            return 0
        batch = list(self._to_file)
        await asyncio.to_thread(self.catalog.record_fitted_models, batch)
        for _ in batch:
            self._to_file.popleft()
        return len(batch)

    async def _file_forever(self) -> None:
        while True:
            await asyncio.sleep(self.file_interval)
            try:
                await self.file_models()
            except Exception:
                log.exception("filing model records in the model registry failed")

    async def _snapshot_forever(self) -> None:
        pause = self.snapshot_interval
        while True:
            await asyncio.sleep(pause)
            t0 = time.perf_counter()
            try:
                await self.snapshot()
            except Exception:
                log.exception("detector snapshot failed")
            # Many series make big snapshots: keep snapshotting under ~5 % of the time.
            pause = max(self.snapshot_interval, 20 * (time.perf_counter() - t0))

    # -- state ------------------------------------------------------------------------------------
    def _row(self, k: SeriesKey, t: _Tracked) -> list[Any]:
        """One series' entry of the state file."""
        return [
            k.project,
            k.device,
            k.metric,
            t.name,
            t.last_ts,
            t.detector.state(),
            None if t.episodes is None else t.episodes.state(),
            {
                "choice": None if t.choice is None else _choice_row(t.choice),
                "model": None if t.model is None else [t.model.id, t.model.version],
                "spans": t.spans,
                "since": t.since,
                "refit_after": t.refit_after,
            },
        ]

    def _state_tail(self) -> dict[str, Any]:
        """(worker) What the state file holds besides the series."""
        return {
            "models": self.models.dump(),
            "bindings": [[p, dt, m, *_choice_row(c)] for (p, dt, m), c in self._bindings.items()],
            "fleets": [[p, dt, m, f.state()] for (p, dt, m), f in self._fleets.items()],
        }

    def _encode_state(self) -> bytes:
        """(worker) The whole state file in one piece (``snapshot`` writes the same in pieces)."""
        return msgspec.msgpack.encode(
            {
                "format": _STATE_FORMAT,
                "series": [self._row(k, t) for k, t in self.series.items()],
                **self._state_tail(),
            }
        )

    def _encode_rows(self, keys: list[SeriesKey]) -> tuple[list[bytes], list[int | None]]:
        """(worker) Rows of ``keys``, encoded now, and the change each was encoded after."""
        encode = msgspec.msgpack.encode
        dirty = self._dirty
        return [encode(self._row(k, self.series[k])) for k in keys], [dirty.get(k) for k in keys]

    def _written(self, seen: dict[SeriesKey, int | None]) -> None:
        """(worker) These rows are on disk: clean unless they changed after being encoded."""
        dirty = self._dirty
        for k, mark in seen.items():
            if mark is not None and dirty.get(k) == mark:
                del dirty[k]

    def _snapshot_plan(self) -> tuple[list[SeriesKey], set[SeriesKey]]:
        """(worker) The series to write, in order, and those changed since last written."""
        return list(self.series), set(self._dirty)

    async def snapshot(self, deadline: float | None = None) -> None:
        """Write every detector's state (atomically: a crash mid-write keeps the previous file).

        Incremental and in slices: a series whose state did not change since the last snapshot
        is copied from that file; the others are encoded in the worker ``snapshot_slice`` at a
        time, so scoring goes on between slices and no whole-file copy is ever held in memory.
        Every ``full_snapshot_every``-th snapshot encodes every series again. Each series is
        written as it was when its slice was encoded (or when it was last written).

        Past ``deadline`` (``time.monotonic()``), a changed series that the last snapshot holds
        is copied as it was then (counted in ``snapshot_rows_stale``, still marked to write);
        only series never written are still encoded."""
        if self.state_path is None:
            return
        async with self._snapshot_lock:
            if self._state_file is None or self._state_file.path != self.state_path:
                self._state_file = StateFile(self.state_path)
            sf = self._state_file
            full = self._since_full + 1 >= self.full_snapshot_every or not sf.reusable()
            keys, dirty = await self._in_worker(self._snapshot_plan)
            seen: dict[SeriesKey, int | None] = {}
            writing = await asyncio.to_thread(
                sf.begin, _STATE_FORMAT, len(keys), ("models", "bindings", "fleets")
            )
            try:
                i, n, stale = 0, len(keys), 0
                while i < n:
                    late = deadline is not None and time.monotonic() > deadline

                    def copies(k: SeriesKey, late: bool = late) -> bool:
                        return (late or (not full and k not in dirty)) and writing.can_copy(k)

                    copy = copies(keys[i])
                    j, end = i + 1, (n if copy else min(n, i + self.snapshot_slice))
                    while j < end and copy == copies(keys[j]):
                        j += 1
                    part = keys[i:j]
                    if copy:
                        await asyncio.to_thread(writing.copied, part)
                        if late:
                            n_stale = sum(1 for k in part if full or k in dirty)
                            stale += n_stale
                            self.stats["snapshot_rows_stale"] += n_stale
                    else:
                        rows, marks = await self._in_worker(self._encode_rows, part)
                        await asyncio.to_thread(writing.encoded, part, rows)
                        seen.update(zip(part, marks, strict=True))
                        self.stats["snapshot_rows_encoded"] += len(part)
                    i = j
                tail = await self._in_worker(self._state_tail)
                await asyncio.to_thread(writing.finish, tail)
            except BaseException:
                writing.abort()  # what it encoded is still marked: the next snapshot writes it
                raise
            await self._in_worker(self._written, seen)
            self.stats["snapshot_rows_copied"] += writing.copied_rows
            self._since_full = 0 if full and not stale else self._since_full + 1
            self.stats["snapshots"] += 1

    def _load(self) -> None:
        if self.state_path is None or not self.state_path.is_file():
            return
        try:
            raw = msgspec.msgpack.decode(self.state_path.read_bytes())
            if raw.get("format") != _STATE_FORMAT:
                raise InvalidInput(f"unknown detector state format {raw.get('format')!r}")
            # Older snapshots have no model records, no 8th field per series: both optional.
            self.models = MemoryModelLog.load(raw.get("models") or [])
            now = time.time()
            for row in raw["series"]:
                self._restore_row(row, now)
            for project, device_type, metric, name, params, jointly, threshold, *rest in raw.get(
                "bindings", []
            ):
                # Bindings made since (e.g. by a template applied at start-up) take precedence.
                self._bindings.setdefault(
                    (project, device_type, metric),
                    _choice_of_row([name, params, jointly, threshold, *rest[:2]]),
                )
            for project, device_type, metric, state in raw.get("fleets") or []:
                try:
                    self._fleets[(project, device_type, metric)] = FleetBaseline.from_state(state)
                except AtollError as exc:
                    self.stats["state_dropped"] += 1
                    log.warning(
                        "fleet baseline of %s/%s/%s not restorable (%s); it starts fresh",
                        project,
                        device_type,
                        metric,
                        exc.message,
                    )
        except (msgspec.DecodeError, AtollError, ValueError, KeyError, TypeError) as exc:
            # Learning starts over rather than the platform refusing to start; keep the file.
            bad = self.state_path.with_suffix(".unreadable")
            self.state_path.replace(bad)
            self.series.clear()
            self._by_device.clear()
            self._fleets.clear()
            self.models = MemoryModelLog()
            log.error(
                "detector state %s unreadable (%s); moved to %s, starting fresh",
                self.state_path,
                exc,
                bad,
            )

    def _restore_row(self, row: list[Any], now: float) -> None:
        """(worker) One series of a state file or partition checkpoint (``_row``'s layout)."""
        project, device, metric, name, last_ts, blob, *rest = row
        key = SeriesKey(project, device, metric)
        try:
            episodes = EpisodeDecider.from_state(rest[0]) if rest and rest[0] else None
            t = _Tracked(restore(blob), name, last_ts, episodes)
            extra = rest[1] if len(rest) > 1 and isinstance(rest[1], dict) else {}
            if extra.get("choice"):
                t.choice = _choice_of_row(extra["choice"])
            if extra.get("model"):
                t.model = ModelRef(*extra["model"])
            t.spans = [[int(a), int(b)] for a, b in extra.get("spans") or []]
            t.since = extra.get("since")
            # Series from an older snapshot are refitted at spread-out times, not at once.
            t.refit_after = float(
                extra.get("refit_after")
                or now + self.refit_interval * (0.5 + (hash(key) % 1000) / 2000)
            )
            self._add_series(key, t)
            if t.model is None:
                self._record(key, t, "restored")
        except AtollError as exc:
            # E.g. a detector whose state layout changed in an upgrade: that series
            # learns afresh, the others keep what they learned.
            self.stats["state_dropped"] += 1
            log.warning(
                "detector state of %s not restorable (%s); it starts fresh", key, exc.message
            )

    # -- the work ---------------------------------------------------------------------------------
    async def _on_telemetry(self, msg: Message) -> None:
        # Only queues: never waits, so neither the bus nor ingest waits on detection.
        size = len(msg.data) + _MESSAGE_OVERHEAD
        if self._inbox and self._inbox_bytes + size > self.max_queued_bytes:
            self.stats["dropped_messages"] += 1
            self.stats["dropped_bytes"] += len(msg.data)
            now = time.monotonic()
            if now - self._drop_logged >= 10.0:
                self._drop_logged = now
                log.warning(
                    "detection is behind (%d messages, %d bytes queued): telemetry is stored "
                    "but not scored; %d messages dropped from detection so far",
                    len(self._inbox),
                    self._inbox_bytes,
                    self.stats["dropped_messages"],
                )
            return
        self._inbox.append(msg.data)
        self._inbox_bytes += size
        self.stats["queued_messages"], self.stats["queued_bytes"] = (
            len(self._inbox),
            self._inbox_bytes,
        )
        self._arrived.set()

    async def _pump_forever(self) -> None:
        warming = asyncio.ensure_future(self._warm())
        while not warming.done():
            if self._closing and not self._inbox:  # nothing to score: don't wait for compiles
                warming.cancel()
                await asyncio.gather(warming, return_exceptions=True)
                return
            arrived = asyncio.ensure_future(self._arrived.wait())
            await asyncio.wait({warming, arrived}, return_when=asyncio.FIRST_COMPLETED)
            arrived.cancel()
            self._arrived.clear()  # the loop below looks at the inbox itself
        while True:
            if not self._inbox:
                if self._closing:
                    return
                await self._arrived.wait()
                self._arrived.clear()
                continue
            async with self._lock:
                # While the loop sends one chunk's results, the worker scores the next one.
                running: asyncio.Future[list[_Scored]] | None = self._next_chunk()
                while running is not None:
                    try:
                        results = await running
                    except Exception:
                        log.exception("scoring telemetry messages failed")
                        results = []
                    running = self._next_chunk() if self._inbox else None
                    for done in results:
                        await self._send(done)

    def _next_chunk(self) -> asyncio.Future:
        chunk = [self._inbox.popleft() for _ in range(min(_CHUNK_MESSAGES, len(self._inbox)))]
        self._inbox_bytes -= sum(len(d) for d in chunk) + _MESSAGE_OVERHEAD * len(chunk)
        self.stats["queued_messages"], self.stats["queued_bytes"] = (
            len(self._inbox),
            self._inbox_bytes,
        )
        return self._submit(self._score_messages, chunk)

    def _score_messages(self, chunk: list[bytes]) -> list[_Scored]:
        from atoll.ingest.events import decode_telemetry

        out = []
        for data in chunk:
            try:
                batch = decode_telemetry(data)
            except (msgspec.DecodeError, ValueError) as exc:  # a bad message is counted, not fatal
                self.stats["bad_messages"] += 1
                log.warning("bad telemetry event: %s", exc)
                continue
            out.append(self._score(batch, keep_events=False))
        return out

    async def process(self, batch: PointBatch) -> list[AnomalyEvent]:
        """Score, store, publish and learn one batch; returns the published events."""
        async with self._lock:
            done = await self._in_worker(self._score, batch)
            return await self._send(done)

    def _score(self, batch: PointBatch, keep_events: bool = True) -> _Scored:
        """Score and learn (in the worker thread); the events and scores to send out.

        Without ``keep_events`` only their JSON is kept: a chunk of messages waiting to be sent
        then holds a few bytes objects rather than an event per reading (fewer objects for the
        garbage collector to walk, which it does holding the GIL)."""
        return self._score_units(self._units(batch), keep_events)

    def _score_units(
        self, units: Iterable[_Unit], keep_events: bool = True, park: bool = True
    ) -> _Scored:
        """``_score`` of readings grouped per detector. With ``park``, the readings of a series
        waiting for its first fit are parked instead (up to ``max_parked``; past that the
        detector it has judges them, and what follows)."""
        t0 = time.perf_counter()
        keys, ts_parts, val_parts = [], [], []
        events_by_device: dict[tuple[str, str], list[AnomalyEvent]] = {}
        #: The newest reading per device whose series have episode decisions (silence checks).
        latest: dict[tuple[str, str], int] = {}
        points = anomalies = 0
        work = deque(units)
        while work:
            key, choice, ts, values = work.popleft()
            tracked = self._tracked(key, choice, ts)
            waiting = park and tracked.parked is not None
            last = max(tracked.last_ts, tracked.parked_last) if waiting else tracked.last_ts
            if ts[0] <= last or (len(ts) > 1 and (ts[1:] <= ts[:-1]).any()):
                # Late, redelivered or same-instant readings: one reading per instant, in order.
                keep = ts > np.maximum.accumulate(np.r_[last, ts[:-1]])
                self.stats["skipped_late"] += int(len(ts) - keep.sum())
                ts, values = ts[keep], values[keep]
                if not len(ts):
                    continue
            if waiting and tracked.parked is not None:
                tracked.parked.append((key, choice, ts, values))
                tracked.parked_n += len(ts)
                tracked.parked_last = int(ts[-1])
                if (
                    tracked.parked_n > self.max_parked
                    or time.monotonic() - tracked.parked_since > self.max_park_seconds
                ):
                    # The fit is slow in coming (many new series queue for the fit thread): the
                    # fallback judges them; the fitted model, once ready, catches up from the store.
                    parked, tracked.parked, tracked.parked_n = tracked.parked, None, 0
                    if tracked.model is None:
                        self._record(key, tracked, "bound")
                    work.extendleft(reversed(parked))
                continue
            # is_anomaly: "score >= threshold", or the detector's own condition flag (hysteresis).
            det = tracked.detector
            explains = self._explains.get(type(det))
            if explains is None:
                explains = self._explains[type(det)] = isinstance(det, Explaining)
            if explains:
                raw, flags, why = explain_many(det, values, ts)
            else:
                raw, flags = decide_many(det, values, ts)
                why = None
            scores = np.asarray(raw, dtype=np.float64)
            scores = np.clip(np.where(np.isnan(scores), 0.0, scores), 0.0, 1.0)
            if tracked.episodes is not None:
                _learn_interval(tracked, ts)
                latest[(key.project, key.device)] = max(
                    latest.get((key.project, key.device), 0), int(ts[-1])
                )
            tracked.last_ts = int(ts[-1])
            version = getattr(tracked.detector, "version", 1)
            raised, banded, frozen = flags, None, None
            if tracked.episodes is not None and values.ndim == 1:
                banded = np.full((len(ts), 3), np.nan)
                frozen = np.zeros(len(ts), dtype=bool)
                flags = tracked.episodes.decide_many(ts, values, raised, banded, frozen)
            pack = None
            if tracked.choice is not None and tracked.choice.fleet is not None and values.ndim == 1:
                fleet = self._fleet(key, tracked.choice.fleet)
                if fleet is not None:
                    pack = _judge_fleet(fleet, key.device, ts, values)
                    if pack[0].any():
                        pack = (pack[0] & ~(flags | raised), pack[1])  # what only the pack saw
                        flags = flags | pack[0]
            flagged = int(np.count_nonzero(flags))  # cheaper than .any()/.sum() on small arrays
            # The detector's own flags include every reading it scored at or above its threshold
            # (a condition flag rises there too): "anomalous" is either decision.
            high = flagged if raised is flags else int(np.count_nonzero(raised))
            spans = tracked.spans
            if flagged or high or tracked.since is not None or (spans and spans[-1][1] == _OPEN):
                _note_flags(tracked, ts, flags, raised)
            anomalies += flagged
            points += len(ts)
            keys.append(SeriesKey(key.project, key.device, score_metric(key.metric)))
            ts_parts.append(ts)
            val_parts.append(scores)
            detector = DetectorRef(tracked.name, version)
            events = events_by_device.setdefault((key.project, key.device), [])
            first = len(events)
            project, device, metric = key
            # Plain Python lists: building an event per reading is this service's main cost.
            rows = zip(ts.tolist(), scores.tolist(), values.tolist(), flags.tolist(), strict=True)
            names: tuple[str, ...] = (metric,)
            if choice is not None and choice.jointly:
                names = choice.jointly
                events.extend(
                    AnomalyEvent(
                        project,
                        device,
                        metric,
                        t,
                        sc,
                        values=dict(zip(names, map(_json_float, v), strict=True)),
                        is_anomaly=f,
                        detector=detector,
                    )
                    for t, sc, v, f in rows
                )
            else:
                events.extend(
                    AnomalyEvent(
                        project, device, metric, t, sc, value=v, is_anomaly=f, detector=detector
                    )
                    for t, sc, v, f in rows
                )
            if flagged or high:
                hot = flags if raised is flags else flags | raised
                bands = self._explain(
                    events, first, hot, names, why, banded, tracked.model, frozen, pack
                )
                for (m, side), (bts, bvals) in bands.items():
                    keys.append(SeriesKey(project, device, expected_metric(m, side)))
                    ts_parts.append(np.asarray(bts, dtype=np.int64))
                    val_parts.append(np.asarray(bvals, dtype=np.float64))
        for device_key, now in latest.items():
            anomalies += self._silent(device_key, now, events_by_device[device_key])
        scores_batch = None
        if keys and self.store is not None:
            scores_batch = PointBatch(
                tuple(keys),
                np.concatenate([np.full(len(t), i, np.int32) for i, t in enumerate(ts_parts)]),
                np.concatenate(ts_parts),
                np.concatenate(val_parts),
            )
        payloads = [
            (topics.bus_anomaly(project, device), encode_anomalies(events))
            for (project, device), events in events_by_device.items()
        ]
        published = (
            [e for events in events_by_device.values() for e in events] if keep_events else []
        )
        return _Scored(
            scores_batch,
            payloads,
            published,
            points,
            anomalies,
            time.perf_counter() - t0,
            1 if park else 0,
        )

    def _fleet(self, key: SeriesKey, spec: dict[str, Any]) -> FleetBaseline | None:
        """The fleet baseline of the series' project, device type and metric (``None`` for a
        device with no type: it has no siblings)."""
        device_type = self._device_info(key.project, key.device)[0]
        if device_type is None:
            return None
        k = (key.project, device_type, key.metric)
        fleet = self._fleets.get(k)
        if fleet is None:
            fleet = self._fleets[k] = fleet_baseline(spec) or FleetBaseline()
        return fleet

    def _silent(self, device_key: tuple[str, str], now: int, events: list[AnomalyEvent]) -> int:
        """Events for the device's series that went silent while the device reports (``now``,
        µs): a sensor that dropped out of its messages. Silent means no reading for
        ``SILENT_INTERVALS`` of its usual intervals and at least ``SILENT_MIN_S`` seconds, once
        the interval has been learned (``SILENT_AFTER`` readings); series with episode decisions
        only. One anomalous event (no value, contributor ``"silent"``) per check while it lasts;
        its next reading is judged as usual, and clears it."""
        found = 0
        for key in self._by_device.get(device_key, ()):
            t = self.series.get(key)
            if (
                t is None
                or t.episodes is None
                or t.seen < SILENT_AFTER
                or now - t.last_ts < max(SILENT_MIN_S * _US, SILENT_INTERVALS * t.interval)
            ):
                continue
            events.append(
                AnomalyEvent(
                    key.project,
                    key.device,
                    key.metric,
                    now,
                    1.0,
                    is_anomaly=True,
                    detector=DetectorRef(t.name, getattr(t.detector, "version", 1)),
                    contributors=[Contributor(SILENT, 1.0)],
                    model=t.model,
                )
            )
            found += 1
        self.stats["silent"] += found
        return found

    def _explain(
        self,
        events: list[AnomalyEvent],
        first: int,
        hot: np.ndarray,
        names: tuple[str, ...],
        why: Explained | None,
        banded: np.ndarray | None,
        model: ModelRef | None,
        frozen: np.ndarray | None = None,
        pack: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[tuple[str, str], tuple[list[int], list[float]]]:
        """Attach the explanation to the anomalous events (``hot``) of one unit, in place;
        returns the expected band's points by ``(metric, "lo" | "hi")``. A reading of a frozen
        run (the episode decision's sensor check) has one contributor, ``"frozen"``; one only
        its fleet baseline flagged (``pack``: flags and bands), ``"fleet"`` and the pack's band."""
        bands: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        for i in np.flatnonzero(hot).tolist():
            e = events[first + i]
            expected: dict[str, Expected] = {}
            by_pack = pack is not None and bool(pack[0][i])
            for j, m in enumerate(names):
                row = None
                if by_pack and pack is not None:
                    row = pack[1][i]  # the pack's band: what set is_anomaly
                elif banded is not None and not math.isnan(banded[i, 0]):
                    row = banded[i]  # the episode decision's band: what set is_anomaly
                elif why is not None and j < why.expected.shape[1]:
                    row = why.expected[i, j]
                if row is None:
                    continue
                x = Expected(*(_json_float(float(v)) for v in row))
                if x.value is None and x.lo is None and x.hi is None:
                    continue
                expected[m] = x
                for side, v in (("lo", x.lo), ("hi", x.hi)):
                    if v is not None:
                        got = bands.setdefault((m, side), ([], []))
                        got[0].append(e.ts)
                        got[1].append(v)
            contributors = None
            if frozen is not None and frozen[i]:
                contributors = [Contributor(FROZEN, 1.0)]
                self.stats["frozen"] += 1
            elif by_pack:
                contributors = [Contributor(FLEET, 1.0)]
            elif why is not None:
                w = why.weights[i]
                if not np.isfinite(w).all():  # a signal with nothing to compare with: it alone
                    w = np.where(np.isfinite(w), 0.0, 1.0)
                total = float(w.sum())
                if total > 0 and math.isfinite(total):
                    order = np.argsort(-w)[:MAX_CONTRIBUTORS]
                    contributors = [
                        Contributor(
                            names[c] if isinstance(c, int) and c < len(names) else str(c),
                            round(float(w[k]) / total, 4),
                        )
                        for k in order.tolist()
                        if w[k] > 0
                        for c in (why.names[k],)
                    ]
            events[first + i] = msgspec.structs.replace(
                e, expected=expected or None, contributors=contributors, model=model
            )
            self.stats["explained"] += 1
        return bands

    async def _send(self, done: _Scored) -> list[AnomalyEvent]:
        """Queue the scores for the store and publish the events (on the event loop)."""
        t0 = time.perf_counter()
        if done.scores is not None:
            self._pending.append(done.scores)
            self._pending_points += done.points
            if self._pending_points >= self.max_pending_points:
                await self.flush()  # back-pressure: a slow store slows the service, not memory
            else:
                self._wake.set()
        for subject, payload in done.payloads:
            await self.bus.publish(subject, payload)
        # Counted once published; ``stored`` follows when the writer has appended the scores.
        self.stats["points"] += done.points
        self.stats["anomalies"] += done.anomalies
        self.stats["messages"] += done.messages
        self.stats["seconds"] += done.seconds + time.perf_counter() - t0
        return done.events

    def _units(self, batch: PointBatch):
        """``(key, choice, ts, values)`` per detector: one per metric, or one per jointly judged
        group with readings lined up by timestamp (NaN where a metric has no reading)."""
        groups: dict[tuple[str, str, tuple[str, ...]], tuple[Choice, dict[str, tuple]]] = {}
        for key, (ts, values) in batch.split().items():
            if derived_metric(key.metric):
                continue  # never judge our own output
            tracked = self.series.get(key)
            choice = None if tracked is not None else self.choose(key)
            if choice is not None and choice.jointly:
                entry = groups.setdefault((key.project, key.device, choice.jointly), (choice, {}))
                entry[1][key.metric] = (ts, values)
            else:
                yield key, choice, ts, values
        for (project, device, metrics), (choice, parts) in groups.items():
            ts = np.unique(np.concatenate([t for t, _ in parts.values()]))
            x = np.full((len(ts), len(metrics)), np.nan)
            for j, m in enumerate(metrics):
                if m in parts:
                    t, v = parts[m]
                    x[np.searchsorted(ts, t), j] = v
            yield SeriesKey(project, device, joint_metric(metrics)), choice, ts, x

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Append pending scores to the store: one append per many messages, off the event loop."""
        async with self._flush_lock:
            while self._pending:
                batch = PointBatch.concat(self._pending)
                # ``stored`` counts scores (one per reading judged), not the expected bands.
                scores = self._pending_points
                self._pending, self._pending_points = [], 0
                try:
                    await asyncio.to_thread(self.store.append, batch)  # type: ignore[union-attr]
                except AtollError as exc:  # scores are derived data: log, count, carry on
                    self.stats["store_errors"] += 1
                    log.error("storing %d anomaly scores failed: %s", len(batch), exc.message)
                    continue
                self.stats["stored"] += scores

    # -- fitting on stored history -----------------------------------------------------------------
    def _want_fit_threadsafe(self, key: SeriesKey, reason: str, until: int | None) -> bool:
        """From the worker thread: queue a fit on the event loop; whether it was queued."""
        loop = self._loop
        if loop is None or loop.is_closed() or self._stopping:
            return False
        try:
            loop.call_soon_threadsafe(self._want_fit, key, reason, until)
        except RuntimeError:  # the loop closed meanwhile
            return False
        return True

    def _want_fit(
        self, key: SeriesKey, reason: str, until: int | None = None, actor: str | None = None
    ) -> _FitJob:
        """Queue a fit of ``key`` (on the loop). A series is queued once: a later request joins
        it (an operator's takes its reason and name)."""
        job = self._fit_jobs.get(key)
        if job is None:
            job = self._fit_jobs[key] = _FitJob(key, reason, until, actor)
        elif reason == "manual":  # joins a queued one, on the history up to now
            job.reason, job.actor, job.until = reason, actor, None
        if self._stopping:
            return job  # stop() judges what waits with the detectors there are
        if self._fitter is None or self._fitter.done():
            self._fitter = asyncio.create_task(self._fit_forever(), name="detect-fits")
        self._fit_wake.set()
        return job

    def _fit_now(self, key: SeriesKey, actor: str | None) -> asyncio.Future:
        """An operator's refit: queued like any, and its ``ModelRecord`` (or why not) awaited."""
        waiter: asyncio.Future = asyncio.get_running_loop().create_future()
        self._want_fit(key, "manual", actor=actor).waiters.append(waiter)
        return waiter

    async def _fit_forever(self) -> None:
        """One fit at a time, in queue order, in the fit thread: scoring goes on meanwhile. The
        worker installs each result (or judges what waited for a declined one) while the next
        fit already runs. First fits go in batches (many new series at once, most of them with no
        history: one hop to the fit thread and one to the worker for all the declined)."""
        while True:
            await self._fit_wake.wait()
            self._fit_wake.clear()
            while self._fit_jobs:
                key = next(iter(self._fit_jobs))
                if self._fit_jobs[key].reason == "bound":
                    batch: list[_FitJob] = []
                    while self._fit_jobs and len(batch) < FIT_BATCH:
                        head = next(iter(self._fit_jobs))
                        if self._fit_jobs[head].reason != "bound":
                            break
                        batch.append(self._fit_jobs.pop(head))
                    await self._first_fits(batch)
                else:
                    await self._refit_one(self._fit_jobs.pop(key))

    def _fit_thread(self) -> ThreadPoolExecutor:
        if self._fit_pool is None:
            self._fit_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="atoll-fit")
        return self._fit_pool

    async def _first_fits(self, jobs: list[_FitJob]) -> None:
        """Series first met: their plans need nothing the worker changes (no hop to a worker that
        may be busy with a long back-log), and their fits run in one go in the fit thread."""
        plans: list[_FitPlan | Exception] = []
        for job in jobs:
            try:
                plans.append(self._fit_plan(job))
            except AtollError as exc:
                plans.append(exc)
        self._fit_running = jobs[0].key
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self._fit_thread(), self._fit_each, plans
            )
        except asyncio.CancelledError:
            _cancel_waiters(jobs)
            raise
        finally:
            self._fit_running = None
        declined: list[tuple[_FitJob, Exception]] = []
        for job, plan, (fit, seconds) in zip(jobs, plans, results, strict=True):
            if isinstance(fit, _Fit) and isinstance(plan, _FitPlan):
                self.stats["fits"] += 1
                self.stats["fit_seconds"] += seconds
                self._finish_later(job, (plan, fit), None)
            else:
                why = fit if isinstance(fit, Exception) else Unavailable("no plan")
                self._count_failure(job, why)
                declined.append((job, why))
        if declined:
            task = asyncio.ensure_future(self._decline(declined))
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)

    def _fit_each(self, plans: list[_FitPlan | Exception]) -> list[tuple[_Fit | Exception, float]]:
        """(fit thread) ``_fit_series`` of each plan: the fit or why not, and its seconds."""
        out: list[tuple[_Fit | Exception, float]] = []
        short = self._short_of_history(plans)
        for i, plan in enumerate(plans):
            t0 = time.perf_counter()
            if isinstance(plan, Exception):
                out.append((plan, 0.0))
                continue
            if i in short:
                out.append((short[i], time.perf_counter() - t0))
                continue
            try:
                out.append((self._fit_series(plan), time.perf_counter() - t0))
            except Exception as exc:
                out.append((exc, time.perf_counter() - t0))
        return out

    def _count_failure(self, job: _FitJob, exc: Exception) -> None:
        if isinstance(exc, AtollError):  # e.g. too little history: it keeps its detector
            self.stats["fits_declined"] += 1
            # A new fleet's every series declines its first fit: not a line each at INFO.
            level = logging.DEBUG if job.reason == "bound" else logging.INFO
            log.log(level, "%s not fitted (%s): %s", job.key, job.reason, exc.message)
        else:
            self.stats["fits_failed"] += 1
            log.error("fitting %s on its history failed", job.key, exc_info=exc)

    async def _decline(self, declined: list[tuple[_FitJob, Exception]]) -> None:
        """What waited for these fits is judged by the detectors the series keep."""
        await self._release_parked([job.key for job, _ in declined])
        for job, exc in declined:
            for waiter in job.waiters:
                if not waiter.done():
                    waiter.set_exception(exc)

    async def _refit_one(self, job: _FitJob) -> None:
        """A refit fits on everything stored: readings still waiting for a first fit are judged
        by the detector the series has, first."""
        self._fit_running = job.key
        try:
            await self._release_parked([job.key])
            plan: _FitPlan = await self._in_worker(self._fit_plan, job)
            t0 = time.perf_counter()
            fit: _Fit = await asyncio.get_running_loop().run_in_executor(
                self._fit_thread(), self._fit_series, plan
            )
            self.stats["fit_seconds"] += time.perf_counter() - t0
            self.stats["fits"] += 1
        except asyncio.CancelledError:  # stopping: nobody waits for this fit any more
            _cancel_waiters([job])
            raise
        except Exception as exc:
            self._count_failure(job, exc)
            self._finish_later(job, None, exc)
        else:
            self._finish_later(job, (plan, fit), None)
        finally:
            self._fit_running = None

    def _finish_later(
        self, job: _FitJob, done: tuple[_FitPlan, _Fit] | None, error: Exception | None
    ) -> None:
        task = asyncio.ensure_future(self._finish(job, done, error))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _finish(
        self, job: _FitJob, done: tuple[_FitPlan, _Fit] | None, error: Exception | None
    ) -> None:
        """Install a fit (and send what it judged), or judge what waited for a declined one with
        the detector the series keeps; then answer whoever waits for the job."""
        record: ModelRecord | None = None
        if done is not None:
            try:
                record, parked = await self._in_worker(self._install, *done)
            except Exception as exc:
                if not isinstance(exc, AtollError):
                    log.exception("installing the model fitted for %s failed", job.key)
                error = exc
            else:
                if parked is not None:
                    await self._send(parked)
        if record is None:
            await self._release_parked([job.key])
        for waiter in job.waiters:
            if waiter.done():
                continue
            if record is None:
                waiter.set_exception(error or Unavailable("the fit did not happen"))
            else:
                waiter.set_result(record)

    async def _release_parked(self, keys: list[SeriesKey] | None = None) -> None:
        """Judge the readings parked for a fit (of ``keys``, or all) with the detector each
        series has now, and send the results."""
        done = await self._in_worker(self._unpark, keys)
        if done is not None:
            await self._send(done)

    def _unpark(self, keys: list[SeriesKey] | None) -> _Scored | None:
        units: list[_Unit] = []
        for key in self.series if keys is None else keys:
            t = self.series.get(key)
            if t is None or t.parked is None:
                continue
            units += t.parked
            t.parked, t.parked_n = None, 0
            if t.model is None:
                self._record(key, t, "bound")
        return self._score_units(units, keep_events=False, park=False) if units else None

    def _fit_plan(self, job: _FitJob) -> _FitPlan:
        """(worker) What to fit ``job.key`` on: its choice, where its history ends, what to skip."""
        t = self.series.get(job.key)
        if t is None:
            raise NotFound(f"no detector judges {job.key.metric!r} of {job.key.device!r}")
        c = self._choice_of(job.key, t)
        if not self.fittable(c):
            raise InvalidInput(
                f"{job.key.metric!r} is judged by {c.name!r}, which learns online and is not "
                "fitted on history",
                hint="bind 'default' or 'fitted' to fit a model of normal on stored history",
            )
        if job.until is not None:
            until = job.until
        elif t.parked:  # readings wait for a first fit: it ends before them, and judges them
            until = int(t.parked[0][2][0])
        else:
            until = t.last_ts + 1
        spans = [(a, b) for a, b in t.spans if a < until]
        # A first fit has no flags of its own to go by; a refit also skips what was scored high.
        threshold = None if job.reason == "bound" else float(t.detector.default_threshold)
        return _FitPlan(job, c, until, spans, threshold)

    def _short_of_history(self, plans: list[_FitPlan | Exception]) -> dict[int, InvalidInput]:
        """(fit thread) First fits of single series that cannot have ``MIN_HISTORY`` readings,
        by index, found with one count for the batch (a new fleet: none has any) where the store
        can count many series at once; the others are read one by one in ``_fit_series``."""
        store = self.store
        if not isinstance(store, RawCounts):
            return {}
        first = [
            (i, p)
            for i, p in enumerate(plans)
            if isinstance(p, _FitPlan) and p.job.reason == "bound" and not p.choice.jointly
        ]
        if not first:
            return {}
        window = int(self.history_window * _US)
        counts = store.count_raw(
            [p.job.key for _, p in first],
            [p.until - window for _, p in first],
            [p.until for _, p in first],
        )
        return {
            i: InvalidInput(
                f"{p.job.key.metric!r} of {p.job.key.device!r} has {n} readings of stored "
                f"history; a fit needs {MIN_HISTORY}",
                hint="it keeps its current detector; refit once more readings are stored",
            )
            for (i, p), n in zip(first, counts, strict=True)
            if n < MIN_HISTORY
        }

    def _fit_series(self, plan: _FitPlan) -> _Fit:
        """(fit thread) Read the stored history, leave out flagged readings, fit a new detector.
        Touches no series state: the worker installs the result."""
        key, c = plan.job.key, plan.choice
        start = plan.until - int(self.history_window * _US)
        ts, x = self._read_history(key, c, start, plan.until)
        skip = np.zeros(len(ts), dtype=bool)
        for a, b in plan.spans:
            skip |= (ts >= a) & (ts < b)
        if plan.score_threshold is not None and len(ts):
            stored = self.store.query_raw(  # type: ignore[union-attr]
                SeriesKey(key.project, key.device, score_metric(key.metric)), int(ts[0]), plan.until
            )
            high = stored.ts[stored.value >= plan.score_threshold]
            if len(high):
                skip |= np.isin(ts, high)
        x = x.copy()
        x[skip] = np.nan  # in place: a long stretch left out starts a new segment after it
        finite = np.isfinite(x) if x.ndim == 1 else np.isfinite(x).any(axis=1)
        rows, excluded = int(finite.sum()), int(skip.sum())
        if resolve(c.name, rows) != DEFAULT_WITH_HISTORY:
            raise InvalidInput(
                f"{key.metric!r} of {key.device!r} has {rows} usable readings of stored history "
                f"(of {len(ts)}, {excluded} left out as flagged); a fit needs {MIN_HISTORY}",
                hint="it keeps its current detector; refit once more readings are stored",
            )
        _, det = self._build(c, key, history=rows)
        det.fit(x, ts)
        return _Fit(det, DEFAULT_WITH_HISTORY, int(ts[0]), int(ts[-1]), rows, excluded)

    def _read_history(
        self, key: SeriesKey, c: Choice, start: int, end: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stored readings in ``[start, end)``, the last ``max_history`` at most: ``(ts, x)``;
        a jointly judged group's lined up by timestamp (NaN where a metric has none)."""
        if not c.jointly:
            return self._read_one(key, start, end)
        parts = [
            self._read_one(SeriesKey(key.project, key.device, m), start, end) for m in c.jointly
        ]
        ts = np.unique(np.concatenate([t for t, _ in parts]))[-self.max_history :]
        x = np.full((len(ts), len(parts)), np.nan)
        for j, (t, v) in enumerate(parts):
            keep = t >= (ts[0] if len(ts) else 0)
            x[np.searchsorted(ts, t[keep]), j] = v[keep]
        return ts, x

    def _read_one(self, key: SeriesKey, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        store = self.store
        assert store is not None  # fits only run with a store
        if start >= end:
            return np.empty(0, np.int64), np.empty(0)
        # Most series met for the first time have too little history to fit (none, on a new
        # fleet): the first MIN_HISTORY readings say so in one small query, and are then all
        # there is. (10,000 new devices: 40,000 first fits, each counting hours first.)
        first = store.query_raw(key, start, end, limit=MIN_HISTORY)
        if len(first.ts) < MIN_HISTORY:
            return first.ts, first.value
        # Count per hour first, so a busy series reads only its last max_history readings.
        counts = store.query_buckets(key, start, end, 3600 * _US, ("count",))
        n = counts.columns["count"]
        if len(n) and n.sum() > self.max_history:
            fits = int(np.searchsorted(np.cumsum(n[::-1]), self.max_history, side="right"))
            if fits:
                start = max(start, int(counts.start[len(n) - fits]))
        got = store.query_raw(key, start, end)
        return got.ts[-self.max_history :], got.value[-self.max_history :]

    def _install(self, plan: _FitPlan, fit: _Fit) -> tuple[ModelRecord, _Scored | None]:
        """(worker) The fitted detector takes over the series: it judges the readings that
        waited for it, or is first brought up to date with the readings judged since its
        history ended (it learns them as it would have live)."""
        key, job = plan.job.key, plan.job
        t = self.series.get(key)
        if t is None:
            raise NotFound(f"no detector judges {key.metric!r} of {key.device!r}")
        if t.parked is None and t.last_ts >= plan.until:
            ts, x = self._read_history(key, plan.choice, plan.until, t.last_ts + 1)
            if len(ts):
                decide_many(fit.detector, x, ts)
        t.detector, t.name, t.choice = fit.detector, fit.name, plan.choice
        t.refit_after = time.time() + self.refit_interval
        record = self._record(
            key,
            t,
            job.reason,
            history_from=fit.history_from,
            history_to=fit.history_to,
            rows=fit.rows,
            excluded=fit.excluded,
            actor=job.actor,
        )
        parked = None
        if t.parked is not None:
            units, t.parked, t.parked_n = t.parked, None, 0
            parked = self._score_units(units, keep_events=False, park=False) if units else None
        return record, parked

    async def _refit_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refit_check)
            try:
                due = await self._in_worker(self._due_refits, time.time())
            except Exception:
                log.exception("looking for series due for a refit failed")
                continue
            for key in due:
                self._want_fit(key, "scheduled")

    def _due_refits(self, now: float) -> list[SeriesKey]:
        """(worker) Series whose scheduled refit is due; each is due again an interval later."""
        due = []
        for key, t in self.series.items():
            if t.refit_after and now >= t.refit_after and key not in self._fit_jobs:
                t.refit_after = now + self.refit_interval
                self._dirty[key] = next(self._marks)
                if self.fittable(self._choice_of(key, t)):
                    due.append(key)
        return due

    # -- what operators ask (the API's DetectionPort) ---------------------------------------------
    async def detection(self, project: str, device: str) -> list[SeriesDetection]:
        """What judges each series of ``device`` now: detector, model record, condition."""
        return await self._in_worker(self._detection, project, device)

    def _detection(self, project: str, device: str) -> list[SeriesDetection]:
        out = []
        for key in self._by_device.get((project, device), []):
            t = self.series[key]
            c = self._choice_of(key, t)
            out.append(
                SeriesDetection(
                    key.metric,
                    t.name,
                    c.name,
                    metrics=c.jointly,
                    model=self.models.current(key),
                    flagged=t.since is not None,
                    flagged_since=t.since,
                    last_ts=t.last_ts if t.last_ts > -(2**63) else None,
                    fitting=key in self._fit_jobs or key == self._fit_running,
                )
            )
        return sorted(out, key=lambda d: d.metric)

    def _series_for(self, project: str, device: str, metric: str) -> SeriesKey:
        """The series that judges ``metric`` (itself, or the jointly judged group it is in)."""
        keys = self._by_device.get((project, device), [])
        for key in keys:
            if key.metric == metric:
                return key
        for key in keys:
            if metric in key.metric.split("+"):
                return key
        raise NotFound(
            f"no detector judges {metric!r} of device {device!r}",
            hint="a metric is judged from its first reading on; GET .../detection lists them",
        )

    async def refit(
        self, project: str, device: str, metric: str | None = None, *, actor: str | None = None
    ) -> tuple[list[ModelRecord], list[tuple[str, str]]]:
        """Refit ``metric``'s model (every fitted series of the device when ``None``) on its stored
        history now; ``(records, [(metric, why not), ...])``. One metric that cannot be refitted
        raises (``InvalidInput`` with the reason)."""
        if metric is not None:
            key = await self._in_worker(self._series_for, project, device, metric)
            return [await self._fit_now(key, actor)], []
        keys = list(self._by_device.get((project, device), []))
        waiters = [(k, self._fit_now(k, actor)) for k in keys]
        done, skipped = [], []
        for k, w in waiters:
            try:
                done.append(await w)
            except AtollError as exc:
                skipped.append((k.metric, exc.message))
        return done, skipped

    async def accept(
        self,
        project: str,
        device: str,
        metric: str,
        start: int,
        end: int,
        *,
        actor: str | None = None,
    ) -> ModelRecord:
        """An operator's "accept as new normal": the stored readings of ``metric`` in
        ``[start, end)`` (µs) are learned as normal, the flag clears, a model record says so."""
        if not start < end:
            raise InvalidInput(f"the range is empty: from ({start}) must be before to ({end})")
        return await self._in_worker(self._accept, project, device, metric, start, end, actor)

    def _accept(
        self, project: str, device: str, metric: str, start: int, end: int, actor: str | None
    ) -> ModelRecord:
        if self.store is None:
            raise Unavailable("the detection service has no store to read the readings from")
        key = self._series_for(project, device, metric)
        t = self.series[key]
        c = self._choice_of(key, t)
        ts, x = self._read_history(key, c, start, end)
        finite = np.isfinite(x) if x.ndim == 1 else np.isfinite(x).any(axis=1)
        if not finite.any():
            raise InvalidInput(
                f"no stored readings of {key.metric!r} of {device!r} in that range",
                hint="pick a range that holds readings (GET .../series/{metric} shows them)",
            )
        _accept_into(t.detector, x, ts)
        if t.episodes is not None and x.ndim == 1:
            t.episodes.accept(ts[-1] / 1e6, x)
        if t.spans and t.spans[-1][1] == _OPEN:
            t.spans[-1][1] = t.last_ts + 1  # the flag clears now
        _subtract_span(t.spans, start, end)
        t.since = None
        return self._record(
            key,
            t,
            "accept",
            actor=actor,
            accepted_from=int(ts[0]),
            accepted_to=int(ts[-1]),
            rows=int(finite.sum()),
        )

    def memory_bytes(self) -> int:
        """Learned state held for all series (the bound is per detector, times the series count)."""
        return sum(
            t.detector.nbytes() + (t.episodes.nbytes() if t.episodes is not None else 0)
            for t in list(self.series.values())
        )


def _cancel_waiters(jobs: list[_FitJob]) -> None:
    for job in jobs:
        for waiter in job.waiters:
            if not waiter.done():
                waiter.set_exception(Unavailable("the detection service stopped"))


def _note_flags(t: _Tracked, ts: np.ndarray, flags: np.ndarray, raised: np.ndarray) -> None:
    """Keep when the published flag rose (``since``) and the spans of readings flagged by the
    decision or the detector (refits leave them out)."""
    if t.since is not None or np.count_nonzero(flags):
        if not flags[-1]:
            t.since = None
        else:
            down = np.flatnonzero(~flags)
            if len(down):
                t.since = int(ts[down[-1] + 1])
            elif t.since is None:
                t.since = int(ts[0])
    union = flags if raised is flags else flags | raised
    spans = t.spans
    still_open = bool(spans) and spans[-1][1] == _OPEN
    if not still_open and not np.count_nonzero(union):
        return
    if still_open and not union[0]:
        spans[-1][1] = int(ts[0])
        still_open = False
    edges = np.diff(np.r_[0, union.view(np.int8), 0])
    n = len(ts)
    rises, falls = np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()
    for a, b in zip(rises, falls, strict=True):
        end = int(ts[b]) if b < n else _OPEN
        if a == 0 and still_open:
            spans[-1][1] = end
        else:
            spans.append([int(ts[a]), end])
    del spans[:-MAX_SPANS]


def _judge_fleet(
    fleet: FleetBaseline, device: str, ts: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The pack's flags and bands (``(n, 3)``: expected, lo, hi; NaN while not judged) of one
    device's readings, in order."""
    flags = np.zeros(len(ts), dtype=bool)
    band = np.full((len(ts), 3), np.nan)
    for i, (t, x) in enumerate(zip(ts.tolist(), values.tolist(), strict=True)):
        j = fleet.observe(device, t, x)
        flags[i] = j.is_anomaly
        if j.lo is not None and j.hi is not None and j.expected is not None:
            band[i] = (j.expected, j.lo, j.hi)
    return flags, band


def _learn_interval(t: _Tracked, ts: np.ndarray) -> None:
    """Move ``t.interval`` towards the interval of these readings (a gap counts as at most three
    usual intervals: one dropout must not teach the series that silence is usual)."""
    n = len(ts)
    if t.last_ts > 0 and n:
        dt = (int(ts[-1]) - t.last_ts) / n
        if t.interval <= 0:
            t.interval = dt
        else:
            t.interval += 0.05 * (min(dt, 3.0 * t.interval) - t.interval)
    t.seen += n


def _subtract_span(spans: list[list[int]], start: int, end: int) -> None:
    """Take ``[start, end)`` out of the flagged spans (accepted readings are normal)."""
    out: list[list[int]] = []
    for a, b in spans:
        if b <= start or a >= end:
            out.append([a, b])
            continue
        if a < start:
            out.append([a, start])
        if b > end:
            out.append([end, b])
    spans[:] = out


def _unwrap(det: Detector) -> tuple[Detector, float | None]:
    """The detector inside a ``Thresholded`` wrapper, and the wrapper's threshold."""
    if isinstance(det, Thresholded):
        return det.detector, det.threshold
    return det, None


def _describe(det: Detector, names: tuple[str, ...] | None) -> dict[str, Any] | None:
    """What a fit chose and calibrated (``FittedDetector.describe``), by metric for a group."""
    if isinstance(det, FittedDetector):
        return det.describe() if det.fitted else None
    sensors = det.sensors if isinstance(det, Joint) else det if isinstance(det, PerSensor) else None
    if sensors is None or names is None:
        return None
    got = {
        m: child.describe()
        for m, child in zip(names, sensors.children, strict=False)
        if isinstance(child, FittedDetector) and child.fitted
    }
    return got or None


def _accept_into(det: Detector, x: np.ndarray, ts: np.ndarray) -> None:
    """Learn ``x`` as normal: a fitted model ``accept``s it (and its flag clears); the sensors of
    a group each take their column. A detector that learns online has learned them already."""
    det, _ = _unwrap(det)
    if isinstance(det, FittedDetector):
        det.accept(x, ts)
        det.restart()  # the next live reading is not the accepted range's successor
    elif isinstance(det, (Joint, PerSensor)):
        sensors = det.sensors if isinstance(det, Joint) else det
        for j, child in enumerate(sensors.children):
            _accept_into(child, x[:, j], ts)


def binding_choices(
    detector: str,
    metrics: list[str] | None = None,
    params: dict[str, Any] | None = None,
    jointly: bool = False,
    threshold: float | None = None,
    decision: dict[str, Any] | None = None,
    fleet: dict[str, Any] | None = None,
) -> dict[str | None, Choice]:
    """A binding's choice per metric (``None``: every metric); ``InvalidInput`` with the fix when
    the detector, its settings, the threshold or the decision settings are not usable."""
    try:
        get_detector(detector, **(params or {}))  # fail now, not on the first reading
    except NotFound as exc:  # a name in a request: bad input, not a missing resource
        raise InvalidInput(exc.message, hint=exc.hint) from None
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise InvalidInput(f"threshold must be in (0, 1], got {threshold!r}")
    if decision is not None:
        decider(decision)  # fail now
    if fleet is not None:
        fleet_baseline(fleet)
        if jointly:
            raise InvalidInput(
                "a fleet baseline judges metrics one by one, not a jointly judged group",
                hint="bind the fleet baseline in a binding of its own, without jointly",
            )
    group: tuple[str, ...] = ()
    if jointly:
        if not metrics or len(metrics) < 2:
            raise InvalidInput(
                "judging jointly needs at least two metrics",
                hint="list the machine's metrics, e.g. metrics=['flow', 'pressure']",
            )
        group = tuple(metrics)
    each: list[str | None] = [*metrics] if metrics else [None]
    c = Choice(
        detector,
        dict(params or {}),
        group,
        threshold,
        None if decision is None or group else dict(decision),
        None if fleet is None else dict(fleet),
    )
    return dict.fromkeys(each, c)


def check_binding(
    detector: str,
    metrics: list[str] | None = None,
    params: dict[str, Any] | None = None,
    jointly: bool = False,
    threshold: float | None = None,
    decision: dict[str, Any] | None = None,
    fleet: dict[str, Any] | None = None,
) -> None:
    """``InvalidInput`` with the fix unless the binding can be used (what the API checks before a
    device type keeps it)."""
    binding_choices(detector, metrics, params, jointly, threshold, decision, fleet)


def _choice_row(c: Choice) -> list[Any]:
    return [c.name, c.params, list(c.jointly), c.threshold, c.decision, c.fleet]


def _choice_of_row(row: list[Any]) -> Choice:
    name, params, jointly, threshold, *rest = row
    return Choice(
        name,
        dict(params),
        tuple(jointly),
        threshold,
        rest[0] if rest else None,
        rest[1] if len(rest) > 1 else None,
    )


def _json_float(v: float) -> float | None:
    return None if math.isnan(v) else v  # NaN is not JSON


def create_service(ctx: ServiceContext) -> DetectionService:
    """The platform's hook (``atoll.platform.SERVICE_MODULES``)."""
    from atoll.bus.nats_partitions import partitioned_for

    home, s = Path(ctx.settings.home), ctx.settings
    # On NATS: partitioned by device, state in per-partition checkpoints (docs/SCALING.md);
    # in-process: one subscription and the state file, as ever.
    parts = partitioned_for(ctx.bus, "detect", lease_s=s.detect_lease_s)
    return DetectionService(
        ctx.bus,
        ctx.store,
        registry=ctx.registry,
        state_path=None if parts else home / "detect" / "state.msgpack",
        kernel_cache=home,
        refit_interval=s.detect_refit_interval_s,
        history_window=s.detect_history_s,
        max_history=s.detect_max_history,
        partitions=parts[0] if parts else None,
        checkpoints=parts[1] if parts else None,
        lateness=s.detect_lateness_s,
        checkpoint_interval=s.detect_checkpoint_s,
        catalog=ctx.registry,
    )
