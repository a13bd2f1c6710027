"""Who may do what with which MQTT topic: the one authorisation every message path consults.

A device is its authenticated MQTT username (the device id) and owns one subtree,
``atoll/v1/devices/{device_id}/``. Whatever the tenant, it never publishes, subscribes to or
receives anything outside it:

=========  ===========================================  ==============================
action     topics, relative to the device's subtree     what happens
=========  ===========================================  ==============================
publish    ``telemetry``, ``twin/reported``,            ingested by Atoll; never
           ``commands/+/ack``                           delivered to MQTT clients
Will       the same as publish (else CONNECT refused)   ingested like a publish when
                                                        the device drops; retain ignored
subscribe  ``twin/desired``, ``commands/+``,            anything else: SUBACK 0x80
           ``commands/{id}``, ``commands/#``, ``#``
receive    ``twin/desired``, ``commands/+``             only Atoll publishes these
=========  ===========================================  ==============================

A *gateway* (a device registered with ``"kind": "gateway"``) also speaks for its child devices,
still only under its own subtree:

=========  ===========================================  ==============================
action     topics, relative to the gateway's subtree    what happens
=========  ===========================================  ==============================
publish    ``gateway/connect``, ``gateway/telemetry``,  a plain device publishing
           ``gateway/commands/+/+/ack``                 these is refused (acl_publish)
subscribe  ``gateway/connect/ack``, ``gateway/#``,      (and the device filters above)
           ``gateway/commands/#``, ``gateway/commands/+/+``
receive    ``gateway/connect/ack``,                     only Atoll publishes these
           ``gateway/commands/+/+``
=========  ===========================================  ==============================

Which devices a gateway may speak for is ``is_gateway_child``: the one check every path (MQTT
embedded and external, HTTP) applies to each child a gateway names.

``receive`` is checked for every message delivered to a device (live, queued for an offline
session, or retained), not only at SUBSCRIBE time, so no path from the broker to a device
can carry another device's topic.

Where it is enforced: the embedded broker (``atoll.ingest.embedded_broker``,
``embedded_connection`` and ``dispatch``) calls these functions on each path; in external
mode Mosquitto enforces the same table, written as ``pattern`` lines by ``mosquitto_acl``.

>>> (may_publish("d1", "atoll/v1/devices/d1/commands/c7/ack"),
...  may_publish("d1", "atoll/v1/devices/d2/telemetry"))
(True, False)
>>> (may_publish("gw", "atoll/v1/devices/gw/gateway/telemetry", "gateway"),
...  may_publish("d1", "atoll/v1/devices/d1/gateway/telemetry"))
(True, False)
>>> (may_receive("d1", "atoll/v1/devices/d1/twin/desired"),
...  may_receive("d1", "atoll/v1/devices/d1/telemetry"))
(True, False)
"""

from __future__ import annotations

from typing import Protocol

from atoll.core.topics import PREFIX, device_root

#: Topic patterns relative to the device's subtree (``+``: one level, as in MQTT filters).
DEVICE_PUBLISH = ("telemetry", "twin/reported", "commands/+/ack")
DEVICE_RECEIVE = ("twin/desired", "commands/+")
#: What a gateway may publish and receive on top of a device's (for its children).
GATEWAY_PUBLISH = ("gateway/connect", "gateway/telemetry", "gateway/commands/+/+/ack")
GATEWAY_RECEIVE = ("gateway/connect/ack", "gateway/commands/+/+")
#: Device kinds (``devices.kind`` in the registry).
DEVICE, GATEWAY = "device", "gateway"
KINDS = (DEVICE, GATEWAY)

_PUBLISH = tuple(p.split("/") for p in DEVICE_PUBLISH)
_GATEWAY_PUBLISH = tuple(p.split("/") for p in GATEWAY_PUBLISH)
_RECEIVE = tuple(p.split("/") for p in DEVICE_RECEIVE + GATEWAY_RECEIVE)
_SUBSCRIBE = frozenset(
    {
        "twin/desired",
        "commands/+",
        "commands/#",
        "#",
        "gateway/#",
        "gateway/connect/ack",
        "gateway/commands/#",
        "gateway/commands/+/+",
    }
)


class Member(Protocol):
    """A device as the gateway check sees it (``atoll.registry.models.DeviceIdentity`` fits)."""

    @property
    def device(self) -> str: ...
    @property
    def project(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def parent(self) -> str | None: ...


def valid_topic_name(topic: str) -> bool:
    """A topic name (of a PUBLISH or a Will) by MQTT 3.1.1 §4.7 and §1.5.3: not empty, no
    wildcard, no U+0000. Ill-formed UTF-8 is refused where the bytes are decoded."""
    return bool(topic) and "+" not in topic and "#" not in topic and "\x00" not in topic


def _relative(device_id: str, topic: str) -> str | None:
    head = f"{PREFIX}/{device_id}/"
    return topic[len(head) :] if topic.startswith(head) else None


def _matches(patterns: tuple[list[str], ...], rest: str) -> bool:
    levels = rest.split("/")
    return any(
        len(p) == len(levels) and all(a == "+" or a == b for a, b in zip(p, levels, strict=True))
        for p in patterns
    )


def may_publish(device_id: str, topic: str, kind: str = DEVICE) -> bool:
    """What a device of ``kind`` may publish, and set as its Will."""
    rest = _relative(device_id, topic)
    if rest is None or not valid_topic_name(topic):
        return False
    if rest == "telemetry" or _matches(_PUBLISH, rest):
        return True
    return kind == GATEWAY and _matches(_GATEWAY_PUBLISH, rest)


def is_gateway_child(gateway: Member, child: Member | None) -> bool:
    """Whether ``gateway`` may speak for ``child`` (send its telemetry, take its commands):
    ``gateway`` is a gateway, and ``child`` is a device registered with it as parent, in the
    same project and tenant. ``None`` (no such device) is never a child.

    >>> from types import SimpleNamespace as D
    >>> gw = D(device="gw", project="p", tenant="t", kind="gateway", parent=None)
    >>> kid = D(device="k", project="p", tenant="t", kind="device", parent="gw")
    >>> is_gateway_child(gw, kid), is_gateway_child(gw, None), is_gateway_child(kid, kid)
    (True, False, False)
    """
    return (
        child is not None
        and gateway.kind == GATEWAY
        and child.parent == gateway.device
        and child.device != gateway.device
        and child.project == gateway.project
        and child.tenant == gateway.tenant
    )


def may_receive(device_id: str, topic: str) -> bool:
    """What may be delivered to a device (Atoll's commands and desired twin to it)."""
    rest = _relative(device_id, topic)
    return rest is not None and valid_topic_name(topic) and _matches(_RECEIVE, rest)


def may_subscribe(device_id: str, topic_filter: str) -> bool:
    """What a device may subscribe to: filters of its own subtree only (what they match is
    still checked by ``may_receive`` on delivery)."""
    rest = _relative(device_id, topic_filter)
    if rest is None:
        return False
    if rest in _SUBSCRIBE:
        return True
    parts = rest.split("/")
    return (
        len(parts) == 2 and parts[0] == "commands" and bool(parts[1]) and valid_topic_name(parts[1])
    )


def mosquitto_acl(admin_user: str) -> str:
    """The tables above as a Mosquitto ``acl_file`` (``%u``: the username, i.e. the device id),
    plus full access for Atoll's own ingest user. Mosquitto does not know which devices are
    gateways: it lets any device use the ``gateway/`` topics of its own subtree, and Atoll
    refuses and counts a plain device's gateway messages when it ingests them (``dispatch``);
    only Atoll publishes what gateways receive."""
    root = device_root("%u")
    header = (
        "# Written by Atoll (atoll.core.acl): devices only use their own topics (username = id)."
    )
    lines = [header]
    lines += [f"pattern write {root}/{p}" for p in DEVICE_PUBLISH + GATEWAY_PUBLISH]
    lines += [f"pattern read {root}/{p}" for p in DEVICE_RECEIVE + GATEWAY_RECEIVE]
    lines += ["", f"user {admin_user}", "topic readwrite atoll/#", "topic readwrite $share/atoll/#"]
    return "\n".join(lines) + "\n"
