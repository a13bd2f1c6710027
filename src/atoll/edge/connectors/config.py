"""Validating a connector's configuration: one clear ``ValueError`` naming every bad field.

>>> from pydantic import BaseModel
>>> class Example(BaseModel):
...     port: int
>>> parse(Example, {"port": "x"}, "example")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: example connector configuration is invalid: port: Input should be ... (got 'x')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], config: Mapping[str, Any], connector: str) -> M:
    """``model`` validated from ``config``, or ``ValueError`` listing each problem by path."""
    if not isinstance(config, Mapping):
        raise ValueError(f"{connector} connector configuration must be a mapping, not {config!r}")
    try:
        return model.model_validate(dict(config))
    except ValidationError as e:
        problems = "; ".join(_problem(err) for err in e.errors())
        raise ValueError(f"{connector} connector configuration is invalid: {problems}") from None


def _problem(err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    message = str(err["msg"]).removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if isinstance(got, Mapping | list) or err["type"] == "missing" else f" (got {got!r})"
    return f"{where}: {message}{shown}"
