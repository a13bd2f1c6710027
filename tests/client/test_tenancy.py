"""Tenants, API keys, console users, sessions and the audit log through the SDK."""

from __future__ import annotations

from datetime import datetime

import pytest

import atoll


def test_tenants_and_keys(server, client):
    tenant, key = client.create_tenant("Acme", id="acme")
    assert tenant.id == "acme" and isinstance(tenant.created_at, datetime)
    assert key.role == "admin" and key.token and key.token not in repr(key)
    assert {t.id for t in client.tenants()} == {"default", "acme"}
    assert client.tenant("acme").name == "Acme"
    with atoll.Client(server.url, key.token) as acme:
        assert [t.id for t in acme.tenants()] == ["acme"]
        with pytest.raises(atoll.NotFound):
            acme.tenant("default")
        with pytest.raises(atoll.Forbidden):
            acme.create_tenant("Sneaky")

        ro = acme.create_api_key("dashboards", "viewer", ttl_s=3600)
        listed = {k.id: k for k in acme.api_keys()}
        assert listed[ro.id].token is None and listed[ro.id].expires_at is not None
        assert listed[ro.id].tenant == "acme" and not listed[ro.id].revoked
        assert acme.revoke_api_key(ro.id).revoked
        with atoll.Client(server.url, ro.token) as revoked, pytest.raises(atoll.Unauthenticated):
            revoked.projects()


def test_console_users_and_sessions(server, client):
    user = client.create_user("ops", "a-long-password", role="operator")
    assert (user.username, user.tenant, user.role) == ("ops", "default", "operator")
    assert {u.username for u in client.users()} == {"admin", "ops"}
    with pytest.raises(atoll.InvalidInput, match="password"):
        client.create_user("short", "tiny")

    elsewhere = atoll.Client.login(server.url, "ops", "a-long-password")
    with atoll.Client.login(server.url, "ops", "a-long-password") as ops, elsewhere:
        me = ops.me()
        assert (me.tenant, me.role, me.platform_admin) == ("default", "operator", False)
        with pytest.raises(atoll.Forbidden):
            ops.users()
        ops.change_password("a-long-password", "another-long-one")
        assert ops.me().role == "operator"  # this session goes on
        with pytest.raises(atoll.Unauthenticated):  # the user's other sessions ended
            elsewhere.me()
    with pytest.raises(atoll.Unauthenticated):
        atoll.Client.login(server.url, "ops", "a-long-password")

    with atoll.Client.login(server.url, "ops", "another-long-one") as ops:
        ops.logout()
        with pytest.raises(atoll.Unauthenticated):
            ops.me()

    assert client.update_user("ops", role="viewer").role == "viewer"
    client.update_user("ops", password="third-long-password")
    client.update_user("ops", disabled=True)
    with pytest.raises(atoll.Unauthenticated):
        atoll.Client.login(server.url, "ops", "third-long-password")
    client.delete_user("ops")
    assert [u.username for u in client.users()] == ["admin"]
    with pytest.raises(atoll.NotFound):
        client.delete_user("ops")
    with pytest.raises(atoll.InvalidInput, match="API keys have no password"):
        client.change_password("x", "y-long-enough")

    assert client.me().platform_admin
    client.logout()  # an API key is left alone
    assert client.me().role == "admin"


def test_audit_log_pages_newest_first(client):
    for i in range(3):
        client.create_project(f"P{i}", id=f"p{i}")
    newest = client.audit(action="project.create", limit=2)
    assert [e.target for e in newest] == ["project:p2", "project:p1"]
    assert isinstance(newest[0].at, datetime) and newest[0].detail["name"] == "P2"
    older = client.audit(action="project.create", before_id=newest[-1].id)
    assert [e.target for e in older] == ["project:p0"]
    assert [e.action for e in client.audit(target="project:p1")] == ["project.create"]
