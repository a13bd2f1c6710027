"""Tenants, projects, device types, devices,
credentials, API keys, users, twins, commands, audit."""

from atoll.registry import models
from atoll.registry.models import *  # noqa: F403 -- the record types, listed once in models.__all__
from atoll.registry.registry import Registry

__all__ = ["Registry"]
__all__ += models.__all__
