"""The model registry (``Client``'s part; docs/API.md, "Model registry"): register fitted models,
approve, activate, retire and roll back versions, export model cards."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from atoll.client._http import Http, TimeLike, build, time_param
from atoll.core import errors


@dataclass(frozen=True)
class Model:
    """One version of a fitted model: ``kind`` (detector, rul, forecaster) for a ``scope``
    (``type:<device type>`` or ``series:<device>/<metric>``) and its lifecycle ``state``
    (draft, approved, active, retired); ``allowed`` the actions that state permits now."""

    id: str
    project: str
    kind: str
    scope: str
    version: int
    state: str
    algorithm: str
    code_version: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    allowed: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    ref: str | None = None
    data_from: datetime | None = None
    data_to: datetime | None = None
    rows: int | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    activated_at: datetime | None = None
    retired_at: datetime | None = None
    #: The model card (only when one model is read or registered).
    card: dict[str, Any] | None = None


@dataclass(frozen=True)
class ModelChange:
    """What a lifecycle action did: the model now active (rollback) or changed, and the ids of
    the versions it retired."""

    model: Model
    retired: list[str]


@dataclass(frozen=True)
class DueModel:
    id: str | None
    version: int


@dataclass(frozen=True)
class DueDevice:
    """A device's latest RUL estimate (``Client.maintenance_due``): hours, days and, when the
    model's cycle is known, cycles; ``at`` is the end of the last cycle judged."""

    device: str
    at: datetime
    rul_hours: float
    rul_lo_hours: float
    rul_hi_hours: float
    rul_days: float
    rul_lo_days: float
    device_type: str | None = None
    rul_cycles: float | None = None
    cycle_seconds: float | None = None
    model: DueModel | None = None


@dataclass(frozen=True)
class RulFitJob:
    """A fit of a device type's RUL model, off the request: ``state`` queued, running (with a
    ``progress`` line), done (``model``: the draft it filed) or failed (``error``: ``error``,
    ``message``, ``hint``); ``trigger`` api, schedule or failure (retraining), whose ``outcome``
    says whether the version was activated."""

    id: str
    project: str
    device_type: str
    state: str
    trigger: str
    cycle_seconds: float
    cap: float
    requested_by: str
    created_at: datetime
    since: datetime | None = None
    until: datetime | None = None
    progress: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    model: Model | None = None
    error: dict[str, Any] | None = None
    outcome: dict[str, Any] | None = None


@dataclass(frozen=True)
class RulConfig:
    """How a device type's RUL model is fitted and retrained (``Client.set_rul_config``):
    ``retrain`` holds ``every`` (``every_seconds``), ``on_failure`` and ``auto_activate``."""

    project: str
    device_type: str
    cycle_seconds: float
    cap: float
    retrain: dict[str, Any]
    updated_by: str
    updated_at: datetime
    last_fit: datetime | None = None


_FIT_ERRORS: dict[str, type[errors.AtollError]] = {
    "invalid_input": errors.InvalidInput,
    "not_found": errors.NotFound,
    "unavailable": errors.Unavailable,
}


def _fit_job(got: dict[str, Any]) -> RulFitJob:
    model = got.get("model")
    job = build(RulFitJob, {k: v for k, v in got.items() if k != "model"})
    return replace(job, model=build(Model, model)) if model else job


class ModelsCalls(Http):
    def start_rul_fit(
        self,
        project: str,
        device_type: str,
        *,
        cycle: str = "1h",
        since: TimeLike = None,
        until: TimeLike = None,
        cap: float = 125.0,
    ) -> RulFitJob:
        """Queue a fit of ``device_type``'s RUL model on the fleet's run-to-failure history
        (stored telemetry cut by ``failure`` maintenance records); the job, to poll with
        ``rul_fit``. ``cycle`` is the time bucket of one cycle."""
        body: dict[str, Any] = {"device_type": device_type, "cycle": cycle, "cap": cap}
        body.update({k: time_param(v) for k, v in (("since", since), ("until", until)) if v})
        return _fit_job(self._call("POST", f"/projects/{project}/rul/fit", json=body))

    def rul_fit(self, project: str, fit_id: str) -> RulFitJob:
        """A fit job: queued, running (``progress``), done (``model``) or failed (``error``)."""
        return _fit_job(self._call("GET", f"/projects/{project}/rul/fits/{fit_id}"))

    def rul_fits(
        self, project: str, *, device_type: str | None = None, limit: int | None = None
    ) -> list[RulFitJob]:
        """The project's fit jobs, newest first (retrainings included)."""
        params = {"device_type": device_type, "limit": limit}
        return [
            _fit_job(j) for j in self._call("GET", f"/projects/{project}/rul/fits", params=params)
        ]

    def set_rul_config(
        self,
        project: str,
        device_type: str,
        *,
        cycle: str = "1h",
        cap: float = 125.0,
        every: str | None = None,
        on_failure: bool = False,
        auto_activate: bool = False,
    ) -> RulConfig:
        """Set how ``device_type``'s RUL model is fitted and retrained: every ``every`` (e.g.
        ``"7d"``), when a failure is recorded (``on_failure``); a retrained version goes live by
        itself only with ``auto_activate`` and when its CV RMSE is not worse than the active
        one's."""
        body = {
            "cycle": cycle,
            "cap": cap,
            "retrain": {"every": every, "on_failure": on_failure, "auto_activate": auto_activate},
        }
        got = self._call("PUT", f"/projects/{project}/rul/config/{device_type}", json=body)
        return build(RulConfig, got)

    def rul_config(self, project: str, device_type: str) -> RulConfig:
        """``device_type``'s RUL configuration (``NotFound`` when none was set)."""
        return build(RulConfig, self._call("GET", f"/projects/{project}/rul/config/{device_type}"))

    def fit_rul(
        self,
        project: str,
        device_type: str,
        *,
        cycle: str = "1h",
        since: TimeLike = None,
        until: TimeLike = None,
        cap: float = 125.0,
        timeout: float = 900.0,
        on_progress: Callable[[RulFitJob], None] | None = None,
    ) -> Model:
        """Fit ``device_type``'s RUL model and wait for it (``start_rul_fit``, then ``rul_fit``
        until it ends; ``on_progress`` sees each poll): the draft it registered. The fit's
        refusal is raised as the error it is (``InvalidInput`` when there are too few failures);
        ``Unavailable`` after ``timeout`` seconds."""
        job = self.start_rul_fit(
            project, device_type, cycle=cycle, since=since, until=until, cap=cap
        )
        end = time.monotonic() + timeout
        delay = 0.1
        while job.state not in ("done", "failed"):
            if on_progress:
                on_progress(job)
            if time.monotonic() >= end:
                raise errors.Unavailable(
                    f"RUL fit {job.id} is still {job.state} after {timeout:.0f} s",
                    hint=f"poll it: Client.rul_fit({project!r}, {job.id!r})",
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
            job = self.rul_fit(project, job.id)
        if on_progress:
            on_progress(job)
        if job.state == "failed" or job.model is None:
            e = job.error or {}
            cls = _FIT_ERRORS.get(str(e.get("error")), errors.AtollError)
            raise cls(str(e.get("message") or "the fit failed"), hint=e.get("hint"))
        return self.model(project, job.model.id)

    def maintenance_due(
        self,
        project: str,
        *,
        device_type: str | None = None,
        device: str | None = None,
        within: str | None = None,
        limit: int | None = None,
    ) -> list[DueDevice]:
        """Devices by remaining useful life, most at risk (lowest ``rul_lo``) first; ``within``
        (e.g. ``"7d"``) keeps those whose ``rul_lo`` is that close."""
        params = {"device_type": device_type, "device": device, "within": within, "limit": limit}
        got = self._call("GET", f"/projects/{project}/maintenance/due", params=params)
        out = []
        for d in got:
            model = d.get("model")
            item = build(DueDevice, {k: v for k, v in d.items() if k != "model"})
            if model is not None:
                item = replace(item, model=DueModel(model.get("id"), int(model["version"])))
            out.append(item)
        return out

    def models(
        self,
        project: str,
        *,
        kind: str | None = None,
        scope: str | None = None,
        state: str | None = None,
        ref: str | None = None,
        limit: int | None = None,
    ) -> list[Model]:
        """A project's models, newest change first. ``ref``: the detector model an anomaly
        names (its ``model.id``), to find the record that judged it."""
        params = {"kind": kind, "scope": scope, "state": state, "ref": ref, "limit": limit}
        got = self._call("GET", f"/projects/{project}/models", params=params)
        return [build(Model, m) for m in got]

    def model(self, project: str, model_id: str) -> Model:
        return build(Model, self._call("GET", f"/projects/{project}/models/{model_id}"))

    def model_versions(self, project: str, model_id: str) -> list[Model]:
        """Every version of the model's kind and scope, newest first."""
        got = self._call("GET", f"/projects/{project}/models/{model_id}/versions")
        return [build(Model, m) for m in got]

    def register_model(
        self,
        project: str,
        kind: str,
        *,
        scope: str | None = None,
        device_type: str | None = None,
        device: str | None = None,
        metric: str | None = None,
        card: dict[str, Any] | None = None,
        algorithm: str = "",
        code_version: str = "",
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        data_from: str | None = None,
        data_to: str | None = None,
        rows: int | None = None,
    ) -> Model:
        """Register the next version of ``kind`` for a scope (``scope``, or ``device_type``, or
        ``device`` and ``metric``) as a draft."""
        body: dict[str, Any] = {
            "kind": kind,
            "scope": scope,
            "device_type": device_type,
            "device": device,
            "metric": metric,
            "card": card or {},
            "algorithm": algorithm,
            "code_version": code_version,
            "params": params or {},
            "metrics": metrics or {},
            "data_from": data_from,
            "data_to": data_to,
            "rows": rows,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return build(Model, self._call("POST", f"/projects/{project}/models", json=body))

    @staticmethod
    def _changed(got: dict[str, Any]) -> ModelChange:
        return ModelChange(build(Model, got["model"]), list(got["retired"]))

    @staticmethod
    def _why(comment: str | None) -> dict[str, Any] | None:
        return {"comment": comment} if comment else None

    def approve_model(self, project: str, model_id: str, comment: str | None = None) -> ModelChange:
        return self._changed(
            self._call(
                "POST", f"/projects/{project}/models/{model_id}/approve", json=self._why(comment)
            )
        )

    def activate_model(
        self, project: str, model_id: str, comment: str | None = None
    ) -> ModelChange:
        """Activate an approved (or earlier, retired) version; the active one is retired."""
        return self._changed(
            self._call(
                "POST", f"/projects/{project}/models/{model_id}/activate", json=self._why(comment)
            )
        )

    def retire_model(self, project: str, model_id: str, comment: str | None = None) -> ModelChange:
        return self._changed(
            self._call(
                "POST", f"/projects/{project}/models/{model_id}/retire", json=self._why(comment)
            )
        )

    def rollback_model(
        self, project: str, model_id: str, comment: str | None = None
    ) -> ModelChange:
        """Retire the active ``model_id`` and activate the previous approved version."""
        return self._changed(
            self._call(
                "POST", f"/projects/{project}/models/{model_id}/rollback", json=self._why(comment)
            )
        )

    def model_card(self, project: str, model_id: str, format: str = "md") -> str | dict[str, Any]:
        """The model card: Markdown text (``md``) or the JSON document (``json``)."""
        got = self._call(
            "GET", f"/projects/{project}/models/{model_id}/card", params={"format": format}
        )
        if isinstance(got, bytes):
            return got.decode("utf-8")
        return dict(got)
