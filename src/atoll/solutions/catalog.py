"""Finding and loading solution templates: every folder with a ``manifest.json`` is one.

The built-in templates live next to this module; more folders can be added with the
``ATOLL_SOLUTIONS_PATH`` environment variable (``os.pathsep``-separated directories, each
holding template folders). Nothing imports a template by name.

>>> [t.name for t in discover()]
['construction', 'finance', 'healthcare', 'manufacturing', 'retail']
>>> load("retail").device_type("freezer").metric("temperature").unit
'°C'
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from atoll.core.errors import InvalidInput, NotFound
from atoll.solutions.models import Manifest, Template

BUILTIN = Path(__file__).resolve().parent


def _roots() -> list[Path]:
    roots = [BUILTIN]
    extra = os.environ.get("ATOLL_SOLUTIONS_PATH", "")
    roots += [Path(p) for p in extra.split(os.pathsep) if p]
    return roots


def template_dirs() -> list[Path]:
    """Every template folder, sorted by folder name."""
    found = []
    for root in _roots():
        if root.is_dir():
            found += [p for p in root.iterdir() if (p / "manifest.json").is_file()]
    return sorted(found, key=lambda p: p.name)


def load_manifest(folder: Path) -> Manifest:
    path = folder / "manifest.json"
    try:
        return Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as e:  # JSONDecodeError is a ValueError
        raise InvalidInput(
            f"{path}: invalid manifest: {e}", hint="see atoll/solutions/models.py:Manifest"
        ) from e


def load_dir(folder: Path) -> Template:
    """Load and validate one template folder."""
    manifest = load_manifest(folder)
    path = folder / manifest.template
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        template = Template.model_validate(data)
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read template: {e}") from e
    except (yaml.YAMLError, ValidationError) as e:
        raise InvalidInput(
            f"{path}: invalid template: {e}", hint="see atoll/solutions/models.py:Template"
        ) from e
    for field in ("name", "sector", "version"):
        if getattr(template, field) != getattr(manifest, field):
            raise InvalidInput(
                f"{path}: {field} {getattr(template, field)!r} does not match "
                f"the manifest's {getattr(manifest, field)!r}"
            )
    return template


def discover() -> list[Template]:
    """All templates, validated, sorted by name. A broken template raises ``InvalidInput``."""
    templates = [load_dir(d) for d in template_dirs()]
    names = [t.name for t in templates]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise InvalidInput(f"solution templates defined twice: {sorted(dupes)}")
    return sorted(templates, key=lambda t: t.name)


def load(name: str) -> Template:
    """The template called ``name``."""
    for d in template_dirs():
        if load_manifest(d).name == name:
            return load_dir(d)
    known = ", ".join(sorted(load_manifest(d).name for d in template_dirs()))
    raise NotFound(f"no solution template {name!r}", hint=f"known templates: {known}")
