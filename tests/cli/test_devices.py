"""``atoll devices`` / ``atoll projects`` against a real server."""

import json

import pytest
from typer.testing import CliRunner

from atoll.cli.main import app
from tests.api.serving import ApiServer

runner = CliRunner()


@pytest.fixture
def server(tmp_path):
    with ApiServer(tmp_path, detection=True) as s:
        yield s


def atoll(server, *args, key=None):
    env = {"ATOLL_URL": server.url, "ATOLL_API_KEY": server.boot.api_key if key is None else key}
    return runner.invoke(app, list(args), env=env)


def test_register_list_rotate_and_rejections(server):
    r = atoll(server, "projects", "create", "Lab", "--id", "lab", "--retention-days", "7")
    assert r.exit_code == 0 and "lab" in r.output
    r = atoll(server, "devices", "register", "lab", "--id", "s1", "--json")
    assert r.exit_code == 0, r.output
    secret = json.loads(r.output)["secret"]
    assert server.registry.authenticate_device("s1", secret) is not None
    r = atoll(server, "devices", "list", "lab", "--json")
    assert [d["id"] for d in json.loads(r.output)] == ["s1"] and secret not in r.output
    r = atoll(server, "devices", "rotate", "s1")
    assert r.exit_code == 0 and "curl -u s1:" in r.output
    assert server.registry.authenticate_device("s1", secret) is None
    server.registry.record_rejection("s1", "mqtt", "malformed_json", "line 1 column 2")
    r = atoll(server, "devices", "rejections", "s1", "--json")
    assert (
        json.loads(r.output)[0]["reason"] == "malformed_json"
        and json.loads(r.output)[0]["count"] == 1
    )
    r = atoll(server, "devices", "disable", "s1")
    assert r.exit_code == 0 and server.registry.get_device("s1").disabled
    r = atoll(server, "projects", "list", "--json")
    assert json.loads(r.output)[0]["retention_days"] == 7


def test_errors_say_what_to_do(server):
    r = atoll(server, "devices", "list", "nope")
    assert r.exit_code == 1 and "not found" in r.output
    r = atoll(server, "devices", "list", "lab", key="")
    assert r.exit_code == 2 and "ATOLL_API_KEY" in r.output
    r = atoll(server, "devices", "list", "lab", key="atk_bad_key")
    assert r.exit_code == 1 and "API key" in r.output


def test_a_device_detection_refit_and_accept_as_new_normal(server):
    """``atoll devices detection | refit | accept-normal`` through the SDK, on a device with an
    hour of stored history whose level moved."""
    import time
    from datetime import UTC, datetime

    import numpy as np

    import atoll as sdk
    from atoll.core.points import PointBatch, SeriesKey

    assert atoll_ok(server, "projects", "create", "Lab", "--id", "lab")
    with sdk.Client(server.url, server.boot.api_key) as c:
        c.create_device_type("lab", "thermo", [{"name": "temperature"}])
        secret = c.register_device("lab", id="s1", device_type="thermo").credentials.secret
    t0 = int(time.time()) - 7200
    t = np.arange(3600)
    values = 20 + 2 * np.sin(2 * np.pi * t / 60) + np.random.default_rng(0).normal(0, 0.05, 3600)
    values[3300:] += 6.0
    key = SeriesKey("lab", "s1", "temperature")
    server.store.append(PointBatch.of_series(key, (t0 + t[:3000]) * 1_000_000, values[:3000]))
    with sdk.DeviceClient(server.url, "s1", secret) as device:
        for lo in range(3000, 3600, 200):
            device.send_batch(
                (datetime.fromtimestamp(t0 + i, UTC), {"temperature": float(values[i])})
                for i in range(lo, lo + 200)
            )
    deadline = time.monotonic() + 60
    while server.detection.stats["points"] < 600 and time.monotonic() < deadline:
        time.sleep(0.05)

    r = atoll(server, "devices", "detection", "lab", "s1", "--json")
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.output)
    assert row["detector"] == "fitted" and row["model"]["rows"] == 3000 and row["flagged"]
    r = atoll(server, "devices", "refit", "lab", "s1")
    assert r.exit_code == 0 and "temperature: v2 fitted on" in r.output, r.output
    since = datetime.fromtimestamp(t0 + 3300, UTC).isoformat()
    r = atoll(server, "devices", "accept-normal", "lab", "s1", "temperature", "--from", since)
    assert r.exit_code == 0 and "temperature: model v3 accepts 300 readings" in r.output, r.output
    r = atoll(server, "devices", "detection", "lab", "s1")
    assert r.exit_code == 0 and "v3 accept" in r.output
    r = atoll(server, "devices", "accept-normal", "lab", "s1", "humidity", "--from", "-1h")
    assert r.exit_code == 1 and "no detector judges 'humidity'" in r.output


def atoll_ok(server, *args) -> bool:
    r = atoll(server, *args)
    return r.exit_code == 0


def test_maintenance_record_import_and_list(server, tmp_path):
    assert atoll(server, "projects", "create", "Plant", "--id", "plant").exit_code == 0
    assert atoll(server, "devices", "register", "plant", "--id", "p1").exit_code == 0
    r = atoll(server, "devices", "maintain", "p1", "failure", "--at", "-2h", "--part", "seal")
    assert r.exit_code == 0 and "recorded failure of p1" in r.output, r.output
    history = tmp_path / "history.csv"
    history.write_text("device,at,kind,note\np1,2026-10-01T00:00:00Z,inspection,ok\n")
    r = atoll(server, "devices", "import-maintenance", "plant", str(history))
    assert r.exit_code == 0 and "imported 1" in r.output, r.output
    r = atoll(server, "devices", "maintenance", "--project", "plant", "--json")
    assert [e["kind"] for e in json.loads(r.output)] == ["failure", "inspection"]
    r = atoll(server, "devices", "maintain", "p1", "exploded")
    assert r.exit_code == 1 and "'failure', 'repair', 'replacement' or 'inspection'" in r.output
    assert atoll(server, "devices", "maintenance").exit_code == 2


def test_forecast_says_when_a_warming_freezer_crosses(server):
    import time

    import numpy as np

    from atoll.core.points import PointBatch, SeriesKey

    assert atoll_ok(server, "projects", "create", "Shop", "--id", "shop")
    assert atoll_ok(server, "devices", "register", "shop", "--id", "fz1")
    now = time.time_ns() // 1000
    ts = np.arange(now - 86_400_000_000, now, 60_000_000, dtype=np.int64)
    warm = np.clip((ts - (now - 3_600_000_000)) / 3_600e6, 0.0, None) * 2.0
    server.store.append(
        PointBatch.of_series(SeriesKey("shop", "fz1", "temperature"), ts, -20.0 + warm)
    )
    r = atoll(
        server, "devices", "forecast", "fz1", "temperature", "--horizon", "6h", "--threshold", "-15"
    )
    assert r.exit_code == 0, r.output
    assert "crosses -15 (above) in about" in r.output, r.output
    r = atoll(server, "devices", "forecast", "fz1", "temperature", "--threshold", "-30")
    assert r.exit_code == 0 and "does not go below -30 within 1h" in r.output, r.output
    r = atoll(server, "devices", "forecast", "fz1", "humidity")
    assert r.exit_code == 1 and "no data" in r.output
