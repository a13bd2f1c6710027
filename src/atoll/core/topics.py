"""The device wire contract: MQTT topics, one place, used by broker, ingest, SDK and simulator.

Every device topic lives under ``atoll/v1/devices/{device_id}/``. Identity comes from the
authenticated MQTT username (the device id), and a device may only use its own subtree: who
may publish, subscribe to and receive what is decided in ``atoll.core.acl``.

| topic (relative)            | direction        | payload                                  |
| --------------------------- | ---------------- | ---------------------------------------- |
| ``telemetry``               | device → cloud   | one reading or a batch (see DEVICES.md)  |
| ``twin/reported``           | device → cloud   | JSON object of reported properties       |
| ``twin/desired``            | cloud → device   | JSON object of desired properties (retained) |
| ``commands/{command_id}``   | cloud → device   | ``{"name": ..., "args": {...}}``         |
| ``commands/{command_id}/ack`` | device → cloud | ``{"status": "ok"|"error", "result": ...}`` |

A gateway (``"kind": "gateway"``) also speaks for its child devices under ``gateway/``
(``gateway_connect`` and the functions after it; docs/DEVICES.md, "Gateways").
"""

from __future__ import annotations

PREFIX = "atoll/v1/devices"


def device_root(device_id: str) -> str:
    return f"{PREFIX}/{device_id}"


def telemetry(device_id: str) -> str:
    return f"{PREFIX}/{device_id}/telemetry"


def twin_reported(device_id: str) -> str:
    return f"{PREFIX}/{device_id}/twin/reported"


def twin_desired(device_id: str) -> str:
    return f"{PREFIX}/{device_id}/twin/desired"


def command(device_id: str, command_id: str) -> str:
    return f"{PREFIX}/{device_id}/commands/{command_id}"


def command_ack(device_id: str, command_id: str) -> str:
    return f"{PREFIX}/{device_id}/commands/{command_id}/ack"


# A gateway (a device registered as one, e.g. ``atoll edge``) speaks for its child devices on
# topics under its own subtree, so the per-device ACL's "own subtree only" still holds; which
# children belong to which gateway is the registry's answer (docs/DEVICES.md, "Gateways").
# Child ids in these topics are the ids the gateway knows (as chosen at registration, without
# the tenant prefix).


def gateway_connect(gateway_id: str) -> str:
    """Gateway → Atoll: ``{"device": child, "device_type": type}`` declares (and, if the
    gateway may, registers) a child; PUBACK once the child is registered."""
    return f"{PREFIX}/{gateway_id}/gateway/connect"


def gateway_connect_ack(gateway_id: str) -> str:
    """Atoll → gateway: the answer to a ``gateway/connect``, ``{"device": child, "status":
    "ok"|"error", "reason": text}`` (QoS 1, not retained)."""
    return f"{PREFIX}/{gateway_id}/gateway/connect/ack"


def gateway_telemetry(gateway_id: str) -> str:
    """Gateway → Atoll: ``{child: reading-or-batch, ...}``, each as on ``telemetry``."""
    return f"{PREFIX}/{gateway_id}/gateway/telemetry"


def gateway_command(gateway_id: str, child: str, command_id: str) -> str:
    """Atoll → gateway: a command to one of its children, ``{"id", "name", "args", "device"}``."""
    return f"{PREFIX}/{gateway_id}/gateway/commands/{child}/{command_id}"


def gateway_command_ack(gateway_id: str, child: str, command_id: str) -> str:
    """Gateway → Atoll: the child's answer, ``{"status": "ok"|"error", "result": any}``."""
    return f"{PREFIX}/{gateway_id}/gateway/commands/{child}/{command_id}/ack"


def parse(topic: str) -> tuple[str, str] | None:
    """Split a device topic into ``(device_id, rest)``; ``None`` if it is not one."""
    head = PREFIX + "/"
    if not topic.startswith(head):
        return None
    device, _, rest = topic[len(head) :].partition("/")
    if not device or not rest:
        return None
    return device, rest


# Bus subjects (internal, NATS-compatible tokens separated by dots). What each carries:
# ``atoll.ingest.events`` (telemetry, twin, command_ack), ``atoll.core.events`` (anomaly) and
# ``atoll.rules.events`` (alarm).

#: Every subject of one kind, as the services subscribe to them. NATS durable consumer names
#: are derived from these strings (``atoll.bus.nats.consumer_name``): changing one orphans the
#: consumers of running deployments.
ALL_TELEMETRY = "telemetry.>"
ALL_ANOMALIES = "anomaly.>"
ALL_ALARMS = "alarm.>"
ALL_TWINS = "twin.>"
ALL_COMMAND_ACKS = "command_ack.>"
#: A rule or channel of a project was created, changed or deleted (every rules process reloads).
ALL_RULE_CHANGES = "rules.>"
#: The platform operator changed an enterprise's quotas (every node's ingest asks again).
ALL_QUOTA_CHANGES = "quotas.>"
#: What the platform's stream holds.
ALL_BUS_SUBJECTS = (
    ALL_TELEMETRY,
    ALL_ANOMALIES,
    ALL_ALARMS,
    ALL_TWINS,
    ALL_COMMAND_ACKS,
    ALL_RULE_CHANGES,
    ALL_QUOTA_CHANGES,
)


def bus_telemetry(project: str, device: str) -> str:
    return f"telemetry.{project}.{device}"


def bus_anomaly(project: str, device: str) -> str:
    return f"anomaly.{project}.{device}"


def bus_twin(project: str, device: str) -> str:
    return f"twin.{project}.{device}"


def bus_command_ack(project: str, device: str) -> str:
    return f"command_ack.{project}.{device}"


def bus_alarm(project: str) -> str:
    return f"alarm.{project}"


def bus_rules(project: str) -> str:
    return f"rules.{project}"


def bus_quotas(tenant: str) -> str:
    return f"quotas.{tenant}"
