"""Give simulated devices real identities: register them through Atoll's REST API.

Creates the project and the templates' device types when missing, registers each device (or
rotates its secret when it already exists, since a secret is shown only once) and returns the
devices with their secrets, ready for :class:`atoll.sim.mqtt.MqttFleet`. Ids are the ones the API
returns: in a tenant other than ``default`` a chosen id is stored in the tenant's namespace
(``lab-0001`` becomes ``acme~lab-0001``), and that is the MQTT username.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from atoll.core.errors import Conflict, InvalidInput
from atoll.sim.fleet import SimDevice, plan_devices
from atoll.solutions import Template
from atoll.solutions.apply import ensure_project


def provision(
    client: Any,
    project: str,
    templates: Sequence[Template],
    count: int,
    *,
    prefix: str = "sim",
    workers: int = 8,
    on_progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> list[SimDevice]:
    """Register ``count`` devices in ``project`` with ``client`` (an :class:`atoll.Client`).

    When ``stop`` is set, registering ends within a request's time and the devices registered
    so far are returned (fewer than ``count``)."""
    project, _ = ensure_project(client, project, project)
    existing = {t.id for t in client.device_types(project)}
    for template in templates:
        for dtype in template.device_types:
            if dtype.name not in existing:
                client.create_device_type(
                    project,
                    dtype.name,
                    dtype.registry_metrics(),
                    name=dtype.description or dtype.name,
                )
                existing.add(dtype.name)
    planned = plan_devices(templates, count, prefix=prefix, project=project)
    # Devices of an earlier run, by the id they were chosen with: they get a new secret.
    known = {d.id.rpartition("~")[2]: d.id for d in _all_devices(client, project)}

    def register(d: SimDevice) -> SimDevice:
        if d.device_id in known:
            creds = client.rotate_credentials(known[d.device_id])
        else:
            try:
                creds = client.register_device(
                    project, id=d.device_id, name=d.device_id, device_type=d.device_type
                ).credentials
            except Conflict:  # registered meanwhile (another run): ours to rotate
                full = {x.id.rpartition("~")[2]: x.id for x in _all_devices(client, project)}
                creds = client.rotate_credentials(full[d.device_id])
        return SimDevice(creds.device, d.template, d.device_type, creds.secret, project)

    # A few requests in flight hide the round trips; the client's connection pool is shared.
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="atoll-sim-register") as pool:
        futures = [pool.submit(register, d) for d in planned]
        stopped = stop.is_set if stop is not None else lambda: False
        try:
            for n, fut in enumerate(futures, 1):
                while not wait([fut], timeout=0.2).done and not stopped():
                    pass
                if stopped():
                    break
                fut.result()  # the registration's error, if any
                if on_progress:
                    on_progress(n, len(planned))
        finally:
            for f in futures:  # not sent yet: dropped; in flight: they finish, and are kept
                f.cancel()
    # In plan order; after a stop, every device whose registration went through.
    return [f.result() for f in futures if f.done() and not f.cancelled() and not f.exception()]


def _all_devices(client: Any, project: str, page: int = 1000) -> list[Any]:
    out: list[Any] = []
    while batch := client.devices(project, limit=page, offset=len(out)):
        out += batch
        if len(batch) < page:
            break
    return out


def save_credentials(path: str | Path, devices: Sequence[SimDevice]) -> None:
    """Write ``{device_id: {secret, template, device_type, project}}``, readable by owner only."""
    doc = {
        d.device_id: {
            "secret": d.secret,
            "template": d.template,
            "device_type": d.device_type,
            "project": d.project,
        }
        for d in devices
    }
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)


def load_credentials(path: str | Path, templates: Sequence[Template]) -> list[SimDevice]:
    """Devices from a credentials file.

    Each entry is ``device_id: secret`` or ``device_id: {secret, template, device_type}``. Plain
    secrets get device types from ``templates`` in share order, so a list of ids from any
    registry still simulates a sensible mix.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InvalidInput(
            f"cannot read credentials file {path}: {e}",
            hint='expected JSON like {"device-1": "secret", ...}',
        ) from e
    if not isinstance(doc, dict) or not doc:
        raise InvalidInput(f"{path}: expected a non-empty JSON object of device_id -> secret")
    plain = [k for k, v in doc.items() if isinstance(v, str)]
    mix = iter(plan_devices(templates, len(plain))) if plain else iter(())
    known = {(t.name, d.name) for t in templates for d in t.device_types}
    out = []
    for device_id, v in doc.items():
        if isinstance(v, str):
            m = next(mix)
            out.append(SimDevice(device_id, m.template, m.device_type, v))
        elif isinstance(v, dict) and isinstance(v.get("secret"), str | None):
            key = (v.get("template"), v.get("device_type"))
            if key not in known:
                raise InvalidInput(
                    f"{path}: {device_id}: unknown template/device type {key}",
                    hint="pass the right --template or fix the file",
                )
            out.append(SimDevice(device_id, key[0], key[1], v["secret"], v.get("project")))
        else:
            raise InvalidInput(
                f"{path}: {device_id}: expected a secret string or an object with 'secret'"
            )
    return out
