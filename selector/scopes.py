"""Python source structure, read from the syntax tree: statements and imports.

Recorded lines and changed lines are both mapped to the first line of the statement that
owns them before they are compared: a multi-line statement emits line events on several of
its lines (about a fifth of raw recorded lines are such continuation lines), while a diff
may touch any one of them.
"""

import ast
import copy
import sys
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeAlias, TypeGuard

_OWNERS = (ast.stmt, ast.excepthandler)


def parse(source: str | bytes, filename: str = "<unknown>") -> ast.Module | None:
    """The syntax tree of `source`, or None if it is not valid Python for this interpreter."""
    try:
        return ast.parse(source, filename)
    except (SyntaxError, ValueError, RecursionError):  # too deeply nested for this interpreter
        return None


def _start_line(node: ast.stmt | ast.excepthandler) -> int:
    """First line of a statement, counting the decorators of a decorated definition."""
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(decorator.lineno for decorator in decorators)])


def statement_starts(tree: ast.Module) -> list[int]:
    """For each line number, the first line of the innermost statement that owns it.

    Index 0 is unused; a line that no statement owns (blank, comment, past the end) maps
    to 0. A compound statement owns its header lines (decorators, signature, condition);
    its body lines belong to the statements of the body. `_owners` yields a statement
    before the statements inside it, so an inner one overwrites their claim. Only
    statements are searched (this runs for every recorded file; expressions are most of
    a tree and own no line of their own).
    """
    owners = list(_owners(tree))
    last_line = max((node.end_lineno or node.lineno for node in owners), default=0)
    owner = [0] * (last_line + 1)
    for node in owners:
        start = _start_line(node)
        end = node.end_lineno or node.lineno
        owner[start : end + 1] = [start] * (end + 1 - start)
    return owner


def _owners(tree: ast.Module) -> Iterator[ast.stmt | ast.excepthandler]:
    """Every statement and `except` clause, each before the ones inside it."""
    pending: list[ast.AST] = [tree]
    while pending:
        for child in ast.iter_child_nodes(pending.pop()):
            if isinstance(child, _OWNERS):
                yield child
                pending.append(child)
            elif isinstance(child, ast.match_case):
                pending.append(child)


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


def imported_modules(
    tree: ast.Module, package: str | None, ran: Collection[int] | None = None
) -> set[str]:
    """Every module name an import statement in `tree` may load.

    Imports in conditionals and `TYPE_CHECKING` blocks count too: the import graph is used
    to decide which tests depend on a module's import-time code, and over-approximating it
    only costs precision. An import inside a function counts if its line is in `ran` (the
    lines that ran in the recorded run), or always when `ran` is not given: a statement
    that never ran handed nobody the module, while one that ran may have handed it to code
    that kept it (a returned module, a `global`, a cache). `from pkg import name` yields
    both `pkg` and `pkg.name`, since `name` may be a submodule.
    """
    names: set[str] = set()
    for node, in_function in _import_statements(tree):
        if in_function and ran is not None and node.lineno not in ran:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.update(_with_parents(alias.name))
            continue
        base = _resolve_relative(node.module, node.level, package)
        if base is None:
            continue
        names.update(_with_parents(base))
        names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def lazy_imports(tree: ast.Module) -> bool:
    """Whether `tree` has an import statement inside a function."""
    return any(in_function for _node, in_function in _import_statements(tree))


def _import_statements(tree: ast.Module) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement, and whether it lies inside a function (runs when called)."""
    pending: list[tuple[ast.AST, bool]] = [(tree, False)]
    while pending:
        node, in_function = pending.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, in_function
            elif isinstance(child, ast.stmt | ast.excepthandler | ast.match_case):
                pending.append((child, in_function or isinstance(child, _FUNCTIONS)))


# -- what a change to one file can affect ---------------------------------------------------
#
# `selector plan` compares the syntax trees of a file before and after a change and splits
# the difference into three parts, each with its own rule in DESIGN "Selection": nothing
# (formatting only), the OWN bodies of functions (rule 1), and the module skeleton (rule 2).

_FunctionNode: TypeAlias = ast.FunctionDef | ast.AsyncFunctionDef
# A tree rendered for comparison (see _outline).
_Outline: TypeAlias = tuple[str, ...]

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_CONTAINERS = (ast.stmt, ast.excepthandler, ast.match_case)
_BODY = "<body>"  # stands for a function's code in an outline

# Names through which a module's code reads its own namespace by computed name: with one of
# them in the old module, a new global may change what existing code does.
_NAMESPACE_READERS = frozenset(
    {"globals", "vars", "locals", "dir", "__dict__", "__getattr__", "__dir__", "getmembers"}
    | {"modules", "import_module", "__import__"}  # sys.modules[__name__] and friends
)
# Module-level names that pytest and unittest look up because of their name alone.
_HOOK_NAMES = frozenset(
    {"setup_module", "teardown_module", "setUpModule", "tearDownModule", "load_tests"}
    | {"setup_function", "teardown_function", "setup", "teardown"}
    | {"pytestmark", "collect_ignore", "collect_ignore_glob"}
)


@dataclass(frozen=True)
class FunctionScope:
    """Where one `def` lies, split into what runs when it is defined and when it is called.

    `header` runs when the `def` statement runs: decorators, signature and docstring.
    `body` is the code a call runs, from the first statement after the docstring to the end;
    a one-liner's body is its `def` line, which then lies in both. A function without code
    (only a docstring) runs nothing of its own when called, and CPython reports the call on
    its `def` or first decorator line: its header and body are both the whole definition, so
    the tests that called it are among those that executed its body lines.
    """

    qualname: str
    header: tuple[int, int]
    body: tuple[int, int]


@dataclass(frozen=True)
class NewDefinition:
    """A top-level `def` or `class` that a change adds under a name the old module never used."""

    name: str
    lines: tuple[int, int]
    inert: bool


@dataclass(frozen=True)
class ChangedConstant:
    """A top-level `NAME = literal` whose literal value alone a change replaced, or a
    top-level `def NAME(...)` whose literal default values alone did (`function`).

    Either way, running the statement at import only binds NAME to another value.
    """

    name: str
    lines: tuple[int, int]  # of the statement in the old version; a function's header
    function: bool = False

    @property
    def what(self) -> str:
        """What changed, as a reason says it."""
        return f"default value of {self.name}" if self.function else self.name


@dataclass(frozen=True)
class SourceChange:
    """How two versions of a Python file differ, in the terms of the selection rules.

    `module_changed` covers everything outside function bodies: module and class level, and
    the header (decorators, signature, docstring) of every function that is not nested in
    another function. An `added` definition with `inert` False makes it True; inert ones
    alone leave it False, and nothing is listed in `added` when anything else at module
    level changed. Likewise `constants`: listed, with `module_changed` False, only when
    they are all that changed at module level. `changed_functions` are qualnames present
    in both versions whose own body changed; the header of a nested function is part of
    its parent's own body, since it is evaluated each time the parent runs.
    """

    identical: bool
    module_changed: bool
    changed_functions: tuple[str, ...]
    added: tuple[NewDefinition, ...]
    removed_functions: tuple[str, ...]
    constants: tuple[ChangedConstant, ...] = ()


def _docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    """The docstring statement of a module, class or function body, as a list of 0 or 1."""
    match body:
        case [ast.Expr(value=ast.Constant(value=str())), *_]:
            return body[:1]
    return []


def _code(body: list[ast.stmt]) -> list[ast.stmt]:
    """A function body without its docstring: the statements a call runs."""
    return body[len(_docstring(body)) :]


def _outline(node: ast.AST | list[ast.stmt]) -> _Outline:
    """`node` as a flat sequence of tokens, equal for equal trees, with functions' code hidden.

    Hiding a function's code leaves what runs when the enclosing code runs: its decorators,
    signature and docstring, and class bodies whole. Nodes open with their type name and
    close with ")", lists are bracketed, leaves are compared by repr like `ast.dump` does
    (1, 1.0 and True are equal values but different code). The walk is iterative: a long
    `a + b + ...` chain nests deeper than Python's recursion limit allows.
    """
    tokens: list[str] = []
    pending: list[object] = [node]  # last first; a string is a finished token
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            tokens.append(item)
        elif isinstance(item, list):
            tokens.append("[")
            pending.append("]")
            pending += [_pending(element) for element in reversed(item)]
        elif isinstance(item, ast.AST):
            tokens.append(f"({type(item).__name__}")
            pending.append(")")
            pending += reversed(_fields(item))
    return tuple(tokens)


def _pending(value: object) -> object:
    """A field value as `_outline` stacks it: nodes and lists to expand, leaves as tokens."""
    return value if isinstance(value, ast.AST | list) else repr(value)


def _fields(node: ast.AST) -> list[object]:
    """The fields of `node` to outline, a function's code replaced by a placeholder."""
    fields: list[object] = []
    for name in node._fields:
        if name == "body" and isinstance(node, _FUNCTIONS):
            fields += [_docstring(node.body), _BODY]
        else:
            fields.append(_pending(getattr(node, name, None)))
    return fields


def _definitions(node: ast.AST, prefix: str = "") -> Iterator[tuple[str, _FunctionNode]]:
    """Every function under `node` with its qualname, in source order.

    Only statements can hold a `def`, so expressions are not searched.
    """
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _FUNCTIONS):
            yield prefix + child.name, child
            yield from _definitions(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _definitions(child, f"{prefix}{child.name}.")
        elif isinstance(child, _CONTAINERS):
            yield from _definitions(child, prefix)


def _signature_end(node: _FunctionNode) -> int:
    """Last line of a function's decorators, parameters and return annotation."""
    parts: list[ast.AST] = [*node.decorator_list, node.args, *getattr(node, "type_params", [])]
    if node.returns is not None:
        parts.append(node.returns)
    ends: list[int | None] = [
        getattr(sub, "end_lineno", None) for part in parts for sub in ast.walk(part)
    ]
    return max([node.lineno, *(end for end in ends if end is not None)])


def _scope(qualname: str, node: _FunctionNode) -> FunctionScope:
    """The header and body spans of one function (see FunctionScope)."""
    start, end = _start_line(node), node.end_lineno or node.lineno
    code = _code(node.body)
    if not code:
        return FunctionScope(qualname, (start, end), (start, end))
    body_start = _start_line(code[0])
    return FunctionScope(
        qualname, (start, max(_signature_end(node), body_start - 1)), (body_start, end)
    )


def function_scopes(tree: ast.Module) -> dict[str, FunctionScope]:
    """Every function and method in `tree` by qualname ("Class.method", "outer.inner").

    Control flow does not enter the qualname. A qualname defined twice (redefinition,
    if/else branches, `@overload`, property setters) maps to its last definition.
    """
    return {qualname: _scope(qualname, node) for qualname, node in _definitions(tree)}


def class_spans(tree: ast.Module) -> dict[str, tuple[int, int]]:
    """Every class by qualified name (nesting joined with "."), with its whole span."""
    spans: dict[str, tuple[int, int]] = {}
    pending: list[tuple[str, ast.AST]] = [("", tree)]
    while pending:
        prefix, node = pending.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                if isinstance(child, ast.ClassDef):
                    spans[name] = (_start_line(child), child.end_lineno or child.lineno)
                pending.append((f"{name}.", child))
            elif isinstance(child, _CONTAINERS):  # only statements hold definitions
                pending.append((prefix, child))
    return spans


def innermost_function(scopes: dict[str, FunctionScope], line: int) -> FunctionScope | None:
    """The innermost function whose body contains `line`, or None for code no call runs.

    The functions whose bodies contain a line are nested in one another, so the innermost is
    the one with the deepest qualname.
    """
    containing = [scope for scope in scopes.values() if scope.body[0] <= line <= scope.body[1]]
    return max(containing, key=lambda scope: scope.qualname.count("."), default=None)


def _strings(tree: ast.AST) -> Iterator[str]:
    """Every string field of every node: names, attributes, import paths, string constants."""
    for node in ast.walk(tree):
        for _, value in ast.iter_fields(node):
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    yield item


def _identifiers(tree: ast.AST) -> set[str]:
    """Every name and string in `tree`, dotted ones also in parts.

    A superset of the ways code can name a global: variables, attributes, imports, `global`,
    parameters, keywords, and strings (`__all__`, `getattr(module, "name")`, mock targets).
    """
    found: set[str] = set()
    for text in _strings(tree):
        found.add(text)
        found.update(text.split("."))
    return found


@dataclass(frozen=True)
class Mentions:
    """What a piece of code calls, or hands to a call, by name: nothing is resolved.

    `names` are plain names and `attributes` are `(base, name)` for `base.name`, where
    `base` is the dotted name the attribute is read from (`mod`, `pkg.mod`, `self`), or ""
    when it is no plain name (`f().name`). Both hold only what is called (`f()`,
    `mod.f()`), passed to a call (`map(f, items)`, `partial(f)`, `key=f`) or used as a
    decorator: code that only stores a function (`table[key] = f`) does not call it, and
    whoever calls it later runs it. `read` holds every attribute read, for properties,
    which run without a call. `strings` are the literal arguments of `getattr` and its
    kind. Parameter and keyword names are no mentions.
    """

    names: frozenset[str]
    attributes: frozenset[tuple[str, str]]
    read: frozenset[tuple[str, str]]
    strings: frozenset[str]


# Calls that reach an attribute or a module by a name given as a string.
_GETTERS = frozenset(
    {"getattr", "hasattr", "setattr", "delattr", "attrgetter", "methodcaller"}
    | {"operator.attrgetter", "operator.methodcaller", "import_module", "__import__"}
    | {"importlib.import_module"}
)


def _dotted(node: ast.expr) -> str:
    """`a.b.c` for a chain of plain names and attributes, else ""."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


@dataclass
class CallIndex:
    """For one file: which functions call (or hand to a call) which names, by qualname.

    Each call belongs to the innermost function around it (a nested function is a caller of
    its own; its parent calls it by its plain name). Decorators belong to the function they
    decorate, since they wrap it. Built in one pass over the tree.
    """

    names: dict[str, set[str]] = field(default_factory=dict)  # name -> qualnames
    attributes: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # -> (q, base)
    read: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # attribute reads
    strings: dict[str, set[str]] = field(default_factory=dict)  # getattr literals
    decorated: set[str] = field(default_factory=set)

    def _called(self, owner: str, expression: ast.expr) -> None:
        if isinstance(expression, ast.Starred):
            expression = expression.value
        if isinstance(expression, ast.Name):
            self.names.setdefault(expression.id, set()).add(owner)
        elif isinstance(expression, ast.Attribute):
            entry = (owner, _dotted(expression.value))
            self.attributes.setdefault(expression.attr, set()).add(entry)

    def _visit(self, node: ast.AST, owner: str) -> None:
        if isinstance(node, ast.Attribute):
            self.read.setdefault(node.attr, set()).add((owner, _dotted(node.value)))
        elif isinstance(node, ast.Call):
            for part in [node.func, *node.args, *(word.value for word in node.keywords)]:
                self._called(owner, part)
            if _dotted(node.func) in _GETTERS:
                for argument in node.args:
                    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                        self.strings.setdefault(argument.value, set()).add(owner)


def call_index(tree: ast.Module) -> CallIndex:
    """Who calls what in `tree` (see CallIndex); module-level code has the owner ""."""
    index = CallIndex()
    pending: list[tuple[ast.AST, str, str]] = [(tree, "", "")]  # node, owner, qualname prefix
    while pending:
        node, owner, prefix = pending.pop()
        index._visit(node, owner)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _FUNCTIONS):
                qualname = prefix + child.name
                if child.decorator_list:
                    index.decorated.add(qualname)
                for decorator in child.decorator_list:
                    index._called(qualname, decorator)
                pending.append((child, qualname, f"{qualname}."))
            elif isinstance(child, ast.ClassDef):
                pending.append((child, owner, f"{prefix}{child.name}."))
            else:
                pending.append((child, owner, prefix))
    return index


def fixtures(tree: ast.Module) -> frozenset[str]:
    """Qualnames of the functions that `@pytest.fixture` (or `@fixture(...)`) defines."""
    found = set()
    for qualname, node in _definitions(tree):
        for decorator in node.decorator_list:
            called = decorator.func if isinstance(decorator, ast.Call) else decorator
            if _dotted(called).rpartition(".")[2] in ("fixture", "yield_fixture"):
                found.add(qualname)
    return frozenset(found)


def names_in(nodes: Iterable[ast.AST]) -> Mentions:
    """Every name and attribute in `nodes`, called or not (class bases, say)."""
    names: set[str] = set()
    attributes: set[tuple[str, str]] = set()
    for root in nodes:
        for node in ast.walk(root):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                attributes.add((_dotted(node.value), node.attr))
    return Mentions(frozenset(names), frozenset(attributes), frozenset(attributes), frozenset())


@dataclass(frozen=True)
class ImportedName:
    """`from <level dots><module> import <name>`: what a local name was imported as."""

    module: str
    level: int
    name: str


@dataclass(frozen=True)
class Bindings:
    """How a module binds names: its own classes and functions, and its imports.

    Imports anywhere in the file count (functions import lazily too). `modules` maps the
    local name of `import a.b as c` to `a.b`, and of `import a.b` to `a`.
    """

    defined: frozenset[str]
    classes: dict[str, Mentions]  # classes at any depth, by name: what their bases name
    imported: dict[str, tuple[ImportedName, ...]]
    modules: dict[str, tuple[str, ...]]
    star: tuple[ImportedName, ...]  # `from m import *`, name "*"


def bindings(tree: ast.Module) -> Bindings:
    """The names `tree` binds by definitions and imports."""
    defined = {node.name for node in top_level_statements(tree) if isinstance(node, _DEFINITIONS)}
    classes: dict[str, Mentions] = {}
    imported: dict[str, list[ImportedName]] = {}
    modules: dict[str, list[str]] = {}
    star: list[ImportedName] = []
    for node in _statements(tree):
        if isinstance(node, ast.ClassDef):
            classes[node.name] = names_in([*node.bases, *node.keywords])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.partition(".")[0]
                modules.setdefault(local, []).append(alias.name if alias.asname else local)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                entry = ImportedName(node.module or "", node.level, alias.name)
                if alias.name == "*":
                    star.append(entry)
                else:
                    imported.setdefault(alias.asname or alias.name, []).append(entry)
    return Bindings(
        frozenset(defined),
        classes,
        {name: tuple(entries) for name, entries in imported.items()},
        {name: tuple(targets) for name, targets in modules.items()},
        tuple(star),
    )


# Names through which code can bind a module's or a class's names without a statement that
# shows them: by computed name, through a frame, or by executing text.
_NAMESPACE_WRITERS = frozenset(
    {"globals", "vars", "locals", "setattr", "exec", "eval", "__dict__", "__getattr__"}
    | {"modules", "import_module", "__import__"}  # sys.modules[__name__] and friends
    | {"_getframe", "currentframe", "stack", "f_globals", "f_locals", "f_back"}
)


@dataclass(frozen=True)
class Namespace:
    """The names a module or a class body binds, as far as its syntax tree shows them.

    `names` holds every name a statement of the body binds, whatever the statement (def,
    class, import, assignment of any kind, loop and `with` targets, `except ... as`, match
    captures, `:=`, `global` in a function). `complete` says whether that is all there is:
    not when the module star-imports, writes its namespace by computed name (`globals()`,
    `setattr`, `exec`, frames), has a `load_tests` or a `pytest_*` hook that makes tests, or
    calls something at module level and drops the result (pytest-bdd's `scenarios()` binds
    tests through its caller's frame); nor for a class that has bases, a metaclass, or
    decorators, or whose attributes the module assigns. `classes` are the class statements
    whose name nothing else binds, by name.
    """

    names: frozenset[str]
    complete: bool
    classes: dict[str, "Namespace"]

    def binds(self, path: list[str]) -> bool:
        """Whether a statement binds `path` (`[Class, ..., name]`): its own class statements
        for the names inside a class, nothing a class inherits or is given."""
        if not path or path[0] not in self.names:
            return False
        inner = self.classes.get(path[0])
        return len(path) == 1 or (inner is not None and inner.binds(path[1:]))

    def certainly_unbound(self, path: list[str]) -> bool:
        """Whether `path` (`[Class, ..., name]`) is certainly no name of this namespace."""
        if not self.complete or not path:
            return False
        first, rest = path[0], path[1:]
        if first not in self.names:
            return True
        inner = self.classes.get(first)
        return inner is not None and inner.certainly_unbound(rest)


def namespace(tree: ast.Module) -> Namespace:
    """What the module binds at module level, and its classes (see Namespace)."""
    found = _identifiers(tree)
    names = _bound_names(tree)
    complete = (
        found.isdisjoint(_NAMESPACE_WRITERS)
        and not _has_star_import(tree)
        and not any(name == "load_tests" or name.startswith("pytest_") for name in names)
        and not any(_dropped_call(statement) for statement in top_level_statements(tree))
    )
    assigned = _attribute_targets(tree)
    return Namespace(frozenset(names), complete, _class_namespaces(tree, names, assigned))


def _class_namespaces(
    owner: ast.Module | ast.ClassDef, names: list[str], assigned: set[str]
) -> dict[str, Namespace]:
    """The namespaces of the classes `owner` defines and binds no other way."""
    classes: dict[str, Namespace] = {}
    for statement in top_level_statements(owner):
        if isinstance(statement, ast.ClassDef) and names.count(statement.name) == 1:
            own = _bound_names(statement)
            complete = (
                not statement.bases
                and not statement.keywords
                and not statement.decorator_list
                and statement.name not in assigned
            )
            classes[statement.name] = Namespace(
                frozenset(own), complete, _class_namespaces(statement, own, assigned)
            )
    return classes


def _bound_names(owner: ast.Module | ast.ClassDef) -> list[str]:
    """Every name the statements of `owner`'s own body bind, once per binding."""
    bound: list[str] = []
    for statement in top_level_statements(owner):
        bound.extend(_statement_targets(statement))
    for node in ast.walk(owner):
        if isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            bound.append(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.append(node.rest)
        elif isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
            bound.append(node.target.id)
        elif isinstance(node, ast.Global):
            bound.extend(node.names)
    return bound


def _statement_targets(statement: ast.stmt) -> list[str]:
    """The names one statement binds in the body it belongs to."""
    match statement:
        case ast.FunctionDef(name=name) | ast.AsyncFunctionDef(name=name) | ast.ClassDef(name=name):
            return [name]
        case ast.Import(names=aliases):
            return [alias.asname or alias.name.partition(".")[0] for alias in aliases]
        case ast.ImportFrom(names=aliases):
            return [alias.asname or alias.name for alias in aliases]
        case ast.Assign(targets=targets):
            return [name for target in targets for name in _target_names(target)]
        case ast.AugAssign(target=target) | ast.AnnAssign(target=target):
            return _target_names(target)
        case ast.For(target=target) | ast.AsyncFor(target=target):
            return _target_names(target)
        case ast.With(items=items) | ast.AsyncWith(items=items):
            return [
                name
                for item in items
                if item.optional_vars is not None
                for name in _target_names(item.optional_vars)
            ]
    if sys.version_info >= (3, 12) and isinstance(statement, ast.TypeAlias):
        return _target_names(statement.name)
    return []


def _target_names(target: ast.expr) -> list[str]:
    """The plain names an assignment target binds (`a`, `a, (b, *c)`); `x.y`, `x[k]` bind none."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [name for element in target.elts for name in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def _attribute_targets(tree: ast.Module) -> set[str]:
    """Names whose attributes some statement assigns or deletes (`TestX.test_y = f`)."""
    return {
        node.value.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store | ast.Del)
        and isinstance(node.value, ast.Name)
    }


def _dropped_call(statement: ast.stmt) -> bool:
    """Whether a statement is a call whose result nothing keeps, run for its effects."""
    value = statement.value if isinstance(statement, ast.Expr) else None
    if isinstance(value, ast.Await):
        value = value.value
    return isinstance(value, ast.Call)


def _statements(tree: ast.Module) -> Iterator[ast.stmt]:
    """Every statement at any depth; expressions are not searched (no statement is in one)."""
    pending: list[ast.AST] = [tree]
    while pending:
        for child in ast.iter_child_nodes(pending.pop()):
            if isinstance(child, ast.stmt):
                yield child
                pending.append(child)
            elif isinstance(child, ast.excepthandler | ast.match_case):
                pending.append(child)


def top_level_statements(tree: ast.Module | ast.ClassDef) -> Iterator[ast.stmt]:
    """Statements that run at module level: the body, and blocks of if/try/with in it.

    Given a class, the statements that run in its body.
    """
    pending: list[ast.AST] = [tree]
    while pending:
        for child in ast.iter_child_nodes(pending.pop()):
            if isinstance(child, ast.stmt):
                yield child
                if not isinstance(child, _DEFINITIONS):
                    pending.append(child)
            elif isinstance(child, ast.excepthandler | ast.match_case):
                pending.append(child)


def _own_bodies(tree: ast.Module) -> dict[str, list[_Outline]]:
    """The own body of every definition of every qualname, in source order.

    A function's own body is its code with nested functions' code replaced by a placeholder:
    their headers run each time the function runs, their code belongs to them.
    """
    bodies: dict[str, list[_Outline]] = {}
    for qualname, node in _definitions(tree):
        bodies.setdefault(qualname, []).append(_outline(_code(node.body)))
    return bodies


def _changed_bodies(
    old: dict[str, list[_Outline]], new: dict[str, list[_Outline]]
) -> tuple[tuple[str, ...], bool]:
    """Qualnames whose own body changed, and whether some change cannot be pinned to one.

    A qualname defined several times maps to its last definition (see function_scopes), so
    only a change to the last one can be reported for the qualname. When the definitions
    before it are unchanged, the k-th old definition is the k-th new one, unless the code
    around them changed, which the enclosing scope reports. Any other change is ambiguous.
    """
    changed: list[str] = []
    ambiguous = False
    for qualname, old_bodies in old.items():
        new_bodies = new.get(qualname)
        if new_bodies is None or new_bodies == old_bodies:
            continue
        if len(new_bodies) == len(old_bodies) and new_bodies[:-1] == old_bodies[:-1]:
            changed.append(qualname)
        else:
            ambiguous = True
    return tuple(changed), ambiguous


def _protocol_name(name: str) -> bool:
    """Whether Python, pytest or unittest look `name` up in a module without code naming it."""
    return (name.startswith("__") and name.endswith("__")) or (
        name.startswith("pytest_") or name in _HOOK_NAMES
    )


def reads_namespace(tree: ast.Module) -> bool:
    """Whether the module may read its own globals by computed name (_NAMESPACE_READERS).

    `inspect.getmembers` takes the object to list: a `getmembers()` call without arguments
    is some other method (`TarFile.getmembers()`), and only those are left out.
    """
    found = _identifiers(tree)
    if not found.isdisjoint(_NAMESPACE_READERS - {"getmembers"}):
        return True
    return "getmembers" in found and _mentions(tree, "getmembers") > _argless_calls(
        tree, "getmembers"
    )


def _mentions(tree: ast.AST, name: str) -> int:
    """How often `name` is a string field of `tree`, or a dotted part of one."""
    return sum(text.split(".").count(name) for text in _strings(tree))


def _argless_calls(tree: ast.AST, attribute: str) -> int:
    """How many calls of `obj.attribute()` without arguments `tree` holds."""
    return sum(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == attribute
        and not node.args
        and not node.keywords
        for node in ast.walk(tree)
    )


def _has_star_import(tree: ast.Module) -> bool:
    """Whether `from ... import *` may bring names nobody can list into the module."""
    return any(
        isinstance(node, ast.ImportFrom) and node.names[0].name == "*" for node in ast.walk(tree)
    )


def _fresh_names(old: ast.Module) -> Callable[[str], bool]:
    """A test of whether a new global of a given name can change nothing that `old` did.

    It cannot if no identifier or string of `old` is that name, so no existing code reads
    it (a new `open` shadows the builtin for old code that calls `open`), unless the module
    reads its namespace by computed name, star-imports unknown names, or the name is a hook.
    """
    taken = _identifiers(old)
    if _has_star_import(old) or reads_namespace(old):
        return lambda _name: False
    return lambda name: name not in taken and not _protocol_name(name)


def _literal(node: ast.expr | None, *, hashable: bool = False) -> bool:
    """Whether evaluating `node` builds a value from constants only: it runs no code, cannot raise.

    Dict keys must be hashable: a list key raises TypeError.
    """
    match node:
        case ast.Constant():
            return True
        case ast.UnaryOp(op=ast.USub(), operand=ast.Constant(value=int() | float() | complex())):
            return True
        case ast.Tuple(elts=items) if not hashable:
            return all(_literal(item) for item in items)
        case ast.List(elts=items) if not hashable:
            return all(_literal(item) for item in items)
        case ast.Dict(keys=keys, values=values) if not hashable:
            return all(_literal(key, hashable=True) for key in keys) and all(map(_literal, values))
    return False


def _annotated(node: _FunctionNode) -> bool:
    """Whether the function has a parameter or return annotation."""
    arguments = node.args
    optional = [arguments.vararg, arguments.kwarg]
    parameters = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    parameters += [parameter for parameter in optional if parameter is not None]
    return node.returns is not None or any(p.annotation is not None for p in parameters)


@dataclass(frozen=True)
class _Context:
    """What, besides a definition itself, decides whether it is inert."""

    lazy_annotations: bool  # `from __future__ import annotations`: annotations are strings
    builtin_object: bool  # nothing rebinds `object`, so `class C(object)` means the builtin


def _inert_function(node: _FunctionNode, context: _Context) -> bool:
    """Whether running this `def` only binds a name: no decorator, literal defaults only."""
    return (
        not node.decorator_list
        and not getattr(node, "type_params", None)
        and all(map(_literal, _defaults(node)))
        and (context.lazy_annotations or not _annotated(node))
    )


def _inert_class(node: ast.ClassDef, context: _Context) -> bool:
    """Whether running this `class` statement only binds a name.

    No decorator, no metaclass or other keyword, no base but `object`, and a body of
    constants, literal assignments to plain names and inert definitions. Dunder names are
    refused: `__slots__`, `__qualname__` and the like are checked when the class is made.
    """
    bases_ok = not node.bases or (
        context.builtin_object
        and len(node.bases) == 1
        and isinstance(node.bases[0], ast.Name)
        and node.bases[0].id == "object"
    )
    return (
        bases_ok
        and not node.decorator_list
        and not node.keywords
        and not getattr(node, "type_params", None)
        and all(_inert_class_statement(statement, context) for statement in node.body)
    )


def _inert_class_statement(statement: ast.stmt, context: _Context) -> bool:
    """Whether a statement of a class body can run with no effect besides binding a name."""
    match statement:
        case ast.Pass() | ast.Expr(value=ast.Constant()):
            return True
        case ast.Assign(targets=targets, value=value):
            return all(map(_plain_name, targets)) and _literal(value)
        case ast.AnnAssign(target=target, value=value):
            literal = value is None or _literal(value)
            return context.lazy_annotations and _plain_name(target) and literal
        case ast.FunctionDef() | ast.AsyncFunctionDef() | ast.ClassDef():
            return _inert(statement, context)
    return False


def _plain_name(target: ast.expr) -> bool:
    """Whether an assignment target is a simple name that Python gives no special meaning."""
    return isinstance(target, ast.Name) and not _protocol_name(target.id)


def _inert(node: _FunctionNode | ast.ClassDef, context: _Context) -> bool:
    """Whether defining `node` cannot have an effect or raise at import time."""
    if isinstance(node, ast.ClassDef):
        return _inert_class(node, context)
    return _inert_function(node, context)


def _only_read(tree: ast.Module, name: str) -> bool:
    """Whether `name` occurs in `tree` only as a variable that is read, never bound."""
    occurrences = sum(text == name for text in _strings(tree))
    reads = sum(
        isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Load)
        for node in ast.walk(tree)
    )
    return occurrences == reads


def _future_annotations(tree: ast.Module) -> bool:
    """Whether `from __future__ import annotations` keeps the module's annotations unevaluated."""
    return any(
        isinstance(statement, ast.ImportFrom)
        and statement.module == "__future__"
        and any(alias.name == "annotations" for alias in statement.names)
        for statement in tree.body
    )


def _skeleton(tree: ast.Module) -> list[_Outline]:
    """The module with every function's code hidden, one outline per top-level statement."""
    return [_outline(statement) for statement in tree.body]


def _module_level_change(
    old: ast.Module, new: ast.Module, old_skeleton: list[_Outline], new_skeleton: list[_Outline]
) -> tuple[bool, tuple[NewDefinition, ...]]:
    """Whether different skeletons differ by more than fresh inert definitions, and those.

    Fresh top-level definitions are set aside; if the rest of the new skeleton equals the old
    one, inserting them is the only module-level difference (unless one is inserted above the
    module docstring, which then is one no more), and it matters only if one of them is not
    inert. Otherwise the skeleton changed and nothing is listed.
    """
    is_fresh = _fresh_names(old)
    fresh = {
        index: statement
        for index, statement in enumerate(new.body)
        if isinstance(statement, _DEFINITIONS) and is_fresh(statement.name)
    }
    rest = [outline for index, outline in enumerate(new_skeleton) if index not in fresh]
    moved_docstring = len(_docstring(old.body)) != len(_docstring(new.body))
    if not fresh or rest != old_skeleton or moved_docstring:
        return True, ()
    context = _Context(_future_annotations(new), _only_read(new, "object"))
    added = tuple(
        NewDefinition(
            statement.name,
            (_start_line(statement), statement.end_lineno or statement.lineno),
            _inert(statement, context),
        )
        for statement in fresh.values()
    )
    return not all(definition.inert for definition in added), added


def compare(old: ast.Module, new: ast.Module) -> SourceChange:
    """What changed between two versions of a file, for the selection rules (see SourceChange).

    Trees are compared, not text: comments, blank lines and formatting change nothing. The
    skeleton and the own bodies of all functions make up the whole tree, each node in exactly
    one of them, so the trees are identical when all of those are.
    """
    old_skeleton, new_skeleton = _skeleton(old), _skeleton(new)
    old_bodies, new_bodies = _own_bodies(old), _own_bodies(new)
    same_skeleton = old_skeleton == new_skeleton
    if same_skeleton and old_bodies == new_bodies:
        return SourceChange(True, False, (), (), ())
    changed, ambiguous = _changed_bodies(old_bodies, new_bodies)
    skeleton_changed, added = (
        (False, ()) if same_skeleton else _module_level_change(old, new, old_skeleton, new_skeleton)
    )
    constants: tuple[ChangedConstant, ...] = ()
    if skeleton_changed and not added:
        constants = _changed_constants(old, new, old_skeleton, new_skeleton)
        skeleton_changed = not constants
    return SourceChange(
        identical=False,
        module_changed=skeleton_changed or ambiguous,
        changed_functions=changed,
        added=added,
        removed_functions=tuple(name for name in old_bodies if name not in new_bodies),
        constants=constants,
    )


def _changed_constants(
    old: ast.Module, new: ast.Module, old_skeleton: list[_Outline], new_skeleton: list[_Outline]
) -> tuple[ChangedConstant, ...]:
    """The top-level literal assignments whose value alone changed, and the top-level
    functions whose literal defaults alone did, if nothing else did.

    Evaluating a literal runs no code and cannot raise, so such a statement does nothing at
    import but bind its name to another value: only code that reads the name can notice
    (selector/constants.py finds it; a function's callers run it, too). A module that reads
    its namespace by computed name may read it unnamed: then, and for any other
    module-level difference, none is listed.
    """
    if len(old_skeleton) != len(new_skeleton):
        return ()
    if reads_namespace(old) or reads_namespace(new):
        return ()
    found: list[ChangedConstant] = []
    for old_statement, new_statement, old_outline, new_outline in zip(
        old.body, new.body, old_skeleton, new_skeleton, strict=True
    ):
        if old_outline == new_outline:
            continue
        name = _constant_name(old_statement, new_statement)
        if name is not None:
            end = old_statement.end_lineno or old_statement.lineno
            found.append(ChangedConstant(name, (old_statement.lineno, end)))
        elif _defaults_changed(old_statement, new_statement) and _defined_once(
            old, new, old_statement.name
        ):
            header = _scope(old_statement.name, old_statement).header
            found.append(ChangedConstant(old_statement.name, header, function=True))
        else:
            return ()
    return tuple(found)


def _defaults_changed(old: ast.stmt, new: ast.stmt) -> TypeGuard[_FunctionNode]:
    """Whether two versions of a top-level `def` differ only in literal default values.

    The `def` then evaluates constants, which runs no code and cannot raise, and binds its
    name to a function that differs in `__defaults__`/`__kwdefaults__` alone. A decorator
    would receive that function at import (and may read its defaults), so there is none;
    which parameters have a default stays the same, so every call binds as before.
    """
    if not (isinstance(old, _FUNCTIONS) and isinstance(new, _FUNCTIONS)):
        return False
    if type(old) is not type(new) or old.decorator_list or _protocol_name(old.name):
        return False  # equal outlines below: `new` has the same decorators
    literal = all(map(_literal, _defaults(old))) and all(map(_literal, _defaults(new)))
    return literal and _outline(_without_defaults(old)) == _outline(_without_defaults(new))


def _defaults(node: _FunctionNode) -> list[ast.expr]:
    """The default values of a function's parameters, positional and keyword-only."""
    return [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]


def _without_defaults(node: _FunctionNode) -> _FunctionNode:
    """A copy of `node` with every default value replaced by one placeholder."""
    arguments = copy.copy(node.args)
    arguments.defaults = [ast.Constant(_BODY) for _ in node.args.defaults]
    arguments.kw_defaults = [d if d is None else ast.Constant(_BODY) for d in node.args.kw_defaults]
    stripped = copy.copy(node)
    stripped.args = arguments
    return stripped


def _defined_once(old: ast.Module, new: ast.Module, name: str) -> bool:
    """Whether each version defines `name` with one top-level `def` (the map's lines of a
    function defined twice cannot be told apart)."""
    return all(
        sum(qualname == name for qualname, _ in _definitions(tree)) == 1 for tree in (old, new)
    )


def _constant_name(old: ast.stmt, new: ast.stmt) -> str | None:
    """The plain name both versions of an assignment bind to a literal, if that is all they do.

    One target only (`a = b = 1` binds two), and an annotation, if any, unchanged.
    """
    match old, new:
        case (
            ast.Assign(targets=[ast.Name(id=name)], value=old_value),
            ast.Assign(targets=[ast.Name(id=new_name)], value=new_value),
        ):
            pass
        case (
            ast.AnnAssign(target=ast.Name(id=name), annotation=old_annotation, value=old_value),
            ast.AnnAssign(target=ast.Name(id=new_name), annotation=new_annotation, value=new_value),
        ) if _outline(old_annotation) == _outline(new_annotation):
            pass
        case _:
            return None
    same_name = name == new_name and not _protocol_name(name)
    return name if same_name and _literal(old_value) and _literal(new_value) else None
