"""Device directories pass the conformance suite: in memory and over the real registry."""

from __future__ import annotations

from atoll.registry import Registry
from atoll.rules.channels import channel_types
from atoll.rules.directory import RegistryDevices, StaticDirectory
from atoll.testing.rules import check_channel_type, check_directory


def test_static_directory():
    check_directory(StaticDirectory)


def test_registry_directory(tmp_path):
    registry = Registry.open(tmp_path)
    boot = registry.bootstrap()

    def make(fleet):
        for project, devices in fleet.items():
            registry.create_project(boot.tenant, project, project_id=project)
            for dtype in sorted(set(devices.values())):
                registry.create_device_type(project, dtype, [{"name": "t"}])
            for device, dtype in devices.items():
                registry.register_device(project, device_id=device, device_type=dtype)
        return RegistryDevices(registry)

    check_directory(make)
    registry.close()


def test_built_in_channel_types():
    types = channel_types()
    check_channel_type(types["webhook"], {"url": "http://127.0.0.1:9/x"})
    check_channel_type(types["command"], {"command": "reboot"})
    check_channel_type(types["chat"], {"url": "http://127.0.0.1:9/x"})
    check_channel_type(types["email"], {"host": "127.0.0.1", "sender": "a@b.c", "to": ["x@y.z"]})
    check_channel_type(types["log"], {"level": "INFO"}, send=True)
