"""Tenants, projects, device types, devices, credentials, API keys, users, twins, commands, audit."""

from atoll.registry.models import (
    ApiKey,
    AuditEntry,
    BootstrapSecrets,
    Command,
    Device,
    DeviceCredentials,
    DeviceIdentity,
    DeviceType,
    MetricSpec,
    NewApiKey,
    Principal,
    Project,
    Rejection,
    Tenant,
    Twin,
    User,
)
from atoll.registry.registry import Registry

__all__ = [
    "ApiKey", "AuditEntry", "BootstrapSecrets", "Command", "Device", "DeviceCredentials",
    "DeviceIdentity", "DeviceType", "MetricSpec", "NewApiKey", "Principal", "Project", "Registry",
    "Rejection", "Tenant", "Twin", "User",
]
