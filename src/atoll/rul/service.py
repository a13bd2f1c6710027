"""The RUL service: fits a device type's RUL model from the fleet, and scores live devices with
the active one.

**Fitting** (``submit``; ``POST /projects/{p}/rul/fit``, ``atoll rul fit``) queues a fit job
(``atoll.rul.jobs``): a worker thread reads the type's run-to-failure trajectories
(``atoll.rul.fleet``), fits ``RulModel`` on them, files the model as the next **draft** ``rul``
version of ``type:<device type>`` and keeps its files in ``<home>/models/rul/<model id>/``.
Someone with the operator role approves and activates it (docs/MODELS.md); only the active
version scores.

**Scoring.** The service listens to ``telemetry.>`` and only notes which devices sent something
(nothing is decoded on the event loop). Every ``interval`` seconds a worker thread takes the
devices noted since, and for each whose type has an active RUL model and whose newest reading is
in a later cycle than the one last judged, scores the run under way up to the last **complete**
cycle (one time bucket of the model, one hour by default). It writes four series on the device,
stamped at the end of that cycle, through the store and the bus like telemetry (so rules see
them):

* ``rul``, ``rul_lo``, ``rul_hi``: the estimate and its interval, in **hours**;
* ``rul_model_version``: the registry version of the model that judged (the model is the ``rul``
  model of the device's type with that version: ``GET /projects/{p}/models?kind=rul&scope=type:T``).

The active models are read from the registry again every ``refresh`` seconds: an activation,
rollback or retirement takes effect then, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atoll.bus.port import Message, MessageBus, Subscription
from atoll.core import topics
from atoll.core.errors import AtollError
from atoll.core.points import PointBatch, SeriesKey
from atoll.ingest.events import encode_telemetry
from atoll.registry import Registry
from atoll.registry.models import RulFit
from atoll.rul import fleet
from atoll.rul.fleet import RUL, RUL_HI, RUL_LO, RUL_METRICS, RUL_VERSION, Deployed
from atoll.rul.jobs import FitJobs
from atoll.rul.retrain import Retrainer
from atoll.service import ServiceContext
from atoll.store.port import SeriesStore

log = logging.getLogger(__name__)


@dataclass
class _Project:
    at: float = 0.0
    #: device type -> the active model, loaded
    models: dict[str, Deployed] = field(default_factory=dict)
    #: device -> its type
    types: dict[str, str | None] = field(default_factory=dict)


class RulService:
    def __init__(
        self,
        bus: MessageBus,
        store: SeriesStore,
        registry: Registry,
        models_dir: Path,
        *,
        interval: float = 10.0,
        refresh: float = 30.0,
        group: str | None = None,
        retrain_check: float = 60.0,
    ) -> None:
        self.bus, self.store, self.registry = bus, store, registry
        self.models_dir = Path(models_dir)
        self.interval, self.refresh, self.group = interval, refresh, group
        self._dirty: set[tuple[str, str]] = set()
        self._projects: dict[str, _Project] = {}
        #: device -> the last bucket judged
        self._last: dict[str, int] = {}
        self._missing: set[str] = set()
        self._sub: Subscription | None = None
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="atoll-rul")
        self.jobs = FitJobs(registry, store, self.models_dir)
        self.retrainer = Retrainer(registry, self.jobs)
        self.retrain_check = retrain_check
        self._retrain_at = time.monotonic()
        self.stats = {"scored": 0, "rounds": 0, "errors": 0}

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        self._sub = await self.bus.subscribe(
            topics.ALL_TELEMETRY, self._on_telemetry, group=self.group
        )
        self._task = asyncio.create_task(self._tick_forever(), name="atoll-rul")

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._pool.shutdown(wait=True)
        await asyncio.to_thread(self.jobs.close)

    # -- fitting ---------------------------------------------------------------------------------
    def submit(
        self,
        project: str,
        device_type: str,
        *,
        actor: str,
        tenant: str | None = None,
        cycle: int = fleet.HOUR,
        since: int | None = None,
        until: int | None = None,
        cap: float = 125.0,
    ) -> RulFit:
        """Queue a fit of ``device_type``'s RUL model (``atoll.rul.jobs``): the job, queued."""
        return self.jobs.submit(
            project,
            device_type,
            actor=actor,
            tenant=tenant,
            cycle=cycle,
            since=since,
            until=until,
            cap=cap,
        )

    async def wait(self, project: str, fit_id: str, timeout: float = 900.0) -> RulFit:
        """The fit once it is done or failed (or as it is after ``timeout`` s)."""
        return await self.jobs.wait(project, fit_id, timeout)

    # -- scoring ---------------------------------------------------------------------------------
    async def _on_telemetry(self, msg: Message) -> None:
        parts = msg.subject.split(".", 2)
        if len(parts) == 3:
            self._dirty.add((parts[1], parts[2]))

    async def retrain_now(self) -> list[RulFit]:
        """Queue the retrainings due now (``atoll.rul.retrain``): the jobs."""
        self._retrain_at = time.monotonic()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.retrainer.check)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                if time.monotonic() - self._retrain_at >= self.retrain_check:
                    await self.retrain_now()
                await self.score_now()
            except Exception:  # keep scoring the next round
                self.stats["errors"] += 1
                log.exception("an RUL scoring round failed")

    async def score_now(self) -> int:
        """Score the devices noted since the last round now; how many got an estimate."""
        dirty, self._dirty = self._dirty, set()
        if not dirty:
            return 0
        loop = asyncio.get_running_loop()
        events = await loop.run_in_executor(self._pool, self._round, dirty)
        for subject, data in events:
            await self.bus.publish(subject, data)
        return len(events)

    def _round(self, dirty: set[tuple[str, str]]) -> list[tuple[str, bytes]]:
        try:
            return self._round_of(dirty)
        finally:
            self.stats["rounds"] += 1  # rounds finished

    def _round_of(self, dirty: set[tuple[str, str]]) -> list[tuple[str, bytes]]:
        out = []
        for project in sorted({p for p, _ in dirty}):
            try:
                state = self._project(project)
            except AtollError as exc:  # the project went away
                log.info("RUL: project %s skipped: %s", project, exc)
                continue
            for p, device in sorted(dirty):
                if p != project:
                    continue
                device_type = state.types.get(device)
                deployed = state.models.get(device_type) if device_type else None
                if deployed is None:
                    continue
                try:
                    event = self._score(project, device, deployed)
                except Exception:
                    self.stats["errors"] += 1
                    log.exception("RUL: scoring %s/%s failed", project, device)
                    continue
                if event is not None:
                    out.append(event)
        return out

    def _project(self, project: str) -> _Project:
        state = self._projects.get(project)
        now = time.monotonic()
        if state is not None and now - state.at < self.refresh:
            return state
        active = self.registry.list_models(project, kind="rul", state="active")
        models: dict[str, Deployed] = {}
        for m in active:
            device_type = m.scope.removeprefix("type:")
            if not m.scope.startswith("type:"):
                continue
            old = state.models.get(device_type) if state else None
            if old is not None and old.id == m.id:
                models[device_type] = old
                continue
            try:
                models[device_type] = fleet.load(self.models_dir, m, self.registry)
            except AtollError as exc:
                if m.id not in self._missing:
                    self._missing.add(m.id)
                    log.warning("RUL: active model %s cannot score here: %s", m.id, exc)
        types = {d: t for d, (t, _) in self.registry.device_profiles(project).items()}
        state = self._projects[project] = _Project(now, models, types)
        return state

    def _score(self, project: str, device: str, d: Deployed) -> tuple[str, bytes] | None:
        latest = self.store.latest(project, device)
        seen = [latest[k][0] for k in latest if k.metric in d.metrics]
        if not seen:
            return None
        done = max(seen) // d.cycle - 1  # the last complete cycle
        last = self._last.get(device)
        if last is None:
            judged = latest.get(SeriesKey(project, device, RUL))
            last = judged[0] // d.cycle - 1 if judged else -1
        if done <= last:
            return None
        e = fleet.score(self.registry, self.store, project, device, d, done)
        self._last[device] = done
        if e is None:
            return None
        metrics = list(RUL_METRICS)
        values = [d.hours(e.rul), d.hours(e.low), d.hours(e.high), float(d.version)]
        assert metrics == [RUL, RUL_LO, RUL_HI, RUL_VERSION]
        keys = tuple(SeriesKey(project, device, m) for m in metrics)
        ts = np.full(len(keys), e.at, dtype=np.int64)
        self.store.append(
            PointBatch(keys, np.arange(len(keys), dtype=np.int32), ts, np.asarray(values))
        )
        self.stats["scored"] += 1
        data = encode_telemetry(project, device, metrics, list(range(4)), ts.tolist(), values)
        return topics.bus_telemetry(project, device), data


def create_service(ctx: ServiceContext) -> RulService:
    """The platform's hook (``atoll.platform.SERVICE_MODULES``)."""
    s = ctx.settings
    return RulService(
        ctx.bus,
        ctx.store,
        ctx.registry,
        Path(s.home) / "models" / "rul",
        interval=s.rul_interval_s,
        refresh=s.rul_refresh_s,
        group="rul",
        retrain_check=s.rul_retrain_check_s,
    )
