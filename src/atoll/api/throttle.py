"""Slow down password guessing: after a few failures, a username (or client address) waits.

In-process and in-memory: enough for one ``atoll up``; a cluster would keep it in the bus or DB.

>>> t = LoginThrottle(max_failures=2, window_s=60)
>>> t.failed("admin", now=0); t.failed("admin", now=1)
>>> t.retry_after("admin", now=2)
58.0
>>> t.retry_after("admin", now=61)
0.0
"""

from __future__ import annotations

import threading
import time
from collections import deque

from atoll.core.errors import AtollError


class TooManyAttempts(AtollError):
    status = 429
    code = "too_many_requests"


class LoginThrottle:
    def __init__(
        self, max_failures: int = 5, window_s: float = 300.0, max_keys: int = 10_000
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def retry_after(self, key: str, now: float | None = None) -> float:
        """Seconds until ``key`` may try again (0 = now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._recent(key, now)
            if len(q) < self.max_failures:
                return 0.0
            return max(0.0, float(q[0] + self.window_s - now))

    def failed(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._failures) >= self.max_keys:
                self._failures.clear()  # bounded memory beats perfect memory under a flood
            q = self._failures.setdefault(key, deque())
            q.append(now)
            while len(q) > self.max_failures:
                q.popleft()

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def check(self, key: str) -> None:
        wait = self.retry_after(key)
        if wait > 0:
            raise TooManyAttempts(
                f"too many failed logins; try again in {int(wait) + 1} s",
                hint="an admin can reset the password with PATCH /api/v1/users/{username}",
            )
