"""Edge agent: how fast a backlog drains to a local platform while live data keeps flowing.

    .venv/bin/python bench/edge_drain.py --target atoll --json bench/results/edge_drain.json
    .venv/bin/python bench/edge_drain.py --target mosquitto   # the agent alone, no platform

The agent's buffer is filled first, untimed (``--backlog`` readings of ``--children`` children
× ``--metrics`` metrics, as an outage would leave it), then ``atoll edge run`` starts with the
sim connector adding ``--live`` points/s. Timed: from the agent's start (connect, children
declared) until the platform acknowledged the whole backlog (the buffer's saved position),
polled every 0.1 s. ``drain_points_per_s`` is backlog points over that time; ``live_points`` is
what the sim added meanwhile (also forwarded in the same stream, not counted in the rate).

``--target atoll`` runs a real ``atoll up`` (embedded broker and store, rate limits lifted:
see bench/edge_setup.py) with the gateway registered; its children are registered by the
agent's ``gateway/connect``. ``--target mosquitto`` forwards to a bare broker.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from edge_setup import agent_config, machine, start_agent, stop_agent, target, workdir, write_json

from atoll.edge.buffer import DurableBuffer, inspect
from atoll.edge.port import EdgeReading


def fill(buffer_dir: Path, backlog: int, children: int, metrics: int) -> tuple[int, float]:
    b = DurableBuffer(buffer_dir, max_bytes=4 << 30).open()
    t0_us = (int(time.time()) - 3600) * 1_000_000  # an hour ago: within the platform's window
    start = time.perf_counter()
    batch = []
    for k in range(backlog):
        child = k % children
        ts = t0_us + (k // children) * 10_000  # 100 Hz per child
        batch.append(
            EdgeReading(f"b-{child + 1}", ts, {f"m{j}": float(k % 997 + j) for j in range(metrics)})
        )
        if len(batch) == 5000:
            b.append(batch)
            batch = []
    if batch:
        b.append(batch)
    last = b.stats().depth
    b.close()
    return last, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--target", choices=("atoll", "mosquitto"), default="atoll")
    p.add_argument("--backlog", type=int, default=200_000, help="readings in the backlog")
    p.add_argument("--children", type=int, default=100)
    p.add_argument("--metrics", type=int, default=5)
    p.add_argument("--live", type=float, default=1000, help="live points/s during the drain")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--workdir", type=Path)
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    wd = workdir(args.workdir)
    info = machine()
    buf = wd / "buffer"
    depth, fill_s = fill(buf, args.backlog, args.children, args.metrics)
    backlog_points = depth * args.metrics
    live_children = 10
    live = {
        "type": "sim",
        "name": "live",
        "children": live_children,
        "metrics": args.metrics,
        "rate_hz": args.live / (live_children * args.metrics),
        "prefix": "live-",
    }
    with target(args.target, wd) as t:
        t0 = time.monotonic()
        agent = start_agent(agent_config(t, buf, [live]), wd)
        first_ack = None
        try:
            while time.monotonic() - t0 < args.timeout:
                st = inspect(buf)
                if first_ack is None and st.acked > 0:
                    first_ack = time.monotonic() - t0
                if st.acked >= depth:
                    break
                time.sleep(0.1)
            elapsed = time.monotonic() - t0
            st = inspect(buf)
        finally:
            stop_agent(agent)
        stored = None
        if t.api is not None:  # PUBACK means stored: count one child's series to show it
            r = t.api.get("/devices/b-1/series/m0", params={"start": 0, "mode": "raw"})
            stored = len(r.json()["ts"]) if r.status_code == 200 else r.text
    drained = min(st.acked, depth)
    result = {
        "benchmark": "edge_drain",
        "command": "python bench/edge_drain.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}"
            for k, v in vars(args).items()
            if v is not None and k not in ("json", "workdir")
        ),
        **info,
        "target": args.target,
        "backlog_readings": depth,
        "backlog_points": backlog_points,
        "fill_s": round(fill_s, 2),
        "drained_readings": drained,
        "finished": drained >= depth,
        "elapsed_s": round(elapsed, 2),
        "first_ack_s": None if first_ack is None else round(first_ack, 2),
        "drain_points_per_s": round(drained * args.metrics / elapsed),
        "drain_points_per_s_after_first_ack": (
            round(drained * args.metrics / (elapsed - first_ack))
            if first_ack is not None and elapsed > first_ack
            else None
        ),
        "live_points_per_s": args.live,
        "stored_points_of_b-1/m0": stored,
        "expected_points_of_b-1/m0": (depth + args.children - 1) // args.children,
        "buffer_after": st.to_dict(),
    }
    write_json(args.json, result)


if __name__ == "__main__":
    main()
