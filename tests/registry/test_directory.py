import pytest

from atoll.core.errors import Conflict, Forbidden, Unauthenticated
from atoll.ingest.devices import DeviceDirectory
from atoll.registry.directory import RegistryDirectory


@pytest.fixture
def directory(registry):
    boot = registry.bootstrap()
    registry.create_project(boot.tenant, "Lab", project_id="lab")
    return RegistryDirectory(registry)


def test_satisfies_ingest_port(directory):
    assert isinstance(directory, DeviceDirectory)


def test_authenticate_raises_with_reason(directory):
    reg = directory.registry
    _, creds = reg.register_device("lab", device_id="s1")
    assert directory.authenticate_device("s1", creds.secret).project == "lab"
    with pytest.raises(Unauthenticated):
        directory.authenticate_device("s1", "wrong")
    with pytest.raises(Unauthenticated):
        directory.authenticate_device("ghost", creds.secret)
    reg.disable_device("s1")
    with pytest.raises(Forbidden):
        directory.authenticate_device("s1", creds.secret)
    # A wrong secret must not learn that the device exists and is disabled.
    with pytest.raises(Unauthenticated):
        directory.authenticate_device("s1", "wrong")


def test_twin_ack_and_counters(directory):
    reg = directory.registry
    reg.register_device("lab", device_id="s1")
    assert directory.patch_reported("s1", {"fw": "2"}).reported == {"fw": "2"}
    cmd = reg.create_command("s1", "reboot")
    assert directory.command_ack("s1", cmd.id, "error", "no").status == "failed"
    with pytest.raises(Conflict):
        directory.command_ack("s1", cmd.id, "ok", None)
    directory.touch_devices({"s1": 123})
    assert reg.get_device("s1").last_seen == 123
    # Many at once (one statement for all), an unknown id among them changes nothing else.
    for i in range(2, 50):
        reg.register_device("lab", device_id=f"s{i}")
    directory.touch_devices({f"s{i}": 1000 + i for i in range(1, 50)} | {"gone": 5})
    assert [reg.get_device(f"s{i}").last_seen for i in range(1, 50)] == [
        1000 + i for i in range(1, 50)
    ]
    directory.record_rejections([("s1", "http", "too_large", "big", 7, 1)])
    assert reg.rejections("s1")[0].reason == "too_large"
