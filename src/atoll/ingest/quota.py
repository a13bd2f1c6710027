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

A connection that cannot be refused is also read in slices that fit its allowance
(``ReadPacer``): a sender at its limit is read about ``SLICE_S`` worth of its rate at a
time, not in 64 KiB gulps that would be accepted at once and paid for by long pauses, and
that would hold the event loop (and every other tenant) for tens of milliseconds.

A bucket is one float, the time it will be full again (GCRA's "theoretical arrival time"),
so a charge is two dict look-ups and no allocation. Libraries such as ``limits`` or
``aiolimiter`` answer yes/no or await per acquire; none says "how long until in credit"
without an await per message, which is what back-pressure on a whole read needs.

>>> q = Quotas(QuotaPolicy(device=Rate(10, 20), tenant=Rate(0, 0)))
>>> q.charge("d1", "acme", 20, now=0.0)   # the burst
0.0
>>> q.charge("d1", "acme", 5, now=0.0)    # 5 points of debt at 10 points/s
0.5
>>> round(q.wait("d1", "acme", now=0.25), 3)  # until one point is there again
0.35
>>> q.wait("d1", "acme", now=0.6)
0.0

A tenant's devices share its bucket, and tenants can have their own policy:

>>> q = Quotas(QuotaPolicy(device=Rate(100, 100), tenant=Rate(10, 10)),
...            {"big": QuotaPolicy(device=Rate(100, 100), tenant=Rate(0, 0))})
>>> q.charge("a1", "small", 10, now=0.0), q.charge("a2", "small", 10, now=0.0)
(0.0, 1.0)
>>> q.charge("b1", "big", 100, now=0.0), q.charge("b2", "big", 100, now=0.0)
(0.0, 0.0)
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple


class Rate(NamedTuple):
    """``per_s`` points per second, up to ``burst`` at once; ``per_s <= 0``: unlimited."""

    per_s: float
    burst: float


UNLIMITED = Rate(0, 0)
EPSILON_S = 1e-6  # shorter waits are rounding


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

    def __init__(
        self, default: QuotaPolicy, per_tenant: Mapping[str, QuotaPolicy] | None = None
    ) -> None:
        self.default = default
        self.per_tenant = dict(per_tenant or {})
        self._configured = dict(self.per_tenant)  # from settings, before any override
        self._rated: set[str] = set()  # tenants with the platform operator's ingest quota
        # Time each bucket is full again; absent = full.
        self._devices: dict[str, float] = {}
        self._tenants: dict[str, float] = {}
        self._described: dict[str, str] = {}

    @property
    def unlimited(self) -> bool:
        return self.default.unlimited and all(p.unlimited for p in self.per_tenant.values())

    def policy(self, tenant: str) -> QuotaPolicy:
        return self.per_tenant.get(tenant, self.default)

    def set_tenant_rate(self, tenant: str, per_s: float | None, now: float | None = None) -> None:
        """The platform operator's ingest quota of ``tenant`` (points/s; burst: two seconds'
        worth); ``None`` goes back to the configured policy. Devices keep their own limits.

        >>> q = Quotas(QuotaPolicy(device=Rate(100, 100), tenant=Rate(10, 10)))
        >>> q.set_tenant_rate("acme", 50); q.policy("acme").tenant, q.policy("other").tenant
        (Rate(per_s=50, burst=100), Rate(per_s=10, burst=10))
        >>> q.set_tenant_rate("acme", None); q.policy("acme").tenant
        Rate(per_s=10, burst=10)

        The tenant keeps the points it took, now paid back at the new rate: a raised quota
        lets it go at once, not when the old rate would have.

        >>> q.charge("d", "acme", 60, now=0.0)       # 50 points of debt at 10 points/s
        5.0
        >>> q.set_tenant_rate("acme", 1000, now=0.0); q.wait("d", "acme", now=0.0)
        0.0
        """
        now = time.monotonic() if now is None else now
        old = self.policy(tenant).tenant
        base = self._configured.get(tenant, self.default)
        if per_s is None:
            self._rated.discard(tenant)
            if tenant in self._configured:
                self.per_tenant[tenant] = base
            else:
                self.per_tenant.pop(tenant, None)
        else:
            self._rated.add(tenant)
            self.per_tenant[tenant] = QuotaPolicy(base.device, Rate(per_s, 2 * per_s))
        self._described.pop(tenant, None)
        new = self.policy(tenant).tenant
        full_at = self._tenants.get(tenant)
        if full_at is not None and new != old:
            if old.per_s > 0 and new.per_s > 0:
                taken = max(full_at - now, 0.0) * old.per_s  # points not yet paid back
                self._tenants[tenant] = now + taken / new.per_s
            else:
                del self._tenants[tenant]

    def set_tenant_rates(self, rates: Mapping[str, float]) -> None:
        """The ingest quotas of every tenant that has one (``set_tenant_rate``); the tenants
        not in ``rates`` go back to the configured policy. A bucket keeps what it owes.

        >>> q = Quotas(QuotaPolicy(device=UNLIMITED, tenant=UNLIMITED))
        >>> q.unlimited, q.set_tenant_rates({"acme": 50, "beta": 5}), q.unlimited
        (True, None, False)
        >>> q.set_tenant_rates({"beta": 8}); q.policy("acme").tenant, q.policy("beta").tenant
        (Rate(per_s=0, burst=0), Rate(per_s=8, burst=16))
        """
        for tenant in self._rated - rates.keys():
            self.set_tenant_rate(tenant, None)
        for tenant, per_s in rates.items():
            if tenant not in self._rated or self.policy(tenant).tenant.per_s != per_s:
                self.set_tenant_rate(tenant, per_s)

    def describe(self, tenant: str) -> str:
        """The tenant's limits in words (made once: rejection messages repeat it often)."""
        text = self._described.get(tenant)
        if text is None:
            text = self._described[tenant] = self.policy(tenant).describe()
        return text

    def charge(self, device: str, tenant: str, points: float, now: float | None = None) -> float:
        """Take ``points`` from the device's and its tenant's buckets (a negative number gives
        them back); seconds the device is now in debt (0: none)."""
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

    def wait(
        self, device: str, tenant: str, slice_s: float = 0.0, now: float | None = None
    ) -> float:
        """Seconds until the device's and its tenant's buckets each hold a point again, or
        ``slice_s`` worth of their rate if that is more (0: now)."""
        now = time.monotonic() if now is None else now
        policy = self.per_tenant.get(tenant, self.default)
        wait = 0.0
        for buckets, key, rate in (
            (self._devices, device, policy.device),
            (self._tenants, tenant, policy.tenant),
        ):
            if rate.per_s > 0:
                need = max(1.0, slice_s * rate.per_s)
                full_at = max(buckets.get(key, now), now)
                wait = max(wait, full_at + (need - rate.burst) / rate.per_s - now)
        return wait if wait > EPSILON_S else 0.0

    def allowance(self, device: str, tenant: str, now: float | None = None) -> float:
        """Points the device may send now without going into debt (``inf``: unlimited).

        >>> q = Quotas(QuotaPolicy(device=Rate(100, 1000), tenant=UNLIMITED))
        >>> q.allowance("d", "t", now=0.0), q.charge("d", "t", 990, now=0.0)
        (1000.0, 0.0)
        >>> q.allowance("d", "t", now=0.0), round(q.wait("d", "t", slice_s=0.5, now=0.0), 3)
        (10.0, 0.4)
        """
        now = time.monotonic() if now is None else now
        policy = self.per_tenant.get(tenant, self.default)
        out = math.inf
        for buckets, key, rate in (
            (self._devices, device, policy.device),
            (self._tenants, tenant, policy.tenant),
        ):
            if rate.per_s > 0:
                out = min(out, rate.burst - max(buckets.get(key, now) - now, 0.0) * rate.per_s)
        return out

    def prune(self, now: float | None = None) -> None:
        """Forget buckets that are full again (they are the same as absent ones)."""
        now = time.monotonic() if now is None else now
        for buckets in (self._devices, self._tenants):
            for key in [k for k, full_at in buckets.items() if full_at <= now]:
                del buckets[key]

    def __len__(self) -> int:
        return len(self._devices) + len(self._tenants)


def _take(buckets: dict[str, float], key: str, rate: Rate, points: float, now: float) -> float:
    full_at = max(buckets.get(key, now), now) + points / rate.per_s
    buckets[key] = full_at
    debt = full_at - now - rate.burst / rate.per_s
    return debt if debt > EPSILON_S else 0.0


class ReadPacer:
    """How much to read from one sender's connection, and when to handle what was read.

    A connection is read in pieces that fit what its device and tenant may still send (at
    least ``SLICE_S`` of the tightest rate, at most ``largest`` bytes, at the bytes per point
    seen so far), and what was read is handled only once each of its buckets holds a slice
    (``wait``). So a sender at its limit is handled in small, regular slices, not in 64 KiB
    gulps paid for by long pauses, each holding the event loop (and every other tenant) for
    tens of milliseconds; and the devices of one tenant, woken together, go one after the
    other, since the first one's charge makes the others wait. Nothing is reserved while a
    connection waits for data, so idle connections cost their tenant nothing.

    >>> q = Quotas(QuotaPolicy(device=Rate(1000, 10_000), tenant=UNLIMITED))
    >>> pacer = ReadPacer(q, "d", "t", largest=65536)
    >>> pacer.size(now=0.0), pacer.wait(now=0.0)    # plenty left
    (65536, 0.0)
    >>> pacer.charge(4500, 100, now=0.0)            # it held 100 points, 45 bytes each
    >>> _ = q.charge("d", "t", 9_900, now=0.0)      # the rest of the burst went elsewhere
    >>> pacer.size(now=0.0), round(pacer.wait(now=0.0), 3)  # 20 ms of 1000 points/s
    (900, 0.02)
    >>> _ = q.charge("d", "t", 20, now=0.02)        # meanwhile, another connection of "d"
    >>> round(pacer.wait(now=0.02), 3)              # still over: back off
    0.04
    """

    SLICE_S = 0.02
    SMALLEST = 256
    #: A connection still over its limit after a pause (its tenant's other devices took the
    #: points) waits twice as long the next time, up to this: many devices of one tenant
    #: must not all wake every slice to find nothing left.
    MAX_BACKOFF_S = 1.0

    def __init__(self, quotas: Quotas, device: str, tenant: str, largest: int) -> None:
        self.quotas = quotas
        self.device, self.tenant = device, tenant
        self.largest = largest
        self.bytes_per_point = 32.0  # until something was read
        self._backoff = 0.0
        policy = quotas.policy(tenant)
        self._slice = self.SLICE_S * min(
            r.per_s for r in (policy.device, policy.tenant) if r.per_s > 0
        )

    def size(self, now: float | None = None) -> int:
        """Bytes to read next."""
        points = max(self.quotas.allowance(self.device, self.tenant, now), self._slice)
        if points * self.bytes_per_point >= self.largest:
            return self.largest
        return max(self.SMALLEST, int(points * self.bytes_per_point))

    def wait(self, now: float | None = None) -> float:
        """Seconds to wait before handling what was read (0: now); called again after the
        wait, it backs off while the connection is still over its limit."""
        wait = self.quotas.wait(self.device, self.tenant, self.SLICE_S, now)
        if not wait:
            self._backoff = 0.0
            return 0.0
        wait = max(wait, self._backoff)
        self._backoff = min(2 * wait, self.MAX_BACKOFF_S)
        return wait

    def charge(self, nbytes: int, points: int, now: float | None = None) -> None:
        """``nbytes`` read held ``points`` (0 while a large packet is still arriving)."""
        if points:
            self.bytes_per_point = max(1.0, nbytes / points)
            self.quotas.charge(self.device, self.tenant, points, now)
