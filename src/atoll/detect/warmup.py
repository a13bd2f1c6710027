"""Compiled kernels ready before the first reading: a writable numba cache, and a warm-up pass.

numba compiles a kernel on its first call (tens of seconds for the default detector on a busy
2-core machine) unless its on-disk cache (``cache=True``) already holds it. The detection service
calls :func:`use_kernel_cache` and then :func:`warm_up` in a daemon thread at start, so neither
a compile nor a cache load happens on the event loop, and stopping never waits for a compile.

Where the cache goes: ``NUMBA_CACHE_DIR`` if set; else ``__pycache__`` next to the sources (an
editable install, or a writable site-packages); else (a read-only site-packages) the platform's
data directory, ``<home>/cache/numba``.

>>> import numpy as np
>>> from atoll.detect.registry import get_detector
>>> warm_up([(get_detector("ewma"), 0)])
1
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from atoll.detect.port import Detector

log = logging.getLogger(__name__)

#: Readings per warm-up call: past every detector's own warm-up, so each Python-level branch that
#: calls a kernel has run once (numba compiles a whole kernel per argument types, not per branch).
WARM_UP_READINGS = 400
#: ... of which this many are first given to ``fit`` (enough for a fitted model of normal).
WARM_UP_HISTORY = 300
_PACKAGE_DIR = Path(__file__).resolve().parent


def _writable(directory: Path) -> bool:
    # The same test numba makes before it picks a cache directory.
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=directory).close()
    except OSError:
        return False
    return True


def use_kernel_cache(home: str | os.PathLike, package_dir: Path = _PACKAGE_DIR) -> Path:
    """Make numba cache the detectors' kernels somewhere writable; returns the directory.

    Kernels decorated before this call (their modules already imported) are pointed at the new
    directory too. Setting ``numba.config.CACHE_DIR`` applies to the whole process, like
    ``NUMBA_CACHE_DIR`` would.
    """
    from numba.core import config

    # numba.core.config creates its settings through globals(): mypy cannot see them.
    cache_dir: str = config.CACHE_DIR  # type: ignore[attr-defined]
    if cache_dir:
        return Path(cache_dir)
    in_tree = package_dir / "__pycache__"
    if _writable(in_tree):
        return in_tree
    fallback = Path(home) / "cache" / "numba"
    fallback.mkdir(parents=True, exist_ok=True)
    config.CACHE_DIR = str(fallback)  # type: ignore[attr-defined]
    os.environ["NUMBA_CACHE_DIR"] = str(fallback)  # for processes started from this one
    recached = _recache_kernels()
    log.info(
        "%s is not writable; numba caches detector kernels in %s (%d kernels moved)",
        in_tree,
        fallback,
        recached,
    )
    return fallback


def _recache_kernels() -> int:
    """Re-pick the cache directory of every cached kernel of ``atoll.detect`` already imported."""
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    count = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("atoll.detect.") or module is None:
            continue
        for value in list(vars(module).values()):
            if (
                isinstance(value, Dispatcher)
                # numba's dispatcher.pyi leaves out the ``_cache`` that every Dispatcher has.
                and not isinstance(value._cache, NullCache)  # type: ignore[attr-defined]
                and value.__module__ == name
            ):
                value.enable_caching()
                count += 1
    return count


def warm_up(units: Iterable[tuple[Detector, int]]) -> int:
    """Run each ``(detector, width)``'s ``fit`` and ``score_many`` once on a few readings, as the
    service and ``atoll detect`` pass them: float64 values (1-D for ``width == 0``, else ``width``
    columns with a NaN for a missing sensor) and int64 timestamps. Its kernels are then compiled,
    or loaded from the cache. Give it throw-away detectors: they learn the readings. Returns how
    many detectors ran."""
    rng = np.random.default_rng(0)
    n, h = WARM_UP_READINGS, WARM_UP_HISTORY
    ts = np.arange(n, dtype=np.int64) * 60_000_000
    count = 0
    for det, width in units:
        x = rng.normal(size=(n, width)) if width else rng.normal(size=n)
        if width:
            x[n - 10, -1] = np.nan
        det.fit(x[:h], ts[:h])
        det.score_many(x[h:], ts[h:])
        count += 1
    return count
