"""The demo lab: which enterprises, in which sectors, with which projects and devices.

Building a lab goes through the public REST API (``atoll.Client``) exactly as an operator would:
create the tenant, create its project, apply the sector template (device types, rules), register
devices (each gets its own secret); the template binds its detectors to its device types.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from atoll.sim.fleet import SimDevice
from atoll.sim.provision import provision
from atoll.solutions import Template
from atoll.solutions import load as load_template
from atoll.solutions.apply import apply as apply_template


@dataclass(frozen=True, slots=True)
class LabTenant:
    id: str
    name: str
    template: str  # solution template = sector
    project: str
    project_name: str
    share: float  # of the demo's devices


LAB: tuple[LabTenant, ...] = (
    LabTenant(
        "lingang-motors",
        "Lingang Precision Motors",
        "manufacturing",
        "line-3",
        "Line 3 drives and pumps",
        0.24,
    ),
    LabTenant(
        "freshway", "FreshWay Retail", "retail", "pudong-cold-chain", "Pudong cold chain", 0.20
    ),
    LabTenant(
        "ruijin-medical",
        "Ruijin Medical Center",
        "healthcare",
        "vaccine-wards",
        "Vaccine storage and wards",
        0.18,
    ),
    LabTenant(
        "lujiazui-bank",
        "Lujiazui Commercial Bank",
        "finance",
        "atm-fleet",
        "ATM fleet and branches",
        0.20,
    ),
    LabTenant(
        "zhangjiang-build",
        "Zhangjiang Urban Build",
        "construction",
        "site-b2",
        "Tower site B2",
        0.18,
    ),
)


#: The console login each enterprise gets, in its own namespace (``freshway~admin``).
LAB_USER = "admin"


@dataclass
class BuiltTenant:
    spec: LabTenant
    template: Template
    api_key: str
    devices: list[SimDevice]
    username: str = ""  # the login as stored: ``lingang-motors~admin``
    password: str = ""
    project: str = ""  # the project id as returned: ``lingang-motors~line-3``


def split_devices(total: int, lab: Sequence[LabTenant] = LAB) -> list[int]:
    """Devices per tenant: proportional to ``share``, at least 2 each, summing to ``total``."""
    if total < 2 * len(lab):
        raise ValueError(f"the demo needs at least {2 * len(lab)} devices")
    shares = [t.share for t in lab]
    scale = (total - 2 * len(lab)) / sum(shares)
    counts = [2 + int(s * scale) for s in shares]
    for i in range(total - sum(counts)):
        counts[i % len(counts)] += 1
    return counts


def build_lab(
    admin: Any,
    make_client: Callable[[str], Any],
    total_devices: int,
    *,
    on_progress: Callable[[str], None] | None = None,
    on_device: Callable[[int, int], None] | None = None,
    lab: Sequence[LabTenant] = LAB,
) -> list[BuiltTenant]:
    """Create the lab through the API; ``admin`` is a platform-admin ``atoll.Client``."""
    out = []
    done = 0
    for spec, count in zip(lab, split_devices(total_devices, lab), strict=True):
        template = load_template(spec.template)
        _, key = admin.create_tenant(spec.name, id=spec.id)
        # Each enterprise gets its own console login: tenants never see each other's data.
        password = secrets.token_urlsafe(12)
        with make_client(key.token) as client:
            # Names chosen in a tenant live in its namespace (``lingang-motors~admin``): keep
            # the ids the API returns, they are the logins, topics and URLs.
            username = client.create_user(LAB_USER, password, role="admin").username
            project = client.create_project(
                spec.project_name, id=spec.project, retention_days=30
            ).id
            apply_template(client, template, project)  # device types and rules
            shifted: Callable[[int, int], None] | None = (
                (lambda n, _, base=done: on_device(base + n, total_devices)) if on_device else None
            )
            devices = provision(
                client, project, [template], count, prefix="lab", on_progress=shifted
            )
            done += len(devices)
        out.append(BuiltTenant(spec, template, key.token, devices, username, password, project))
        if on_progress:
            on_progress(f"{spec.name}: {len(devices)} {spec.template} devices")
    return out
