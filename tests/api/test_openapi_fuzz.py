"""Schemathesis against the REST API, from its own OpenAPI schema, over real HTTP (uvicorn):
no route answers 5xx to generated input, schema-conforming or not, whether the caller is a
tenant admin, a device (on the device routes) or nobody.

Bounded for the suite (issue 9; about 30 s of CPU): 15 examples per operation and mode, no
shrinking, no example database. Run with ``ATOLL_FUZZ_EXAMPLES=200`` for a deeper pass, with
``ATOLL_FUZZ_ONLY=/solutions`` for the operations whose path contains that alone."""

import os
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from atoll.core.errors import NotFound
from atoll.registry.models import MetricSpec
from tests.api.serving import ApiServer

EXAMPLES = int(os.environ.get("ATOLL_FUZZ_EXAMPLES", "15"))
ONLY = os.environ.get("ATOLL_FUZZ_ONLY", "")
# Ids as stored: chosen in tenant fuzz, they live in its namespace (atoll.registry.namespaces).
TENANT, PROJECT, DEVICE = "fuzz", "fuzz~lab", "fuzz~s1"


@dataclass
class Target:
    server: ApiServer
    device_secret: str = ""

    def tenant_admin(self) -> str:
        """A fresh key per operation: a generated DELETE /keys/{id} may revoke an earlier one."""
        return self.server.registry.create_api_key(TENANT, "fuzz", "admin").token

    def device(self) -> tuple[str, str]:
        """The device, recreated if a generated request deleted or revoked it."""
        reg = self.server.registry
        try:
            reg.get_project(PROJECT)
        except NotFound:
            reg.create_project(TENANT, "Fuzz lab", project_id=PROJECT)
            reg.create_device_type(
                PROJECT,
                "climate",
                [MetricSpec("temperature", min=-40, max=85), MetricSpec("count", type="int")],
            )
        try:
            reg.get_device(DEVICE)
            if reg.authenticate_device(DEVICE, self.device_secret) is None:
                reg.disable_device(DEVICE, disabled=False)
                self.device_secret = reg.rotate_credentials(DEVICE).secret
        except NotFound:
            # A gateway, so the gateway routes get past their "not a gateway" 403.
            self.device_secret = reg.register_device(
                PROJECT, device_id=DEVICE, device_type="climate", kind="gateway"
            )[1].secret
        return DEVICE, self.device_secret


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    with ApiServer(tmp_path_factory.mktemp("fuzz"), detection=True, rul=True) as server:
        server.registry.create_tenant("Fuzz", TENANT)
        t = Target(server)
        t.device()
        yield t


@pytest.fixture(scope="module")
def api_schema(target):
    return schemathesis.openapi.from_url(f"{target.server.url}/api/v1/openapi.json")


def _no_server_error(case, response, who: str) -> None:
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} as {who} -> {response.status_code}\n"
        f"{case.as_curl_command()}\n{response.text[:500]}"
    )


def _call_as_everyone(case, target: Target) -> None:
    base = target.server.url
    # Unauthenticated: every route must refuse cleanly (401), whatever the input.
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    _no_server_error(case, case.call(base_url=base, headers=headers, timeout=30), "nobody")
    if case.path.startswith("/ingest/") or "/ingest/" in case.path:
        response = case.call(base_url=base, headers=headers, auth=target.device(), timeout=30)
        _no_server_error(case, response, "device")
    else:
        headers["Authorization"] = f"Bearer {target.tenant_admin()}"
        _no_server_error(
            case, case.call(base_url=base, headers=headers, timeout=30), "tenant admin"
        )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_route_answers_5xx(api_schema, target, mode):
    # One test walks every operation (schemathesis' pytest plugin does not run on pytest 9).
    failures = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 50
    operations = [op for op in operations if ONLY in op.path]
    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(operation.as_strategy(generation_mode=mode))
        def fuzz(case):
            _call_as_everyone(case, target)

        try:
            fuzz()
        except AssertionError as e:
            failures.append(str(e).split("\nFalsifying")[0])
        except Unsatisfiable:  # nothing to break (negative mode on an operation without input)
            pass
    assert not failures, "\n\n".join(failures)


# -- what the fuzzer found, one focused regression each (each answered 500 before) -----------

BIG = 2**70  # beyond the signed 64-bit integers the registry stores
FOUND = [
    ("GET", f"/alarms/{BIG}", None),
    ("POST", f"/alarms/{BIG}/ack", None),
    ("POST", f"/alarms/{BIG}/clear", None),
    ("GET", f"/alarms/{BIG}/comments", None),
    ("POST", f"/alarms/{BIG}/comments", {"text": "x"}),
    ("GET", f"/alarms/{BIG}/history", None),
    ("GET", f"/alarms?offset={BIG}", None),
    ("GET", f"/audit?before_id={BIG}", None),
    ("GET", f"/projects/{PROJECT}/devices?offset={BIG}", None),
    ("GET", f"/projects/{PROJECT}/deliveries?alarm={BIG}", None),
    ("POST", "/keys", {"name": "k", "ttl_s": 1.6e307}),
    ("POST", "/projects", {"name": "p", "retention_days": BIG}),
    ("PATCH", f"/projects/{PROJECT}", {"retention_days": BIG}),
    ("POST", f"/devices/{DEVICE}/commands", {"name": "x", "args": {"n": BIG}}),
]


@pytest.mark.parametrize(("method", "path", "body"), FOUND, ids=[f"{m} {p}" for m, p, _ in FOUND])
def test_numbers_beyond_64_bits_are_refused_with_4xx(target, method, path, body):
    with httpx.Client(base_url=f"{target.server.url}/api/v1", timeout=30) as http:
        r = http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {target.tenant_admin()}"}
        )
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"] == "invalid_input"
