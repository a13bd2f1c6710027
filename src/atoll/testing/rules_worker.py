"""One partitioned rules worker process, for fault tests.

``python -m atoll.testing.rules_worker NATS_URL DB_URL --member w1 [--lease 3] [--tick 0.5]``

A ``RulesService`` on the rules database at ``DB_URL`` (PostgreSQL in the tests) evaluating the
telemetry and anomaly events of the NATS bus at ``NATS_URL``
(``nats://h:p,h:p?stream=S&prefix=P&replicas=3&partitions=16``) through ``NatsPartitions``
(group ``rules``), with checkpoints and the reports' leader lease, as ``atoll up`` wires it on
NATS. It prints ``ready`` once it has joined, and hands its partitions over on SIGTERM/SIGINT.
Every ``--status`` seconds it prints one JSON line of its stats and partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import signal
import sys

from atoll.bus.nats_partitions import (
    NatsCheckpointStore,
    NatsLeaseStore,
    NatsPartitions,
    leader_for,
)
from atoll.rules.service import RulesService
from atoll.testing.detect_worker import _connect


async def run(args: argparse.Namespace) -> None:
    bus = await _connect(args.url)
    leases = NatsLeaseStore(bus, f"{bus.stream}_rules_leases", ttl=args.lease)
    consumer = NatsPartitions(
        bus,
        leases,
        member=args.member,
        heartbeat=args.lease / 4,
        ack_wait=max(30.0, 3 * args.lease),
    )
    checkpoints = NatsCheckpointStore(bus, f"{bus.stream}_rules_state")
    await checkpoints.load("rules.none")  # opens (or creates) the bucket before any claim
    svc = RulesService(
        bus,
        db=args.db,
        tick_interval=args.tick,
        partitions=consumer,
        checkpoints=checkpoints,
        checkpoint_interval=args.checkpoint,
        leader=leader_for(bus, "reports", lease_s=args.lease, member=args.member),
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
        print(json.dumps({"member": args.member, "owned": owned, **svc.stats}), flush=True)
    await svc.stop()
    await bus.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="atoll.testing.rules_worker")
    ap.add_argument("url")
    ap.add_argument("db")
    ap.add_argument("--member", required=True)
    ap.add_argument("--lease", type=float, default=3.0)
    ap.add_argument("--tick", type=float, default=0.5)
    ap.add_argument("--checkpoint", type=float, default=1.0)
    ap.add_argument("--status", type=float, default=2.0)
    args = ap.parse_args(argv)
    faulthandler.register(signal.SIGUSR1, file=sys.stderr)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
