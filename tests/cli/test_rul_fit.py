"""``atoll rul fit`` and ``atoll rul due`` against a real server with the RUL service."""

from __future__ import annotations

import json
import time

import pytest
from typer.testing import CliRunner

import atoll as sdk
from atoll.cli.main import app
from atoll.testing import rul_fleet as synthetic
from tests.api.serving import ApiServer

runner = CliRunner()


@pytest.fixture
def server(tmp_path):
    with ApiServer(tmp_path, rul=True) as s:
        yield s


def atoll(server, *args):
    env = {"ATOLL_URL": server.url, "ATOLL_API_KEY": server.boot.api_key}
    return runner.invoke(app, list(args), env=env)


def test_fit_refuses_too_few_failures_then_registers_a_draft(server):
    with sdk.Client(server.url, server.boot.api_key) as c:
        c.create_project("Plant", id="plant")
        c.create_device_type("plant", "motor", synthetic.METRICS)
        motors = synthetic.fleet(6)
        for m in motors:
            c.register_device("plant", id=m.device, device_type="motor")
        end = time.time_ns() // 1000 // synthetic.HOUR * synthetic.HOUR
        csv = synthetic.history(server.store, "plant", motors, end)
        r = atoll(server, "rul", "fit", "--project", "plant", "--type", "motor")
        assert r.exit_code == 1
        assert "0 run-to-failure trajectories" in r.output and "at least 10" in r.output
        c.import_maintenance("plant", csv)
    r = atoll(server, "rul", "fit", "--project", "plant", "--type", "motor", "--json")
    assert r.exit_code == 0, r.output
    (model,) = json.loads(r.output)
    assert (model["kind"], model["scope"], model["state"]) == ("rul", "type:motor", "draft")
    assert model["card"]["fleet"]["trajectories"] == 12
    r = atoll(server, "rul", "due", "--project", "plant")
    assert r.exit_code == 0 and "(none)" in r.output  # nothing active has judged yet
    r = atoll(server, "rul", "due", "--project", "plant", "--within", "soon")
    assert r.exit_code == 1 and "not a duration" in r.output
