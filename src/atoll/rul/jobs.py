"""RUL fits off the request: a queue of fit jobs, one at a time, on a worker thread.

``submit`` files a ``queued`` job in the registry (``atoll.registry.rul_fits``) and hands it to
the worker; the worker moves it to ``running`` (with a progress line as the ensembles are
fitted), fits and registers the draft (``atoll.rul.fleet``), audits ``model.register`` in the
name of who asked, and ends it ``done`` with the model or ``failed`` with the refusal (the same
code, message and hint as an API error). The job is in the database, so any node answers a
poll. ``after`` runs on the worker once a version is filed: retraining uses it to decide on
activation (``atoll.rul.retrain``).

A job still queued when the node stops is marked failed, naming the reason; one running then
is finished first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from atoll.core.errors import AtollError, NotFound
from atoll.registry import Registry
from atoll.registry.models import ModelVersion, RulFit
from atoll.rul import fleet
from atoll.store.port import SeriesStore

log = logging.getLogger(__name__)

#: What to do with a freshly filed version (returns the job's ``outcome``).
After = Callable[[RulFit, ModelVersion], dict[str, Any] | None]


class FitJobs:
    def __init__(self, registry: Registry, store: SeriesStore, models_dir: Path) -> None:
        self.registry, self.store, self.models_dir = registry, store, models_dir
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="atoll-rul-fit")
        self._queued: set[str] = set()
        self.stats = {"fits": 0, "failed": 0}

    def submit(
        self,
        project: str,
        device_type: str,
        *,
        actor: str,
        tenant: str | None = None,
        cycle: int = fleet.HOUR,
        since: int | None = None,
        until: int | None = None,
        cap: float = 125.0,
        trigger: str = "api",
        after: After | None = None,
    ) -> RulFit:
        """File a queued fit and start it when the worker is free (``NotFound``: no such
        project or device type)."""
        params = {"cycle": cycle, "since": since, "until": until, "cap": cap}
        job = self.registry.create_rul_fit(
            project, device_type, params=params, requested_by=actor, trigger=trigger, tenant=tenant
        )
        self._queued.add(job.id)
        self._pool.submit(self._run, job, after)
        return job

    async def wait(self, project: str, fit_id: str, timeout: float = 900.0) -> RulFit:
        """The job once it is done or failed (polled; ``timeout`` s at most, then as it is)."""
        end = time.monotonic() + timeout
        delay = 0.05
        while True:
            job = await asyncio.to_thread(self.registry.get_rul_fit, project, fit_id)
            if job.state in ("done", "failed") or time.monotonic() >= end:
                return job
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for fid in list(self._queued):
            self._fail(fid, {"error": "unavailable", "message": "the node stopped before the fit"})

    # -- the worker ------------------------------------------------------------------------------
    def _run(self, job: RulFit, after: After | None) -> None:
        self._queued.discard(job.id)
        reg = self.registry
        try:
            reg.set_rul_fit(job.id, "running", progress="reading the fleet's trajectories")
            p = job.params
            data = fleet.build_trajectories(
                reg,
                self.store,
                job.project,
                job.device_type,
                cycle=int(p["cycle"]),
                since=p.get("since"),
                until=p.get("until"),
            )

            def step(done: int, what: str) -> None:
                reg.set_rul_fit(job.id, "running", progress=f"{what} ({done} fitted)")

            fitted = fleet.fit_fleet(
                data, job.device_type, cycle=int(p["cycle"]), cap=float(p["cap"]), on_step=step
            )
            model = fleet.register(
                reg,
                self.models_dir,
                job.project,
                job.device_type,
                fitted,
                actor=job.requested_by,
            )
            tenant = reg.get_project(job.project).tenant
            reg.audit(
                tenant,
                job.requested_by,
                "model.register",
                f"model:{model.id}",
                {"kind": model.kind, "scope": model.scope, "version": model.version, "fit": job.id},
            )
            outcome = after(job, model) if after is not None else None
            reg.set_rul_fit(job.id, "done", model=model.id, outcome=outcome, progress="done")
            self.stats["fits"] += 1
        except AtollError as e:
            self._fail(job.id, e.to_dict())
        except Exception:
            log.exception("RUL fit %s failed", job.id)
            self._fail(job.id, {"error": "internal", "message": "the fit failed (see the log)"})

    def _fail(self, fit_id: str, error: dict[str, Any]) -> None:
        self.stats["failed"] += 1
        try:
            self.registry.set_rul_fit(fit_id, "failed", error=error)
        except NotFound:  # the project went away
            pass
