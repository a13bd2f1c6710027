from atoll.core import topics


def test_parse_rejects_foreign_topics():
    assert topics.parse("atoll/v1/devices/d1/telemetry") == ("d1", "telemetry")
    assert topics.parse("other/d1/telemetry") is None
    assert topics.parse("atoll/v1/devices/d1") is None
