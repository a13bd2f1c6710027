"""The OPC UA connector's configuration (validated by ``build``; see docs/EDGE_CONNECTORS.md).

>>> cfg = OpcUaConfig.model_validate({
...     "url": "opc.tcp://10.0.0.9:4840",
...     "devices": [{"id": "press-1"}],
...     "groups": [{"sampling_interval_ms": 100, "nodes": [
...         {"node": "ns=2;s=Press1.Temperature", "device": "press-1", "metric": "temperature"}]}]})
>>> cfg.groups[0].publishing_interval_ms, cfg.security is None
(500.0, True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
#: ns=<index>; then i= numeric, s= string, g= GUID or b= opaque (OPC UA Part 6 §5.3.1.10)
NODE_ID = r"^(ns=\d+;)?[isgb]=.+$"
VARIANT_TYPES = (
    "Boolean",
    "SByte",
    "Byte",
    "Int16",
    "UInt16",
    "Int32",
    "UInt32",
    "Int64",
    "UInt64",
    "Float",
    "Double",
    "String",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Security(_Strict):
    """Basic256Sha256 with this client's certificate and key, trusting exactly the server
    certificate given (pinned: another certificate from the server fails the handshake)."""

    policy: Literal["Basic256Sha256"] = "Basic256Sha256"
    mode: Literal["Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    certificate: Path  # the client's certificate (DER or PEM)
    private_key: Path  # its private key (PEM)
    server_certificate: Path  # the server's certificate, trusted
    #: must equal the URI in the client certificate's subjectAltName
    application_uri: str = "urn:atoll:edge"

    @model_validator(mode="after")
    def _files(self) -> Security:
        for what in ("certificate", "private_key", "server_certificate"):
            path: Path = getattr(self, what)
            if not path.is_file():
                raise ValueError(f"security.{what}: no such file {str(path)!r}")
        return self


class NodeMap(_Strict):
    """One variable node read as one metric of one child device."""

    node: str = Field(pattern=NODE_ID)
    device: str
    metric: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")


class NodeGroup(_Strict):
    """Nodes sampled at one interval: one subscription per group."""

    sampling_interval_ms: float = Field(default=100.0, ge=0)
    publishing_interval_ms: float = Field(default=500.0, gt=0)
    nodes: list[NodeMap] = Field(min_length=1)


class Input(_Strict):
    name: str
    type: Literal[VARIANT_TYPES] = "Double"  # type: ignore[valid-type]


class Method(_Strict):
    """A platform command as an OPC UA method call: the object it is called on, the method,
    and the input arguments in order, each taken from the command's args by name."""

    object: str = Field(pattern=NODE_ID)
    method: str = Field(pattern=NODE_ID)
    inputs: list[Input] = []


class Device(_Strict):
    id: str = Field(pattern=_ID)
    device_type: str | None = None
    commands: dict[str, Method] = {}


class OpcUaConfig(_Strict):
    #: the entry's type in the agent's ``connectors`` list (docs/EDGE.md)
    type: Literal["opcua"] = "opcua"
    name: str = Field(default="opcua", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: str = Field(pattern=r"^opc\.tcp://[^/\s]+(/.*)?$")
    security: Security | None = None
    username: str | None = None
    password: str | None = None
    timeout_s: float = Field(default=4.0, gt=0)  # per request
    watchdog_s: float = Field(default=1.0, gt=0)  # how often the server's liveness is checked
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    queue_size: int = Field(default=100_000, ge=1)  # readings held while the buffer is stopped
    buffer_retry_s: float = Field(default=0.5, gt=0)
    devices: list[Device] = Field(min_length=1)
    groups: list[NodeGroup] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaConfig:
        ids = [d.id for d in self.devices]
        if dupes := sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"device ids used twice: {dupes}")
        nodes = [n for g in self.groups for n in g.nodes]
        for n in nodes:
            if n.device not in ids:
                raise ValueError(f"node {n.node!r} names unknown device {n.device!r} (have {ids})")
        seen = [n.node for n in nodes]
        if dupes := sorted({i for i in seen if seen.count(i) > 1}):
            raise ValueError(f"nodes mapped twice: {dupes}")
        metrics = [f"{n.device}.{n.metric}" for n in nodes]
        if twice := sorted({m for m in metrics if metrics.count(m) > 1}):
            raise ValueError(f"metrics fed by two nodes: {twice}")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self
