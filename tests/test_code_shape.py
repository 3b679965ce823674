"""Package code stays readable: no function over 80 lines, no parameter list over 8.

An exception needs a one-line reason in a comment that starts with `# reason:` on the `def` line or the line
just above it. `self`/`cls` and the bare `*` do not count as parameters. bench/ and tests/ are not checked.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("models", "core", "service", "worker", "hmu")
MAX_LINES = 80
MAX_PARAMETERS = 8


def functions():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text().splitlines()
            for node in ast.walk(ast.parse("\n".join(lines), str(path))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield path.relative_to(ROOT), node, lines


def parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    names += [a.arg for a in (args.vararg, args.kwarg) if a is not None]
    return len([n for n in names if n not in ("self", "cls")])


def has_reason(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> bool:
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    around = lines[max(first - 2, 0): node.lineno]
    return any("# reason:" in line for line in around)


def test_functions_are_short():
    long = [f"{path}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path, node, lines in functions()
            if node.end_lineno - node.lineno + 1 > MAX_LINES and not has_reason(node, lines)]
    assert not long, f"functions over {MAX_LINES} lines without a `# reason:`:\n" + "\n".join(long)


def test_parameter_lists_are_short():
    wide = [f"{path}:{node.lineno} {node.name} ({parameter_count(node)} parameters)"
            for path, node, lines in functions()
            if parameter_count(node) > MAX_PARAMETERS and not has_reason(node, lines)]
    assert not wide, f"parameter lists over {MAX_PARAMETERS} without a `# reason:`:\n" + "\n".join(wide)


def test_the_counts_are_right():
    tree = ast.parse("def f(self, a, b=1, *args, c, **kw):\n    pass\n")
    assert parameter_count(tree.body[0]) == 5
