"""Per-device and per-tenant rate limits: token buckets that count points.

Every device and every tenant has a bucket of ``burst`` points that refills at ``per_s``
points per second; what a device sends is taken from its own bucket and from its tenant's.
Points are what a device costs (store, bus, detectors), so a batch of 100 readings of 10
values costs 1,000, and every message costs at least 1 (a refused or empty one, a twin
report, a command ack), so floods of bad messages are limited too.

A charge is never refused here: it may leave a bucket in debt, and the answer is how long
the sender has to wait until the debt is paid. The transports decide what waiting means
(docs/DEVICES.md, "Rate limits"):

* embedded MQTT stops reading the connection for that long: TCP pushes back on the client,
  nothing is lost, PUBACKs just come later;
* HTTP, and external MQTT (the broker has acknowledged already), refuse while in debt:
  429 with ``Retry-After``, or a counted ``rate_limited`` refusal.

A bucket is one float, the time it will be full again (GCRA's "theoretical arrival time"),
so a charge is two dict look-ups and no allocation. Libraries such as ``limits`` or
``aiolimiter`` answer yes/no or await per acquire; none says "how long until in credit"
without an await per message, which is what back-pressure on a whole read needs.

>>> q = Quotas(QuotaPolicy(device=Rate(10, 20), tenant=Rate(0, 0)))
>>> q.charge("d1", "acme", 20, now=0.0)   # the burst
0.0
>>> q.charge("d1", "acme", 5, now=0.0)    # 5 points of debt at 10 points/s
0.5
>>> q.wait("d1", "acme", now=0.25), q.wait("d1", "acme", now=1.0)
(0.25, 0.0)

A tenant's devices share its bucket, and tenants can have their own policy:

>>> q = Quotas(QuotaPolicy(device=Rate(100, 100), tenant=Rate(10, 10)),
...            {"big": QuotaPolicy(device=Rate(100, 100), tenant=Rate(0, 0))})
>>> q.charge("a1", "small", 10, now=0.0), q.charge("a2", "small", 10, now=0.0)
(0.0, 1.0)
>>> q.charge("b1", "big", 100, now=0.0), q.charge("b2", "big", 100, now=0.0)
(0.0, 0.0)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple


class Rate(NamedTuple):
    """``per_s`` points per second, up to ``burst`` at once; ``per_s <= 0``: unlimited."""

    per_s: float
    burst: float


UNLIMITED = Rate(0, 0)


@dataclass(frozen=True, slots=True)
class QuotaPolicy:
    """The limit of each device of a tenant, and of the tenant as a whole."""

    device: Rate
    tenant: Rate

    @property
    def unlimited(self) -> bool:
        return self.device.per_s <= 0 and self.tenant.per_s <= 0

    def describe(self) -> str:
        """For logs and rejection messages.

        >>> QuotaPolicy(Rate(1000, 10000), UNLIMITED).describe()
        'device 1000 points/s (burst 10000), tenant unlimited'
        """
        def one(r: Rate) -> str:
            return "unlimited" if r.per_s <= 0 else f"{r.per_s:g} points/s (burst {r.burst:g})"
        return f"device {one(self.device)}, tenant {one(self.tenant)}"


class Quotas:
    """The buckets of every device and tenant that sent something recently."""

    def __init__(self, default: QuotaPolicy, per_tenant: Mapping[str, QuotaPolicy] | None = None
                 ) -> None:
        self.default = default
        self.per_tenant = dict(per_tenant or {})
        # Time each bucket is full again; absent = full.
        self._devices: dict[str, float] = {}
        self._tenants: dict[str, float] = {}

    @property
    def unlimited(self) -> bool:
        return self.default.unlimited and all(p.unlimited for p in self.per_tenant.values())

    def policy(self, tenant: str) -> QuotaPolicy:
        return self.per_tenant.get(tenant, self.default)

    def charge(self, device: str, tenant: str, points: int, now: float | None = None) -> float:
        """Take ``points`` from the device's and its tenant's buckets; seconds to wait (0: none)."""
        now = time.monotonic() if now is None else now
        policy = self.per_tenant.get(tenant, self.default)
        wait = 0.0
        rate = policy.device
        if rate.per_s > 0:
            wait = _take(self._devices, device, rate, points, now)
        rate = policy.tenant
        if rate.per_s > 0:
            wait = max(wait, _take(self._tenants, tenant, rate, points, now))
        return wait

    def wait(self, device: str, tenant: str, now: float | None = None) -> float:
        """Seconds until the device (and its tenant) are out of debt (0: it may send now)."""
        return self.charge(device, tenant, 0, now)

    def prune(self, now: float | None = None) -> None:
        """Forget buckets that are full again (they are the same as absent ones)."""
        now = time.monotonic() if now is None else now
        for buckets in (self._devices, self._tenants):
            for key in [k for k, full_at in buckets.items() if full_at <= now]:
                del buckets[key]

    def __len__(self) -> int:
        return len(self._devices) + len(self._tenants)


def _take(buckets: dict[str, float], key: str, rate: Rate, points: int, now: float) -> float:
    full_at = max(buckets.get(key, now), now) + points / rate.per_s
    buckets[key] = full_at
    debt = full_at - now - rate.burst / rate.per_s
    return debt if debt > 0 else 0.0
