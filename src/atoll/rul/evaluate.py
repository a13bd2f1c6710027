"""Cross-validation over engines: how an RUL model does on engines it never saw.

The engines of a run-to-failure file are split into ``folds`` groups. For each, a model is fitted
on the others exactly as ``atoll rul train`` fits one (with its own inner cross-validation for
the intervals), then judges the held-out engines, as a test file would show them: cut at a
cycle with 5 to 150 cycles left (the official FD001 test engines have 7 to 145), the prediction at
that cycle against the true RUL. Two views of the same predictions:

- **every cut point**: RMSE, MAE, PHM08 per 100 engines and interval coverage over all cycles
  with 5-150 left (each engine weighs by its number of such cycles);
- **one cut per engine**, as in the official test sets: ``draws`` random draws of one cut point
  per held-out engine, each scored like a test set of 100 engines (RMSE, PHM08 summed and scaled
  to 100 engines); the mean and range over the draws.

Training seconds, and prediction throughput in engine-cycles per second (one thread; an RUL at
every cycle, and at each engine's last cycle only), are measured on the way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from atoll.rul.cmapss import Trajectories
from atoll.rul.model import CUT_MAX, CUT_MIN, RulModel, phm08_score


def cross_validate(
    t: Trajectories,
    *,
    folds: int = 5,
    draws: int = 20,
    seed: int = 0,
    fit_folds: int = 5,
    on_fold: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Outer cross-validation of ``RulModel.fit`` (with ``fit_folds`` inner folds) over ``t``'s
    engines (see the module)."""
    units = np.random.default_rng(seed + 1).permutation(t.unit_ids())
    rul = t.rul_to_failure().astype(np.float64)
    pred = np.full(len(t), np.nan)
    low, high = np.full(len(t), np.nan), np.full(len(t), np.nan)
    train_s, predict_s, last_s, cycles = [], 0.0, 0.0, 0
    level = 0.9
    for i, held in enumerate(np.array_split(units, folds)):
        out = np.isin(t.units, held)
        started = time.perf_counter()
        model = RulModel.fit(t.take(~out), seed=seed, folds=fit_folds)
        train_s.append(time.perf_counter() - started)
        level = model.level
        test = t.take(out)
        started = time.perf_counter()
        p = model.predict_all(test)
        predict_s += time.perf_counter() - started
        started = time.perf_counter()
        model.predict(test)
        last_s += time.perf_counter() - started
        cycles += len(test)
        lo, hi = model.interval(p)
        pred[out], low[out], high[out] = p, lo, hi
        if on_fold:
            on_fold(i)
    cut = (rul >= CUT_MIN) & (rul <= CUT_MAX)
    err = pred[cut] - rul[cut]
    covered = (rul[cut] >= low[cut]) & (rul[cut] <= high[cut])
    rng = np.random.default_rng(seed + 2)
    spans = [(s + np.flatnonzero(cut[s:e])) for _, s, e in t.spans()]
    rmses, scores, coverages = [], [], []
    for _ in range(draws):
        rows = np.array([rng.choice(r) for r in spans if len(r)])
        d = pred[rows] - rul[rows]
        rmses.append(float(np.sqrt(np.mean(d**2))))
        scores.append(phm08_score(d) * 100.0 / len(rows))
        coverages.append(float(np.mean((rul[rows] >= low[rows]) & (rul[rows] <= high[rows]))))
    return {
        "engines": int(len(units)),
        "rows": int(len(t)),
        "folds": folds,
        "every_cut_point": {
            "cut_points": int(cut.sum()),
            "rmse": float(np.sqrt(np.mean(err**2))),
            "mae": float(np.mean(np.abs(err))),
            "phm08_per_100_engines": phm08_score(err) * 100.0 / int(cut.sum()),
            "interval_level": level,
            "interval_coverage": float(np.mean(covered)),
            "interval_mean_width": float(np.mean(high[cut] - low[cut])),
        },
        "one_cut_per_engine": {
            "draws": draws,
            "rmse_mean": float(np.mean(rmses)),
            "rmse_range": [float(np.min(rmses)), float(np.max(rmses))],
            "phm08_per_100_engines_mean": float(np.mean(scores)),
            "phm08_per_100_engines_range": [float(np.min(scores)), float(np.max(scores))],
            "interval_coverage_mean": float(np.mean(coverages)),
        },
        "train_seconds_per_model": [round(s, 1) for s in train_s],
        # An RUL at every cycle (as a live stream gets one), and at each engine's last cycle
        # only (``atoll rul predict``: features over the whole history, trees once per engine).
        "predict_cycles_per_s": cycles / max(predict_s, 1e-9),
        "predict_last_cycles_per_s": cycles / max(last_s, 1e-9),
    }
