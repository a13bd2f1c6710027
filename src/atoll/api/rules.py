"""Rules, notification channels and scheduled reports of a project (the rules service's API).

The service is ``ctx.rules``: ``atoll up`` starts it (``atoll.rules.service.create_service``)
and puts it there; without it these routes answer 503. Rule bodies are checked by the rules
package itself, so errors name the field: ``condition.threshold.value: Field required``. Times
in answers are ISO-8601 UTC.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import Response

from atoll.api.context import ApiContext, RulesPort
from atoll.api.deps import Ctx, Operator, Viewer, audit
from atoll.api.schemas import MAX_DB_INT
from atoll.core.errors import InvalidInput, NotFound, Unavailable
from atoll.registry import Principal
from atoll.registry.namespaces import prefix, qualify_id
from atoll.rules.channels import channel_types
from atoll.rules.loading import RuleFile, validate
from atoll.rules.model import LOCAL_ID, MAX_ID, ChannelSpec, Rule
from atoll.rules.reports import ReportSpec

router = APIRouter(tags=["rules"])

RULE_EXAMPLE = {
    "name": "Boiler too hot",
    "severity": "major",
    "target": {"device_type": "boiler"},
    "condition": {
        "type": "threshold",
        "metric": "temperature",
        "op": ">",
        "value": 90,
        "clear": 85,
        "for": "1m",
    },
    "notify": {"channels": ["ops"], "repeat_every": "15m"},
    "escalation": [{"after": "10m", "severity": "critical"}],
}


def service(ctx: ApiContext) -> RulesPort:
    svc = ctx.rules
    if svc is None:
        raise Unavailable(
            "the rules service is not running in this process",
            hint="start Atoll with `atoll up`, which runs it",
        )
    return svc


def tenant_of(who: Principal) -> str | None:
    # Like every REST call: the platform admin's data calls are scoped to its own tenant too.
    return who.tenant


def check_project(ctx: Any, who: Principal, project: str) -> str:
    """404 unless the caller's tenant owns ``project``; answers the owning tenant."""
    return ctx.registry.get_project(project, tenant_of(who)).tenant


def chosen_id(kind: str, tenant: str, value: str) -> str:
    """A rule or report id chosen in ``tenant`` as stored: in the tenant's namespace, like
    project and device ids, so "already exists" never names another tenant's rule."""
    return qualify_id(
        kind,
        tenant,
        value,
        valid=lambda v: bool(LOCAL_ID.match(v)),
        max_len=MAX_ID,
        hint="use 1-128 characters: letters, digits, '.', '-' or '_', "
        "starting with a letter or digit",
    )


def _auto_id(tenant: str, rule: Rule) -> Rule:
    """A rule id made from the name, in the tenant's namespace, leaving room for a '-N'."""
    head = prefix(tenant)
    assert rule.id is not None  # a validated Rule always has one (from its name)
    return rule.model_copy(update={"id": head + rule.id[: MAX_ID - 8 - len(head)]})


def _in_namespace(tenant: str, doc: RuleFile) -> RuleFile:
    rules = []
    for r in doc.rules:
        assert r.id is not None  # a validated Rule always has one (from its name)
        rules.append(r.model_copy(update={"id": chosen_id("rule", tenant, r.id)}))
    return RuleFile(rules=rules, channels=doc.channels)


READ_ONLY = ("devices", "state")  # what GET adds to a rule; a client may send it back


def _with_project(body: Any, project: str) -> dict:
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object")
    if body.get("project", project) != project:
        raise InvalidInput(
            f"project: the body says {body['project']!r} but the URL says {project!r}"
        )
    return {**{k: v for k, v in body.items() if k not in READ_ONLY}, "project": project}


def _check_devices(ctx: Any, who: Principal, rule: Rule) -> None:
    """Named devices must exist in the rule's project (a typo would otherwise never alarm)."""
    names = [("target.device", rule.target.device)] if rule.target.device else []
    names += [(f"target.devices[{i}]", d) for i, d in enumerate(rule.target.devices or [])]

    def leaves(cond, where):
        if getattr(cond, "device", None):
            names.append((f"{where}.device", cond.device))
        for i, child in enumerate(getattr(cond, "conditions", None) or []):
            leaves(child, f"{where}.conditions[{i}]")

    leaves(rule.condition, "condition")
    for where, device in names:
        try:
            found = ctx.registry.get_device(device, tenant_of(who))
        except NotFound:
            found = None
        if found is None or found.project != rule.project:
            raise InvalidInput(
                f"{where}: project {rule.project!r} has no device {device!r}",
                hint="register the device first, or target a device_type",
            )


# ------------------------------------------------------------------ rules


@router.get("/projects/{project}/rules", summary="List the rules of a project")
def list_rules(project: str, who: Viewer, ctx: Ctx) -> list[dict]:
    check_project(ctx, who, project)
    return [r.dump() for r in service(ctx).list_rules(project)]


@router.post("/projects/{project}/rules", status_code=201, summary="Create a rule")
async def create_rule(
    project: str, who: Operator, ctx: Ctx, body: Any = Body(..., examples=[RULE_EXAMPLE])
) -> dict:
    """Body: a rule (see docs/RULES.md). Without ``id``, one is made from the name. An id chosen
    in a tenant other than ``default`` is stored in its namespace: ``acme~boiler-hot``."""
    tenant = check_project(ctx, who, project)
    svc = service(ctx)
    rule = svc.validate_rule(_with_project(body, project))
    auto = "id" not in body
    assert rule.id is not None  # a validated Rule always has one (from its name)
    rule = (
        _auto_id(tenant, rule)
        if auto
        else rule.model_copy(update={"id": chosen_id("rule", tenant, rule.id)})
    )
    _check_devices(ctx, who, rule)
    rule = await svc.create_rule(rule, auto_id=auto)
    audit(ctx, who, "rule.create", f"rule:{rule.id}", {"project": project})
    return rule.dump()


@router.post("/projects/{project}/rules/validate", summary="Check a rule without saving it")
def validate_rule(
    project: str, who: Viewer, ctx: Ctx, body: Any = Body(..., examples=[RULE_EXAMPLE])
) -> dict:
    """Always 200 for a well-formed request: ``{"valid": true, "rule": {...normalised},
    "warnings": [...]}`` (``undeclared``) or
    ``{"valid": false, "error": {"error", "message", "hint"?}}`` for the rule editor."""
    check_project(ctx, who, project)
    try:
        rule = service(ctx).validate_rule(_with_project(body, project))
        _check_devices(ctx, who, rule)
    except InvalidInput as exc:
        return {"valid": False, "error": exc.to_dict()}
    return {"valid": True, "rule": rule.dump(), "warnings": undeclared(ctx, who, rule)}


def undeclared(ctx: Any, who: Principal, rule: Rule) -> list[str]:
    """What a valid rule names that its project does not declare: a device type no type of
    the project has, a metric its target's device types do not declare (a typo that would
    never alarm; saving is still allowed: the type may be declared later)."""
    types = {t.id: t for t in ctx.registry.list_device_types(rule.project, tenant_of(who))}
    out: list[str] = []
    target = rule.target
    named: list[str | None] = []
    if target.device_type is not None:
        if target.device_type not in types:
            out.append(
                f"target.device_type: {target.device_type!r} is not a device type of this project"
                + (f" (it has {', '.join(sorted(types))})" if types else " (it declares none)")
            )
            return out
        named = [target.device_type]
    else:
        for d in [target.device] if target.device else (target.devices or []):
            try:
                named.append(ctx.registry.get_device(d, tenant_of(who)).device_type)
            except NotFound:
                named.append(None)
    declared: set[str] = set()
    for name in named:
        if name is None or name not in types or not types[name].metrics:
            return out  # an untyped device, or a type that declares no metrics: anything goes
        declared |= {m.name for m in types[name].metrics}

    def leaves(cond: Any, where: str) -> None:
        metric = getattr(cond, "metric", None)
        if metric and metric not in declared and metric.partition(".")[0] not in declared:
            out.append(
                f"{where}.metric: {metric!r} is not declared by {', '.join(map(str, named))}"
                f" (declared: {', '.join(sorted(declared))})"
            )
        for i, child in enumerate(getattr(cond, "conditions", None) or []):
            leaves(child, f"{where}.conditions[{i}]")

    leaves(rule.condition, "condition")
    return out


@router.post("/projects/{project}/rules/backtest", summary="What a rule would have raised")
async def backtest_rule(
    project: str,
    who: Viewer,
    ctx: Ctx,
    start: str = Query("-7d", description="ISO-8601, epoch ms, or '-7d'"),
    end: str = Query("now"),
    rule: str | None = Query(None, description="a saved rule's id (else the body)"),
    max_devices: int = Query(100, ge=1, le=1000),
    body: Any = Body(None, examples=[RULE_EXAMPLE]),
) -> dict:
    """Replays the stored history of the series the rule reads (no alarm, no notification).
    Answers ``{"episodes": [{"device", "raised_at", "cleared_at", "value", "detail"}], ...}``."""
    from starlette.concurrency import run_in_threadpool

    from atoll.api.schemas import iso
    from atoll.api.times import parse_time
    from atoll.rules.backtest import backtest

    check_project(ctx, who, project)
    svc = service(ctx)
    if rule is not None:
        spec = svc.get_rule(rule)
        if spec.project != project:
            raise NotFound(f"rule {rule!r} not found")
    else:
        spec = svc.validate_rule(_with_project(body, project))
    now = svc.clock.now_us()
    t0, t1 = parse_time(start, now), parse_time(end, now)
    devices = spec.target.explicit()
    if devices is None:
        directory = svc.engine.directory
        devices = directory.devices(project, spec.target.device_type) if directory else []
    result = await run_in_threadpool(backtest, spec, devices[:max_devices], ctx.store, t0, t1)
    return {
        "rule": spec.dump(),
        "start": iso(t0),
        "end": iso(t1),
        "devices": devices[:max_devices],
        "devices_truncated": len(devices) > max_devices,
        "points": result.points,
        "points_truncated": result.truncated,
        "episodes": [
            {
                "device": e.device,
                "raised_at": iso(e.raised_at),
                "cleared_at": iso(e.cleared_at),
                "value": e.value,
                "detail": e.detail,
            }
            for e in result.episodes
        ],
    }


def prepare_import(ctx: Any, who: Principal, project: str, tenant: str, doc: RuleFile) -> RuleFile:
    """A parsed rules file checked for ``project`` (its devices and channels exist), with its
    ids in the tenant's namespace: what ``RulesPort.apply`` then creates or replaces."""
    svc = service(ctx)
    items: list[Rule | ChannelSpec] = [*doc.rules, *doc.channels]
    for item in items:
        if item.project != project:
            raise InvalidInput(
                f"project: the file names {item.project!r} but the URL says {project!r}"
            )
    for rule in doc.rules:
        _check_devices(ctx, who, rule)
    known = {c.name for c in svc.repo.list_channels(project)} | {c.name for c in doc.channels}
    for rule in doc.rules:
        svc.check_channels(rule, known)
    return _in_namespace(tenant, doc)  # the file's ids, as this tenant's


@router.post("/projects/{project}/rules/import", summary="Apply a YAML rules file")
async def import_rules(project: str, request: Request, who: Operator, ctx: Ctx) -> dict:
    """Body: YAML (``rules:`` and optional ``channels:``). Rules and channels with the same id
    or name are replaced; the rest of the project is left alone."""
    tenant = check_project(ctx, who, project)
    text = (await request.body()).decode("utf-8", "replace")
    svc = service(ctx)
    from atoll.rules.loading import load_rule_file

    doc = prepare_import(ctx, who, project, tenant, load_rule_file(text, project=project))
    await svc.apply(doc)
    audit(ctx, who, "rule.import", f"project:{project}", {"rules": [r.id for r in doc.rules]})
    return {"rules": [r.id for r in doc.rules], "channels": [c.name for c in doc.channels]}


@router.get("/projects/{project}/rules/{rule_id}", summary="Get a rule")
def get_rule(project: str, rule_id: str, who: Viewer, ctx: Ctx) -> dict:
    check_project(ctx, who, project)
    rule = service(ctx).get_rule(rule_id)
    if rule.project != project:
        raise NotFound(f"rule {rule_id!r} not found")
    engine = service(ctx).engine
    devices = engine.devices(rule_id)
    # "state": per device, whether the condition holds now (null: no input yet).
    return {
        **rule.dump(),
        "devices": devices,
        "state": {d: engine.state(rule_id, d) for d in devices},
    }


@router.get(
    "/projects/{project}/rules/{rule_id}/forecasts",
    summary="Forecasts a rule's forecast conditions evaluated",
)
def rule_forecasts(
    project: str,
    rule_id: str,
    who: Viewer,
    ctx: Ctx,
    device: str | None = Query(None, description="only this device's"),
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict]:
    """Newest first: each forecast a ``forecast`` condition evaluated (``status`` ``crosses``
    or ``clear``) with its crossing times (µs), the series' last value and the model that made
    it (``model``; ``model_id``/``model_version`` name its registry record: ``GET
    .../models?ref=``), or why none was made (``skipped`` and ``reason``, e.g. too little
    history). ``GET .../rules/{rule_id}/forecasts/{id}`` adds the path."""
    check_project(ctx, who, project)
    rule = service(ctx).get_rule(rule_id)
    if rule.project != project:
        raise NotFound(f"rule {rule_id!r} not found")
    return service(ctx).forecasts.list(rule_id, device=device, limit=limit)


@router.get(
    "/projects/{project}/rules/{rule_id}/forecasts/{forecast_id}",
    summary="One stored forecast, with its path",
)
def rule_forecast(project: str, rule_id: str, forecast_id: int, who: Viewer, ctx: Ctx) -> dict:
    """The forecast as listed, with ``path``: ``ts`` (µs), ``mean``, ``lo`` and ``hi``."""
    check_project(ctx, who, project)
    got = service(ctx).forecasts.get(forecast_id)
    if got is None or got["rule_id"] != rule_id or got["project"] != project:
        raise NotFound(f"forecast {forecast_id} of rule {rule_id!r} not found")
    return got


@router.put("/projects/{project}/rules/{rule_id}", summary="Create or replace a rule")
async def put_rule(
    project: str,
    rule_id: str,
    who: Operator,
    ctx: Ctx,
    body: Any = Body(..., examples=[RULE_EXAMPLE]),
) -> dict:
    """Creates with the URL's id (in the tenant's namespace, like POST) or replaces."""
    tenant = check_project(ctx, who, project)
    body = _with_project(body, project)
    stored = chosen_id("rule", tenant, rule_id)
    if "id" in body and (
        not isinstance(body["id"], str) or chosen_id("rule", tenant, body["id"]) != stored
    ):
        raise InvalidInput(f"id: the body says {body['id']!r} but the URL says {rule_id!r}")
    svc = service(ctx)
    rule = svc.validate_rule({**body, "id": stored})
    _check_devices(ctx, who, rule)
    rule = await svc.put_rule(rule)
    audit(ctx, who, "rule.put", f"rule:{rule.id}", {"project": project})
    return rule.dump()


@router.patch("/projects/{project}/rules/{rule_id}", summary="Change some fields of a rule")
async def patch_rule(
    project: str,
    rule_id: str,
    who: Operator,
    ctx: Ctx,
    body: Any = Body(..., examples=[{"enabled": False}]),
) -> dict:
    """Top-level fields replace the rule's (``{"enabled": false}`` pauses it and clears its
    open alarms; ``{"severity": "critical"}``)."""
    check_project(ctx, who, project)
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object of fields to change")
    for key in ("id", "project"):
        if key in body:
            raise InvalidInput(f"{key}: cannot be changed")
    svc = service(ctx)
    current = svc.get_rule(rule_id)
    if current.project != project:
        raise NotFound(f"rule {rule_id!r} not found")
    rule = svc.validate_rule(_with_project({**current.dump(), **body}, project))
    _check_devices(ctx, who, rule)
    rule = await svc.put_rule(rule)
    audit(ctx, who, "rule.patch", f"rule:{rule_id}", {"fields": sorted(body)})
    return rule.dump()


@router.delete("/projects/{project}/rules/{rule_id}", status_code=204, summary="Delete a rule")
async def delete_rule(project: str, rule_id: str, who: Operator, ctx: Ctx) -> Response:
    """Open alarms of the rule are cleared (by ``system``, "rule deleted")."""
    check_project(ctx, who, project)
    svc = service(ctx)
    if svc.get_rule(rule_id).project != project:
        raise NotFound(f"rule {rule_id!r} not found")
    await svc.delete_rule(rule_id)
    audit(ctx, who, "rule.delete", f"rule:{rule_id}", {"project": project})
    return Response(status_code=204)


# ------------------------------------------------------------------ channels


@router.get("/channel-types", summary="Notification channel types (built in and plug-ins)")
def list_channel_types(who: Viewer) -> list[dict]:
    return [
        {"type": ct.name, "description": ct.description, "config": ct.config.model_json_schema()}
        for ct in channel_types().values()
    ]


def _redacted(spec: ChannelSpec) -> dict:
    out = spec.model_dump()
    cfg = dict(out["config"])
    if cfg.get("secret"):
        cfg["secret"] = "***"
    if isinstance(cfg.get("headers"), dict):
        cfg["headers"] = {k: "***" for k in cfg["headers"]}
    out["config"] = cfg
    return out


@router.get("/projects/{project}/channels", summary="List notification channels")
def list_channels(project: str, who: Viewer, ctx: Ctx) -> list[dict]:
    """Viewers see secrets and header values as ``***``; operators see them in full."""
    check_project(ctx, who, project)
    specs = service(ctx).repo.list_channels(project)
    return [c.model_dump() if who.can("operator") else _redacted(c) for c in specs]


@router.put("/projects/{project}/channels/{name}", summary="Create or replace a channel")
def put_channel(
    project: str,
    name: str,
    who: Operator,
    ctx: Ctx,
    body: Any = Body(
        ..., examples=[{"type": "webhook", "config": {"url": "https://example.test/hook"}}]
    ),
) -> dict:
    check_project(ctx, who, project)
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object with 'type' and 'config'")
    spec = validate(
        ChannelSpec, {"config": {}, **body, "name": name, "project": project}, f"channels.{name}"
    )
    service(ctx).put_channel(spec)
    audit(ctx, who, "channel.put", f"channel:{project}/{name}", {"type": spec.type})
    return spec.model_dump()


@router.delete("/projects/{project}/channels/{name}", status_code=204, summary="Delete a channel")
def delete_channel(project: str, name: str, who: Operator, ctx: Ctx) -> Response:
    check_project(ctx, who, project)
    service(ctx).delete_channel(project, name)
    audit(ctx, who, "channel.delete", f"channel:{project}/{name}")
    return Response(status_code=204)


@router.post("/projects/{project}/channels/{name}/test", summary="Send a test notification")
async def test_channel(project: str, name: str, who: Operator, ctx: Ctx) -> dict:
    check_project(ctx, who, project)
    return await service(ctx).test_channel(project, name)


@router.get("/projects/{project}/deliveries", summary="Notification delivery log")
def deliveries(
    project: str,
    who: Viewer,
    ctx: Ctx,
    alarm: int | None = Query(None, ge=-MAX_DB_INT, le=MAX_DB_INT),
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict]:
    check_project(ctx, who, project)
    from atoll.api.schemas import iso

    rows = service(ctx).notifier.deliveries(project, alarm_id=alarm, limit=limit)
    return [{**r, "ts": iso(r["ts"])} for r in rows]


# ------------------------------------------------------------------ reports


@router.get("/projects/{project}/reports", summary="List scheduled reports")
def list_reports(project: str, who: Viewer, ctx: Ctx) -> list[dict]:
    check_project(ctx, who, project)
    return [r.model_dump(mode="json") for r in service(ctx).reports.list(project)]


@router.put(
    "/projects/{project}/reports/{report_id}", summary="Create or replace a scheduled report"
)
def put_report(
    project: str,
    report_id: str,
    who: Operator,
    ctx: Ctx,
    body: Any = Body(
        ...,
        examples=[
            {
                "name": "Daily",
                "cron": "0 7 * * *",
                "timezone": "Europe/Paris",
                "period": "1d",
                "bucket": "1h",
                "series": [{"device": "boiler-1", "metric": "temperature"}],
                "format": "pdf",
                "channels": ["ops"],
            }
        ],
    ),
) -> dict:
    """The report's id is the URL's, in the tenant's namespace like a rule's."""
    tenant = check_project(ctx, who, project)
    report_id = chosen_id("report", tenant, report_id)
    spec = validate(ReportSpec, {**_with_project(body, project), "id": report_id}, "report")
    service(ctx).reports.put(spec)
    audit(ctx, who, "report.put", f"report:{report_id}", {"project": project})
    return spec.model_dump(mode="json")


def _report(ctx: Any, project: str, report_id: str) -> ReportSpec:
    spec = service(ctx).reports.get(report_id)
    if spec.project != project:
        raise NotFound(f"report {report_id!r} not found")
    return spec


@router.delete(
    "/projects/{project}/reports/{report_id}", status_code=204, summary="Delete a report"
)
def delete_report(project: str, report_id: str, who: Operator, ctx: Ctx) -> Response:
    check_project(ctx, who, project)
    _report(ctx, project, report_id)
    service(ctx).reports.delete(report_id)
    return Response(status_code=204)


@router.post("/projects/{project}/reports/{report_id}/run", summary="Run a report now")
async def run_report(
    project: str,
    report_id: str,
    who: Operator,
    ctx: Ctx,
    download: bool = Query(False, description="answer with the file instead of sending it"),
):
    """Builds the report for the period ending now and sends it through its channels; with
    ``download=true`` the (first) file comes back in the answer and nothing is sent."""
    check_project(ctx, who, project)
    spec = _report(ctx, project, report_id)
    svc = service(ctx)
    if download:
        from atoll.rules.reports import build_report

        now = svc.clock.now_us()
        files = build_report(spec, svc.store, svc.db, now - int(spec.period * 1e6), now)
        f = files[0]
        return Response(
            f.content,
            media_type=f.mime,
            headers={"Content-Disposition": f'attachment; filename="{f.filename}"'},
        )
    if not spec.channels:
        raise InvalidInput(
            f"report {report_id!r} has no channel to send it to",
            hint="download it (download=true), or add a channel to the report",
        )
    files = await svc.reports.run(spec)
    return {
        "sent_to": spec.channels,
        "files": [{"filename": f.filename, "bytes": len(f.content)} for f in files],
    }
