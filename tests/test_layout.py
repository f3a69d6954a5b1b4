"""The layout holds: imports point one way, no cycles, small packages, and one registry per concept.

The layers, top to bottom (docs/architecture.md): the ways in (CLI, deployments, the receiver),
flows, tasks, the engine, the connectors. A module may import its own layer or any layer below,
never one above; `blocks/` (saved settings) sits beside the engine, which reads it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from connectors.config.systems import SYSTEMS, source_system
from engine import catalog

ROOT = Path(__file__).resolve().parent.parent
LAYER = {"wfm": 5, "deployments": 5, "receiver": 4, "flows": 3, "tasks": 2, "engine": 1, "blocks": 1, "connectors": 0}
PACKAGES = tuple(LAYER)
MAX_MODULES = 12


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """Project modules a file imports, at the top or inside functions (relative ones resolved).

    `from P import m` where `P.m` is a module imports `m` (and only loads the package `P`, which a
    module of `P` has already loaded); `from P import name` of anything else imports `P` itself.
    """
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            submodules = {f"{origin}.{alias.name}" for alias in node.names} & modules
            names.update(submodules)
            if len(submodules) < len(node.names):
                names.add(origin)
    return {n for n in names if n.split(".")[0] in PACKAGES}


MODULES = _modules()
GRAPH = {m: {i for i in _imports(p, m, set(MODULES)) if i in MODULES and i != m} for m, p in MODULES.items()}


def test_no_module_imports_a_layer_above_its_own():
    upward = [f"{m} → {i}" for m, targets in GRAPH.items() for i in targets
              if LAYER[i.split(".")[0]] > LAYER[m.split(".")[0]]]
    assert upward == []


def test_connectors_import_no_prefect():
    offenders = [m for m, p in MODULES.items() if m.startswith("connectors")
                 and any(n.split(".")[0] == "prefect" for n in _all_imports(p))]
    assert offenders == []


def _all_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | {
        n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle a depth-first walk meets, as the path that closes it."""
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_no_import_cycles():
    """Between any two modules, inside a package as much as across packages."""
    assert _cycles(GRAPH) == []


def test_the_cycle_check_sees_a_cycle_inside_a_package(tmp_path):
    """Two modules of one package importing each other, one of them only for type checking (as the
    simulator's server and admin API once did); a sibling imported through the package is no cycle."""
    package = tmp_path / "connectors" / "demo"
    package.mkdir(parents=True)
    files = {"__init__": "from . import server\n", "server": "from .admin import answer\n",
             "admin": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .server import Server\n",
             "world": "from connectors.demo import base\n", "base": ""}
    modules = {"connectors.demo"} | {f"connectors.demo.{name}" for name in files if name != "__init__"}
    graph = {}
    for name, text in files.items():
        (package / f"{name}.py").write_text(text)
        module = "connectors.demo" if name == "__init__" else f"connectors.demo.{name}"
        graph[module] = _imports(package / f"{name}.py", module, modules) - {module}
    assert graph["connectors.demo.world"] == {"connectors.demo.base"}
    assert _cycles(graph) == [["connectors.demo.server", "connectors.demo.admin", "connectors.demo.server"]]


def test_no_package_holds_more_than_twelve_modules_side_by_side():
    crowded = {}
    for folder in {p.parent for p in MODULES.values()}:
        count = len(list(folder.glob("*.py")))          # `__init__.py` is a module too
        if count > MAX_MODULES:
            crowded[str(folder.relative_to(ROOT))] = count
    assert crowded == {}


@pytest.mark.parametrize("system", sorted(catalog.DECLARED))
def test_every_declared_stream_has_a_family_a_suite_and_an_id_source(system):
    from engine.quality.suites import SUITES

    for stream in catalog.DECLARED[system]:
        entry = catalog.REGISTRY.get(stream.name)
        assert entry is not None, f"{stream.name} is declared but not in engine/catalog.py"
        assert entry.family is not None or system == "files", f"{stream.name} has no family"
        assert stream.name in SUITES, f"{stream.name} has no suite in engine/quality/suites.py"
        assert entry.suite().stream is stream
        assert stream.ids is None or entry.id_source is catalog.ID_SOURCES[stream.ids]
        if system != "files":
            assert source_system(stream.system).name == system


def test_the_registry_holds_nothing_undeclared():
    from engine.quality.suites import SUITES

    declared = {s.name for streams in catalog.DECLARED.values() for s in streams}
    assert set(catalog.REGISTRY) == declared
    assert set(SUITES) == declared
    assert {s.name for f in catalog.FAMILIES for s in f.streams} <= declared


def test_an_unknown_source_system_is_an_error_not_another_systems_settings():
    from engine.settings import Settings

    assert set(SYSTEMS) == {"contact center", "1C:ZUP"}
    settings = Settings(sources={}, database_url="", lake_path="")
    with pytest.raises(ValueError, match="unknown source system 'crm'"):
        settings.source("crm")
    with pytest.raises(RuntimeError, match="1C:ZUP is not configured: set WFM_ONEC_URL"):
        settings.source("1C:ZUP")
