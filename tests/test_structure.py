"""The shape of the import graph: no cycles among seqbench modules, and the contract apart from the engine.

The graph is read from the source files (``ast``), not by importing them, so a cycle is caught
even where the import order happens to work today. Only module-level imports count: an import
inside a function, or under ``if TYPE_CHECKING:``, runs late or never and cannot form a cycle at
import time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: source folder -> the package it is installed as (pyproject's package-dir)
PACKAGE_FOLDERS = {"seqbench": "seqbench", "datasets": "seqbench.datasets", "methods": "seqbench.methods",
                   "metrics": "seqbench.metrics"}


def seqbench_modules() -> dict[str, tuple[Path, bool]]:
    """Installed module name -> (source file, is a package ``__init__``) for every seqbench module."""
    modules = {}
    for folder, package in PACKAGE_FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            modules[".".join([package, *parts])] = (path, is_package)
    return modules


class _ModuleLevelImports(ast.NodeVisitor):
    """Collects the modules a file imports when it is imported (not in functions, not for type checkers)."""

    def __init__(self, package: str):
        self.package, self.targets = package, set()

    def visit_FunctionDef(self, node: ast.AST) -> None:  # runs when called, not when imported
        pass

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
                (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            for statement in node.orelse:
                self.visit(statement)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.targets.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")[:len(self.package.split(".")) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        self.targets.add(module)
        self.targets.update(f"{module}.{alias.name}" for alias in node.names)  # `from pkg import submodule`


def module_level_imports(source: str, module: str, is_package: bool) -> set[str]:
    """Every name a module imports at module level, absolute (``from . import x`` included as ``pkg.x``)."""
    collector = _ModuleLevelImports(module if is_package else module.rpartition(".")[0])
    collector.visit(ast.parse(source))
    return collector.targets


def import_graph() -> dict[str, set[str]]:
    """Module -> the seqbench modules importing it executes (targets and their packages' ``__init__``)."""
    modules = seqbench_modules()
    graph = {}
    for name, (path, is_package) in modules.items():
        edges = set()
        for target in module_level_imports(path.read_text(encoding="utf-8"), name, is_package):
            if target not in modules:
                continue
            parts = target.split(".")
            for depth in range(1, len(parts) + 1):
                executed = ".".join(parts[:depth])
                own_package = name == executed or name.startswith(executed + ".")  # already running
                if executed in modules and not own_package:
                    edges.add(executed)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``a -> b -> ... -> a``) per strongly connected group of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_one_cycle(graph, group) for group in groups]


def _one_cycle(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(graph[node] & group):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                return [start, *reversed(path[:-1]), start]
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start} in {sorted(group)}")


# -- the checks ----------------------------------------------------------------------------

def test_no_import_cycle_among_seqbench_modules():
    found = cycles(import_graph())
    assert not found, "import cycles among seqbench modules (module-level imports):\n" + "\n".join(
        " -> ".join(cycle) for cycle in found)


def test_importing_the_hookspecs_imports_no_module_of_the_runner():
    """The plugin contract must load without the engine: a plugin imports it, the runner imports plugins."""
    probe = "import sys, seqbench.hookspecs; print(' '.join(m for m in sys.modules if m.startswith('seqbench')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    loaded = done.stdout.split()
    assert "seqbench.hookspecs" in loaded
    assert not [m for m in loaded if m == "seqbench.runner" or m.startswith("seqbench.runner.")], loaded


# -- the graph reader itself ---------------------------------------------------------------

def test_the_reader_sees_module_level_imports_only():
    source = '''
from __future__ import annotations
import os
from typing import TYPE_CHECKING
from . import sibling
from .. import errors
from ..media import read_video
import seqbench.types as types
if TYPE_CHECKING:
    from seqbench.runner import RunInfo
else:
    from seqbench import plugins
try:
    from seqbench import log
except ImportError:
    from seqbench import utils
class Adapter:
    from seqbench import config
def late():
    from seqbench import cli
'''
    found = module_level_imports(source, "seqbench.media.video", is_package=False)
    assert {"seqbench.media.sibling", "seqbench.errors", "seqbench.media.read_video", "seqbench.types",
            "seqbench.plugins", "seqbench.log", "seqbench.utils", "seqbench.config"} <= found
    assert not {name for name in found if name.endswith(("runner", "RunInfo", "cli"))}
    assert module_level_imports("from . import x", "seqbench.media", is_package=True) >= {"seqbench.media.x"}


def test_the_graph_covers_every_plugin_folder_and_finds_a_planted_cycle():
    graph = import_graph()
    assert {"seqbench.hookspecs", "seqbench.datasets.sprites", "seqbench.methods.dbse",
            "seqbench.metrics.mse", "seqbench.media.video"} <= set(graph)
    assert "seqbench.dataset_lifecycle" in graph["seqbench.datasets.sprites"]
    assert "seqbench.media" in graph["seqbench.datasets.sprites"]  # the package __init__ runs too
    planted = {name: set(edges) for name, edges in graph.items()}
    planted["seqbench.errors"].add("seqbench.datasets.sprites")
    assert any(cycle[0] == cycle[-1] and "seqbench.errors" in cycle for cycle in cycles(planted))
