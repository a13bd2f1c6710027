"""Rules from YAML (or any parsed JSON), with errors that name the offending field.

A file is a list of rules, or a mapping with ``rules`` and optional ``project`` (the
default for every rule) and ``channels`` (``{name: {type: ..., ...config}}``)::

    project: plant-1
    channels:
      ops: {type: webhook, url: "https://example.test/hook"}
    rules:
      - name: Boiler too hot
        target: {device_type: boiler}
        condition: {type: threshold, metric: temperature, op: ">", value: 90, clear: 85, for: 1m}
        notify: {channels: [ops]}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from atoll.core.errors import InvalidInput
from atoll.rules.model import ChannelSpec, Rule


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 would read the key ``on:`` (in ``notify``)
    and values like ``no`` or ``off`` as booleans."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass
class RuleFile:
    rules: list[Rule] = field(default_factory=list)
    channels: list[ChannelSpec] = field(default_factory=list)


def _loc(parts: tuple) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def describe_errors(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem: ``rules[0].condition.threshold.value: Field required``."""
    lines = []
    for err in exc.errors():
        where = _loc(tuple(err["loc"]))
        where = f"{prefix}.{where}" if prefix and where else (prefix or where or "rule")
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {msg}")
    return "; ".join(lines)


def validate(model: type[BaseModel], data: Any, prefix: str = ""):
    """``model.model_validate`` that raises ``InvalidInput`` naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(
            f"invalid {model.__name__.lower()}: {describe_errors(exc, prefix)}",
            hint="see docs/RULES.md for the rule schema",
        ) from None


def parse_rule(data: Any, *, project: str | None = None, prefix: str = "") -> Rule:
    if not isinstance(data, dict):
        raise InvalidInput(f"{prefix or 'rule'}: expected a mapping, got {type(data).__name__}")
    if project is not None and "project" not in data:
        data = {**data, "project": project}
    return validate(Rule, data, prefix)


def parse_yaml(text: str) -> Any:
    """YAML with safe types and YAML 1.2 booleans; ``InvalidInput`` with the line on errors."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(f"rules YAML does not parse{where}: {problem}") from None


def load_rule_file(text: str, *, project: str | None = None) -> RuleFile:
    doc = parse_yaml(text)
    if doc is None:
        return RuleFile()
    if isinstance(doc, list):
        doc = {"rules": doc}
    if not isinstance(doc, dict):
        raise InvalidInput("rules YAML must be a list of rules or a mapping with 'rules'")
    unknown = set(doc) - {"project", "rules", "channels"}
    if unknown:
        if "condition" in doc:  # a single rule on its own
            doc = {"rules": [doc]}
        else:
            raise InvalidInput(
                f"unknown top-level keys {sorted(unknown)}; expected project, rules, channels"
            )
    project = doc.get("project", project)
    rules_raw = doc.get("rules") or []
    if not isinstance(rules_raw, list):
        raise InvalidInput("rules: expected a list of rules")
    out = RuleFile()
    for i, raw in enumerate(rules_raw):
        out.rules.append(parse_rule(raw, project=project, prefix=f"rules[{i}]"))
    ids = [r.id for r in out.rules if r.id is not None]  # validated rules all have one
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise InvalidInput(
            f"rules: duplicate rule ids {dup}", hint="give each rule a distinct id or name"
        )
    channels = doc.get("channels") or {}
    if not isinstance(channels, dict):
        raise InvalidInput("channels: expected a mapping of name -> {type: ..., ...}")
    for name, conf in channels.items():
        if not isinstance(conf, dict) or "type" not in conf:
            raise InvalidInput(f"channels.{name}: expected a mapping with a 'type'")
        conf = dict(conf)
        ctype = conf.pop("type")
        spec = validate(
            ChannelSpec,
            {
                "name": name,
                "project": project or conf.pop("project", None),
                "type": ctype,
                "config": conf,
            },
            f"channels.{name}",
        )
        out.channels.append(spec)
    return out


def load_rules(text: str, *, project: str | None = None) -> list[Rule]:
    """Rules in a YAML document; raises ``InvalidInput`` naming the bad field."""
    return load_rule_file(text, project=project).rules
