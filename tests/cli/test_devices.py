"""``atoll devices`` / ``atoll projects`` against a real server."""

import json

import pytest
from typer.testing import CliRunner

from atoll.cli.main import app
from tests.api.serving import ApiServer

runner = CliRunner()


@pytest.fixture
def server(tmp_path):
    with ApiServer(tmp_path) as s:
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
