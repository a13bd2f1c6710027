"""Edge agent footprint: RSS and CPU of the agent process while forwarding live data.

    .venv/bin/python bench/edge_footprint.py --target atoll --json bench/results/edge_footprint.json
    .venv/bin/python bench/edge_footprint.py --detection \
        --json bench/results/edge_footprint_detection.json

``atoll edge run`` with the sim connector at ``--rate`` points/s (``--children`` children ×
``--metrics`` metrics) forwards to a local platform (``atoll up``) or a bare Mosquitto. After
``--warmup`` seconds, the agent process (``psutil``) is sampled every second for
``--duration`` seconds: RSS (max and last) and CPU as % of one core (its user + system time over
wall time); ``--detection`` switches detection at the edge on. The issue's target: ≤ 100 MB
RSS and ≤ 10 % of one core at 1,000 points/s. Also reported: how many readings the platform
acknowledged in the window (the agent kept up when it equals what the sim produced).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import psutil
from edge_setup import agent_config, machine, start_agent, stop_agent, target, workdir, write_json

from atoll.edge.buffer import inspect


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", choices=("atoll", "mosquitto"), default="atoll")
    p.add_argument("--rate", type=float, default=1000, help="points per second")
    p.add_argument("--children", type=int, default=20)
    p.add_argument("--metrics", type=int, default=5)
    p.add_argument("--warmup", type=float, default=15)
    p.add_argument("--duration", type=float, default=60)
    p.add_argument("--detection", action="store_true", help="detection at the edge switched on")
    p.add_argument("--workdir", type=Path)
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    wd = workdir(args.workdir)
    info = machine()
    sim = {
        "type": "sim",
        "name": "line",
        "children": args.children,
        "metrics": args.metrics,
        "rate_hz": args.rate / (args.children * args.metrics),
    }
    buf = wd / "buffer"
    with target(args.target, wd) as t:
        extra: dict = {"status_interval_s": 30}
        if args.detection:
            extra["detection"] = {"enabled": True}
        agent = start_agent(agent_config(t, buf, [sim], **extra), wd)
        try:
            proc = psutil.Process(agent.pid)
            time.sleep(args.warmup)
            acked0 = inspect(buf).acked
            cpu0 = proc.cpu_times()
            t0 = time.monotonic()
            rss = []
            while time.monotonic() - t0 < args.duration:
                time.sleep(1)
                rss.append(proc.memory_info().rss)
            cpu1 = proc.cpu_times()
            wall = time.monotonic() - t0
            st = inspect(buf)
        finally:
            stop_agent(agent)
    cpu_s = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    result = {
        "benchmark": "edge_footprint",
        "command": "python bench/edge_footprint.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if v not in (None, False) and k not in ("json", "workdir")
        ),
        **info,
        "target": args.target,
        "detection": args.detection,
        "points_per_s": args.rate,
        "window_s": round(wall, 1),
        "rss_mb_max": round(max(rss) / 1e6, 1),
        "rss_mb_last": round(rss[-1] / 1e6, 1),
        "cpu_percent_of_one_core": round(100 * cpu_s / wall, 2),
        "readings_acked_in_window": st.acked - acked0,
        "readings_expected_in_window": round(wall * args.rate / args.metrics),
        "buffer_depth_at_end": st.depth,
        "targets": {"rss_mb": 100, "cpu_percent": 10},
    }
    write_json(args.json, result)


if __name__ == "__main__":
    main()
