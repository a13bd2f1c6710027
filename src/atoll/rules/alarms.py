"""Alarms and their lifecycle, persisted: active → acknowledged → cleared.

An alarm may also be cleared before anyone acknowledged it (``status == "cleared"``,
``acknowledged == False``) and acknowledged afterwards. At most one alarm per (rule, device)
is open (not cleared) at a time; the database enforces it too. Every transition lands in the
alarm's history with who and when.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel

from atoll.core.errors import Conflict, InvalidInput, NotFound
from atoll.rules import db
from atoll.rules.model import SEVERITIES, Rule

Status = Literal["active", "acknowledged", "cleared"]
SYSTEM = "system"
#: An operator's verdict on an alarm: a real fault, a false alarm, or unsure.
Feedback = Literal["real", "false", "unsure"]
FEEDBACK: tuple[str, ...] = ("real", "false", "unsure")
WEEK_US = 7 * 86_400 * 1_000_000
#: Weeks start on Monday 00:00 UTC; the epoch (1970-01-01) was a Thursday, 3 days later.
MONDAY_SHIFT_US = 3 * 86_400 * 1_000_000


def week_of(us: int) -> int:
    """The number of the week (Monday to Sunday, UTC) holding ``us``."""
    return (us + MONDAY_SHIFT_US) // WEEK_US


def week_start(week: int) -> int:
    """When week number ``week`` starts (µs)."""
    return week * WEEK_US - MONDAY_SHIFT_US


class Alarm(BaseModel):
    id: int
    project: str
    rule_id: str
    rule_name: str
    device: str
    metric: str | None = None
    severity: str
    status: Status
    acknowledged: bool
    value: float | None = None
    detail: str = ""
    #: What explains it, e.g. ``{"anomaly": {...}}``: the explanation of the anomalous reading
    #: behind an ``anomaly`` condition (expected band, contributors, model; docs/RULES.md).
    context: dict[str, Any] | None = None
    raised_at: int
    acknowledged_at: int | None = None
    acknowledged_by: str | None = None
    cleared_at: int | None = None
    cleared_by: str | None = None
    escalation_level: int = 0
    last_notified_at: int | None = None
    notifications: int = 0
    #: The bus stream position of the message that raised it (partitioned rules), if any.
    raised_seq: int | None = None
    feedback: Feedback | None = None
    feedback_by: str | None = None
    feedback_at: int | None = None
    assignee: str | None = None
    assigned_at: int | None = None

    @property
    def open(self) -> bool:
        return self.status != "cleared"


class AlarmEvent(BaseModel):
    id: int
    alarm_id: int
    ts: int
    kind: str
    actor: str
    severity: str | None = None
    detail: str = ""


class Comment(BaseModel):
    id: int
    alarm_id: int
    ts: int
    author: str
    text: str


#: Called with the transaction's connection and the changed alarm, inside the transition's
#: transaction (the rules service writes the notifications' deliveries there).
Outbox = Callable[[sa.Connection, "Alarm"], object]


class AlarmBook:
    """Alarms in the database. The database is the truth about which alarms are open: every
    rules process of a deployment writes to it, so none keeps its own copy."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------ reads

    def open_for(self, rule_id: str, device: str) -> Alarm | None:
        t = db.alarms
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(t).where(
                    t.c.rule_id == rule_id, t.c.device == device, t.c.status != "cleared"
                )
            ).first()
        return None if row is None else Alarm.model_validate(row._mapping)

    def open_alarms(self) -> builtins.list[Alarm]:
        t = db.alarms
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(t.c.status != "cleared").order_by(t.c.id))
            return [Alarm.model_validate(r._mapping) for r in rows]

    def get(self, alarm_id: int) -> Alarm:
        with self.engine.connect() as c:
            row = c.execute(sa.select(db.alarms).where(db.alarms.c.id == alarm_id)).first()
        if row is None:
            raise NotFound(f"alarm {alarm_id} not found")
        return Alarm.model_validate(row._mapping)

    @staticmethod
    def _where(
        *,
        projects: builtins.list[str] | None = None,
        status: builtins.list[str] | None = None,
        device: str | None = None,
        rule_id: str | None = None,
        severity: builtins.list[str] | None = None,
        since: int | None = None,
        until: int | None = None,
        assignee: str | None = None,
        feedback: builtins.list[str] | None = None,
    ) -> builtins.list[Any]:
        t = db.alarms
        where: builtins.list[Any] = []
        if projects is not None:
            where.append(t.c.project.in_(projects))
        if status:
            where.append(t.c.status.in_(status))
        if device:
            where.append(t.c.device == device)
        if rule_id:
            where.append(t.c.rule_id == rule_id)
        if severity:
            where.append(t.c.severity.in_(severity))
        if since is not None:
            where.append(t.c.raised_at >= since)
        if until is not None:
            where.append(t.c.raised_at < until)
        if assignee is not None:  # "" means nobody
            where.append(t.c.assignee == assignee if assignee else t.c.assignee.is_(None))
        if feedback:
            judged = [f for f in feedback if f != "none"]
            either = [t.c.feedback.in_(judged)] if judged else []
            if "none" in feedback:
                either.append(t.c.feedback.is_(None))
            where.append(sa.or_(*either))
        return where

    def list(
        self,
        *,
        projects: builtins.list[str] | None = None,
        status: builtins.list[str] | None = None,
        device: str | None = None,
        rule_id: str | None = None,
        severity: builtins.list[str] | None = None,
        since: int | None = None,
        until: int | None = None,
        assignee: str | None = None,
        feedback: builtins.list[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        worst_first: bool = False,
    ) -> builtins.list[Alarm]:
        """Newest first; ``worst_first``: highest severity first, then newest."""
        t = db.alarms
        where = self._where(
            projects=projects,
            status=status,
            device=device,
            rule_id=rule_id,
            severity=severity,
            since=since,
            until=until,
            assignee=assignee,
            feedback=feedback,
        )
        q = sa.select(t).where(*where)
        order = [t.c.raised_at.desc(), t.c.id.desc()]
        if worst_first:
            rank = sa.case({sev: i for i, sev in enumerate(SEVERITIES)}, value=t.c.severity)
            order.insert(0, rank.desc())
        q = q.order_by(*order).limit(limit).offset(offset)
        with self.engine.connect() as c:
            return [Alarm.model_validate(r._mapping) for r in c.execute(q)]

    def count(self, **filters: Any) -> int:
        """How many alarms ``list`` would page through with the same filters."""
        q = sa.select(sa.func.count()).select_from(db.alarms).where(*self._where(**filters))
        with self.engine.connect() as c:
            return int(c.execute(q).scalar_one())

    def open_by_project(
        self, projects: builtins.list[str] | None = None
    ) -> dict[str, dict[str, int]]:
        """Open (not cleared) alarms per project and severity, in one grouped query."""
        t = db.alarms
        q = (
            sa.select(t.c.project, t.c.severity, sa.func.count())
            .where(t.c.status != "cleared", *self._where(projects=projects))
            .group_by(t.c.project, t.c.severity)
        )
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as c:
            for project, severity, n in c.execute(q):
                out.setdefault(project, {})[severity] = int(n)
        return out

    # In this class ``list`` is the method above: annotations name ``builtins.list``.
    def summary(self, projects: builtins.list[str]) -> dict:
        """Open alarms counted per status, severity and device (one query, for fleet pages)."""
        t = db.alarms
        q = (
            sa.select(t.c.device, t.c.status, t.c.severity, sa.func.count())
            .where(t.c.project.in_(projects), t.c.status != "cleared")
            .group_by(t.c.device, t.c.status, t.c.severity)
        )
        out: dict[str, Any] = {
            "open": 0,
            "active": 0,
            "acknowledged": 0,
            "by_severity": {},
            "by_device": {},
        }
        with self.engine.connect() as c:
            for device, status, severity, n in c.execute(q):
                out["open"] += n
                out[status] += n
                out["by_severity"][severity] = out["by_severity"].get(severity, 0) + n
                d = out["by_device"].setdefault(
                    device, {"open": 0, "active": 0, "severity": severity}
                )
                d["open"] += n
                d["active"] += n if status == "active" else 0
                if SEVERITIES.index(severity) > SEVERITIES.index(d["severity"]):
                    d["severity"] = severity
        return out

    def history(self, alarm_id: int) -> builtins.list[AlarmEvent]:
        self.get(alarm_id)
        t = db.alarm_events
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(t.c.alarm_id == alarm_id).order_by(t.c.id))
            return [AlarmEvent.model_validate(r._mapping) for r in rows]

    def comments(self, alarm_id: int) -> builtins.list[Comment]:
        self.get(alarm_id)
        t = db.comments
        with self.engine.connect() as c:
            rows = c.execute(sa.select(t).where(t.c.alarm_id == alarm_id).order_by(t.c.id))
            return [Comment.model_validate(r._mapping) for r in rows]

    # ------------------------------------------------------------ transitions

    def _update(self, c, alarm_id: int, **values) -> Alarm:
        if values:
            c.execute(sa.update(db.alarms).where(db.alarms.c.id == alarm_id).values(**values))
        row = c.execute(sa.select(db.alarms).where(db.alarms.c.id == alarm_id)).first()
        return Alarm.model_validate(row._mapping)

    def _event(
        self,
        c,
        alarm_id: int,
        ts: int,
        kind: str,
        actor: str,
        severity: str | None = None,
        detail: str = "",
    ) -> None:
        c.execute(
            sa.insert(db.alarm_events).values(
                alarm_id=alarm_id, ts=ts, kind=kind, actor=actor, severity=severity, detail=detail
            )
        )

    def raise_(
        self,
        rule: Rule,
        device: str,
        ts: int,
        value: float | None,
        detail: str,
        metric: str | None = None,
        context: dict[str, Any] | None = None,
        seq: int | None = None,
        outbox: Outbox | None = None,
    ) -> Alarm | None:
        """Open an alarm, or ``None`` when one is already open for (rule, device) (the
        database's unique index decides, whichever process got there first), or when ``seq``
        (the stream position of the message behind it) is given and an alarm of (rule, device)
        was already raised at or after it (the message came again after a crash)."""
        if self.open_for(rule.id or "", device) is not None:
            return None
        t = db.alarms
        try:
            with self.engine.begin() as c:
                if (
                    seq is not None
                    and c.execute(
                        sa.select(t.c.id)
                        .where(t.c.rule_id == rule.id, t.c.device == device, t.c.raised_seq >= seq)
                        .limit(1)
                    ).first()
                ):
                    return None
                key = c.execute(
                    sa.insert(db.alarms).values(
                        project=rule.project,
                        rule_id=rule.id,
                        rule_name=rule.name,
                        device=device,
                        metric=metric,
                        severity=rule.severity,
                        status="active",
                        acknowledged=False,
                        value=value,
                        detail=detail,
                        context=context,
                        raised_at=ts,
                        escalation_level=0,
                        notifications=0,
                        raised_seq=seq,
                    )
                ).inserted_primary_key
                assert key is not None  # an INSERT's result has the new row's key
                alarm_id = key[0]
                self._event(c, alarm_id, ts, "raised", SYSTEM, rule.severity, detail)
                alarm = self._update(c, alarm_id)
                if outbox is not None:
                    outbox(c, alarm)
                return alarm
        except sa.exc.IntegrityError:
            return None  # another process opened it first (rolled back as a whole)

    # Every transition is one conditional UPDATE (compare-and-set on the state it leaves):
    # of two processes (or a message delivered again) making the same one, exactly one wins,
    # and only the winner writes the history and announces it.

    def acknowledge(self, alarm_id: int, actor: str, ts: int) -> Alarm:
        alarm = self.get(alarm_id)
        t = db.alarms
        with self.engine.begin() as c:
            won = c.execute(
                sa.update(t)
                .where(t.c.id == alarm_id, t.c.acknowledged == sa.false())
                .values(
                    status=sa.case((t.c.status == "cleared", "cleared"), else_="acknowledged"),
                    acknowledged=True,
                    acknowledged_at=ts,
                    acknowledged_by=actor,
                )
            ).rowcount
            if won == 1:
                self._event(c, alarm_id, ts, "acknowledged", actor, alarm.severity)
                return self._update(c, alarm_id)
        alarm = self.get(alarm_id)
        raise Conflict(f"alarm {alarm_id} is already acknowledged (by {alarm.acknowledged_by})")

    def clear(
        self,
        alarm_id: int,
        actor: str,
        ts: int,
        detail: str = "",
        *,
        seq: int | None = None,
        outbox: Outbox | None = None,
    ) -> Alarm:
        """Clear an open alarm; ``Conflict`` if it is cleared already, or if ``seq`` (the stream
        position of the message that ended the condition) is not after the one that raised it
        (the message came again after a crash, out of turn)."""
        alarm = self.get(alarm_id)
        t = db.alarms
        where = [t.c.id == alarm_id, t.c.status != "cleared"]
        if seq is not None:
            where.append(sa.or_(t.c.raised_seq.is_(None), t.c.raised_seq < seq))
        with self.engine.begin() as c:
            won = c.execute(
                sa.update(t).where(*where).values(status="cleared", cleared_at=ts, cleared_by=actor)
            ).rowcount
            if won == 1:
                self._event(c, alarm_id, ts, "cleared", actor, alarm.severity, detail)
                cleared = self._update(c, alarm_id)
                if outbox is not None:
                    outbox(c, cleared)
                return cleared
        alarm = self.get(alarm_id)
        if alarm.status == "cleared":
            raise Conflict(f"alarm {alarm_id} is already cleared (by {alarm.cleared_by})")
        raise Conflict(f"alarm {alarm_id} was raised after the message that would clear it")

    def escalate(
        self, alarm_id: int, level: int, severity: str | None, ts: int, detail: str
    ) -> Alarm | None:
        """Move an open, unacknowledged alarm from ``level - 1`` to ``level``; ``None`` if it is
        not there any more (cleared, acknowledged, or escalated by another process)."""
        alarm = self.get(alarm_id)
        new = alarm.severity
        if severity is not None and SEVERITIES.index(severity) > SEVERITIES.index(new):
            new = severity
        t = db.alarms
        with self.engine.begin() as c:
            won = c.execute(
                sa.update(t)
                .where(
                    t.c.id == alarm_id,
                    t.c.escalation_level == level - 1,
                    t.c.status == "active",
                )
                .values(escalation_level=level, severity=new)
            ).rowcount
            if won != 1:
                return None
            self._event(c, alarm_id, ts, "escalated", SYSTEM, new, detail)
            return self._update(c, alarm_id)

    def notified(self, alarm_id: int, ts: int, *, last: int | None = None) -> Alarm | None:
        """Record a notification at ``ts``. With ``last`` (a repeat): only if the alarm is still
        active (open, not acknowledged) and was last notified at ``last`` (its raise time if
        never), ``None`` otherwise, so a repeat is sent once, and never after the clear."""
        t = db.alarms
        where = [t.c.id == alarm_id]
        if last is not None:
            where += [
                t.c.status == "active",
                sa.func.coalesce(t.c.last_notified_at, t.c.raised_at) == last,
            ]
        with self.engine.begin() as c:
            won = c.execute(
                sa.update(t)
                .where(*where)
                .values(last_notified_at=ts, notifications=t.c.notifications + 1)
            ).rowcount
            if won != 1:
                return None
            return self._update(c, alarm_id)

    def comment(self, alarm_id: int, author: str, text: str, ts: int) -> Comment:
        text = text.strip()
        if not text:
            raise InvalidInput("comment text is empty")
        self.get(alarm_id)
        with self.engine.begin() as c:
            key = c.execute(
                sa.insert(db.comments).values(alarm_id=alarm_id, ts=ts, author=author, text=text)
            ).inserted_primary_key
            assert key is not None  # an INSERT's result has the new row's key
            cid = key[0]
            self._event(c, alarm_id, ts, "commented", author, None, text[:200])
        return Comment(id=cid, alarm_id=alarm_id, ts=ts, author=author, text=text)

    # ------------------------------------------------------------ feedback and owners

    def judge(self, alarm_id: int, feedback: str | None, actor: str, ts: int) -> Alarm:
        """Record the operator's verdict (``None`` withdraws it); the last verdict counts."""
        if feedback is not None and feedback not in FEEDBACK:
            raise InvalidInput(
                f"feedback: unknown value {feedback!r}", hint="use real, false or unsure"
            )
        self.get(alarm_id)
        with self.engine.begin() as c:
            self._event(c, alarm_id, ts, "feedback", actor, None, feedback or "withdrawn")
            return self._update(
                c,
                alarm_id,
                feedback=feedback,
                feedback_by=actor if feedback else None,
                feedback_at=ts if feedback else None,
            )

    def assign(self, alarm_id: int, assignee: str | None, actor: str, ts: int) -> Alarm:
        """Give the alarm to ``assignee`` (``None``: to nobody)."""
        self.get(alarm_id)
        with self.engine.begin() as c:
            self._event(c, alarm_id, ts, "assigned", actor, None, assignee or "unassigned")
            return self._update(
                c, alarm_id, assignee=assignee, assigned_at=ts if assignee else None
            )

    def outcome_counts(
        self, projects: builtins.list[str], since: int, until: int
    ) -> dict[str, dict[str, int]]:
        """Per project, the alarms raised in ``[since, until)``: ``raised`` and of them judged
        ``real``, ``false``, ``unsure`` (one grouped query; projects without any are absent)."""
        t = db.alarms
        q = (
            sa.select(t.c.project, t.c.feedback, sa.func.count())
            .where(*self._where(projects=projects, since=since, until=until))
            .group_by(t.c.project, t.c.feedback)
        )
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as c:
            for project, verdict, n in c.execute(q):
                row = out.setdefault(project, {"raised": 0, "real": 0, "false": 0, "unsure": 0})
                row["raised"] += int(n)
                if verdict in row:
                    row[verdict] += int(n)
        return out

    def raised_histogram(
        self, projects: builtins.list[str], since: int, until: int, bucket: int
    ) -> builtins.list[tuple[str, int, int]]:
        """``(project, bucket index, alarms raised)`` over ``[since, until)`` in buckets of
        ``bucket`` µs from ``since`` (one grouped query; empty buckets are absent)."""
        t = db.alarms
        index = (t.c.raised_at - since) // bucket
        q = (
            sa.select(t.c.project, index, sa.func.count())
            .where(*self._where(projects=projects, since=since, until=until))
            .group_by(t.c.project, index)
        )
        with self.engine.connect() as c:
            return [(p, int(i), int(n)) for p, i, n in c.execute(q)]

    def raised_between(self, project: str, device: str, since: int, until: int) -> bool:
        """Whether an alarm of ``device`` was raised in ``[since, until)``."""
        t = db.alarms
        q = (
            sa.select(t.c.id)
            .where(*self._where(projects=[project], device=device, since=since, until=until))
            .limit(1)
        )
        with self.engine.connect() as c:
            return c.execute(q).first() is not None

    def feedback_counts(
        self, projects: builtins.list[str] | None = None, since: int | None = None
    ) -> builtins.list[tuple[str, str, str, int, str, int]]:
        """Judged alarms counted per (project, rule id, rule name, week, verdict), in one
        grouped query; ``week`` is the raise time's week (``week_of``; ``week_start`` tells
        when it starts)."""
        t = db.alarms
        week = (t.c.raised_at + MONDAY_SHIFT_US) // WEEK_US
        q = (
            sa.select(t.c.project, t.c.rule_id, t.c.rule_name, week, t.c.feedback, sa.func.count())
            .where(t.c.feedback.is_not(None), *self._where(projects=projects, since=since))
            .group_by(t.c.project, t.c.rule_id, t.c.rule_name, week, t.c.feedback)
        )
        with self.engine.connect() as c:
            return [(p, r, name, int(w), f, int(n)) for p, r, name, w, f, n in c.execute(q)]
