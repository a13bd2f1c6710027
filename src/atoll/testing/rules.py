"""Conformance suites for the rules service's ports: ``check_directory`` for a
``DeviceDirectory`` adapter, ``check_channel_type`` for a notification channel plug-in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from atoll.rules.channels import Channel, ChannelContext, ChannelType, Notification
from atoll.rules.directory import DeviceDirectory

FLEET = {
    "p1": {"b1": "boiler", "b2": "boiler", "m1": "motor"},
    "p2": {"b9": "boiler"},
}


def check_directory(make: Callable[[dict[str, dict[str, str]]], DeviceDirectory]) -> None:
    """``make(FLEET)`` builds the adapter holding ``{project: {device: device_type}}``."""
    d = make(FLEET)
    assert isinstance(d, DeviceDirectory)
    assert d.device_type("p1", "b1") == "boiler"
    assert d.device_type("p1", "m1") == "motor"
    assert d.device_type("p1", "b9") is None, "a device of another project has no type here"
    assert d.device_type("p1", "nope") is None
    assert sorted(d.devices("p1")) == ["b1", "b2", "m1"]
    assert sorted(d.devices("p1", "boiler")) == ["b1", "b2"]
    assert d.devices("p2", "motor") == []
    assert d.devices("unknown-project") == []


def check_channel_type(ct: ChannelType, config: dict[str, Any], *, send: bool = False) -> Channel:
    """The type validates ``config`` and builds a ``Channel``; with ``send``, one test
    notification must go through (the plug-in's own fake or sandbox endpoint)."""
    cfg = ct.config.model_validate(config)
    ch = ct.factory(cfg, ChannelContext())
    assert isinstance(ch, Channel), f"{ct.name}: factory must return a Channel (async send)"
    assert asyncio.iscoroutinefunction(ch.send)
    if send:
        attempts = asyncio.run(ch.send(Notification("p", "test", "conformance", "hello")))
        assert isinstance(attempts, int) and attempts >= 1
    return ch
