"""Import boundaries: data flows up the layers below, never down, and no imports go in circles.

Every ``import`` in ``src/atoll`` counts, wherever it is: at module level, inside a function
(often a cycle's hiding place) or under ``if TYPE_CHECKING:`` (a lower layer should not know a
higher one's types either). The checker reads the source with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Atoll's layers, lowest first. A module may import from its own layer and the ones below, never
#: from a layer above; within a layer, packages must not import each other in a circle. Entries
#: are the packages (or modules) right under ``atoll``; ``atoll`` is the package's own
#: ``__init__``.
LAYERS: tuple[tuple[str, ...], ...] = (
    # Domain types, errors, topics, ACL: no I/O, nothing else of Atoll.
    ("core",),
    # Ports and their adapters (series store, message bus); the HTTP client SDK (core types over
    # HTTP, no server code); the public facade ``atoll`` (core errors, the client, version).
    ("store", "bus", "client", "atoll"),
    # Tenants and devices; the ingest path (authenticate -> validate -> store and publish);
    # sector templates as data, applied through the client.
    ("registry", "ingest", "solutions"),
    # Consumers of ingested telemetry: detectors and their service, rules and alarms; what a
    # platform service is and gets (``atoll.service``); the settings (they name ingest limits).
    # Remaining useful life from run-to-failure history (models and their files).
    # Horizon forecasts of stored series.
    # The edge agent (connectors, durable buffer, forwarder): it runs on a gateway, apart from
    # the platform, and may use the detectors for local alarms.
    ("detect", "rules", "service", "config", "rul", "forecast", "edge"),
    # The HTTP API and the console.
    ("api", "web"),
    # Composition: the data directory, the runtime that wires it all.
    ("platform", "datadir"),
    # Drivers: commands, the demo, the device simulator, benchmarks, conformance suites. Nothing
    # in the product imports them.
    ("cli", "demo", "sim", "bench", "testing"),
)


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (the nearest module of the package for a name)
    where: str  # "path:line"
    how: str  # "module level", "in a function" or "TYPE_CHECKING"

    def __str__(self) -> str:
        return f"{self.source} -> {self.target} ({self.where}, {self.how})"


def modules(src: Path, package: str) -> dict[str, Path]:
    """``dotted.name -> file`` for every module of ``package`` under ``src``."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _how(stack: list[ast.AST]) -> str:
    for node in reversed(stack):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return "in a function"
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return "TYPE_CHECKING"
    return "module level"


def imports(src: Path, package: str) -> list[Import]:
    """Every import of one of ``package``'s modules by another, wherever it is written."""
    known = modules(src, package)
    found = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        for node, stack in _walk(tree, []):
            names = _imported(node, module, path.name == "__init__.py", known)
            targets = {_nearest(name, known) for name in names} - {None, module}
            for target in sorted(t for t in targets if t is not None):
                where = f"{path.relative_to(src).as_posix()}:{node.lineno}"
                found.append(Import(module, target, where, _how(stack)))
    return found


def _walk(node: ast.AST, stack: list[ast.AST]):
    """Every node with the nodes that enclose it."""
    yield node, stack
    for child in ast.iter_child_nodes(node):
        yield from _walk(child, [*stack, node])


def _imported(node: ast.AST, module: str, is_package: bool, known) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: from the module's package, one package up per extra dot
        parts = module.split(".")[: None if is_package else -1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    # ``from a import b`` imports the module a.b when there is one, else a name of a.
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def _nearest(name: str, known) -> str | None:
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in known else None


def unit(module: str) -> str:
    """The layer table's entry for ``module``: the part right under the top package."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_of(layers: tuple[tuple[str, ...], ...]) -> dict[str, int]:
    return {name: i for i, names in enumerate(layers) for name in names}


def unplaced(known: dict[str, Path], layers) -> list[str]:
    """Entries under the top package that the layer table does not place."""
    return sorted({unit(m) for m in known} - set(layer_of(layers)))


def upward(found: list[Import], layers) -> list[Import]:
    """Imports from a lower layer of a higher one."""
    index = layer_of(layers)
    return [i for i in found if index[unit(i.source)] < index[unit(i.target)]]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), each sorted."""
    counter, index, low, stack, on_stack, out = 0, {}, {}, [], set(), []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return sorted(out)


def module_cycles(found: list[Import]) -> list[list[Import]]:
    """Each cycle between modules, as the imports that close it."""
    edges: dict[str, set[str]] = defaultdict(set)
    for i in found:
        edges[i.source].add(i.target)
    return [
        [i for i in found if i.source in group and i.target in group] for group in cycles(edges)
    ]


def package_cycles(found: list[Import]) -> list[list[Import]]:
    """Each cycle between the entries of the layer table (packages importing each other), as the
    first import of each package by another in the cycle."""
    first: dict[tuple[str, str], Import] = {}
    for i in found:
        if unit(i.source) != unit(i.target):
            first.setdefault((unit(i.source), unit(i.target)), i)
    edges: dict[str, set[str]] = defaultdict(set)
    for a, b in first:
        edges[a].add(b)
    return [
        [i for (a, b), i in sorted(first.items()) if {a, b} <= set(group)]
        for group in cycles(edges)
    ]


def _report(problems: list) -> str:
    return "\n".join(
        "cycle:\n  " + "\n  ".join(map(str, p)) if isinstance(p, list) else str(p) for p in problems
    )


# -- Atoll ----------------------------------------------------------------------------------------

ATOLL = imports(SRC, "atoll")


def test_every_package_has_a_layer():
    assert unplaced(modules(SRC, "atoll"), LAYERS) == [], "add them to LAYERS"


def test_no_layer_imports_a_higher_one():
    assert upward(ATOLL, LAYERS) == [], _report(upward(ATOLL, LAYERS))


def test_no_packages_import_each_other():
    assert package_cycles(ATOLL) == [], _report(package_cycles(ATOLL))


def test_no_modules_import_each_other():
    assert module_cycles(ATOLL) == [], _report(module_cycles(ATOLL))


def test_the_checker_sees_atoll():
    # Guards the checks above against reading nothing: known imports of each kind are found.
    found = {(i.source, i.target, i.how) for i in ATOLL}
    assert ("atoll.platform", "atoll.config", "module level") in found
    assert ("atoll.platform", "atoll.api", "in a function") in found
    assert ("atoll", "atoll.client", "in a function") in found
    assert ("atoll.detect.registry", "atoll.detect.multivariate", "module level") in found
    assert len(ATOLL) > 400


# -- the checker, on a tree of its own ------------------------------------------------------------

FAKE_LAYERS = (("low",), ("mid", "side"), ("high",))


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in {"pkg/__init__.py": "", **files}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.fixture
def clean() -> dict[str, str]:
    return {
        "pkg/low/__init__.py": "",
        "pkg/low/a.py": "import os\n",
        "pkg/mid/__init__.py": "from pkg.mid.m import M\n",
        "pkg/mid/m.py": "from pkg.low import a\nfrom ..low.a import os\nM = 1\n",
        "pkg/side.py": "import pkg.mid.m\nfrom pkg.low.a import os\n",
        "pkg/high/__init__.py": "",
        "pkg/high/h.py": "from pkg import side\nfrom pkg.mid import M\n",
    }


def _check(src: Path):
    found = imports(src, "pkg")
    return (
        unplaced(modules(src, "pkg"), FAKE_LAYERS + (("pkg",),)),
        upward(found, FAKE_LAYERS + (("pkg",),)),
        package_cycles(found),
        module_cycles(found),
    )


def test_checker_passes_a_clean_tree(tmp_path, clean):
    src = _tree(tmp_path, clean)
    assert _check(src) == ([], [], [], [])
    found = {(i.source, i.target) for i in imports(src, "pkg")}
    assert found == {
        ("pkg.mid", "pkg.mid.m"),
        ("pkg.mid.m", "pkg.low.a"),  # ``from pkg.low import a`` is the module a
        ("pkg.side", "pkg.mid.m"),
        ("pkg.side", "pkg.low.a"),
        ("pkg.high.h", "pkg.side"),
        ("pkg.high.h", "pkg.mid"),  # a name of the package: its __init__
    }


@pytest.mark.parametrize(
    "text, how",
    [
        ("from pkg.high import h\n", "module level"),
        ("def f():\n    from pkg.high.h import x\n", "in a function"),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.high.h\n",
            "TYPE_CHECKING",
        ),
        ("from ..high import h\n", "module level"),
    ],
)
def test_checker_fails_an_upward_import(tmp_path, clean, text, how):
    src = _tree(tmp_path, {**clean, "pkg/mid/m.py": clean["pkg/mid/m.py"] + text})
    _, up, _, _ = _check(src)
    assert [(i.source, i.target, i.how) for i in up] == [("pkg.mid.m", "pkg.high.h", how)]
    file, line = up[0].where.split(":")
    assert file == "pkg/mid/m.py" and "high" in (src / file).read_text().splitlines()[int(line) - 1]


def test_checker_fails_a_cycle_hidden_in_a_function(tmp_path, clean):
    src = _tree(
        tmp_path,
        {
            **clean,
            "pkg/low/b.py": "from pkg.low import a\n",
            "pkg/low/a.py": "def f():\n    from pkg.low.b import g\n",
        },
    )
    unplaced_, up, packages, cycle = _check(src)
    assert (unplaced_, up, packages) == ([], [], [])
    assert [sorted((i.source, i.target, i.how) for i in c) for c in cycle] == [
        [
            ("pkg.low.a", "pkg.low.b", "in a function"),
            ("pkg.low.b", "pkg.low.a", "module level"),
        ]
    ]


def test_checker_fails_packages_of_one_layer_importing_each_other(tmp_path, clean):
    # No module cycle (side -> mid.m, mid.n -> side), but mid and side depend on each other.
    src = _tree(tmp_path, {**clean, "pkg/mid/n.py": "from pkg import side\n"})
    _, up, packages, modules_ = _check(src)
    assert (up, modules_) == ([], [])
    assert [sorted((i.source, i.target) for i in c) for c in packages] == [
        [("pkg.mid.n", "pkg.side"), ("pkg.side", "pkg.mid.m")]
    ]


def test_checker_asks_for_a_layer_for_a_new_package(tmp_path, clean):
    src = _tree(tmp_path, {**clean, "pkg/extra/__init__.py": ""})
    assert _check(src)[0] == ["extra"]
