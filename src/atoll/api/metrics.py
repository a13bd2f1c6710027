"""``GET /api/v1/metrics``: the node's counters in the Prometheus text format, for the platform
operator's monitoring (docs/SCALING.md, "Monitoring").

What is exported is what the services already count, read at scrape time: the ingest pipeline
(messages and points stored, commits, refusals by reason, throttling), the detection service
(readings scored, skipped as late, dropped, anomalies, fits), the rules service and the RUL
service, plus the process (CPU, memory, open files; ``prometheus_client``'s own collectors).
Each source is a name and a function answering its counters (``MetricsSource``), composed by the
runtime (``atoll.platform``) and passed in ``ApiContext.metrics``: nothing is looked up by name.

A counter is ``atoll_<source>_<name>_total``; a level (a queue's depth, the last commit's size)
is a gauge ``atoll_<source>_<name>``; a nested mapping of counters (refusals by reason) is one
counter with a label. Only a platform admin may read it (an API key is the one authorisation
Atoll has; Prometheus sends it with ``authorization: {credentials_file: ...}``).

>>> text = exposition({"ingest": lambda: {"messages": 3, "queued_bytes": 10,
...                                        "by_reason": {"bad_json": 2}}})
>>> for line in text.splitlines():
...     if line.startswith("atoll_"):
...         print(line)
atoll_ingest_by_reason_total{reason="bad_json"} 2.0
atoll_ingest_messages_total 3.0
atoll_ingest_queued_bytes 10.0
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from atoll.api.deps import Admin, Ctx
from atoll.core.errors import Forbidden

#: A source of counters: ``{name: number}``, a nested ``{name: {label value: number}}`` for a
#: labelled counter. Read at every scrape, on the event loop's thread pool: cheap reads only.
MetricsSource = Callable[[], Mapping[str, Any]]

#: Names that are levels, not counts since start (exported as gauges).
GAUGES = frozenset(
    {
        "queued_messages",
        "queued_bytes",
        "last_commit_points",
        "warm_up_seconds",
        "warmed_detectors",
        "outbox",
        "owned_partitions",
    }
)
#: The label of a nested mapping, by its name (else ``key``).
LABELS = {"by_reason": "reason"}

_NAME = re.compile(r"[^a-zA-Z0-9_]")

router = APIRouter(tags=["health"])


class _Stats(Collector):
    def __init__(self, sources: Mapping[str, MetricsSource]) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        for source, read in sorted(self.sources.items()):
            for key, value in sorted(read().items()):
                name = f"atoll_{_NAME.sub('_', source)}_{_NAME.sub('_', key)}"
                if isinstance(value, Mapping):
                    label = LABELS.get(key, "key")
                    family = CounterMetricFamily(name, f"{source} {key}", labels=[label])
                    for k, v in sorted(value.items()):
                        if _number(v):
                            family.add_metric([str(k)], float(v))
                    yield family
                elif not _number(value):
                    continue
                elif key in GAUGES:
                    yield GaugeMetricFamily(name, f"{source} {key}", value=float(value))
                else:
                    yield CounterMetricFamily(name, f"{source} {key}", value=float(value))


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def exposition(sources: Mapping[str, MetricsSource], *, process: bool = False) -> str:
    """The Prometheus text exposition of ``sources`` (and the process's own, if asked)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Stats(sources))
    if process:
        for c in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(c)
    return generate_latest(registry).decode()


@router.get(
    "/metrics",
    summary="This node's counters, in the Prometheus text format (platform admin)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(who: Admin, ctx: Ctx) -> Response:
    """Counters of the services running on the node that answers (each node of a cluster is
    scraped on its own): ingest, detection, rules, RUL, and the process."""
    if not who.platform_admin:
        raise Forbidden("metrics are the platform's: this needs a platform admin's key")
    return Response(
        exposition(ctx.metrics or {}, process=True),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )


__all__ = ["GAUGES", "MetricsSource", "exposition", "router"]
