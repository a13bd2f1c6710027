"""Rules, notification channels and scheduled reports of a project (``Client``'s part).

Rule bodies keep the JSON shapes of docs/RULES.md (``target``, ``condition``…); the server checks
them and names the field at fault (``atoll.InvalidInput``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from atoll.client._http import Http, TimeLike, build, time_param
from atoll.core.errors import InvalidInput

_READ_ONLY = ("devices", "state")


@dataclass(frozen=True)
class Rule:
    """A rule as the server stores it. ``devices`` and ``state`` come with ``Client.rule`` only:
    the devices the rule watches, and per device whether its condition holds now (``None``: no
    input yet)."""

    id: str
    project: str
    name: str
    target: dict[str, Any]
    condition: dict[str, Any]
    severity: str = "major"
    enabled: bool = True
    description: str = ""
    schedule: dict[str, Any] | None = None
    notify: dict[str, Any] = field(default_factory=dict)
    escalation: list[dict[str, Any]] = field(default_factory=list)
    devices: list[str] | None = None
    state: dict[str, bool | None] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The body to send back (``create_rule``, ``put_rule``), without the read-only parts."""
        return {k: v for k, v in asdict(self).items() if k not in _READ_ONLY and v is not None}


@dataclass(frozen=True)
class ImportedRules:
    rules: list[str]  # ids created or replaced
    channels: list[str]


@dataclass(frozen=True)
class Episode:
    """One alarm a backtest would have raised."""

    device: str
    raised_at: datetime
    cleared_at: datetime | None
    value: float | None
    detail: str = ""


@dataclass(frozen=True)
class Backtest:
    rule: Rule
    start: datetime
    end: datetime
    devices: list[str]
    devices_truncated: bool
    points: int
    points_truncated: bool
    episodes: list[Episode]


@dataclass(frozen=True)
class RuleForecast:
    """One forecast a rule's ``forecast`` condition evaluated (times in µs since the epoch):
    ``status`` ``crosses``, ``clear`` or ``skipped`` (with ``reason``); ``model_id`` and
    ``model_version`` name the forecaster's registry record (``Client.models(p, ref=...)``);
    ``path`` (``ts``, ``mean``, ``lo``, ``hi``) only from ``rule_forecast``."""

    id: int
    project: str
    rule_id: str
    device: str
    metric: str
    evaluated_at: int
    status: str
    threshold: float
    direction: str
    horizon_us: int
    level: float
    reason: str | None = None
    crossing_ts: int | None = None
    earliest: int | None = None
    latest: int | None = None
    last_value: float | None = None
    step_us: int | None = None
    history_from: int | None = None
    history_to: int | None = None
    rows: int | None = None
    model: str | None = None
    model_id: str | None = None
    model_version: int | None = None
    seconds: float | None = None
    path: dict[str, list[float]] | None = None


@dataclass(frozen=True)
class ChannelType:
    type: str
    description: str
    config: dict[str, Any]  # JSON schema of the channel's config


@dataclass(frozen=True)
class Channel:
    """A notification channel; a viewer sees secrets and header values as ``***``."""

    name: str
    project: str
    type: str
    config: dict[str, Any]


@dataclass(frozen=True)
class Delivery:
    id: int
    ts: datetime
    project: str
    channel: str
    event: str
    ok: bool
    attempts: int
    alarm_id: int | None = None
    error: str | None = None
    status: str | None = None


@dataclass(frozen=True)
class ChannelTest:
    ok: bool
    delivery: Delivery | None


@dataclass(frozen=True)
class Report:
    """A scheduled report; ``period`` and ``bucket`` in seconds."""

    id: str
    project: str
    name: str
    cron: str
    channels: list[str]
    timezone: str = "UTC"
    period: float = 86400.0
    bucket: float = 3600.0
    aggs: list[str] = field(default_factory=lambda: ["min", "avg", "max"])
    series: list[dict[str, Any]] = field(default_factory=list)
    include_alarms: bool = True
    format: str = "csv"
    enabled: bool = True


@dataclass(frozen=True)
class ReportRun:
    sent_to: list[str]
    files: list[dict[str, Any]]  # {"filename", "bytes"}


RuleLike = Rule | Mapping[str, Any]


def _body(rule: RuleLike) -> dict[str, Any]:
    return rule.to_dict() if isinstance(rule, Rule) else dict(rule)


def _rule(d: Mapping[str, Any]) -> Rule:
    return build(Rule, d)


def _delivery(d: Mapping[str, Any]) -> Delivery:
    ts = d["ts"]
    if isinstance(ts, int):  # the test answer carries the stored epoch microseconds
        ts = datetime.fromtimestamp(ts / 1e6, UTC).isoformat()
    return build(Delivery, {**d, "ts": ts})


class RulesCalls(Http):
    # rules ----------------------------------------------------------------------------------------
    def rules(self, project: str) -> list[Rule]:
        return [_rule(r) for r in self._call("GET", f"/projects/{project}/rules")]

    def rule(self, project: str, rule_id: str) -> Rule:
        """The rule, with the devices it watches and their condition state."""
        return _rule(self._call("GET", f"/projects/{project}/rules/{rule_id}"))

    def create_rule(self, project: str, rule: RuleLike) -> Rule:
        """Without ``id``, one is made from the name; 409 if it is taken."""
        return _rule(self._call("POST", f"/projects/{project}/rules", json=_body(rule)))

    def put_rule(self, project: str, rule_id: str, rule: RuleLike) -> Rule:
        """Create or replace the rule ``rule_id``."""
        return _rule(self._call("PUT", f"/projects/{project}/rules/{rule_id}", json=_body(rule)))

    def update_rule(self, project: str, rule_id: str, **changes: Any) -> Rule:
        """Replace top-level fields, e.g. ``enabled=False``
        (pauses it and clears its open alarms)."""
        return _rule(self._call("PATCH", f"/projects/{project}/rules/{rule_id}", json=changes))

    def delete_rule(self, project: str, rule_id: str) -> None:
        """Its open alarms are cleared."""
        self._call("DELETE", f"/projects/{project}/rules/{rule_id}")

    def validate_rule(self, project: str, rule: RuleLike) -> Rule:
        """The rule as it would be saved, or ``InvalidInput`` naming the field; nothing is saved."""
        d = self._call("POST", f"/projects/{project}/rules/validate", json=_body(rule))
        if not d["valid"]:
            raise InvalidInput(d["error"]["message"], hint=d["error"].get("hint"))
        return _rule(d["rule"])

    def backtest_rule(
        self,
        project: str,
        rule: str | RuleLike,
        *,
        start: TimeLike = "-7d",
        end: TimeLike = "now",
        max_devices: int = 100,
    ) -> Backtest:
        """What ``rule`` (a saved rule's id, or a body) would have raised on the stored history
        between ``start`` and ``end``; no alarm, no notification."""
        params = {"start": time_param(start), "end": time_param(end), "max_devices": max_devices}
        if isinstance(rule, str):
            d = self._call(
                "POST", f"/projects/{project}/rules/backtest", params={**params, "rule": rule}
            )
        else:
            d = self._call(
                "POST", f"/projects/{project}/rules/backtest", params=params, json=_body(rule)
            )
        return build(
            Backtest,
            {**d, "rule": _rule(d["rule"]), "episodes": [build(Episode, e) for e in d["episodes"]]},
        )

    def rule_forecasts(
        self, project: str, rule_id: str, *, device: str | None = None, limit: int = 100
    ) -> list[RuleForecast]:
        """The forecasts the rule's ``forecast`` conditions evaluated, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if device is not None:
            params["device"] = device
        got = self._call("GET", f"/projects/{project}/rules/{rule_id}/forecasts", params=params)
        return [build(RuleForecast, d) for d in got]

    def rule_forecast(self, project: str, rule_id: str, forecast_id: int) -> RuleForecast:
        """One stored forecast, with its ``path``."""
        d = self._call("GET", f"/projects/{project}/rules/{rule_id}/forecasts/{forecast_id}")
        return build(RuleForecast, d)

    def import_rules(self, project: str, rules: str | Mapping[str, Any]) -> ImportedRules:
        """Apply a rules file (YAML text, or a dict with ``rules:`` and ``channels:``). Rules and
        channels with the same id or name are replaced; the rest of the project is left alone."""
        if not isinstance(rules, str):
            import yaml

            rules = yaml.safe_dump(dict(rules), allow_unicode=True, sort_keys=False)
        d = self._call(
            "POST",
            f"/projects/{project}/rules/import",
            content=rules.encode("utf-8"),
            headers={"Content-Type": "application/yaml"},
        )
        return ImportedRules(d["rules"], d["channels"])

    # channels -------------------------------------------------------------------------------------
    def channel_types(self) -> list[ChannelType]:
        """Built-in and plug-in notification channel types."""
        return [build(ChannelType, t) for t in self._call("GET", "/channel-types")]

    def channels(self, project: str) -> list[Channel]:
        return [build(Channel, c) for c in self._call("GET", f"/projects/{project}/channels")]

    def put_channel(
        self, project: str, name: str, type: str, config: Mapping[str, Any] | None = None
    ) -> Channel:
        """Create or replace a channel, e.g. ``put_channel("p", "ops", "webhook", {"url": …})``."""
        return build(
            Channel,
            self._call(
                "PUT",
                f"/projects/{project}/channels/{name}",
                json={"type": type, "config": dict(config or {})},
            ),
        )

    def delete_channel(self, project: str, name: str) -> None:
        self._call("DELETE", f"/projects/{project}/channels/{name}")

    def test_channel(self, project: str, name: str) -> ChannelTest:
        """Send a test notification now."""
        d = self._call("POST", f"/projects/{project}/channels/{name}/test")
        return ChannelTest(d["ok"], _delivery(d["delivery"]) if d["delivery"] else None)

    def deliveries(
        self, project: str, *, alarm: int | None = None, limit: int = 100
    ) -> list[Delivery]:
        """The notification delivery log, newest first."""
        return [
            _delivery(d)
            for d in self._call(
                "GET", f"/projects/{project}/deliveries", params={"alarm": alarm, "limit": limit}
            )
        ]

    # reports --------------------------------------------------------------------------------------
    def reports(self, project: str) -> list[Report]:
        return [build(Report, r) for r in self._call("GET", f"/projects/{project}/reports")]

    def put_report(
        self, project: str, report_id: str, report: Report | Mapping[str, Any]
    ) -> Report:
        """Create or replace a scheduled report (``name``, ``cron``, ``series``, ``channels``…)."""
        body = asdict(report) if isinstance(report, Report) else dict(report)
        return build(
            Report, self._call("PUT", f"/projects/{project}/reports/{report_id}", json=body)
        )

    def delete_report(self, project: str, report_id: str) -> None:
        self._call("DELETE", f"/projects/{project}/reports/{report_id}")

    def run_report(self, project: str, report_id: str) -> ReportRun:
        """Build the report for the period ending now and send it through its channels."""
        d = self._call("POST", f"/projects/{project}/reports/{report_id}/run")
        return ReportRun(d["sent_to"], d["files"])

    def download_report(self, project: str, report_id: str) -> bytes:
        """Build the report for the period ending now; its (first) file, nothing sent."""
        file: bytes = self._call(
            "POST", f"/projects/{project}/reports/{report_id}/run", params={"download": "true"}
        )
        return file
