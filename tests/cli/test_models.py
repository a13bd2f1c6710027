"""``atoll rul train --register`` and ``atoll models`` against a real server."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from atoll.cli.main import app
from atoll.testing.rul import synthetic_cmapss, write_cmapss
from tests.api.serving import ApiServer

runner = CliRunner()


@pytest.fixture
def server(tmp_path):
    with ApiServer(tmp_path) as s:
        yield s


def atoll(server, *args):
    env = {"ATOLL_URL": server.url, "ATOLL_API_KEY": server.boot.api_key}
    return runner.invoke(app, list(args), env=env)


def test_a_trained_rul_model_is_registered_approved_activated_and_exported(server, tmp_path):
    assert atoll(server, "projects", "create", "Plant", "--id", "plant").exit_code == 0
    train, _ = synthetic_cmapss(units=16, seed=0)
    write_cmapss(train, tmp_path / "train.txt")
    model_dir = tmp_path / "model"
    args = ["rul", "train", str(tmp_path / "train.txt"), "--model", str(model_dir)]
    args += ["--folds", "2", "--register", "--project", "plant", "--device-type", "motor"]
    # --register without a key is refused before any training.
    r = runner.invoke(app, args, env={"ATOLL_API_KEY": ""})
    assert r.exit_code == 2 and "--register needs" in r.output
    assert not model_dir.exists()
    r = runner.invoke(app, [*args, "--api", server.url, "--api-key", server.boot.api_key])
    assert r.exit_code == 0, r.output
    assert "registered mdl-" in r.output and "rul type:motor v1 (draft)" in r.output
    card = json.loads((model_dir / "model.json").read_text())

    r = atoll(server, "models", "list", "plant", "--kind", "rul", "--json")
    (listed,) = json.loads(r.output)
    mid = listed["id"]
    assert (listed["state"], listed["rows"], listed["algorithm"]) == (
        "draft",
        card["training"]["rows"],
        "lightgbm-gbdt",
    )
    assert listed["metrics"]["rmse"] == card["validation"]["rmse"]
    r = atoll(server, "models", "activate", "plant", mid)
    assert r.exit_code == 1 and "allowed: approve, retire" in r.output
    r = atoll(server, "models", "approve", "plant", mid, "--comment", "bench checked")
    assert r.exit_code == 0 and "is approved" in r.output
    r = atoll(server, "models", "activate", "plant", mid)
    assert r.exit_code == 0 and "is active" in r.output
    r = atoll(server, "models", "show", "plant", mid)
    assert r.exit_code == 0 and "may: retire, rollback" in r.output
    out = tmp_path / "card.md"
    r = atoll(server, "models", "card", "plant", mid, "--out", str(out))
    assert r.exit_code == 0
    md = out.read_text()
    assert md.startswith("# Model card: rul `type:motor` v1") and "| State | active |" in md
    r = atoll(server, "models", "card", "plant", mid, "--format", "json")
    assert json.loads(r.output)["card"]["validation"] == card["validation"]
    r = atoll(server, "models", "retire", "plant", mid)
    assert r.exit_code == 0 and "is retired" in r.output
    entries = server.registry.audit_log("default", target=f"model:{mid}")
    assert sorted(e.action for e in entries) == [
        "model.activate",
        "model.approve",
        "model.register",
        "model.retire",
    ]
