"""docs/ARCHITECTURE.md and CONTRIBUTING.md name real files, and say what the code says.

Every repository path they mention exists (``src/...``, ``tests/...``, ``bench/...``, ...; a
path such as ``ingest/pipeline.py`` is under ``src/atoll/``), every relative link resolves, the
layer table is ``LAYERS`` of ``tests/test_layers.py``, and every port in the ports table is a
``Protocol`` class in the file the table gives. So the docs cannot rot silently.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_layers import LAYERS

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("docs/ARCHITECTURE.md", "CONTRIBUTING.md")
#: Top-level entries a path may start with; any other path is under ``src/atoll/``.
TOP = ("src", "tests", "bench", "docs", "tools", ".ci")
#: A path: segments joined by ``/``, not itself part of a longer path or a URL.
PATH = re.compile(r"(?<![\w./~<>-])((?:\.ci|[A-Za-z_][\w.-]*)(?:/[\w.<>-]+)+/?)")
#: A file name of the kinds the docs name.
FILE = re.compile(r"\.(py|md|json|yaml|yml|js|jsx|toml|lock|html|txt)$")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def paths(text: str) -> set[str]:
    """Repository paths named in ``text``, relative to the root; placeholders skipped."""
    found = set()
    for token in PATH.findall(text.replace("<br>", " ")):  # a line break in a diagram's label
        token = token.rstrip(".")
        if "<" in token or ">" in token:  # ``bench_<name>.py``: a pattern, not a file
            continue
        top = token.split("/", 1)[0]
        if top in TOP:
            found.add(token)
        elif FILE.search(token):  # ``api/live.py``: a module under src/atoll
            found.add(f"src/atoll/{token}")
    return found


def test_paths_are_found_the_way_the_docs_write_them():
    text = (
        "`src/atoll/store/port.py`, `tests/store/` and (`bench/results/`); "
        "`ingest/pipeline.py<br>ingest/validate.py`; `bench/results/NAME.json` "
        "`src/atoll/cli/bench_<name>.py`, `<home>/detect/state.msgpack`, "
        "WS /api/v1/live, https://example.com/a/b.py, learn_one/score_one, "
        "[x](../CONTRIBUTING.md)."
    )
    assert paths(text) == {
        "src/atoll/store/port.py",
        "tests/store/",
        "bench/results/",
        "src/atoll/ingest/pipeline.py",
        "src/atoll/ingest/validate.py",
        "bench/results/NAME.json",
    }


@pytest.mark.parametrize("doc", DOCS)
def test_every_path_named_exists(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    named = paths(text) - {"bench/results/NAME.json"}  # the doc's own placeholder
    assert len(named) > 10, "the checker should see the doc's paths"
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert missing == [], f"{doc} names paths that do not exist"


@pytest.mark.parametrize("doc", DOCS)
def test_every_relative_link_resolves(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    links = [t for t in LINK.findall(text) if not re.match(r"[a-z]+:|#", t)]
    assert links, "the docs link each other"
    base = (ROOT / doc).parent
    missing = [t for t in links if not (base / t.split("#")[0]).exists()]
    assert missing == []


def _section(doc: str, title: str) -> str:
    text = (ROOT / doc).read_text(encoding="utf-8")
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _rows(section: str) -> list[list[str]]:
    """Cells of each table body row (header and rule skipped)."""
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))])
    return rows[1:]


def test_the_layer_table_is_the_one_the_layer_test_enforces():
    rows = _rows(_section("docs/ARCHITECTURE.md", "Layers"))
    documented = tuple(tuple(re.findall(r"`(\w+)`", row[1])) for row in rows)
    assert [row[0] for row in rows] == [str(i) for i in range(len(rows))]
    assert documented == LAYERS


def test_every_port_is_a_protocol_in_the_file_named():
    rows = _rows(_section("docs/ARCHITECTURE.md", "Ports"))
    assert len(rows) >= 10
    for row in rows:
        names = re.findall(r"`(\w+)`", row[0])
        files = [ROOT / f for f in re.findall(r"`(src/[\w/.]+\.py)`", row[1])]
        assert names and files, row[:2]
        source = "\n".join(f.read_text(encoding="utf-8") for f in files)
        for name in names:
            assert re.search(rf"^class {name}\(Protocol\):", source, re.MULTILINE), (
                f"{name} is not a Protocol in {row[1]}"
            )


def test_the_readme_links_both():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/ARCHITECTURE.md)" in readme and "(CONTRIBUTING.md)" in readme
