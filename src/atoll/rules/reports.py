"""Scheduled reports: per project, chosen series (bucketed through ``SeriesStore.query_buckets``)
and the alarms of a period, as CSV or PDF, on a cron schedule, delivered through channels."""

from __future__ import annotations

import builtins
import csv
import io
import logging
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from croniter import croniter
from fpdf import FPDF
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from atoll.core.errors import InvalidInput, NotFound
from atoll.core.points import SeriesKey
from atoll.rules import db
from atoll.rules.alarms import Alarm
from atoll.rules.channels import Attachment, Notification
from atoll.rules.clock import Clock
from atoll.rules.durations import PositiveDuration, format_duration
from atoll.rules.model import MAX_ID, STORED_ID, Schedule, slug
from atoll.rules.notify import Notifier
from atoll.rules.repository import RuleRepository

log = logging.getLogger(__name__)
US = 1_000_000
Agg = Literal["min", "max", "avg", "count", "first", "last"]
ALARM_COLUMNS = (
    "id",
    "device",
    "rule_name",
    "severity",
    "status",
    "acknowledged",
    "raised_at",
    "acknowledged_by",
    "cleared_at",
    "cleared_by",
    "detail",
)


class SeriesRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device: str = Field(min_length=1)
    metric: str = Field(min_length=1)


class ReportSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, pattern=STORED_ID, max_length=MAX_ID)
    name: str = Field(min_length=1, max_length=200)
    project: str = Field(min_length=1)
    cron: str = Field(description="when to run, e.g. '0 7 * * mon' (in ``timezone``)")
    timezone: str = "UTC"
    period: PositiveDuration = Field(
        86400.0, description="length of the window that ends at run time"
    )
    bucket: PositiveDuration = 3600.0
    aggs: list[Agg] = ["min", "avg", "max"]
    series: list[SeriesRef] = []
    include_alarms: bool = True
    format: Literal["csv", "pdf"] = "csv"
    channels: list[str] = Field(
        [], description="where each run is sent; none: the report is only run and downloaded"
    )
    enabled: bool = True

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        if not croniter.is_valid(v):
            raise ValueError(f"{v!r} is not a cron expression, e.g. '0 7 * * *' (07:00 daily)")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return Schedule._known_zone(v)

    @model_validator(mode="after")
    def _fill(self):
        if self.id is None:
            self.id = slug(self.name)
        if not self.series and not self.include_alarms:
            raise ValueError("a report needs series, alarms, or both")
        if self.bucket > self.period:
            raise ValueError("bucket must not be longer than period")
        return self

    def next_run(self, after_us: int) -> int:
        """First scheduled time strictly after ``after_us`` (µs)."""
        start = datetime.fromtimestamp(after_us / US, ZoneInfo(self.timezone))
        nxt = croniter(self.cron, start).get_next(datetime)
        return int(nxt.timestamp() * US)


def _iso(ts_us: int | None) -> str:
    if ts_us is None:
        return ""
    return datetime.fromtimestamp(ts_us / US, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def alarms_in(engine: sa.Engine, project: str, start: int, end: int) -> list[Alarm]:
    """Alarms open at any time in ``[start, end)``."""
    t = db.alarms
    q = (
        sa.select(t)
        .where(
            t.c.project == project,
            t.c.raised_at < end,
            sa.or_(t.c.cleared_at.is_(None), t.c.cleared_at >= start),
        )
        .order_by(t.c.raised_at, t.c.id)
    )
    with engine.connect() as c:
        return [Alarm.model_validate(r._mapping) for r in c.execute(q)]


def _buckets(spec: ReportSpec, store, start: int, end: int) -> dict[tuple[str, str], Any]:
    # Charts need min/avg/max even when the table shows other aggregates.
    aggs = tuple(dict.fromkeys([*spec.aggs, "min", "avg", "max"]))
    return {
        (ref.device, ref.metric): store.query_buckets(
            SeriesKey(spec.project, ref.device, ref.metric), start, end, int(spec.bucket * US), aggs
        )
        for ref in spec.series
    }


def _series_rows(spec: ReportSpec, buckets: dict) -> list[list]:
    rows = []
    for (device, metric), b in buckets.items():
        for i, s in enumerate(b.start.tolist()):
            rows.append([device, metric, _iso(s)] + [_fmt(b.columns[a][i]) for a in spec.aggs])
    return rows


def _fmt(x) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:.6g}"


def _alarm_row(a: Alarm) -> list[str]:
    d = a.model_dump()
    return [
        _iso(d[c])
        if c in ("raised_at", "cleared_at")
        else ("" if d[c] is None else str(d[c]).lower() if isinstance(d[c], bool) else str(d[c]))
        for c in ALARM_COLUMNS
    ]


def _csv(header, rows) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()


def build_report(
    spec: ReportSpec, store, engine: sa.Engine, start: int, end: int
) -> list[Attachment]:
    """The report's files for ``[start, end)``."""
    if spec.series and store is None:
        raise InvalidInput("this report needs a series store, and the rules service has none")
    stamp = datetime.fromtimestamp(end / US, UTC).strftime("%Y%m%dT%H%M")
    base = f"{spec.project}-{spec.id}-{stamp}"
    buckets = _buckets(spec, store, start, end) if spec.series else {}
    series = _series_rows(spec, buckets)
    alarms = alarms_in(engine, spec.project, start, end) if spec.include_alarms else []
    if spec.format == "csv":
        out = []
        if spec.series:
            out.append(
                Attachment(
                    f"{base}-series.csv",
                    _csv(["device", "metric", "bucket_start", *spec.aggs], series),
                    "text/csv",
                )
            )
        if spec.include_alarms:
            out.append(
                Attachment(
                    f"{base}-alarms.csv",
                    _csv(ALARM_COLUMNS, [_alarm_row(a) for a in alarms]),
                    "text/csv",
                )
            )
        return out
    return [
        Attachment(
            f"{base}.pdf", _pdf(spec, series, buckets, alarms, start, end), "application/pdf"
        )
    ]


def _latin(text: str) -> str:
    # The PDF core fonts cover Latin-1 only; anything else becomes '?'.
    return text.encode("latin-1", "replace").decode("latin-1")


def _chart(pdf: FPDF, b, start: int, end: int, w: float = 180, h: float = 38) -> None:
    """Min-max band and average line of one series' buckets over the report period."""
    x0, y0 = pdf.l_margin, pdf.get_y()
    pdf.set_draw_color(160, 160, 160)
    pdf.rect(x0, y0, w, h)
    if len(b.start):
        lo, hi = float(b.columns["min"].min()), float(b.columns["max"].max())
        span = (hi - lo) or 1.0

        def xy(ts: int, v: float) -> tuple[float, float]:
            return x0 + (ts - start) / (end - start) * w, y0 + h - 2 - (v - lo) / span * (h - 4)

        ts = b.start.tolist()
        band = [xy(t, v) for t, v in zip(ts, b.columns["max"].tolist(), strict=True)]
        band += [
            xy(t, v) for t, v in reversed(list(zip(ts, b.columns["min"].tolist(), strict=True)))
        ]
        pdf.set_fill_color(205, 222, 245)
        pdf.set_draw_color(205, 222, 245)
        pdf.polygon(band, style="DF")
        pdf.set_draw_color(30, 90, 180)
        pdf.set_line_width(0.4)
        avg = [xy(t, v) for t, v in zip(ts, b.columns["avg"].tolist(), strict=True)]
        if len(avg) == 1:
            avg.append((avg[0][0] + 0.5, avg[0][1]))
        pdf.polyline(avg)
        pdf.set_line_width(0.2)
        pdf.set_font("Helvetica", "", 7)
        pdf.set_xy(x0 + 1, y0 + 1)
        pdf.cell(30, 3, f"max {_fmt(hi)}")
        pdf.set_xy(x0 + 1, y0 + h - 4)
        pdf.cell(30, 3, f"min {_fmt(lo)}")
    pdf.set_draw_color(0, 0, 0)
    pdf.set_xy(x0, y0 + h + 1)


def _pdf(
    spec: ReportSpec, series: list[list], buckets: dict, alarms: list[Alarm], start: int, end: int
) -> bytes:
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_title(_latin(spec.name))
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _latin(spec.name), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.cell(
        0,
        6,
        _latin(
            f"Project {spec.project}: {_iso(start)} to {_iso(end)}"
            f" (buckets of {format_duration(spec.bucket)})"
        ),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(3)

    def table(title: str, header: list[str], rows: list[list[str]], widths: list[float]) -> None:
        if title:
            pdf.set_font("Helvetica", "B", 12)
            pdf.cell(0, 8, _latin(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "B", 8)
        for h, w in zip(header, widths, strict=True):
            pdf.cell(w, 6, _latin(h), border=1)
        pdf.ln()
        pdf.set_font("Helvetica", "", 8)
        if not rows:
            pdf.cell(sum(widths), 6, "none", border=1, new_x="LMARGIN", new_y="NEXT")
        for r in rows:
            for cell, w in zip(r, widths, strict=True):
                text = _latin(str(cell))
                while text and pdf.get_string_width(text) > w - 2:
                    text = text[:-1]
                pdf.cell(w, 5, text, border=1)
            pdf.ln()
        pdf.ln(3)

    if spec.series:
        for ref in spec.series:
            rows = [r[2:] for r in series if r[0] == ref.device and r[1] == ref.metric]
            n = len(spec.aggs)
            pdf.set_font("Helvetica", "B", 12)
            pdf.cell(0, 8, _latin(f"{ref.device} / {ref.metric}"), new_x="LMARGIN", new_y="NEXT")
            if pdf.get_y() + 45 > pdf.h - pdf.b_margin:
                pdf.add_page()
            _chart(pdf, buckets[(ref.device, ref.metric)], start, end)
            table("", ["bucket start (UTC)", *spec.aggs], rows, [45] + [min(30, 140 / n)] * n)
    if spec.include_alarms:
        table(
            f"Alarms ({len(alarms)})",
            ["raised (UTC)", "device", "rule", "severity", "status", "cleared (UTC)"],
            [
                [
                    _iso(a.raised_at),
                    a.device,
                    a.rule_name,
                    a.severity,
                    a.status + ("" if a.acknowledged else ", unack"),
                    _iso(a.cleared_at),
                ]
                for a in alarms
            ],
            [34, 28, 46, 18, 30, 34],
        )
    return bytes(pdf.output())


class ReportHost(Protocol):
    """What reports use of the rules service (``RulesService`` is one). Read at each use, not
    copied: the service's ``store`` may be set after the scheduler is made."""

    db: sa.Engine
    repo: RuleRepository
    clock: Clock
    notifier: Notifier
    store: Any


class ReportScheduler:
    """Report definitions in the database, run by the rules service's timer."""

    def __init__(self, service: ReportHost) -> None:
        self.svc = service
        self.engine = service.db

    def list(self, project: str | list[str] | None = None) -> list[ReportSpec]:
        q = sa.select(db.reports.c.spec).order_by(db.reports.c.id)
        if isinstance(project, str):
            q = q.where(db.reports.c.project == project)
        elif project is not None:
            q = q.where(db.reports.c.project.in_(project))
        with self.engine.connect() as c:
            return [ReportSpec.model_validate(r.spec) for r in c.execute(q)]

    def get(self, report_id: str) -> ReportSpec:
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(db.reports.c.spec).where(db.reports.c.id == report_id)
            ).first()
        if row is None:
            raise NotFound(f"report {report_id!r} not found")
        return ReportSpec.model_validate(row.spec)

    def put(self, spec: ReportSpec) -> ReportSpec:
        known = {c.name for c in self.svc.repo.list_channels(spec.project)}
        for i, name in enumerate(spec.channels):
            if name not in known:
                raise InvalidInput(
                    f"channels[{i}]: project {spec.project!r} has no channel {name!r}"
                )
        t = db.reports
        with self.engine.begin() as c:
            old = c.execute(sa.select(t.c.project).where(t.c.id == spec.id)).first()
            if old is not None and old.project != spec.project:
                raise InvalidInput(f"report {spec.id!r} belongs to project {old.project!r}")
            # Start the schedule now: a new report does not replay the past.
            c.execute(sa.delete(t).where(t.c.id == spec.id))
            c.execute(
                sa.insert(t).values(
                    id=spec.id,
                    project=spec.project,
                    spec=spec.model_dump(mode="json"),
                    last_run=self.svc.clock.now_us(),
                )
            )
        return spec

    def delete(self, report_id: str) -> None:
        with self.engine.begin() as c:
            if not c.execute(sa.delete(db.reports).where(db.reports.c.id == report_id)).rowcount:
                raise NotFound(f"report {report_id!r} not found")

    # In this class ``list`` is the method above: annotations name ``builtins.list``.
    async def run(self, spec: ReportSpec, end: int | None = None) -> builtins.list[Attachment]:
        """Build the report for the period ending at ``end`` (default now) and send it."""
        end = self.svc.clock.now_us() if end is None else end
        start = end - int(spec.period * US)
        files = build_report(spec, self.svc.store, self.engine, start, end)
        note = Notification(
            spec.project,
            "report",
            f"Report: {spec.name}",
            f"{spec.name} for {_iso(start)} to {_iso(end)}",
            None,
            tuple(files),
        )
        self.svc.notifier.dispatch(spec.project, spec.channels, note)
        return files

    async def tick(self, now: int) -> None:
        t = db.reports
        with self.engine.connect() as c:
            rows = list(c.execute(sa.select(t)))
        for row in rows:
            spec = ReportSpec.model_validate(row.spec)
            if not spec.enabled or not spec.channels:  # nowhere to send it: downloaded on demand
                continue
            due = spec.next_run(row.last_run or now)
            if due > now:
                continue
            # After downtime, send one report for the latest missed slot, not one per slot.
            while (nxt := spec.next_run(due)) <= now:
                due = nxt
            # Compare-and-set on the last run: of two processes taking this slot, one sends it.
            same = t.c.last_run.is_(None) if row.last_run is None else t.c.last_run == row.last_run
            with self.engine.begin() as c:
                moved = c.execute(
                    sa.update(t).where(t.c.id == spec.id, same).values(last_run=due)
                ).rowcount
            if moved != 1:
                continue
            try:
                await self.run(spec, end=due)
            except Exception:
                log.exception("report %s failed", spec.id)
