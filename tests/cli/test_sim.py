"""``atoll sim`` end to end against a real Mosquitto with a password file."""

from __future__ import annotations

import json
import secrets

import pytest
from typer.testing import CliRunner

from atoll.cli.main import app
from atoll.sim import Fleet, read_ground_truth
from atoll.sim.mosquitto import Mosquitto

pytestmark = pytest.mark.timeout(90)


def test_sim_publishes_with_credentials_and_writes_stats_and_ground_truth(tmp_path):
    plan = Fleet.build(["manufacturing", "retail"], 20, seed=3)
    creds = {d.device_id: secrets.token_hex(12) for d in plan.devices}
    cred_file = tmp_path / "creds.json"
    cred_file.write_text(json.dumps(creds))
    with Mosquitto(tmp_path / "broker", creds) as broker:
        result = CliRunner().invoke(
            app,
            [
                "sim",
                "--devices",
                "20",
                "--rate",
                "2",
                "--duration",
                "2",
                "--broker",
                broker.url,
                "--credentials",
                str(cred_file),
                "-t",
                "manufacturing",
                "-t",
                "retail",
                "--faults",
                "3",
                "--ground-truth",
                str(tmp_path / "gt.json"),
                "--history",
                "600",
                "--history-step",
                "60",
                "--json",
                str(tmp_path / "stats.json"),
            ],
        )
    assert result.exit_code == 0, result.output
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["connected"] == 20 and stats["refused"] == 0
    # 10 minutes of history at 1/min: one batch message per device; then 2 s live at 2/s.
    assert stats["published"] == stats["acked"] == 20 + 20 * 4
    assert stats["msgs_per_s"] > 0 and stats["points_per_s"] > stats["msgs_per_s"]
    assert "msgs/s" in result.output
    faults = read_ground_truth(tmp_path / "gt.json")
    assert len(faults) == 3 and {f.device for f in faults} <= set(creds)


def test_sim_explains_bad_input(tmp_path):
    bad = tmp_path / "creds.json"
    bad.write_text("[]")
    result = CliRunner().invoke(app, ["sim", "--credentials", str(bad), "--duration", "1"])
    assert result.exit_code == 2
    assert "non-empty JSON object" in result.output
    result = CliRunner().invoke(app, ["sim", "--api", "http://127.0.0.1:9", "--duration", "1"])
    assert result.exit_code == 2 and "--api-key" in result.output
    result = CliRunner().invoke(app, ["sim", "-t", "aquaculture", "--duration", "1"])
    assert result.exit_code == 2 and "known templates" in result.output


def test_sim_over_tls_with_a_ca_file(tmp_path):
    creds = {f"tls-{i}": f"secret-{i}" for i in range(3)}
    cred_file = tmp_path / "creds.json"
    cred_file.write_text(json.dumps(creds))
    with Mosquitto(tmp_path / "broker", creds, tls=True) as broker:
        result = CliRunner().invoke(
            app,
            [
                "sim",
                "--broker",
                broker.url,
                "--ca-file",
                broker.ca_file,
                "--credentials",
                str(cred_file),
                "-t",
                "finance",
                "--rate",
                "2",
                "--duration",
                "1",
                "--json",
                str(tmp_path / "stats.json"),
            ],
        )
    assert result.exit_code == 0, result.output
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["connected"] == 3 and stats["acked"] == stats["published"] == 3 * 2
