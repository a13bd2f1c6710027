"""Gateways and child devices in the registry (``kind``, ``parent``), on SQLite and PostgreSQL."""

import pytest

from atoll.core.errors import Conflict, InvalidInput, NotFound, QuotaExceeded


@pytest.fixture
def lab(any_registry):
    reg = any_registry
    reg.bootstrap()
    reg.create_project("default", "Lab", project_id="lab")
    reg.create_project("default", "Other", project_id="other")
    reg.create_device_type("lab", "press", [{"name": "force"}])
    reg.register_device("lab", device_id="gw", kind="gateway")
    reg.register_device("other", device_id="gw-other", kind="gateway")
    reg.register_device("lab", device_id="plain")
    return reg


def test_gateways_and_children_are_registered_listed_and_guarded(lab):
    reg = lab
    gw = reg.get_device("gw")
    assert (gw.kind, gw.parent) == ("gateway", None)
    child, creds = reg.register_device("lab", device_id="k1", parent="gw", device_type="press")
    assert (child.kind, child.parent) == ("device", "gw") and creds.secret
    assert reg.get_device("plain").kind == "device"
    # Batch: a gateway and its children in one go.
    done = reg.register_devices(
        "lab",
        [
            {"device_id": "gw-b", "kind": "gateway"},
            {"device_id": "k2", "parent": "gw-b"},
        ],
    )
    assert [d.parent for d, _ in done] == [None, "gw-b"]
    assert [d.id for d in reg.list_devices("lab", parent="gw")] == ["k1"]
    assert reg.count_devices("lab", parent="gw-b") == 1
    assert [d.id for d in reg.list_devices("lab", kind="gateway")] == ["gw", "gw-b"]
    # What a child's parent may not be.
    for parent, why in [
        ("plain", "not a gateway"),
        ("gw-other", "not a device of project"),
        ("nobody", "not a device of project"),
        ("beta~gw", "invalid device id"),
    ]:
        with pytest.raises(InvalidInput, match=why):
            reg.register_device("lab", device_id="bad", parent=parent)
    with pytest.raises(InvalidInput, match="cannot have a parent"):
        reg.register_device("lab", device_id="bad", kind="gateway", parent="gw")
    with pytest.raises(InvalidInput, match="kind must be"):
        reg.register_device("lab", device_id="bad", kind="hub")
    with pytest.raises(NotFound):
        reg.get_device("bad")


def test_a_gateway_with_children_is_not_deleted_until_they_are_detached(lab):
    reg = lab
    reg.register_device("lab", device_id="k1", parent="gw")
    with pytest.raises(Conflict, match="has 1 child"):
        reg.delete_device("gw")
    with pytest.raises(Conflict, match="gateway of 1 device"):
        reg.update_device("gw", kind="device")
    assert reg.update_device("k1", parent=None).parent is None
    reg.delete_device("gw")
    with pytest.raises(NotFound):
        reg.get_device("gw")
    # A plain device can become a gateway and adopt devices by PATCH.
    reg.update_device("plain", kind="gateway")
    assert reg.update_device("k1", parent="plain").parent == "plain"
    assert reg.device_identities(["k1"])["k1"].parent == "plain"


def test_adopt_child_registers_once_and_never_takes_another_device(lab):
    reg = lab
    identity, created = reg.adopt_child("gw", "p1", "press")
    assert created and (identity.device, identity.parent, identity.project) == ("p1", "gw", "lab")
    assert not reg.get_device("p1").has_credentials
    again, created = reg.adopt_child("gw", "p1", None)
    assert not created and again == identity
    again, created = reg.adopt_child("gw", "p1", "other")  # its type stays
    assert not created and again == identity
    with pytest.raises(Conflict, match="not a child of gateway"):
        reg.adopt_child("gw", "plain", None)
    with pytest.raises(Conflict, match="not a child of gateway"):
        reg.adopt_child("gw-other", "p1", None)  # another gateway's child
    with pytest.raises(InvalidInput, match="not a gateway"):
        reg.adopt_child("plain", "p2", None)
    with pytest.raises(NotFound):
        reg.adopt_child("gw", "p2", "no-such-type")
    with pytest.raises(InvalidInput, match="invalid device id"):
        reg.adopt_child("gw", "beta~p3", None)
    reg.set_quotas("default", {"devices": reg.quotas("default")["devices"].used})
    with pytest.raises(QuotaExceeded):
        reg.adopt_child("gw", "p4", None)


def test_identities_by_id_are_cached_and_carry_kind_and_parent(lab):
    reg = lab
    reg.register_device("lab", device_id="k1", parent="gw")
    found = reg.device_identities(["k1", "gw", "nobody"])
    assert found["k1"].parent == "gw" and found["gw"].kind == "gateway"
    assert found["nobody"] is None
    assert reg.known_identities(["k1", "gw", "other"]) == {"k1": found["k1"], "gw": found["gw"]}
    reg.disable_device("k1")  # invalidates: a disabled device speaks through nobody
    assert reg.device_identities(["k1"]) == {"k1": None}
