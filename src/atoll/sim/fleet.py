"""A fleet of simulated devices: who they are, when each one reports, and what it says.

Every device reports once per ``1/rate`` seconds. The period is cut into slots and each device
owns one slot, so the load is spread evenly and a tick only steps the devices due in it. Ticks
are numbered and tied to *virtual* time, never to the wall clock: the same seed and the same
calls give the same readings whether they are sent live, sent fast, or only generated.

>>> fleet = Fleet.build("retail", 10, seed=1, rate=1.0, start=1_700_000_000.0)
>>> readings = fleet.advance(1_700_000_002.0)
>>> len(readings), sorted(readings[0].values) == sorted(
...     fleet.device_type(readings[0].device).metric_names)
(20, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from atoll.core.errors import InvalidInput
from atoll.sim.faults import Fault
from atoll.sim.signals import TypeModel
from atoll.sim.wear import WearPlan
from atoll.solutions import DeviceType, FaultKind, Template
from atoll.solutions import load as load_template


@dataclass(frozen=True, slots=True)
class SimDevice:
    """One simulated device. ``secret`` is its MQTT password (``None``: connect without one)."""

    device_id: str
    template: str
    device_type: str
    secret: str | None = None
    project: str | None = None


#: The ground-truth kind of a run worn out to failure (``Fleet.wear_outs``).
WEAR_OUT = "wear_out"


@dataclass(frozen=True, slots=True)
class DeviceFailure:
    """``device`` wore out and failed at ``at`` (epoch s), after a run that began at ``began``."""

    device: str
    at: float
    began: float

    @property
    def life(self) -> float:
        return self.at - self.began


@dataclass(frozen=True, slots=True)
class Reading:
    device: int  # index into Fleet.devices
    ts: float  # epoch seconds
    values: dict[str, float | int]

    def payload(self) -> dict:
        """The wire form (see TEAM.md): epoch milliseconds and the values."""
        return {"ts": round(self.ts * 1000), "values": self.values}


class Fleet:
    def __init__(
        self,
        devices: Sequence[SimDevice],
        *,
        seed: int = 0,
        rate: float = 1.0,
        start: float | None = None,
        templates: Iterable[Template] = (),
        slot_s: float = 0.05,
        wear: bool = False,
    ) -> None:
        if not devices:
            raise InvalidInput("a fleet needs at least one device")
        if not rate > 0:
            raise InvalidInput(f"rate must be > 0 readings per second per device, got {rate}")
        ids = [d.device_id for d in devices]
        if len(set(ids)) != len(ids):
            raise InvalidInput("device ids in a fleet must be unique")
        self.devices = list(devices)
        self.seed = seed
        self.rate = rate
        self.start = time.time() if start is None else float(start)
        self.cursor = self.start  # virtual time up to which readings were generated
        self._templates = {t.name: t for t in templates}
        self.index = {d.device_id: i for i, d in enumerate(self.devices)}
        self.faults: list[Fault] = []

        keys = sorted({(d.template, d.device_type) for d in self.devices})
        self._key_of = np.array([keys.index((d.template, d.device_type)) for d in self.devices])
        self._local = np.zeros(len(self.devices), dtype=np.int64)
        self.models: list[TypeModel] = []
        self._members: list[np.ndarray] = []  # fleet indices per model
        root = np.random.SeedSequence(seed)
        for k, (tpl, dt_name), child in zip(
            range(len(keys)), keys, root.spawn(len(keys)), strict=True
        ):
            members = np.flatnonzero(self._key_of == k)
            self._local[members] = np.arange(len(members))
            dtype = self.template(tpl).device_type(dt_name)
            model = TypeModel(dtype, len(members), np.random.default_rng(child), self.start)
            if wear and dtype.wear is not None:
                # Its own random stream: turning wear on leaves every other signal as it was.
                model.wear = WearPlan(
                    dtype.wear, len(members), t0=self.start, seed=[seed, 0x3EA2, k]
                )
            self.models.append(model)
            self._members.append(members)

        self.period = 1.0 / rate
        self.slots = max(1, min(len(self.devices), round(self.period / slot_s)))
        self.slot_width = self.period / self.slots
        slot_of = np.arange(len(self.devices)) % self.slots
        # groups[g][k] = sorted local indices of model k's devices in slot g
        self._groups = [
            [self._local[m[slot_of[m] == g]] for m in self._members] for g in range(self.slots)
        ]
        self._offset = slot_of * self.slot_width
        self._tick = 0
        self._live_start: float | None = None

    # --- construction ------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        templates: str | Sequence[str],
        count: int,
        *,
        prefix: str = "sim",
        seed: int = 0,
        project: str | None = None,
        secrets: dict[str, str] | None = None,
        **kw,
    ) -> Fleet:
        """``count`` devices spread over the templates' device types by their ``share``."""
        names = [templates] if isinstance(templates, str) else list(templates)
        loaded = [load_template(n) for n in names]
        devices = plan_devices(loaded, count, prefix=prefix, project=project, secrets=secrets)
        return cls(devices, seed=seed, templates=loaded, **kw)

    def template(self, name: str) -> Template:
        if name not in self._templates:
            self._templates[name] = load_template(name)
        return self._templates[name]

    def device_type(self, device: int | str) -> DeviceType:
        d = self.devices[device if isinstance(device, int) else self.index[device]]
        return self.template(d.template).device_type(d.device_type)

    # --- faults -----------------------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Schedule ``fault``; it must be a kind the device's type declares."""
        i = self.index.get(fault.device)
        if i is None:
            raise InvalidInput(f"fault on unknown device {fault.device!r}")
        dtype = self.device_type(i)
        if fault.kind not in {k.value for k in dtype.faults}:
            raise InvalidInput(
                f"device type {dtype.name!r} has no fault {fault.kind!r}",
                hint=f"known: {sorted(k.value for k in dtype.faults)}",
            )
        self.models[self._key_of[i]].add_fault(fault, int(self._local[i]))
        self.faults.append(fault)

    def plan_faults(
        self, count: int, start: float, end: float, kinds: Iterable[str] | None = None
    ) -> list[Fault]:
        """Inject ``count`` faults on distinct devices, inside ``[start, end)``; seeded."""
        if not end > start:
            raise InvalidInput(f"fault window is empty: end {end} is not after start {start}")
        wanted = set(kinds) if kinds else None
        unknown = (wanted or set()) - {k.value for k in FaultKind}
        if unknown:
            raise InvalidInput(
                f"unknown fault kinds {sorted(unknown)}",
                hint=f"known: {', '.join(k.value for k in FaultKind)}",
            )
        rng = np.random.default_rng([self.seed, 0xFA17])
        eligible = []
        for i in range(len(self.devices)):
            ks = sorted(k.value for k in self.device_type(i).faults)
            ks = [k for k in ks if wanted is None or k in wanted]
            if ks:
                eligible.append((i, ks))
        if count > len(eligible):
            raise InvalidInput(
                f"cannot place {count} faults: only {len(eligible)} devices "
                "have a matching fault kind",
                hint="ask for fewer faults",
            )
        chosen: Iterable[int] = (
            rng.choice(len(eligible), size=count, replace=False) if count else []
        )
        planned = []
        for c in sorted(chosen):
            i, ks = eligible[c]
            kind = ks[int(rng.integers(len(ks)))]
            spec = self.device_type(i).faults[FaultKind(kind)]
            lo, hi = spec.duration_s
            duration = min(float(rng.uniform(lo, hi)), end - start)
            t = float(rng.uniform(start, max(start, end - duration)))
            metrics = tuple(dict.fromkeys(e.metric for e in spec.effects))
            fault = Fault(self.devices[i].device_id, kind, metrics, t, t + duration)
            self.inject(fault)
            planned.append(fault)
        return planned

    # --- wear -------------------------------------------------------------------------

    def failures(self, since: float, until: float) -> list[DeviceFailure]:
        """The devices that wear out and fail in ``[since, until)`` (``Fleet(wear=True)``), by
        time; each is repaired as new at once."""
        out = []
        for model, members in zip(self.models, self._members, strict=True):
            if model.wear is None:
                continue
            for f in model.wear.failures(since, until):
                i = int(members[f.local])
                out.append(DeviceFailure(self.devices[i].device_id, f.at, f.began))
        return sorted(out, key=lambda f: (f.at, f.device))

    def wear_outs(self, since: float, until: float) -> list[Fault]:
        """The failures in ``[since, until)`` as ground truth: a ``wear_out`` fault on the
        metrics wear moves, from when its wear shows (``visible_from``) to the failure."""
        out = []
        for f in self.failures(since, until):
            wear = self.device_type(f.device).wear
            assert wear is not None  # only worn types fail
            metrics = tuple(dict.fromkeys(e.metric for e in wear.effects))
            start = f.began + wear.visible_from * (f.at - f.began)
            out.append(Fault(f.device, WEAR_OUT, metrics, start, f.at))
        return out

    # --- time -------------------------------------------------------------------------

    def history(self, until: float, step_s: float) -> Iterator[list[Reading]]:
        """Readings from the cursor to ``until``, every device every ``step_s``, all at once.

        Use it to back-fill history before going live; it cannot run after live ticks began.
        """
        if self._live_start is not None:
            raise InvalidInput("history must be generated before live ticks")
        if not step_s > 0:
            raise InvalidInput("step_s must be > 0")
        everyone = [np.arange(len(m)) for m in self._members]
        t = self.cursor
        while t < until:
            yield self._step(everyone, np.full(len(self.devices), t))
            t += step_s
        self.cursor = max(self.cursor, t)

    def resume_at(self, t: float) -> None:
        """Start live ticks at ``t`` (e.g. now, after a back-fill that took a while): no readings
        are made for the gap, and the signals continue as if time had passed."""
        if self._live_start is not None:
            raise InvalidInput("resume_at must be called before live ticks")
        self.cursor = max(self.cursor, t)

    def next_tick_time(self) -> float:
        base = self.cursor if self._live_start is None else self._live_start
        return base + self._tick * self.slot_width

    def tick(self) -> list[Reading]:
        """Readings of the devices due in the next slot (one slot = ``slot_width`` seconds)."""
        if self._live_start is None:
            self._live_start = self.cursor
        g = self._tick % self.slots
        n = self._tick // self.slots
        self._tick += 1
        ts = self._live_start + n * self.period + self._offset
        self.cursor = self._live_start + self._tick * self.slot_width
        return self._step(self._groups[g], ts)

    def advance(self, until: float) -> list[Reading]:
        """All live readings due before ``until`` (virtual time)."""
        out: list[Reading] = []
        while self.next_tick_time() < until:
            out += self.tick()
        return out

    def _step(self, groups: list[np.ndarray], ts: np.ndarray) -> list[Reading]:
        out: list[Reading] = []
        for model, members, local in zip(self.models, self._members, groups, strict=True):
            if not len(local):
                continue
            fleet_idx = members[local]
            t = ts[fleet_idx]
            values = model.step(local, t)
            names = model.names
            cols = []
            for j in range(len(names)):
                col = values[:, j]
                if np.isnan(col).any():  # some dropped out: keep floats, convert per value
                    cols.append(col.tolist())
                elif model.boolean[j]:
                    cols.append((col > 0.5).tolist())
                elif model.integer[j]:
                    cols.append(col.astype(np.int64).tolist())
                else:
                    cols.append(col.tolist())
            kinds = [
                2 if b else 1 if i else 0 for b, i in zip(model.boolean, model.integer, strict=True)
            ]
            for r, (i, tt) in enumerate(zip(fleet_idx.tolist(), t.tolist(), strict=True)):
                vals = {}
                for name, col, kind in zip(names, cols, kinds, strict=True):
                    x = col[r]
                    if isinstance(x, float):
                        if math.isnan(x):  # dropped out
                            continue
                        if kind:
                            x = x > 0.5 if kind == 2 else int(x)
                    vals[name] = x
                if vals:
                    out.append(Reading(i, tt, vals))
        return out


def plan_devices(
    templates: Sequence[Template],
    count: int,
    *,
    prefix: str = "sim",
    project: str | None = None,
    secrets: dict[str, str] | None = None,
) -> list[SimDevice]:
    """``count`` devices over the templates' device types, in proportion to their shares.

    Ids are ``{prefix}-{template}-{type}-{n:05d}``. Largest-remainder rounding keeps the total
    exact and the mix stable as ``count`` grows.
    """
    if count < 1:
        raise InvalidInput(f"device count must be >= 1, got {count}")
    types = [(t, d) for t in templates for d in t.device_types]
    weights = np.array([d.share for _, d in types], dtype=float)
    weights /= weights.sum()
    exact = weights * count
    n = np.floor(exact).astype(int)
    for j in np.argsort(-(exact - n), kind="stable")[: count - n.sum()]:
        n[j] += 1
    width = max(5, len(str(count)))
    secrets = secrets or {}
    ranked: list[tuple[tuple[float, int], SimDevice]] = []
    for (t, d), k in zip(types, n, strict=True):
        for i in range(k):
            did = f"{prefix}-{t.name}-{d.name}-{i:0{width}d}".replace("_", "-")
            # Interleave types by share so that each slot, and so each tick, mixes them evenly.
            ranked.append(
                ((i / k, len(ranked)), SimDevice(did, t.name, d.name, secrets.get(did), project))
            )
    return [dev for _, dev in sorted(ranked, key=lambda r: r[0])]
