from atoll.core import topics


def test_device_may_publish_only_its_own_topics():
    assert topics.may_publish("d1", topics.telemetry("d1"))
    assert topics.may_publish("d1", topics.twin_reported("d1"))
    assert topics.may_publish("d1", topics.command_ack("d1", "c9"))
    assert not topics.may_publish("d1", topics.telemetry("d2"))
    assert not topics.may_publish("d1", topics.twin_desired("d1"))
    assert not topics.may_publish("d1", topics.command("d1", "c9"))
    assert not topics.may_publish("d1", "atoll/v1/devices/d1/telemetry/extra")


def test_device_may_subscribe_only_to_its_own_inbound_topics():
    assert topics.may_subscribe("d1", topics.twin_desired("d1"))
    assert topics.may_subscribe("d1", "atoll/v1/devices/d1/commands/+")
    assert not topics.may_subscribe("d1", "atoll/v1/devices/+/commands/+")
    assert not topics.may_subscribe("d1", "atoll/v1/devices/#")
    assert not topics.may_subscribe("d1", topics.twin_desired("d2"))


def test_parse_rejects_foreign_topics():
    assert topics.parse("atoll/v1/devices/d1/telemetry") == ("d1", "telemetry")
    assert topics.parse("other/d1/telemetry") is None
    assert topics.parse("atoll/v1/devices/d1") is None
