"""Live updates for the console: ``WS /api/v1/live?project=P&token=KEY``.

Browsers cannot put headers on a WebSocket, so the API key comes in the query string (or as
``Authorization: Bearer`` from other clients). The socket subscribes to the project's bus
subjects and forwards JSON arrays of events, coalesced every ``FLUSH_S``:

- ``{"type": "telemetry", "device", "ts", "values": {metric: last value}}`` — one per device
  per flush, newest values only; plus ``"points": {metric: [[ts, v], ...]}`` for devices the
  client watches (send ``{"watch": ["dev-1", ...]}``), so a chart can draw every reading;
- ``{"type": "anomaly", "device", "metric", "ts", "score", ...}``: an
  ``atoll.core.events.AnomalyEvent``;
- ``{"type": "alarm", "event", "actor", "device", "alarm": {...}}``;
- ``{"type": "twin", "device", ...}`` and ``{"type": "command_ack", "device", ...}``.

Timestamps are epoch milliseconds, like the series API. A slow client loses intermediate
telemetry (the latest values always win), never alarms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec
import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from atoll.api.context import ApiContext
from atoll.api.deps import TENANT_HEADER, act_in_tenant
from atoll.core import topics
from atoll.core.errors import AtollError
from atoll.core.events import decode_anomalies
from atoll.core.time import MS, floor_to
from atoll.ingest.events import decode_telemetry

log = logging.getLogger(__name__)
router = APIRouter(tags=["live"])

FLUSH_S = 0.1
MAX_WATCH = 50
MAX_POINTS_PER_FLUSH = 5000
MAX_EVENTS = 10_000  # queued non-telemetry events per socket before it is dropped as too slow


class _Feed:
    """Per-socket buffer between bus callbacks and the socket writer."""

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any]] = {}  # device -> {"ts", "values"}
        self.points: dict[str, dict[str, list]] = {}  # watched device -> metric -> [[ts, v]]
        self.events: list[dict[str, Any]] = []
        self.watch: set[str] = set()
        self.wake = asyncio.Event()
        self.overflow = False

    def telemetry(self, data: bytes) -> None:
        batch = decode_telemetry(data)
        for key, (ts, val) in batch.split().items():
            if not len(ts):
                continue
            dev = self.latest.setdefault(key.device, {"ts": 0, "values": {}})
            last_ms = int(ts[-1]) // 1000
            dev["ts"] = max(last_ms, dev["ts"])
            dev["values"][key.metric] = float(val[-1])
            if key.device in self.watch:
                pts = self.points.setdefault(key.device, {}).setdefault(key.metric, [])
                pts.extend(zip((ts // 1000).tolist(), val.tolist(), strict=True))
                if len(pts) > MAX_POINTS_PER_FLUSH:
                    del pts[: len(pts) - MAX_POINTS_PER_FLUSH]
        self.wake.set()

    def anomalies(self, data: bytes) -> None:
        for e in decode_anomalies(data):
            doc = msgspec.to_builtins(e)
            # µs on the bus, epoch ms for the console (like the series API).
            self._add({"type": "anomaly", **doc, "ts": floor_to(e.ts, MS)})

    def event(self, kind: str, data: bytes) -> None:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        for item in doc if isinstance(doc, list) else [doc]:
            if not isinstance(item, dict):
                continue
            msg = {"type": kind, **item}
            if kind == "alarm" and isinstance(item.get("alarm"), dict):
                msg["device"] = item["alarm"].get("device")
            self._add(msg)

    def _add(self, msg: dict[str, Any]) -> None:
        self.events.append(msg)
        if len(self.events) > MAX_EVENTS:
            self.overflow = True
        self.wake.set()

    def drain(self) -> list[dict[str, Any]]:
        out = self.events
        self.events = []
        for device, d in self.latest.items():
            msg = {"type": "telemetry", "device": device, "ts": d["ts"], "values": d["values"]}
            if device in self.points:
                msg["points"] = self.points[device]
            out.append(msg)
        self.latest = {}
        self.points = {}
        return out


async def _authorize(ws: WebSocket, project: str, token: str | None, tenant: str | None = None):
    ctx = ws.app.state.ctx
    if not token:
        header = ws.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        token = value if scheme.lower() == "bearer" else None
    if not token:
        return None, "missing API key: add ?token=<api key>"
    principal = await run_in_threadpool(ctx.registry.authenticate_key, token)
    if principal is None:
        return None, "invalid, expired or revoked API key"
    try:
        # Browsers can't set headers on a WebSocket, so the tenant comes as ?tenant= here.
        principal = await run_in_threadpool(
            act_in_tenant, ctx.registry, principal, tenant or ws.headers.get(TENANT_HEADER)
        )
        # Scoped like every REST call: even the platform admin sees one tenant's data at a time.
        await run_in_threadpool(ctx.registry.get_project, project, principal.tenant)
    except AtollError as exc:
        return None, exc.message
    return principal, None


@router.websocket("/live")
async def live(
    ws: WebSocket, project: str | None = None, token: str | None = None, tenant: str | None = None
) -> None:
    # Refusals happen after the handshake: a browser sees the close code and reason, while a
    # refused handshake only shows up as an opaque network error.
    await ws.accept()
    if not project:
        await ws.close(code=4400, reason="add ?project=<project id>")
        return
    principal, why = await _authorize(ws, project, token, tenant)
    if principal is None:
        await ws.close(code=4401 if "key" in why else 4404, reason=why[:120])
        return
    ctx: ApiContext = ws.app.state.ctx
    bus = ctx.bus
    if bus is None:
        await ws.close(code=4503, reason="live updates need the platform's message bus")
        return
    feed = _Feed()

    async def on_telemetry(msg) -> None:
        try:
            feed.telemetry(msg.data)
        except Exception:  # a malformed event must not kill the other subscribers
            log.exception("live: bad telemetry event on %s", msg.subject)

    async def on_anomalies(msg) -> None:
        try:
            feed.anomalies(msg.data)
        except AtollError as exc:
            log.warning("live: bad anomaly event on %s: %s", msg.subject, exc.message)

    def forward(kind: str):
        async def handler(msg) -> None:
            feed.event(kind, msg.data)

        return handler

    subs = [
        await bus.subscribe(topics.bus_telemetry(project, "*"), on_telemetry),
        await bus.subscribe(topics.bus_anomaly(project, "*"), on_anomalies),
        await bus.subscribe(topics.bus_twin(project, "*"), forward("twin")),
        await bus.subscribe(topics.bus_command_ack(project, "*"), forward("command_ack")),
        await bus.subscribe(topics.bus_alarm(project), forward("alarm")),
    ]

    async def reader() -> None:
        # Client → server: {"watch": [device ids]} picks the devices that get every point.
        while True:
            text = await ws.receive_text()
            try:
                doc = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("watch"), list):
                feed.watch = {str(d) for d in doc["watch"][:MAX_WATCH]}

    async def writer() -> None:
        await ws.send_text(orjson.dumps([{"type": "hello", "project": project}]).decode())
        while True:
            await feed.wake.wait()
            feed.wake.clear()
            if feed.overflow:
                await ws.close(code=4008, reason="client too slow; reconnect")
                return
            out = feed.drain()
            if out:
                await ws.send_text(orjson.dumps(out).decode())
            await asyncio.sleep(FLUSH_S)

    tasks = [asyncio.create_task(reader()), asyncio.create_task(writer())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except WebSocketDisconnect:
        pass
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        for s in subs:
            with contextlib.suppress(Exception):
                await s.unsubscribe()
