"""The fitted healthy baseline across sensors (``atoll.detect.pca``) and its place in ``Joint``."""

from __future__ import annotations

import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.detect.multivariate import Joint
from atoll.detect.pca import PCABaseline
from atoll.detect.registry import REGISTRY, for_features, restore
from atoll.detect.threshold import onsets


def _rig(n: int, seed: int = 0) -> np.ndarray:
    """Three sensors tied to one load (a pump: load, current, flow), with noise."""
    rng = np.random.default_rng(seed)
    load = 1 + 0.1 * np.sin(np.arange(n) / 40) + np.cumsum(rng.normal(0, 0.001, n))
    return np.column_stack([load, 2 * load + 0.5, 30 * load]) + rng.normal(
        0, [0.01, 0.02, 0.3], (n, 3)
    )


def test_a_broken_relation_is_flagged_for_its_whole_episode_and_clears():
    x = _rig(4000)
    d = PCABaseline()
    d.fit(x[:2000])
    live = x[2000:].copy()
    live[600:1000, 1] += 0.06  # current up 3 noise sds while load and flow stay: a broken relation
    _, head = d.detect_many(live[:800])
    assert max(d.explain_one(live[800]).items(), key=lambda kv: kv[1])[0] == 1
    _, tail = d.detect_many(live[800:])
    flags = np.concatenate([head, tail])
    assert not flags[:600].any()
    assert flags[640:1000].mean() > 0.95
    assert not flags[1100:].any()
    assert onsets(flags).sum() == 1


def test_a_wild_single_reading_is_flagged():
    x = _rig(3000, seed=1)
    d = PCABaseline()
    d.fit(x[:2000])
    live = x[2000:].copy()
    live[500, 0] += 1.0  # a load spike with nothing else moving
    scores, flags = d.detect_many(live)
    assert int(np.argmax(scores)) == 500 and flags[500]


def test_accept_as_new_normal_stops_the_flag_and_keeps_the_thresholds():
    x = _rig(5000, seed=2)
    d = PCABaseline()
    d.fit(x[:2000])
    shifted = x[2000:].copy()
    shifted[:, 1] += 0.08
    _, before = d.detect_many(shifted[:500])
    assert before[50:].all()
    thresholds = d.describe()["thresholds"]
    d.accept(shifted[:1500])
    assert not d.flagged
    _, after = d.detect_many(shifted[1500:])
    assert after.mean() < 0.05
    assert d.describe()["thresholds"] == thresholds


def test_missing_and_constant_sensors():
    x = _rig(3000, seed=3)
    x[:, 2] = 5.0  # a sensor that never moved in the history
    d = PCABaseline()
    d.fit(x[:2000])
    live = x[2000:].copy()
    live[100:200, 0] = np.nan  # a sensor missing for a while says nothing
    _, flags = d.detect_many(live[:500])
    assert not flags.any()
    live[600:, 2] = 5.5  # the constant one moves: news
    _, flags = d.detect_many(live[500:])
    assert flags[120:].all()


def test_unfitted_baseline_fits_itself_on_its_first_readings():
    x = _rig(2000, seed=4)
    d = PCABaseline(self_fit=512)
    scores, flags = d.detect_many(x)
    assert d.fitted and not scores[:512].any() and not flags[:512].any()
    assert d.describe()["history"] == 512


def test_bad_parameters_and_shapes_are_refused():
    with pytest.raises(InvalidInput):
        PCABaseline(variance=0)
    with pytest.raises(InvalidInput):
        PCABaseline(smooth=0.5)
    d = PCABaseline()
    d.fit(_rig(1000))
    with pytest.raises(InvalidInput, match="expected 3 values"):
        d.detect_many(np.zeros((5, 4)))


def test_the_fitted_default_for_several_sensors_adds_the_baseline():
    det = for_features(3, "default", history=2000)
    assert isinstance(det, Joint) and isinstance(det.joint, PCABaseline)
    assert not isinstance(for_features(3, "default").joint, PCABaseline)
    x = _rig(4000, seed=5)
    det.fit(x[:2000])
    live = x[2000:].copy()
    live[600:1000, 1] += 0.06
    _, flags = det.detect_many(live[:800])
    again = restore(det.state())
    assert isinstance(again, Joint) and isinstance(again.joint, PCABaseline)
    np.testing.assert_array_equal(again.detect_many(live[800:])[1], det.detect_many(live[800:])[1])
    assert flags[640:800].all()


def test_a_joint_snapshot_from_before_the_baseline_still_restores():
    old = Joint(detector="ewma", catalog=REGISTRY)
    x = _rig(300, seed=6)
    old.score_many(x)
    snap = old._snapshot()
    del snap.params["joint"]  # what a state file written before "joint" existed holds
    back = Joint._from_snapshot(snap, REGISTRY)
    assert back.joint_kind == "mahalanobis"
    np.testing.assert_array_equal(back.score_many(x[:50]), old.score_many(x[:50]))


def test_joint_names_the_sensor_behind_a_broken_relation_not_just_the_relation():
    """In ``joint(fitted per sensor + pca)``, a reading only the baseline flags is explained by
    the sensors that pushed it (the baseline's shares), and batches explain as one by one."""
    x = _rig(4000, seed=3)
    live = x[2000:2800].copy()
    live[600:, 1] += 0.06  # current drifts off its relation with load and flow
    explained = []
    for chunk in (slice(0, 800), slice(0, 300)):  # one batch, then in pieces
        d = for_features(3, "default", history=2000)
        d.fit(x[:2000])
        parts = [live] if chunk.stop == 800 else [live[i : i + 50] for i in range(0, 800, 50)]
        got = [d.detect_explained(p) for p in parts]
        flags = np.concatenate([f for _, f, _ in got])
        weights = np.concatenate([why.weights for _, _, why in got])
        names = got[0][2].names
        explained.append((flags, weights))
    (flags, weights), (flags2, weights2) = explained
    assert names[-1] == "relation" and flags[650:].mean() > 0.9 and not flags[:600].any()
    by_relation = flags & (weights[:, -1] == 0)
    assert by_relation[650:].mean() > 0.9  # every such reading's weight is on sensors
    top = np.argmax(weights[650:, :3], axis=1)
    assert (top == 1).mean() > 0.9  # the current
    np.testing.assert_array_equal(flags, flags2)
    np.testing.assert_allclose(weights, weights2)
