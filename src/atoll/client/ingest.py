"""``DeviceClient``: the device side of the API over HTTP (Basic auth with id and secret)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from atoll.client._http import Http, TimeLike, build
from atoll.client.devices import Command, Twin


def _reading(ts: TimeLike, values: Mapping[str, float | int | bool]) -> dict[str, Any]:
    reading: dict[str, Any] = {"values": dict(values)}
    if isinstance(ts, datetime):
        reading["ts"] = int((ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp() * 1000)
    elif ts is not None:
        reading["ts"] = int(ts) if isinstance(ts, float) else ts
    return reading


class DeviceClient(Http):
    """The device side over HTTP (Basic auth with the device id and secret)."""

    def __init__(
        self,
        base_url: str,
        device_id: str,
        secret: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, auth=(device_id, secret), timeout=timeout, transport=transport)
        self.device_id = device_id

    def send(self, values: Mapping[str, float | int | bool], *, ts: TimeLike = None) -> int:
        """Send one reading; returns the number of points stored durably."""
        reply = self._call("POST", "/ingest/telemetry", json=_reading(ts, values))
        accepted: int = reply["accepted"]
        return accepted

    def send_batch(
        self, readings: Iterable[tuple[TimeLike, Mapping[str, float | int | bool]]]
    ) -> int:
        """Send ``(ts, values)`` pairs in one request; accepted or refused as a whole."""
        body = [_reading(ts, values) for ts, values in readings]
        accepted: int = self._call("POST", "/ingest/telemetry", json=body)["accepted"]
        return accepted

    def send_children(
        self,
        parts: Mapping[
            str,
            Mapping[str, float | int | bool]
            | Iterable[tuple[TimeLike, Mapping[str, float | int | bool]]],
        ],
        *,
        ts: TimeLike = None,
    ) -> dict[str, Any]:
        """For a gateway: send its child devices' telemetry in one request. ``parts`` maps each
        child (its id as chosen, no tenant prefix) to one reading's values (at ``ts``) or to
        ``(ts, values)`` pairs. Returns ``{"accepted": {child: points}, "refused": {child:
        {"reason", "message"}}}``; the accepted parts are durable."""
        body = {
            child: _reading(ts, part)
            if isinstance(part, Mapping)
            else [_reading(t, values) for t, values in part]
            for child, part in parts.items()
        }
        reply: dict[str, Any] = self._call("POST", "/ingest/gateway/telemetry", json=body)
        return reply

    def report(self, properties: Mapping[str, Any]) -> Twin:
        """Merge reported twin properties."""
        return build(Twin, self._call("PUT", "/ingest/twin/reported", json=dict(properties)))

    def desired(self) -> tuple[dict[str, Any], int]:
        d = self._call("GET", "/ingest/twin/desired")
        return d["desired"], d["version"]

    def pending_commands(self) -> list[Command]:
        return [build(Command, c) for c in self._call("GET", "/ingest/commands")]

    def ack(self, command_id: str, ok: bool = True, result: Any = None) -> Command:
        return build(
            Command,
            self._call(
                "POST",
                f"/ingest/commands/{command_id}/ack",
                json={"status": "ok" if ok else "error", "result": result},
            ),
        )
