"""requirements.lock pins what pyproject.toml asks for (``make lock`` re-pins it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>!~ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _locked() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    return {
        m[1].lower(): m[2]
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", text, re.MULTILINE)
    }


def test_every_dependency_is_locked_at_the_version_pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = project["dependencies"] + extras["test"] + extras["edge"]  # `make lock` takes both
    locked = _locked()
    assert len(locked) > len(wanted)  # the whole tree, not only the direct dependencies
    for requirement in wanted:
        name, _, version = requirement.partition("==")
        assert version, f"{requirement} is not pinned exactly in pyproject.toml"
        assert locked.get(_name(name)) == version.strip(), (
            f"requirements.lock has {_name(name)}=={locked.get(_name(name))}, pyproject wants "
            f"{version}: run `make lock`"
        )


def test_every_locked_package_carries_hashes():
    text = (ROOT / "requirements.lock").read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n\n", 1)[-1]):
        if "==" in block:
            assert "--hash=sha256:" in block, block.splitlines()[0]
