"""Seeded single-line mutations of a project, in the categories where selection rules differ.

A test selector is judged on changes it did not see coming, so the changes are drawn at random
(with a fixed seed, so that every run judges the same ones) from every line where one kind of
edit makes sense. The kinds follow the places where selection rules differ: a function body, module
level, a default argument value (evaluated once, at import), a decorator, a fixture, plus two
controls that must select nothing: a new unused function and a comment. Every mutant still parses,
and the syntax tree of every mutant but a comment really changes, so none is a no-op by accident.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from _suite import run

FUNCTION_BODY = "function body"
MODULE_LEVEL = "module level"
DEFAULT_ARGUMENT = "default argument"
DECORATOR = "decorator"
FIXTURE = "fixture"
UNUSED_FUNCTION = "new unused function"
COMMENT = "comment only"
# In the order mutants are dealt: round-robin, so a small --mutants still spreads over all kinds.
CATEGORIES = (
    FUNCTION_BODY,
    MODULE_LEVEL,
    DEFAULT_ARGUMENT,
    DECORATOR,
    FIXTURE,
    UNUSED_FUNCTION,
    COMMENT,
)
# Categories whose mutants change no behaviour: any test selected for them is imprecision.
INERT = frozenset({UNUSED_FUNCTION, COMMENT})
XUNIT_NAMES = frozenset(
    {"setup_module", "teardown_module", "setup_class", "teardown_class", "setup_method",
     "teardown_method", "setup_function", "teardown_function", "setUp", "tearDown",
     "setUpClass", "tearDownClass"}
)  # fmt: skip
SWAPPED_OPERATORS = {
    ast.Eq: "!=", ast.NotEq: "==", ast.Lt: ">=", ast.GtE: "<", ast.Gt: "<=", ast.LtE: ">",
    ast.Is: "is not", ast.IsNot: "is", ast.In: "not in", ast.NotIn: "in",
}  # fmt: skip
OPERATOR_TEXT = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.GtE: ">=", ast.Gt: ">", ast.LtE: "<=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
}  # fmt: skip


@dataclass(frozen=True)
class Mutant:
    """One edit of one line: ``after`` replaces line ``line`` (no lines: deleted; two: inserted)."""

    category: str
    path: str
    line: int
    before: str
    after: tuple[str, ...]

    def describe(self) -> str:
        """The edit as a reader wants it in a report: where, and old and new text."""
        where = f"{self.path}:{self.line}"
        if not self.after:
            return f"{where} delete `{self.before.strip()}`"
        if len(self.after) == 2:
            return f"{where} insert `{self.after[0].strip()}`"
        return f"{where} `{self.before.strip()}` -> `{self.after[0].strip()}`"


def apply(mutant: Mutant, root: Path) -> None:
    """Write the mutant into a checkout of the commit it was drawn from.

    The line is checked first: an edit applied to different code would measure something else.
    """
    target = root / mutant.path
    lines = target.read_text(encoding="utf-8").splitlines(keepends=True)
    old = lines[mutant.line - 1]
    if old.rstrip("\r\n") != mutant.before:
        raise ValueError(f"{mutant.path}:{mutant.line} is not `{mutant.before}`")
    ending = old[len(mutant.before) :] or "\n"
    lines[mutant.line - 1] = "".join(text + ending for text in mutant.after)
    target.write_text("".join(lines), encoding="utf-8")


def draw(
    root: Path, sources: Sequence[str], tests: Sequence[str], count: int, seed: int
) -> list[Mutant]:
    """``count`` mutants dealt round-robin over the categories, each drawn with ``seed``.

    ``sources`` and ``tests`` are folders below ``root``, a git checkout, and only the files
    git tracks there count: a file the suite's ``.gitignore`` leaves out (python-dateutil's
    ``_version.py``) exists only after an install, and would change the draw. Behaviour is
    mutated in the code under test (decorators too: in a test file they are just a changed
    test, which every tool selects), fixtures in the tests, comments in both. Candidates are
    checked only when drawn (parsing a big file once per candidate would take minutes). A
    category whose candidates run out is skipped, so fewer mutants than asked are only
    possible in a tiny project.
    """
    texts: dict[str, str] = {}
    pools: dict[str, dict[Mutant, None]] = {category: {} for category in CATEGORIES}
    tracked = set(run(["git", "-C", root, "ls-files", "-z"]).split("\0"))
    for folders, is_test in ((sources, False), (tests, True)):
        for folder in folders:
            for path in sorted((root / folder).rglob("*.py")):
                relative = path.relative_to(root).as_posix()
                if relative not in tracked:
                    continue
                texts[relative] = path.read_text(encoding="utf-8")
                for mutant in _file_mutants(relative, texts[relative], is_test):
                    pools[mutant.category][mutant] = None
    rng = random.Random(seed)
    shuffled = {category: rng.sample(list(found), len(found)) for category, found in pools.items()}
    mutants: list[Mutant] = []
    while len(mutants) < count and any(shuffled.values()):
        for category in CATEGORIES:
            drawn = _next_valid(shuffled[category], texts) if len(mutants) < count else None
            if drawn is not None:
                mutants.append(drawn)
    return mutants


def _next_valid(candidates: list[Mutant], texts: dict[str, str]) -> Mutant | None:
    """Take candidates from the end until one really changes (or, for comments, keeps) the
    syntax tree of its file; None when they run out."""
    while candidates:
        mutant = candidates.pop()
        if _changes_tree(texts[mutant.path], mutant):
            return mutant
    return None


def _file_mutants(path: str, text: str, is_test: bool) -> Iterator[Mutant]:
    """The candidates of one file in the categories that apply to it."""
    wanted = {FIXTURE, COMMENT} if is_test else set(CATEGORIES) - {FIXTURE}
    for mutant in _raw_mutants(ast.parse(text), text.splitlines(), path, is_test):
        if mutant.category in wanted:
            yield mutant


def _raw_mutants(tree: ast.Module, lines: list[str], path: str, is_test: bool) -> Iterator[Mutant]:
    """Every edit of each kind, before checking what it does to the syntax tree.

    A comment goes on a line of its own before a statement (never inside a string); an unused
    function goes before a top-level definition, with a name no other code can mention.
    """
    for category, node in _visit(tree, MODULE_LEVEL, is_test):
        if isinstance(node, ast.expr | ast.stmt) and node.lineno == node.end_lineno:
            line = lines[node.lineno - 1]
            for new in _node_edits(node, line):
                yield Mutant(category, path, node.lineno, line, (new,))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield from _decorator_removals(node, lines, path)
        if isinstance(node, ast.stmt):
            line = lines[node.lineno - 1]
            indent = line[: len(line) - len(line.lstrip())]
            comment = f"{indent}# selection benchmark: a comment"
            yield Mutant(COMMENT, path, node.lineno, line, (comment, line))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            name = f"_selection_benchmark_unused_{first}"
            new = f"def {name}():  return {first}"
            yield Mutant(UNUSED_FUNCTION, path, first, lines[first - 1], (new, lines[first - 1]))


def _visit(node: ast.AST, context: str, is_test: bool) -> Iterator[tuple[str, ast.AST]]:
    """(category, node) for every node, the category being where a change to it would land.

    Decorators and defaults are evaluated when the ``def`` runs, so they are their own categories
    wherever they are; a class body belongs to whatever contains the class (module level, or a
    function). Docstrings and f-string parts are left alone: docstring edits are a different
    question, and f-string parts carry no reliable column offsets before Python 3.12.
    """
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        for decorator in node.decorator_list:
            yield from _visit(decorator, DECORATOR, is_test)
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                yield from _visit(default, DEFAULT_ARGUMENT, is_test)
        inner = FIXTURE if context == FIXTURE or (is_test and _is_fixture(node)) else FUNCTION_BODY
        for statement in node.body:
            yield from _visit(statement, inner, is_test)
        return
    if isinstance(node, ast.ClassDef):
        for statement in node.body:
            yield from _visit(statement, context, is_test)
        return
    if isinstance(node, ast.JoinedStr) or _is_docstring(node):
        return
    yield context, node
    for child in ast.iter_child_nodes(node):
        yield from _visit(child, context, is_test)


def _is_fixture(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A pytest fixture (``@fixture``, ``@pytest.fixture(...)``) or an xunit setup/teardown."""
    for decorator in node.decorator_list:
        called = decorator.func if isinstance(decorator, ast.Call) else decorator
        if (isinstance(called, ast.Attribute) and called.attr == "fixture") or (
            isinstance(called, ast.Name) and called.id == "fixture"
        ):
            return True
    return node.name in XUNIT_NAMES


def _is_docstring(node: ast.AST) -> bool:
    """A string expression statement: a docstring, or something only a docstring reader sees."""
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def _node_edits(node: ast.expr | ast.stmt, line: str) -> Iterator[str]:
    """New versions of ``line``, the one line ``node`` lies on, that mutate the node.

    Column offsets count UTF-8 bytes, hence the byte slicing.
    """
    raw = line.encode()
    for start, end, new in _spans(node, raw):
        yield (raw[:start] + new.encode() + raw[end:]).decode()


def _spans(node: ast.expr | ast.stmt, raw: bytes) -> Iterator[tuple[int, int, str]]:
    """(start, end, replacement) byte spans: flipped constants, operators, returns and ``not``."""
    end = node.end_col_offset
    assert end is not None
    if isinstance(node, ast.Constant) and isinstance(node.value, bool | int | str):
        value = node.value
        if isinstance(value, bool):
            yield node.col_offset, end, repr(not value)
        elif isinstance(value, int):
            yield node.col_offset, end, repr(value + 1)
        else:
            yield node.col_offset, end, repr(f"{value}_mutant")
    elif isinstance(node, ast.Compare) and len(node.ops) == 1:
        yield from _operator_span(node.left, node.comparators[0], type(node.ops[0]), raw)
    elif isinstance(node, ast.BoolOp) and len(node.values) == 2:
        gap = _gap(node.values[0], node.values[1], raw)
        word = "and" if isinstance(node.op, ast.And) else "or"
        if gap is not None and gap[2] == word:
            yield gap[0], gap[1], "or" if word == "and" else "and"
    elif isinstance(node, ast.Return) and node.value is not None:
        if not (isinstance(node.value, ast.Constant) and node.value.value is None):
            assert node.value.end_col_offset is not None
            yield node.value.col_offset, node.value.end_col_offset, "None"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield node.col_offset, node.operand.col_offset, ""


def _operator_span(
    left: ast.expr, right: ast.expr, operator: type[ast.cmpop], raw: bytes
) -> Iterator[tuple[int, int, str]]:
    """The span of a comparison operator and its opposite, if the text between is just that."""
    gap = _gap(left, right, raw)
    if gap is not None and gap[2] == OPERATOR_TEXT[operator]:
        yield gap[0], gap[1], SWAPPED_OPERATORS[operator]


def _gap(left: ast.expr, right: ast.expr, raw: bytes) -> tuple[int, int, str] | None:
    """The operator between two operands: its span and its text, or None if brackets or
    comments make the text between them more than one operator."""
    assert left.end_col_offset is not None
    between = raw[left.end_col_offset : right.col_offset].decode()
    word = " ".join(between.split())
    if not word or "(" in word or ")" in word or "#" in word:
        return None
    start = left.end_col_offset + len(between) - len(between.lstrip())
    end = right.col_offset - (len(between) - len(between.rstrip()))
    return start, end, word


def _decorator_removals(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, lines: list[str], path: str
) -> Iterator[Mutant]:
    """Deleting a decorator that has a line of its own (a one-line edit that drops it)."""
    for decorator in node.decorator_list:
        line = lines[decorator.lineno - 1]
        # Nothing but a comment can follow a decorator on its line, so this line is only it.
        if decorator.lineno == decorator.end_lineno and line.lstrip().startswith("@"):
            yield Mutant(DECORATOR, path, decorator.lineno, line, ())


def _changes_tree(text: str, mutant: Mutant) -> bool:
    """Whether the edited file parses and its tree differs (comments: parses and is the same)."""
    lines = text.splitlines()
    new_lines = [*lines[: mutant.line - 1], *mutant.after, *lines[mutant.line :]]
    try:
        new_tree = ast.parse("\n".join(new_lines) + "\n")
    except SyntaxError:
        return False
    same = ast.dump(new_tree) == ast.dump(ast.parse(text))
    return same if mutant.category == COMMENT else not same
