"""Python source structure, read from the syntax tree: statements and imports.

Recorded lines and changed lines are both mapped to the first line of the statement that
owns them before they are compared: a multi-line statement emits line events on several of
its lines (about a fifth of raw recorded lines are such continuation lines), while a diff
may touch any one of them.
"""

import ast
from collections.abc import Iterable, Iterator

_OWNERS = (ast.stmt, ast.excepthandler)


def parse(source: str | bytes, filename: str = "<unknown>") -> ast.Module | None:
    """The syntax tree of `source`, or None if it is not valid Python for this interpreter."""
    try:
        return ast.parse(source, filename)
    except (SyntaxError, ValueError):
        return None


def _start_line(node: ast.stmt | ast.excepthandler) -> int:
    """First line of a statement, counting the decorators of a decorated definition."""
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(decorator.lineno for decorator in decorators)])


def statement_starts(tree: ast.Module) -> list[int]:
    """For each line number, the first line of the innermost statement that owns it.

    Index 0 is unused; a line that no statement owns (blank, comment, past the end) maps
    to 0. A compound statement owns its header lines (decorators, signature, condition);
    its body lines belong to the statements of the body. `ast.walk` is breadth-first, so
    an inner statement is always visited after the statements that contain it and
    overwrites their claim.
    """
    last_line = max((getattr(node, "end_lineno", 0) or 0 for node in ast.walk(tree)), default=0)
    owner = [0] * (last_line + 1)
    for node in ast.walk(tree):
        if isinstance(node, _OWNERS):
            start = _start_line(node)
            end = node.end_lineno or node.lineno
            owner[start : end + 1] = [start] * (end + 1 - start)
    return owner


def normalise_lines(lines: Iterable[int], starts: list[int]) -> set[int]:
    """Map raw executed lines to statement first lines; lines no statement owns stay as they are."""
    normalised = set()
    for line in lines:
        start = starts[line] if 0 < line < len(starts) else 0
        normalised.add(start or line)
    return normalised


def _resolve_relative(module: str | None, level: int, package: str | None) -> str | None:
    """The absolute module name of `from <level dots><module> import ...` inside `package`."""
    if level == 0:
        return module
    if not package:
        return None
    parts = package.split(".")
    if level - 1 >= len(parts):
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _with_parents(name: str) -> Iterator[str]:
    """`a.b.c` -> `a`, `a.b`, `a.b.c`: importing a submodule runs every parent package first."""
    parts = name.split(".")
    for index in range(1, len(parts) + 1):
        yield ".".join(parts[:index])


def imported_modules(tree: ast.Module, package: str | None) -> set[str]:
    """Every module name an import statement anywhere in `tree` may load.

    Imports inside functions, conditionals and `TYPE_CHECKING` blocks count too: the import
    graph is used to decide which tests depend on a module's import-time code, and
    over-approximating it only costs precision. `from pkg import name` yields both `pkg`
    and `pkg.name`, since `name` may be a submodule.
    """
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.update(_with_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(node.module, node.level, package)
            if base is None:
                continue
            names.update(_with_parents(base))
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names
