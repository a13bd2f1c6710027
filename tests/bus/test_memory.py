import pytest

from atoll.bus.memory import MemoryBus
from atoll.testing.bus import check_bus


async def test_memory_bus_passes_conformance_suite():
    bus = MemoryBus()
    await check_bus(bus)
    await bus.close()


async def test_closed_bus_refuses_publish():
    bus = MemoryBus()
    await bus.close()
    with pytest.raises(RuntimeError):
        await bus.publish("a.b", b"x")
