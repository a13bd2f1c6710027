"""An enterprise's quotas changed: every node's ingest hears it on the bus and asks again.

The platform operator sets quotas through one node (``PUT /tenants/{t}/quotas``); the
registry holds them, shared by every node. The count quotas (devices, API keys) are checked
in the registry's own transaction, so every node sees a change at once. The ingest rate and
the storage quota are enforced in each node's memory (``IngestPipeline.refresh_quotas``), so
the node that made the change announces it on ``quotas.{tenant}`` (``announce``) and every
node follows that subject and refreshes at once (``follow``). An event a node misses (it was
reconnecting to NATS, or the publish failed) is made up by the pipeline's own refresh about
once a minute, as a rule change is by the rules service's timer pass.

>>> import asyncio
>>> from atoll.bus.memory import MemoryBus
>>> async def demo():
...     bus, heard = MemoryBus(), []
...     async def refresh():
...         heard.append("refreshed")
...     sub = await follow(bus, refresh)
...     await announce(bus, "acme")
...     await asyncio.sleep(0.05)  # delivered by the subscription's own task
...     await sub.unsubscribe()
...     return heard
>>> asyncio.run(demo())
['refreshed']
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec

from atoll.bus.port import Message, MessageBus, Subscription
from atoll.core import topics

log = logging.getLogger(__name__)


async def announce(bus: MessageBus | None, tenant: str) -> None:
    """Tell every node that ``tenant``'s quotas changed (best effort: see the module)."""
    if bus is None:
        return
    try:
        await bus.publish(topics.bus_quotas(tenant), msgspec.json.encode({"tenant": tenant}))
    except Exception:  # the other nodes still catch up within a minute
        log.exception("could not announce the quota change of %s", tenant)


async def follow(bus: MessageBus, refresh: Callable[[], Awaitable[None]]) -> Subscription:
    """Call ``refresh`` whenever any node announces a quota change (every node: no group)."""

    async def on_change(msg: Message) -> None:
        await refresh()

    return await bus.subscribe(topics.ALL_QUOTA_CHANGES, on_change)
