"""RUL models of a device type, learnt from the fleet's own history.

**Trajectories.** A device's history is cut by its ``failure`` maintenance records: a failure
ends a run, so the readings from the device's first reading (or from the failure before) up to a
failure are one run-to-failure trajectory. Readings after a device's last failure are a run still
under way: they teach nothing about when it ends and are left out of training.

With ``since``, runs are cut out of the window ``[since, until)``: a device's first run counts
only if the device had no reading before ``since`` (else the window cut it, and it would look like
a young run).

**Cycles** are fixed time buckets (``cycle`` µs, one hour by default): each cycle holds the mean
of every metric of the device type over that bucket (``SeriesStore.query_buckets``), from the
run's first non-empty bucket to the bucket holding the failure. A bucket with no reading of a
metric takes its last value (or the run's first, before it has one): a device that was silent for
a while aged all the same. The failure's bucket is the last cycle (RUL 0).

The trajectories are handed to ``RulModel.fit`` unchanged in kind from the C-MAPSS ones (a unit per
trajectory, the type's numeric metrics as sensors, one operating regime), with the folds of its
cross-validation drawn over **devices**: no device has a run on both sides.

**Scoring a live run** (``read_cycles`` and ``score``) builds the same cycles for the run under way
(since the device's last failure) up to the last complete bucket, and predicts its RUL at that
cycle. RUL is in cycles; ``hours`` converts with the model's cycle length.

>>> import numpy as np
>>> dense(np.array([2, 4]), np.array([[1.0, np.nan], [3.0, 5.0]]), 2, 5)
array([[1., 5.],
       [1., 5.],
       [3., 5.]])
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atoll import __version__
from atoll.core.errors import InvalidInput, NotFound
from atoll.core.events import RUL_METRICS
from atoll.core.points import SeriesKey
from atoll.registry import Registry, model_files
from atoll.registry.models import ModelVersion
from atoll.rul.cmapss import SETTINGS, Trajectories
from atoll.rul.model import MIN_UNITS, RulModel
from atoll.store.port import SeriesStore

HOUR = 3_600_000_000
#: The shortest trajectory (cycles) that is kept: the features' baseline is 10 cycles.
MIN_CYCLES = 10
#: The most cycles of one run read back (for training and for a live score).
MAX_CYCLES = 5_000
#: Metric types an RUL model reads.
NUMERIC = ("float", "int")
#: The series the RUL service writes on a device (hours), and the version of the model.
RUL, RUL_LO, RUL_HI, RUL_VERSION = RUL_METRICS


def scope(device_type: str) -> str:
    return f"type:{device_type}"


def dense(buckets: np.ndarray, values: np.ndarray, first: int, last: int) -> np.ndarray:
    """Rows for every bucket index ``first..last-1`` from rows at bucket indices ``buckets``
    (``values``: rows x metrics, NaN where a metric had no reading), each gap taking the last
    value before it, and a metric's first value filling its start."""
    n = last - first
    out = np.full((n, values.shape[1]), np.nan)
    out[buckets - first] = values
    for j in range(out.shape[1]):
        col = out[:, j]
        ok = np.flatnonzero(~np.isnan(col))
        if len(ok) == 0:
            continue
        idx = np.maximum.accumulate(np.where(~np.isnan(col), np.arange(n), -1))
        col[:] = np.where(idx >= 0, col[np.maximum(idx, 0)], col[ok[0]])
    return out


def read_cycles(
    store: SeriesStore,
    project: str,
    device: str,
    metrics: list[str],
    start: int,
    end: int,
    cycle: int,
) -> tuple[int, np.ndarray] | None:
    """The cycles of ``device`` in ``[start, end)``: (first bucket index, cycles x metrics), from
    its first non-empty bucket to the bucket before ``end``; ``None`` when a metric has no
    reading there (or nothing does)."""
    start = max(start, end - MAX_CYCLES * cycle)
    per: list[tuple[np.ndarray, np.ndarray]] = []
    for m in metrics:
        b = store.query_buckets(SeriesKey(project, device, m), start, end, cycle, ("avg",))
        avg = b.columns["avg"]
        ok = ~np.isnan(avg)
        if not ok.any():
            return None
        per.append(((b.start[ok] // cycle).astype(np.int64), avg[ok]))
    first = min(int(idx[0]) for idx, _ in per)
    last = (end - 1) // cycle + 1  # past the bucket holding end - 1
    keys = np.unique(np.concatenate([idx for idx, _ in per]))
    rows = np.full((len(keys), len(metrics)), np.nan)
    for j, (idx, v) in enumerate(per):
        rows[np.searchsorted(keys, idx), j] = v
    return first, dense(keys, rows, first, last)


@dataclass
class FleetData:
    """Trajectories of a device type, with where they came from."""

    trajectories: Trajectories
    #: unit -> device
    devices: dict[int, str]
    metrics: list[str]
    failures: int
    data_from: int
    data_to: int


def numeric_metrics(
    registry: Registry, project: str, device_type: str, tenant: str | None
) -> list[str]:
    dt = registry.get_device_type(project, device_type, tenant)
    names = [m.name for m in dt.metrics if m.type in NUMERIC]
    if not names:
        raise InvalidInput(f"device type {device_type!r} declares no numeric metric to learn from")
    return names


def build_trajectories(
    registry: Registry,
    store: SeriesStore,
    project: str,
    device_type: str,
    *,
    cycle: int = HOUR,
    since: int | None = None,
    until: int | None = None,
    metrics: list[str] | None = None,
    tenant: str | None = None,
) -> FleetData:
    """The run-to-failure trajectories of ``project``'s devices of ``device_type`` (see the
    module); ``InvalidInput`` naming what is missing when there are fewer than ``MIN_UNITS``."""
    if cycle < 1_000_000:
        raise InvalidInput("the cycle must be at least 1 s")
    names = metrics or numeric_metrics(registry, project, device_type, tenant)
    devices = [
        d.id for d in registry.list_devices(project, tenant, device_type=device_type, limit=100_000)
    ]
    if not devices:
        raise InvalidInput(f"project {project!r} has no device of type {device_type!r}")
    failures: dict[str, list[int]] = {}
    ours = set(devices)
    for e in registry.list_maintenance(
        project=project, tenant=tenant, kind="failure", since=since, until=until, limit=1_000_000
    ):
        if e.device in ours:
            failures.setdefault(e.device, []).append(e.at)
    n_failures = sum(len(v) for v in failures.values())
    units: list[np.ndarray] = []
    cycles: list[np.ndarray] = []
    sensors: list[np.ndarray] = []
    owner: dict[int, str] = {}
    lo, hi = None, None
    for device in devices:
        start = since if since is not None else 0
        # With ``since``, a device's first run counts only if it began after ``since``: a run cut
        # by the window would look like a young one.
        partial = since is not None and _has_data(store, project, device, names[0], since)
        for at in sorted(failures.get(device, [])):
            got = read_cycles(store, project, device, names, start, at + 1, cycle)
            start = at + 1
            if partial:
                partial = False
                continue
            if got is None or len(got[1]) < MIN_CYCLES:
                continue
            first, rows = got
            unit = len(owner) + 1
            owner[unit] = device
            units.append(np.full(len(rows), unit, dtype=np.int64))
            cycles.append(np.arange(1, len(rows) + 1, dtype=np.int64))
            sensors.append(rows)
            lo = first * cycle if lo is None else min(lo, first * cycle)
            hi = at if hi is None else max(hi, at)
    if len(owner) < MIN_UNITS:
        raise InvalidInput(
            f"{len(owner)} run-to-failure trajectories of device type {device_type!r} in project "
            f"{project!r} ({n_failures} failures recorded on {len(failures)} of its "
            f"{len(devices)} devices): an RUL model needs at least {MIN_UNITS}",
            hint="record failures (POST /devices/{d}/maintenance, kind failure, or a CSV import) "
            f"with at least {MIN_CYCLES} cycles of stored telemetry before each",
        )
    if len(set(owner.values())) < 2:
        raise InvalidInput("every trajectory is of one device: cross-validation needs two")
    n = sum(len(u) for u in units)
    t = Trajectories(
        np.concatenate(units),
        np.concatenate(cycles),
        np.zeros((n, SETTINGS)),
        np.vstack(sensors),
    )
    assert lo is not None and hi is not None
    return FleetData(t, owner, names, n_failures, lo, hi)


def _has_data(store: SeriesStore, project: str, device: str, metric: str, before: int) -> bool:
    return len(store.query_raw(SeriesKey(project, device, metric), 0, before, limit=1).ts) > 0


@dataclass
class Fitted:
    model: RulModel
    data: FleetData
    cycle: int


def fit_fleet(
    data: FleetData,
    device_type: str,
    *,
    cycle: int = HOUR,
    cap: float = 125.0,
    seed: int = 0,
    on_step: Callable[[int, str], None] | None = None,
) -> Fitted:
    """``RulModel.fit`` on the fleet's trajectories, folds over devices (LightGBM, 1 thread)."""
    folds = min(5, len(set(data.devices.values())))
    model = RulModel.fit(
        data.trajectories,
        cap=cap,
        folds=folds,
        seed=seed,
        threads=1,
        source=f"fleet: device type {device_type}",
        on_step=on_step,
        groups=data.devices,
    )
    model.card["fleet"] = {
        "device_type": device_type,
        "metrics": data.metrics,
        "cycle_seconds": cycle / 1_000_000,
        "devices": len(set(data.devices.values())),
        "trajectories": len(data.devices),
        "failures": data.failures,
        "cycles": "time buckets of cycle_seconds, each metric's mean; gaps take the last value",
    }
    model.card["training"]["units"] = len(data.devices)
    return Fitted(model, data, cycle)


def register(
    registry: Registry,
    models_dir: Path,
    project: str,
    device_type: str,
    fitted: Fitted,
    *,
    actor: str,
    tenant: str | None = None,
) -> ModelVersion:
    """File ``fitted`` as the next draft ``rul`` version of ``type:<device_type>``, its files
    kept with it in the registry (for every node) and in ``models_dir/<model id>/``."""
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fit-", dir=models_dir))
    try:
        fitted.model.save(staging)
        card = json.loads((staging / "model.json").read_text())
        card.pop("normaliser", None)
        card.pop("trees", None)
        m = fitted.model.card
        model = registry.register_model(
            project,
            files=model_files.pack(staging),
            actor=actor,
            tenant=tenant,
            kind="rul",
            scope=scope(device_type),
            algorithm=m.get("model", "lightgbm-gbdt"),
            code_version=__version__,
            card=card,
            params={**m["params"], "cycle_seconds": fitted.cycle / 1_000_000},
            metrics=m["validation"],
            data_from=fitted.data.data_from,
            data_to=fitted.data.data_to,
            rows=len(fitted.data.trajectories),
        )
        staging.rename(models_dir / model.id)
        return model
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


@dataclass
class Deployed:
    """An active RUL model, loaded: what the service scores a device type with."""

    id: str
    version: int
    model: RulModel
    metrics: list[str]
    cycle: int

    def hours(self, cycles: float) -> float:
        return cycles * self.cycle / HOUR


def fetch(registry: Registry, models_dir: Path, m: ModelVersion) -> bool:
    """Unpack the files kept with ``m`` in the registry into ``models_dir/<id>/`` (a node that
    did not fit it); whether there were any."""
    got = registry.model_files(m.id)
    if got is None:
        return False
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=models_dir))
    try:
        model_files.unpack(got[0], got[1], staging / "m")
        try:
            (staging / "m").rename(models_dir / m.id)
        except OSError:  # another thread of this node got there first
            if not (models_dir / m.id / "model.json").is_file():
                raise
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load(models_dir: Path, m: ModelVersion, registry: Registry | None = None) -> Deployed:
    """The files of registered model ``m``: this node's copy, else (with ``registry``) the ones
    kept with it in the registry; ``NotFound`` when there are none."""
    directory = models_dir / m.id
    if not (directory / "model.json").is_file() and (
        registry is None or not fetch(registry, models_dir, m)
    ):
        raise NotFound(
            f"model {m.id} ({m.scope} v{m.version}) has no files in {models_dir} nor in the "
            "registry",
            hint="fit it on this platform (POST /projects/{p}/rul/fit or atoll rul fit)",
        )
    model = RulModel.load(directory)
    fleet = model.card.get("fleet") or {}
    if not fleet.get("metrics") or not fleet.get("cycle_seconds"):
        raise InvalidInput(f"model {m.id} was not fitted on a fleet (no metrics or cycle)")
    return Deployed(
        m.id, m.version, model, list(fleet["metrics"]), int(fleet["cycle_seconds"] * 1_000_000)
    )


@dataclass(frozen=True)
class Estimate:
    """An RUL estimate of a device at ``at`` (µs, the end of the last complete cycle)."""

    device: str
    at: int
    cycles: int
    rul: float
    low: float
    high: float


def score(
    registry: Registry,
    store: SeriesStore,
    project: str,
    device: str,
    d: Deployed,
    last_bucket: int,
) -> Estimate | None:
    """The RUL of ``device``'s run under way at the end of bucket ``last_bucket`` (a bucket
    index of ``d.cycle``); ``None`` when a metric has no reading in the run yet."""
    end = (last_bucket + 1) * d.cycle
    failed = registry.list_maintenance(device, kind="failure", until=end, limit=1)
    start = failed[0].at + 1 if failed else 0
    got = read_cycles(store, project, device, d.metrics, start, end, d.cycle)
    if got is None:
        return None
    rows = got[1]
    n = len(rows)
    t = Trajectories(
        np.ones(n, dtype=np.int64),
        np.arange(1, n + 1, dtype=np.int64),
        np.zeros((n, SETTINGS)),
        rows,
    )
    p = d.model.predict(t)[0]
    return Estimate(device, end, n, p.rul, p.low, p.high)
