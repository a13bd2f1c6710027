from typer.testing import CliRunner

from atoll.cli.main import app
from atoll.registry import Registry

runner = CliRunner()


def test_recover_access_from_the_data_directory(tmp_path):
    reg = Registry.open(tmp_path)
    reg.bootstrap()
    reg.set_quotas("default", {"api_keys": 0})  # a used-up quota does not block recovery
    reg.close()
    r = runner.invoke(app, ["admin", "create-key", "--home", str(tmp_path), "--role", "operator"])
    assert r.exit_code == 0, r.output
    token = r.output.strip()
    r = runner.invoke(app, ["admin", "reset-password", "admin", "--home", str(tmp_path)])
    assert r.exit_code == 0, r.output
    password = r.output.strip()
    reg = Registry.open(tmp_path)
    assert reg.authenticate_key(token).role == "operator"
    assert reg.login("admin", password) is not None
    assert {e.action for e in reg.audit_log("default")} >= {"key.create", "user.password_reset"}
    reg.close()


def test_clear_errors(tmp_path):
    r = runner.invoke(app, ["admin", "create-key", "--home", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "--home" in r.output
    Registry.open(tmp_path).close()
    r = runner.invoke(app, ["admin", "create-key", "--home", str(tmp_path), "--tenant", "nope"])
    assert r.exit_code == 1 and "not found" in r.output
    r = runner.invoke(app, ["admin", "reset-password", "ghost", "--home", str(tmp_path)])
    assert r.exit_code != 0 and "ghost" in r.output
