V1 = "/api/v1"


async def test_register_rotate_revoke_disable(api):
    await api.project()
    r = await api.http.post(
        f"{V1}/projects/lab/device-types",
        headers=api.admin,
        json={
            "id": "thermo",
            "name": "Thermometer",
            "metrics": [
                {"name": "temperature", "unit": "°C", "min": -40, "max": 85},
                {"name": "on", "type": "bool"},
            ],
        },
    )
    assert r.status_code == 201 and r.json()["metrics"][0]["unit"] == "°C"
    r = await api.http.post(
        f"{V1}/projects/lab/devices",
        headers=api.admin,
        json={"id": "s1", "device_type": "thermo", "labels": {"room": "a"}},
    )
    assert r.status_code == 201
    body = r.json()
    secret = body["credentials"]["secret"]
    assert body["credentials"]["mqtt_username"] == "s1" and len(secret) >= 43
    # Shown once: never again in reads.
    got = await api.http.get(f"{V1}/devices/s1", headers=api.admin)
    assert secret not in got.text and got.json()["labels"] == {"room": "a"}
    listed = await api.http.get(f"{V1}/projects/lab/devices", headers=api.admin)
    assert secret not in listed.text and [d["id"] for d in listed.json()] == ["s1"]

    send = {"values": {"temperature": 20.5}}
    assert (
        await api.http.post(f"{V1}/ingest/telemetry", auth=("s1", secret), json=send)
    ).status_code == 200
    new = (await api.http.post(f"{V1}/devices/s1/credentials/rotate", headers=api.admin)).json()[
        "secret"
    ]
    assert (
        await api.http.post(f"{V1}/ingest/telemetry", auth=("s1", secret), json=send)
    ).status_code == 401
    assert (
        await api.http.post(f"{V1}/ingest/telemetry", auth=("s1", new), json=send)
    ).status_code == 200

    r = await api.http.patch(f"{V1}/devices/s1", json={"disabled": True}, headers=api.admin)
    assert r.json()["disabled"] is True
    r = await api.http.post(f"{V1}/ingest/telemetry", auth=("s1", new), json=send)
    assert r.status_code == 403 and "disabled" in r.json()["message"]
    await api.http.patch(f"{V1}/devices/s1", json={"disabled": False}, headers=api.admin)

    assert (
        await api.http.delete(f"{V1}/devices/s1/credentials", headers=api.admin)
    ).status_code == 204
    assert (
        await api.http.post(f"{V1}/ingest/telemetry", auth=("s1", new), json=send)
    ).status_code == 401
    assert (await api.http.get(f"{V1}/devices/s1", headers=api.admin)).json()[
        "has_credentials"
    ] is False

    rej = (await api.http.get(f"{V1}/devices/s1/rejections", headers=api.admin)).json()
    assert {(x["transport"], x["reason"]) for x in rej} >= {
        ("http", "unauthenticated"),
        ("http", "disabled"),
    }


async def test_device_errors(api):
    await api.project()
    r = await api.http.post(
        f"{V1}/projects/lab/devices", json={"device_type": "nope"}, headers=api.admin
    )
    assert r.status_code == 404 and "nope" in r.json()["message"]
    await api.device(device_id="dup")
    r = await api.http.post(f"{V1}/projects/lab/devices", json={"id": "dup"}, headers=api.admin)
    assert r.status_code == 409
    r = await api.http.post(
        f"{V1}/projects/lab/devices", json={"id": "has/slash"}, headers=api.admin
    )
    assert r.status_code == 400
    r = await api.http.post(
        f"{V1}/projects/lab/device-types",
        headers=api.admin,
        json={"id": "t", "metrics": [{"name": "x", "type": "string"}]},
    )
    assert r.status_code == 400 and "type" in r.json()["message"]
    assert (await api.http.get(f"{V1}/devices/ghost", headers=api.admin)).status_code == 404
    assert (await api.http.delete(f"{V1}/devices/dup", headers=api.admin)).status_code == 204
    assert (await api.http.get(f"{V1}/devices/dup", headers=api.admin)).status_code == 404


async def test_every_write_is_audited(api):
    await api.project()
    await api.device()
    await api.http.patch(f"{V1}/devices/s1", json={"name": "Sensor"}, headers=api.admin)
    await api.http.post(f"{V1}/devices/s1/credentials/rotate", headers=api.admin)
    await api.http.patch(f"{V1}/devices/s1/twin/desired", json={"a": 1}, headers=api.admin)
    await api.http.post(f"{V1}/devices/s1/commands", json={"name": "reboot"}, headers=api.admin)
    await api.http.patch(f"{V1}/projects/lab", json={"retention_days": 7}, headers=api.admin)
    log = (await api.http.get(f"{V1}/audit?limit=50", headers=api.admin)).json()
    actions = [e["action"] for e in log]
    for a in (
        "project.create",
        "device.create",
        "device.update",
        "device.credentials.rotate",
        "twin.desired.patch",
        "command.create",
        "project.update",
    ):
        assert a in actions, a
    assert all(e["actor"].startswith("bootstrap admin") for e in log if e["action"] != "bootstrap")
    viewer = await api.key("viewer")
    assert (await api.http.get(f"{V1}/audit", headers=api.auth(viewer))).status_code == 403


async def test_project_retention_setting(api):
    await api.project()
    r = await api.http.patch(f"{V1}/projects/lab", json={"retention_days": 30}, headers=api.admin)
    assert r.json()["retention_days"] == 30
    r = await api.http.patch(f"{V1}/projects/lab", json={"name": "Lab 2"}, headers=api.admin)
    assert r.json()["retention_days"] == 30 and r.json()["name"] == "Lab 2"
    r = await api.http.patch(f"{V1}/projects/lab", json={"retention_days": None}, headers=api.admin)
    assert r.json()["retention_days"] is None
    r = await api.http.patch(f"{V1}/projects/lab", json={"retention_days": 0}, headers=api.admin)
    assert r.status_code == 422
    assert api.ctx.registry.retention() == {}


async def test_batch_registration_is_all_or_nothing(api):
    await api.project()
    await api.device(device_id="taken")
    r = await api.http.post(
        f"{V1}/projects/lab/devices/batch",
        headers=api.admin,
        json={"devices": [{"id": "b1"}, {"id": "taken"}, {"id": "b3"}]},
    )
    assert r.status_code == 409 and "devices[1]" in r.json()["message"]
    assert (await api.http.get(f"{V1}/devices/b1", headers=api.admin)).status_code == 404
    r = await api.http.post(
        f"{V1}/projects/lab/devices/batch",
        headers=api.admin,
        json={"devices": [{"id": f"b{i}", "labels": {"i": str(i)}} for i in range(50)]},
    )
    assert r.status_code == 201, r.text
    secrets = {d["device"]["id"]: d["credentials"]["secret"] for d in r.json()}
    assert len(set(secrets.values())) == 50
    ok = await api.http.post(
        f"{V1}/ingest/telemetry", auth=("b7", secrets["b7"]), json={"values": {"x": 1}}
    )
    assert ok.status_code == 200
    r = await api.http.post(
        f"{V1}/projects/lab/devices/batch", headers=api.admin, json={"devices": []}
    )
    assert r.status_code == 422
