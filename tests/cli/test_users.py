"""``atoll users`` (invites, password) and ``atoll tenants quota`` against a real server."""

import json

import httpx
import pytest

from tests.api.serving import ApiServer
from tests.cli.test_devices import atoll


@pytest.fixture
def server(tmp_path):
    with ApiServer(tmp_path) as s:
        yield s


def test_invite_accept_and_change_password(server):
    r = atoll(server, "tenants", "list", "--json")
    assert r.exit_code == 0, r.output
    r = httpx.post(
        f"{server.url}/api/v1/tenants",
        json={"name": "Orbit", "id": "orbit"},
        headers={"Authorization": f"Bearer {server.boot.api_key}"},
    )
    assert r.status_code == 201, r.text
    r = atoll(server, "users", "invite", "boss", "--role", "admin", "--tenant", "orbit")
    assert r.exit_code == 0, r.output
    link = next(line for line in r.output.splitlines() if "/invite#inv_" in line)
    assert link.startswith(server.url)
    r = atoll(server, "users", "invites", "--tenant", "orbit", "--json")
    [listed] = json.loads(r.output)
    assert listed["username"] == "orbit~boss" and listed["state"] == "pending"
    assert link.split("#", 1)[1] not in r.output

    from atoll.client import Client

    info = Client.invite_info(server.url, link.split("#", 1)[1])
    assert info["tenant_name"] == "Orbit" and info["role"] == "admin"
    with Client.accept_invite(server.url, link.split("#", 1)[1], "orbit-boss-password") as c:
        assert c.me().tenant == "orbit" and c.me().role == "admin"
    r = atoll(
        server,
        "users",
        "password",
        "--username",
        "orbit~boss",
        "--current",
        "orbit-boss-password",
        "--new",
        "short",
    )
    assert r.exit_code == 1 and "at least 10 characters" in r.output
    r = atoll(
        server,
        "users",
        "password",
        "--username",
        "orbit~boss",
        "--current",
        "orbit-boss-password",
        "--new",
        "orbit-boss-second",
    )
    assert r.exit_code == 0, r.output
    with Client.login(server.url, "orbit~boss", "orbit-boss-second") as c:
        assert c.me().tenant == "orbit"

    r = atoll(server, "users", "revoke-invite", listed["id"], "--tenant", "orbit")
    assert r.exit_code == 1 and "used already" in r.output


def test_quota_set_and_shown(server):
    r = atoll(server, "tenants", "quota", "default", "--devices", "0", "--ingest-rate", "50")
    assert r.exit_code == 0, r.output
    r = atoll(server, "tenants", "quota", "default", "--json")
    rows = {row["quota"]: row for row in json.loads(r.output)}
    assert rows["devices"]["limit"] == 0 and rows["ingest_rate (points/s)"]["limit"] == 50
    atoll(server, "projects", "create", "Lab", "--id", "lab")
    r = atoll(server, "devices", "register", "lab", "--id", "s1")
    assert r.exit_code == 1 and "device quota: 0 of 0" in r.output and "hint" in r.output
    r = atoll(server, "tenants", "quota", "default", "--devices", "-1", "--ingest-rate", "0")
    assert r.exit_code == 2 and "ingest-rate" in r.output
    r = atoll(server, "tenants", "quota", "default", "--devices", "-1")
    assert r.exit_code == 0
    assert atoll(server, "devices", "register", "lab", "--id", "s1").exit_code == 0
