"""Per-enterprise quotas (devices, API keys): set by the platform admin, enforced with a 403
that names the quota, its limit and how to raise it."""

from tests.api.test_tenancy import V1, two_tenants  # noqa: F401 - fixture reused


async def test_quotas_are_set_by_the_platform_admin_and_enforced(two_tenants):  # noqa: F811
    api, beta = two_tenants
    platform = api.auth(
        (
            await api.http.post(
                f"{V1}/auth/login", json={"username": "admin", "password": api.password}
            )
        ).json()["token"]
    )
    got = (await api.http.get(f"{V1}/tenants/beta/quotas", headers=api.auth(beta))).json()
    assert got["devices"] == {"limit": None, "used": 1}
    # Neither the enterprise's admin nor another enterprise sets quotas.
    r = await api.http.put(f"{V1}/tenants/beta/quotas", json={"devices": 9}, headers=api.auth(beta))
    assert r.status_code == 403 and "platform admin" in r.json()["message"]
    r = await api.http.put(f"{V1}/tenants/beta/quotas", json={"devices": 9}, headers=api.admin)
    assert r.status_code == 404
    assert (await api.http.get(f"{V1}/tenants/beta/quotas", headers=api.admin)).status_code == 404

    r = await api.http.put(
        f"{V1}/tenants/beta/quotas", json={"devices": 2, "api_keys": 1}, headers=platform
    )
    assert r.status_code == 200, r.text
    assert r.json()["devices"] == {"limit": 2, "used": 1}
    assert r.json()["api_keys"]["limit"] == 1
    r = await api.http.put(f"{V1}/tenants/beta/quotas", json={"devices": -1}, headers=platform)
    assert r.status_code == 422

    await api.device("beta~beta-lab", "b2", key=beta)
    r = await api.http.post(
        f"{V1}/projects/beta~beta-lab/devices", json={"id": "b3"}, headers=api.auth(beta)
    )
    body = r.json()
    assert r.status_code == 403 and body["error"] == "quota_exceeded"
    assert "device quota: 2 of 2 used" in body["message"] and "raise" in body["hint"]
    # The other enterprise is not limited.
    await api.device("alpha~alpha-lab", "a2")

    # API keys: beta has its first admin key already, so a second one is refused...
    r = await api.http.post(
        f"{V1}/keys", json={"name": "ci", "role": "viewer"}, headers=api.auth(beta)
    )
    assert r.status_code == 403 and "API key quota: 1 of 1" in r.json()["message"]
    # ...but console logins (sessions) never count against it.
    r = await api.http.put(f"{V1}/tenants/beta/quotas", json={"devices": None}, headers=platform)
    assert r.json()["devices"] == {"limit": None, "used": 2}
    assert r.json()["api_keys"]["limit"] == 1  # left as it was
    assert r.json()["ingest_rate"] is None
    r = await api.http.put(
        f"{V1}/tenants/beta/quotas", json={"ingest_rate": 250.5}, headers=platform
    )
    assert r.json()["ingest_rate"] == 250.5 and r.json()["api_keys"]["limit"] == 1
    assert api.ctx.registry.ingest_rates() == {"beta": 250.5}
    r = await api.http.put(f"{V1}/tenants/beta/quotas", json={"ingest_rate": 0}, headers=platform)
    assert r.status_code == 422
    await api.device("beta~beta-lab", "b3", key=beta)
    log = (await api.http.get(f"{V1}/audit", headers=api.auth(beta))).json()
    assert any(e["action"] == "tenant.quotas" for e in log)
