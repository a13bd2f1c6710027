"""``atoll bench cluster``: a real (tiny) run on NATS, PostgreSQL and Mosquitto with one
``atoll up`` node, the targets' arithmetic, and clear errors for bad options."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from atoll.bench.cluster import targets
from atoll.cli.main import app
from atoll.testing.postgres import throwaway_database


def _binaries_or_skip() -> None:
    missing = [
        b
        for b in ("nats-server", "mosquitto", "mosquitto_pub")
        if not (shutil.which(b) or shutil.which(b, path="/usr/sbin:/usr/bin"))
    ]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    with throwaway_database("atoll_bench_probe", skip_if_unreachable=True):
        pass


def test_bench_cluster_runs_one_node_and_writes_json(tmp_path):
    _binaries_or_skip()
    out = tmp_path / "cluster.json"
    r = CliRunner().invoke(
        app,
        [
            *("bench", "cluster", "--nodes", "1", "--no-embedded"),
            *("--devices", "2", "--messages", "40", "--readings", "2", "--json", str(out)),
        ],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    (run,) = doc["runs"]
    assert (run["mode"], run["nodes"], run["complete"]) == ("cluster", 1, True)
    # stored points are counted in PostgreSQL: each of the 2 x 40 x 2 sent once
    assert run["points_stored"] == run["points_sent"] == 160
    assert run["points_scored"] == 160 and run["share_scored"] == 1.0
    assert run["node_cpu_seconds"] > 0 and run["persisted_points_per_second"] > 0
    assert "load average" in doc["machine"]["uptime_at_start"]


def test_targets_compare_cluster_nodes_with_the_embedded_default():
    runs = [
        {"mode": "embedded", "nodes": 1, "node_cpu_us_per_persisted_point": 100.0},
        {"mode": "cluster", "nodes": 1, "node_cpu_us_per_persisted_point": 160.0},
        {"mode": "cluster", "nodes": 2, "node_cpu_us_per_persisted_point": 170.0},
        {"mode": "cluster", "nodes": 3, "node_cpu_us_per_persisted_point": 180.0},
    ]
    assert targets(runs) == {
        "cluster1_vs_embedded_cpu_ratio": 1.6,
        "cluster1_vs_embedded_met": False,
        "cpu_growth_1_to_3_nodes": 0.125,
        "cpu_growth_met": True,
    }
    assert targets(runs[1:2]) == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "one"], "--nodes takes numbers"),
        (["--nodes", "0"], "between 1 and 8"),
        (["--nats-nodes", "2"], "1 or 3"),
        (["--devices", "0"], "devices"),
    ],
)
def test_bad_options_are_refused_with_a_message(args, message):
    r = CliRunner().invoke(app, ["bench", "cluster", *args])
    assert r.exit_code == 2
    assert message in r.output
