import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _bench(script: str, out, *args: str) -> dict:
    """Run ``bench/<script>`` with ``--json out`` and small settings; its JSON."""
    subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--json", str(out), *args],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return json.loads(out.read_text())


def test_chart_query_benchmark_writes_json(tmp_path):
    r = _bench(
        "chart_query.py", tmp_path / "r.json", "--days", "2", "--chunk", "50000", "--runs", "1"
    )
    assert r["append"]["points"] == 2 * 86_400 and r["append"]["points_per_second"] > 0
    assert {c["range"] for c in r["chart"]} == {"1 day"}
    assert all(0 < c["points_returned"] <= 2 * c["width"] for c in r["chart"])


def test_resend_benchmark_writes_json_and_the_store_keeps_each_reading_once(tmp_path):
    args = ("--days", "1", "--series", "3", "--live", "5", "--late", "2")
    r = _bench("store_resend.py", tmp_path / "r.json", *args)
    for section in ("live", "lost_puback", "late_resend", "batch_duplicates"):
        assert r[section]["appends"] > 0 and r[section]["points_per_second"] > 0, section
    assert r["series_0_points_stored"] == r["series_0_distinct_readings"]


def test_ab_benchmark_compares_a_baseline_tree_with_this_one(tmp_path):
    # This tree against itself: the harness loads the baseline's store as a package of its own.
    args = ("--baseline", str(REPO / "src"), "--live", "4", "--bulk", "2", "--series", "3")
    r = _bench("store_ab.py", tmp_path / "r.json", *args)
    for workload in ("live", "bulk"):
        w = r[workload]
        assert w["baseline"]["points_per_second"] > 0 and w["current"]["points_per_second"] > 0
        assert w["median_ratio_current_to_baseline"] > 0
    assert r["live"]["points_per_append"] == 3 * 5 and r["bulk"]["points_per_append"] == 86_400
