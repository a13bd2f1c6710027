"""Conformance suites for ``LeaseStore`` and ``CheckpointStore`` adapters.

>>> # in a test:  await check_lease_store(MemoryLeaseStore(ttl=1.0))
"""

from __future__ import annotations

import asyncio
import os
import uuid

from atoll.bus.partitions import CheckpointStore, LeaseStore


async def check_lease_store(leases: LeaseStore, *, root: str | None = None) -> None:
    """Every check against ``leases`` (whose ``ttl`` should be short, ~1 s: one check waits for a
    lease to lapse); raises ``AssertionError`` on the first failure. Names are unique per run."""
    root = root or "t" + uuid.uuid4().hex[:8]
    name = f"{root}.p1"

    a = await leases.claim(name, "a")
    assert a is not None and a.owner == "a" and a.name == name
    assert await leases.claim(name, "b") is None, "a held lease was claimed again"
    assert await leases.claim(name, "a") is None, "a held lease was claimed again by its holder"
    assert (await leases.held(root))[name] == "a"

    renewed = await leases.renew(a)
    assert renewed is not None and renewed.token > a.token, "renewing gives a newer token"
    assert await leases.renew(a) is None, "an outdated token renewed the lease"
    a = renewed

    # Release: anyone may claim it at once; the old token no longer renews it.
    await leases.release(a)
    assert name not in await leases.held(root)
    b = await leases.claim(name, "b")
    assert b is not None and b.owner == "b"
    assert await leases.renew(a) is None, "a released lease was renewed"
    await leases.release(a)  # a stale release must not free b's lease
    assert (await leases.held(root))[name] == "b", "a stale token released another's lease"

    # A lease not renewed lapses after ttl: another claims it, the old holder cannot renew.
    other = f"{root}.p2"
    c = await leases.claim(other, "c")
    assert c is not None
    kept = b
    deadline = asyncio.get_running_loop().time() + leases.ttl * 4 + 5
    while True:
        renewed = await leases.renew(kept)
        assert renewed is not None, "a lease renewed in time was lost"
        kept = renewed
        d = await leases.claim(other, "d")
        if d is not None:
            break
        assert asyncio.get_running_loop().time() < deadline, "a lapsed lease was never freed"
        await asyncio.sleep(leases.ttl / 4)
    assert await leases.renew(c) is None, "a lapsed lease was renewed by its old holder"
    held = await leases.held(root)
    assert held == {name: "b", other: "d"}, held
    assert await leases.held(root + "-none") == {}


async def check_checkpoint_store(store: CheckpointStore, *, root: str | None = None) -> None:
    """Every check against ``store``; raises ``AssertionError`` on the first failure."""
    root = root or "t" + uuid.uuid4().hex[:8]
    assert await store.load(f"{root}.p0") is None
    await store.save(f"{root}.p0", 17, b"state-17")
    assert await store.load(f"{root}.p0") == (17, b"state-17")
    await store.save(f"{root}.p0", 42, b"")
    assert await store.load(f"{root}.p0") == (42, b""), "the latest save wins, empty state too"
    big = os.urandom(3 * 2**20)  # larger than a NATS message: adapters must chunk
    await store.save(f"{root}.p1", 2**40, big)
    assert await store.load(f"{root}.p1") == (2**40, big)
    assert await store.load(f"{root}.p0") == (42, b""), "checkpoints are kept per name"
