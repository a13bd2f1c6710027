"""Delivers notifications through a project's named channels, in the background, and keeps a
delivery log. A slow webhook retrying with backoff never holds up alarm evaluation.

Each delivery is written down (``pending``) before it starts and marked ``ok`` or ``failed``
when it ends, so one cut short by a crash or a stop is sent again by ``resume`` (at least once).

With several rules processes (partitioned), each row names its sender (``owner``); a process
takes over only the pending rows of senders that are gone (``adopt``), one process per row
(compare-and-set on the owner), so a delivery under way elsewhere is not sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import sqlalchemy as sa

from atoll.core.errors import AtollError
from atoll.rules import db
from atoll.rules.channels import Channel, ChannelContext, DeliveryFailed, Notification, make_channel
from atoll.rules.clock import Clock
from atoll.rules.repository import RuleRepository

log = logging.getLogger(__name__)


class Notifier:
    def __init__(
        self, engine: sa.Engine, repo: RuleRepository, ctx: ChannelContext, clock: Clock
    ) -> None:
        self.engine, self.repo, self.ctx, self.clock = engine, repo, ctx, clock
        self._channels: dict[tuple[str, str], Channel] = {}
        self._tasks: set[asyncio.Task] = set()
        #: This process's name on the rows it sends (partitioned rules), ``None`` otherwise.
        self.owner: str | None = None

    def forget(self, project: str, name: str) -> None:
        """Drop a cached channel after its definition changed."""
        self._channels.pop((project, name), None)

    def _channel(self, project: str, name: str) -> Channel:
        ch = self._channels.get((project, name))
        if ch is None:
            spec = next((s for s in self.repo.list_channels(project) if s.name == name), None)
            if spec is None:
                raise DeliveryFailed(f"project {project!r} has no channel named {name!r}")
            ch = self._channels[(project, name)] = make_channel(spec, self.ctx)
        return ch

    def dispatch(
        self, project: str, names: list[str], note: Notification, alarm_id: int | None = None
    ) -> list[asyncio.Task]:
        """Start delivering to each channel; returns the tasks (await them to wait)."""
        with self.engine.begin() as c:
            rows = self.record(c, project, names, note, alarm_id)
        return self.start(project, rows, note, alarm_id)

    def record(
        self,
        conn: sa.Connection,
        project: str,
        names: list[str],
        note: Notification,
        alarm_id: int | None = None,
    ) -> list[tuple[str, int]]:
        """Write one ``pending`` delivery per channel on ``conn`` (in the caller's transaction);
        ``[(channel, row id)]`` for ``start``."""
        rows = []
        for name in dict.fromkeys(names):
            key = conn.execute(
                sa.insert(db.deliveries).values(
                    ts=self.clock.now_us(),
                    project=project,
                    channel=name,
                    event=note.event,
                    alarm_id=alarm_id,
                    ok=False,
                    attempts=0,
                    status="pending",
                    payload=note.to_json(),
                    owner=self.owner,
                )
            ).inserted_primary_key
            assert key is not None  # an INSERT's result has the new row's key
            rows.append((name, key[0]))
        return rows

    def start(
        self,
        project: str,
        rows: list[tuple[str, int]],
        note: Notification,
        alarm_id: int | None = None,
    ) -> list[asyncio.Task]:
        """Send the recorded deliveries in the background."""
        return [self._start(project, name, note, alarm_id, row_id) for name, row_id in rows]

    def _start(self, project, name, note, alarm_id, row_id) -> asyncio.Task:
        t = asyncio.get_running_loop().create_task(
            self.deliver(project, name, note, alarm_id, row_id)
        )
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    def resume(self) -> list[asyncio.Task]:
        """Send again what was still pending when the last process stopped."""
        t = db.deliveries
        with self.engine.connect() as c:
            rows = list(c.execute(sa.select(t).where(t.c.status == "pending").order_by(t.c.id)))
        tasks = []
        for r in rows:
            try:
                note = Notification.from_json(r.payload)
            except (KeyError, TypeError, ValueError):
                self._finish(r.id, 0, "stored notification is unreadable")
                continue
            tasks.append(self._start(r.project, r.channel, note, r.alarm_id, r.id))
        return tasks

    def pending_owners(self) -> set[str]:
        """The senders of the deliveries still pending (partitioned rules)."""
        t = db.deliveries
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(t.c.owner)
                .where(t.c.status == "pending", t.c.owner.is_not(None))
                .distinct()
            )
            return {r.owner for r in rows}

    def adopt(self, gone: set[str]) -> list[asyncio.Task]:
        """Send the pending rows of the senders in ``gone`` (they died without finishing them),
        each claimed first: of several processes adopting at once, one sends a row."""
        t = db.deliveries
        gone = gone - {self.owner} if self.owner is not None else gone
        if not gone:
            return []
        with self.engine.connect() as c:
            rows = list(
                c.execute(
                    sa.select(t)
                    .where(t.c.status == "pending", t.c.owner.in_(sorted(gone)))
                    .order_by(t.c.id)
                )
            )
        tasks = []
        for r in rows:
            with self.engine.begin() as c:
                won = c.execute(
                    sa.update(t)
                    .where(t.c.id == r.id, t.c.status == "pending", t.c.owner == r.owner)
                    .values(owner=self.owner)
                ).rowcount
            if won != 1:
                continue
            try:
                note = Notification.from_json(r.payload)
            except (KeyError, TypeError, ValueError):
                self._finish(r.id, 0, "stored notification is unreadable")
                continue
            log.info("sending delivery %d left pending by %s", r.id, r.owner)
            tasks.append(self._start(r.project, r.channel, note, r.alarm_id, r.id))
        return tasks

    def _finish(self, row_id: int, attempts: int, error: str | None) -> None:
        with self.engine.begin() as c:
            c.execute(
                sa.update(db.deliveries)
                .where(db.deliveries.c.id == row_id)
                .values(
                    ok=error is None,
                    attempts=attempts,
                    error=error,
                    status="ok" if error is None else "failed",
                    payload=None,
                )
            )

    async def deliver(
        self,
        project: str,
        name: str,
        note: Notification,
        alarm_id: int | None = None,
        row_id: int | None = None,
    ) -> bool:
        attempts, error = 0, None
        try:
            attempts = await self._channel(project, name).send(note)
        except DeliveryFailed as exc:
            attempts, error = exc.attempts, exc.message
        except AtollError as exc:
            attempts, error = 1, exc.message
        except Exception as exc:  # a plug-in's bug must not kill the service
            log.exception("channel %s/%s crashed", project, name)
            attempts, error = 1, f"{type(exc).__name__}: {exc}"
        if error:
            log.warning("delivery to %s/%s failed: %s", project, name, error)
        if row_id is not None:
            self._finish(row_id, attempts, error)
        else:
            with self.engine.begin() as c:
                c.execute(
                    sa.insert(db.deliveries).values(
                        ts=self.clock.now_us(),
                        project=project,
                        channel=name,
                        event=note.event,
                        alarm_id=alarm_id,
                        ok=error is None,
                        attempts=attempts,
                        error=error,
                        status="ok" if error is None else "failed",
                    )
                )
        return error is None

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for every delivery under way; after ``timeout`` s cancel the rest (they stay
        ``pending`` and ``resume`` sends them on the next start)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._tasks:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                for t in list(self._tasks):
                    t.cancel()
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
                return
            await asyncio.wait(list(self._tasks), timeout=left)

    def deliveries(
        self, project: str | list[str] | None = None, alarm_id: int | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        t = db.deliveries
        q = sa.select(*(c for c in t.c if c.name != "payload")).order_by(t.c.id.desc()).limit(limit)
        if isinstance(project, str):
            q = q.where(t.c.project == project)
        elif project is not None:
            q = q.where(t.c.project.in_(project))
        if alarm_id is not None:
            q = q.where(t.c.alarm_id == alarm_id)
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(q)]
