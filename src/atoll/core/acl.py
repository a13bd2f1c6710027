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

``receive`` is checked for every message delivered to a device (live, queued for an offline
session, or retained), not only at SUBSCRIBE time, so no path from the broker to a device
can carry another device's topic.

Where it is enforced: the embedded broker (``atoll.ingest.embedded_broker``,
``embedded_connection`` and ``dispatch``) calls these functions on each path; in external
mode Mosquitto enforces the same table, written as ``pattern`` lines by ``mosquitto_acl``.

>>> (may_publish("d1", "atoll/v1/devices/d1/commands/c7/ack"),
...  may_publish("d1", "atoll/v1/devices/d2/telemetry"))
(True, False)
>>> (may_receive("d1", "atoll/v1/devices/d1/twin/desired"),
...  may_receive("d1", "atoll/v1/devices/d1/telemetry"))
(True, False)
"""

from __future__ import annotations

from atoll.core.topics import PREFIX, device_root

#: Topic patterns relative to the device's subtree (``+``: one level, as in MQTT filters).
DEVICE_PUBLISH = ("telemetry", "twin/reported", "commands/+/ack")
DEVICE_RECEIVE = ("twin/desired", "commands/+")

_PUBLISH = tuple(p.split("/") for p in DEVICE_PUBLISH)
_RECEIVE = tuple(p.split("/") for p in DEVICE_RECEIVE)
_SUBSCRIBE = frozenset({"twin/desired", "commands/+", "commands/#", "#"})


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


def may_publish(device_id: str, topic: str) -> bool:
    """What a device may publish, and set as its Will."""
    rest = _relative(device_id, topic)
    if rest is None or not valid_topic_name(topic):
        return False
    return rest == "telemetry" or _matches(_PUBLISH, rest)


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
    """The table above as a Mosquitto ``acl_file`` (``%u``: the username, i.e. the device id),
    plus full access for Atoll's own ingest user."""
    root = device_root("%u")
    header = (
        "# Written by Atoll (atoll.core.acl): devices only use their own topics (username = id)."
    )
    lines = [header]
    lines += [f"pattern write {root}/{p}" for p in DEVICE_PUBLISH]
    lines += [f"pattern read {root}/{p}" for p in DEVICE_RECEIVE]
    lines += ["", f"user {admin_user}", "topic readwrite atoll/#", "topic readwrite $share/atoll/#"]
    return "\n".join(lines) + "\n"
