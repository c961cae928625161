"""The runtime packages import each other one way only: pytest_smoltrace → smoltrace_tools → smoltrace_export.

The records of a run (``smoltrace_export.records``) are the bottom: everyone imports them, they import none of the
three packages. The graph is read from the source with ``ast``: every ``import`` and ``from … import``, the lazy ones
inside functions included (a lazy import still ties two modules together), but not those under
``if TYPE_CHECKING:`` (they never run). Dynamic imports (``importlib.import_module("…")``) are not seen.

Run as a script (``python tests/test_import_graph.py``) it prints the package edges and the module cycles.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pytest_smoltrace", "smoltrace_tools", "smoltrace_export")
#: The only imports allowed between the packages (the reverse of any of them would close a cycle).
ALLOWED_EDGES = {
    ("pytest_smoltrace", "smoltrace_tools"),
    ("pytest_smoltrace", "smoltrace_export"),
    ("smoltrace_tools", "smoltrace_export"),
}
VOCABULARY = "smoltrace_export.records"

Graph = dict[str, set[str]]


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name → source file, for every module of the three packages (a package is its ``__init__``)."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    """The modules an import statement needs: ``a.b`` for ``import a.b``; for ``from m import x``, ``m.x`` when it is
    a submodule, else ``m`` (``from . import hooks`` needs ``hooks``, not the package's ``__init__``); relative
    imports resolved against ``module``."""

    def __init__(self, module: str, is_package: bool, modules: Iterable[str]) -> None:
        self.module = module
        self.is_package = is_package
        self.modules = set(modules)
        self.names: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:  # the else branch runs
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.names.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.module.split(".")
            if not self.is_package:
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
        else:
            target = node.module or ""
        for alias in node.names:
            submodule = f"{target}.{alias.name}"
            self.names.add(submodule if submodule in self.modules else target)


def module_graph(root: Path = ROOT) -> Graph:
    """Module → the modules of the three packages it imports (itself excluded)."""
    modules = module_files(root)
    graph: Graph = {}
    for name, path in modules.items():
        visitor = _Imports(name, path.name == "__init__.py", modules)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        targets: set[str] = set()
        for imported in visitor.names:
            while imported and imported not in modules:  # ``from m import f``: the module is m
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def package_edges(graph: Graph) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(importing package, imported package) → the module imports that make the edge."""
    edges: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = module.split(".")[0], target.split(".")[0]
            if a != b:
                edges.setdefault((a, b), []).append((module, target))
    return edges


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def _cycles_in(graph: Graph, packages: Iterable[str]) -> list[list[str]]:
    wanted = tuple(packages)
    return [c for c in cycles(graph) if any(m.split(".")[0] in wanted for m in c)]


@pytest.fixture(scope="module")
def graph() -> Graph:
    return module_graph()


def test_the_walk_sees_lazy_imports_and_skips_type_checking_ones(tmp_path: Path) -> None:
    pkg = tmp_path / "smoltrace_export"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from . import b\nelse:\n    from . import c\n"
        "def f():\n    from .d import thing\n    import smoltrace_export.e\n"
    )
    for name in "bcde":
        (pkg / f"{name}.py").write_text("")
    for other in PACKAGES[:2]:
        (tmp_path / other).mkdir()
        (tmp_path / other / "__init__.py").write_text("")
    found = module_graph(tmp_path)
    assert found["smoltrace_export.a"] == {"smoltrace_export.c", "smoltrace_export.d", "smoltrace_export.e"}
    assert cycles({"a": {"b"}, "b": {"c", "a"}, "c": set(), "d": {"d"}}) == [["a", "b"]]


def test_packages_import_each_other_one_way_only(graph: Graph) -> None:
    edges = package_edges(graph)
    wrong = {edge: imports for edge, imports in edges.items() if edge not in ALLOWED_EDGES}
    assert not wrong, f"imports against the direction pytest_smoltrace → smoltrace_tools → smoltrace_export: {wrong}"


def test_the_records_import_none_of_the_packages(graph: Graph) -> None:
    assert VOCABULARY in graph
    assert graph[VOCABULARY] == set(), sorted(graph[VOCABULARY])


def test_no_module_cycles_in_the_tools_and_the_exporters(graph: Graph) -> None:
    assert _cycles_in(graph, ("smoltrace_tools", "smoltrace_export")) == []


def test_no_module_cycles_in_the_plugin(graph: Graph) -> None:
    assert _cycles_in(graph, ("pytest_smoltrace",)) == []


def main() -> int:
    graph = module_graph()
    for (a, b), imports in sorted(package_edges(graph).items()):
        mark = "" if (a, b) in ALLOWED_EDGES else "   <-- against the direction"
        print(f"{a} -> {b}: {len(imports)} imports{mark}")
        if mark:
            for module, target in imports:
                print(f"    {module} -> {target}")
    for component in cycles(graph):
        print("CYCLE", component)
    return 0


if __name__ == "__main__":
    sys.exit(main())
