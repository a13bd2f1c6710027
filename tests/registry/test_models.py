"""The registry's record types: every one is exported from ``atoll.registry``, listed once."""

import dataclasses
import inspect

import atoll.registry
from atoll.registry import models


def test_every_record_type_is_exported():
    records = {
        name
        for name, obj in vars(models).items()
        if inspect.isclass(obj)
        and dataclasses.is_dataclass(obj)
        and obj.__module__ == models.__name__
    }
    assert set(models.__all__) == records
    assert sorted(atoll.registry.__all__) == sorted([*records, "Registry"])
    for name in atoll.registry.__all__:
        assert getattr(atoll.registry, name).__name__ == name
