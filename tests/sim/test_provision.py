"""Registering simulated devices through the real REST API, and credentials files."""

from __future__ import annotations

import json

import pytest

import atoll
from atoll.core.errors import InvalidInput
from atoll.sim import Fleet
from atoll.sim.provision import load_credentials, provision, save_credentials
from atoll.solutions import load
from tests.api.serving import ApiServer

pytestmark = pytest.mark.timeout(60)


def test_provisioned_devices_send_telemetry_the_platform_accepts(tmp_path):
    templates = [load("retail"), load("finance")]
    with ApiServer(tmp_path) as server, atoll.Client(server.url, server.boot.api_key) as client:
        devices = provision(client, "lab", templates, 6, prefix="t")
        assert len({d.secret for d in devices}) == 6 and all(d.project == "lab" for d in devices)
        types = {t.id: t for t in client.device_types("lab")}
        assert set(types) == {d.name for t in templates for d in t.device_types}
        assert {m.name for m in types["freezer"].metrics} == {
            "compressor_power",
            "door",
            "temperature",
        }
        assert {d.id for d in client.devices("lab")} == {d.device_id for d in devices}

        # What the simulator sends passes the platform's validation, with each device's secret.
        fleet = Fleet(devices, seed=1, start=1_700_000_000.0)
        for r in fleet.advance(1_700_000_001.0):
            d = devices[r.device]
            with atoll.DeviceClient(server.url, d.device_id, d.secret) as dev:
                assert dev.send(r.values) == len(r.values)

        # Provisioning again rotates the secrets: a secret is only ever shown once.
        again = provision(client, "lab", templates, 6, prefix="t")
        assert [d.device_id for d in again] == [d.device_id for d in devices]
        assert all(a.secret != b.secret for a, b in zip(again, devices, strict=True))


def test_credentials_files(tmp_path):
    templates = [load("retail")]
    fleet = Fleet.build(
        "retail", 4, secrets={f"sim-retail-freezer-0000{i}": f"s{i}" for i in range(2)}
    )
    path = tmp_path / "creds.json"
    save_credentials(path, fleet.devices)
    assert path.stat().st_mode & 0o777 == 0o600
    back = load_credentials(path, templates)
    assert [(d.device_id, d.device_type, d.secret) for d in back] == [
        (d.device_id, d.device_type, d.secret) for d in fleet.devices
    ]

    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({f"dev-{i}": f"secret-{i}" for i in range(10)}))
    devices = load_credentials(plain, templates)
    assert [d.secret for d in devices] == [f"secret-{i}" for i in range(10)]
    assert {d.device_type for d in devices} == {"freezer", "chiller", "store_meter"}

    for bad, needle in [
        ("[1, 2]", "non-empty JSON object"),
        ("{nope", "cannot read"),
        ('{"d": {"secret": "s", "template": "retail", "device_type": "atm"}}', "unknown template"),
    ]:
        plain.write_text(bad)
        with pytest.raises(InvalidInput, match=needle):
            load_credentials(plain, templates)
