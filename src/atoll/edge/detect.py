"""Detection at the edge (issue #15, item 5): the platform's detectors judge readings on the
gateway, so a gateway cut off from the platform still raises local alarms.

``LocalDetection`` is a ``ReadingSink`` in front of the agent's durable buffer. ``put`` first
hands the readings to the buffer (nothing is judged that is not kept), then judges each series
with the same detector the platform uses by default (``atoll.detect``'s ``"default"``) and the
platform's episode decision (``EpisodeDecider``: an alarm is raised once per episode and cleared
when the episode ends), and finally:

* buffers what it judged as the **gateway's own readings**, forwarded like any other when the
  uplink is back: ``{child}.{metric}.score`` (every reading's score) and
  ``{child}.{metric}.alarm`` (1 when a local alarm is raised, 0 when it clears). A gateway
  without a device type may send any metric name, so these need no declaration;
* runs the configured **actions** on each raise and clear: a webhook on the gateway's network
  (``Webhook``), or a connector's output (``ConnectorOutput``: a Modbus coil, an OPC UA method,
  through ``Connector.command``). An action that fails is counted and logged; it never stops
  the readings.

Readings older than the last one judged of their series (a connector's re-send after a
reconnect, say) are buffered but not judged again. Detector and episode state is saved to
``state_path`` (msgpack, written to a temporary file, synced, renamed) every ``save_every_s``
and on ``close``, so a restarted gateway keeps what it learned.

>>> import asyncio
>>> from atoll.edge.port import EdgeReading
>>> class Kept:
...     def __init__(self): self.readings = []
...     async def put(self, readings): self.readings += readings
>>> buffer = Kept()
>>> local = LocalDetection(buffer, gateway="gw-1", decision={"warmup": 0, "min_readings": 20})
>>> calm = [EdgeReading("press-1", i * 1_000_000, {"temp": 20.0 + 0.1 * (i % 3)})
...         for i in range(300)]
>>> asyncio.run(local.put(calm))
>>> local.status()["alarms_raised"]
0
>>> hot = [EdgeReading("press-1", (300 + i) * 1_000_000, {"temp": 60.0}) for i in range(5)]
>>> asyncio.run(local.put(hot))
>>> local.status()["alarms_raised"], local.status()["active"]
(1, ['press-1.temp'])
>>> sorted({m for r in buffer.readings if r.device == "gw-1" for m in r.values})
['press-1.temp.alarm', 'press-1.temp.score']
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import msgspec
import numpy as np

from atoll.detect import DEFAULT, get_detector, restore
from atoll.detect.episodes import EpisodeDecider, decider
from atoll.detect.port import Detector
from atoll.detect.threshold import decide_many
from atoll.edge.port import BufferStopped, CommandFailed, Connector, EdgeReading, ReadingSink

log = logging.getLogger(__name__)

STATE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class LocalAlarm:
    """A local alarm raised or cleared on the gateway."""

    device: str
    metric: str
    state: Literal["raised", "cleared"]
    ts_us: int
    value: float
    score: float

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "metric": self.metric,
            "state": self.state,
            "ts": self.ts_us / 1e6,
            "value": self.value,
            "score": self.score,
        }


class AlarmAction(Protocol):
    """What the gateway does when a local alarm is raised or cleared."""

    @property
    def name(self) -> str: ...

    async def __call__(self, alarm: LocalAlarm) -> None:
        """Carry it out; raise on failure (the caller counts and logs it)."""
        ...


class Webhook:
    """POST the alarm as JSON to a URL on the gateway's network (a siren controller, a local
    SCADA, a shop-floor display). A non-2xx answer is a failure."""

    def __init__(self, url: str, *, timeout_s: float = 5.0, headers: Mapping[str, str] = {}):
        self.url, self.timeout_s, self.headers = url, timeout_s, dict(headers)

    @property
    def name(self) -> str:
        return f"webhook {self.url}"

    async def __call__(self, alarm: LocalAlarm) -> None:
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            r = await client.post(self.url, json=alarm.to_json(), headers=self.headers)
        if r.status_code >= 300:
            raise RuntimeError(f"{self.url} answered {r.status_code}")


class ConnectorOutput:
    """A connector's command as a digital output: ``command`` with ``args`` plus
    ``{"on": true}`` when an alarm is raised and ``{"on": false}`` when it clears (a Modbus coil,
    an OPC UA method)."""

    def __init__(
        self, connector: Connector, device: str, command: str, args: Mapping[str, Any] = {}
    ) -> None:
        self.connector, self.device, self.command, self.args = connector, device, command, args

    @property
    def name(self) -> str:
        return f"{self.connector.name}:{self.device}.{self.command}"

    async def __call__(self, alarm: LocalAlarm) -> None:
        args = {**self.args, "on": alarm.state == "raised"}
        try:
            await self.connector.command(self.device, self.command, args)
        except CommandFailed as e:
            raise RuntimeError(str(e)) from e


class _Series:
    __slots__ = ("alarm", "decider", "detector", "last_ts")

    def __init__(self, detector: Detector, episodes: EpisodeDecider) -> None:
        self.detector, self.decider = detector, episodes
        self.last_ts = -(2**63)
        self.alarm = False


class LocalDetection:
    """A ``ReadingSink`` that keeps readings in ``buffer`` and judges them on the gateway."""

    def __init__(
        self,
        buffer: ReadingSink,
        *,
        gateway: str,
        actions: Sequence[AlarmAction] = (),
        detector: str = DEFAULT,
        decision: Mapping[str, Any] | None = None,
        state_path: Path | None = None,
        save_every_s: float = 60.0,
    ) -> None:
        self._buffer, self.gateway, self.actions = buffer, gateway, tuple(actions)
        self._detector_name = detector
        self._decision = dict(decision or {})
        get_detector(detector)  # an unknown name fails here, at configuration
        decider(self._decision)  # and bad episode settings
        self._series: dict[tuple[str, str], _Series] = {}
        self._state_path, self._save_every = state_path, save_every_s
        self._saved_at = time.monotonic()
        self._lock = asyncio.Lock()
        self.counters = {
            "judged": 0,
            "not_judged_late": 0,
            "alarms_raised": 0,
            "alarms_cleared": 0,
            "action_failures": 0,
            "scores_not_buffered": 0,
        }
        if state_path is not None and state_path.exists():
            self._load(state_path)

    # -- the sink ---------------------------------------------------------------------------

    async def put(self, readings: Sequence[EdgeReading]) -> None:
        await self._buffer.put(readings)  # durable first; BufferStopped goes to the connector
        async with self._lock:  # series state is judged in order, one batch at a time
            own, alarms = self._judge(readings)
            if own:
                try:
                    await self._buffer.put(own)
                except BufferStopped:
                    self.counters["scores_not_buffered"] += len(own)
            for alarm in alarms:
                await self._act(alarm)
            if self._state_path is not None and (
                time.monotonic() - self._saved_at >= self._save_every
            ):
                await asyncio.to_thread(self.save)

    def _judge(self, readings: Sequence[EdgeReading]) -> tuple[list[EdgeReading], list[LocalAlarm]]:
        by_series: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for r in readings:
            for metric, v in r.values.items():
                by_series.setdefault((r.device, metric), []).append((r.ts_us, float(v)))
        own: dict[int, dict[str, float]] = {}
        alarms: list[LocalAlarm] = []
        for (device, metric), points in by_series.items():
            s = self._series.get((device, metric))
            if s is None:
                s = _Series(get_detector(self._detector_name), EpisodeDecider(**self._decision))
                self._series[(device, metric)] = s
            points.sort()
            fresh = [(t, v) for t, v in points if t > s.last_ts]
            self.counters["not_judged_late"] += len(points) - len(fresh)
            if not fresh:
                continue
            ts = np.fromiter((t for t, _ in fresh), np.int64, len(fresh))
            values = np.fromiter((v for _, v in fresh), np.float64, len(fresh))
            raw, flags = decide_many(s.detector, values, ts)
            scores = np.clip(np.nan_to_num(np.asarray(raw, dtype=np.float64), nan=0.0), 0.0, 1.0)
            on = s.decider.decide_many(ts, values, np.asarray(flags, dtype=bool))
            self.counters["judged"] += len(fresh)
            name = f"{device}.{metric}"
            for t, v, score, now in zip(ts.tolist(), values.tolist(), scores, on, strict=True):
                row = own.setdefault(t, {})
                row[f"{name}.score"] = float(score)
                if bool(now) != s.alarm:
                    s.alarm = bool(now)
                    state: Literal["raised", "cleared"] = "raised" if now else "cleared"
                    alarms.append(LocalAlarm(device, metric, state, t, v, float(score)))
                    self.counters["alarms_raised" if now else "alarms_cleared"] += 1
                    row[f"{name}.alarm"] = 1.0 if now else 0.0
            s.last_ts = int(ts[-1])
        return [EdgeReading(self.gateway, t, v) for t, v in sorted(own.items())], alarms

    async def _act(self, alarm: LocalAlarm) -> None:
        log.warning(
            "local alarm %s: %s.%s at %s (value %s, score %.3f)",
            alarm.state,
            alarm.device,
            alarm.metric,
            alarm.ts_us,
            alarm.value,
            alarm.score,
        )
        for action in self.actions:
            try:
                await action(alarm)
            except Exception as e:  # any failure of the outside world: counted, never fatal
                self.counters["action_failures"] += 1
                log.error("local alarm action %s failed: %s", action.name, e)

    # -- status and state -------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """For the gateway's reported twin: counters and the alarms active now."""
        active = sorted(f"{d}.{m}" for (d, m), s in self._series.items() if s.alarm)
        return {**self.counters, "series": len(self._series), "active": active}

    def save(self) -> None:
        """Write every series' state (detector, episode, last time judged, alarm) atomically."""
        if self._state_path is None:
            return
        rows = [
            (d, m, s.detector.state(), s.decider.state(), s.last_ts, s.alarm)
            for (d, m), s in self._series.items()
        ]
        data = msgspec.msgpack.encode(
            {"format": STATE_FORMAT, "detector": self._detector_name, "series": rows}
        )
        tmp = self._state_path.with_name(self._state_path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._state_path)
        self._saved_at = time.monotonic()

    def _load(self, path: Path) -> None:
        try:
            data = msgspec.msgpack.decode(path.read_bytes())
            if data.get("format") != STATE_FORMAT or data.get("detector") != self._detector_name:
                raise ValueError("another format or detector")
            for d, m, det, dec, last_ts, alarm in data["series"]:
                s = _Series(restore(det), EpisodeDecider.from_state(dec))
                s.last_ts, s.alarm = int(last_ts), bool(alarm)
                self._series[(d, m)] = s
        except Exception as e:  # a damaged or foreign file: start afresh, never a crash loop
            self._series.clear()
            bad = path.with_name(path.name + ".bad")
            with contextlib.suppress(OSError):
                os.replace(path, bad)
            log.error("edge detection state %s not usable (%s): moved to %s", path, e, bad)

    async def close(self) -> None:
        async with self._lock:
            if self._state_path is not None:
                await asyncio.to_thread(self.save)


__all__ = ["AlarmAction", "ConnectorOutput", "LocalAlarm", "LocalDetection", "Webhook"]
