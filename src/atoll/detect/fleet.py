"""A machine compared with its siblings: the fleet baseline of one device type's metric.

Twelve motors on one line see the same shift load, the same hall temperature, the same Monday
morning. What moves them all together is not a fault; one motor leaving the pack is. Readings
are compared **at the same time**: each device keeps its mean per time bucket (``window_s``/12,
10 s by default) for the last hour, and a reading is judged by its device's mean in its bucket
against the median of its **peers' means in that bucket** (other devices of the type; the
latest bucket within ``window_s`` that enough peers have filled, while they have not yet
reported in this one), plus the device's own
**offset** from that median (a motor that always runs 3 °C warmer than the pack is normal for
it), against the device's own usual residual spread:

    expected = median(peers' bucket means - their offsets) + offset(device)
    z        = |bucket mean(device) - expected| / (scale(device) * limit)

so common-mode variation (load, weather, time of day) cancels out and the band can be far
tighter than any one device's own range. Because buckets hold the time of the readings, not of
their arrival, history that arrives device by device and out of order (a back-fill in chunks,
a gateway's backlog) is compared with the peers' readings of that time, not with their latest.

``z >= 1`` for ``confirm`` readings in a row raises the device's flag (one odd bucket pages
nobody); it clears after ``clear_after`` readings in a row with ``z < clear``. Offset and
spread are EWMAs over about ``tau_s`` seconds, learned only from readings judged normal (not
flagged, residual within the limit; larger residuals are clipped), so a fault is never learned as
the device's new offset.
An operator's "accept as new normal" (``accept(device)``) takes the current residual into the
offset and clears the flag.

Nothing is judged while fewer than ``min_peers`` peers have a recent reading, nor before the
device has ``warmup`` readings with peers spanning ``warmup_s`` seconds: the first readings only
learn. The time span matters as much as the count. A device's distance from the pack wanders
slowly (its own load, its own wear, its own sensor); a spread learned over a minute knows the
noise but not the wander, and then every wander leaves a band that is far too tight. History
that arrives device by device (a back-fill) gives few readings with peers at all, so the span is
counted in readings' timestamps, not in arrivals. A device not compared for half of ``tau_s`` (it
was off, or its history came in pieces) is learned afresh: its distance from the pack may have
wandered meanwhile. Peers are at most
``max_peers`` devices (the type's first ones by a stable hash of their ids), so a reading costs a
median of at most that many numbers, however large the fleet. What is learned is a few floats per
device; the buckets (360 per device) are not saved: after a restart the pack compares again once
its peers have reported.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> fleet = FleetBaseline(warmup=30, warmup_s=30)
>>> flags = []
>>> for t in range(600):
...     load = 30 + 10 * np.sin(t / 40)                    # every motor follows the shift
...     for m in range(8):
...         hot = 4.0 if (m == 3 and t >= 400) else 0.0   # motor 3 runs hot from t = 400
...         j = fleet.observe(f"m{m}", t * 1_000_000, load + m * 0.5 + hot + rng.normal(0, 0.2))
...         if m == 3:
...             flags.append(j.is_anomaly)
>>> any(flags[:400]), all(flags[404:])
(False, True)
>>> round(j.expected, 1), j.peers
(41.0, 7)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from atoll.core.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class FleetJudgement:
    """One reading judged against its peers. ``expected``/``lo``/``hi`` are in the metric's
    units; ``score`` is ``z / (1 + z)`` (0.5 at the limit), 0 while not judged."""

    score: float
    is_anomaly: bool
    expected: float | None = None
    lo: float | None = None
    hi: float | None = None
    peers: int = 0


#: Buckets kept per device: an hour of ``window_s``/12 buckets at the defaults.
_BUCKETS = 360


@dataclass(slots=True)
class _Device:
    rank: int
    # The device's mean per time bucket: slot i holds bucket ids[i] (-1: empty).
    ids: list[int] = field(default_factory=lambda: [-1] * _BUCKETS)
    sums: list[float] = field(default_factory=lambda: [0.0] * _BUCKETS)
    counts: list[int] = field(default_factory=lambda: [0] * _BUCKETS)
    ts: int = 0
    value: float = math.nan
    offset: float = 0.0
    spread: float = 0.0
    seen: int = 0  # readings judged with peers (learning)
    since: int = -1  # timestamp (µs) of the first reading with peers; -1: none yet
    last: int = -1  # timestamp (µs) of the last reading compared with peers
    over: int = 0  # readings in a row with z >= 1
    on: bool = False
    calm: int = 0


def _rank(device: str) -> int:
    return int.from_bytes(hashlib.blake2b(device.encode(), digest_size=8).digest(), "big")


class FleetBaseline:
    """The fleet baseline of one metric of one device type (see the module's documentation)."""

    def __init__(
        self,
        window_s: float = 120.0,
        min_peers: int = 3,
        max_peers: int = 64,
        limit: float = 6.0,
        tau_s: float = 3600.0,
        warmup: int = 60,
        clear: float = 0.7,
        clear_after: int = 10,
        warmup_s: float = 1800.0,
        confirm: int = 3,
    ) -> None:
        if not (window_s > 0 and tau_s > 0 and limit > 0 and 0 < clear <= 1 and warmup_s >= 0):
            raise InvalidInput(
                "need window_s > 0, tau_s > 0, limit > 0, clear in (0, 1] and warmup_s >= 0, "
                f"got {window_s!r}, {tau_s!r}, {limit!r}, {clear!r}, {warmup_s!r}"
            )
        if not (1 <= min_peers <= max_peers and warmup >= 1 and clear_after >= 1 and confirm >= 1):
            raise InvalidInput(
                "need 1 <= min_peers <= max_peers, warmup >= 1, clear_after >= 1, confirm >= 1"
            )
        self.window_us = int(window_s * 1e6)
        self.min_peers, self.max_peers = int(min_peers), int(max_peers)
        self.limit, self.tau_us, self.warmup = float(limit), tau_s * 1e6, int(warmup)
        self.warmup_us = int(warmup_s * 1e6)
        self.bucket_us = max(1_000_000, self.window_us // 12)
        self._reach = max(1, self.window_us // self.bucket_us)  # buckets a peer may be off
        self.clear, self.clear_after = float(clear), int(clear_after)
        self.confirm = int(confirm)
        self.devices: dict[str, _Device] = {}
        self._panel: list[str] = []  # the peers: the first max_peers devices by rank

    def _join(self, device: str) -> _Device:
        d = _Device(_rank(device))
        self.devices[device] = d
        self._panel.append(device)
        if len(self._panel) > self.max_peers + 1:
            self._panel.sort(key=lambda name: self.devices[name].rank)
            del self._panel[self.max_peers + 1 :]
        return d

    def _compare(self, device: str, d: _Device, ts: int) -> tuple[float, np.ndarray]:
        """The device's mean and its peers' means less their offsets (each peer brought to the
        pack's normal, so which peers have reported does not move the median) in one bucket:
        ``ts``'s, or the latest before it (within ``window_s``) that ``min_peers`` peers have
        filled too. Peers' means are taken only from the very bucket the device's mean is from,
        so both cover the same time; an empty array when no bucket has enough peers."""
        b = ts // self.bucket_us
        best: list[float] = []
        for k in range(self._reach + 1):
            own = _bucket_mean(d, b - k)
            if own is None:
                continue
            values = []
            for name in self._panel:
                if name != device:
                    p = self.devices[name]
                    v = _bucket_mean(p, b - k)
                    if v is not None:
                        values.append(v - p.offset)
                        if len(values) == self.max_peers:
                            break
            if len(values) >= self.min_peers:
                return own, np.asarray(values, dtype=np.float64)
            best = values if len(values) > len(best) else best
        return math.nan, np.asarray(best, dtype=np.float64)

    def _add(self, d: _Device, ts: int, value: float) -> None:
        """Put ``value`` in ``d``'s bucket of ``ts`` (unless the slot holds a newer bucket:
        a reading older than the hour kept is not compared)."""
        b = ts // self.bucket_us
        i = b % _BUCKETS
        if d.ids[i] != b:
            if d.ids[i] > b:
                return
            d.ids[i], d.sums[i], d.counts[i] = b, 0.0, 0
        d.sums[i] += value
        d.counts[i] += 1

    def observe(self, device: str, ts: int, value: float) -> FleetJudgement:
        """Judge ``value`` (µs timestamp ``ts``) of ``device`` against its peers, then learn."""
        d = self.devices.get(device) or self._join(device)
        value = float(value)
        if not math.isfinite(value):
            return FleetJudgement(0.0, d.on)
        dt = max(ts - d.ts, 0) if d.seen else 0
        self._add(d, ts, value)
        if ts >= d.ts:
            d.ts, d.value = ts, value
        mean, peers = self._compare(device, d, ts)
        if len(peers) < self.min_peers:
            return FleetJudgement(0.0, d.on, peers=len(peers))
        center = float(np.median(peers))
        residual = mean - center - d.offset
        a = 1.0 - math.exp(-dt / self.tau_us) if dt else 1.0 / (d.seen + 1)
        a = max(a, 1.0 / (d.seen + 1))  # the first readings: a plain mean
        if d.since < 0 or ts - d.last > self.tau_us / 2:
            d.since, d.seen = ts, 0  # first comparison, or after a long gap: learned afresh
        d.last = max(d.last, ts)
        if d.seen < self.warmup or ts - d.since < self.warmup_us:
            d.offset += a * residual
            d.spread += a * (abs(mean - center - d.offset) - d.spread)
            d.seen += 1
            return FleetJudgement(0.0, False, center + d.offset, peers=len(peers))
        # The spread is a mean absolute residual: x1.25 is the standard deviation of a normal.
        scale = max(1.25 * d.spread, 1e-9 * (1.0 + abs(center)))
        band = self.limit * scale
        z = abs(residual) / band
        d.over = d.over + 1 if z >= 1.0 else 0
        if d.over >= self.confirm:
            d.on, d.calm = True, 0
        elif d.on:
            d.calm = d.calm + 1 if z < self.clear else 0
            if d.calm >= self.clear_after:
                d.on, d.calm = False, 0
        if not d.on:
            clipped = max(-band, min(band, residual))
            d.offset += a * clipped
            d.spread += a * (min(abs(residual), band) - d.spread)
        d.seen += 1
        expected = center + d.offset
        return FleetJudgement(
            z / (1.0 + z), d.on, expected, expected - band, expected + band, len(peers)
        )

    def accept(self, device: str) -> None:
        """An operator's "accept as new normal" for ``device``: its current distance from the
        pack becomes its offset, and its flag clears."""
        d = self.devices.get(device)
        if d is None or not math.isfinite(d.value):
            return
        mean, peers = self._compare(device, d, d.ts)
        if len(peers) >= self.min_peers:
            d.offset = mean - float(np.median(peers))
        d.on, d.calm = False, 0

    PARAMS = (
        "window_s",
        "min_peers",
        "max_peers",
        "limit",
        "tau_s",
        "warmup",
        "clear",
        "clear_after",
        "warmup_s",
        "confirm",
    )

    def params(self) -> dict[str, float | int]:
        return {
            "window_s": self.window_us / 1e6,
            "min_peers": self.min_peers,
            "max_peers": self.max_peers,
            "limit": self.limit,
            "tau_s": self.tau_us / 1e6,
            "warmup": self.warmup,
            "clear": self.clear,
            "clear_after": self.clear_after,
            "warmup_s": self.warmup_us / 1e6,
            "confirm": self.confirm,
        }

    def state(self) -> dict[str, Any]:
        """Everything learned, as plain data (msgpack-able); ``from_state`` restores it."""
        return {
            "params": self.params(),
            "devices": [
                [name, d.ts, d.value, d.offset, d.spread, d.seen, d.on, d.calm, d.since, d.last]
                for name, d in self.devices.items()
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FleetBaseline:
        try:
            fleet = cls(**state["params"])
            for name, ts, value, offset, spread, seen, on, calm, *times in state["devices"]:
                d = fleet._join(str(name))
                # States saved before warmup_s: a device already judged counts as warmed up.
                d.since = int(times[0]) if times else int(ts) - fleet.warmup_us
                d.last = int(times[1]) if len(times) > 1 else int(ts)
                d.ts, d.value, d.offset, d.spread = (
                    int(ts),
                    float(value),
                    float(offset),
                    float(spread),
                )
                d.seen, d.on, d.calm = int(seen), bool(on), int(calm)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"bad fleet baseline state: {exc!r}") from None
        return fleet

    def nbytes(self) -> int:
        return (96 + 24 * _BUCKETS) * len(self.devices)

    def forget(self, device: str) -> None:
        """A device left the type (deleted, retyped)."""
        if self.devices.pop(device, None) is not None and device in self._panel:
            self._panel.remove(device)


def _bucket_mean(d: _Device, b: int) -> float | None:
    i = b % _BUCKETS
    return d.sums[i] / d.counts[i] if d.ids[i] == b and d.counts[i] else None


def fleet_baseline(spec: dict[str, Any] | None) -> FleetBaseline | None:
    """A ``FleetBaseline`` from a binding's ``fleet`` mapping (``None``: no fleet baseline)."""
    if spec is None:
        return None
    unknown = set(spec) - set(FleetBaseline.PARAMS)
    if unknown:
        raise InvalidInput(
            f"unknown fleet baseline settings {sorted(unknown)}",
            hint=f"known: {', '.join(FleetBaseline.PARAMS)}",
        )
    try:
        return FleetBaseline(**spec)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"bad fleet baseline settings: {exc}") from None
