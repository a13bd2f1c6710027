"""The edge agent: connectors → durable buffer → forwarder, managed from the platform.

Composition. ``EdgeAgent(config)`` opens the buffer, starts every configured connector
(``connector.run(buffer)``, restarted after a crash, left stopped after a configuration
error) and the forwarder, and publishes its status to the gateway's reported twin every
``status_interval_s``.

Managed from the platform. A ``connectors`` key in the gateway's desired twin replaces the
connector list: it is validated first (every entry built by its type's factory); an invalid
list is reported (``edge.config.status = "error"`` with the reason) and the running
connectors stay. An accepted list is saved in the buffer directory (``desired.json``), so a
restart without uplink runs it. Commands to a child go to the connector that owns it and are
answered on the command's ack topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import TypeAdapter, ValidationError

from atoll import __version__
from atoll.core import topics
from atoll.core.errors import AtollError
from atoll.edge.buffer import DurableBuffer
from atoll.edge.config import (
    ConnectorSettings,
    DetectionSettings,
    EdgeConfig,
    OutputSettings,
    explain,
)
from atoll.edge.connectors import CONNECTORS, ConnectorFactory
from atoll.edge.forwarder import Forwarder
from atoll.edge.port import CommandFailed, Connector, ReadingSink

if TYPE_CHECKING:
    from atoll.edge.detect import LocalAlarm, LocalDetection

log = logging.getLogger("atoll.edge")

_SETTINGS_LIST = TypeAdapter(list[ConnectorSettings])
COMMAND_TIMEOUT_S = 30.0
_RESTART_S = 5.0


def build_connectors(
    entries: Sequence[ConnectorSettings], factories: Mapping[str, ConnectorFactory]
) -> list[Connector]:
    """Every entry built by its type's factory; ``ValueError`` naming the first bad one."""
    names = [e.name for e in entries]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"connector names must be unique: {', '.join(dup)} repeated")
    out = []
    for e in entries:
        factory = factories.get(e.type)
        if factory is None:
            known = ", ".join(sorted(factories))
            raise ValueError(f"connector {e.name}: unknown type {e.type!r} (known: {known})")
        try:
            out.append(factory(e.model_dump()))
        except ValidationError as err:
            raise ValueError(explain(err, f"connector {e.name}")) from err
        except (ValueError, TypeError) as err:
            raise ValueError(f"connector {e.name}: {err}") from err
    children: dict[str, str] = {}
    for c in out:
        for d in c.devices():
            if d.id in children:
                raise ValueError(
                    f"child {d.id} is read by both {children[d.id]} and {c.name}: "
                    "a child belongs to one connector"
                )
            children[d.id] = c.name
    return out


def parse_connector_list(raw: Any) -> list[ConnectorSettings]:
    try:
        return _SETTINGS_LIST.validate_python(raw)
    except ValidationError as e:
        raise ValueError(explain(e, "connectors")) from e


@dataclass(slots=True)
class _Running:
    connector: Connector
    task: asyncio.Task[None]
    error: str | None = None
    restarts: int = 0


@dataclass(slots=True)
class ConfigState:
    status: str = "ok"  # "ok" | "error"
    source: str = "file"  # "file" | "twin" | "saved twin"
    error: str | None = None
    at: str | None = None
    connectors: list[str] = field(default_factory=list)


def _now_iso(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t, UTC).isoformat(
        timespec="seconds"
    )


class EdgeAgent:
    def __init__(
        self, config: EdgeConfig, factories: Mapping[str, ConnectorFactory] = CONNECTORS
    ) -> None:
        self.config = config
        self.factories = factories
        self.gateway = config.gateway.id
        b = config.buffer
        self.buffer = DurableBuffer(b.dir, max_bytes=int(b.max_bytes), policy=b.full_policy)
        self.desired_path = Path(b.dir) / "desired.json"
        self.running: dict[str, _Running] = {}
        self.config_state = ConfigState()
        self._applied: bytes | None = None  # the connector list now running, canonical JSON
        self._tasks: set[asyncio.Task[Any]] = set()
        self.forwarder: Forwarder | None = None
        self.detection: LocalDetection | None = None
        self.sink: ReadingSink = self.buffer  # what connectors put into
        self.started = time.time()

    # --- life cycle ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> dict[str, Any]:
        """Run until ``stop`` is set; returns the run's summary."""
        if self.config.detection.enabled:
            self.detection = self.sink = build_detection(
                self.config.detection,
                self.buffer,
                self.gateway,
                Path(self.config.buffer.dir) / "detection.state",
                self._connector,
            )
        self.buffer.open()
        self.forwarder = Forwarder(
            self.buffer,
            self.config.link(),
            children=self.children,
            on_message=self._on_message,
            max_message_bytes=self.config.max_message_bytes,
            max_inflight=self.config.max_inflight,
            max_points=self.config.max_points_per_message,
            reconnect_max_s=self.config.reconnect_max_s,
        )
        start_depth = self.buffer.stats().depth
        await self._start_initial_connectors()
        fwd_stop = asyncio.Event()  # set once the connectors are stopped: their last readings go
        fwd = asyncio.create_task(self.forwarder.run(fwd_stop))
        status = asyncio.create_task(self._status_loop())
        try:
            await stop.wait()
        finally:
            await self._stop_connectors()
            await self.buffer.settle()
            if self.detection is not None:
                await self.detection.close()  # what it learned, for the next run
            fwd_stop.set()
            status.cancel()
            await asyncio.gather(status, return_exceptions=True)
            await fwd
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            stats = self.buffer.stats()
            self.buffer.close()
        return {
            "seconds": round(time.time() - self.started, 1),
            "buffered_at_start": start_depth,
            "readings_forwarded": self.forwarder.readings_acked,
            "messages_forwarded": self.forwarder.messages_acked,
            "connections": self.forwarder.connections,
            "buffer": stats.to_dict(),
        }

    async def _start_initial_connectors(self) -> None:
        entries = self.config.connectors
        source = "file"
        if self.desired_path.exists():
            try:
                entries = parse_connector_list(orjson.loads(self.desired_path.read_bytes()))
                source = "saved twin"
            except (ValueError, orjson.JSONDecodeError) as e:
                log.error("ignoring %s (%s): using the configuration file", self.desired_path, e)
        try:
            connectors = build_connectors(entries, self.factories)
        except ValueError as e:
            self.config_state = ConfigState("error", source, str(e), _now_iso())
            log.error("connector configuration refused: %s", e)
            return
        self._start(connectors)
        self._applied = _canonical(entries)
        self.config_state = ConfigState(
            "ok", source, None, _now_iso(), [c.name for c in connectors]
        )

    def _start(self, connectors: Sequence[Connector]) -> None:
        for c in connectors:
            run = _Running(c, asyncio.create_task(asyncio.sleep(0)))
            run.task = asyncio.create_task(self._supervise(run), name=f"connector {c.name}")
            self.running[c.name] = run

    async def _supervise(self, run: _Running) -> None:
        """Run a connector; a crash restarts it after a pause, a configuration error stops it."""
        while True:
            try:
                await run.connector.run(self.sink)
                return
            except asyncio.CancelledError:
                raise
            except ValueError as e:
                run.error = f"configuration: {e}"
                log.error("connector %s stopped: %s", run.connector.name, e)
                return
            except Exception as e:
                run.error = repr(e)
                run.restarts += 1
                log.exception("connector %s failed; restarting", run.connector.name)
                await asyncio.sleep(_RESTART_S)

    async def _stop_connectors(self) -> None:
        runs = list(self.running.values())
        self.running = {}
        for r in runs:
            r.task.cancel()
        await asyncio.gather(*(r.task for r in runs), return_exceptions=True)

    def _connector(self, name: str) -> Connector | None:
        run = self.running.get(name)
        return run.connector if run else None

    def children(self) -> dict[str, str | None]:
        return {d.id: d.device_type for r in self.running.values() for d in r.connector.devices()}

    # --- from the platform -----------------------------------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        gw = self.gateway
        if topic == topics.twin_desired(gw):
            self._spawn(self.apply_desired(payload))
            return
        prefix = topics.gateway_command(gw, "", "").rstrip("/")
        rest = topic[len(prefix) :].strip("/").split("/") if topic.startswith(prefix) else []
        if len(rest) == 2:
            self._spawn(self._command(rest[0], rest[1], payload))

    def _spawn(self, coro: Any) -> None:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def apply_desired(self, payload: bytes) -> None:
        try:
            doc = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError as e:
            self._refuse(f"desired twin is not JSON: {e}")
            return
        if not isinstance(doc, dict) or "connectors" not in doc:
            return
        raw = doc["connectors"]
        try:
            entries = parse_connector_list(raw)
            if _canonical(entries) == self._applied and self.config_state.status == "ok":
                return  # the retained desired twin, again after a reconnect
            connectors = build_connectors(entries, self.factories)
        except ValueError as e:
            self._refuse(str(e))
            return
        await self._stop_connectors()
        self._start(connectors)
        self._applied = _canonical(entries)
        _write_atomic(self.desired_path, orjson.dumps([e.model_dump(mode="json") for e in entries]))
        self.config_state = ConfigState(
            "ok", "twin", None, _now_iso(), [c.name for c in connectors]
        )
        log.info("connectors from the desired twin: %s", ", ".join(self.config_state.connectors))
        await self.publish_status()

    def _refuse(self, reason: str) -> None:
        log.error("desired connector configuration refused: %s", reason)
        running = list(self.running)
        self.config_state = ConfigState(
            "error", self.config_state.source, reason, _now_iso(), running
        )
        self._spawn(self.publish_status())

    async def _command(self, child: str, command_id: str, payload: bytes) -> None:
        status, result = "error", None
        try:
            doc = orjson.loads(payload)
            if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
                raise CommandFailed("a command needs a JSON object with a name")
            args = doc.get("args") or {}
            if not isinstance(args, dict):
                raise CommandFailed("args must be a JSON object")
            owner = next(
                (
                    r.connector
                    for r in self.running.values()
                    if any(d.id == child for d in r.connector.devices())
                ),
                None,
            )
            if owner is None:
                raise CommandFailed(f"no connector of this gateway reads {child}")
            result = await asyncio.wait_for(
                owner.command(child, doc["name"], args), COMMAND_TIMEOUT_S
            )
            status = "ok"
        except orjson.JSONDecodeError:
            result = "command payload is not JSON"
        except CommandFailed as e:
            result = str(e)
        except TimeoutError:
            result = f"no answer from the connector within {COMMAND_TIMEOUT_S:.0f} s"
        except Exception as e:  # a connector's bug is the command's failure, not the agent's
            log.exception("command %s to %s failed", command_id, child)
            result = f"connector error: {e!r}"
        assert self.forwarder is not None
        try:
            body = orjson.dumps({"status": status, "result": result}, default=str)
            await self.forwarder.publish(
                topics.gateway_command_ack(self.gateway, child, command_id), body
            )
        except ConnectionError:
            log.warning("command %s answered while offline: the answer is lost", command_id)

    # --- status ----------------------------------------------------------------------------

    def status(self, buffer_stats: Mapping[str, Any]) -> dict[str, Any]:
        fwd = self.forwarder
        connectors = {}
        for name, r in self.running.items():
            try:
                s = dict(r.connector.status())
            except Exception as e:
                s = {"status_error": repr(e)}
            if r.error:
                s["error"] = r.error
            if r.restarts:
                s["restarts"] = r.restarts
            connectors[name] = s
        last = fwd.last_contact if fwd else None
        return {
            "edge": {
                "buffer": dict(buffer_stats),
                "connectors": connectors,
                "forwarder": fwd.status() if fwd else {},
                "config": {
                    "status": self.config_state.status,
                    "source": self.config_state.source,
                    "error": self.config_state.error,
                    "at": self.config_state.at,
                    "connectors": self.config_state.connectors,
                },
                **({"detection": self.detection.status()} if self.detection else {}),
                "last_contact": _now_iso(last) if last else None,
                "version": __version__,
            }
        }

    async def publish_status(self) -> None:
        if self.forwarder is None or not self.forwarder.connected:
            return
        st = await self.buffer.stats_async()
        keys = ("depth", "bytes", "oldest_unsent_age_s", "dropped", "quarantined")
        buf = {k: getattr(st, k) for k in keys}
        buf["quarantined_readings"] = st.quarantined_readings
        body = orjson.dumps(self.status(buf))
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(
                self.forwarder.publish(topics.twin_reported(self.gateway), body), 10
            )

    async def _status_loop(self) -> None:
        was_connected = False
        next_at = 0.0
        while True:
            connected = self.forwarder is not None and self.forwarder.connected
            if connected and (not was_connected or time.monotonic() >= next_at):
                await asyncio.sleep(0.2)  # let the connection's own set-up go first
                await self.publish_status()
                next_at = time.monotonic() + self.config.status_interval_s
            was_connected = connected
            await asyncio.sleep(0.25)


class _RoutedOutput:
    """A local alarm's output through whichever connector of that name runs now (the
    connector list may be replaced from the desired twin)."""

    def __init__(self, settings: OutputSettings, lookup: Callable[[str], Connector | None]):
        self.settings, self.lookup = settings, lookup

    @property
    def name(self) -> str:
        s = self.settings
        return f"{s.connector}:{s.device}.{s.command}"

    async def __call__(self, alarm: LocalAlarm) -> None:
        from atoll.edge.detect import ConnectorOutput

        s = self.settings
        connector = self.lookup(s.connector)
        if connector is None:
            raise RuntimeError(f"no connector named {s.connector} is running")
        await ConnectorOutput(connector, s.device, s.command, s.args)(alarm)


def build_detection(
    settings: DetectionSettings,
    buffer: ReadingSink,
    gateway: str,
    state_path: Path | None,
    lookup: Callable[[str], Connector | None],
) -> LocalDetection:
    """Detection at the edge in front of ``buffer``; ``ValueError`` for a bad detector or
    decision setting."""
    from atoll.edge.detect import AlarmAction, LocalDetection, Webhook

    actions: list[AlarmAction] = [
        Webhook(w.url, timeout_s=w.timeout_s, headers=w.headers) for w in settings.webhooks
    ]
    actions += [_RoutedOutput(o, lookup) for o in settings.outputs]
    try:
        return LocalDetection(
            buffer,
            gateway=gateway,
            actions=actions,
            detector=settings.detector,
            decision=settings.decision,
            state_path=state_path,
            save_every_s=settings.save_every_s,
        )
    except AtollError as e:
        raise ValueError(f"detection: {e.message}" + (f" ({e.hint})" if e.hint else "")) from e
    except (KeyError, TypeError) as e:
        raise ValueError(f"detection: {e}") from e


def _canonical(entries: Sequence[ConnectorSettings]) -> bytes:
    return orjson.dumps([e.model_dump(mode="json") for e in entries], option=orjson.OPT_SORT_KEYS)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
