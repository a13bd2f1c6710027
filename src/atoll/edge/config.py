"""The edge agent's configuration: one YAML file (``atoll edge run --config edge.yaml``).

>>> cfg = EdgeConfig.model_validate({
...     "platform": "mqtts://atoll.example.com:8883",
...     "gateway": {"id": "gw-1", "secret": "s3cret"},
...     "buffer": {"dir": "/var/lib/atoll-edge", "max_bytes": "512MiB"},
...     "connectors": [{"type": "sim", "name": "demo", "children": 2}],
... })
>>> cfg.link().tls, cfg.link().port, cfg.buffer.max_bytes, cfg.buffer.full_policy
(True, 8883, 536870912, 'drop_oldest')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import yaml
from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from atoll.core.errors import InvalidInput


class GatewaySettings(BaseModel):
    """The gateway device as registered on the platform (``"kind": "gateway"``)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    secret: SecretStr | None = None
    secret_file: Path | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> GatewaySettings:
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError("give exactly one of gateway.secret and gateway.secret_file")
        return self

    def password(self) -> str:
        if self.secret is not None:
            return self.secret.get_secret_value()
        assert self.secret_file is not None
        try:
            return self.secret_file.read_text().strip()
        except OSError as e:
            raise InvalidInput(
                f"cannot read gateway.secret_file {self.secret_file}: {e.strerror}",
                hint="write the gateway's secret (from device registration) into that file",
            ) from e


class BufferSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: Path
    max_bytes: ByteSize = ByteSize(1 << 30)
    full_policy: Literal["drop_oldest", "stop_reading"] = "drop_oldest"

    @field_validator("max_bytes")
    @classmethod
    def _at_least(cls, v: ByteSize) -> ByteSize:
        if v < 1 << 20:
            raise ValueError("buffer.max_bytes must be at least 1MiB")
        return v


class ConnectorSettings(BaseModel):
    """``{type, name, ...}``: the rest is the connector type's own settings."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https?://")
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    headers: dict[str, str] = Field(default_factory=dict)


class OutputSettings(BaseModel):
    """A connector's command as a digital output: ``args`` plus ``{"on": true|false}``."""

    model_config = ConfigDict(extra="forbid")

    connector: str
    device: str
    command: str
    args: dict[str, Any] = Field(default_factory=dict)


class DetectionSettings(BaseModel):
    """Detection at the edge (``atoll.edge.detect``): off unless ``enabled``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    detector: str = "default"
    decision: dict[str, Any] = Field(default_factory=dict)
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    outputs: list[OutputSettings] = Field(default_factory=list)
    save_every_s: float = Field(default=60.0, gt=0, le=86400)


@dataclass(frozen=True, slots=True)
class PlatformLink:
    host: str
    port: int
    tls: bool
    ca_file: str | None
    gateway_id: str
    secret: str


class EdgeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: str
    ca_file: Path | None = None
    gateway: GatewaySettings
    buffer: BufferSettings
    status_interval_s: float = Field(default=30.0, gt=0, le=3600)
    max_message_bytes: int = Field(default=256 * 1024, ge=4096, le=16 << 20)
    max_points_per_message: int = Field(default=10_000, ge=1, le=1_000_000)
    max_inflight: int = Field(default=16, ge=1, le=1000)
    reconnect_max_s: float = Field(default=30.0, ge=0.5, le=600)
    connectors: list[ConnectorSettings] = Field(default_factory=list)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)

    @field_validator("platform")
    @classmethod
    def _url(cls, v: str) -> str:
        u = urlparse(v)
        if u.scheme not in ("mqtt", "mqtts") or not u.hostname:
            raise ValueError(f"platform must be mqtt://host:port or mqtts://host:port, not {v!r}")
        try:
            u.port  # noqa: B018 - raises on a bad port
        except ValueError as e:
            raise ValueError(f"bad port in platform URL {v!r}") from e
        return v

    @field_validator("connectors")
    @classmethod
    def _unique(cls, v: list[ConnectorSettings]) -> list[ConnectorSettings]:
        names = [c.name for c in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"connector names must be unique: {', '.join(dup)} repeated")
        return v

    def link(self) -> PlatformLink:
        u = urlparse(self.platform)
        tls = u.scheme == "mqtts"
        assert u.hostname is not None
        return PlatformLink(
            host=u.hostname,
            port=u.port or (8883 if tls else 1883),
            tls=tls,
            ca_file=str(self.ca_file) if self.ca_file else None,
            gateway_id=self.gateway.id,
            secret=self.gateway.password(),
        )


def explain(e: ValidationError, where: str) -> str:
    """Pydantic's errors as lines a person can act on: ``where: field.path: message``."""
    lines = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {loc}: {msg}")
    return "\n".join(lines)


def parse_config(data: Any, where: str = "config") -> EdgeConfig:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return EdgeConfig.model_validate(data)
    except ValidationError as e:
        raise InvalidInput(explain(e, where), hint="see docs/EDGE.md, 'Configuration'") from e


def load_config(path: str | Path) -> EdgeConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise InvalidInput(
            f"cannot read {p}: {e.strerror}", hint="give --config the agent's YAML file"
        ) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidInput(f"{p}: not valid YAML: {e}") from e
    cfg = parse_config(data, str(p))
    if not cfg.buffer.dir.is_absolute():  # relative to the file, not to where it is run from
        cfg.buffer.dir = (p.parent / cfg.buffer.dir).resolve()
    if cfg.gateway.secret_file and not cfg.gateway.secret_file.is_absolute():
        cfg.gateway.secret_file = (p.parent / cfg.gateway.secret_file).resolve()
    if cfg.ca_file and not cfg.ca_file.is_absolute():
        cfg.ca_file = (p.parent / cfg.ca_file).resolve()
    return cfg
