"""Device twins: desired (cloud → device) and reported (device → cloud) JSON, each versioned."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select, update

from atoll.core.errors import InvalidInput
from atoll.registry import tables as t
from atoll.registry.models import Twin
from atoll.registry.tokens import now_us

MAX_TWIN_BYTES = 64 * 1024


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively and ``null`` deletes a key.

    >>> merge_patch({"a": 1, "b": {"c": 2}}, {"b": {"c": None, "d": 3}})
    {'a': 1, 'b': {'d': 3}}
    """
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _twin(row) -> Twin:
    return Twin(
        row.device,
        dict(row.desired),
        row.desired_version,
        row.desired_updated_at,
        dict(row.reported),
        row.reported_version,
        row.reported_updated_at,
    )


def get(conn: Connection, device_id: str) -> Twin:
    row = conn.execute(select(t.twins).where(t.twins.c.device == device_id)).first()
    if row is None:
        return Twin(device_id, {}, 0, None, {}, 0, None)
    return _twin(row)


def _check(doc: Any, what: str) -> None:
    if not isinstance(doc, Mapping):
        raise InvalidInput(f"{what} must be a JSON object")
    try:
        size = len(orjson.dumps(doc))
    except TypeError as exc:
        raise InvalidInput(f"{what} is not JSON-serialisable: {exc}") from None
    if size > MAX_TWIN_BYTES:
        raise InvalidInput(f"{what} would be {size} bytes; the limit is {MAX_TWIN_BYTES}")


def _apply(conn: Connection, device_id: str, side: str, patch: Mapping[str, Any]) -> Twin:
    _check(patch, f"{side} patch")
    q = select(t.twins).where(t.twins.c.device == device_id).with_for_update()
    row = conn.execute(q).first()
    now = now_us()
    if row is None:
        doc = merge_patch({}, patch)
        _check(doc, side)
        base = {
            "device": device_id,
            "desired": {},
            "desired_version": 0,
            "desired_updated_at": None,
            "reported": {},
            "reported_version": 0,
            "reported_updated_at": None,
        }
        base.update({side: doc, f"{side}_version": 1, f"{side}_updated_at": now})
        conn.execute(insert(t.twins).values(**base))
    else:
        doc = merge_patch(getattr(row, side), patch)
        _check(doc, side)
        conn.execute(
            update(t.twins)
            .where(t.twins.c.device == device_id)
            .values(
                **{
                    side: doc,
                    f"{side}_version": getattr(row, f"{side}_version") + 1,
                    f"{side}_updated_at": now,
                }
            )
        )
    return get(conn, device_id)


def patch_desired(conn: Connection, device_id: str, patch: Mapping[str, Any]) -> Twin:
    return _apply(conn, device_id, "desired", patch)


def patch_reported(conn: Connection, device_id: str, patch: Mapping[str, Any]) -> Twin:
    return _apply(conn, device_id, "reported", patch)
