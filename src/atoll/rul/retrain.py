"""Retraining: a device type's RUL model is fitted again on a schedule or when a failure is
recorded, as its RUL configuration says (``atoll.registry.rul_configs``).

``due`` says why a configuration retrains now, if it does: ``schedule`` when ``retrain_every``
has passed since the last fit, ``failure`` when a failure of the type was recorded since (by the
records' ``created_at``: a failure imported with an old date is new to the model all the same).

``Retrainer.check`` runs every minute on the RUL service's worker: for each configuration due
it claims the retraining (so one node fits it, however many look) and queues a fit job
(``atoll.rul.jobs``, trigger ``schedule`` or ``failure``, requested by ``system:retrain``). The
new version is filed as a draft. ``decide`` then runs on the fit's worker:

* without ``auto_activate`` the version stays a draft, for an operator to approve;
* with it, the version is approved and activated if its cross-validated RMSE is not worse than
  the active version's (or no version is active); otherwise it stays a draft.

Both outcomes are audited (``rul.retrain``, with the model, whether it went live and why), and
the job's ``outcome`` says the same.

>>> from atoll.registry.models import RulConfig
>>> cfg = RulConfig("p", "motor", 3_600_000_000, 125.0, 86_400_000_000, True, False, "me", 0,
...                 last_fit=1_000, failures_seen=50)
>>> due(cfg, newest_failure=50, now=2_000), due(cfg, newest_failure=60, now=2_000)
(None, 'failure')
>>> due(cfg, newest_failure=50, now=1_000 + 86_400_000_000)
'schedule'
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from atoll.core.errors import AtollError
from atoll.registry import Registry
from atoll.registry.models import ModelVersion, RulConfig, RulFit
from atoll.registry.tokens import now_us
from atoll.rul import fleet
from atoll.rul.jobs import FitJobs

log = logging.getLogger(__name__)

#: Who asks for a retraining, and approves and activates what it files.
ACTOR = "system:retrain"


def due(cfg: RulConfig, *, newest_failure: int | None, now: int) -> str | None:
    """``"failure"``, ``"schedule"`` or ``None`` (see the module)."""
    if cfg.on_failure and newest_failure is not None:
        if cfg.failures_seen is None or newest_failure > cfg.failures_seen:
            return "failure"
    if cfg.retrain_every is not None:
        if cfg.last_fit is None or now - cfg.last_fit >= cfg.retrain_every:
            return "schedule"
    return None


def _rmse(m: ModelVersion) -> float | None:
    v = (m.metrics or {}).get("rmse")
    return float(v) if isinstance(v, (int, float)) else None


class Retrainer:
    def __init__(self, registry: Registry, jobs: FitJobs) -> None:
        self.registry, self.jobs = registry, jobs
        self.stats = {"started": 0}

    def check(self, now: int | None = None) -> list[RulFit]:
        """Queue the retrainings due now (see the module); the jobs queued."""
        now = now_us() if now is None else now
        out = []
        for cfg, newest in self.registry.rul_retraining():
            why = due(cfg, newest_failure=newest, now=now)
            if why is None:
                continue
            busy = self.registry.list_rul_fits(cfg.project, device_type=cfg.device_type, limit=5)
            if any(j.state in ("queued", "running") for j in busy):
                continue  # the next check sees it again
            seen = newest if newest is not None else cfg.failures_seen
            if not self.registry.claim_rul_retraining(cfg, last_fit=now, failures_seen=seen):
                continue  # another node took it
            try:
                job = self.jobs.submit(
                    cfg.project,
                    cfg.device_type,
                    actor=ACTOR,
                    cycle=cfg.cycle,
                    cap=cfg.cap,
                    trigger=why,
                    after=functools.partial(self.decide, cfg),
                )
            except AtollError as e:  # the type or project went away
                log.info("RUL retraining of %s/%s skipped: %s", cfg.project, cfg.device_type, e)
                continue
            self.stats["started"] += 1
            out.append(job)
        return out

    def decide(self, cfg: RulConfig, job: RulFit, model: ModelVersion) -> dict[str, Any]:
        """Activate ``model`` or keep it a draft (see the module); the outcome, audited."""
        reg = self.registry
        active = reg.list_models(
            cfg.project, kind="rul", scope=fleet.scope(cfg.device_type), state="active"
        )
        new = _rmse(model)
        old = _rmse(active[0]) if active else None
        if not cfg.auto_activate:
            activated, reason = False, "auto_activate is off: an operator approves it"
        elif new is None:
            activated, reason = False, "the new version has no cross-validated RMSE"
        elif active and old is not None and new > old:
            activated, reason = False, f"its RMSE {new:g} is worse than the active one's {old:g}"
        else:
            than = f"not worse than the active one's {old:g}" if active else "no version active"
            activated, reason = True, f"its RMSE {new:g}: {than}"
        if activated:
            reg.change_model(cfg.project, model.id, "approve", actor=ACTOR)
            reg.change_model(cfg.project, model.id, "activate", actor=ACTOR)
        outcome = {
            "model": model.id,
            "version": model.version,
            "activated": activated,
            "reason": reason,
            "rmse": new,
            "active_before": active[0].id if active else None,
            "active_rmse": old,
        }
        tenant = reg.get_project(cfg.project).tenant
        reg.audit(tenant, ACTOR, "rul.retrain", f"model:{model.id}", {**outcome, "fit": job.id})
        return outcome
