"""Where numba caches the detectors' kernels, and the warm-up pass."""

from __future__ import annotations

import numpy as np
import pytest
from numba.core import config

from atoll.detect import extremes
from atoll.detect.registry import get_detector
from atoll.detect.warmup import _recache_kernels, use_kernel_cache, warm_up


@pytest.fixture
def numba_cache_dir(monkeypatch):
    """Leave numba's process-wide cache choice as it was, kernels included."""
    monkeypatch.setattr(config, "CACHE_DIR", "")
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    yield
    monkeypatch.undo()
    _recache_kernels()


def _cache_path(kernel) -> str:
    return kernel._cache._cache_path


def test_a_writable_source_tree_keeps_the_cache_beside_the_sources(tmp_path, numba_cache_dir):
    pkg = tmp_path / "pkg"
    assert use_kernel_cache(tmp_path / "home", package_dir=pkg) == pkg / "__pycache__"
    assert not config.CACHE_DIR and not (tmp_path / "home").exists()


def test_a_read_only_install_caches_in_the_data_directory(tmp_path, numba_cache_dir):
    (tmp_path / "site-packages").write_text(
        ""
    )  # a file: nothing can be created below it, even as root
    home = tmp_path / "home"
    where = use_kernel_cache(home, package_dir=tmp_path / "site-packages" / "atoll" / "detect")
    assert where == home / "cache" / "numba" and where.is_dir()
    assert config.CACHE_DIR == str(where)
    # Kernels imported before the call were moved there too.
    assert _cache_path(extremes.range_break).startswith(str(where))
    extremes.supported_break.enable_caching()  # as a module imported afterwards would be
    assert _cache_path(extremes.supported_break).startswith(str(where))


def test_numba_cache_dir_set_by_the_operator_wins(tmp_path, numba_cache_dir, monkeypatch):
    monkeypatch.setattr(config, "CACHE_DIR", str(tmp_path / "mine"))
    assert (
        use_kernel_cache(tmp_path / "home", package_dir=tmp_path / "nowhere") == tmp_path / "mine"
    )


def test_warm_up_runs_each_detector_with_the_services_input_shapes():
    uni, joint = get_detector("ewma"), get_detector("mahalanobis")
    assert warm_up([(uni, 0), (joint, 3)]) == 2
    assert uni.score_one(0.0) >= 0.0 and joint.score_one(np.zeros(3)) >= 0.0  # they learned
