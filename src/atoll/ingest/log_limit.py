"""Rate-limited logging: hostile traffic must not be able to fill the disk with log lines.

A flood of bad connections or refused messages produces one line per event at several call
sites (Atoll's refusals, amqtt, websockets, and asyncio's ``accept`` which, in CPython 3.11,
logs up to the listen backlog per event-loop pass once file descriptors run out: 64 MB of
tracebacks in seconds). ``LogLimit`` is a ``logging.Filter`` that lets at most ``burst``
records per call site (and per ``extra={"limit_key": ...}``, e.g. a refusal reason) through
per ``interval``; the next record let through, or ``report()``, says how many were dropped.

>>> limit = LogLimit(burst=2, interval=60.0)
>>> logger = logging.getLogger("doctest.log_limit")
>>> logger.addFilter(limit)
>>> for i in range(5):
...     logger.warning("refused %d", i)
>>> limit.suppressed()
3
>>> logger.removeFilter(limit)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

#: Loggers that hostile network input can make write a line per event.
NETWORK_LOGGERS = (
    "asyncio",
    "amqtt",
    "amqtt.broker",
    "amqtt.mqtt.protocol.handler",
    "amqtt.mqtt.protocol.broker_handler",
    "websockets",
    "websockets.server",
    "uvicorn.error",
    "atoll.ingest.pipeline",
    "atoll.ingest.embedded_broker",
    "atoll.ingest.embedded_connection",
    "atoll.ingest.admission",
    "atoll.ingest.external",
)


class LogLimit(logging.Filter):
    def __init__(
        self, burst: int = 20, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst = burst
        self.interval = interval
        self._clock = clock
        # key -> [window start, let through, suppressed, a sample message]
        self._windows: dict[tuple, list] = {}
        self._loggers: list[logging.Logger] = []

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.pathname, record.lineno, getattr(record, "limit_key", None))
        now = self._clock()
        w = self._windows.get(key)
        if w is None or now - w[0] >= self.interval:
            dropped = w[2] if w is not None else 0
            w = self._windows[key] = [now, 0, 0, None]
            if dropped:
                record.msg = f"{record.msg} [{dropped} similar lines suppressed before this one]"
        if w[1] < self.burst:
            w[1] += 1
            return True
        w[2] += 1
        w[3] = record
        return False

    def suppressed(self) -> int:
        """Lines dropped in the current windows."""
        return sum(w[2] for w in self._windows.values())

    def report(self) -> None:
        """Log one summary per call site whose window has ended with lines dropped, and forget
        ended windows (so memory stays bounded by the call sites, not the traffic)."""
        now = self._clock()
        for key, w in list(self._windows.items()):
            if now - w[0] < self.interval:
                continue
            del self._windows[key]
            if w[2]:
                sample: logging.LogRecord = w[3]
                log.warning(
                    "suppressed %d log lines like this one from %s in %.0f s: %s",
                    w[2],
                    sample.name,
                    self.interval,
                    _message(sample),
                )

    # -- installing ------------------------------------------------------------------------

    def install(self, names: Iterable[str] = NETWORK_LOGGERS) -> None:
        for name in names:
            logger = logging.getLogger(name)
            logger.addFilter(self)
            self._loggers.append(logger)

    def uninstall(self) -> None:
        for logger in self._loggers:
            logger.removeFilter(self)
        self._loggers.clear()

    async def run(self) -> None:
        """``report()`` once per interval until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            self.report()


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()[:300]
    except Exception:  # noqa: BLE001 - a record whose arguments do not format
        return str(record.msg)[:300]
