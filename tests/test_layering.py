"""The package layers point one way: every import (module level or inside a function) goes downwards.

`LAYERS` lists the packages from the bottom up. A module may import modules of its own package, of packages
in a lower layer, and nothing else: not a package higher up, not a sibling on the same layer. No two
modules may import each other, directly or through others (no cycles, even inside one package).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("models", "core", "service", "worker", "hmu")
DYNAMIC = "<importlib>"  # a look-up by string hides a dependency from this check

# Bottom first. Packages on one line are siblings: neither may import the other.
LAYERS: list[tuple[str, ...]] = [
    ("models.version", "models.common"),
    ("models.motion",),
    ("models.text",),
    ("models.vq",),
    ("models.momask",),
    ("models.bamm",),
    ("models.presets",),
    ("models.io",),
    ("models.pipelines",),
    ("models.data",),
    ("models.evaluator",),
    ("models.train", "models.eval", "models.unlearn"),
    ("core",),
    ("service", "worker"),
    ("hmu",),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for top in TOP_LEVEL for p in (ROOT / top).rglob("*.py")}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules imported anywhere in the file (`from pkg import sub` counts as importing `pkg.sub`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else origin
                       for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__"):
            targets = [DYNAMIC]
        else:
            continue
        for target in targets:
            if target == DYNAMIC:
                found.add(DYNAMIC)
                continue
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def test_no_dynamic_imports():
    hidden = sorted(name for name, targets in import_graph().items() if DYNAMIC in targets)
    assert not hidden, f"modules that import by string (importlib / __import__): {hidden}"


def layer_of(name: str) -> tuple[int, str]:
    """(layer index, package) of the longest declared package that contains `name`."""
    best: tuple[int, str] | None = None
    for index, packages in enumerate(LAYERS):
        for package in packages:
            if (name == package or name.startswith(package + ".")) and (best is None or len(package) > len(best[1])):
                best = (index, package)
    if best is None:
        raise AssertionError(f"module {name} is in no declared layer; add its package to LAYERS")
    return best


def test_every_module_has_a_layer():
    for name in import_graph():
        if name not in TOP_LEVEL and name != "models":
            layer_of(name)


def test_imports_point_downwards():
    wrong = []
    for name, targets in import_graph().items():
        if name in ("models",):
            continue
        own_layer, own_package = layer_of(name)
        for target in targets - {DYNAMIC}:
            if target == "models":
                wrong.append(f"{name} -> {target} (the root package is no layer)")
                continue
            layer, package = layer_of(target)
            if layer > own_layer or (layer == own_layer and package != own_package):
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports that point upwards or sideways:\n" + "\n".join(sorted(wrong))


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; returns the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
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
                    work.append((child, iter(sorted(graph.get(child, ())))))
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
                    components.append(sorted(component))
    return components


def test_no_import_cycles():
    graph = defaultdict(set, {name: targets - {DYNAMIC} for name, targets in import_graph().items()})
    cycles = strongly_connected(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_a_violation():
    """The checks above are not vacuous: an upward edge and a cycle are found when present."""
    assert layer_of("models.unlearn.lcr")[0] > layer_of("models.common.sampling")[0]
    assert layer_of("service.main")[0] == layer_of("worker.app")[0]
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
