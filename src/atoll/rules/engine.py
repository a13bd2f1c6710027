"""The rule engine: feeds readings and scores to condition evaluators, reports state changes.

Pure and synchronous: no I/O except asking the ``DeviceDirectory`` a device's type. Each
(rule, device) is an ``_Instance``; the engine reports a ``Change`` whenever an instance's
truth flips (and on its first evaluation, when the previous truth is unknown).

Each instance has a **key**, what decides which process evaluates it on a partitioned bus
(``atoll.rules.partitioned``): its device, or ``project:{project}`` for a cross-device rule (a
condition on another device's series), which is evaluated in one place for the whole project.
Inputs and the timer pass take an ``accept(key)`` that picks the instances to touch; ``dump`` and
``load`` carry the state of the accepted instances (checkpoints).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Set
from dataclasses import dataclass

from atoll.rules.clock import Clock
from atoll.rules.conditions import ANOMALY, TELEMETRY, ForecastEval, Leaf, Node, build
from atoll.rules.directory import DeviceDirectory
from atoll.rules.model import Rule

#: Picks instances by key (``atoll.rules.partitioned``: the keys of the partitions owned here).
Accept = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Change:
    rule_id: str
    project: str
    device: str
    active: bool
    ts: int  # µs, when the engine saw it
    value: float | None
    detail: str
    first: bool  # previous truth unknown (new rule, new device, restart)
    metric: str | None = None  # the series that tripped it, when there is one
    context: dict | None = None  # what explains it (an anomaly's explanation), kept with the alarm


def project_key(project: str) -> str:
    """The key of a project's cross-device rule instances (``project:{project}``)."""
    return f"project:{project}"


class _Instance:
    __slots__ = ("cross", "device", "fed", "forecasts", "key", "root", "rule", "state", "timed")

    def __init__(self, rule: Rule, device: str, now: int) -> None:
        self.rule, self.device = rule, device
        self.root: Node = build(rule.condition, device, now)
        self.state: bool | None = None
        self.timed = self.root.timed or rule.schedule is not None
        self.fed = False
        #: Watches another device's series too: evaluated under the project's key.
        self.cross = any(leaf.device != device for leaf in self.root.leaves())
        self.key = project_key(rule.project) if self.cross else device
        self.forecasts = [x for x in self.root.leaves() if isinstance(x, ForecastEval)]

    def dump(self) -> list:
        return [self.state, self.fed, self.root.dump()]

    def load(self, state: list) -> None:
        self.state, self.fed = state[0], state[1]
        self.root.load(state[2])

    def evaluate(self, t: int) -> Change | None:
        truth = self.root.evaluate(t)
        if truth and self.rule.schedule is not None:
            truth = self.rule.schedule.active(t)
        if truth == self.state or (self.state is None and not truth and not self.fed):
            # Without any input yet, "false" is only ignorance: don't clear a standing alarm.
            return None
        first, self.state = self.state is None, truth
        rule_id = self.rule.id
        assert rule_id is not None  # a validated Rule always has one (from its name)
        if not truth:
            return Change(
                rule_id,
                self.rule.project,
                self.device,
                False,
                t,
                None,
                "condition ended",
                first,
            )
        device, metric = self.root.subject()
        # A metric of another device (cross-device composite) is not this device's series.
        return Change(
            rule_id,
            self.rule.project,
            self.device,
            True,
            t,
            self.root.value(),
            self.root.describe(),
            first,
            metric if device == self.device else None,
            self.root.context(),
        )


class RuleEngine:
    def __init__(self, clock: Clock, directory: DeviceDirectory | None = None) -> None:
        self.clock = clock
        self.directory = directory
        self.rules: dict[str, Rule] = {}
        self._instances: dict[str, dict[str, _Instance]] = {}
        self._index: dict[tuple, list[tuple[_Instance, Leaf]]] = defaultdict(list)
        self._types: dict[tuple[str, str], str | None] = {}  # (project, device) -> type

    # ------------------------------------------------------------ rules

    def upsert(self, rule: Rule) -> None:
        """Add or replace a rule; its evaluation state starts afresh."""
        rule_id = rule.id
        assert rule_id is not None  # a validated Rule always has one (from its name)
        replacing = rule_id in self.rules
        self._drop(rule_id)
        self.rules[rule_id] = rule
        if rule.enabled:
            now = self.clock.now_us()
            devices = rule.target.explicit()
            if devices is None:
                devices = self._devices_of_type(rule.project, rule.target.device_type)
            self._instances[rule_id] = {d: _Instance(rule, d, now) for d in devices}
        if replacing:
            self._reindex()
        else:  # a new rule only adds entries: no need to rebuild everyone else's
            for inst in self._instances.get(rule_id, {}).values():
                self._index_instance(inst)

    def remove(self, rule_id: str) -> None:
        self._drop(rule_id)
        self.rules.pop(rule_id, None)
        self._reindex()

    def refresh(self) -> int:
        """Attach devices registered since (e.g. for ``no_data`` on devices that never spoke).

        Returns how many (rule, device) pairs were added."""
        if self.directory is None:
            return 0
        added, now = 0, self.clock.now_us()
        for rule_id, rule in list(self.rules.items()):
            dtype = rule.target.device_type
            if not rule.enabled or dtype is None:
                continue
            instances = self._instances.setdefault(rule_id, {})
            for device in self.directory.devices(rule.project, dtype):
                self._types[(rule.project, device)] = dtype
                if device not in instances:
                    inst = instances[device] = _Instance(rule, device, now)
                    self._index_instance(inst)
                    added += 1
        return added

    def forget_device(self, project: str, device: str) -> None:
        """Drop the cached type of a device (after the registry changed it)."""
        self._types.pop((project, device), None)

    def _drop(self, rule_id: str) -> None:
        self._instances.pop(rule_id, None)

    def _devices_of_type(self, project: str, device_type: str | None) -> list[str]:
        if self.directory is not None:
            found = self.directory.devices(project, device_type)
            for d in found:
                self._types[(project, d)] = device_type
            return list(found)
        return [d for (p, d), t in self._types.items() if p == project and t == device_type]

    def _reindex(self) -> None:
        self._index.clear()
        for instances in self._instances.values():
            for inst in instances.values():
                self._index_instance(inst)

    def _index_instance(self, inst: _Instance) -> None:
        for leaf in inst.root.leaves():
            self._index[(inst.rule.project, leaf.device, leaf.metric, leaf.kind)].append(
                (inst, leaf)
            )

    def _adopt(self, project: str, device: str) -> None:
        """First time we hear of a device: attach it to device-type rules of its type."""
        if (project, device) in self._types:
            return
        dtype = self.directory.device_type(project, device) if self.directory else None
        self._types[(project, device)] = dtype
        if dtype is None:
            return
        now = self.clock.now_us()
        for rule_id, rule in self.rules.items():
            if (
                rule.enabled
                and rule.project == project
                and rule.target.device_type == dtype
                and device not in self._instances.get(rule_id, {})
            ):
                inst = _Instance(rule, device, now)
                self._instances.setdefault(rule_id, {})[device] = inst
                self._index_instance(inst)

    # ------------------------------------------------------------ inputs

    def on_telemetry(
        self,
        project: str,
        device: str,
        ts: int,
        values: dict[str, float],
        accept: Accept | None = None,
    ) -> list[Change]:
        return self._feed(project, device, ts, values, TELEMETRY, accept=accept)

    def on_anomaly(
        self,
        project: str,
        device: str,
        metric: str,
        ts: int,
        score: float,
        flagged: bool | None = None,
        explanation: dict | None = None,
        accept: Accept | None = None,
    ) -> list[Change]:
        """A detector's score; ``flagged`` is its own decision (``is_anomaly``) when it gave one,
        ``explanation`` what the detector said about an anomalous reading (kept with the alarm
        an ``anomaly`` condition raises)."""
        return self._feed(
            project, device, ts, {metric: score}, ANOMALY, flagged, explanation, accept
        )

    def _feed(
        self, project, device, ts, values, kind, flagged=None, explanation=None, accept=None
    ) -> list[Change]:
        self._adopt(project, device)
        now = self.clock.now_us()
        touched: dict[int, _Instance] = {}
        index = self._index
        any_metric = index.get((project, device, None, kind))
        for metric, x in values.items():
            for watchers in (index.get((project, device, metric, kind)), any_metric):
                if watchers:
                    for inst, leaf in watchers:
                        if accept is not None and not accept(inst.key):
                            continue
                        if explanation is not None:
                            leaf.feed(metric, ts, x, now, flagged, explanation)
                        elif flagged is None:
                            leaf.feed(metric, ts, x, now)
                        else:
                            leaf.feed(metric, ts, x, now, flagged)
                        inst.fed = True
                        touched[id(inst)] = inst
        # A replayed (older) reading is judged at its own time; a future one at ours.
        t = min(ts, now)
        return [c for inst in touched.values() if (c := inst.evaluate(t)) is not None]

    def on_tick(self, accept: Accept | None = None) -> list[Change]:
        """Re-evaluate everything that depends on time: ``for``, ``no_data``, schedules (of the
        instances whose key ``accept`` takes, all by default)."""
        now = self.clock.now_us()
        out = []
        for instances in self._instances.values():
            for inst in instances.values():
                if inst.timed and (accept is None or accept(inst.key)):
                    c = inst.evaluate(now)
                    if c is not None:
                        out.append(c)
        return out

    def forecasts_due(self, accept: Accept | None = None) -> list[tuple[_Instance, ForecastEval]]:
        """The ``forecast`` conditions (of the instances ``accept`` takes) whose next evaluation
        is due now; each is marked under way until ``forecast_done`` takes its result."""
        now = self.clock.now_us()
        out = []
        for instances in self._instances.values():
            for inst in instances.values():
                if inst.forecasts and (accept is None or accept(inst.key)):
                    for leaf in inst.forecasts:
                        if leaf.due(now):
                            leaf.started(now)
                            out.append((inst, leaf))
        return out

    def forecast_done(
        self, inst: _Instance, leaf: ForecastEval, result: dict, accept: Accept | None = None
    ) -> Change | None:
        """One forecast's ``result`` for ``leaf`` of ``inst``; the instance's change, if any.
        An instance rebuilt meanwhile (rule changed, partition moved) takes nothing."""
        leaf.done(result)
        rule_id = inst.rule.id
        current = self._instances.get(rule_id or "", {}).get(inst.device)
        if current is not inst or (accept is not None and not accept(inst.key)):
            return None
        if result.get("crosses") is not None:
            inst.fed = True
        return inst.evaluate(self.clock.now_us())

    def reset(self, rule_id: str, device: str) -> None:
        """Forget the last reported truth of (rule, device): the next evaluation reports again."""
        inst = self._instances.get(rule_id, {}).get(device)
        if inst is not None:
            inst.state = None

    def state(self, rule_id: str, device: str) -> bool | None:
        inst = self._instances.get(rule_id, {}).get(device)
        return None if inst is None else inst.state

    def devices(self, rule_id: str) -> list[str]:
        return sorted(self._instances.get(rule_id, {}))

    def key(self, rule_id: str, device: str) -> str:
        """The key of (rule, device): its device, or the project's for a cross-device rule."""
        inst = self._instances.get(rule_id, {}).get(device)
        if inst is not None:
            return inst.key
        rule = self.rules.get(rule_id)
        if rule is not None and rule.enabled:
            probe = _Instance(rule, device, 0)
            return probe.key
        return device

    def has_cross(self) -> bool:
        """Whether any instance is cross-device (evaluated under its project's key)."""
        return any(i.cross for insts in self._instances.values() for i in insts.values())

    def dump(self, accept: Accept) -> dict[str, dict[str, list]]:
        """``{rule_id: {device: state}}`` of the instances whose key ``accept`` takes."""
        out: dict[str, dict[str, list]] = {}
        for rule_id, instances in self._instances.items():
            got = {d: i.dump() for d, i in instances.items() if accept(i.key)}
            if got:
                out[rule_id] = got
        return out

    def load(self, state: dict[str, dict[str, list]], rules: Set[str]) -> int:
        """Restore what ``dump`` gave, for the rules in ``rules`` (those unchanged since);
        instances of devices no longer attached are attached. How many were restored."""
        n = 0
        now = self.clock.now_us()
        for rule_id, devices in state.items():
            rule = self.rules.get(rule_id)
            if rule_id not in rules or rule is None or not rule.enabled:
                continue
            instances = self._instances.setdefault(rule_id, {})
            for device, got in devices.items():
                inst = instances.get(device)
                if inst is None:
                    inst = instances[device] = _Instance(rule, device, now)
                    self._index_instance(inst)
                try:
                    inst.load(got)
                except (KeyError, IndexError, TypeError, ValueError):
                    continue  # another shape (the condition changed meanwhile): start afresh
                n += 1
        return n

    def restart(self, accept: Accept) -> None:
        """Forget the state of the instances whose key ``accept`` takes (fresh, as after a
        restart): another process evaluates them now, and may hand them back later."""
        now = self.clock.now_us()
        rebuilt = False
        for instances in self._instances.values():
            for device, inst in list(instances.items()):
                if accept(inst.key):
                    instances[device] = _Instance(inst.rule, device, now)
                    rebuilt = True
        if rebuilt:
            self._reindex()
