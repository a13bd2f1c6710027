"""A connector's manifest: what it is, what it needs and which commands it carries out.

Each connector is a folder under ``atoll/edge/connectors`` with a ``manifest.json`` beside its
code, as the sector templates are (``atoll/solutions/*/manifest.json``); ``tests/edge`` checks
every one. The agent composes connectors explicitly (``atoll.edge.connectors.CONNECTORS``); the
manifest documents and validates them.

>>> m = load(FOLDER / "modbus")
>>> m.name, m.config_model().__name__
('modbus', 'ModbusConfig')
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FOLDER = Path(__file__).resolve().parent


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: str = Field(pattern=r"^\d+(\.\d+)*$")
    description: str = Field(min_length=10)
    #: ``module:Class`` of the pydantic model ``build`` validates the configuration with
    config: str = Field(pattern=r"^[a-z_.]+:[A-Za-z_]+$")
    #: pip requirements beyond Atoll's core (all in the ``edge`` extra)
    requirements: list[str]
    #: the platform commands the connector carries out: kinds (``register_write``) when their
    #: names come from the configuration, else the names themselves
    commands: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]]

    def config_model(self) -> type[BaseModel]:
        module, _, attr = self.config.partition(":")
        model = getattr(importlib.import_module(module), attr)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ValueError(f"{self.config} is not a pydantic model")
        return model


def folders() -> list[Path]:
    """Every connector folder (one with a ``manifest.json``), sorted by name."""
    return sorted(p for p in FOLDER.iterdir() if (p / "manifest.json").is_file())


def load(folder: Path) -> Manifest:
    path = folder / "manifest.json"
    try:
        return Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as e:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path}: invalid connector manifest: {e}") from e
