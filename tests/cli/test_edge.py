"""``atoll edge check | status | run``: clear messages for bad files, a real run against
Mosquitto stopped by SIGTERM within seconds with a summary, the buffer read while it runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from typer.testing import CliRunner

from atoll.cli.main import app
from tests.edge.conftest import GW, SECRET

pytestmark = pytest.mark.timeout(90)

runner = CliRunner()


def _write(tmp_path, **over) -> str:
    doc = {
        "platform": "mqtt://127.0.0.1:1883",
        "gateway": {"id": GW, "secret_file": "secret.txt"},
        "buffer": {"dir": "buf", "max_bytes": "8MiB", "full_policy": "stop_reading"},
        "connectors": [{"type": "sim", "name": "line-1", "children": 3}],
    }
    doc.update(over)
    (tmp_path / "secret.txt").write_text(SECRET + "\n")
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_check_accepts_a_good_file(tmp_path):
    r = runner.invoke(app, ["edge", "check", "--config", _write(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "connector line-1: 3 child devices" in r.output
    assert "stop_reading when full" in r.output


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"platform": "http://x"}, "platform must be mqtt://host:port"),
        ({"buffer": {"dir": "b", "max_bytes": "10KB"}}, "buffer.max_bytes: buffer.max_bytes must"),
        ({"buffer": {"dir": "b", "full_policy": "panic"}}, "buffer.full_policy"),
        ({"gateway": {"id": GW}}, "give exactly one of gateway.secret"),
        ({"connectors": [{"type": "sim", "name": "a"}, {"type": "sim", "name": "a"}]}, "unique"),
        ({"connectors": [{"type": "opcua-x", "name": "a"}]}, "unknown type 'opcua-x'"),
        ({"connectors": [{"type": "sim", "name": "a", "rate_hz": 0}]}, "connector a: rate_hz"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
        ({"detection": {"enabled": True, "detector": "nope"}}, "detection: "),
        ({"detection": {"enabled": True, "decision": {"bogus": 1}}}, "bogus"),
        ({"detection": {"webhooks": [{"url": "ftp://x"}]}}, "detection.webhooks.0.url"),
    ],
)
def test_check_names_what_is_wrong(tmp_path, over, message):
    r = runner.invoke(app, ["edge", "check", "--config", _write(tmp_path, **over)])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output


def test_check_missing_file_and_bad_yaml(tmp_path):
    r = runner.invoke(app, ["edge", "check", "--config", str(tmp_path / "none.yaml")])
    assert r.exit_code == 2 and "cannot read" in r.output and "hint" in r.output
    (tmp_path / "bad.yaml").write_text("platform: [unclosed")
    r = runner.invoke(app, ["edge", "check", "--config", str(tmp_path / "bad.yaml")])
    assert r.exit_code == 2 and "not valid YAML" in r.output


def test_status_without_buffer_says_so(tmp_path):
    r = runner.invoke(app, ["edge", "status", "--config", _write(tmp_path)])
    assert r.exit_code == 1 and "no buffer at" in r.output


def test_run_buffers_offline_and_stops_on_sigterm(tmp_path):
    cfg = _write(
        tmp_path,
        platform="mqtt://127.0.0.1:1",  # nothing listens: everything stays in the buffer
        connectors=[{"type": "sim", "name": "line-1", "children": 3, "rate_hz": 20}],
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "atoll.cli.main", "edge", "run", "--config", cfg],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        depth = 0
        while time.monotonic() < deadline and depth < 60:
            time.sleep(0.3)
            r = runner.invoke(app, ["edge", "status", "--config", cfg, "--json"])
            if r.exit_code == 0:
                depth = json.loads(r.output)["depth"]
        assert depth >= 60, "the running agent's buffer did not grow"
        r = runner.invoke(app, ["edge", "status", "--config", cfg])
        assert "depth" in r.output and "oldest" in r.output and "quarantined" in r.output
        # a second agent on the same buffer is refused with the reason
        second = subprocess.run(
            [sys.executable, "-m", "atoll.cli.main", "edge", "run", "--config", cfg],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2, second.stderr
        assert "another process uses the buffer" in second.stderr
        assert "Traceback" not in second.stderr
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert time.monotonic() - t0 < 5
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "summary" in out and "buffer depth" in out
