"""Conformance suite for the ``Detector`` port: ``check_detector(factory, catalog=...)``.

Every registered detector passes it (``tests/detect/test_conformance.py``); a new detector is
"done" when it does too. It uses a detector only through the port (and ``Condition``, for one
that decides itself). ``catalog`` (the registry) restores detectors made of others; with it,
``catalog.restore`` must give back the same detector as ``from_state``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from atoll.detect.port import Catalog, Condition, Detector


def _stream(n: int, multivariate: bool, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    base = 10 + 3 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 0.5, n)
    base[n // 2] += 25  # one clear spike
    ts = 1_700_000_000_000_000 + t.astype(np.int64) * 300_000_000  # 5-minute readings, µs
    if multivariate:
        return np.column_stack([base, 0.5 * base + rng.normal(0, 0.2, n), rng.normal(0, 1, n)]), ts
    return base, ts


def check_detector(
    factory: Callable[[], Detector], *, catalog: Catalog | None = None, n: int = 1500
) -> None:
    det = factory()
    assert isinstance(det, Detector)
    multi = det.multivariate
    assert isinstance(multi, bool)
    values, ts = _stream(n, multi)

    # The batch form is exactly score-then-learn, one reading at a time.
    one = factory()
    looped = np.empty(n)
    for i in range(n):
        looped[i] = one.score_one(values[i], int(ts[i]))
        one.learn_one(values[i], int(ts[i]))
    batch = factory().score_many(values, ts)
    np.testing.assert_allclose(batch, looped, rtol=1e-9, atol=1e-12)
    assert np.all((batch >= 0) & (batch <= 1)), "scores must lie in [0, 1]"
    assert batch[n // 2] > np.median(batch), "an obvious spike should score above typical readings"

    # score_one only looks: scoring twice gives the same answer and changes nothing learned.
    probe = factory()
    probe.score_many(values[: n // 2], ts[: n // 2])
    before = probe.state()
    first = probe.score_one(values[n // 2], int(ts[n // 2]))
    assert probe.score_one(values[n // 2], int(ts[n // 2])) == first
    assert probe.state() == before, "score_one must not learn"
    threshold = probe.default_threshold
    assert 0.0 < threshold <= 1.0
    again = type(probe).from_state(before, catalog)
    assert again.default_threshold == threshold and again.multivariate == multi

    # Strictly online: changing the future leaves the past untouched.
    future = values.copy()
    future[n // 3 :] = future[n // 3 :] * -3 + 100
    moved = factory().score_many(future, ts)
    np.testing.assert_array_equal(moved[: n // 3], batch[: n // 3])

    # State round-trips: a restored detector continues exactly where the original was.
    half = factory()
    half.score_many(values[: n // 2], ts[: n // 2])
    restored = type(half).from_state(half.state(), catalog)
    assert restored.state() == half.state()
    others = [catalog.restore(half.state())] if catalog is not None else []
    for other in others:
        assert type(other) is type(restored) and other.state() == half.state()
    tail_a = half.score_many(values[n // 2 :], ts[n // 2 :])
    tail_b = restored.score_many(values[n // 2 :], ts[n // 2 :])
    np.testing.assert_array_equal(tail_a, tail_b)
    np.testing.assert_array_equal(tail_a, batch[n // 2 :])
    for other in others:
        np.testing.assert_array_equal(other.score_many(values[n // 2 :], ts[n // 2 :]), tail_a)

    # Memory per series is bounded: ten times the data, the same state size.
    small, big = factory(), factory()
    small.score_many(values, ts)
    many, many_ts = _stream(10 * n, multi, seed=3)
    big.score_many(many, many_ts)
    assert len(big.state()) <= len(small.state()) + 64
    assert big.nbytes() == small.nbytes()

    _check_fit(factory, catalog, values, ts)

    # Missing readings (NaN) neither crash nor poison what was learned.
    gap = factory()
    gap.score_many(values[:200], ts[:200])
    nan = np.full_like(values[0], np.nan) if multi else np.nan
    gap.learn_one(nan, int(ts[200]))
    s = gap.score_one(values[201], int(ts[201]))
    assert 0.0 <= s <= 1.0


def _check_fit(
    factory: Callable[[], Detector], catalog: Catalog | None, values: np.ndarray, ts: np.ndarray
) -> None:
    """``fit`` on known-normal history, then online: the same guarantees as without it."""
    n = len(values)
    h = n // 2  # the history ends right before the spike
    fitted = factory()
    fitted.fit(values[:h], ts[:h])
    after = fitted.state()
    again = factory()
    again.fit(values[:h], ts[:h])
    assert again.state() == after, "fit must be deterministic"
    restored = type(fitted).from_state(after, catalog)
    assert restored.state() == after
    if catalog is not None:
        assert catalog.restore(after).state() == after

    # After fit, the batch form is still score-then-learn one reading at a time, and a detector
    # restored from the fitted state continues exactly alike.
    batch = fitted.score_many(values[h:], ts[h:])
    looped = np.empty(n - h)
    for i in range(h, n):
        looped[i - h] = restored.score_one(values[i], int(ts[i]))
        restored.learn_one(values[i], int(ts[i]))
    np.testing.assert_allclose(batch, looped, rtol=1e-9, atol=1e-12)
    assert restored.state() == fitted.state()
    assert np.all((batch >= 0) & (batch <= 1)), "scores must lie in [0, 1]"
    assert batch[0] > np.median(batch), "a spike right after the history should stand out"

    # Strictly online after fit too.
    moved = factory()
    moved.fit(values[:h], ts[:h])
    future = values[h:].copy()
    future[100:] = future[100:] * -3 + 100
    np.testing.assert_array_equal(moved.score_many(future, ts[h:])[:100], batch[:100])

    # A detector that decides itself: its decisions one reading at a time (look, then learn) are
    # those of the batch, whose scores are score_many's.
    if isinstance(fitted, Condition):
        a, b = factory(), factory()
        a.fit(values[:h], ts[:h])
        b.fit(values[:h], ts[:h])
        assert isinstance(a, Condition) and isinstance(b, Condition)
        scores, flags = a.detect_many(values[h:], ts[h:])
        np.testing.assert_array_equal(scores, batch)
        one_by_one = np.zeros(n - h, dtype=bool)
        for i in range(h, n):
            s, one_by_one[i - h] = b.decide_one(values[i], int(ts[i]))
            assert s == b.score_one(values[i], int(ts[i]))
            b.learn_one(values[i], int(ts[i]))
        np.testing.assert_array_equal(flags, one_by_one)
        assert flags[0], "the spike right after the history is abnormal"

    # History with missing readings, or none at all, is fine.
    holes = values[:h].copy()
    holes[::7] = np.nan
    for history in (holes, values[:0]):
        det = factory()
        det.fit(history, ts[: len(history)])
        assert np.all(np.isfinite(det.score_many(values[h:], ts[h:])))
