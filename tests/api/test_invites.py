"""One-time invites (issue #13 item 3) and the password policy, through the HTTP API."""

from tests.api.test_tenancy import V1, two_tenants  # noqa: F401 - fixture reused


async def _login(api, username, password):
    return await api.http.post(
        f"{V1}/auth/login", json={"username": username, "password": password}
    )


async def test_invite_is_single_use_and_logs_the_invitee_in(api):
    r = await api.http.post(
        f"{V1}/invites", json={"username": "alice", "role": "operator"}, headers=api.admin
    )
    assert r.status_code == 201, r.text
    made = r.json()
    token = made["token"]
    assert made["path"] == "/invite#" + token and made["invite"]["state"] == "pending"
    # Stored hashed: the token itself is nowhere in the registry's table.
    from atoll.registry import tables as t

    with api.ctx.registry._read() as conn:
        rows = [dict(r._mapping) for r in conn.execute(t.invites.select())]
    assert rows and token not in str(rows)

    info = (await api.http.post(f"{V1}/auth/invite", json={"token": token})).json()
    assert info["username"] == "alice" and info["role"] == "operator"

    r = await api.http.post(f"{V1}/auth/invite/accept", json={"token": token, "password": "short"})
    assert r.status_code == 400 and "at least 10" in r.json()["message"]
    r = await api.http.post(
        f"{V1}/auth/invite/accept", json={"token": token, "password": "alice-long-password"}
    )
    assert r.status_code == 201, r.text
    session = r.json()
    assert session["username"] == "alice" and session["role"] == "operator"
    me = (await api.http.get(f"{V1}/auth/me", headers=api.auth(session["token"]))).json()
    assert me["role"] == "operator"
    assert (await _login(api, "alice", "alice-long-password")).status_code == 200

    # Single use: the link is dead now, and says what to do.
    r = await api.http.post(
        f"{V1}/auth/invite/accept", json={"token": token, "password": "another-password"}
    )
    assert r.status_code == 404 and "used" in r.json()["message"] and r.json()["hint"]
    listed = (await api.http.get(f"{V1}/invites", headers=api.admin)).json()
    assert [(i["username"], i["state"]) for i in listed] == [("alice", "used")]

    actions = [e["action"] for e in (await api.http.get(f"{V1}/audit", headers=api.admin)).json()]
    assert "invite.create" in actions and "invite.accept" in actions


async def test_revoked_or_expired_invites_do_not_open(api):
    made = (
        await api.http.post(f"{V1}/invites", json={"username": "bob"}, headers=api.admin)
    ).json()
    r = await api.http.post(f"{V1}/invites", json={"username": "bob"}, headers=api.admin)
    assert r.status_code == 409 and "pending invite" in r.json()["message"]
    r = await api.http.delete(f"{V1}/invites/{made['invite']['id']}", headers=api.admin)
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    r = await api.http.post(
        f"{V1}/auth/invite/accept", json={"token": made["token"], "password": "bob-long-password"}
    )
    assert r.status_code == 404
    assert (await _login(api, "bob", "bob-long-password")).status_code == 401
    assert (
        await api.http.post(f"{V1}/auth/invite", json={"token": "inv_guess"})
    ).status_code == 404

    # Expiry: an invite whose time has passed is refused the same way.
    made = (
        await api.http.post(f"{V1}/invites", json={"username": "bob"}, headers=api.admin)
    ).json()
    from sqlalchemy import update

    from atoll.registry import tables as t

    with api.ctx.registry._write() as conn:
        conn.execute(update(t.invites).values(expires_at=1))
    r = await api.http.post(
        f"{V1}/auth/invite/accept", json={"token": made["token"], "password": "bob-long-password"}
    )
    assert r.status_code == 404
    r = await api.http.post(
        f"{V1}/invites", json={"username": "bob", "ttl_hours": 0.001}, headers=api.admin
    )
    assert r.status_code == 422
    r = await api.http.post(f"{V1}/invites", json={"username": "admin"}, headers=api.admin)
    assert r.status_code == 409 and "already exists" in r.json()["message"]


async def test_only_admins_invite_and_the_platform_admin_invites_into_any_tenant(two_tenants):  # noqa: F811
    api, beta = two_tenants
    for role in ("viewer", "operator"):
        key = await api.key(role)
        r = await api.http.post(f"{V1}/invites", json={"username": "x"}, headers=api.auth(key))
        assert r.status_code == 403 and "admin role" in r.json()["message"]
        assert (await api.http.get(f"{V1}/invites", headers=api.auth(key))).status_code == 403
    # A tenant admin cannot invite into another tenant (404: tenant ids don't leak).
    r = await api.http.post(
        f"{V1}/invites",
        json={"username": "x", "role": "admin"},
        headers={**api.auth(beta), "X-Atoll-Tenant": "alpha"},
    )
    assert r.status_code == 404
    r = await api.http.post(f"{V1}/tenants", json={"name": "Gamma"}, headers=api.admin)
    assert r.status_code == 403
    # The platform admin creates an enterprise and invites its admin.
    platform = api.auth((await _login(api, "admin", api.password)).json()["token"])
    r = await api.http.post(
        f"{V1}/tenants", json={"name": "Gamma", "id": "gamma"}, headers=platform
    )
    assert r.status_code == 201
    r = await api.http.post(
        f"{V1}/invites",
        json={"username": "boss", "role": "admin"},
        headers={**platform, "X-Atoll-Tenant": "gamma"},
    )
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert r.json()["invite"]["username"] == "gamma~boss"
    session = (
        await api.http.post(
            f"{V1}/auth/invite/accept", json={"token": token, "password": "gamma-boss-password"}
        )
    ).json()
    assert session["tenant"] == "gamma" and session["role"] == "admin"
    boss = api.auth(session["token"])
    # The new admin sees their own enterprise only, and invites its users in turn.
    assert [t["id"] for t in (await api.http.get(f"{V1}/tenants", headers=boss)).json()] == [
        "gamma"
    ]
    r = await api.http.post(f"{V1}/invites", json={"username": "eve"}, headers=boss)
    assert r.status_code == 201 and r.json()["invite"]["tenant"] == "gamma"


async def test_password_policy_gives_reasons(api):
    r = await api.http.post(
        f"{V1}/users",
        headers=api.admin,
        json={"username": "ops", "password": "a-long-password", "role": "operator"},
    )
    ops = api.auth((await _login(api, "ops", "a-long-password")).json()["token"])
    for new, status, words in (
        ("short", 400, "at least 10"),
        ("          ", 400, "only spaces"),
        ("a-long-password", 400, "differ"),
    ):
        r = await api.http.post(
            f"{V1}/auth/password",
            headers=ops,
            json={"current_password": "a-long-password", "new_password": new},
        )
        assert r.status_code == status and words in r.json()["message"], r.text
