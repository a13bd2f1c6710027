"""``atoll rules`` / ``atoll alarms`` against a real server (through the SDK)."""

import json
import time

import pytest
from typer.testing import CliRunner

import atoll as sdk
from atoll.cli.main import app
from atoll.core.points import PointBatch, SeriesKey
from tests.api.serving import ApiServer
from tests.client.conftest import wait_for

runner = CliRunner()
RULES = """\
channels:
  ops: {type: log}
rules:
  - name: Boiler too hot
    target: {device_type: boiler}
    condition: {type: threshold, metric: temperature, op: '>', value: 90}
    notify: {channels: [ops]}
"""


@pytest.fixture
def server(tmp_path):
    with ApiServer(tmp_path) as s, sdk.Client(s.url, s.boot.api_key) as c:
        c.create_project("Plant", id="plant")
        c.create_device_type("plant", "boiler", [{"name": "temperature"}])
        s.secret = c.register_device("plant", id="b1", device_type="boiler").credentials.secret
        yield s


def atoll(server, *args, key=None):
    env = {"ATOLL_URL": server.url, "ATOLL_API_KEY": server.boot.api_key if key is None else key}
    return runner.invoke(app, list(args), env=env)


def test_apply_list_backtest_and_act_on_alarms(server, tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    r = atoll(server, "rules", "apply", str(path), "-p", "plant")
    assert r.exit_code == 0 and "applied 1 rules, 1 channels to plant" in r.output, r.output
    r = atoll(server, "rules", "list", "-p", "plant", "--json")
    (rule,) = json.loads(r.output)
    assert (rule["id"], rule["condition"]["value"]) == ("boiler-too-hot", 90)

    now_us = int(time.time() * 1e6)
    server.store.append(
        PointBatch.of_series(
            SeriesKey("plant", "b1", "temperature"),
            [now_us - 600_000_000, now_us - 300_000_000],
            [95.0, 80.0],
        )
    )
    r = atoll(server, "rules", "backtest", str(path), "-p", "plant", "--start", "-1h", "--json")
    (episode,) = json.loads(r.output)
    assert (episode["rule"], episode["device"], episode["value"]) == ("boiler-too-hot", "b1", 95)

    with sdk.DeviceClient(server.url, "b1", server.secret) as dev:
        dev.send({"temperature": 97})
    with sdk.Client(server.url, server.boot.api_key) as c:
        (alarm,) = wait_for(lambda: c.alarms(status="active"))
    r = atoll(server, "alarms", "list", "-p", "plant")
    assert r.exit_code == 0 and f"│ {alarm.id}" in r.output  # the table
    r = atoll(server, "alarms", "list", "-p", "plant", "--json")
    (listed,) = json.loads(r.output)
    assert (listed["id"], listed["device"], listed["rule_name"]) == (
        alarm.id,
        "b1",
        "Boiler too hot",
    )
    r = atoll(server, "alarms", "ack", str(alarm.id), "-m", "on it")
    assert r.exit_code == 0 and r.output.strip() == f"alarm {alarm.id}: acknowledged"
    r = atoll(server, "alarms", "clear", str(alarm.id))
    assert r.output.strip() == f"alarm {alarm.id}: cleared, acknowledged"
    r = atoll(server, "alarms", "list", "--json")
    assert json.loads(r.output) == []


def test_errors_are_one_line_with_the_fix(server, tmp_path):
    r = atoll(server, "alarms", "ack", "999")
    assert r.exit_code == 1 and "error: alarm 999 not found" in r.output
    r = atoll(server, "rules", "list", "-p", "plant", key="")
    assert r.exit_code == 2 and "no API key" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "rules:\n  - name: x\n    target: {device: ghost}\n"
        "    condition: {type: no_data, timeout: 60}\n"
    )
    r = atoll(server, "rules", "apply", str(bad), "-p", "plant")
    assert r.exit_code == 1 and "no device 'ghost'" in r.output
