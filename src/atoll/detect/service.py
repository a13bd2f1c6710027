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

State survives restarts: every detector's ``state()`` (and the ``bind`` choices) go to
``<home>/detect/state.msgpack``
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
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from atoll.bus.port import Message, MessageBus, Subscription
from atoll.core import topics
from atoll.core.errors import AtollError, InvalidInput
from atoll.core.events import (
    AnomalyEvent,
    DetectorRef,
    encode_anomalies,
    joint_metric,
    score_metric,
    scored_metric,
)
from atoll.core.points import PointBatch, SeriesKey
from atoll.detect.episodes import EpisodeDecider, decider
from atoll.detect.port import Detector
from atoll.detect.registry import for_features, get_detector, resolve, restore
from atoll.detect.threshold import Thresholded, decide_many
from atoll.detect.warmup import use_kernel_cache, warm_up
from atoll.service import ServiceContext
from atoll.store.port import SeriesStore

log = logging.getLogger(__name__)

DEVICE_LABEL = "detector"
_STATE_FORMAT = 1
#: Messages handed to the worker thread at once (one hop to the thread per chunk, not per message).
_CHUNK_MESSAGES = 256
#: What a queued message costs besides its bytes (the bytes object and the deque slot).
_MESSAGE_OVERHEAD = 100


@dataclass
class _Tracked:
    detector: Detector
    name: str
    last_ts: int = -(2**63)
    #: Episode decisions for ``is_anomaly`` (``None``: the detector's reading-level decision).
    episodes: EpisodeDecider | None = None


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
    ) -> None:
        self.bus, self.store, self.registry = bus, store, registry
        self.state_path = Path(state_path) if state_path is not None else None
        self.snapshot_interval = snapshot_interval
        self.group, self.default = group, default
        self.series: dict[SeriesKey, _Tracked] = {}
        self._bindings: dict[tuple[str, str, str | None], Choice] = {}
        self._device_choice: dict[str, tuple[float, tuple[str | None, dict[str, str]]]] = {}
        self.device_cache_seconds = 60.0
        self._sub: Subscription | None = None
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
            "state_dropped": 0,
            "seconds": 0.0,
            "queued_messages": 0,
            "queued_bytes": 0,
            "dropped_messages": 0,
            "dropped_bytes": 0,
            "warm_up_seconds": 0.0,
            "warmed_detectors": 0,
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
    ) -> None:
        """Use ``detector`` for ``metrics`` (all when ``None``) of devices of ``device_type``.

        ``threshold`` overrides the detector's own decision threshold for ``is_anomaly`` (fewer
        or more alarms, same scores). ``decision`` (e.g. ``{}`` for the defaults, or
        ``{"z": 5, "min_count": 3, "window": 300}``) makes ``is_anomaly`` an episode decision
        (``atoll.detect.episodes``) instead of a per-reading one; univariate metrics only.

        With ``jointly=True`` the listed metrics of each device are judged together by one
        multivariate detector (``for_features``), readings lined up by timestamp; the score is the
        series ``<m1+m2+...>.anomaly_score`` and events carry ``"values"`` instead of ``"value"``.
        """
        get_detector(detector, **(params or {}))  # fail now, not on the first reading
        if threshold is not None and not 0.0 < threshold <= 1.0:
            raise InvalidInput(f"threshold must be in (0, 1], got {threshold!r}")
        if decision is not None:
            decider(decision)  # fail now
        group: tuple[str, ...] = ()
        if jointly:
            if not metrics or len(metrics) < 2:
                raise InvalidInput(
                    "judging jointly needs at least two metrics",
                    hint="list the machine's metrics, e.g. metrics=['flow', 'pressure']",
                )
            group = tuple(metrics)
        each: list[str | None] = [*metrics] if metrics else [None]
        for m in each:
            self._bindings[(project, device_type, m)] = Choice(
                detector,
                dict(params or {}),
                group,
                threshold,
                None if decision is None or group else dict(decision),
            )

    def _device_info(self, device: str) -> tuple[str | None, dict[str, str]]:
        # Only consulted for series without a detector yet; cached briefly so a device's new type
        # or label applies to its next new series.
        now = time.monotonic()
        hit = self._device_choice.get(device)
        if hit is not None and hit[0] > now:
            return hit[1]
        info: tuple[str | None, dict[str, str]] = (None, {})
        if self.registry is not None:
            with contextlib.suppress(AtollError):
                d = self.registry.get_device(device)
                info = (d.device_type, dict(d.labels or {}))
        self._device_choice[device] = (now + self.device_cache_seconds, info)
        return info

    def choose(self, key: SeriesKey) -> Choice:
        device_type, labels = self._device_info(key.device)
        if device_type is not None:
            for m in (key.metric, None):
                c = self._bindings.get((key.project, device_type, m))
                if c is not None:
                    return c
        if labels.get(DEVICE_LABEL):
            return Choice(labels[DEVICE_LABEL])
        return Choice(self.default)

    def _build(self, c: Choice, key: SeriesKey | None = None) -> tuple[Choice, Detector]:
        try:
            det = (
                for_features(len(c.jointly), c.name, **c.params)
                if c.jointly
                else get_detector(c.name, **c.params)
            )
        except AtollError as exc:
            log.warning(
                "detector %r for %s unusable (%s); using the default", c.name, key, exc.message
            )
            c, det = Choice(self.default), get_detector(self.default)
        if c.threshold is not None:
            det = Thresholded(det, c.threshold)
        return c, det

    def _tracked(self, key: SeriesKey, choice: Choice | None = None) -> _Tracked:
        t = self.series.get(key)
        if t is None:
            c, det = self._build(choice or self.choose(key), key)
            t = self.series[key] = _Tracked(det, resolve(c.name), episodes=decider(c.decision))
        return t

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Subscribe and return; kernels compile in a thread of their own meanwhile (``ready``)."""
        self._closing = False
        if self.state_path is not None:
            await self._in_worker(self._load)
        if self.store is not None:
            self._writer = asyncio.create_task(self._write_forever(), name="detect-score-writer")
        self._pump = asyncio.create_task(self._pump_forever(), name="detect-pump")
        self._sub = await self.bus.subscribe(
            topics.ALL_TELEMETRY, self._on_telemetry, group=self.group
        )
        if self.state_path is not None and self.snapshot_interval > 0:
            self._snapshotter = asyncio.create_task(
                self._snapshot_forever(), name="detect-snapshots"
            )

    async def stop(self) -> None:
        """Unsubscribe, score what is queued (after the warm-up, if that is still running), store
        the scores and save the state."""
        if self._snapshotter is not None:
            self._snapshotter.cancel()
            await asyncio.gather(self._snapshotter, return_exceptions=True)
            self._snapshotter = None
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        if self._pump is not None:
            self._closing = True
            self._arrived.set()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
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
            await self.snapshot()
        if self._worker is not None:
            self._worker.shutdown(wait=False)  # idle by now; a later ``process`` makes a new one
            self._worker = None

    def _submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        # One thread: detector state is only ever touched there, in submission order.
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
    def _encode_state(self) -> bytes:
        return msgspec.msgpack.encode(
            {
                "format": _STATE_FORMAT,
                "series": [
                    [
                        k.project,
                        k.device,
                        k.metric,
                        t.name,
                        t.last_ts,
                        t.detector.state(),
                        None if t.episodes is None else t.episodes.state(),
                    ]
                    for k, t in self.series.items()
                ],
                "bindings": [
                    [p, dt, m, c.name, c.params, list(c.jointly), c.threshold, c.decision]
                    for (p, dt, m), c in self._bindings.items()
                ],
            }
        )

    async def snapshot(self) -> None:
        """Write every detector's state (atomically: a crash mid-write keeps the previous file)."""
        if self.state_path is None:
            return
        blob = await self._in_worker(self._encode_state)
        await asyncio.to_thread(_write_atomic, self.state_path, blob)
        self.stats["snapshots"] += 1

    def _load(self) -> None:
        if self.state_path is None or not self.state_path.is_file():
            return
        try:
            raw = msgspec.msgpack.decode(self.state_path.read_bytes())
            if raw.get("format") != _STATE_FORMAT:
                raise InvalidInput(f"unknown detector state format {raw.get('format')!r}")
            for project, device, metric, name, last_ts, blob, *rest in raw["series"]:
                key = SeriesKey(project, device, metric)
                try:
                    episodes = EpisodeDecider.from_state(rest[0]) if rest and rest[0] else None
                    self.series[key] = _Tracked(restore(blob), name, last_ts, episodes)
                except AtollError as exc:
                    # E.g. a detector whose state layout changed in an upgrade: that series
                    # learns afresh, the others keep what they learned.
                    self.stats["state_dropped"] += 1
                    log.warning(
                        "detector state of %s not restorable (%s); it starts fresh",
                        key,
                        exc.message,
                    )
            for project, device_type, metric, name, params, jointly, threshold, *rest in raw.get(
                "bindings", []
            ):
                # Bindings made since (e.g. by a template applied at start-up) take precedence.
                self._bindings.setdefault(
                    (project, device_type, metric),
                    Choice(
                        name, dict(params), tuple(jointly), threshold, rest[0] if rest else None
                    ),
                )
        except (msgspec.DecodeError, AtollError, ValueError, KeyError, TypeError) as exc:
            # Learning starts over rather than the platform refusing to start; keep the file.
            bad = self.state_path.with_suffix(".unreadable")
            self.state_path.replace(bad)
            self.series.clear()
            log.error(
                "detector state %s unreadable (%s); moved to %s, starting fresh",
                self.state_path,
                exc,
                bad,
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
        t0 = time.perf_counter()
        keys, ts_parts, val_parts = [], [], []
        events_by_device: dict[tuple[str, str], list[AnomalyEvent]] = {}
        points = anomalies = 0
        for key, choice, ts, values in self._units(batch):
            tracked = self._tracked(key, choice)
            if ts[0] <= tracked.last_ts or (len(ts) > 1 and (ts[1:] <= ts[:-1]).any()):
                # Late, redelivered or same-instant readings: one reading per instant, in order.
                keep = ts > np.maximum.accumulate(np.r_[tracked.last_ts, ts[:-1]])
                self.stats["skipped_late"] += int(len(ts) - keep.sum())
                ts, values = ts[keep], values[keep]
                if not len(ts):
                    continue
            # is_anomaly: "score >= threshold", or the detector's own condition flag (hysteresis).
            raw, flags = decide_many(tracked.detector, values, ts)
            scores = np.asarray(raw, dtype=np.float64)
            scores = np.clip(np.where(np.isnan(scores), 0.0, scores), 0.0, 1.0)
            tracked.last_ts = int(ts[-1])
            version = getattr(tracked.detector, "version", 1)
            if tracked.episodes is not None and values.ndim == 1:
                flags = tracked.episodes.decide_many(ts, values, flags)
            anomalies += int(flags.sum())
            points += len(ts)
            keys.append(SeriesKey(key.project, key.device, score_metric(key.metric)))
            ts_parts.append(ts)
            val_parts.append(scores)
            detector = DetectorRef(tracked.name, version)
            events = events_by_device.setdefault((key.project, key.device), [])
            project, device, metric = key
            # Plain Python lists: building an event per reading is this service's main cost.
            rows = zip(ts.tolist(), scores.tolist(), values.tolist(), flags.tolist(), strict=True)
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
            scores_batch, payloads, published, points, anomalies, time.perf_counter() - t0
        )

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
        self.stats["messages"] += 1
        self.stats["seconds"] += done.seconds + time.perf_counter() - t0
        return done.events

    def _units(self, batch: PointBatch):
        """``(key, choice, ts, values)`` per detector: one per metric, or one per jointly judged
        group with readings lined up by timestamp (NaN where a metric has no reading)."""
        groups: dict[tuple[str, str, tuple[str, ...]], tuple[Choice, dict[str, tuple]]] = {}
        for key, (ts, values) in batch.split().items():
            if scored_metric(key.metric) is not None:
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
                self._pending, self._pending_points = [], 0
                try:
                    await asyncio.to_thread(self.store.append, batch)  # type: ignore[union-attr]
                except AtollError as exc:  # scores are derived data: log, count, carry on
                    self.stats["store_errors"] += 1
                    log.error("storing %d anomaly scores failed: %s", len(batch), exc.message)
                    continue
                self.stats["stored"] += len(batch)

    def memory_bytes(self) -> int:
        """Learned state held for all series (the bound is per detector, times the series count)."""
        return sum(
            t.detector.nbytes() + (t.episodes.nbytes() if t.episodes is not None else 0)
            for t in list(self.series.values())
        )


def _json_float(v: float) -> float | None:
    return None if math.isnan(v) else v  # NaN is not JSON


def _write_atomic(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def create_service(ctx: ServiceContext) -> DetectionService:
    """The platform's hook (``atoll.platform.SERVICE_MODULES``)."""
    home = Path(ctx.settings.home)
    return DetectionService(
        ctx.bus,
        ctx.store,
        registry=ctx.registry,
        state_path=home / "detect" / "state.msgpack",
        kernel_cache=home,
    )
