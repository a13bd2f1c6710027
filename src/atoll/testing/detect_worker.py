"""One partitioned detection worker process, for fault tests and benchmarks.

``python -m atoll.testing.detect_worker NATS_URL --member w1 [--lease 3] [--lateness 0.5]``

A ``DetectionService`` (no store, ``ewma`` by default) consuming the telemetry of the NATS bus at
``NATS_URL`` (``nats://h:p,h:p?stream=S&prefix=P&replicas=3&partitions=16``) through
``NatsPartitions`` (``--mode group``: one group subscription, as before partitions). It prints
``ready`` once it has joined, and hands its partitions over on SIGTERM/SIGINT. Every
``--status`` seconds it prints one JSON line of its stats and partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import logging
import signal
import sys

from atoll.bus.nats import NatsBus
from atoll.bus.nats_partitions import NatsCheckpointStore, NatsLeaseStore, NatsPartitions
from atoll.core.errors import Unavailable
from atoll.detect.service import DetectionService


async def run(args: argparse.Namespace) -> None:
    bus = await _connect(args.url)
    leases = NatsLeaseStore(bus, f"{bus.stream}_detect_leases", ttl=args.lease)
    consumer = NatsPartitions(
        bus, leases, member=args.member, heartbeat=args.lease / 3, batch=args.batch
    )
    if args.mode == "group":
        # Before partitions: one durable group consumer shared by every worker (messages, not
        # devices, are spread over the workers); each keeps its own state.
        svc = DetectionService(bus, None, default=args.detector, group="detect")
    else:
        checkpoints = NatsCheckpointStore(bus, f"{bus.stream}_detect_state")
        await checkpoints.load("detect.none")  # opens (or creates) the bucket before any claim
        svc = DetectionService(
            bus,
            None,
            default=args.detector,
            partitions=consumer,
            checkpoints=checkpoints,
            lateness=args.lateness,
            checkpoint_interval=args.checkpoint,
        )
    await svc.start()
    print("ready", flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    while not done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), args.status)
        owned = sorted(svc.partitioned.owned()) if svc.partitioned else []
        stats = {
            k: svc.stats[k]
            for k in ("messages", "points", "replayed", "checkpoints", "skipped_late")
        }
        print(json.dumps({"member": args.member, "owned": owned, **stats}), flush=True)
    await svc.stop()
    await bus.close()


async def _connect(url: str, attempts: int = 5) -> NatsBus:
    """A connected bus; a JetStream cluster busy electing or creating can time out a first try."""
    for attempt in range(1, attempts + 1):
        bus = NatsBus.from_url(url)
        try:
            await bus.connect()
            return bus
        except Unavailable as e:
            if attempt == attempts:
                raise
            logging.warning("connecting failed (try %d of %d): %s", attempt, attempts, e.message)
            await asyncio.sleep(attempt)
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--member", required=True)
    p.add_argument("--lease", type=float, default=3.0)
    p.add_argument("--lateness", type=float, default=0.5)
    p.add_argument("--checkpoint", type=float, default=1.0)
    p.add_argument("--detector", default="ewma")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--status", type=float, default=1.0)
    p.add_argument("--mode", choices=("partitioned", "group"), default="partitioned")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # where a stuck worker is
    logging.getLogger("atoll.bus.nats_partitions").setLevel(logging.INFO)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
