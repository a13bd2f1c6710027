"""``atoll rules validate`` needs nothing running (apply/alarms: see test_platform_wiring)."""

from __future__ import annotations

from typer.testing import CliRunner

from atoll.cli.main import app


def test_validate_reports_the_rules_or_the_bad_field(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(
        "project: p\nchannels: {ops: {type: log}}\nrules:\n"
        "  - {name: Cold, target: {device: d},"
        " condition: {type: threshold, metric: t, op: '<', value: 0}}\n"
    )
    r = CliRunner().invoke(app, ["rules", "validate", str(good)])
    assert r.exit_code == 0, r.output
    assert "ok  rule cold (p): threshold on {'device': 'd'}" in r.output
    assert "ok  channel ops (log)" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "- {name: x, project: p, target: {device: d},"
        " condition: {type: rate, metric: t, value: 1, per: 0}}\n"
    )
    r = CliRunner().invoke(app, ["rules", "validate", str(bad)])
    assert r.exit_code == 1
    assert "rules[0].condition.rate.per: Input should be greater than 0" in r.output
    r = CliRunner().invoke(app, ["rules", "validate", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 1 and "cannot read" in r.output
