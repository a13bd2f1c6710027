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
        [["write", f"atoll/v1/devices/%u/{p}"] for p in acl.DEVICE_PUBLISH + acl.GATEWAY_PUBLISH]
        + [["read", f"atoll/v1/devices/%u/{p}"] for p in acl.DEVICE_RECEIVE + acl.GATEWAY_RECEIVE]
    )
    assert "pattern write atoll/v1/devices/%u/gateway/telemetry\n" in text
    assert "user atoll-ingest\ntopic readwrite atoll/#\n" in text


def test_only_a_gateway_may_publish_gateway_topics_and_only_under_its_own_subtree():
    for topic in (
        topics.gateway_connect("g"),
        topics.gateway_telemetry("g"),
        topics.gateway_command_ack("g", "k1", "c9"),
    ):
        assert acl.may_publish("g", topic, acl.GATEWAY)
        assert not acl.may_publish("g", topic)  # a plain device
        assert not acl.may_publish("h", topic, acl.GATEWAY)  # another gateway's subtree
    for topic in (
        topics.gateway_command("g", "k1", "c9"),
        topics.gateway_connect_ack("g"),
        topics.gateway_command_ack("g", "+", "c9"),
        "atoll/v1/devices/g/gateway/commands/k1/c9/ack/x",
        "atoll/v1/devices/g/gateway/other",
    ):
        assert not acl.may_publish("g", topic, acl.GATEWAY)


def test_a_gateway_receives_and_subscribes_to_its_childrens_commands_and_connect_answers():
    assert acl.may_receive("g", topics.gateway_command("g", "k1", "c9"))
    assert acl.may_receive("g", topics.gateway_connect_ack("g"))
    assert not acl.may_receive("g", topics.gateway_command("h", "k1", "c9"))
    assert not acl.may_receive("g", topics.gateway_telemetry("g"))
    assert not acl.may_receive("g", topics.gateway_command_ack("g", "k1", "c9"))
    for f in ("gateway/#", "gateway/connect/ack", "gateway/commands/#", "gateway/commands/+/+"):
        assert acl.may_subscribe("g", f"atoll/v1/devices/g/{f}")
        assert not acl.may_subscribe("g", f"atoll/v1/devices/h/{f}")


def test_is_gateway_child_is_the_one_parent_check():
    from types import SimpleNamespace as D

    gw = D(device="g", project="p", tenant="t", kind="gateway", parent=None)
    kid = D(device="k", project="p", tenant="t", kind="device", parent="g")
    assert acl.is_gateway_child(gw, kid)
    assert not acl.is_gateway_child(gw, None)
    assert not acl.is_gateway_child(D(**{**vars(gw), "kind": "device"}), kid)  # not a gateway
    assert not acl.is_gateway_child(gw, D(**{**vars(kid), "parent": "h"}))  # another's child
    assert not acl.is_gateway_child(gw, D(**{**vars(kid), "parent": None}))  # a plain device
    assert not acl.is_gateway_child(gw, D(**{**vars(kid), "tenant": "u"}))  # another tenant
    assert not acl.is_gateway_child(gw, D(**{**vars(kid), "project": "q"}))  # another project
    assert not acl.is_gateway_child(gw, D(**{**vars(gw), "parent": "g"}))  # itself
