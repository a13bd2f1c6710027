import gc
import json

from typer.testing import CliRunner

import atoll.platform
from atoll.cli.main import app


def test_bench_ingest_runs_every_phase_and_writes_json(tmp_path, monkeypatch):
    # The bench tunes this process for one long-lived platform; later tests' platforms must not
    # be frozen out of the garbage collector.
    monkeypatch.setattr(atoll.platform, "_tuned", False)
    out = tmp_path / "ingest.json"
    try:
        r = CliRunner().invoke(
            app, ["bench", "ingest", "--scale", "0.01", "--chart-days", "1", "--json", str(out)]
        )
    finally:
        gc.unfreeze()
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    # Each phase waits until every point is stored, so these are persisted counts.
    assert doc["mqtt_batched"]["points"] == 2 * 3 * 1000
    assert doc["mqtt_single"]["messages"] == 2 * 200
    assert doc["mqtt_single"]["server_cpu_us_per_message"] > 0
    assert doc["gc_frozen_objects"] > 10_000  # the started platform's objects
    assert doc["http_batched"]["points"] == 2 * 1 * 1000
    assert doc["store_raw_append"]["points"] == 100_000
    assert set(doc["chart_queries_width_1000"]) == {"1 day"}
    assert {"mqtt_batched_vs_store_raw", "http_batched_vs_store_raw"} <= set(doc["ratios"])
