"""Run the demo: platform + lab + simulated fleet with injected faults, then score what Atoll saw.

Timeline (wall clock, from the moment devices are live):

* before that, every device back-fills ``history_s`` of readings at its live rate, so charts have
  a past and every detector has learned what normal looks like. With ``fit_history`` every
  series' detector is then refitted on that stored hour, as an operator commissioning the lab
  would (``POST .../detection/refit``): the ``default`` detector becomes the fitted model of
  normal. Off by default: an hour of history is too short for the fitted model (measured in
  docs/BENCHMARKS.md, "The demo with fitted models": the same faults found, no sooner at the
  median, one or two more false alarms); the refit route shows it on any device;
* faults start one by one from ``first_fault_s`` on, ``fault_every_s`` apart, each on its own
  device, lasting the shortest duration its template declares;
* alarms raised by the rules (thresholds, silent sensors, frozen sensors, anomaly scores from the
  detectors) are the detections. A fault is *detected* when an alarm names its device inside the
  fault window (plus a grace period); an alarm on a device with no fault then is a false alarm.

Recall is over the faults that have played out (ended, or been detected); faults still under
way when the demo stops are reported apart, never counted as hits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from atoll.client import Alarm, Client
from atoll.core import topics
from atoll.core.errors import AtollError
from atoll.core.events import decode_anomalies
from atoll.demo.lab import LAB, BuiltTenant, build_lab
from atoll.demo.maintenance import (
    RULE_NAME,
    Commissioned,
    commission,
    crew,
    failure_rows,
    maintenance_report,
)
from atoll.sim import Fault, Fleet, evaluate, write_ground_truth
from atoll.sim.fleet import DeviceFailure
from atoll.sim.mqtt import MqttFleet

if TYPE_CHECKING:
    from atoll.detect.service import DetectionService

log = logging.getLogger(__name__)

GRACE_S = 300.0
_SENSOR_FAULTS = frozenset({"sensor_dropout", "sensor_stuck"})


@dataclass
class DemoOptions:
    home: Path = Path(".atoll/demo")
    devices: int = 60
    rate: float = 1.0
    seed: int = 7
    http_port: int = 8080
    mqtt_port: int = 1883
    duration: float | None = None  # seconds live; None = until stopped
    history_s: float = 3600.0  # one episode-decision warm-up (docs/DETECTION.md)
    #: Refit every series on the back-filled history before going live (see above).
    fit_history: bool = False
    faults: int = 12
    first_fault_s: float = 20.0
    fault_every_s: float = 15.0


@dataclass
class DemoSummary:
    devices: int = 0
    tenants: int = 0
    points_ingested: int = 0
    messages: int = 0
    rejected: int = 0
    anomalies: int = 0
    alarms_raised: int = 0
    faults_injected: int = 0
    faults_played_out: int = 0
    faults_in_progress: int = 0
    faults_detected: int = 0
    precision: float | None = None
    recall: float | None = None
    median_ttd_s: float | None = None
    false_alarms: int = 0
    by_kind: dict[str, Any] = field(default_factory=dict)
    live_seconds: float = 0.0
    #: Per fault: device, kind, start (epoch s), and the first alarm that caught it (seconds
    #: after the start and its rule), or ``None`` while none has.
    faults: list[dict[str, Any]] = field(default_factory=list)
    #: The alarms that caught no fault: device, rule and when (epoch s).
    false_alarm_list: list[dict[str, Any]] = field(default_factory=list)
    #: The RUL model put to work at start (id, version, device type, trajectories, CV RMSE in
    #: cycles, fit seconds), or ``None`` (``rul_note`` says why).
    rul_model: dict[str, Any] | None = None
    rul_note: str | None = None
    #: Per motor that wore out and failed while live: when, and how long before its failure the
    #: maintenance alarm was first seen (``None``: it was not).
    maintenance: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def free_port(preferred: int, host: str = "127.0.0.1") -> int:
    """``preferred`` if nothing listens there, else any free port (the demo must just work)."""
    for port in (preferred, 0):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free port")


def demo_duration(spec: Any) -> float:
    """A fault compressed to demo time: 4 to 8 minutes instead of the template's 10 to 20.

    Ramps get steeper, so they cross limits sooner; silent and frozen sensors still last longer
    than the rules' timeouts (2 minutes silent, 1 minute flat for 2 minutes).
    """
    return float(min(max(spec.duration_s[0] * 0.4, 240.0), 480.0))


def plan_faults(
    fleet: Fleet, count: int, live_start: float, first_s: float, every_s: float
) -> list[Fault]:
    """``count`` faults on distinct devices, kinds spread over what each type declares."""
    by_template: dict[str, list[int]] = {}
    for i, d in enumerate(fleet.devices):
        if fleet.device_type(i).faults:
            by_template.setdefault(d.template, []).append(i)
    # Round-robin over sectors (so every one shows faults); devices come interleaved by type
    # (see plan_devices), and each type cycles through its fault kinds.
    queues = [list(v) for _, v in sorted(by_template.items())]
    kind_turn: dict[str, int] = {}
    planned: list[Fault] = []
    t = live_start + first_s
    while len(planned) < count and any(queues):
        for q in queues:
            if not q or len(planned) >= count:
                continue
            i = q.pop(0)
            dtype = fleet.device_type(i)
            # Faults that show in the values come first, failing sensors after them.
            kinds = sorted(dtype.faults, key=lambda k: (k.value in _SENSOR_FAULTS, k.value))
            key = fleet.devices[i].template
            kind = kinds[kind_turn.get(key, 0) % len(kinds)]
            kind_turn[key] = kind_turn.get(key, 0) + 1
            spec = dtype.faults[kind]
            metrics = tuple(dict.fromkeys(e.metric for e in spec.effects))
            fault = Fault(
                fleet.devices[i].device_id, kind.value, metrics, t, t + demo_duration(spec)
            )
            fleet.inject(fault)
            planned.append(fault)
            t += every_s
    return planned


def score(faults: list[Fault], alarms: list[Alarm], now: float) -> dict[str, Any]:
    """Evaluate alarms against the faults that have played out by ``now``."""
    detections = [{"device": a.device, "ts": a.raised_at.timestamp()} for a in alarms]
    overall = evaluate(faults, detections, grace_s=GRACE_S)
    # A fault has played out when it is over (plus the grace period) or already detected; the
    # per-fault evaluate() keeps one definition of "detected".
    played = [
        f
        for f in faults
        if f.end + GRACE_S <= now or evaluate([f], detections, grace_s=GRACE_S)["detected"]
    ]
    in_progress = len(faults) - len(played)
    # False alarms are judged over every alarm so far; recall only over finished faults.
    result = (
        evaluate(played, detections, grace_s=GRACE_S)
        if played
        else {"precision": None, "recall": None, "median_ttd": None, "detected": 0, "by_kind": {}}
    )
    result["precision"] = overall["precision"]
    result["false_positives"] = overall["false_positives"]
    result["played_out"] = len(played)
    result["in_progress"] = in_progress
    return result


async def run_demo(
    opts: DemoOptions,
    *,
    say: Callable[[str], None] = print,
    progress: Callable[[DemoSummary], None] | None = None,
    stop: asyncio.Event | None = None,
    ready: Callable[[dict[str, Any]], None] | None = None,
    step: Callable[[str, float, float], None] | None = None,
) -> DemoSummary:
    """Run the whole demo; returns the summary when ``stop`` is set or ``duration`` is over."""
    from atoll.config import Settings
    from atoll.platform import Platform, tune_interpreter

    tune_interpreter()
    stop = stop or asyncio.Event()
    # A demo lab is disposable: start from a clean directory so the first-start secrets are new.
    if opts.home.exists():
        shutil.rmtree(opts.home)
    settings = Settings(
        home=opts.home,
        http_port=free_port(opts.http_port),
        mqtt_port=free_port(opts.mqtt_port),
        rul_refresh_s=5.0,  # the RUL model activated at start scores within seconds
    )
    summary = DemoSummary()
    async with Platform(settings) as platform:
        secrets = platform.bootstrap
        # Found by class name (this module does not import atoll.detect): typed for the checker.
        detect = cast(
            "DetectionService | None",
            next((s for s in platform.services if type(s).__name__ == "DetectionService"), None),
        )
        anomalies = 0

        async def count_anomalies(msg) -> None:
            nonlocal anomalies
            anomalies += sum(1 for e in decode_anomalies(msg.data) if e.is_anomaly)

        assert platform.bus is not None  # opened by start()
        await platform.bus.subscribe(topics.ALL_ANOMALIES, count_anomalies)

        say(f"Building the lab: {len(LAB)} enterprises, {opts.devices} devices …")

        admin = Client(platform.http_url, secrets.api_key)
        built = await asyncio.to_thread(
            build_lab,
            admin,
            lambda key: Client(platform.http_url, key),
            opts.devices,
            on_progress=lambda m: say(f"  {m}"),
            on_device=(lambda n, total: step("registering devices", n, total)) if step else None,
        )
        summary.tenants = len(built)
        # Each enterprise's alarms, read with its own key as its operators would.
        tenants = [Client(platform.http_url, b.api_key) for b in built]
        devices = [d for b in built for d in b.devices]
        summary.devices = len(devices)

        now = time.time()
        fleet = Fleet(
            devices,
            seed=opts.seed,
            rate=opts.rate,
            start=now - opts.history_s,
            templates=[b.template for b in built],
            wear=True,  # the motors wear out and fail (atoll.demo.maintenance)
        )
        assert platform.mqtt_url is not None  # the demo's platform runs its MQTT broker
        mqtt = MqttFleet(fleet, platform.mqtt_url)
        try:
            stats = await mqtt.connect()
            if stats.connected != len(devices):
                say(f"warning: only {stats.connected}/{len(devices)} devices connected")
            say(
                f"Back-filling {opts.history_s / 60:.0f} minutes of history so the detectors "
                "know what normal looks like …"
            )
            history_end = time.time()

            def history_progress(_stats) -> None:
                if step:
                    step(
                        "back-filling history",
                        min(fleet.cursor, history_end) - now + opts.history_s,
                        opts.history_s,
                    )

            await mqtt.publish_history(
                history_end, 1.0 / opts.rate, per_message=120, on_progress=history_progress
            )
            history_progress(None)
            if opts.fit_history and detect is not None:
                say("Fitting each series' model of normal on that history …")
                t_fit = time.perf_counter()
                fitted, skipped = await _fit_on_history(detect, built)
                say(
                    f"  {fitted} models fitted in {time.perf_counter() - t_fit:.0f} s"
                    + (f" ({skipped} series keep their detector)" if skipped else "")
                )
            worn = _worn(built, tenants)
            # The RUL model is fitted in the background: the demo goes live meanwhile, and the
            # motors are judged once it is active (seconds later).
            for b, _, device_type in worn:
                n = len(_failed(fleet, b, device_type, history_end))
                say(
                    f"Predictive maintenance: {n} {device_type} failures in that history; "
                    f"fitting the {device_type} RUL model on them in the background …"
                )
            commissioning = [
                asyncio.create_task(
                    _commission(summary, fleet, b, client, device_type, history_end, say)
                )
                for b, client, device_type in worn
            ]
            live_start = time.time()
            # History ends where live begins: skip the gap the back-fill itself took.
            fleet.resume_at(live_start)
            faults = plan_faults(
                fleet, opts.faults, live_start, opts.first_fault_s, opts.fault_every_s
            )
            summary.faults_injected = len(faults)
            write_ground_truth(opts.home / "ground_truth.json", faults, seed=opts.seed)
            info = {
                "console": platform.http_url,
                "user": secrets.username,
                "password": secrets.password,
                "api_key": secrets.api_key,
                "mqtt": platform.mqtt_url,
                "ground_truth": str(opts.home / "ground_truth.json"),
                "tenants": [
                    {
                        "tenant": b.spec.name,
                        "sector": b.spec.template,
                        "project": b.project,
                        "devices": len(b.devices),
                        "user": b.username,
                        "password": b.password,
                    }
                    for b in built
                ],
            }
            (opts.home / "demo.json").write_text(json.dumps(info, indent=2))
            if ready:
                ready(info)

            seen: dict[int, tuple[str, float]] = {}  # maintenance alarm -> device, first seen
            crews = [
                asyncio.create_task(crew(client, b.project, fleet, history_end, stop))
                for b, client, _ in worn
            ]

            async def refresh() -> None:
                await _refresh(
                    summary, tenants, faults, platform, anomalies, live_start, fleet, seen
                )

            async def watch() -> None:
                while True:
                    await asyncio.sleep(1.0)
                    try:
                        await refresh()
                    except AtollError as e:
                        log.warning("demo status refresh failed: %s", e)
                    if progress:
                        progress(summary)

            watcher = asyncio.create_task(watch())
            runner = asyncio.create_task(mqtt.run(duration=opts.duration, stop=stop))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(runner, 10)
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await asyncio.gather(*crews, *commissioning, return_exceptions=True)
            await asyncio.sleep(1.5)  # let the last readings reach the rules
            await refresh()
            # The wear-outs that showed while live, the ones still under way included.
            end = time.time()
            wear = [f for f in fleet.wear_outs(live_start, end + 86400) if f.start <= end]
            write_ground_truth(opts.home / "ground_truth.json", faults + wear, seed=opts.seed)
        finally:
            await mqtt.close()
            admin.close()
            for client in tenants:
                client.close()
    return summary


def _worn(built: list[BuiltTenant], tenants: list[Client]) -> list[tuple[BuiltTenant, Client, str]]:
    """The tenants whose template has device types that wear out, with each such type."""
    return [
        (b, client, dt.name)
        for b, client in zip(built, tenants, strict=True)
        for dt in b.template.device_types
        if dt.wear is not None and any(d.device_type == dt.name for d in b.devices)
    ]


def _failed(fleet: Fleet, b: BuiltTenant, device_type: str, until: float) -> list[DeviceFailure]:
    ours = {d.device_id for d in b.devices if d.device_type == device_type}
    return [f for f in fleet.failures(fleet.start, until) if f.device in ours]


async def _commission(
    summary: DemoSummary,
    fleet: Fleet,
    b: BuiltTenant,
    client: Client,
    device_type: str,
    history_end: float,
    say: Callable[[str], None],
) -> None:
    """Import the back-filled hour's failures, then fit and put to work the type's RUL model."""
    failed = _failed(fleet, b, device_type, history_end)
    try:
        if failed:
            await asyncio.to_thread(client.import_maintenance, b.project, failure_rows(failed))
        done: Commissioned = await asyncio.to_thread(commission, client, b.project, device_type)
    except AtollError as e:
        summary.rul_note = f"no RUL model for {device_type}: {e.message}"
        say(f"  {summary.rul_note}")
        return
    summary.rul_model = {**asdict(done), "active_at": time.time()}
    rmse = "" if done.rmse_cycles is None else f", CV RMSE {done.rmse_cycles:.1f} min"
    say(
        f"{device_type} RUL model v{done.version} fitted in the background in "
        f"{done.fit_seconds:.1f} s on {done.trajectories} runs to failure{rmse}; approved, "
        f"activated, rule {RULE_NAME!r}"
    )


async def _fit_on_history(detect: DetectionService, built: list[Any]) -> tuple[int, int]:
    """Refit every device's series on its stored history once the back-fill is judged;
    ``(fitted, kept their detector)``."""
    # The back-fill's last messages may still be on their way to detection: wait until nothing
    # is queued and nothing more was judged for a second (two minutes at most).
    last: float = -1.0
    still = 0
    for _ in range(1200):
        seen = detect.stats["points"] + detect.stats["messages"]
        still = still + 1 if seen == last and not detect.stats["queued_messages"] else 0
        if still >= 10:
            break
        last = seen
        await asyncio.sleep(0.1)
    results = await asyncio.gather(
        *(detect.refit(b.project, d.device_id) for b in built for d in b.devices)
    )
    return sum(len(done) for done, _ in results), sum(len(skip) for _, skip in results)


async def _refresh(
    summary: DemoSummary,
    tenants: list[Client],
    faults: list[Fault],
    platform: Any,
    anomalies: int,
    live_start: float,
    fleet: Fleet,
    seen: dict[int, tuple[str, float]],
) -> None:
    def read() -> list[Alarm]:
        return [a for c in tenants for a in c.alarms(limit=5000)]

    alarms = await asyncio.to_thread(read)  # the platform serves the SDK's calls on this loop
    now = time.time()
    for a in alarms:
        if a.rule_name == RULE_NAME:
            seen.setdefault(a.id, (a.device, now))
    # Motors wearing out: a wear-out that began showing while live is a fault to catch; one
    # already showing when the demo went live is not judged (nor are the alarms it raises).
    wear = fleet.wear_outs(live_start, now + 86400)
    judged = [f for f in wear if live_start <= f.start <= now]
    before = [f for f in wear if f.start < live_start]
    faults = faults + judged
    live = [
        a
        for a in alarms
        if a.raised_at.timestamp() >= live_start and (not _within(a, before) or _within(a, faults))
    ]
    result = score(faults, live, now)
    st = platform.pipeline.stats
    summary.points_ingested = st.points
    summary.messages = st.messages
    summary.rejected = st.rejected
    summary.anomalies = anomalies
    summary.alarms_raised = len(live)
    summary.faults_played_out = result["played_out"]
    summary.faults_in_progress = result["in_progress"]
    summary.faults_detected = result["detected"]
    summary.precision = result["precision"]
    summary.recall = result["recall"]
    summary.median_ttd_s = result["median_ttd"]
    summary.false_alarms = result["false_positives"]
    summary.by_kind = result.get("by_kind", {})
    summary.live_seconds = now - live_start
    summary.faults = caught_by(faults, live, now)
    failed: list[DeviceFailure] = fleet.failures(live_start, now)
    first_seen: dict[str, list[float]] = {}
    for device, t in seen.values():
        first_seen.setdefault(device, []).append(t)
    summary.maintenance = maintenance_report(failed, first_seen)
    summary.false_alarm_list = [
        {"device": a.device, "rule": a.rule_name, "raised_at": a.raised_at.timestamp()}
        for a in live
        if not any(
            a.device == f.device and f.start <= a.raised_at.timestamp() <= f.end + GRACE_S
            for f in faults
        )
    ]


def _within(a: Alarm, faults: list[Fault]) -> bool:
    t = a.raised_at.timestamp()
    return any(a.device == f.device and f.start <= t <= f.end + GRACE_S for f in faults)


def caught_by(
    faults: list[Fault], alarms: list[Alarm], now: float | None = None
) -> list[dict[str, Any]]:
    """Each fault with the first alarm on its device inside its window (plus the grace period);
    with ``now``, ``under_way`` says which uncaught ones have not played out yet."""
    out = []
    for f in faults:
        hits = sorted(
            (a.raised_at.timestamp(), a.rule_name)
            for a in alarms
            if a.device == f.device and f.start <= a.raised_at.timestamp() <= f.end + GRACE_S
        )
        first = hits[0] if hits else None
        out.append(
            {
                "device": f.device,
                "kind": f.kind,
                "start": f.start,
                "detected_after_s": None if first is None else round(first[0] - f.start, 1),
                "rule": None if first is None else first[1],
                "under_way": first is None and now is not None and f.end + GRACE_S > now,
            }
        )
    return out


__all__ = ["DemoOptions", "DemoSummary", "caught_by", "plan_faults", "run_demo", "score"]
