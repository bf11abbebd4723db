"""The import graph of ``optimlab/`` flows one way: library <- lab <- command.

Every ``import`` statement of every module counts, including those inside
functions (they still tie the modules together, only later). The graph must have
no cycle, the library must not import the lab or the command, and the lab must
not import the command.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "optimlab"
COMMAND = {"optimlab.cli", "optimlab.__main__"}


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_package(name):
    return MODULES.get(name, Path()).name == "__init__.py"


def _resolve(module, node):
    """The optimlab modules that one import statement of ``module`` loads."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in MODULES}
    base = node.module or ""
    if node.level:
        package = module if _is_package(module) else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}".rstrip(".")
    if base not in MODULES:
        return set()
    # ``from optimlab import registry`` loads the submodule; ``from optimlab import Adam`` the package.
    return {f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names}


def import_graph():
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = set().union(*(_resolve(name, node) for node in ast.walk(tree)
                                    if isinstance(node, (ast.Import, ast.ImportFrom)))) - {name}
    return graph


def layer(name):
    if name in COMMAND:
        return "command"
    return "lab" if name == "optimlab.lab" or name.startswith("optimlab.lab.") else "library"


def find_cycle(graph):
    """One cycle as a list of modules, or None (depth-first search, colours white/grey/black)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "grey"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "grey":
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = "black"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_reader_sees_imports_in_functions_and_relative_ones():
    graph = import_graph()
    assert "optimlab.optimizer" in graph["optimlab.optimizers.adam"]
    assert "optimlab.lab.commands" in graph["optimlab.cli"]  # imported inside a function, to start fast
    tree = ast.parse("from . import adam\nfrom ..registry import register")
    found = set().union(*(_resolve("optimlab.optimizers.lion", node) for node in tree.body))
    assert found == {"optimlab.optimizers.adam", "optimlab.registry"}


def test_the_import_graph_has_no_cycle():
    assert find_cycle(import_graph()) is None


@pytest.mark.parametrize("lower, higher", [("library", "lab"), ("library", "command"), ("lab", "command")])
def test_imports_flow_one_way(lower, higher):
    graph = import_graph()
    wrong = sorted(f"{a} imports {b}" for a, targets in graph.items() for b in targets
                   if layer(a) == lower and layer(b) == higher)
    assert wrong == []


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
