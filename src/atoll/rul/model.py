"""Remaining useful life from run-to-failure history: boosted trees with conformal intervals.

``RulModel.fit`` learns from engines run to failure (``Trajectories``): the target of each cycle
is its remaining life, capped at ``cap`` cycles (125: early wear is not observable, so a young
engine's RUL is "at least 125"; the usual piecewise-linear target of the C-MAPSS literature).
The model is LightGBM regression on the causal features of ``atoll.rul.features``.

**Honest validation, inside the fit.** The engines are split into ``folds`` groups (never rows of
one engine on both sides). Each fold's model predicts the engines it did not see; those
out-of-fold predictions give the model card's validation metrics and calibrate the intervals.
They are measured the way C-MAPSS test sets are built and scored: every cycle of a held-out engine
with 5 to 150 cycles left is a possible cut point (the official FD001 test engines have 7 to 145
left), error against the true, uncapped RUL. The model that predicts is the mean of the fold
models and one fitted on every engine.

**Intervals.** Split-conformal on the out-of-fold residuals, per band of predicted RUL (errors
grow with the horizon): the ``level`` interval (0.9) is the prediction plus the band's residual
quantiles at (1 - level)/2 and (1 + level)/2, with the finite-sample correction. Coverage on
engines the model never saw is measured by ``atoll bench cmapss``.

The model directory holds ``model.json`` (the model card: training data, parameters, validation
metrics, code and library versions, the normaliser and the interval table) and one LightGBM text
file per tree ensemble; nothing is pickled.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from atoll import __version__
from atoll.core.errors import InvalidInput
from atoll.rul.cmapss import Trajectories
from atoll.rul.features import Normaliser, feature_names, features

FORMAT = "atoll-rul/1"
#: Predicted-RUL bands (cycles) with their own interval widths.
BANDS = (0.0, 25.0, 50.0, 75.0, 100.0, math.inf)
#: Cut points scored in validation: cycles left in [CUT_MIN, CUT_MAX].
CUT_MIN, CUT_MAX = 5, 150
MIN_UNITS = 10

PARAMS: dict[str, Any] = {
    "objective": "regression",
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.7,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
}
ROUNDS = 600


def phm08_score(d: np.ndarray) -> float:
    """The PHM08 challenge's score of errors ``d = predicted - true`` (late costs more).

    >>> round(phm08_score(np.array([-13.0, 10.0])), 3)
    3.437
    """
    d = np.asarray(d, dtype=np.float64)
    return float(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0).sum())


@dataclass(frozen=True, slots=True)
class Prediction:
    """The RUL of one unit at its last cycle, with its interval (cycles)."""

    unit: int
    cycle: int
    rul: float
    low: float
    high: float


@dataclass(slots=True)
class RulModel:
    norm: Normaliser
    boosters: list[lgb.Booster]
    cap: float
    level: float
    #: Per band of ``BANDS``: residual quantiles (low, high) added to a prediction.
    intervals: list[tuple[float, float]]
    card: dict[str, Any] = field(default_factory=dict)

    # -- fitting ---------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        t: Trajectories,
        *,
        cap: float = 125.0,
        folds: int = 5,
        level: float = 0.9,
        seed: int = 0,
        threads: int = 1,
        source: str = "",
        on_step: Callable[[int, str], None] | None = None,
        groups: dict[int, str] | None = None,
    ) -> RulModel:
        """Fit on run-to-failure ``t`` (``folds + 1`` tree ensembles; see the module).
        ``on_step(done, what)`` is called before each ensemble with the number already fitted.
        ``groups`` (unit -> group, e.g. the device a trajectory came from) keeps each group's
        units on one side of every fold: cross-validation over groups, not units."""
        units = t.unit_ids()
        if len(units) < MIN_UNITS:
            raise InvalidInput(
                f"{len(units)} engines in the training file: need at least {MIN_UNITS} run to "
                "failure to learn and validate on"
            )
        n_groups = len(set(groups.values())) if groups is not None else len(units)
        if not (0.5 <= level < 1.0 and cap > 0 and 2 <= folds <= n_groups):
            raise InvalidInput("need 0.5 <= level < 1, cap > 0 and 2 <= folds <= engines")
        step = on_step or (lambda _i, _s: None)
        started = time.perf_counter()
        norm = Normaliser.fit(t)
        x = features(t, norm)
        rul = t.rul_to_failure().astype(np.float64)
        y = np.minimum(rul, cap)
        params = {**PARAMS, "seed": seed, "num_threads": threads}
        rng = np.random.default_rng(seed)
        oof = np.full(len(t), np.nan)
        boosters = []
        for i, held in enumerate(_fold_units(units, folds, rng, groups)):
            step(i, f"fold {i + 1} of {folds}")
            out = np.isin(t.units, held)
            b = lgb.train(params, lgb.Dataset(x[~out], y[~out]), num_boost_round=ROUNDS)
            oof[out] = b.predict(x[out])
            boosters.append(b)
        step(folds, "all engines")
        boosters.append(lgb.train(params, lgb.Dataset(x, y), num_boost_round=ROUNDS))
        oof = np.clip(oof, 0.0, cap)
        cut = (rul >= CUT_MIN) & (rul <= CUT_MAX)
        intervals = _conformal(oof[cut], rul[cut], level)
        err = oof[cut] - rul[cut]
        n_cut = int(cut.sum())
        model = cls(norm, boosters, float(cap), float(level), intervals)
        low, high = model.interval(oof[cut])
        model.card = {
            "format": FORMAT,
            "kind": "rul",
            "model": "lightgbm-gbdt",
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "code_version": __version__,
            "libraries": {"lightgbm": lgb.__version__, "numpy": np.__version__},
            "training": {
                "source": source,
                "units": int(len(units)),
                "rows": int(len(t)),
                "cycles": [int(t.cycles.min()), int(t.cycles.max())],
                "seconds": round(time.perf_counter() - started, 1),
            },
            "params": {
                "cap": cap,
                "folds": folds,
                "level": level,
                "seed": seed,
                "rounds": ROUNDS,
                **{k: v for k, v in PARAMS.items() if k != "verbose"},
            },
            "features": len(feature_names(len(norm.sensors))),
            "sensors": [f"sensor_{j + 1}" for j in norm.sensors],
            "validation": {
                "method": f"{folds}-fold cross-validation over "
                f"{'devices' if groups is not None else 'engines'}; every cycle with "
                f"{CUT_MIN}-{CUT_MAX} cycles left is a cut point; error vs the true RUL",
                "cut_points": n_cut,
                "rmse": round(float(np.sqrt(np.mean(err**2))), 3),
                "mae": round(float(np.mean(np.abs(err))), 3),
                "phm08_per_100_engines": round(100.0 * phm08_score(err) / n_cut, 1),
                "interval_coverage_in_sample": round(
                    float(np.mean((rul[cut] >= low) & (rul[cut] <= high))), 3
                ),
            },
        }
        return model

    # -- predicting ------------------------------------------------------------------------------
    def predict_rows(self, x: np.ndarray) -> np.ndarray:
        """RUL (cycles) of feature rows ``x``: the mean of the ensembles, within [0, cap]."""
        p = np.mean([b.predict(x, num_threads=1) for b in self.boosters], axis=0)
        return np.clip(p, 0.0, self.cap)

    def interval(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``level`` interval (low, high) around predictions ``p``."""
        band = np.clip(np.searchsorted(BANDS, p, side="right") - 1, 0, len(BANDS) - 2)
        q = np.asarray(self.intervals)[band]
        return np.maximum(p + q[:, 0], 0.0), p + q[:, 1]

    def predict_all(self, t: Trajectories) -> np.ndarray:
        """RUL at every row of ``t`` (each engine's history up to that row)."""
        return self.predict_rows(features(t, self.norm))

    def predict(self, t: Trajectories) -> list[Prediction]:
        """The RUL of each unit at its last cycle, with its interval."""
        x = features(t, self.norm)
        spans = t.spans()
        last = np.array([e - 1 for _, _, e in spans], dtype=np.int64)
        p = self.predict_rows(x[last])
        low, high = self.interval(p)
        return [
            Prediction(u, int(t.cycles[i]), float(r), float(lo), float(hi))
            for (u, _, _), i, r, lo, hi in zip(spans, last, p, low, high, strict=True)
        ]

    # -- files -----------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        files = []
        for i, b in enumerate(self.boosters):
            name = f"trees-{i}.txt"
            b.save_model(str(directory / name))
            files.append(name)
        doc = {
            **self.card,
            "cap": self.cap,
            "level": self.level,
            "bands": [b if math.isfinite(b) else None for b in BANDS],
            "intervals": [list(q) for q in self.intervals],
            "normaliser": self.norm.to_json(),
            "trees": files,
        }
        (directory / "model.json").write_text(json.dumps(doc, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> RulModel:
        card = directory / "model.json"
        if not card.is_file():
            raise InvalidInput(
                f"{directory}: no RUL model here (no model.json)",
                hint="train one first: atoll rul train TRAIN.txt --format cmapss --model DIR",
            )
        try:
            doc = json.loads(card.read_text())
            if doc.get("format") != FORMAT:
                raise InvalidInput(f"{card}: format {doc.get('format')!r}, expected {FORMAT!r}")
            boosters = [lgb.Booster(model_file=str(directory / f)) for f in doc["trees"]]
            return cls(
                Normaliser.from_json(doc["normaliser"]),
                boosters,
                float(doc["cap"]),
                float(doc["level"]),
                [(float(a), float(b)) for a, b in doc["intervals"]],
                {k: v for k, v in doc.items() if k not in ("normaliser", "intervals", "trees")},
            )
        except (KeyError, TypeError, ValueError, OSError, lgb.basic.LightGBMError) as exc:
            raise InvalidInput(f"{card}: not a readable RUL model ({exc})") from None


def _fold_units(
    units: np.ndarray, folds: int, rng: np.random.Generator, groups: dict[int, str] | None
) -> list[np.ndarray]:
    """The units each fold holds out: shuffled units, or shuffled groups of units."""
    if groups is None:
        return np.array_split(rng.permutation(units), folds)
    names = np.array(sorted({groups[int(u)] for u in units}))
    held = np.array_split(rng.permutation(names), folds)
    return [
        np.array([u for u in units if groups[int(u)] in set(h)], dtype=units.dtype) for h in held
    ]


def _conformal(pred: np.ndarray, true: np.ndarray, level: float) -> list[tuple[float, float]]:
    """Residual (true - predicted) quantiles per band of ``BANDS`` with the finite-sample
    correction; a band with too few residuals borrows from all of them."""
    lo_q, hi_q = (1.0 - level) / 2.0, (1.0 + level) / 2.0
    resid = true - pred
    out = []
    for a, b in zip(BANDS[:-1], BANDS[1:], strict=True):
        r = resid[(pred >= a) & (pred < b)]
        if len(r) < 50:
            r = resid
        n = len(r)
        lo = float(np.quantile(r, max(0.0, math.floor((n + 1) * lo_q) / n)))
        hi = float(np.quantile(r, min(1.0, math.ceil((n + 1) * hi_q) / n)))
        out.append((lo, hi))
    return out
