"""The local MQTT connector: subscribes to the gateway's LAN broker, turns each message into
readings by its topic's payload mapping, and acknowledges a QoS 1 message (PUBACK, paho's
``manual_ack``) only once ``sink.put`` returned, in the order received.

So nothing is lost: a message not yet buffered when the agent stops, crashes or loses the
broker stays unacknowledged, and the broker sends it again to the same client id (with
``persistent_session``, the default). A redelivered message whose payload has no time of its
own is stamped again on arrival. While the buffer says ``BufferStopped`` the connector keeps
offering the same readings and acknowledges nothing: the broker stops sending once its
in-flight window is full, and queues the rest.

A message that carries no reading (bad JSON, a wrong type, an undeclared device …) is
acknowledged (sending it again would not help), counted by reason in ``status()["rejected"]``
and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from atoll.core.time import NS, to_us
from atoll.edge.connectors.commands import check_command, device_of
from atoll.edge.connectors.delivery import Delivery
from atoll.edge.connectors.mqtt.config import MqttConfig
from atoll.edge.connectors.mqtt.payload import Rejected, decode
from atoll.edge.port import ChildDevice, CommandFailed, ReadingSink

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    session: int  # which connection it came on: a PUBACK only makes sense on that one
    received_us: int


class MqttConnector:
    def __init__(self, config: MqttConfig) -> None:
        self.config = config
        self._devices = {d.id: d for d in config.devices}
        self._client: paho.Client | None = None
        self._session = 0
        self.connected = False
        self.connects = 0
        self.reconnects = 0
        self.messages = 0
        self.acked = 0
        self.rejected: dict[str, int] = {}
        self.last_rejection: str | None = None
        self.last_error: str | None = None
        self._delivery: Delivery | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def devices(self) -> Sequence[ChildDevice]:
        return [ChildDevice(d.id, d.device_type, {"protocol": "mqtt"}) for d in self.config.devices]

    async def run(self, sink: ReadingSink) -> None:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[_Message] = asyncio.Queue()
        client = self._new_client(loop, inbox)
        url = urlsplit(self.config.broker)
        port = url.port or (8883 if url.scheme == "mqtts" else 1883)
        self._delivery = delivery = Delivery(sink, retry_s=self.config.buffer_retry_s)
        self._client = client
        client.connect_async(url.hostname or "127.0.0.1", port, self.config.keepalive_s)
        client.loop_start()  # paho's network thread: connects, reconnects, reads
        try:
            while True:
                message = await inbox.get()
                await self._handle(client, delivery, message)
        finally:
            self._client = None
            self.connected = False
            with contextlib.suppress(Exception):
                client.disconnect()
            await asyncio.to_thread(client.loop_stop)

    def _new_client(self, loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[_Message]):
        cfg = self.config
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=cfg.client_id or f"atoll-edge-{cfg.name}",
            clean_session=not cfg.persistent_session,
            manual_ack=True,
        )
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.broker.startswith("mqtts://"):
            client.tls_set(ca_certs=cfg.ca_file, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        client.reconnect_delay_set(
            max(1, math.ceil(cfg.reconnect_min_s)), max(1, math.ceil(cfg.reconnect_max_s))
        )

        def on_connect(c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                self.last_error = f"broker refused the connection: {reason}"
                return
            self._session += 1
            self.connects += 1
            if self.connects > 1:
                self.reconnects += 1
            self.connected = True
            c.subscribe([(t.filter, int(cfg.qos)) for t in cfg.topics])

        def on_disconnect(_c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            self.connected = False
            if reason.is_failure:
                self.last_error = f"disconnected: {reason}"

        def on_message(_c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
            m = _Message(
                msg.topic,
                bytes(msg.payload),
                msg.mid,
                msg.qos,
                self._session,
                to_us(time.time_ns(), NS),
            )
            loop.call_soon_threadsafe(inbox.put_nowait, m)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_message = on_message
        return client

    async def _handle(self, client: paho.Client, delivery: Delivery, m: _Message) -> None:
        self.messages += 1
        try:
            readings = self._readings(m)
        except Rejected as e:
            self.rejected[e.reason] = self.rejected.get(e.reason, 0) + 1
            self.last_rejection = f"{m.topic}: {e}"
            log.info("mqtt %s: rejected %s", self.config.name, self.last_rejection)
            readings = []
        redelivered = m.qos > 0 and self.config.persistent_session
        if m.session != self._session and redelivered:
            return  # came on a connection that is gone: the broker sends it again
        await delivery.put(readings)
        if m.qos and m.session == self._session:  # a PUBACK only on the connection it came on
            client.ack(m.mid, m.qos)
            self.acked += 1

    def _readings(self, m: _Message):
        for t in self.config.topics:
            device = t.device_of(m.topic)
            if device is None:
                continue
            if device not in self._devices:
                raise Rejected("unknown_device", f"device {device!r} is not configured")
            return decode(t.payload, m.payload, device, m.received_us)
        raise Rejected("unmatched_topic", "no configured topic matches")

    async def command(self, device: str, name: str, args: Mapping[str, Any]) -> Any:
        dev = device_of(self._devices, device, f"MQTT connector {self.name!r}")
        check_command(device, name, dev.commands)
        assert dev.command_topic is not None  # the configuration has one where there are commands
        client = self._client
        if client is None or not self.connected:
            raise CommandFailed(f"{name}: not connected to {self.config.broker}")
        topic = dev.command_topic.replace("{device}", device)
        body = orjson.dumps({"name": name, "args": dict(args)})
        info = client.publish(topic, body, qos=1)
        try:
            await asyncio.to_thread(info.wait_for_publish, 5.0)
        except (RuntimeError, ValueError) as e:
            raise CommandFailed(f"{name}: not published to {topic}: {e}") from None
        if not info.is_published():
            raise CommandFailed(f"{name}: the broker did not acknowledge {topic} within 5 s")
        return {"topic": topic}

    def status(self) -> Mapping[str, Any]:
        delivery = self._delivery
        return {
            "broker": self.config.broker,
            "connected": self.connected,
            "connects": self.connects,
            "reconnects": self.reconnects,
            "messages": self.messages,
            "acked": self.acked,
            "rejected": dict(self.rejected),
            "last_rejection": self.last_rejection,
            "last_error": self.last_error,
            "readings": delivery.readings if delivery else 0,
            "buffer_stopped_waits": delivery.stopped_waits if delivery else 0,
        }
