"""Load generators for ``atoll bench ingest`` (run as separate processes so they do not share
the server's GIL). Each prints one JSON line when done.

    python -m atoll.bench.loadgen mqtt --port P --device D --secret S \
        --messages N --readings R --metrics K
    python -m atoll.bench.loadgen http --url U --device D --secret S \
        --requests N --readings R --metrics K
    python -m atoll.bench.loadgen sub --port P --topic T --messages N

``mqtt`` and ``http`` print ``ready`` once connected and start when a line arrives on stdin.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

T0_MS = 1_767_225_600_000  # 2026-01-01


def payload(first: int, readings: int, metrics: int) -> bytes:
    """``readings`` readings 1 ms apart, each with ``metrics`` values (m0..m{K-1})."""
    rows = []
    for r in range(readings):
        i = first + r
        vals = ",".join(f'"m{k}":{(i * 7 + k) % 1000 / 10}' for k in range(metrics))
        rows.append(f'{{"ts":{T0_MS + i},"values":{{{vals}}}}}')
    return ("[" + ",".join(rows) + "]").encode() if readings > 1 else rows[0].encode()


def _wait_go() -> None:
    print("ready", flush=True)
    sys.stdin.readline()


def run_mqtt(a) -> dict:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=a.device)
    c.username_pw_set(a.device, a.secret)
    c.max_inflight_messages_set(a.inflight)
    connected = threading.Event()
    c.on_connect = lambda *args: connected.set()
    c.connect("127.0.0.1", a.port)
    c.loop_start()
    connected.wait(10)
    bodies = [payload(n * a.readings, a.readings, a.metrics) for n in range(a.messages)]
    topic = f"atoll/v1/devices/{a.device}/telemetry"
    _wait_go()
    t = time.perf_counter()
    infos = [c.publish(topic, b, qos=a.qos) for b in bodies]
    for i in infos:
        i.wait_for_publish(120)
    seconds = time.perf_counter() - t
    c.disconnect()
    c.loop_stop()
    return {
        "messages": a.messages,
        "acked": sum(i.is_published() for i in infos),
        "seconds": seconds,
    }


def run_http(a) -> dict:
    import httpx

    bodies = [payload(n * a.readings, a.readings, a.metrics) for n in range(a.requests)]
    url = a.url.rstrip("/") + "/api/v1/ingest/telemetry"
    ok = [0]
    lock = threading.Lock()

    def worker(part: list[bytes]) -> None:
        with httpx.Client(
            auth=(a.device, a.secret), timeout=60, headers={"content-type": "application/json"}
        ) as h:
            for b in part:
                r = h.post(url, content=b)
                if r.status_code < 300:
                    with lock:
                        ok[0] += 1

    parts = [bodies[i :: a.concurrency] for i in range(a.concurrency)]
    threads = [threading.Thread(target=worker, args=(p,)) for p in parts]
    _wait_go()
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return {"requests": a.requests, "ok": ok[0], "seconds": time.perf_counter() - t}


def run_sub(a) -> dict:
    import paho.mqtt.client as mqtt

    got = [0]
    first: list[float] = []
    done = threading.Event()

    def on_message(client, userdata, msg) -> None:
        if not first:
            first.append(time.perf_counter())
        got[0] += 1
        if got[0] >= a.messages:
            done.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{time.time_ns()}")
    subscribed = threading.Event()
    c.on_subscribe = lambda *args: subscribed.set()
    c.on_message = on_message
    c.connect("127.0.0.1", a.port)
    c.subscribe(a.topic, qos=a.qos)
    c.loop_start()
    subscribed.wait(10)
    print("ready", flush=True)
    done.wait(a.timeout)
    last = time.perf_counter()
    c.loop_stop()
    return {"messages": got[0], "seconds": (last - first[0]) if first else None}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    m = sub.add_parser("mqtt")
    m.add_argument("--port", type=int, required=True)
    m.add_argument("--device", required=True)
    m.add_argument("--secret", required=True)
    m.add_argument("--messages", type=int, default=1000)
    m.add_argument("--qos", type=int, default=1)
    m.add_argument("--inflight", type=int, default=1000)
    h = sub.add_parser("http")
    h.add_argument("--url", required=True)
    h.add_argument("--device", required=True)
    h.add_argument("--secret", required=True)
    h.add_argument("--requests", type=int, default=100)
    h.add_argument("--concurrency", type=int, default=4)
    for p in (m, h):
        p.add_argument("--readings", type=int, default=100)
        p.add_argument("--metrics", type=int, default=10)
    s = sub.add_parser("sub")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--topic", required=True)
    s.add_argument("--messages", type=int, required=True)
    s.add_argument("--qos", type=int, default=1)
    s.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args(argv)
    out = {"mqtt": run_mqtt, "http": run_http, "sub": run_sub}[a.mode](a)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
