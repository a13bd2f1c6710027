"""The local MQTT connector's configuration (validated by ``build``; see
docs/EDGE_CONNECTORS.md).

>>> cfg = MqttConfig.model_validate({
...     "broker": "mqtt://127.0.0.1:1883",
...     "devices": [{"id": "meter-1"}],
...     "topics": [{"topic": "lan/{device}/telemetry"}]})
>>> cfg.topics[0].filter, cfg.topics[0].payload.format
('lan/+/telemetry', 'atoll')
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
#: ``$``, then ``.key`` or ``["key"]`` or ``[index]`` steps
JSON_PATH = r'^\$((\.[A-Za-z_][A-Za-z0-9_\-]*)|(\["[^"]+"\])|(\[\d+\]))*$'


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AtollPayload(_Strict):
    """The Atoll reading format (docs/DEVICES.md): ``{"ts"?, "values": {...}}`` or a list."""

    format: Literal["atoll"] = "atoll"


class JsonPayload(_Strict):
    """Any JSON document: one JSON path per metric, and optionally one to the timestamp."""

    format: Literal["json"]
    values: dict[str, Annotated[str, Field(pattern=JSON_PATH)]] = Field(min_length=1)
    timestamp: str | None = Field(default=None, pattern=JSON_PATH)
    #: the unit of a numeric timestamp (ISO-8601 text is read as such whatever this says)
    timestamp_unit: Literal["s", "ms", "us"] = "ms"


class Topic(_Strict):
    """A topic (filter) and the child device its messages are from: a ``{device}`` level in
    the topic names it, or ``device`` does for a topic of one device."""

    topic: str = Field(min_length=1)
    device: str | None = Field(default=None, pattern=_ID)
    payload: Annotated[AtollPayload | JsonPayload, Field(discriminator="format")] = AtollPayload()

    @model_validator(mode="after")
    def _one_device_source(self) -> Topic:
        levels = self.topic.split("/")
        captures = levels.count("{device}")
        if captures > 1:
            raise ValueError(f"topic {self.topic!r}: {{device}} may appear once")
        if (captures == 1) == (self.device is not None):
            raise ValueError(
                f"topic {self.topic!r}: name the device with a {{device}} level or with device:, "
                "one of the two"
            )
        for level in levels:
            if level not in ("+", "#", "{device}") and re.search(r"[+#{}]", level):
                raise ValueError(f"topic {self.topic!r}: bad level {level!r}")
        if "#" in levels[:-1]:
            raise ValueError(f"topic {self.topic!r}: # must be the last level")
        return self

    @property
    def filter(self) -> str:
        """The MQTT subscription filter."""
        return "/".join("+" if level == "{device}" else level for level in self.topic.split("/"))

    def device_of(self, topic: str) -> str | None:
        """The device a message on ``topic`` is from (None when the topic does not match)."""
        if self.device is not None:
            return self.device if _matches(self.filter, topic) else None
        levels, got = self.topic.split("/"), topic.split("/")
        if not _matches(self.filter, topic):
            return None
        return got[levels.index("{device}")]


def _matches(pattern: str, topic: str) -> bool:
    """MQTT filter matching (``+`` one level, ``#`` the rest).

    >>> _matches("a/+/c", "a/b/c"), _matches("a/#", "a/b/c"), _matches("a/+", "a/b/c")
    (True, True, False)
    """
    p, t = pattern.split("/"), topic.split("/")
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(p) == len(t)


class Device(_Strict):
    id: str = Field(pattern=_ID)
    device_type: str | None = None
    #: where a platform command to this device is published, ``{device}`` replaced by its id,
    #: as ``{"name": ..., "args": {...}}`` with QoS 1
    command_topic: str | None = None
    #: the commands the device takes (others fail without being published)
    commands: list[str] = []

    @model_validator(mode="after")
    def _command_topic(self) -> Device:
        if self.commands and self.command_topic is None:
            raise ValueError(f"device {self.id!r}: commands need a command_topic")
        if self.command_topic is not None and re.search(r"[+#]", self.command_topic):
            raise ValueError(f"device {self.id!r}: a command_topic has no wildcards")
        return self


class MqttConfig(_Strict):
    #: the entry's type in the agent's ``connectors`` list (docs/EDGE.md)
    type: Literal["mqtt"] = "mqtt"
    name: str = Field(default="mqtt", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    broker: str = Field(pattern=r"^mqtts?://[^/\s:]+(:\d+)?/?$")
    client_id: str | None = Field(default=None, min_length=1, max_length=64)
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None  # for mqtts://, when the broker's CA is not a system one
    qos: Literal[0, 1] = 1
    #: keep the session (and unacknowledged messages) on the broker across reconnects
    persistent_session: bool = True
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    buffer_retry_s: float = Field(default=0.5, gt=0)
    devices: list[Device] = Field(min_length=1)
    topics: list[Topic] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> MqttConfig:
        ids = [d.id for d in self.devices]
        if dupes := sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"device ids used twice: {dupes}")
        for t in self.topics:
            if t.device is not None and t.device not in ids:
                raise ValueError(f"topic {t.topic!r} names unknown device {t.device!r}")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self
