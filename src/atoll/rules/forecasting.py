"""Evaluating ``forecast`` conditions: fit, decide, store the forecast with its model.

The rules service asks the engine for the ``forecast`` conditions due (``RuleEngine.
forecasts_due``: at most once per ``every`` per rule instance, only instances owned here) on its
timer pass and hands them to one background task, which fits each in a worker thread
(``RuleForecasts.evaluate``, never on the event loop) and gives the result back to the engine
(``RuleEngine.forecast_done``) on the loop. One forecast at a time per process: a forecast is a
model fit (seconds of CPU under load), and the timer pass goes on meanwhile.

``evaluate`` forecasts the series with the default forecaster (``atoll.forecast``) over the
condition's horizon, finds the crossing, and stores a row in ``rules_forecasts`` carrying the
forecaster's registry record (``ForecasterCatalog``: kind, parameters, code version). A series
too short or too sparse to forecast is not an error: the row says ``skipped`` and why, and the
condition's state stays as it was.
"""

from __future__ import annotations

import logging
import time
from importlib import metadata
from typing import Any

import numpy as np
import sqlalchemy as sa

from atoll.core.errors import AtollError
from atoll.core.lineage import ForecasterCatalog, ModelRef
from atoll.core.points import SeriesKey
from atoll.forecast import DEFAULT, crossing, forecast_series, forecaster
from atoll.rules import db as _db
from atoll.rules.conditions import ForecastEval
from atoll.rules.model import Rule

log = logging.getLogger(__name__)
US = 1_000_000
#: How long stored forecasts are kept (per rule and device), µs.
KEEP_US = 30 * 86_400 * US


def forecaster_params() -> dict[str, Any]:
    """What identifies the rules' forecaster besides its kind and Atoll's version."""
    try:
        library = metadata.version("statsforecast")
    except metadata.PackageNotFoundError:  # pragma: no cover - a dependency of Atoll
        library = "unknown"
    return {"kind": DEFAULT, "library": f"statsforecast {library}", "grid": "atoll.forecast"}


class RuleForecasts:
    """Fits and stores the forecasts of ``forecast`` conditions (see the module's doc)."""

    def __init__(self, db: sa.Engine, store: Any, catalog: ForecasterCatalog | None = None) -> None:
        self.db, self.store, self.catalog = db, store, catalog
        self.params = forecaster_params()

    def evaluate(self, rule: Rule, leaf: ForecastEval, now: int) -> dict[str, Any]:
        """One forecast for ``leaf`` at ``now`` (runs in a worker thread): the result the engine
        takes (``ForecastEval.done``), also stored."""
        spec = leaf.spec
        key = SeriesKey(rule.project, leaf.device, spec.metric)
        out: dict[str, Any] = {"at": now, "crosses": None}
        row: dict[str, Any] = {}
        t0 = time.perf_counter()
        try:
            sf = forecast_series(
                self.store,
                key,
                forecaster(DEFAULT),
                now_us=now,
                horizon_us=leaf.horizon_us,
                level=spec.level,
            )
        except AtollError as e:  # too short, too sparse, no data: a reason, not a crash
            out["reason"] = e.message + (f" ({e.hint})" if e.hint else "")
        else:
            c = crossing(sf, spec.threshold, spec.direction)
            hit = c.ts if spec.on == "mean" else c.earliest
            f = sf.forecast
            out.update(
                crosses=hit is not None and hit <= now + leaf.horizon_us,
                ts=c.ts,
                earliest=c.earliest,
                latest=c.latest,
                last_value=sf.last_value,
                model=f.model,
            )
            row = {
                "step_us": sf.step_us,
                "history_from": sf.history_from,
                "history_to": sf.history_to,
                "rows": sf.rows,
                "path": {
                    "ts": [int(x) for x in sf.ts],
                    "mean": _floats(f.mean),
                    "lo": _floats(f.lo),
                    "hi": _floats(f.hi),
                },
            }
            ref = self._model(key)
            if ref is not None:
                out["model_ref"] = {"id": ref.id, "version": ref.version}
        seconds = time.perf_counter() - t0
        out["id"] = self._store(rule, leaf, now, out, row, seconds)
        return out

    def _model(self, key: SeriesKey) -> ModelRef | None:
        if self.catalog is None:
            return None
        try:
            return self.catalog.forecaster_version(
                key.project, key.device, key.metric, algorithm=DEFAULT, params=self.params
            )
        except Exception:  # the forecast still counts; its row says no model was filed
            log.exception("filing the forecaster of %s/%s failed", key.device, key.metric)
            return None

    def _store(
        self,
        rule: Rule,
        leaf: ForecastEval,
        now: int,
        out: dict[str, Any],
        row: dict[str, Any],
        seconds: float,
    ) -> int | None:
        spec = leaf.spec
        crosses = out["crosses"]
        ref = out.get("model_ref") or {}
        values = {
            "project": rule.project,
            "rule_id": rule.id,
            "device": leaf.device,
            "metric": spec.metric,
            "evaluated_at": now,
            "status": "skipped" if crosses is None else ("crosses" if crosses else "clear"),
            "reason": out.get("reason"),
            "threshold": spec.threshold,
            "direction": spec.direction,
            "horizon_us": leaf.horizon_us,
            "level": spec.level,
            "crossing_ts": out.get("ts"),
            "earliest": out.get("earliest"),
            "latest": out.get("latest"),
            "last_value": out.get("last_value"),
            "model": out.get("model"),
            "model_id": ref.get("id"),
            "model_version": ref.get("version"),
            "seconds": seconds,
            **row,
        }
        f = _db.forecasts.c
        try:
            with self.db.begin() as conn:
                got = conn.execute(sa.insert(_db.forecasts).values(**values))
                conn.execute(
                    sa.delete(_db.forecasts).where(
                        f.rule_id == rule.id,
                        f.device == leaf.device,
                        f.evaluated_at < now - KEEP_US,
                    )
                )
                pk = got.inserted_primary_key
                return int(pk[0]) if pk else None
        except sa.exc.SQLAlchemyError:
            log.exception("storing the forecast of %s for rule %s failed", leaf.device, rule.id)
            return None

    def list(
        self, rule_id: str, *, device: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The rule's stored forecasts, newest first (``path`` left out)."""
        f = _db.forecasts.c
        q = sa.select(*(c for c in _db.forecasts.c if c.name != "path")).where(f.rule_id == rule_id)
        if device is not None:
            q = q.where(f.device == device)
        with self.db.connect() as conn:
            rows = conn.execute(q.order_by(f.evaluated_at.desc(), f.id.desc()).limit(limit))
            return [dict(r._mapping) for r in rows]

    def get(self, forecast_id: int) -> dict[str, Any] | None:
        with self.db.connect() as conn:
            r = conn.execute(
                sa.select(_db.forecasts).where(_db.forecasts.c.id == forecast_id)
            ).first()
        return None if r is None else dict(r._mapping)


def _floats(a: np.ndarray) -> list[float]:
    return [float(x) for x in np.asarray(a, dtype=np.float64)]
