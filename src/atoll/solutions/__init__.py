"""Sector solution templates: data plus a manifest, found by discovery.

>>> from atoll import solutions
>>> sorted(t.sector for t in solutions.discover())
['construction', 'finance', 'healthcare', 'manufacturing', 'retail']
"""

from atoll.solutions.catalog import discover, load, template_dirs
from atoll.solutions.models import (
    Dashboard,
    DetectorBinding,
    DeviceType,
    Effect,
    FaultKind,
    FaultSpec,
    Manifest,
    Panel,
    Signal,
    Telemetry,
    Template,
)

__all__ = [
    "Dashboard",
    "DetectorBinding",
    "DeviceType",
    "Effect",
    "FaultKind",
    "FaultSpec",
    "Manifest",
    "Panel",
    "Signal",
    "Telemetry",
    "Template",
    "discover",
    "load",
    "template_dirs",
]
