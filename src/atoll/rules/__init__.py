"""Rules, alarms, notifications and scheduled reports (see docs/RULES.md).

>>> from atoll.rules import load_rules
>>> [r.id for r in load_rules("- {name: Too cold, project: p, target: {device: d1}, "
...                           "condition: {type: threshold, metric: t, op: '<', value: 0}}")]
['too-cold']
"""

from __future__ import annotations

from typing import Any

from atoll.rules.loading import load_rule_file, load_rules
from atoll.rules.model import ChannelSpec, Rule

__all__ = ["ChannelSpec", "Rule", "RulesService", "load_rule_file", "load_rules"]


def __getattr__(name: str) -> Any:
    # The service pulls in the database and HTTP layers: load it only when asked for.
    if name == "RulesService":
        from atoll.rules.service import RulesService

        return RulesService
    raise AttributeError(name)
