"""Rules from YAML: the happy path and errors that name the field."""

from __future__ import annotations

import pytest

from atoll.core.errors import InvalidInput
from atoll.rules.loading import load_rule_file, load_rules

GOOD = """
project: plant
channels:
  ops: {type: webhook, url: "http://127.0.0.1:9/hook", attempts: 3}
rules:
  - name: Boiler too hot
    severity: critical
    target: {device_type: boiler}
    condition: {type: threshold, metric: temperature, op: ">", value: 90, clear: 85, for: 1m}
    schedule:
      timezone: Europe/Paris
      windows: [{days: [mon, tue, wed, thu, fri], start: "08:00", end: "18:00"}]
    notify: {channels: [ops], repeat_every: 15m}
    escalation:
      - {after: 10m, severity: critical, channels: [ops]}
  - id: pump-offline
    name: Pump offline
    target: {devices: [pump-1, pump-2]}
    condition:
      type: any
      conditions:
        - {type: no_data, timeout: 5m}
        - {type: anomaly, metric: flow, value: 0.95}
"""


def test_a_full_file_loads():
    doc = load_rule_file(GOOD)
    hot, offline = doc.rules
    assert hot.id == "boiler-too-hot" and hot.project == "plant"
    assert hot.condition.for_ == 60 and hot.condition.clear == 85
    assert hot.notify.repeat_every == 900 and hot.escalation[0].after == 600
    assert offline.id == "pump-offline" and offline.target.explicit() == ["pump-1", "pump-2"]
    assert offline.condition.conditions[0].timeout == 300
    assert [c.name for c in doc.channels] == ["ops"] and doc.channels[0].config["attempts"] == 3
    # Round trip: what we store loads back to the same rule.
    from atoll.rules.model import Rule

    assert Rule.model_validate(hot.dump()) == hot


def test_a_bare_list_and_a_default_project():
    rules = load_rules(
        "- {name: a, target: {device: d}, condition: {type: no_data, timeout: 1}}", project="p"
    )
    assert rules[0].project == "p"


@pytest.mark.parametrize(
    "text, where",
    [
        (
            "- {name: a, project: p, target: {device: d}, condition: {type: threshold, metric: t}}",
            "rules[0].condition.threshold.value: Field required",
        ),
        (
            "- {name: a, project: p, target: {device: d}, condition: {type: treshold, metric: t}}",
            "rules[0].condition: Input tag 'treshold'",
        ),
        (
            "- {name: a, project: p, target: {}, condition: {type: no_data, timeout: 1}}",
            "rules[0].target: give exactly one of device, devices, device_type",
        ),
        (
            "- {name: a, project: p, target: {device: d},"
            " condition: {type: no_data, timeout: soon}}",
            "rules[0].condition.no_data.timeout: 'soon' is not a duration",
        ),
        (
            "- {name: a, project: p, target: {device: d}, condition: {type: any, conditions: []}}",
            "rules[0].condition.any.conditions: List should have at least 1 item",
        ),
        (
            "- {name: a, project: p, target: {device: d}, condition: {type: threshold, metric: t, "
            "value: 1, op: '<', clear: 0}}",
            "clear (0) must be >= value (1) for op '<'",
        ),
        (
            "- {name: a, project: p, severity: bad, target: {device: d},"
            " condition: {type: no_data, timeout: 1}}",
            "rules[0].severity: Input should be",
        ),
        (
            "- {name: a, project: p, target: {device: d},"
            " condition: {type: no_data, timeout: 1}, colour: red}",
            "rules[0].colour: Extra inputs are not permitted",
        ),
        (
            "- {name: a, project: p, target: {device: d}, condition: {type: no_data, timeout: 1},"
            " schedule: {timezone: Mars/Base, windows: [{}]}}",
            "rules[0].schedule.timezone: unknown timezone",
        ),
        (
            "- {name: a, project: p, target: {device: d}, condition: {type: no_data, timeout: 1},"
            " escalation: [{after: 10m}]}",
            "rules[0].escalation[0]: an escalation step needs",
        ),
        (
            "- {name: a, target: {device: d}, condition: {type: no_data, timeout: 1}}",
            "rules[0].project: Field required",
        ),
        ("rules:\n  - name: a\n   bad indent", "does not parse at line"),
        (
            "- {name: a, project: p, target: {device: d}, condition: {type: no_data, timeout: 1}}\n"
            "- {name: a, project: p, target: {device: e}, condition: {type: no_data, timeout: 1}}",
            "duplicate rule ids ['a']",
        ),
        (
            "project: p\nchannels: {ops: {url: x}}\nrules: []",
            "channels.ops: expected a mapping with a 'type'",
        ),
    ],
)
def test_errors_name_the_field(text, where):
    with pytest.raises(InvalidInput) as e:
        load_rules(text)
    assert where in e.value.message
    assert e.value.status == 400


def test_the_examples_in_docs_rules_md_load():
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "RULES.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.DOTALL)
    assert len(blocks) >= 2
    full = load_rule_file(blocks[0])
    assert [r.id for r in full.rules] == ["boiler-too-hot"]
    assert {c.name for c in full.channels} == {"ops", "boss", "stop"}
    from atoll.rules.channels import check_channel

    for c in full.channels:
        check_channel(c)
    for block in blocks[1:]:  # condition fragments
        from atoll.rules.loading import parse_rule, parse_yaml

        frag = parse_yaml(block)
        parse_rule({"name": "x", "project": "p", "target": {"device": "d"}, **frag})


def test_yaml_on_and_no_are_strings_not_booleans():
    (r,) = load_rules(
        "- {name: a, project: p, target: {device: no}, enabled: false, "
        "condition: {type: no_data, timeout: 1}, notify: {on: [raised]}}"
    )
    assert r.target.device == "no" and r.enabled is False and r.notify.on == ["raised"]
