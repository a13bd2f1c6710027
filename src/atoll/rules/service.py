"""The rules service: subscribes to ``telemetry.>`` and ``anomaly.>``, evaluates rules, keeps
alarms, notifies channels, publishes every alarm change on ``alarm.{project}``.

The runtime starts it with::

    svc = RulesService(bus, db=registry.engine, directory=RegistryDirectory(registry),
                       command_sender=..., store=store)
    await svc.start()      # subscribes and runs the timer loop (every ``tick_interval`` s)
    ...
    await svc.stop()

Tests pass a ``FakeClock`` and call ``await svc.tick()`` after moving it.

Inputs come through the bus group ``group`` (default ``"rules"``): on NATS JetStream that is
one durable consumer per subject, shared by every rules process of the deployment, so each
message is evaluated by one process, and a message is acknowledged only after its handler
(evaluation and the alarm writes) returned. What is published while no rules process runs
waits in the stream and is evaluated when one starts.

One process of the deployment at a time holds the ``timers`` lease (``lease.py``) and runs
the timer pass. On a shared bus (``standby``, the default there) only that process consumes
too, so a device's condition state is never split between processes; the others stand by
and take over when it stops or its lease expires.

**Partitioned** (``partitions=``, what ``create_service`` picks on NATS): every rules process
evaluates the devices of the partitions it owns (``atoll.rules.partitioned``), with the leases,
durable consumers and checkpoints detection uses; each runs the timers (``for``, ``no_data``,
escalation, repeat) of what it owns only. Singletons (scheduled reports) run in the process
holding the ``leader`` lease, and each report slot is claimed with compare-and-set on its last
run. **API only** (``evaluate=False``): a node that serves the rules, alarms, channels and
reports routes from the database and the bus without evaluating anything.

Every change of a rule or channel is published on ``rules.{project}``; every rules process
reloads on it (and, as a fallback, compares versions on each timer pass).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import msgspec
import sqlalchemy as sa

from atoll.bus.memory import MemoryBus
from atoll.bus.partitions import CheckpointStore, Leader, PartitionedConsumer
from atoll.bus.port import Message, MessageBus, Subscription
from atoll.core import topics
from atoll.core.errors import Conflict, InvalidInput, NotFound
from atoll.core.events import AnomalyEvent, decode_anomalies
from atoll.core.lineage import ForecasterCatalog
from atoll.core.tasks import cancel_and_wait
from atoll.ingest.events import TelemetryEvent
from atoll.rules import db as _db
from atoll.rules.alarms import SYSTEM, Alarm, AlarmBook, Comment
from atoll.rules.channels import ChannelContext, CommandSender, Notification, check_channel
from atoll.rules.clock import Clock, SystemClock
from atoll.rules.directory import DeviceDirectory
from atoll.rules.durations import format_duration
from atoll.rules.engine import Change, RuleEngine
from atoll.rules.events import encode_alarm_event
from atoll.rules.forecasting import RuleForecasts
from atoll.rules.lease import Lease, holder_id
from atoll.rules.loading import RuleFile, load_rule_file, parse_rule
from atoll.rules.model import ChannelSpec, Rule, slug
from atoll.rules.notify import Notifier
from atoll.rules.partitioned import PartitionedRules
from atoll.rules.reports import ReportScheduler
from atoll.rules.repository import RuleRepository
from atoll.service import ServiceContext

log = logging.getLogger(__name__)
US = 1_000_000
_TELEMETRY = msgspec.json.Decoder(TelemetryEvent)
#: How often (µs) a partitioned rules process looks for deliveries left pending by one gone.
ADOPT_EVERY_US = 2 * US


class RulesService:
    def __init__(
        self,
        bus: MessageBus | None,
        *,
        db: str | sa.Engine | None = None,
        directory: DeviceDirectory | None = None,
        command_sender: CommandSender | None = None,
        store: Any = None,
        clock: Clock | None = None,
        tick_interval: float = 1.0,
        refresh_interval: float = 60.0,
        group: str | None = "rules",
        channel_context: ChannelContext | None = None,
        lease_ttl: float = 15.0,
        standby: bool | None = None,
        partitions: PartitionedConsumer | None = None,
        checkpoints: CheckpointStore | None = None,
        checkpoint_interval: float = 10.0,
        leader: Leader | None = None,
        evaluate: bool = True,
        catalog: ForecasterCatalog | None = None,
    ) -> None:
        self.bus = bus
        self.clock = clock or SystemClock()
        self.db = _db.connect(db)
        self.store = store
        self.repo = RuleRepository(self.db)
        self.alarms = AlarmBook(self.db)
        self.directory = directory
        self.engine = RuleEngine(self.clock, directory)
        ctx = channel_context or ChannelContext()
        if command_sender is not None:
            ctx.command_sender = command_sender
        self.notifier = Notifier(self.db, self.repo, ctx, self.clock)
        #: ``forecast`` conditions: fitted off the loop, stored with their model (forecasting.py).
        self.forecasts = RuleForecasts(self.db, store, catalog)
        self._forecasting: asyncio.Task | None = None
        self.tick_interval = tick_interval
        self.stop_timeout = 10.0  # seconds deliveries under way may take to finish on stop
        self.refresh_us = int(refresh_interval * US)
        self._refreshed = self.clock.now_us()
        self.group = group
        # The timer pass runs in one rules process of the deployment at a time (lease.py).
        self.timers = Lease(self.db, "timers", holder_id(), int(lease_ttl * US))
        self.leader = False  # whether this process held the timers lease at its last pass
        # A standby process consumes nothing until it holds the lease: one process evaluates
        # at a time, so a device's condition state is never split. Default: on a shared bus.
        self.standby = (
            standby
            if standby is not None
            else bus is not None and not isinstance(bus, MemoryBus) and partitions is None
        )
        #: Whether this process evaluates rules at all (``False``: it serves the API only).
        self.evaluate = evaluate
        self.partitioned = (
            PartitionedRules(self, partitions, checkpoints, checkpoint_interval=checkpoint_interval)
            if partitions is not None and evaluate
            else None
        )
        #: The singletons' lease (scheduled reports) when partitioned; ``None``: always here.
        self.singleton = leader
        self._cross: list[Subscription] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Task] = set()
        self._adopted = 0
        self._changes: Subscription | None = None
        self._started = False
        self._led = False  # held the lease at some time (its engine state may be stale since)
        self._subs: list[Subscription] = []
        self._ticker: asyncio.Task | None = None
        self.stats = {
            "readings": 0,
            "anomalies": 0,
            "bad_messages": 0,
            "raised": 0,
            "cleared": 0,
            "errors": 0,
        }
        self.reports = ReportScheduler(self)
        self._versions = self.repo.versions()  # the rules the engine has, by updated_at
        for rule in self.repo.list_rules():
            self.engine.upsert(rule)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._started = True
        self._loop = asyncio.get_running_loop()
        if self.bus is not None:
            self._changes = await self.bus.subscribe(topics.ALL_RULE_CHANGES, self._on_rule_change)
        if not self.evaluate:
            return  # API only: no inputs, no timers
        if self.partitioned is not None:
            await self.partitioned.start()
            await self._watch_cross()
            if self.partitioned.member is None:
                self.notifier.resume()  # the only process: everything pending is its own
            else:
                await self.partitioned.adopt_deliveries()
        elif self.standby:
            await self._lead(self.clock.now_us())  # consumes if it gets the lease
        else:
            await self._subscribe()
            self.notifier.resume()
        if self.tick_interval:
            self._ticker = asyncio.create_task(self._tick_forever(), name="rules-ticker")

    async def _subscribe(self) -> None:
        if self.bus is not None and not self._subs:
            self._subs.append(
                await self.bus.subscribe(topics.ALL_TELEMETRY, self._on_telemetry, group=self.group)
            )
            self._subs.append(
                await self.bus.subscribe(topics.ALL_ANOMALIES, self._on_anomaly, group=self.group)
            )

    async def _unsubscribe(self) -> None:
        subs, self._subs = self._subs, []
        for s in subs:
            await s.unsubscribe()

    async def _lead(self, now: int) -> bool:
        """Take or renew the timers lease. A standby process starts consuming when it gets the
        lease (with fresh condition state, as after a restart) and stops when it loses it."""
        was, self.leader = self.leader, self.timers.acquire(now)
        if self.leader != was:
            log.info("rules lease %s (%s)", "taken" if self.leader else "lost", self.timers.holder)
        if self.standby and self._started:
            if self.leader and not was:
                if self._led:  # another process evaluated meanwhile: forget what we knew
                    self.engine = RuleEngine(self.clock, self.directory)
                    self._versions = self.repo.versions()
                    for rule in self.repo.list_rules():
                        self.engine.upsert(rule)
                self._led = True
                await self._subscribe()
                self.notifier.resume()  # what the last holder left pending
            elif was and not self.leader:
                await self._unsubscribe()
        return self.leader

    async def stop(self) -> None:
        # (a fit under way finishes in its thread, unheard)
        await cancel_and_wait(self._ticker, self._forecasting)
        self._ticker = self._forecasting = None
        self._started = False
        if self._changes is not None:
            await self._changes.unsubscribe()
            self._changes = None
        for sub in self._cross:
            await sub.unsubscribe()
        self._cross.clear()
        if self.partitioned is not None:
            await self.partitioned.stop()
        if self.singleton is not None:
            await self.singleton.release()
        await self._unsubscribe()
        await self.notifier.drain(timeout=self.stop_timeout)
        if self.leader:
            self.leader = False
            try:  # another process takes the timers over at its next pass, not after the ttl
                self.timers.release()
            except Exception:
                log.exception("could not release the rules timers lease")

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            try:
                await self.tick()
            except Exception:
                log.exception("rules timer pass failed")

    # ------------------------------------------------------------ inputs

    async def _on_telemetry(self, msg: Message) -> None:
        changes = self._telemetry_changes(msg.subject, msg.data)
        if changes:
            await self._apply(changes)

    async def _on_anomaly(self, msg: Message) -> None:
        await self._apply(self._anomaly_changes(msg.subject, msg.data))

    async def _on_cross(self, msg: Message) -> None:
        """(partitioned) Any device's input, for the cross-device rules owned here."""
        part = self.partitioned
        if part is None:
            return
        accept = part.owns_cross
        async with part.lock:
            if msg.subject.startswith("telemetry."):
                changes = self._telemetry_changes(msg.subject, msg.data, accept, count=False)
            else:
                changes = self._anomaly_changes(msg.subject, msg.data, accept, count=False)
            if changes:
                await self._apply(changes)

    async def _watch_cross(self) -> None:
        """(partitioned) Subscribe to every device's inputs while cross-device rules exist."""
        if self.bus is None or self.partitioned is None:
            return
        if self.engine.has_cross() and not self._cross:
            for subject in (topics.ALL_TELEMETRY, topics.ALL_ANOMALIES):
                self._cross.append(await self.bus.subscribe(subject, self._on_cross))
        elif self._cross and not self.engine.has_cross():
            subs, self._cross = self._cross, []
            for sub in subs:
                await sub.unsubscribe()

    async def _on_rule_change(self, msg: Message) -> None:
        """Another process (or this one) changed a rule or channel: reload."""
        try:
            change = msgspec.json.decode(msg.data)
            if change.get("kind") == "channel":
                self.notifier.forget(str(change["project"]), str(change["name"]))
        except (msgspec.DecodeError, AttributeError, KeyError):
            log.warning("bad rule change event on %s", msg.subject)
        self._sync_rules()
        await self._watch_cross()

    async def _broadcast(self, project: str, kind: str, name: str) -> None:
        if self.bus is None:
            return
        try:
            await self.bus.publish(
                topics.bus_rules(project),
                msgspec.json.encode({"kind": kind, "project": project, "name": name}),
            )
        except Exception:  # the others still reload on their next timer pass
            log.exception("could not publish the change of %s %s", kind, name)

    def _broadcast_soon(self, project: str, kind: str, name: str) -> None:
        """``_broadcast`` from synchronous code: on the service's loop (from any thread)."""
        loop = self._loop
        if self.bus is None or loop is None or loop.is_closed():
            return
        coro = self._broadcast(project, kind, name)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task = loop.create_task(coro)
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        else:
            asyncio.run_coroutine_threadsafe(coro, loop)

    def _telemetry_changes(
        self, subject: str, data: bytes, accept: Any = None, *, count: bool = True
    ) -> list[Change]:
        try:
            e = _TELEMETRY.decode(data)
        except msgspec.DecodeError as exc:  # msgspec's errors are foreign: count, log, go on
            self.stats["bad_messages"] += 1
            log.warning("bad telemetry event on %s: %s", subject, exc)
            return []
        # Readings sharing a timestamp are evaluated together, so a composite over two metrics
        # of one reading sees both; plain Python beats numpy on these few points.
        by_ts: dict[int, dict[str, float]] = {}
        metrics = e.metrics
        try:
            for k, t, v in zip(e.key_index, e.ts, e.value, strict=True):
                by_ts.setdefault(t, {})[metrics[k]] = v
        except (IndexError, ValueError):
            self.stats["bad_messages"] += 1
            log.warning("inconsistent telemetry event on %s", subject)
            return []
        changes: list[Change] = []
        for t in sorted(by_ts):
            changes += self.engine.on_telemetry(e.project, e.device, t, by_ts[t], accept)
        if count:
            self.stats["readings"] += len(e.ts)
        return changes

    def _anomaly_changes(
        self, subject: str, data: bytes, accept: Any = None, *, count: bool = True
    ) -> list[Change]:
        try:
            events = decode_anomalies(data)
        except InvalidInput as exc:
            self.stats["bad_messages"] += 1
            log.warning("bad anomaly event on %s: %s", subject, exc.message)
            return []
        changes: list[Change] = []
        for e in events:
            changes += self.engine.on_anomaly(
                e.project,
                e.device,
                e.metric,
                e.ts,
                e.score,
                e.is_anomaly,
                _explanation(e),
                accept,
            )
        if count:
            self.stats["anomalies"] += len(events)
        return changes

    # ------------------------------------------------------------ alarms from changes

    async def _apply(self, changes: list[Change], seq: int | None = None) -> None:
        """Record the changes (``seq``: the stream position of the message behind them)."""
        for ch in changes:
            try:
                await self._apply_one(ch, seq)
            except Exception:
                # E.g. the database is briefly unavailable: forget the truth so the next
                # reading or timer pass reports the change again instead of losing it.
                self.stats["errors"] += 1
                log.exception("could not record %s for rule %s on %s", ch, ch.rule_id, ch.device)
                self.engine.reset(ch.rule_id, ch.device)

    async def _apply_one(self, ch: Change, seq: int | None = None) -> None:
        now = self.clock.now_us()
        rule = self.engine.rules.get(ch.rule_id)
        if rule is not None:
            if ch.active:
                outbox = _Outbox(self, "raised", rule, SYSTEM)
                alarm = self.alarms.raise_(
                    rule, ch.device, now, ch.value, ch.detail, ch.metric, ch.context, seq, outbox
                )
                if alarm is not None:
                    self.stats["raised"] += 1
                    await self._announce("raised", alarm, rule, SYSTEM, outbox=outbox)
            elif (alarm := self.alarms.open_for(ch.rule_id, ch.device)) is not None:
                outbox = _Outbox(self, "cleared", rule, SYSTEM)
                try:
                    alarm = self.alarms.clear(
                        alarm.id, SYSTEM, now, "condition ended", seq=seq, outbox=outbox
                    )
                except Conflict:
                    return  # cleared just now (by a person, another process), or out of turn
                self.stats["cleared"] += 1
                await self._announce("cleared", alarm, rule, SYSTEM, outbox=outbox)

    async def _announce(
        self,
        event: str,
        alarm: Alarm,
        rule: Rule | None,
        actor: str,
        extra_channels: Sequence[str] = (),
        detail: str = "",
        outbox: _Outbox | None = None,
    ) -> None:
        """Publish an alarm change and notify the rule's channels. With ``outbox``, the
        deliveries were written in the transition's own transaction: they are only started."""
        if self.bus is not None:
            try:
                await self.bus.publish(
                    topics.bus_alarm(alarm.project),
                    encode_alarm_event(event, alarm.model_dump(), actor),
                )
            except Exception:
                log.exception("could not publish alarm event")
        if outbox is not None:
            if outbox.rows is None:
                return  # nothing to notify
            note, rows = outbox.rows
            self.notifier.start(alarm.project, rows, note, alarm.id)
        else:
            got = self._note(event, alarm, rule, actor, extra_channels, detail)
            if got is None:
                return
            names, note = got
            self.notifier.dispatch(alarm.project, names, note, alarm.id)
        if event in ("raised", "repeat", "escalated"):
            self.alarms.notified(alarm.id, self.clock.now_us())

    def _note(
        self,
        event: str,
        alarm: Alarm,
        rule: Rule | None,
        actor: str,
        extra_channels: Sequence[str] = (),
        detail: str = "",
    ) -> tuple[list[str], Notification] | None:
        """The channels to notify of an alarm change and what to send them (``None``: none)."""
        names = list(extra_channels)
        if rule is not None and event in rule.notify.on:
            names = list(rule.notify.channels) + names
        if not names:
            return None
        title = f"[{alarm.severity.upper()}] {alarm.rule_name} on {alarm.device}: {event}"
        text = detail or alarm.detail
        if actor != SYSTEM:
            text = f"{text} (by {actor})"
        return names, Notification(alarm.project, event, title, text, alarm.model_dump())

    # ------------------------------------------------------------ timers

    async def tick(self) -> None:
        """One timer pass: time-based conditions, escalation, repeats, scheduled reports.

        Only in the process holding the ``timers`` lease; the others just refresh devices.
        Partitioned: every process, for what it owns; reports in the ``leader``'s."""
        now = self.clock.now_us()
        if not self.evaluate:
            return
        if now - self._refreshed >= self.refresh_us:
            self._refreshed = now
            self.engine.refresh()  # on the loop: the engine is not thread-safe
        part = self.partitioned
        if part is not None:
            self._sync_rules()
            await self._watch_cross()
            await part.tick_changes()
            self._start_forecasts(part.owns)
            await self._timers(now, part.owns)
            if now - self._adopted >= ADOPT_EVERY_US:
                self._adopted = now
                try:
                    await part.adopt_deliveries()
                except Exception:
                    log.exception("taking over deliveries left pending failed")
            if self.singleton is None or await self.singleton.leading():
                await self.reports.tick(now)
            return
        if not await self._lead(now):
            return
        self._sync_rules()
        await self._apply(self.engine.on_tick())
        self._start_forecasts()
        await self._timers(now)
        await self.reports.tick(now)

    # ------------------------------------------------------------ forecast conditions

    def _start_forecasts(self, accept: Any = None) -> None:
        """Start fitting the ``forecast`` conditions due (owned here), unless a batch is still
        under way: one at a time, in a worker thread, off the timer pass."""
        if self.store is None or (self._forecasting is not None and not self._forecasting.done()):
            return
        jobs = self.engine.forecasts_due(accept)
        if jobs:
            self._forecasting = asyncio.create_task(
                self._run_forecasts(jobs, accept), name="rules-forecasts"
            )

    async def _run_forecasts(self, jobs: list, accept: Any) -> None:
        part = self.partitioned
        try:
            for inst, leaf in jobs:
                now = self.clock.now_us()
                try:
                    result = await asyncio.to_thread(self.forecasts.evaluate, inst.rule, leaf, now)
                except Exception as e:  # a bug or a broken store: the reason, and on
                    log.exception("forecast of %s for rule %s failed", inst.device, inst.rule.id)
                    self.stats["errors"] += 1
                    result = {"at": now, "crosses": None, "reason": f"forecast failed: {e}"}
                self.stats["forecasts"] = self.stats.get("forecasts", 0) + 1
                try:
                    if part is not None:
                        async with part.lock:
                            change = self.engine.forecast_done(inst, leaf, result, accept)
                            if change is not None:
                                await self._apply([change])
                    else:
                        change = self.engine.forecast_done(inst, leaf, result, accept)
                        if change is not None:
                            await self._apply([change])
                except Exception:
                    log.exception(
                        "taking the forecast of %s for rule %s", inst.device, inst.rule.id
                    )
                    self.stats["errors"] += 1
        finally:  # stopped midway: none is left marked as under way
            for _, leaf in jobs:
                leaf.pending = False

    async def forecasts_settled(self) -> None:
        """Wait for the forecasts under way (tests: after ``tick``)."""
        task = self._forecasting
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def _timers(self, now: int, accept: Any = None) -> None:
        """Escalations and repeats of the open alarms (whose key ``accept`` takes). Each is a
        compare-and-set in the database: whoever loses it sends nothing."""
        for listed in self.alarms.open_alarms():
            if accept is not None and not accept(self.engine.key(listed.rule_id, listed.device)):
                continue
            # Announcing awaits, and readings handled meanwhile may clear or acknowledge
            # alarms: each is read again before anything is sent for it.
            alarm = self._still_open(listed)
            rule = self.engine.rules.get(listed.rule_id)
            if alarm is None or rule is None or alarm.acknowledged:
                continue
            age = now - alarm.raised_at
            due = [i for i, s in enumerate(rule.escalation) if age >= s.after * US]
            for level in range(alarm.escalation_level, (due[-1] + 1) if due else 0):
                step = rule.escalation[level]
                why = f"not acknowledged after {format_duration(step.after)}"
                got = self.alarms.escalate(alarm.id, level + 1, step.severity, now, why)
                if got is None:
                    break  # cleared, acknowledged or escalated meanwhile
                alarm = got
                await self._announce("escalated", alarm, rule, SYSTEM, step.channels, why)
                if (alarm := self._still_open(alarm)) is None or alarm.acknowledged:
                    break
            # Escalating notified just now: the repeat timer restarts from there.
            if alarm is None or alarm.acknowledged:
                continue
            every = rule.notify.repeat_every
            if every and rule.notify.channels:
                last = alarm.last_notified_at or alarm.raised_at
                # Claimed first (still active, not notified since): never after the clear.
                if now - last >= every * US and self.alarms.notified(alarm.id, now, last=last):
                    self.notifier.dispatch(
                        alarm.project,
                        rule.notify.channels,
                        Notification(
                            alarm.project,
                            "repeat",
                            f"[{alarm.severity.upper()}] {alarm.rule_name} on {alarm.device}:"
                            " still active",
                            alarm.detail,
                            alarm.model_dump(),
                        ),
                        alarm.id,
                    )

    def _still_open(self, alarm: Alarm) -> Alarm | None:
        """The alarm as it is now, ``None`` if it was cleared since."""
        now = self.alarms.open_for(alarm.rule_id, alarm.device)
        return now if now is not None and now.id == alarm.id else None

    def _sync_rules(self) -> None:
        """Take in rules created, changed or deleted through another process's API."""
        versions = self.repo.versions()
        if versions == self._versions:
            return
        for rule_id in self._versions.keys() - versions.keys():
            self.engine.remove(rule_id)
        for rule_id, v in versions.items():
            if self._versions.get(rule_id) != v:
                try:
                    self.engine.upsert(self.repo.get_rule(rule_id))
                except NotFound:  # deleted in between: the next pass removes it
                    continue
        self._versions = versions

    # ------------------------------------------------------------ alarm operations (API)

    async def acknowledge(self, alarm_id: int, actor: str, comment: str | None = None) -> Alarm:
        now = self.clock.now_us()
        alarm = self.alarms.acknowledge(alarm_id, actor, now)
        if comment:
            self.alarms.comment(alarm_id, actor, comment, now)
        await self._announce("acknowledged", alarm, self.engine.rules.get(alarm.rule_id), actor)
        return alarm

    async def clear(self, alarm_id: int, actor: str, comment: str | None = None) -> Alarm:
        now = self.clock.now_us()
        alarm = self.alarms.clear(alarm_id, actor, now, "cleared by hand")
        if comment:
            self.alarms.comment(alarm_id, actor, comment, now)
        await self._announce("cleared", alarm, self.engine.rules.get(alarm.rule_id), actor)
        return alarm

    async def comment(self, alarm_id: int, author: str, text: str) -> Comment:
        c = self.alarms.comment(alarm_id, author, text, self.clock.now_us())
        alarm = self.alarms.get(alarm_id)
        if self.bus is not None:
            await self.bus.publish(
                topics.bus_alarm(alarm.project),
                encode_alarm_event("commented", alarm.model_dump(), author),
            )
        return c

    # ------------------------------------------------------------ rules (API, YAML)

    def validate_rule(self, data: Any, *, project: str | None = None) -> Rule:
        """Parse and check a rule, including that its channels exist; ``InvalidInput`` if not."""
        rule = data if isinstance(data, Rule) else parse_rule(data, project=project)
        self.check_channels(rule)
        return rule

    def check_channels(self, rule: Rule, extra: AbstractSet[str] = frozenset()) -> None:
        """``InvalidInput`` naming the field unless every channel the rule notifies exists in
        its project (or is in ``extra``, e.g. defined in the same rules file)."""
        known = {c.name for c in self.repo.list_channels(rule.project)} | set(extra)
        named = [("notify.channels", i, n) for i, n in enumerate(rule.notify.channels)]
        named += [
            (f"escalation[{j}].channels", i, n)
            for j, s in enumerate(rule.escalation)
            for i, n in enumerate(s.channels)
        ]
        for where, i, name in named:
            if name not in known:
                raise InvalidInput(
                    f"{where}[{i}]: project {rule.project!r} has no channel named {name!r}",
                    hint="create the channel first (channels in YAML, or POST .../channels)",
                )

    def _unique_id(self, rule: Rule) -> Rule:
        base = rule.id or slug(rule.name)
        rid, n = base, 1
        while self.repo.exists(rid):
            n += 1
            rid = f"{base}-{n}"
        return rule.model_copy(update={"id": rid})

    async def create_rule(
        self, data: Any, *, project: str | None = None, auto_id: bool = False
    ) -> Rule:
        rule = self.validate_rule(data, project=project)
        if auto_id:
            rule = self._unique_id(rule)
        now = self.clock.now_us()
        self.repo.create_rule(rule, now)
        self.engine.upsert(rule)
        assert rule.id is not None  # a validated Rule always has one (from its name)
        self._versions[rule.id] = now
        await self._broadcast(rule.project, "rule", rule.id)
        return rule

    async def put_rule(self, data: Any, *, project: str | None = None) -> Rule:
        rule = self.validate_rule(data, project=project)
        now = self.clock.now_us()
        self.repo.put_rule(rule, now)
        self.engine.upsert(rule)
        assert rule.id is not None  # a validated Rule always has one (from its name)
        self._versions[rule.id] = now
        await self._close_orphans(rule.id, "rule changed")
        await self._broadcast(rule.project, "rule", rule.id)
        return rule

    async def delete_rule(self, rule_id: str) -> None:
        project = self.repo.get_rule(rule_id).project
        self.repo.delete_rule(rule_id)
        self.engine.remove(rule_id)
        self._versions.pop(rule_id, None)
        await self._close_orphans(rule_id, "rule deleted")
        await self._broadcast(project, "rule", rule_id)

    async def _close_orphans(self, rule_id: str, why: str) -> None:
        rule = self.engine.rules.get(rule_id)
        keep = set(self.engine.devices(rule_id)) if rule is not None and rule.enabled else set()
        for alarm in self.alarms.open_alarms():
            if alarm.rule_id == rule_id and alarm.device not in keep:
                alarm = self.alarms.clear(alarm.id, SYSTEM, self.clock.now_us(), why)
                await self._announce("cleared", alarm, rule, SYSTEM, detail=why)

    def get_rule(self, rule_id: str) -> Rule:
        return self.repo.get_rule(rule_id)

    def list_rules(self, project: str | list[str] | None = None) -> list[Rule]:
        return self.repo.list_rules(project)

    async def load_yaml(self, text: str, *, project: str | None = None) -> RuleFile:
        """Apply a rules file: its channels and rules are created or replaced."""
        return await self.apply(load_rule_file(text, project=project))

    async def apply(self, doc: RuleFile) -> RuleFile:
        """Create or replace a parsed rules file's channels, then its rules."""
        for spec in doc.channels:
            self.put_channel(spec)
        for rule in doc.rules:
            await self.put_rule(rule)
        return doc

    # ------------------------------------------------------------ channels

    def put_channel(self, spec: ChannelSpec) -> ChannelSpec:
        check_channel(spec)
        self.repo.put_channel(spec)
        self.notifier.forget(spec.project, spec.name)
        self._broadcast_soon(spec.project, "channel", spec.name)
        return spec

    def delete_channel(self, project: str, name: str) -> None:
        users = [
            r.id
            for r in self.repo.list_rules(project)
            if name in r.notify.channels or any(name in s.channels for s in r.escalation)
        ]
        if users:
            raise Conflict(
                f"channel {name!r} is used by rules {users}",
                hint="remove it from those rules first",
            )
        self.repo.delete_channel(project, name)
        self.notifier.forget(project, name)
        self._broadcast_soon(project, "channel", name)

    async def test_channel(self, project: str, name: str) -> dict[str, Any]:
        if name not in {c.name for c in self.repo.list_channels(project)}:
            raise NotFound(f"channel {name!r} not found in project {project!r}")
        note = Notification(
            project,
            "test",
            f"Atoll test notification ({name})",
            "If you can read this, the channel works.",
        )
        ok = await self.notifier.deliver(project, name, note)
        last = self.notifier.deliveries(project, limit=1)
        return {"ok": ok, "delivery": last[0] if last else None}


class _Outbox:
    """Writes an alarm transition's deliveries (``pending``) in the transition's transaction
    (``AlarmBook`` calls it with the connection and the changed alarm): a process that dies
    right after the transition leaves them pending for another to send, never unwritten."""

    def __init__(
        self, svc: RulesService, event: str, rule: Rule | None, actor: str, *extra: Any
    ) -> None:
        self.svc, self.event, self.rule, self.actor, self.extra = svc, event, rule, actor, extra
        self.rows: tuple[Notification, list[tuple[str, int]]] | None = None

    def __call__(self, conn: sa.Connection, alarm: Alarm) -> None:
        got = self.svc._note(self.event, alarm, self.rule, self.actor, *self.extra)
        if got is None:
            self.rows = None
            return
        names, note = got
        self.rows = (note, self.svc.notifier.record(conn, alarm.project, names, note, alarm.id))


def _explanation(e: AnomalyEvent) -> dict[str, Any] | None:
    """What an anomalous event says about itself (``None`` for the plain ones): the reading,
    its score and decision, what the model expected, the contributors and the model."""
    if e.model is None and e.expected is None and e.contributors is None:
        return None
    out: dict[str, Any] = msgspec.to_builtins(e)
    del out["project"], out["device"]
    return out


def create_service(ctx: ServiceContext) -> RulesService:
    """The runtime's hook (``atoll.platform.SERVICE_MODULES``): rules share the registry's
    database, resolve device types through it, and send command notifications through it."""
    from atoll.bus.nats_partitions import leader_for, partitioned_for
    from atoll.rules.commands import RegistryCommands
    from atoll.rules.directory import RegistryDevices

    s = ctx.settings
    # On NATS: partitioned by device like detection, singletons under a leader lease
    # (docs/RULES.md, "In a cluster"); in-process: as ever.
    parts = partitioned_for(ctx.bus, "rules", lease_s=s.rules_lease_s)
    return RulesService(
        ctx.bus,
        db=ctx.registry.engine,
        directory=RegistryDevices(ctx.registry),
        command_sender=RegistryCommands(ctx.registry, ctx.commands),
        store=ctx.store,
        partitions=parts[0] if parts else None,
        checkpoints=parts[1] if parts else None,
        checkpoint_interval=s.rules_checkpoint_s,
        leader=leader_for(ctx.bus, "reports", lease_s=s.rules_lease_s),
        catalog=ctx.registry,
    )


def api_only(ctx: ServiceContext) -> RulesService:
    """What a node that does not run the rules service serves the rules, alarms, channels and
    reports routes with: the shared database and the bus, nothing evaluated (the other nodes'
    rules services reload on the changes it publishes)."""
    from atoll.rules.commands import RegistryCommands
    from atoll.rules.directory import RegistryDevices

    return RulesService(
        ctx.bus,
        db=ctx.registry.engine,
        directory=RegistryDevices(ctx.registry),
        command_sender=RegistryCommands(ctx.registry, ctx.commands),
        store=ctx.store,
        tick_interval=0,
        evaluate=False,
    )
