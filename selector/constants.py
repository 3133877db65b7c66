"""Who can notice a changed module-level constant: the code that reads its name.

The same holds for a top-level function whose literal default values alone changed: its
`def` binds the name to another value, and besides the code that reads the name, the
calls of the function notice (they run it, so the map has them).

A top-level `NAME = literal` whose value alone changed (`scopes.ChangedConstant`) does
nothing at import but bind NAME to another value; evaluating a literal runs no code and
cannot raise. Code notices the change only by reading the value, and Python code reads a
module global in one of four ways:

1. by its name, in the module itself (`NAME`);
2. as an attribute of the module (`settings.NAME`);
3. after copying it: `from settings import NAME`, then by its name in the importer;
4. by a computed name: `getattr(module, name)`, `vars(module)`, `globals()`, `dir()`.

The first three write the name, so a word search over the repository finds every place
that can read it (`name_uses`), and the value reaches tests only through those places: a
function that reads it (the tests that ran the function, as if its body had changed, and
the cached-results rule from there), or code that runs at import (the rule for a
module-level change of that file). The fourth is ruled out where it can be, and the
constant falls back to a module-level change of its file where it cannot:

* the module, and every module that copies the name in with `from ... import NAME`, reads
  no namespace by computed name (`scopes.reads_namespace`);
* none of those module objects reaches code as a value (`module_escapes`): every mention
  of a module's name is an import or an access to one named attribute, never an argument
  (`configure(settings)`), an alias, a star import, a string (`import_module(...)`, a
  `DJANGO_SETTINGS_MODULE` setting) or a file other than ignored documentation.

Code that runs the file with `exec` (Sphinx's `conf.py`) or reads its text names nothing
either; the map shows where that happened, and `Selector` selects those tests too.

What remains is code outside the repository that imports a module by a name it builds
itself, written nowhere in the repository, and reads its globals by computed names.
"""

import ast
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from selector import scopes

_Context = str | None  # the qualname of the function whose code runs, None: import time
_SOURCE_SUFFIXES = (".py", ".pyi")  # a stub runs nothing
# Calls that touch the one attribute their second argument names: builtins, pytest's
# monkeypatch.setattr/delattr, unittest.mock's patch.object.
_NAMED_ACCESSORS = frozenset({"getattr", "hasattr", "setattr", "delattr", "object"})
# Attributes of a module that are, or read, its whole namespace.
_NAMESPACE_ATTRIBUTES = frozenset({"__dict__", "__getattribute__", "__getattr__", "__dir__"})


class Sources(Protocol):
    """Both sides of the change, searched by word."""

    def old(self, path: str) -> bytes | None:
        """Content of `path` at the map's commit."""

    def old_python_mentioning(self, words: Iterable[str]) -> dict[str, set[str]]:
        """For each word, the Python files of the map's commit that hold it as a word."""

    def old_python_mentioning_all(self, words: Iterable[str]) -> set[str]:
        """The Python files of the map's commit that hold every one of `words` as a word."""

    def old_python_reading_attribute(self, name: str) -> set[str]:
        """Python files of the map's commit where `name` follows a dot or is a quoted string,
        or that star-import a package relatively (`from . import *`)."""

    def files_mentioning(self, words: Iterable[str]) -> set[str]:
        """Every file on the planned side that holds one of `words` as a word."""


@dataclass(frozen=True)
class Reader:
    """A function whose code reads the constant."""

    path: str
    qualname: str
    body: tuple[int, int]


@dataclass(frozen=True)
class Readers:
    """Everything that can read a changed constant: functions, and files at import time."""

    functions: tuple[Reader, ...]
    at_import: tuple[str, ...]


@dataclass(frozen=True)
class NameUses:
    """Where one file's code mentions a name.

    `functions`: qualnames of the functions whose own code mentions it (a nested
    function's header is its parent's code). `at_import`: code that runs when the module
    is imported mentions it: module level, class bodies, the headers of top-level
    functions, and any function defined twice under one qualname (which one the map's
    lines belong to cannot be told). `holds`: a module-level `from ... import NAME` copies
    it into this module's namespace, which must then be as closed as the defining one.
    `opaque`: why a use cannot be followed, if one cannot. `star_levels`: the levels of its
    relative star imports (`from . import *` is 1), which copy a package's names without
    writing the package's name: the file holds the name if that package does.
    """

    functions: frozenset[str]
    at_import: bool
    holds: bool
    opaque: str | None
    star_levels: tuple[int, ...] = ()


def module_word(path: str) -> str:
    """The name code writes to refer to the module in `path`: its last dotted part."""
    file = PurePosixPath(path)
    return file.parent.name if file.stem == "__init__" else file.stem


def word_pattern(word: str) -> re.Pattern[str]:
    """`word` as a whole word, as `git grep -w` finds it."""
    return re.compile(rf"(?<![\w]){re.escape(word)}(?![\w])")


def name_uses(tree: ast.Module, name: str, binding: tuple[int, int] | None = None) -> NameUses:
    """Where `tree` mentions `name`; `binding` holds the changed statement itself (not a use).

    A mention is the name as a variable or attribute, in any context (a store may be a
    monkeypatch), or as a whole string (`getattr(module, "NAME")`), except in `__all__`,
    which only star imports read (and `module_escapes` refuses those). The name inside a
    longer string is code that cannot be followed (generated source, a doctest), unless
    the string is a docstring without a doctest. An import of the name under another name
    hides its later uses, and one into a class body puts it in a namespace that class
    machinery walks: both are opaque.
    """
    pattern = word_pattern(name)
    docstrings = _docstrings(tree)
    exported = _exported_strings(tree)
    top_level = {id(statement) for statement in scopes.top_level_statements(tree)}
    functions: set[str] = set()
    defined: dict[str, int] = {}
    star_levels: list[int] = []
    at_import = holds = False
    for node, context in _walk(tree, defined):
        mentioned = False
        match node:
            case ast.Name(id=found, ctx=ctx) if found == name:
                in_binding = binding is not None and binding[0] <= node.lineno <= binding[1]
                mentioned = not (in_binding and isinstance(ctx, ast.Store))
            case ast.Attribute(attr=found) if found == name:
                mentioned = True
            case ast.Constant(value=str() as text) if pattern.search(text):
                if text == name:
                    mentioned = id(node) not in exported
                elif id(node) not in docstrings or ">>>" in text:
                    return _opaque(f"a string of code names {name}")
            case ast.alias(name=imported, asname=alias) if alias is not None:
                if imported.rpartition(".")[2] == name and alias != name:
                    return _opaque(f"{name} is imported as {alias}")
                mentioned = alias == name
            case ast.ImportFrom(module=None, names=[ast.alias(name="*")], level=level):
                star_levels.append(level)  # `from . import *`: only at module level
            case ast.ImportFrom(names=names) if context is None:
                if any(alias.name == name for alias in names):
                    if id(node) not in top_level:
                        return _opaque(f"{name} is imported into a class body")
                    holds = True
        if mentioned:
            if context is None:
                at_import = True
            else:
                functions.add(context)
    twice = {qualname for qualname in functions if defined.get(qualname, 0) > 1}
    levels = tuple(sorted(star_levels))
    return NameUses(frozenset(functions - twice), at_import or bool(twice), holds, None, levels)


def _opaque(why: str) -> NameUses:
    return NameUses(frozenset(), True, False, why)


def module_escapes(tree: ast.Module, word: str) -> str | None:
    """Why the module that code calls `word` may reach code as a value in `tree`, or None.

    Allowed are imports under its own name (`import pkg.word`, `from pkg import word`,
    `from pkg.word import NAME`) and accesses to one attribute that the code names
    (`word.NAME`, `pkg.word.NAME`, `getattr(word, "NAME")`, `monkeypatch.setattr(word,
    "NAME", value)`). Anything else may hand the module to code that reads its namespace:
    the bare name as a value, an alias, a star import, a string, a doctest.
    """
    pattern = word_pattern(word)
    docstrings = _docstrings(tree)
    for node, parent in _with_parents(tree):
        match node:
            case ast.Name(id=found, ctx=ast.Load()) | ast.Attribute(attr=found, ctx=ast.Load()):
                if found == word and not _named_access(node, parent):
                    return f"{word} is used as a value"
            case ast.alias(name=imported, asname=alias):
                parts = imported.split(".")
                if word in parts and alias is not None and alias != word:
                    return f"{word} is imported as {alias}"
            case ast.ImportFrom(module=module, names=names) if module is not None:
                if word in module.split(".") and any(alias.name == "*" for alias in names):
                    return f"names of {word} are star-imported"
            case ast.Constant(value=str() as text) if pattern.search(text):
                if id(node) not in docstrings or ">>>" in text:
                    return f"a string names {word}"
    return None


def _named_access(node: ast.AST, parent: ast.AST | None) -> bool:
    """Whether `node`, a module, is only the object of an access to one named attribute.

    An attribute that is the namespace itself (`module.__dict__`) is no such access.
    """
    match parent:
        case ast.Attribute(value=value, attr=attribute):
            return value is node and attribute not in _NAMESPACE_ATTRIBUTES
        case ast.Call(
            func=ast.Name(id=called) | ast.Attribute(attr=called),
            args=[first, ast.Constant(value=str() as attribute), *_],
        ) if first is node:
            return called in _NAMED_ACCESSORS and attribute not in _NAMESPACE_ATTRIBUTES
    return False


def _exported_strings(tree: ast.Module) -> set[int]:
    """Ids of the string constants that module-level `__all__` assignments list."""
    found: set[int] = set()
    for statement in scopes.top_level_statements(tree):
        match statement:
            case (
                ast.Assign(targets=[ast.Name(id="__all__")], value=value)
                | ast.AugAssign(target=ast.Name(id="__all__"), value=value)
            ):
                found.update(id(node) for node in ast.walk(value) if isinstance(node, ast.Constant))
    return found


def _docstrings(tree: ast.Module) -> set[int]:
    """Ids of the docstring constants of the module, its classes and functions."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            match node.body:
                case [ast.Expr(value=ast.Constant(value=str()) as docstring), *_]:
                    found.add(id(docstring))
    return found


def _walk(tree: ast.Module, defined: dict[str, int]) -> Iterator[tuple[ast.AST, _Context]]:
    """Every node with the function whose code runs it; counts definitions into `defined`.

    Decorators, defaults and annotations run where the `def` runs; a class body runs where
    the `class` statement runs. Qualnames are built like `scopes.function_scopes` builds
    them. A lambda's body is charged to the code that makes the lambda.
    """
    pending: list[tuple[ast.AST, _Context, str]] = [(tree, None, "")]
    while pending:
        node, context, prefix = pending.pop()
        yield node, context
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            qualname = prefix + node.name
            defined[qualname] = defined.get(qualname, 0) + 1
            header: list[ast.AST] = [*node.decorator_list, node.args]
            header += [part for part in [node.returns, *getattr(node, "type_params", [])] if part]
            pending += [(part, context, prefix) for part in header]
            pending += [(statement, qualname, f"{qualname}.") for statement in node.body]
        elif isinstance(node, ast.ClassDef):
            inner = f"{prefix}{node.name}."
            header = [*node.decorator_list, *node.bases, *node.keywords]
            header += getattr(node, "type_params", [])
            pending += [(part, context, prefix) for part in header]
            pending += [(statement, context, inner) for statement in node.body]
        else:
            pending += [(child, context, prefix) for child in ast.iter_child_nodes(node)]


def _with_parents(tree: ast.Module) -> Iterator[tuple[ast.AST, ast.AST | None]]:
    """Every node with its parent."""
    pending: list[tuple[ast.AST, ast.AST | None]] = [(tree, None)]
    while pending:
        node, parent = pending.pop()
        yield node, parent
        pending += [(child, node) for child in ast.iter_child_nodes(node)]


def find_readers(
    path: str,
    constant: scopes.ChangedConstant,
    sources: Sources,
    may_run: Callable[[str], bool],
) -> Readers | str:
    """Everything that can read `constant` of `path`, or why that cannot be known.

    Files are read where they can reach the module's value: the module itself, files that
    name the module or a module holding a copy (a bare `NAME` elsewhere is that file's own
    global: binding it to the module's value takes an import that names the module), and
    files where the name follows a dot or is a quoted string (on a module found at run
    time) or that star-import a package relatively (`from . import *`). `may_run(file)`
    says whether a file that is not Python source may run code that names the module or
    the constant (a doctest file, a configuration naming a module).
    """
    name = constant.name
    trees: dict[str, ast.Module] = {}
    defining = _old_tree(sources, path, trees)
    if defining is None:
        return f"{path} is not valid Python"
    why = module_escapes(defining, module_word(path))  # the cheapest refusal first
    if why is not None:
        return f"{path}: {why}"
    readers: list[Reader] = []
    at_import: list[str] = []
    holders = [path]
    searched: set[str] = set()  # holders whose importers were looked for
    stars: dict[str, set[str]] = {}  # file -> the packages it star-imports relatively
    pending = {path, *sources.old_python_reading_attribute(name)}
    done: set[str] = set()
    while pending:
        file = min(pending)
        pending.discard(file)
        done.add(file)
        tree = _old_tree(sources, file, trees)
        if tree is None:
            return f"{file} is not valid Python"
        uses = name_uses(tree, name, constant.lines if file == path else None)
        if uses.opaque is not None:
            return f"{file}: {uses.opaque}"
        scopes_of_file = scopes.function_scopes(tree)
        readers += [Reader(file, q, scopes_of_file[q].body) for q in sorted(uses.functions)]
        if uses.at_import:
            at_import.append(file)
        if uses.holds and file != path:
            holders.append(file)
        stars[file] = {_package_init(file, level) for level in uses.star_levels}
        while promoted := _star_importers(stars, holders):
            holders += promoted
        for holder in holders:
            if holder not in searched:
                searched.add(holder)
                pending |= sources.old_python_mentioning_all([name, module_word(holder)]) - done
    why = _closed_namespaces(holders, name, sources, trees=trees, may_run=may_run)
    if why is not None:
        return why
    if constant.function:  # every call runs the function with its new defaults
        readers.append(Reader(path, name, scopes.function_scopes(defining)[name].body))
    return Readers(tuple(readers), tuple(at_import))


def _closed_namespaces(
    holders: list[str],
    name: str,
    sources: Sources,
    *,
    trees: dict[str, ast.Module],
    may_run: Callable[[str], bool],
) -> str | None:
    """Why a module holding the constant may be read by computed names, or None."""
    for holder in holders[1:]:  # the defining module was checked by scopes
        if scopes.reads_namespace(trees[holder]):
            return f"{holder} reads its namespace by computed name"
    words = sorted({module_word(holder) for holder in holders})
    mentioning = sources.old_python_mentioning(words)
    for word in words:
        for file in sorted(mentioning[word]):  # a file that never writes the word cannot escape
            tree = _old_tree(sources, file, trees)
            if tree is None:
                return f"{file} is not valid Python"
            why = module_escapes(tree, word)
            if why is not None:
                return f"{file}: {why}"
    named = sorted({*words, name})
    for file in sorted(sources.files_mentioning(named)):
        if not file.endswith(_SOURCE_SUFFIXES) and may_run(file):
            return f"{file} names {' or '.join(named)}"
    return None


def _star_importers(stars: dict[str, set[str]], holders: list[str]) -> list[str]:
    """The files, not yet holders, that star-import a holding package (`from . import *`)."""
    holding = set(holders)
    return [file for file, packages in stars.items() if file not in holding and packages & holding]


def _package_init(path: str, level: int) -> str:
    """The `__init__.py` that a relative import of `level` in `path` names (`.` is 1)."""
    folder = PurePosixPath(path).parent
    for _ in range(level - 1):
        folder = folder.parent
    return (folder / "__init__.py").as_posix()


def _old_tree(sources: Sources, path: str, trees: dict[str, ast.Module]) -> ast.Module | None:
    """The parsed map-commit version of `path`, parsed once."""
    if path not in trees:
        source = sources.old(path)
        tree = None if source is None else scopes.parse(source, path)
        if tree is None:
            return None
        trees[path] = tree
    return trees[path]


# Hypothesis mines nothing from a file larger than this, or with more literals than the
# other limit (depending on their order): past either, a change may change what it mines.
_MINED_BYTES = 512 * 1024
_MINED_LITERALS = 1024
Literal = tuple[str, str, str]  # where it stands, its type, its repr


def mined_literals_differ(
    old: bytes, new: bytes, old_tree: ast.Module, new_tree: ast.Module
) -> bool:
    """Whether the literals Hypothesis mines from a module for `@given` tests may differ.

    Hypothesis draws test data from the literals of every local module (its
    `constants_from_module`): constants outside expression statements and f-strings, a
    negated number as the negative. The literals here are a superset of those, each with
    where it stands, so that the same set means the same mined set whatever Hypothesis
    keeps of each kind; only docstrings are left out.
    """
    if max(len(old), len(new)) > _MINED_BYTES:
        return True
    before, after = _literals(old_tree), _literals(new_tree)
    return before != after or len(before) >= _MINED_LITERALS


def _literals(tree: ast.Module) -> frozenset[Literal]:
    """Every constant of `tree` but docstrings, with where it stands (see above)."""
    docstrings = {
        id(body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and (body := node.body)
        and isinstance(body[0], ast.Expr)
    }
    formatted = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for inner in ast.walk(node)
    }
    literals: set[Literal] = set()
    for node, parent in _with_parents(tree):
        if not isinstance(node, ast.Constant) or id(node) in docstrings:
            continue
        if id(node) in formatted:
            where = "f-string"
        elif isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub):
            where = "negated"
        elif isinstance(parent, ast.Expr):
            where = "statement"
        else:
            where = "value"
        literals.add((where, type(node.value).__name__, repr(node.value)))
    return frozenset(literals)


def imports_differ(old_tree: ast.Module, new_tree: ast.Module) -> bool:
    """Whether the modules a file imports may differ: its import statements, anywhere, and
    its calls of `import_module` and `__import__`.

    Hypothesis mines the literals of every local module that is imported when it looks
    (`mined_literals_differ`): what a file imports changes that pool for every `@given`
    test, whether or not Hypothesis read the file itself (a test file, say).
    """
    return _imports(old_tree) != _imports(new_tree)


def _imports(tree: ast.Module) -> list[str]:
    return sorted(
        ast.dump(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        or (isinstance(node, ast.Call) and _called_name(node.func) in _IMPORTERS)
    )


_IMPORTERS = frozenset({"import_module", "__import__"})


def _called_name(function: ast.expr) -> str:
    if isinstance(function, ast.Attribute):
        return function.attr
    return function.id if isinstance(function, ast.Name) else ""
