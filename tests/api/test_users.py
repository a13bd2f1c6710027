V1 = "/api/v1"


async def _login(api, username, password):
    return await api.http.post(
        f"{V1}/auth/login", json={"username": username, "password": password}
    )


async def test_user_lifecycle_and_sessions(api):
    r = await api.http.post(
        f"{V1}/users", json={"username": "ops", "password": "short"}, headers=api.admin
    )
    assert r.status_code == 422
    r = await api.http.post(
        f"{V1}/users",
        headers=api.admin,
        json={"username": "ops", "password": "a-long-password", "role": "operator"},
    )
    assert r.status_code == 201 and r.json()["role"] == "operator"
    session = (await _login(api, "ops", "a-long-password")).json()
    ops = api.auth(session["token"])
    assert session["role"] == "operator"
    assert (await api.http.get(f"{V1}/users", headers=ops)).status_code == 403

    # Changing your own password ends your other sessions; the one making the change goes on.
    other = api.auth((await _login(api, "ops", "a-long-password")).json()["token"])
    r = await api.http.post(
        f"{V1}/auth/password",
        headers=ops,
        json={"current_password": "wrong-password", "new_password": "another-long-one"},
    )
    assert r.status_code == 403
    r = await api.http.post(
        f"{V1}/auth/password",
        headers=ops,
        json={"current_password": "a-long-password", "new_password": "another-long-one"},
    )
    assert r.status_code == 204
    assert (await api.http.get(f"{V1}/auth/me", headers=other)).status_code == 401
    assert (await api.http.get(f"{V1}/auth/me", headers=ops)).status_code == 200
    assert (await _login(api, "ops", "a-long-password")).status_code == 401
    ops = api.auth((await _login(api, "ops", "another-long-one")).json()["token"])

    # An admin demotes or disables the user: their sessions end at once.
    r = await api.http.patch(f"{V1}/users/ops", json={"role": "viewer"}, headers=api.admin)
    assert r.json()["role"] == "viewer"
    assert (await api.http.get(f"{V1}/auth/me", headers=ops)).status_code == 401
    session = (await _login(api, "ops", "another-long-one")).json()
    assert session["role"] == "viewer"
    r = await api.http.patch(f"{V1}/users/ops", json={"disabled": True}, headers=api.admin)
    assert r.json()["disabled"] is True
    listed = {
        u["username"]: u for u in (await api.http.get(f"{V1}/users", headers=api.admin)).json()
    }
    assert listed["ops"]["disabled"] is True and listed["admin"]["disabled"] is False
    assert (await _login(api, "ops", "another-long-one")).status_code == 401
    r = await api.http.patch(
        f"{V1}/users/ops", json={"disabled": False, "password": "reset-by-admin"}, headers=api.admin
    )
    assert r.json()["disabled"] is False
    assert (await _login(api, "ops", "reset-by-admin")).status_code == 200
    assert (await api.http.delete(f"{V1}/users/ops", headers=api.admin)).status_code == 204
    assert (await _login(api, "ops", "reset-by-admin")).status_code == 401
    log = (
        await api.http.get(f"{V1}/audit", params={"target": "user:ops"}, headers=api.admin)
    ).json()
    assert {"user.create", "user.update", "user.delete", "auth.password", "auth.login"} <= {
        e["action"] for e in log
    }
    assert all("reset-by-admin" not in str(e["detail"]) for e in log)


async def test_api_keys_have_no_password(api):
    r = await api.http.post(
        f"{V1}/auth/password",
        headers=api.admin,
        json={"current_password": "x", "new_password": "a-long-password"},
    )
    assert r.status_code == 400 and "login" in r.json()["hint"]


async def test_password_guessing_is_throttled(api):
    for _ in range(5):
        assert (await _login(api, "admin", "guess-guess-guess")).status_code == 401
    r = await _login(api, "admin", api.password)  # even the right password waits now
    assert (
        r.status_code == 429
        and r.json()["error"] == "too_many_requests"
        and "try again" in r.json()["message"]
    )


async def test_one_address_spraying_many_users_is_throttled(api):
    for i in range(20):
        assert (await _login(api, f"user{i}", "guess-guess-guess")).status_code == 401
    assert (await _login(api, "admin", api.password)).status_code == 429
