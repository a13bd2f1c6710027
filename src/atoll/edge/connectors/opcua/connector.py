"""The OPC UA connector: data-change subscriptions (one per node group, at its sampling
interval), method calls as commands, reconnect with resubscribe.

Timestamps: a value's ``SourceTimestamp`` (when the device sampled it), else its
``ServerTimestamp``, else the time the notification arrived; as µs UTC. Values whose status is
not Good are skipped and counted (``bad_quality``); values that are neither numbers nor
booleans are skipped and counted (``unsupported``).

Liveness: the client reads the server's state every ``watchdog_s``; a failed read (or a closed
socket) ends the session, and the connector connects again with a back-off between
``reconnect_min_s`` and ``reconnect_max_s`` and subscribes afresh. OPC UA cannot be paused,
so while the buffer says ``BufferStopped`` notifications wait in memory, up to ``queue_size``
readings; past that the oldest are dropped and counted (``dropped_queue_full``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from asyncua import Client, Node, ua
from asyncua.common.subscription import DataChangeEvent, Subscription
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from atoll.core.time import NS, datetime_to_us, to_us
from atoll.edge.connectors.commands import check_command, device_of
from atoll.edge.connectors.delivery import Delivery
from atoll.edge.connectors.opcua.config import Method, NodeGroup, OpcUaConfig, Security
from atoll.edge.port import ChildDevice, CommandFailed, EdgeReading, ReadingSink, Value

log = logging.getLogger(__name__)

# What a lost or refused connection raises in asyncua (socket, timeouts, OPC UA status codes).
_CONNECTION_ERRORS = (OSError, TimeoutError, ConnectionError, ua.UaError)


def node_key(node_id: str) -> str:
    """The canonical text of a node id (``ns=0;i=85`` and ``i=85`` are the same node)."""
    return ua.NodeId.from_string(node_id).to_string()


def to_value(value: Any) -> Value | None:
    """Atoll's value for an OPC UA variant's value, or None when it has none."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


class OpcUaConnector:
    def __init__(self, config: OpcUaConfig) -> None:
        self.config = config
        self._devices = {d.id: d for d in config.devices}
        try:
            self._nodes = {
                node_key(n.node): (n.device, n.metric) for g in config.groups for n in g.nodes
            }
        except (ValueError, ua.UaError) as e:
            raise ValueError(f"opcua connector configuration is invalid: node id: {e}") from e
        self._pending: deque[EdgeReading] = deque()
        self._pending_changed = asyncio.Event()
        self._client: Client | None = None
        self._delivery: Delivery | None = None
        self._was_connected = False
        self.connected = False
        self.connects = 0
        self.reconnects = 0
        self.errors = 0
        self.notifications = 0
        self.bad_quality = 0
        self.unsupported = 0
        self.source_time_missing = 0
        self.dropped_queue_full = 0
        self.bad_nodes: dict[str, str] = {}
        self.last_error: str | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def devices(self) -> Sequence[ChildDevice]:
        return [
            ChildDevice(d.id, d.device_type, {"protocol": "opcua", "server": self.config.url})
            for d in self.config.devices
        ]

    async def run(self, sink: ReadingSink) -> None:
        self._delivery = Delivery(sink, retry_s=self.config.buffer_retry_s)
        pump = asyncio.create_task(self._pump(self._delivery))
        backoff = self.config.reconnect_min_s
        try:
            while True:
                connects = self.connects
                try:
                    await self._session()
                except _CONNECTION_ERRORS as e:
                    self.errors += 1
                    self.last_error = self._describe(e, connecting=self.connects == connects)
                    log.info("opcua %s: %s", self.config.url, self.last_error)
                self.connected = False
                if self.connects > connects:  # it was up: start the back-off afresh
                    backoff = self.config.reconnect_min_s
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.config.reconnect_max_s)
        finally:
            self.connected = False
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)

    def _describe(self, e: BaseException, *, connecting: bool) -> str:
        what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        if not connecting:
            return f"connection lost: {what}"
        text = f"cannot connect to {self.config.url}: {what}"
        if isinstance(e, TimeoutError) and self.config.security is not None:
            # a server that cannot decrypt the handshake does not answer at all
            text += " (is security.server_certificate this server's certificate?)"
        return text

    def _new_client(self) -> Client:
        cfg = self.config
        client = new_client(
            cfg.url, cfg.security, timeout_s=cfg.timeout_s, watchdog_s=cfg.watchdog_s
        )
        if cfg.username is not None and cfg.password is not None:
            client.set_user(cfg.username)
            client.set_password(cfg.password)
        return client

    async def _session(self) -> None:
        """One connection: connect, subscribe, then wait until the connection is lost."""
        client = self._new_client()
        lost = asyncio.Event()

        async def on_lost(exc: Exception) -> None:
            self.last_error = f"connection lost: {exc!r}"
            lost.set()

        client.connection_lost_callback = on_lost
        consumers: list[asyncio.Task[None]] = []
        try:
            await secure(client, self.config.security)
            await asyncio.wait_for(client.connect(), self.config.timeout_s * 2)
            self._client = client
            self.connects += 1
            if self._was_connected:
                self.reconnects += 1
            self._was_connected = self.connected = True
            for group in self.config.groups:
                sub = await self._subscribe(client, group)
                consumers.append(asyncio.create_task(self._consume(sub)))
            waiters = [asyncio.create_task(lost.wait()), *consumers]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            waiters[0].cancel()
            for c in consumers:
                if c.done() and c.exception() is not None:
                    raise ConnectionError(f"subscription ended: {c.exception()!r}")
            raise ConnectionError(self.last_error or "connection lost")
        finally:
            self._client = None
            for c in consumers:
                c.cancel()
            await asyncio.gather(*consumers, return_exceptions=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 2.0)

    async def _subscribe(self, client: Client, group: NodeGroup) -> Subscription:
        sub = await client.create_subscription(
            group.publishing_interval_ms, None, queue_maxsize=self.config.queue_size
        )
        nodes = [client.get_node(n.node) for n in group.nodes]
        # Room on the server for every sample between two publishes (a queue of 1 would keep
        # only the last of them).
        per_publish = group.publishing_interval_ms / max(group.sampling_interval_ms, 1.0)
        handles = await sub.subscribe_data_change(
            nodes,
            sampling_interval=ua.Double(group.sampling_interval_ms),
            queuesize=min(math.ceil(per_publish) + 1, 1000),
        )
        for n, handle in zip(group.nodes, handles, strict=True):
            if isinstance(handle, ua.StatusCode):
                self.bad_nodes[n.node] = handle.name
            else:
                self.bad_nodes.pop(n.node, None)
        return sub

    async def _consume(self, sub: Subscription) -> None:
        # Not ``async with sub``: its exit deletes the subscription with a request, which would
        # wait out the timeout on a dead connection; closing the session deletes it anyway.
        async for event in sub:
            if isinstance(event, DataChangeEvent):
                self._on_change(event)

    def _on_change(self, event: DataChangeEvent) -> None:
        self.notifications += 1
        target = self._nodes.get(event.node.nodeid.to_string())
        if target is None:
            return
        dv = event.data.monitored_item.Value
        if dv.StatusCode is not None and not dv.StatusCode.is_good():
            self.bad_quality += 1
            return
        value = to_value(event.value)
        if value is None:
            self.unsupported += 1
            return
        stamp = dv.SourceTimestamp or dv.ServerTimestamp
        if dv.SourceTimestamp is None:
            self.source_time_missing += 1
        ts_us = datetime_to_us(stamp) if stamp is not None else to_us(time.time_ns(), NS)
        if len(self._pending) >= self.config.queue_size:
            self._pending.popleft()
            self.dropped_queue_full += 1
        self._pending.append(EdgeReading(target[0], ts_us, {target[1]: value}))
        self._pending_changed.set()

    async def _pump(self, delivery: Delivery) -> None:
        while True:
            await self._pending_changed.wait()
            self._pending_changed.clear()
            while self._pending:
                n = min(len(self._pending), 1000)
                await delivery.put([self._pending.popleft() for _ in range(n)])

    async def command(self, device: str, name: str, args: Mapping[str, Any]) -> Any:
        dev = device_of(self._devices, device, f"OPC UA connector {self.name!r}")
        check_command(device, name, dev.commands)
        method = dev.commands[name]
        client = self._client
        if client is None or not self.connected:
            raise CommandFailed(f"{name}: not connected to {self.config.url}")
        values = _inputs(name, method, args)
        try:
            method_id = ua.NodeId.from_string(method.method)  # a str would be a browse name
            result = await client.get_node(method.object).call_method(method_id, *values)
        except ua.UaStatusCodeError as e:
            raise CommandFailed(f"{name}: the server refused the call: {e}") from None
        except _CONNECTION_ERRORS as e:
            raise CommandFailed(f"{name}: {type(e).__name__}: {e}") from None
        return _jsonable(result)

    def status(self) -> Mapping[str, Any]:
        delivery = self._delivery
        return {
            "server": self.config.url,
            "security": "None"
            if self.config.security is None
            else (f"{self.config.security.policy}/{self.config.security.mode}"),
            "connected": self.connected,
            "connects": self.connects,
            "reconnects": self.reconnects,
            "errors": self.errors,
            "last_error": self.last_error,
            "notifications": self.notifications,
            "bad_quality": self.bad_quality,
            "unsupported": self.unsupported,
            "source_time_missing": self.source_time_missing,
            "pending": len(self._pending),
            "dropped_queue_full": self.dropped_queue_full,
            "bad_nodes": dict(self.bad_nodes),
            "readings": delivery.readings if delivery else 0,
            "buffer_stopped_waits": delivery.stopped_waits if delivery else 0,
        }


def new_client(
    url: str, security: Security | None, *, timeout_s: float = 4.0, watchdog_s: float = 1.0
) -> Client:
    client = Client(url, timeout=timeout_s, watchdog_intervall=watchdog_s)
    client.name = client.description = "Atoll edge agent"
    if security is not None:
        client.application_uri = security.application_uri
    return client


async def secure(client: Client, security: Security | None) -> None:
    """Basic256Sha256 with the client's certificate and key, pinning the server's."""
    if security is None:
        return
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        certificate=str(security.certificate),
        private_key=str(security.private_key),
        server_certificate=str(security.server_certificate),
        mode=getattr(ua.MessageSecurityMode, security.mode),
    )


def _inputs(name: str, method: Method, args: Mapping[str, Any]) -> list[ua.Variant]:
    if not isinstance(args, Mapping):
        raise CommandFailed(f"{name}: args must be an object, got {args!r}")
    wanted = {i.name for i in method.inputs}
    if extra := sorted(set(args) - wanted):
        raise CommandFailed(f"{name}: unexpected args {extra} (takes {sorted(wanted)})")
    out = []
    for i in method.inputs:
        if i.name not in args:
            raise CommandFailed(f"{name}: missing arg {i.name!r} ({i.type})")
        value = args[i.name]
        vtype = getattr(ua.VariantType, i.type)
        try:
            out.append(ua.Variant(_coerce(value, i.type), vtype))
        except (TypeError, ValueError) as e:
            raise CommandFailed(f"{name}: arg {i.name!r} is not a {i.type}: {value!r}") from e
    return out


def _coerce(value: Any, vtype: str) -> Any:
    if vtype == "String":
        if not isinstance(value, str):
            raise TypeError(value)
        return value
    if vtype == "Boolean":
        if not isinstance(value, bool):
            raise TypeError(value)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(value)
    if vtype in ("Float", "Double"):
        return float(value)
    if float(value) != int(value):
        raise ValueError(value)
    return int(value)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, ua.Variant):
        return _jsonable(value.Value)
    return str(value)


async def browse(
    client: Client, node: str | None = None, *, depth: int = 3, limit: int = 500
) -> list[dict[str, Any]]:
    """The variables under ``node`` (default: the Objects folder), up to ``depth`` levels down:
    node id, browse path, data type and current value, to pick nodes for the configuration."""
    start: Node = client.get_objects_node() if node is None else client.get_node(node)
    found: list[dict[str, Any]] = []

    async def walk(n: Node, path: str, level: int) -> None:
        if level > depth or len(found) >= limit:
            return
        for child in await n.get_children():
            if len(found) >= limit:
                return
            name = (await child.read_browse_name()).Name
            here = f"{path}/{name}" if path else name
            if await child.read_node_class() == ua.NodeClass.Variable:
                try:
                    value = await child.read_value()
                except ua.UaError:
                    value = None
                try:
                    dtype = (await child.read_data_type_as_variant_type()).name
                except (ua.UaError, ValueError):
                    dtype = "?"
                found.append(
                    {
                        "node": child.nodeid.to_string(),
                        "path": here,
                        "type": dtype,
                        "value": _jsonable(value),
                    }
                )
            await walk(child, here, level + 1)

    await walk(start, "", 1)
    return found


async def browse_url(
    url: str,
    node: str | None = None,
    *,
    security: Security | None = None,
    depth: int = 3,
    limit: int = 500,
    timeout_s: float = 4.0,
) -> list[dict[str, Any]]:
    """Connect to ``url``, :func:`browse`, disconnect (``atoll edge browse``)."""
    client = new_client(url, security, timeout_s=timeout_s)
    await secure(client, security)
    await asyncio.wait_for(client.connect(), timeout_s * 2)
    try:
        return await browse(client, node, depth=depth, limit=limit)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 2.0)
