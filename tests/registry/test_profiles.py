"""Device profiles (type and labels) per project in bulk: one query for a whole fleet, fresh
again after ``max_age``, single look-ups for devices registered since, on both backends."""

from __future__ import annotations

from atoll.registry.profiles import DeviceProfiles


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _fleet(reg, n: int = 5) -> None:
    boot = reg.bootstrap()
    reg.create_project(boot.tenant, "P", project_id="p")
    reg.create_project(boot.tenant, "Q", project_id="q")
    reg.create_device_type("p", "pump", [{"name": "t"}])
    for i in range(n):
        reg.register_device("p", device_id=f"d{i}", device_type="pump", labels={"line": str(i)})
    reg.register_device("p", device_id="bare")
    reg.register_device("q", device_id="other")


def test_registry_lists_a_projects_profiles(any_registry):
    _fleet(any_registry, 3)
    got = any_registry.device_profiles("p")
    assert got == {
        "d0": ("pump", {"line": "0"}),
        "d1": ("pump", {"line": "1"}),
        "d2": ("pump", {"line": "2"}),
        "bare": (None, {}),
    }
    assert any_registry.device_profiles("q") == {"other": (None, {})}
    assert any_registry.device_profiles("nope") == {}


def test_one_query_for_a_fleet_then_single_lookups_then_fresh(registry):
    _fleet(registry, 50)
    clock = _Clock()
    profiles = DeviceProfiles(registry, max_age=60.0, reload_after=3, clock=clock)
    for i in range(50):
        assert profiles.get("p", f"d{i}") == ("pump", {"line": str(i)})
    assert (profiles.loads, profiles.lookups) == (1, 0)
    assert profiles.get("p", "bare") == (None, {})
    # Not of the project, or unknown: None, looked up alone (and remembered).
    assert profiles.get("p", "other") is None
    assert profiles.get("p", "ghost") is None
    assert profiles.get("p", "ghost") is None
    assert (profiles.loads, profiles.lookups) == (1, 2)
    # Registered after the table was read: found alone.
    registry.register_device("p", device_id="late", device_type="pump")
    assert profiles.get("p", "late") == ("pump", {})
    assert (profiles.loads, profiles.lookups) == (1, 3)
    # After ``reload_after`` misses the table is read again.
    registry.register_device("p", device_id="later")
    assert profiles.get("p", "later") == (None, {})
    assert (profiles.loads, profiles.lookups) == (2, 3)
    # A change shows once the table is older than max_age.
    registry.update_device("d1", labels={"line": "x"})
    clock.t = 59.0
    assert profiles.get("p", "d1") == ("pump", {"line": "1"})
    clock.t = 60.0
    assert profiles.get("p", "d1") == ("pump", {"line": "x"})
    assert profiles.loads == 3


def test_a_registry_without_bulk_lookups_is_asked_device_by_device(registry):
    _fleet(registry, 2)

    class OneByOne:
        def get_device(self, device_id):
            return registry.get_device(device_id)

    profiles = DeviceProfiles(OneByOne())
    assert profiles.get("p", "d1") == ("pump", {"line": "1"})
    assert profiles.get("p", "d1") == ("pump", {"line": "1"})
    assert profiles.get("p", "other") is None
    assert (profiles.loads, profiles.lookups) == (0, 2)
