"""The model registry: every fitted model is a versioned record with a lifecycle.

A model is a ``kind`` (``detector``, ``rul``, ``forecaster``) fitted for a ``scope`` of a
project: a device type (``type:<id>``) or one series (``series:<device>/<metric>``). Each
registration is the next ``version`` of that kind and scope, with what it was trained on, its
parameters, validation metrics, code version and model card. Its ``state`` moves:

    draft ──approve──▶ approved ──activate──▶ active ──retire──▶ retired
      └──retire──▶ retired      └──retire──▶ retired    ▲           │
                                                       └─activate──┘ (if it was approved)

At most one version of a kind and scope is active: activating one retires the active one
(``rollback`` of the active one activates the newest earlier approved version). The
``active_slot`` column's unique constraint holds this line on every database, so two API nodes
activating at once cannot both win; the loser's transaction fails and is tried again.

Detectors are fitted and put to work by the detection service itself: their records arrive
here already ``active`` (approved by ``system``), one per version the service fits, and only the
service changes them (a refit or an accepted new normal makes the next version): activating an
older one here would say something the service does not do.

>>> allowed("draft", approved=False)
['approve', 'retire']
>>> allowed("active", approved=True, kind="detector")
[]
>>> allowed("retired", approved=True), allowed("retired", approved=False)
(['activate'], [])
>>> parse_scope("series:pump-1/temp"), parse_scope("type:motor")
(('series', 'pump-1', 'temp'), ('type', 'motor', None))
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

import msgspec
from sqlalchemy import Connection, and_, bindparam, insert, select, update

from atoll import __version__
from atoll.core.errors import Conflict, InvalidInput, NotFound
from atoll.core.lineage import ModelRecord, ModelRef
from atoll.registry import audit as _audit
from atoll.registry import tables as t
from atoll.registry.models import MODEL_KINDS, MODEL_STATES, ModelVersion
from atoll.registry.tokens import new_id, now_us

#: Actions, and the state each leads to; ``allowed`` says which a state permits.
ACTIONS = ("approve", "activate", "retire", "rollback")
MAX_CARD_BYTES = 200_000
SCOPE_HINT = "scope is 'type:<device type>' or 'series:<device>/<metric>'"
_TYPE = re.compile(r"^type:([A-Za-z0-9][A-Za-z0-9_~.-]{0,99})$")
_SERIES = re.compile(r"^series:([A-Za-z0-9][A-Za-z0-9_~.-]{0,99})/([^\s/]{1,190})$")
#: Who approves what the platform fits and activates by itself (docs/MODELS.md).
SYSTEM = "system"


def allowed(state: str, *, approved: bool, kind: str = "rul") -> list[str]:
    """The actions a model in ``state`` permits (``approved``: it was approved once)."""
    if kind == "detector":
        return []
    if state == "draft":
        return ["approve", "retire"]
    if state == "approved":
        return ["activate", "retire"]
    if state == "active":
        return ["retire", "rollback"]
    return ["activate"] if approved else []


def parse_scope(scope: str) -> tuple[str, str, str | None]:
    """``("type", device type, None)`` or ``("series", device, metric)``."""
    if m := _TYPE.match(scope):
        return "type", m.group(1), None
    if m := _SERIES.match(scope):
        return "series", m.group(1), m.group(2)
    raise InvalidInput(f"invalid model scope {scope!r}", hint=SCOPE_HINT)


def plain_json(value: Any) -> Any:
    """``value`` as plain JSON (non-finite numbers become ``null``; PostgreSQL's JSON refuses
    ``NaN``), or ``InvalidInput`` when it is not JSON at all."""
    try:
        return msgspec.json.decode(msgspec.json.encode(value, enc_hook=_enc))
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidInput(f"not JSON: {exc}") from None


def _enc(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON")


def _model(row: Any) -> ModelVersion:
    return ModelVersion(
        id=row.id,
        tenant=row.tenant,
        project=row.project,
        kind=row.kind,
        scope=row.scope,
        version=row.version,
        state=row.state,
        algorithm=row.algorithm,
        code_version=row.code_version,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        params=row.params or {},
        metrics=row.metrics or {},
        card=row.card or {},
        ref=row.ref,
        data_from=row.data_from,
        data_to=row.data_to,
        rows=row.rows,
        approved_by=row.approved_by,
        approved_at=row.approved_at,
        activated_at=row.activated_at,
        retired_at=row.retired_at,
    )


def _slot(project: str, kind: str, scope: str) -> str:
    return f"{project}|{kind}|{scope}"


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in MODEL_KINDS:
        raise InvalidInput(f"unknown model kind {kind!r}", hint=f"one of {', '.join(MODEL_KINDS)}")


def _next_version(conn: Connection, project: str, kind: str, scope: str) -> int:
    m = t.models.c
    last = conn.execute(
        select(m.version)
        .where(and_(m.project == project, m.kind == kind, m.scope == scope))
        .order_by(m.version.desc())
        .limit(1)
    ).scalar()
    return 1 if last is None else int(last) + 1


def register(
    conn: Connection,
    tenant: str,
    project: str,
    *,
    kind: str,
    scope: str,
    actor: str,
    algorithm: str,
    code_version: str,
    card: dict[str, Any],
    params: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    data_from: int | None = None,
    data_to: int | None = None,
    rows: int | None = None,
) -> ModelVersion:
    """The next version of ``kind`` for ``scope``, as a draft."""
    _check_kind(kind)
    parse_scope(scope)
    if data_from is not None and data_to is not None and data_from > data_to:
        raise InvalidInput("data_from is after data_to")
    if rows is not None and rows < 0:
        raise InvalidInput("rows must be >= 0")
    card, params, metrics = plain_json(card), plain_json(params or {}), plain_json(metrics or {})
    if len(json.dumps(card)) > MAX_CARD_BYTES:
        raise InvalidInput(f"the model card is larger than {MAX_CARD_BYTES} bytes")
    now = now_us()
    model_id = new_id("mdl-", 8)
    row = {
        "id": model_id,
        "tenant": tenant,
        "project": project,
        "kind": kind,
        "scope": scope,
        "version": _next_version(conn, project, kind, scope),
        "state": "draft",
        "algorithm": algorithm or kind,
        "code_version": code_version or "unknown",
        "params": params,
        "metrics": metrics,
        "card": card,
        "data_from": data_from,
        "data_to": data_to,
        "rows": rows,
        "created_by": actor,
        "created_at": now,
        "updated_at": now,
    }
    conn.execute(insert(t.models).values(**row))
    return get(conn, project, model_id)


def get(conn: Connection, project: str, model_id: str, *, lock: bool = False) -> ModelVersion:
    m = t.models.c
    q = select(t.models).where(and_(m.project == project, m.id == model_id))
    row = conn.execute(q.with_for_update() if lock else q).first()
    if row is None:
        raise NotFound(f"model {model_id!r} not found in project {project!r}")
    return _model(row)


def list_(
    conn: Connection,
    project: str,
    *,
    kind: str | None = None,
    scope: str | None = None,
    state: str | None = None,
    ref: str | None = None,
    limit: int = 500,
) -> list[ModelVersion]:
    """Newest change first."""
    _check_kind(kind)
    if state is not None and state not in MODEL_STATES:
        raise InvalidInput(f"unknown state {state!r}", hint=f"one of {', '.join(MODEL_STATES)}")
    m = t.models.c
    q = select(t.models).where(m.project == project)
    for col, value in ((m.kind, kind), (m.scope, scope), (m.state, state), (m.ref, ref)):
        if value is not None:
            q = q.where(col == value)
    rows = conn.execute(q.order_by(m.updated_at.desc(), m.id).limit(limit)).all()
    return [_model(r) for r in rows]


def versions(conn: Connection, project: str, kind: str, scope: str) -> list[ModelVersion]:
    """Every version of ``kind`` for ``scope``, newest first."""
    m = t.models.c
    rows = conn.execute(
        select(t.models)
        .where(and_(m.project == project, m.kind == kind, m.scope == scope))
        .order_by(m.version.desc())
    ).all()
    return [_model(r) for r in rows]


def change(
    conn: Connection, project: str, model_id: str, action: str, actor: str
) -> tuple[ModelVersion, list[str]]:
    """Apply ``action`` to a model: the model it leaves active (or changed), and the ids of
    the versions it retired. ``Conflict`` (409) names the actions allowed instead."""
    if action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}", hint=f"one of {', '.join(ACTIONS)}")
    model = get(conn, project, model_id, lock=True)
    ok = allowed(model.state, approved=model.approved_at is not None, kind=model.kind)
    if action not in ok:
        raise Conflict(
            f"model {model.id} ({model.kind} {model.scope} v{model.version}) is {model.state}: "
            f"it cannot {action}",
            hint=f"allowed: {', '.join(ok)}" if ok else _final_hint(model),
        )
    now = now_us()
    if action == "approve":
        _set(conn, model, state="approved", approved_by=actor, approved_at=now, updated_at=now)
        return get(conn, project, model_id), []
    if action == "retire":
        _set(conn, model, state="retired", active_slot=None, retired_at=now, updated_at=now)
        return get(conn, project, model_id), []
    target = model
    if action == "rollback":
        target = _previous(conn, model)
    retired = _retire_active(conn, target, now)
    _set(
        conn,
        target,
        state="active",
        active_slot=_slot(target.project, target.kind, target.scope),
        activated_at=now,
        retired_at=None,
        updated_at=now,
    )
    return get(conn, project, target.id), retired


def _final_hint(model: ModelVersion) -> str:
    if model.kind == "detector":
        return (
            "the detection service fits and activates detectors itself: refit or accept a new "
            "normal (POST /projects/{p}/devices/{d}/detection/refit|accept) for a new version"
        )
    return "a retired draft stays retired"


def _previous(conn: Connection, active: ModelVersion) -> ModelVersion:
    for v in versions(conn, active.project, active.kind, active.scope):
        if v.version < active.version and v.approved_at is not None and v.state != "draft":
            return v
    raise Conflict(
        f"no earlier approved version of {active.kind} {active.scope} to roll back to",
        hint="retire it instead, or approve and activate another version",
    )


def _set(conn: Connection, model: ModelVersion, **values: Any) -> None:
    """Update ``model`` if it is still in the state it was read in (else ``Conflict``)."""
    m = t.models.c
    done = conn.execute(
        update(t.models).where(and_(m.id == model.id, m.state == model.state)).values(**values)
    )
    if done.rowcount != 1:
        raise Conflict(f"model {model.id} changed meanwhile", hint="read it again and retry")


def _retire_active(conn: Connection, target: ModelVersion, now: int) -> list[str]:
    m = t.models.c
    where = and_(
        m.project == target.project,
        m.kind == target.kind,
        m.scope == target.scope,
        m.state == "active",
        m.id != target.id,
    )
    ids = [r.id for r in conn.execute(select(m.id).where(where)).all()]
    if ids:
        conn.execute(
            update(t.models)
            .where(and_(where, m.id.in_(ids)))
            .values(state="retired", active_slot=None, retired_at=now, updated_at=now)
        )
    return ids


# -- what the detection service fits and installs ---------------------------------------------
#: Rows per statement when filing fitted models (``IN`` lists and executemany batches).
_FILE_CHUNK = 500


def record_fitted(conn: Connection, records: Iterable[ModelRecord]) -> int:
    """Keep detection's model records as active ``detector`` versions (the one active before
    is retired); a version already kept is updated in place. Records of projects the registry
    does not know are skipped. The number kept.

    A fleet's first minutes fit tens of thousands of series, so the records are filed a chunk
    at a time: a handful of statements per chunk (look up, update, retire, insert, audit), not
    five per record. Records of one series in one call are filed in their order, as if one by
    one: each retires the one before.
    """
    records = list(records)
    projects = sorted({r.project for r in records})
    tenants: dict[str, str] = {}
    for i in range(0, len(projects), _FILE_CHUNK):
        part = projects[i : i + _FILE_CHUNK]
        rows = conn.execute(
            select(t.projects.c.id, t.projects.c.tenant).where(t.projects.c.id.in_(part))
        ).all()
        tenants.update({row.id: row.tenant for row in rows})
    known = [r for r in records if r.project in tenants]
    # Rounds in which each series appears once, in the order of the records.
    rounds: list[list[ModelRecord]] = []
    seen: dict[tuple[str, str, str], int] = {}
    for r in known:
        k = (r.project, r.device, r.metric)
        n = seen[k] = seen.get(k, -1) + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(r)
    for batch in rounds:
        for i in range(0, len(batch), _FILE_CHUNK):
            _record_chunk(conn, tenants, batch[i : i + _FILE_CHUNK])
    return len(known)


def _record_chunk(conn: Connection, tenants: dict[str, str], chunk: list[ModelRecord]) -> None:
    """File records of distinct series (at most ``_FILE_CHUNK``)."""
    m = t.models.c
    now = now_us()

    def scope(r: ModelRecord) -> str:
        return f"series:{r.device}/{r.metric}"

    def values(r: ModelRecord) -> dict[str, Any]:
        return {
            "ref": r.id,
            "algorithm": r.detector,
            "data_from": r.history_from,
            "data_to": r.history_to,
            "rows": r.rows,
            "params": plain_json(r.params),
            "card": plain_json(msgspec.to_builtins(r)),
            "updated_at": now,
        }

    by_project: dict[str, list[ModelRecord]] = {}
    for r in chunk:
        by_project.setdefault(r.project, []).append(r)
    updates: list[dict[str, Any]] = []
    inserts: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    retire: list[str] = []
    for project, rs in by_project.items():
        tenant = tenants[project]
        scopes = [scope(r) for r in rs]
        kept = conn.execute(
            select(m.id, m.scope, m.version, m.state).where(
                and_(m.project == project, m.kind == "detector", m.scope.in_(scopes))
            )
        ).all()
        existing = {(row.scope, row.version): row.id for row in kept}
        active = {row.scope: row.id for row in kept if row.state == "active"}
        for r in rs:
            sc = scope(r)
            same = existing.get((sc, r.version))
            if same is not None:
                updates.append({"b_id": same, **{f"b_{k}": v for k, v in values(r).items()}})
                continue
            if sc in active:
                retire.append(active[sc])
            model_id = new_id("mdl-", 8)
            inserts.append(
                {
                    "id": model_id,
                    "tenant": tenant,
                    "project": project,
                    "kind": "detector",
                    "scope": sc,
                    "version": r.version,
                    "state": "active",
                    "active_slot": _slot(project, "detector", sc),
                    "metrics": {},
                    "code_version": __version__,
                    "created_by": r.actor or SYSTEM,
                    "created_at": r.fitted_at,
                    "approved_by": SYSTEM,
                    "approved_at": r.fitted_at,
                    "activated_at": now,
                    **values(r),
                }
            )
            detail = {"kind": "detector", "scope": sc, "version": r.version, "reason": r.reason}
            audits.append(
                {
                    "tenant": tenant,
                    "actor": r.actor or SYSTEM,
                    "action": "model.register",
                    "target": f"model:{model_id}",
                    "detail": detail,
                    "at": now,
                    "source": None,
                }
            )
    if updates:
        conn.execute(
            update(t.models)
            .where(m.id == bindparam("b_id"))
            .values({k[2:]: bindparam(k) for k in updates[0] if k != "b_id"}),
            updates,
        )
    if retire:
        conn.execute(
            update(t.models)
            .where(m.id.in_(retire))
            .values(state="retired", active_slot=None, retired_at=now, updated_at=now)
        )
    if inserts:
        conn.execute(insert(t.models), inserts)
        conn.execute(insert(t.audit_log), audits)


# -- what the rules service forecasts with ----------------------------------------------------
def forecaster_ref(project: str, device: str, metric: str, version: int) -> str:
    """The ``ref`` of a series' forecaster version, what its stored forecasts carry."""
    return f"{project}/{device}/{metric}/forecaster@{version}"


def file_forecaster(
    conn: Connection, project: str, device: str, metric: str, algorithm: str, params: dict
) -> ModelRef | None:
    """The active ``forecaster`` version of the series if it has ``algorithm``, ``params`` and
    this code version; else the next version, filed active (approved by ``system``, the one
    active before retired). ``None`` for a project the registry does not know."""
    tenant = conn.execute(select(t.projects.c.tenant).where(t.projects.c.id == project)).scalar()
    if tenant is None:
        return None
    m = t.models.c
    scope = f"series:{device}/{metric}"
    params = plain_json(params)
    active = conn.execute(
        select(t.models).where(
            and_(
                m.project == project,
                m.kind == "forecaster",
                m.scope == scope,
                m.state == "active",
            )
        )
    ).first()
    if (
        active is not None
        and active.algorithm == algorithm
        and (active.params or {}) == params
        and active.code_version == __version__
        and active.ref is not None
    ):
        return ModelRef(active.ref, active.version)
    now = now_us()
    version = _next_version(conn, project, "forecaster", scope)
    model_id = new_id("mdl-", 8)
    ref = forecaster_ref(project, device, metric, version)
    target = ModelVersion(
        model_id, tenant, project, "forecaster", scope, version, "active", "", "", "", 0, 0
    )
    _retire_active(conn, target, now)
    card = {
        "kind": "forecaster",
        "series": {"device": device, "metric": metric},
        "algorithm": algorithm,
        "params": params,
        "code_version": __version__,
        "use": "fitted afresh on the series' recent history at each evaluation of a rule's "
        "forecast condition (docs/RULES.md)",
    }
    conn.execute(
        insert(t.models).values(
            id=model_id,
            tenant=tenant,
            project=project,
            kind="forecaster",
            scope=scope,
            version=version,
            state="active",
            active_slot=_slot(project, "forecaster", scope),
            ref=ref,
            algorithm=algorithm,
            params=params,
            metrics={},
            card=card,
            code_version=__version__,
            created_by=SYSTEM,
            created_at=now,
            approved_by=SYSTEM,
            approved_at=now,
            activated_at=now,
            updated_at=now,
        )
    )
    _audit.record(
        conn,
        tenant,
        SYSTEM,
        "model.register",
        f"model:{model_id}",
        {"kind": "forecaster", "scope": scope, "version": version, "reason": "rules"},
    )
    return ModelRef(ref, version)


# -- model cards ------------------------------------------------------------------------------
def card_json(model: ModelVersion) -> dict[str, Any]:
    """The card as exported: the registry's record around the trainer's own card."""
    from dataclasses import asdict

    doc = asdict(model)
    doc.pop("card")
    return {"registry": doc, "card": model.card}


def card_markdown(model: ModelVersion, iso: Any) -> str:
    """The card as Markdown; ``iso(µs) -> str`` writes the times."""
    lines = [
        f"# Model card: {model.kind} `{model.scope}` v{model.version}",
        "",
        "| field | value |",
        "|---|---|",
    ]

    def row(name: str, value: Any) -> None:
        if value is not None and value != "":
            text = str(value).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {name} | {text} |")

    row("Model id", f"`{model.id}`")
    row("Project", model.project)
    row("State", model.state)
    row("Algorithm", model.algorithm)
    row("Code version", model.code_version)
    row("Detector ref", model.ref and f"`{model.ref}`")
    row("Training data from", model.data_from and iso(model.data_from))
    row("Training data to", model.data_to and iso(model.data_to))
    row("Training rows", model.rows)
    row("Created by", model.created_by)
    row("Created at", iso(model.created_at))
    row("Approved by", model.approved_by)
    row("Approved at", model.approved_at and iso(model.approved_at))
    row("Activated at", model.activated_at and iso(model.activated_at))
    row("Retired at", model.retired_at and iso(model.retired_at))
    for title, section in (("Validation metrics", model.metrics), ("Parameters", model.params)):
        lines += ["", f"## {title}", ""]
        if not section:
            lines.append("(none recorded)")
        for k, v in section.items():
            lines.append(f"- **{k}**: {_short(v)}")
    lines += ["", "## Full card", "", "```json", json.dumps(model.card, indent=2), "```", ""]
    return "\n".join(lines)


def _short(v: Any) -> str:
    if isinstance(v, float) and math.isfinite(v):
        return f"{v:g}"
    return v if isinstance(v, str) else json.dumps(v)
