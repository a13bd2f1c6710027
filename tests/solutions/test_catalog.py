"""Every solution template validates: manifest, template, rules (with the rules engine's
loader), detectors (by the detector registry's names) and dashboards."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from atoll.core.errors import InvalidInput, NotFound
from atoll.detect import registry
from atoll.rules import loading
from atoll.solutions import Manifest, discover, load, template_dirs
from atoll.solutions.catalog import load_dir

SECTORS = {"manufacturing", "retail", "healthcare", "finance", "construction"}
DIRS = template_dirs()


def test_one_template_per_sector():
    templates = discover()
    assert {t.sector for t in templates} == SECTORS
    assert len(templates) == len(SECTORS)


@pytest.mark.parametrize("folder", DIRS, ids=[d.name for d in DIRS])
def test_manifest_and_template_validate(folder):
    manifest = Manifest.model_validate(json.loads((folder / "manifest.json").read_text()))
    assert manifest.name == folder.name
    template = load_dir(folder)
    assert (template.name, template.sector, template.version) == (
        manifest.name,
        manifest.sector,
        manifest.version,
    )
    for dtype in template.device_types:
        assert dtype.detectors, f"{dtype.name} has no default detector"
        assert dtype.faults, f"{dtype.name} cannot be given a fault"
        for t in dtype.telemetry:
            assert t.type == "bool" or t.unit or t.name == "fault_code", f"{t.name} has no unit"


@pytest.mark.parametrize("folder", DIRS, ids=[d.name for d in DIRS])
def test_detectors_exist_in_the_registry(folder):
    known = set(registry.names())
    for dtype in load_dir(folder).device_types:
        for binding in dtype.detectors:
            assert binding.detector in known, f"{dtype.name}: unknown detector {binding.detector}"


@pytest.mark.parametrize("folder", DIRS, ids=[d.name for d in DIRS])
def test_rules_load_with_the_rules_engine(folder):
    template = load_dir(folder)
    assert template.rules
    rules = loading.load_rules(yaml.safe_dump(template.rules, allow_unicode=True), project="p")
    assert len(rules) == len(template.rules)
    types = {d.name: d for d in template.device_types}
    for rule in rules:
        dtype = types[rule.target.device_type]  # every template rule targets one of its types
        for metric in _metrics(rule.condition.model_dump()):
            assert metric in dtype.metric_names, f"rule {rule.name!r}: unknown metric {metric}"


def _metrics(cond: dict) -> list[str]:
    out = [cond["metric"]] if cond.get("metric") else []
    for c in cond.get("conditions") or []:
        out += _metrics(c)
    return out


def test_load_by_name_and_unknown_name():
    assert load("finance").device_type("atm").metric("cash_level").unit == "%"
    with pytest.raises(NotFound) as e:
        load("aquaculture")
    assert "retail" in e.value.hint


def _copy(tmp_path, name="retail"):
    src = next(d for d in DIRS if d.name == name)
    dst = tmp_path / "extra" / f"my-{name}"
    shutil.copytree(src, dst)
    return dst


def test_extra_templates_are_discovered_from_the_env_path(tmp_path, monkeypatch):
    dst = _copy(tmp_path)
    for f in ("manifest.json", "template.yaml"):
        p = dst / f
        p.write_text(
            p.read_text()
            .replace("name: retail", "name: my-retail")
            .replace('"name": "retail"', '"name": "my-retail"')
        )
    monkeypatch.setenv("ATOLL_SOLUTIONS_PATH", str(tmp_path / "extra"))
    assert "my-retail" in [t.name for t in discover()]


@pytest.mark.parametrize(
    "edit, needle",
    [
        (
            lambda s: s.replace(
                "metrics: [temperature], kind: line", "metrics: [tempreature], kind: line"
            ),
            "unknown metrics",
        ),
        (
            lambda s: s.replace(
                "{metric: compressor_power, gain: -0.04", "{metric: nope, gain: -0.04"
            ),
            "follows unknown metric",
        ),
        (
            lambda s: s.replace("min: -25\n        max: -15", "min: -15\n        max: -25"),
            "min must be below max",
        ),
        (lambda s: s.replace("door_left_open:", "door_ajar:", 1), "door_ajar"),
        (lambda s: s + "\nunexpected: 1\n", "unexpected"),
    ],
)
def test_broken_templates_are_refused_with_the_reason(tmp_path, edit, needle):
    dst = _copy(tmp_path)
    p = dst / "template.yaml"
    p.write_text(edit(p.read_text()))
    with pytest.raises(InvalidInput) as e:
        load_dir(dst)
    assert needle in str(e.value)


def test_manifest_must_match_template(tmp_path):
    dst = _copy(tmp_path)
    p = dst / "manifest.json"
    p.write_text(p.read_text().replace('"version": "1"', '"version": "2"'))
    with pytest.raises(InvalidInput, match="version"):
        load_dir(dst)


def test_follow_cycles_are_refused(tmp_path):
    dst = _copy(tmp_path)
    p = dst / "template.yaml"
    text = p.read_text().replace(
        "cycle: {period_s: 1800, duty: 0.45, amplitude: 300}}",
        "cycle: {period_s: 1800, duty: 0.45, amplitude: 300},\n"
        "              follows: [{metric: temperature, gain: 1}]}",
        1,
    )
    p.write_text(text)
    with pytest.raises(InvalidInput, match="cycle"):
        load_dir(dst)
