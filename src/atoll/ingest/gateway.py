"""A gateway's messages for its child devices: ``gateway/connect``, ``gateway/telemetry`` and
``gateway/commands/{child}/{id}/ack`` (docs/DEVICES.md, "Gateways"). Every transport (MQTT
embedded and external, HTTP) comes here through ``dispatch`` or the HTTP route.

A gateway names each child by its id as chosen at registration (no tenant prefix); which
devices it may speak for is ``atoll.core.acl.is_gateway_child``, asked of every child a
message names. The children's identities come from the registry's cache (``known_identities``),
so a gateway's steady stream costs no registry read; a child not cached yet is read once, for
all of a message's children together, in a worker thread.

What a gateway sends for a child is handled exactly as if the child had sent it itself: its
telemetry is validated against the child's device type, stored and published as the child's,
and counted (last seen, usage, rate limits, rejections) on the child. Rate limits: each part
is charged to its child and the tenant; over HTTP a part of a child over its limit is refused
(``rate_limited``), over MQTT the gateway's message waits until the children and the tenant
are out of debt (counted as ``throttled`` on the gateway). The gateway's own ``last_seen``
says when it was last in contact. What the gateway gets
wrong about the children themselves (a device that is not its child, a malformed id) is
counted on the gateway as ``gateway_child`` and logged; the rest of the message goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from atoll.core import acl, topics
from atoll.core.errors import Conflict, InvalidInput, NotFound, QuotaExceeded, RateLimited
from atoll.ingest.devices import Identity
from atoll.ingest.pipeline import RATE_LIMITED, IngestPipeline
from atoll.ingest.validate import MALFORMED_JSON, TOO_LARGE, WRONG_TYPE, InvalidTelemetry

log = logging.getLogger(__name__)

#: A gateway named a device it may not speak for, or declared a child it may not have.
GATEWAY_CHILD = "gateway_child"
#: Children in one ``gateway/telemetry`` message, at most.
MAX_CHILDREN = 1000

#: Publishes an answer to the gateway (``topic, payload``); the broker's ``publish``.
Reply = Callable[[str, bytes], Awaitable[None]]

_parts = msgspec.json.Decoder(dict[str, msgspec.Raw])


@dataclass
class GatewayResult:
    """What became of a ``gateway/telemetry`` message, child by child (names as sent)."""

    #: Points stored per child.
    accepted: dict[str, int] = field(default_factory=dict)
    #: ``{child: {"reason": ..., "message": ...}}`` of the parts refused.
    refused: dict[str, dict[str, str]] = field(default_factory=dict)


async def children(
    pipeline: IngestPipeline, gateway: Identity, names: list[str]
) -> dict[str, tuple[str, Identity | None] | InvalidInput]:
    """Each name's stored id and identity (``None``: unknown or disabled), or why the name is
    refused as a device id; identities from the cache, the rest in one worker-thread read."""
    directory = pipeline.require_directory()
    ids: dict[str, str | InvalidInput] = {}
    for name in names:
        try:
            ids[name] = directory.child_id(gateway.tenant, name)
        except InvalidInput as e:
            ids[name] = e
    wanted = [i for i in ids.values() if isinstance(i, str)]
    found: dict[str, Identity | None] = dict(directory.known_identities(wanted))
    missing = [i for i in wanted if i not in found]
    if missing:
        found.update(await asyncio.to_thread(directory.device_identities, missing))
    return {
        name: (i if isinstance(i, InvalidInput) else (i, found.get(i))) for name, i in ids.items()
    }


def refuse_child(
    pipeline: IngestPipeline, gateway: Identity, transport: str, what: str, name: str, why: str
) -> str:
    message = f"{what}: {_short(name)} {why}"
    pipeline.reject(gateway.device, transport, GATEWAY_CHILD, message)
    return message


def not_a_child(found: tuple[str, Identity | None] | InvalidInput, gateway: Identity) -> str | None:
    """Why the gateway may not speak for this child (``None``: it may)."""
    if isinstance(found, InvalidInput):
        return f"is not a valid device id ({found.message})"
    if not acl.is_gateway_child(gateway, found[1]):
        return (
            f"is not a child of gateway {gateway.device!r} (unknown, disabled, another "
            "gateway's, or not registered with a parent)"
        )
    return None


async def telemetry(
    pipeline: IngestPipeline, gateway: Identity, body: bytes, transport: str = "mqtt"
) -> GatewayResult:
    """Validate, then durably store, each child's part of a ``gateway/telemetry`` message.

    A malformed message as a whole raises ``InvalidInput`` (counted on the gateway);
    ``Unavailable`` (the store failed) propagates: nothing may be acknowledged.
    """
    parts = _decode_parts(pipeline, gateway, body, transport)
    result = GatewayResult()
    found = await children(pipeline, gateway, list(parts))
    parsed = []
    debt = 0.0  # seconds the children (or their tenant) are over their rate limit
    for name, raw in parts.items():
        why = not_a_child(found[name], gateway)
        if why is not None:
            msg = refuse_child(pipeline, gateway, transport, "gateway/telemetry", name, why)
            result.refused[name] = {"reason": GATEWAY_CHILD, "message": msg}
            continue
        child = found[name][1]  # type: ignore[index]
        assert child is not None
        if transport == "http":  # HTTP can refuse: over the limit is a refused part, as 429
            try:
                pipeline.admit(child, transport)  # counted on the child
            except RateLimited as e:
                result.refused[name] = {"reason": RATE_LIMITED, "message": e.message}
                continue
        try:
            p = pipeline.validate(child, bytes(raw), transport)  # counted on the child
        except InvalidInput as e:
            debt = max(debt, pipeline.charge(child, 1))
            result.refused[name] = {"reason": getattr(e, "reason", e.code), "message": e.message}
            continue
        debt = max(debt, pipeline.charge(child, len(p.ts)))
        parsed.append(p)
        result.accepted[name] = len(p.ts)
    if debt > 0 and transport != "http":
        # MQTT cannot refuse: as a device over its limit is read more slowly, the gateway's
        # message waits (and its PUBACK with it) until its children and tenant are out of debt.
        pipeline.paused(gateway, transport, debt)
        await asyncio.sleep(debt)
    if parsed:
        await pipeline.room()
        await pipeline.enqueue(parsed)
    pipeline.mark_seen(gateway.device)  # the gateway is in contact, whatever it carried
    return result


def _decode_parts(
    pipeline: IngestPipeline, gateway: Identity, body: bytes, transport: str
) -> dict[str, msgspec.Raw]:
    what = "gateway telemetry"
    limit = pipeline.limits.max_bytes
    try:
        if len(body) > limit:
            raise InvalidTelemetry(TOO_LARGE, f"{what} is {len(body)} bytes; the limit is {limit}")
        try:
            parts = _parts.decode(body)
        except msgspec.ValidationError:
            raise InvalidTelemetry(
                WRONG_TYPE,
                f"{what} must be a JSON object of child device id to a reading or a batch",
            ) from None
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as e:
            raise InvalidTelemetry(MALFORMED_JSON, f"{what}: malformed JSON: {e}") from None
        if not parts:
            raise InvalidTelemetry(WRONG_TYPE, f"{what} names no child device")
        if len(parts) > MAX_CHILDREN:
            raise InvalidTelemetry(
                TOO_LARGE, f"{what} names {len(parts)} devices; at most {MAX_CHILDREN} a message"
            )
    except InvalidTelemetry as e:
        pipeline.reject(gateway.device, transport, e.reason, e.message)
        raise
    return parts


async def connect(
    pipeline: IngestPipeline,
    gateway: Identity,
    body: bytes,
    transport: str = "mqtt",
    reply: Reply | None = None,
) -> Identity:
    """A gateway declares a child: registered (durably) unless it already is the gateway's.
    The answer goes to ``gateway_connect_ack`` through ``reply``, ok or not.

    Refusals are counted on the gateway and raised (``InvalidInput``, ``Conflict``, ...);
    ``Unavailable`` (the registry is down) propagates: nothing may be acknowledged.
    """
    pipeline.charge(gateway, 1)
    doc = pipeline.json_object(gateway, body, transport, "gateway connect")
    name, device_type = doc.get("device"), doc.get("device_type")
    try:
        if not isinstance(name, str) or not name:
            raise InvalidInput('gateway/connect needs "device": the child\'s id, a string')
        if device_type is not None and not isinstance(device_type, str):
            raise InvalidInput('"device_type" must be a device type id (a string) or null')
        child, created = await asyncio.to_thread(
            pipeline.require_directory().adopt_child, gateway.device, name, device_type
        )
    except (InvalidInput, NotFound, Conflict, QuotaExceeded) as e:
        message = refuse_child(
            pipeline, gateway, transport, "gateway/connect", str(name), f"refused: {e.message}"
        )
        await _reply(reply, gateway, {"device": name, "status": "error", "reason": message})
        raise
    if created:
        log.info("gateway %s registered child %s", gateway.device, child.device)
    pipeline.mark_seen(gateway.device)
    await _reply(reply, gateway, {"device": name, "status": "ok", "reason": ""})
    return child


async def command_ack(
    pipeline: IngestPipeline,
    gateway: Identity,
    name: str,
    command_id: str,
    body: bytes,
    transport: str = "mqtt",
) -> Any:
    """A child's answer to a command, through its gateway: recorded as the child's own ack
    (refused unless the device is the gateway's child and the command is that device's)."""
    found = (await children(pipeline, gateway, [name]))[name]
    why = not_a_child(found, gateway)
    if why is not None:
        msg = refuse_child(pipeline, gateway, transport, "gateway command ack", name, why)
        raise InvalidTelemetry(GATEWAY_CHILD, msg)
    child = found[1]  # type: ignore[index]
    assert child is not None
    return await pipeline.command_ack(child, command_id, body, transport)


async def _reply(reply: Reply | None, gateway: Identity, answer: Mapping[str, Any]) -> None:
    if reply is None:
        return
    try:
        await reply(topics.gateway_connect_ack(gateway.device), orjson.dumps(answer))
    except Exception as e:  # noqa: BLE001 - not subscribed, or gone: the PUBACK still goes
        log.debug("connect answer to gateway %s not sent: %r", gateway.device, e)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
