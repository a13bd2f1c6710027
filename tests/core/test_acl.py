from atoll.core import acl, topics


def test_device_may_publish_only_its_own_topics():
    assert acl.may_publish("d1", topics.telemetry("d1"))
    assert acl.may_publish("d1", topics.twin_reported("d1"))
    assert acl.may_publish("d1", topics.command_ack("d1", "c9"))
    assert not acl.may_publish("d1", topics.telemetry("d2"))
    assert not acl.may_publish("d1", topics.twin_desired("d1"))
    assert not acl.may_publish("d1", topics.command("d1", "c9"))
    assert not acl.may_publish("d1", "atoll/v1/devices/d1/telemetry/extra")
    # Topic names with wildcards or NUL are not topic names at all (MQTT 3.1.1 §4.7).
    assert not acl.may_publish("d1", topics.command_ack("d1", "+"))
    assert not acl.may_publish("d1", topics.command_ack("d1", "#"))
    assert not acl.may_publish("d1", topics.telemetry("d1") + "\x00")


def test_device_may_subscribe_only_to_its_own_inbound_topics():
    assert acl.may_subscribe("d1", topics.twin_desired("d1"))
    assert acl.may_subscribe("d1", "atoll/v1/devices/d1/commands/+")
    assert acl.may_subscribe("d1", "atoll/v1/devices/d1/commands/c9")
    assert acl.may_subscribe("d1", "atoll/v1/devices/d1/#")
    assert not acl.may_subscribe("d1", "atoll/v1/devices/+/commands/+")
    assert not acl.may_subscribe("d1", "atoll/v1/devices/#")
    assert not acl.may_subscribe("d1", "#")
    assert not acl.may_subscribe("d1", topics.twin_desired("d2"))
    assert not acl.may_subscribe("d1", "atoll/v1/devices/d1/commands/c9/#")


def test_device_receives_only_its_own_desired_twin_and_commands():
    assert acl.may_receive("d1", topics.twin_desired("d1"))
    assert acl.may_receive("d1", topics.command("d1", "c9"))
    assert not acl.may_receive("d1", topics.twin_desired("d2"))
    assert not acl.may_receive("d1", topics.command("d10", "c9"))
    assert not acl.may_receive("d1", topics.telemetry("d1"))
    assert not acl.may_receive("d1", topics.command_ack("d1", "c9"))


def test_mosquitto_acl_is_the_same_table():
    text = acl.mosquitto_acl("atoll-ingest")
    assert "pattern write atoll/v1/devices/%u/telemetry\n" in text
    assert "pattern read atoll/v1/devices/%u/twin/desired\n" in text
    patterns = [line.split(" ", 2)[1:] for line in text.splitlines() if line.startswith("pattern")]
    assert patterns == (
        [["write", f"atoll/v1/devices/%u/{p}"] for p in acl.DEVICE_PUBLISH]
        + [["read", f"atoll/v1/devices/%u/{p}"] for p in acl.DEVICE_RECEIVE]
    )
    assert "user atoll-ingest\ntopic readwrite atoll/#\n" in text
