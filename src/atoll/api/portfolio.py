"""The lab's project portfolio and its quarterly report (docs/CONSOLE.md, "Portfolio").

Each project has a stage (idea → proof of concept → pilot → production), an owner and goals
(``PUT /projects/{p}/portfolio``, operators; audited). Its outcomes over a quarter come from what
the platform already records: alarms raised and the operators' verdicts on them (real fault,
false alarm, unsure), failures recorded as maintenance, and which of those failures an alarm on
the same device had announced in the ``CAUGHT_WINDOW`` before it ("caught before failure").
``GET /lab/portfolio`` answers the funnel and every project's row; ``GET /lab/report.csv`` and
``.pdf`` are the quarterly report from the same rows.

>>> quarter_range("2026Q4")
('2026Q4', 1790812800000000, 1798761600000000)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query, Response
from fpdf import FPDF
from pydantic import BaseModel, Field

from atoll.api.deps import SESSION_PREFIX, Ctx, Operator, Viewer, audit
from atoll.api.files import csv_download
from atoll.api.lab import _FILTER_DOC, _scope, visible_tenants
from atoll.api.rules import service
from atoll.api.schemas import iso
from atoll.core.errors import InvalidInput
from atoll.registry.models import STAGES, Portfolio, Principal

router = APIRouter(tags=["lab"])

#: An alarm of a device in this long before one of its failures "caught" the failure.
CAUGHT_WINDOW_US = 7 * 86_400_000_000
#: Failures looked at per report, at most (each is one small query).
MAX_FAILURES = 5000
STAGE_NAMES = {
    "idea": "Idea",
    "poc": "Proof of concept",
    "pilot": "Pilot",
    "production": "Production",
}
REPORT_COLUMNS = (
    "enterprise",
    "project",
    "project_name",
    "stage",
    "stage_since",
    "owner",
    "goals",
    "alarms_raised",
    "alarms_real",
    "alarms_false",
    "alarms_unsure",
    "precision",
    "failures",
    "caught_before_failure",
    "messages",
    "points",
)

QUARTER_DOC = Query(None, description="a quarter such as 2026Q4 (UTC); the current one")


def quarter_range(quarter: str | None, today: dt.date | None = None) -> tuple[str, int, int]:
    """``(name, start µs, end µs)`` of a quarter ``YYYYQn`` (``None``: the one holding today)."""
    if quarter is None:
        today = today or dt.datetime.now(dt.UTC).date()
        year, q = today.year, (today.month - 1) // 3 + 1
    else:
        text = quarter.strip().upper()
        try:
            year_s, q_s = text.split("Q")
            year, q = int(year_s), int(q_s)
        except ValueError:
            raise InvalidInput(f"quarter must look like 2026Q4, not {quarter!r}") from None
        if not (1 <= q <= 4 and 1970 <= year <= 9998):
            raise InvalidInput(f"quarter must look like 2026Q4, not {quarter!r}")
    start = dt.datetime(year, 3 * q - 2, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1, tzinfo=dt.UTC)
    return f"{year}Q{q}", int(start.timestamp()) * 1_000_000, int(end.timestamp()) * 1_000_000


def portfolio_out(p: Portfolio) -> dict[str, Any]:
    return {
        "project": p.project,
        "stage": p.stage,
        "stage_name": STAGE_NAMES[p.stage],
        "owner": p.owner,
        "goals": p.goals,
        "stage_since": iso(p.stage_since),
        "updated_by": p.updated_by,
        "updated_at": iso(p.updated_at) if p.updated_at is not None else None,
    }


class PortfolioIn(BaseModel):
    stage: str | None = Field(None, description="idea | poc | pilot | production")
    owner: str | None = Field(None, max_length=200, description="who answers for it")
    goals: str | None = Field(None, max_length=4000, description="what it is for, how it is judged")
    clear_owner: bool = Field(False, description="remove the owner")


@router.get("/projects/{project}/portfolio", summary="A project's stage, owner and goals")
def get_portfolio(project: str, who: Viewer, ctx: Ctx) -> dict:
    p = ctx.registry.get_project(project, who.tenant)
    return portfolio_out(ctx.registry.portfolios([p])[p.id])


@router.put("/projects/{project}/portfolio", summary="Move a project along, or set its owner/goals")
def put_portfolio(project: str, body: PortfolioIn, who: Operator, ctx: Ctx) -> dict:
    if body.stage is not None and body.stage not in STAGES:
        raise InvalidInput(f"stage must be one of {', '.join(STAGES)}, not {body.stage!r}")
    kw: dict[str, Any] = {}
    if body.clear_owner:
        kw["owner"] = None
    elif body.owner is not None:
        kw["owner"] = body.owner.strip() or None
    before, after = ctx.registry.set_portfolio(
        project, who.tenant, actor=_actor(who), stage=body.stage, goals=body.goals, **kw
    )
    changed = {
        k: [getattr(before, k), getattr(after, k)]
        for k in ("stage", "owner", "goals")
        if getattr(before, k) != getattr(after, k)
    }
    audit(ctx, who, "project.portfolio", project, changed)
    return portfolio_out(after)


def _actor(who: Principal) -> str:
    return who.name.removeprefix(SESSION_PREFIX)


def _rows(
    ctx: Any, who: Principal, enterprise: list[str], project: list[str], quarter: str | None
) -> tuple[str, int, int, list[dict[str, Any]]]:
    name, since, until = quarter_range(quarter)
    projects = _scope(ctx, who, enterprise, project)
    ids = sorted(projects)
    places = ctx.registry.portfolios(projects.values())
    outcomes = service(ctx).alarms.outcome_counts(ids, since, until) if ids else {}
    failures = ctx.registry.failures(ids, since, until)[:MAX_FAILURES] if ids else []
    lost: dict[str, int] = {}
    caught: dict[str, int] = {}
    alarms = service(ctx).alarms
    for pid, device, at in failures:
        lost[pid] = lost.get(pid, 0) + 1
        if alarms.raised_between(pid, device, at - CAUGHT_WINDOW_US, at):
            caught[pid] = caught.get(pid, 0) + 1
    first = dt.datetime.fromtimestamp(since / 1e6, dt.UTC).date()
    last = dt.datetime.fromtimestamp(until / 1e6, dt.UTC).date() - dt.timedelta(days=1)
    used: dict[str, list[int]] = {}
    if ids:
        tenants = sorted({p.tenant for p in projects.values()})
        for u in ctx.registry.usage(
            tenants, projects=ids, since=first.isoformat(), until=last.isoformat()
        ):
            slot = used.setdefault(u.project, [0, 0])
            slot[0] += u.messages
            slot[1] += u.points
    names = {t.id: t.name for t in visible_tenants(ctx, who)}
    rows = []
    for pid in ids:
        p, place = projects[pid], places[pid]
        o = outcomes.get(pid, {"raised": 0, "real": 0, "false": 0, "unsure": 0})
        judged = o["real"] + o["false"]
        rows.append(
            {
                "enterprise": p.tenant,
                "enterprise_name": names.get(p.tenant, p.tenant),
                **portfolio_out(place),
                "project_name": p.name,
                "alarms_raised": o["raised"],
                "alarms_real": o["real"],
                "alarms_false": o["false"],
                "alarms_unsure": o["unsure"],
                "precision": round(o["real"] / judged, 4) if judged else None,
                "failures": lost.get(pid, 0),
                "caught_before_failure": caught.get(pid, 0),
                "messages": used.get(pid, [0, 0])[0],
                "points": used.get(pid, [0, 0])[1],
            }
        )
    return name, since, until, rows


@router.get("/lab/portfolio", summary="Every project's stage and outcomes, and the funnel")
def lab_portfolio(
    who: Viewer,
    ctx: Ctx,
    enterprise: list[str] = _FILTER_DOC["enterprise"],
    project: list[str] = _FILTER_DOC["project"],
    quarter: str | None = QUARTER_DOC,
) -> dict:
    """The projects you may see with their stage, owner, goals and, over the quarter, alarms
    raised and judged, failures and those an alarm announced (``CAUGHT_WINDOW``: 7 days), and
    telemetry stored; ``funnel`` counts projects per stage, idea first."""
    name, since, until, rows = _rows(ctx, who, enterprise, project, quarter)
    funnel = dict.fromkeys(STAGES, 0)
    for r in rows:
        funnel[r["stage"]] += 1
    totals = {
        k: sum(r[k] for r in rows)
        for k in (
            "alarms_raised",
            "alarms_real",
            "alarms_false",
            "failures",
            "caught_before_failure",
        )
    }
    return {
        "quarter": name,
        "since": iso(since),
        "until": iso(until),
        "funnel": [{"stage": s, "name": STAGE_NAMES[s], "projects": funnel[s]} for s in STAGES],
        "totals": totals,
        "projects": rows,
    }


@router.get(
    "/lab/report.csv",
    summary="The quarterly lab report as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def lab_report_csv(
    who: Viewer,
    ctx: Ctx,
    enterprise: list[str] = _FILTER_DOC["enterprise"],
    quarter: str | None = QUARTER_DOC,
) -> Response:
    """One row per project, as ``GET /lab/portfolio``."""
    name, _, _, rows = _rows(ctx, who, enterprise, [], quarter)
    return csv_download(REPORT_COLUMNS, rows, f"atoll-lab-{name}.csv")


@router.get(
    "/lab/report.pdf",
    summary="The quarterly lab report as PDF",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def lab_report_pdf(
    who: Viewer,
    ctx: Ctx,
    enterprise: list[str] = _FILTER_DOC["enterprise"],
    quarter: str | None = QUARTER_DOC,
) -> Response:
    """The funnel as bars, the quarter's outcomes, then one line per project."""
    name, since, until, rows = _rows(ctx, who, enterprise, [], quarter)
    return Response(
        _pdf(name, since, until, rows),
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="atoll-lab-{name}.pdf"'},
    )


def _latin(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def _pdf(name: str, since: int, until: int, rows: list[dict[str, Any]]) -> bytes:
    pdf = FPDF(orientation="L", unit="mm", format="A4")
    pdf.set_title(f"Lab report {name}")
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, f"Lab report {name}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    first = dt.datetime.fromtimestamp(since / 1e6, dt.UTC).date()
    last = dt.datetime.fromtimestamp(until / 1e6, dt.UTC).date() - dt.timedelta(days=1)
    pdf.cell(
        0,
        6,
        f"{first.isoformat()} to {last.isoformat()} (UTC), {len(rows)} projects",
        new_x="LMARGIN",
        new_y="NEXT",
    )
    pdf.ln(3)
    # The funnel: one bar per stage, as wide as its share of the projects.
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Portfolio", new_x="LMARGIN", new_y="NEXT")
    top = max([1] + [sum(r["stage"] == s for r in rows) for s in STAGES])
    pdf.set_font("Helvetica", "", 9)
    for s in STAGES:
        n = sum(r["stage"] == s for r in rows)
        pdf.cell(40, 6, STAGE_NAMES[s])
        x, y = pdf.get_x(), pdf.get_y()
        pdf.set_fill_color(34, 166, 179)
        if n:
            pdf.rect(x, y + 1, 150 * n / top, 4, style="F")
        pdf.set_x(x + 155)
        pdf.cell(20, 6, str(n), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Outcomes this quarter", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    real = sum(r["alarms_real"] for r in rows)
    false = sum(r["alarms_false"] for r in rows)
    lines = [
        f"Alarms raised: {sum(r['alarms_raised'] for r in rows)}; judged real faults: {real}, "
        f"false alarms: {false}"
        + (f" (precision {real / (real + false):.0%})" if real + false else ""),
        f"Failures recorded: {sum(r['failures'] for r in rows)}; announced by an alarm in the "
        f"7 days before: {sum(r['caught_before_failure'] for r in rows)}",
        f"Telemetry stored: {sum(r['messages'] for r in rows):,} messages, "
        f"{sum(r['points'] for r in rows):,} points",
    ]
    for line in lines:
        pdf.cell(0, 6, _latin(line), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    header = [
        "Enterprise",
        "Project",
        "Stage",
        "Owner",
        "Alarms",
        "Real",
        "False",
        "Failures",
        "Caught",
        "Points",
    ]
    widths = [40, 55, 30, 35, 18, 15, 15, 18, 18, 30]
    pdf.set_font("Helvetica", "B", 8)
    for h, w in zip(header, widths, strict=True):
        pdf.cell(w, 6, h, border=1)
    pdf.ln()
    pdf.set_font("Helvetica", "", 8)
    for r in rows:
        cells = [
            r["enterprise_name"],
            r["project_name"],
            r["stage_name"],
            r["owner"] or "",
            r["alarms_raised"],
            r["alarms_real"],
            r["alarms_false"],
            r["failures"],
            r["caught_before_failure"],
            f"{r['points']:,}",
        ]
        for cell, w in zip(cells, widths, strict=True):
            text = _latin(str(cell))
            while text and pdf.get_string_width(text) > w - 2:
                text = text[:-1]
            pdf.cell(w, 5, text, border=1)
        pdf.ln()
    return bytes(pdf.output())


__all__ = ["CAUGHT_WINDOW_US", "STAGE_NAMES", "quarter_range", "router"]
