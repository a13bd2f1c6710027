"""The embedded broker's extra listeners: MQTT over TLS, over WebSockets, and over WebSockets
with TLS.

They all feed the one broker, so device authentication, topic ACLs and PUBACK-after-durable
are the same on every listener. Configuration mistakes (no certificate, a key that does not
match it, a port in use or given twice) are found here, before anything listens, and the
error names the flag that fixes them.

The TLS context and the WebSocket adapters are in ``atoll.ingest.transports``.

>>> from atoll.config import Settings
>>> sorted(listeners(Settings(mqtt_ws_port=0)))
['ws']
>>> listeners(Settings(mqtt_ws_port=0))["ws"]["type"]
'ws'
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atoll.core.errors import InvalidInput
from atoll.ingest.embedded_broker import check_port_free
from atoll.ingest.transports import server_context


@dataclass(frozen=True)
class Listener:
    name: str  # amqtt listener name
    setting: str  # Settings field with the port
    flag: str
    what: str
    scheme: str
    websocket: bool
    tls: bool


LISTENERS = (
    Listener("tls", "mqtt_tls_port", "--mqtt-tls-port", "MQTT over TLS", "mqtts", False, True),
    Listener("ws", "mqtt_ws_port", "--mqtt-ws-port", "MQTT over WebSockets", "ws", True, False),
    Listener(
        "wss", "mqtt_wss_port", "--mqtt-wss-port", "MQTT over secure WebSockets", "wss", True, True
    ),
)
CERT_HINT = (
    "pass --tls-cert FILE (PEM certificate, then any intermediates) and --tls-key FILE "
    "(its PEM private key, unencrypted), or ATOLL_TLS_CERT / ATOLL_TLS_KEY"
)


def listeners(settings: Any) -> dict[str, dict[str, Any]]:
    """amqtt listener configs for the extra listeners ``settings`` asks for (none by default)."""
    wanted = [x for x in LISTENERS if getattr(settings, x.setting) is not None]
    if any(x.tls for x in wanted):
        check_certificate(settings.tls_cert, settings.tls_key)
    used = {settings.mqtt_port: "--mqtt-port"} if settings.mqtt_port else {}
    for x in wanted:
        port = getattr(settings, x.setting)
        if port in used:
            raise InvalidInput(
                f"port {port} is given to both {used[port]} and {x.flag}",
                hint="give each MQTT listener its own port (0 = any free port)",
            )
        if port:
            used[port] = x.flag
            check_port_free(settings.mqtt_host, port, x.what, x.flag)
    out = {}
    for x in wanted:
        conf: dict[str, Any] = {
            "type": "ws" if x.websocket else "tcp",
            "max_connections": -1,
            "bind": f"{settings.mqtt_host}:{getattr(settings, x.setting)}",
        }
        if x.tls:
            conf.update(ssl=True, certfile=str(settings.tls_cert), keyfile=str(settings.tls_key))
        out[x.name] = conf
    return out


def urls(host: str, ports: dict[str, int]) -> dict[str, str]:
    """``{"tls": "mqtts://host:8883", "ws": "ws://host:8083/mqtt", ...}`` of the bound ones."""
    out = {}
    for x in LISTENERS:
        if x.name in ports:
            path = "/mqtt" if x.websocket else ""
            out[x.name] = f"{x.scheme}://{host}:{ports[x.name]}{path}"
    return out


def check_certificate(cert: Path | None, key: Path | None) -> None:
    if cert is None or key is None:
        raise InvalidInput("MQTT over TLS needs a certificate and its private key", hint=CERT_HINT)
    for path, what in ((cert, "certificate"), (key, "private key")):
        if not Path(path).is_file():
            raise InvalidInput(f"TLS {what} file {path} does not exist", hint=CERT_HINT)
    try:
        server_context(cert, key)
    except PermissionError as e:
        raise InvalidInput(
            f"cannot read {e.filename}: permission denied",
            hint="let the user running Atoll read the certificate and key",
        ) from None
    except ssl.SSLError as e:
        raise InvalidInput(
            f"cannot use the TLS certificate {cert} with the key {key}: {e.reason or e}",
            hint=CERT_HINT,
        ) from None
