"""The lab across enterprises: overview, one enterprise, every project, one alarm console
(``Client``'s part; docs/API.md, "The lab"). Answers are the API's JSON, as dicts: their fields
are documented there and grow with the lab pages."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from atoll.client._http import Http, TimeLike, time_param
from atoll.client.alarms import Alarm, _alarm, _joined


@dataclass(frozen=True)
class BulkResult:
    """What a bulk acknowledge/clear did: ``done`` ids, and ``skipped`` ``(id, reason)``."""

    done: tuple[int, ...]
    skipped: tuple[tuple[int, str], ...]


class LabCalls(Http):
    def lab_overview(self) -> dict[str, Any]:
        """Every enterprise you may see, with devices online/total, open alarms by severity,
        ingest rate, points stored and last activity, and the totals."""
        return dict(self._call("GET", "/lab/overview"))

    def lab_enterprise(self, tenant: str) -> dict[str, Any]:
        """One enterprise's figures and each of its projects'."""
        return dict(self._call("GET", f"/lab/enterprises/{tenant}"))

    def lab_quality(
        self,
        *,
        enterprise: str | Iterable[str] | None = None,
        project: str | Iterable[str] | None = None,
        weeks: int = 12,
    ) -> dict[str, Any]:
        """Detection precision from alarm feedback (real / (real + false)) over the last
        ``weeks`` weeks: in total, per project and per rule, each also week by week."""
        params = {"enterprise": _joined(enterprise), "project": _joined(project), "weeks": weeks}
        return dict(self._call("GET", "/lab/quality", params=params))

    def lab_projects(self) -> list[dict[str, Any]]:
        """Every project you may see (of every enterprise, for the platform admin)."""
        return list(self._call("GET", "/lab/projects")["projects"])

    @staticmethod
    def _lab_filters(
        enterprise: str | Iterable[str] | None,
        project: str | Iterable[str] | None,
        severity: str | Iterable[str] | None,
        status: str | Iterable[str] | None,
        rule: str | None,
        device: str | None,
        since: TimeLike,
        until: TimeLike,
        order: str,
        assignee: str | None = None,
        feedback: str | Iterable[str] | None = None,
    ) -> dict[str, Any]:
        return {
            "enterprise": _joined(enterprise),
            "project": _joined(project),
            "severity": _joined(severity),
            "status": _joined(status),
            "rule": rule,
            "device": device,
            "since": time_param(since),
            "until": time_param(until),
            "order": order,
            "assignee": assignee,
            "feedback": _joined(feedback),
        }

    def lab_alarms(
        self,
        *,
        enterprise: str | Iterable[str] | None = None,
        project: str | Iterable[str] | None = None,
        severity: str | Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        rule: str | None = None,
        device: str | None = None,
        since: TimeLike = None,
        until: TimeLike = None,
        order: str = "newest",
        assignee: str | None = None,
        feedback: str | Iterable[str] | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Alarm]:
        """Alarms across every enterprise and project you may see (``status`` defaults to open);
        ``order``: ``newest`` or ``severity``; ``assignee``: a user name, ``me`` or ``none``;
        ``feedback``: real | false | unsure | none (not judged)."""
        params = self._lab_filters(
            enterprise,
            project,
            severity,
            status,
            rule,
            device,
            since,
            until,
            order,
            assignee,
            feedback,
        )
        got = self._call("GET", "/lab/alarms", params={**params, "limit": limit, "offset": offset})
        return [_alarm(a) for a in got]

    def lab_alarms_csv(
        self,
        *,
        enterprise: str | Iterable[str] | None = None,
        project: str | Iterable[str] | None = None,
        severity: str | Iterable[str] | None = None,
        status: str | Iterable[str] | None = None,
        rule: str | None = None,
        device: str | None = None,
        since: TimeLike = None,
        until: TimeLike = None,
        order: str = "newest",
        assignee: str | None = None,
        feedback: str | Iterable[str] | None = None,
    ) -> str:
        """The same alarms as CSV (up to 50,000 rows), e.g. for a report."""
        params = self._lab_filters(
            enterprise,
            project,
            severity,
            status,
            rule,
            device,
            since,
            until,
            order,
            assignee,
            feedback,
        )
        got = self._call("GET", "/lab/alarms.csv", params=params)
        return got.decode() if isinstance(got, bytes) else str(got)

    def lab_usage(
        self,
        *,
        enterprise: str | Iterable[str] | None = None,
        project: str | Iterable[str] | None = None,
        since: str | date | None = None,
        until: str | date | None = None,
    ) -> dict[str, Any]:
        """Metered use per UTC day, enterprise and project (messages, points, API calls, points
        held): ``{"since", "until", "days": [...], "totals": [...]}``; days default to the last
        30 (``since``/``until`` are days, ``"2026-12-01"`` or a ``date``)."""
        return dict(
            self._call("GET", "/lab/usage", params=_usage_params(enterprise, project, since, until))
        )

    def lab_usage_csv(
        self,
        *,
        enterprise: str | Iterable[str] | None = None,
        project: str | Iterable[str] | None = None,
        since: str | date | None = None,
        until: str | date | None = None,
    ) -> str:
        """The same usage as CSV: one row per day, enterprise and project."""
        got = self._call(
            "GET", "/lab/usage.csv", params=_usage_params(enterprise, project, since, until)
        )
        return got.decode() if isinstance(got, bytes) else str(got)

    def lab_trends(
        self, *, window: str = "24h", enterprise: str | Iterable[str] | None = None
    ) -> dict[str, Any]:
        """Messages, points and alarms per hour over the last 24 h (``window="24h"``) or per day
        over 7 days (``"7d"``), per enterprise and in total; the last bucket is under way."""
        params = {"window": window, "enterprise": _joined(enterprise)}
        return dict(self._call("GET", "/lab/trends", params=params))

    def portfolio(self, project: str) -> dict[str, Any]:
        """A project's stage (idea, poc, pilot, production), owner and goals."""
        return dict(self._call("GET", f"/projects/{project}/portfolio"))

    def set_portfolio(
        self,
        project: str,
        *,
        stage: str | None = None,
        owner: str | None = None,
        goals: str | None = None,
        clear_owner: bool = False,
    ) -> dict[str, Any]:
        """Move a project to another stage, or set its owner or goals (operator)."""
        body = {"stage": stage, "owner": owner, "goals": goals, "clear_owner": clear_owner}
        return dict(self._call("PUT", f"/projects/{project}/portfolio", json=body))

    def lab_portfolio(
        self,
        *,
        enterprise: str | Iterable[str] | None = None,
        project: str | Iterable[str] | None = None,
        quarter: str | None = None,
    ) -> dict[str, Any]:
        """The funnel (projects per stage) and every project's stage and outcomes over the
        quarter (``"2026Q4"``; default the current one): alarms raised and judged, failures,
        failures an alarm announced, telemetry stored."""
        params = {
            "enterprise": _joined(enterprise),
            "project": _joined(project),
            "quarter": quarter,
        }
        return dict(self._call("GET", "/lab/portfolio", params=params))

    def lab_report_csv(
        self, *, enterprise: str | Iterable[str] | None = None, quarter: str | None = None
    ) -> str:
        """The quarterly lab report, one row per project, as CSV."""
        params = {"enterprise": _joined(enterprise), "quarter": quarter}
        got = self._call("GET", "/lab/report.csv", params=params)
        return got.decode() if isinstance(got, bytes) else str(got)

    def lab_report_pdf(
        self, *, enterprise: str | Iterable[str] | None = None, quarter: str | None = None
    ) -> bytes:
        """The quarterly lab report as a PDF (the funnel, outcomes, one line per project)."""
        params = {"enterprise": _joined(enterprise), "quarter": quarter}
        got = self._call("GET", "/lab/report.pdf", params=params)
        return got if isinstance(got, bytes) else str(got).encode()

    def _bulk(self, got: dict[str, Any]) -> BulkResult:
        return BulkResult(
            tuple(int(i) for i in got["done"]),
            tuple((int(s["id"]), str(s["reason"])) for s in got["skipped"]),
        )

    def ack_alarms(self, ids: Iterable[int], comment: str | None = None) -> BulkResult:
        """Acknowledge many alarms at once (1-1000); each audited in its own tenant."""
        body = {"ids": list(ids), "comment": comment}
        return self._bulk(self._call("POST", "/lab/alarms/ack", json=body))

    def clear_alarms(self, ids: Iterable[int], comment: str | None = None) -> BulkResult:
        """Clear many alarms at once (1-1000); each audited in its own tenant."""
        body = {"ids": list(ids), "comment": comment}
        return self._bulk(self._call("POST", "/lab/alarms/clear", json=body))


def _usage_params(
    enterprise: str | Iterable[str] | None,
    project: str | Iterable[str] | None,
    since: str | date | None,
    until: str | date | None,
) -> dict[str, Any]:
    return {
        "enterprise": _joined(enterprise),
        "project": _joined(project),
        "since": None if since is None else str(since),
        "until": None if until is None else str(until),
    }
