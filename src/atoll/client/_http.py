"""The SDK's transport: one ``httpx.Client`` per SDK client, JSON in and out, errors translated
to ``atoll.AtollError`` subclasses, answers built into the SDK's frozen dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, Self, TypeVar

import httpx

from atoll.core import errors

TimeLike = datetime | int | float | str | None
TENANT_HEADER = "X-Atoll-Tenant"

_ERRORS: dict[int, type[errors.AtollError]] = {
    400: errors.InvalidInput,
    401: errors.Unauthenticated,
    403: errors.Forbidden,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.PayloadTooLarge,
    422: errors.InvalidInput,
    503: errors.Unavailable,
}

T = TypeVar("T")


def parse_dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def build(cls: type[T], data: Mapping[str, Any]) -> T:
    """``cls`` from an answer: unknown keys are dropped (newer servers may add some), and ISO-8601
    strings become ``datetime`` where the field is declared as one."""
    kw = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        value = data[f.name]
        if isinstance(value, str) and "datetime" in str(f.type):
            value = parse_dt(value)
        kw[f.name] = value
    return cls(**kw)


def time_param(value: TimeLike) -> str | None:
    """A query time: datetime, epoch milliseconds, ISO-8601 or relative (``"-1h"``)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat()
    if isinstance(value, (int, float)):
        return str(int(value))  # epoch milliseconds
    return value


def raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
        message, hint = body.get("message") or response.text, body.get("hint")
    except ValueError:
        message, hint = response.text or response.reason_phrase, None
    err = _ERRORS.get(response.status_code, errors.AtollError)(message, hint=hint)
    err.status = response.status_code
    raise err


class Http:
    """Base of ``Client`` and ``DeviceClient``: a context manager over one connection pool."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url + "/api/v1",
            auth=auth,
            headers=dict(headers or {}),
            timeout=timeout,
            transport=transport,
        )

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        if "params" in kw:
            kw["params"] = {k: v for k, v in kw["params"].items() if v is not None}
        try:
            r = self._http.request(method, path, **kw)
        except httpx.TransportError as e:
            raise errors.Unavailable(
                f"cannot reach Atoll at {self.base_url}: {e}",
                hint="check the URL and that `atoll up` is running",
            ) from e
        raise_for(r)
        if r.status_code == 204 or not r.content:
            return None
        return (
            r.json()
            if r.headers.get("content-type", "").startswith("application/json")
            else r.content
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
