"""Every service module composes from a plain ``PlatformParts``, using only what it is given."""

from argon2 import PasswordHasher

from atoll.bus.memory import MemoryBus
from atoll.config import Settings
from atoll.detect.service import DetectionService
from atoll.platform import SERVICE_MODULES
from atoll.registry import Registry
from atoll.registry.retention import RetentionService
from atoll.rul.service import RulService
from atoll.rules.service import RulesService
from atoll.service import PlatformParts, Service
from atoll.store.memory import MemoryStore

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def test_each_service_module_builds_its_service_from_the_parts_it_is_given(tmp_path):
    registry = Registry.open(tmp_path, password_hasher=FAST)
    try:
        parts = PlatformParts(Settings(home=tmp_path), registry, MemoryStore(), MemoryBus())
        built = {m.__name__: m.create_service(parts) for m in SERVICE_MODULES}
        assert all(isinstance(s, Service) for s in built.values())

        detect = built["atoll.detect.service"]
        assert isinstance(detect, DetectionService)
        assert detect.bus is parts.bus and detect.store is parts.store
        assert detect.registry is registry
        assert detect.state_path == tmp_path / "detect" / "state.msgpack"

        retention = built["atoll.registry.retention"]
        assert isinstance(retention, RetentionService)
        assert retention.registry is registry and retention.store is parts.store

        rules = built["atoll.rules.service"]
        assert isinstance(rules, RulesService)
        assert rules.bus is parts.bus and rules.store is parts.store
        assert rules.db is registry.engine  # rules share the registry's database
        assert rules.engine.directory is not None and rules.engine.directory.registry is registry

        rul = built["atoll.rul.service"]
        assert isinstance(rul, RulService)
        assert rul.bus is parts.bus and rul.store is parts.store and rul.registry is registry
        assert rul.models_dir == tmp_path / "models" / "rul"
    finally:
        registry.close()
