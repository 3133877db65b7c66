"""Cached results: the tests that may use a changed function's result without running it.

A function whose result is kept across tests (`functools.cache`, a memoised module global,
a class-level cache, a lazily built singleton) runs in the first test that needs it; later
tests get the kept value and record none of the function's lines. Selecting only the tests
that ran a changed function would miss them.

The rule: a test that ran a function G also depends on every function F that G calls (or
hands to a call: `partial(f)`, `map(f, xs)`, a decorator) and that did not run in the test,
since a cache may have skipped it; transitively. Seen from a changed F, the tests to add
are those that ran a function calling F, directly or through a chain of such functions.
What keeps it from selecting everything:

* a caller's tests are added only where a result can outlive a test on its way to them
  (flows.py): the function it calls has a decorator that may cache, or the caller may
  write what that function returned into a store (a module global, a closure cell, a
  class attribute, a mutable default, an object that is not its own new one), or hands
  it to code the analysis does not follow. The chain is still followed through every
  caller, since a store further up may keep what one without a store returned;
* every function of a chain, F included, must have run in some recorded test: one that
  never ran has no kept result to hand on;
* storing a function is not calling it (`registry[key] = f`): whoever calls it later runs
  it, and records it then (`scopes.Mentions`);
* names are resolved as far as imports can say, leaving out only what certainly names
  something else. A module-level `f` of module M is called as `f` in M; elsewhere through
  a name imported from M (any alias, re-exports, star imports), as `m.f` where `m` is M
  imported as a module, and as `x.f` where `x` is anything that is not a module. A name
  `f` a module defines itself, or imports from a module with its own `f`, and
  `other_module.f`, are something else. A method `m` is called as `x.m` on anything that
  is not a module, or merely read if it is decorated (a property). `__init__`, `__new__`
  and the other methods that run while an object is made are called through their class
  or a class inheriting from it; other dunders run where the object is used, in the test;
* a context that ran entirely before its process's first test (`Context.early`: imports
  during collection) cannot hold a result computed in a test: G's runs there count only
  if F (or, up a chain, the function G calls) ran that early too.

What it costs: a test that ran a keeping G on a branch that does not call F is selected
too, and `x.m()` may be any class's `m`. `bench/selection.py` measures it on a real suite.
Residual assumptions, as for the other static rules: code that reaches a kept result
without naming what computed it (`getattr(obj, "prefix_" + name)`, a value another test's
call left in a global that this test reads directly) is not seen.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath
from typing import Protocol

from selector import codeindex, scopes
from selector.codeindex import CodeIndex
from selector.mapdb import MapIndex

# Methods that run when an object or class is made: naming the class calls them.
_CONSTRUCTION = frozenset(
    {"__init__", "__new__", "__post_init__", "__init_subclass__", "__set_name__"}
    | {"__class_getitem__", "__attrs_pre_init__", "__attrs_post_init__"}
)
_MAX_DEPTH = 8  # re-exports followed before a name counts as possibly anything


class OldSources(Protocol):
    """The map commit's side of the change."""

    def old(self, path: str) -> bytes | None:
        """Content of `path` at the map's commit."""

    def old_python_mentioning(self, words: Iterable[str]) -> dict[str, set[str]]:
        """For each word, the Python files of the map's commit that hold it as a word."""

    def old_blobs(self) -> dict[str, str]:
        """Blob id of every file at the map's commit."""


@dataclass(frozen=True)
class Caller:
    """A function that ran in recorded tests and names a changed function (or a caller)."""

    path: str
    qualname: str
    mentions: str  # the name it mentions
    body: range
    early_counts: bool  # what it ran in early contexts counts (see _Target.ran_early)
    keeps: bool  # a result of what it mentions may reach a later test through it (flows.py)


@dataclass(frozen=True)
class Reach:
    """The callers of a changed function through which a result may be kept, nearest first,
    and the tests that ran them."""

    callers: list[Caller]
    tests: set[str]


@dataclass(frozen=True)
class _Target:
    """What to look for: a module-level name of `path`, or a method or nested function.

    `ran_early`: the function it stands for ran in an early context (before the first test
    of a process), so even early contexts may hold a kept result of it. Otherwise only what
    ran after the first test started can have. `cached`: a decorator of it (or of its class,
    for construction) may keep its results, so a caller may get one without running it.
    """

    path: str
    name: str
    module_level: bool
    ran_early: bool
    accessed: bool = False  # a decorated method (a property, say): reading it runs it
    cached: bool = True


@dataclass
class _Search:
    """The search for one changed function's callers, level by level."""

    function: tuple[str, str]
    frontier: list[_Target]
    done: set[_Target] = field(default_factory=set)
    found: dict[tuple[str, str], Caller] = field(default_factory=dict)


class _Ambiguous:
    """A module name that several project files could be."""


AMBIGUOUS = _Ambiguous()


class CachedCallers:
    """Finds callers through the map commit's sources, parsing each file at most once."""

    def __init__(self, index: MapIndex, sources: OldSources) -> None:
        self._index = index
        self._sources = sources
        self._python = {path for path in index.blobs if path.endswith(".py")}
        self._files: dict[str, CodeIndex | None] = {}
        self._mentioning: dict[str, set[str]] = {}
        self._modules: dict[str, str | _Ambiguous | None] = {}
        self._ran: dict[str, tuple[set[int], set[int]]] = {}
        self._local: dict[tuple[str, _Target], set[str]] = {}
        self._module_cache: dict[tuple[str, str], str | _Ambiguous | None] = {}
        self._bound: dict[tuple[str, str, str, str], bool] = {}
        self._by_stem: dict[str, set[str]] = {}  # module name -> files it could be
        self._indexed = index.indexed_files()
        if index.meta.dirty:  # recorded content may not be the commit's: index only what is
            committed = sources.old_blobs()
            self._indexed = {p for p in self._indexed if committed.get(p) == index.blobs.get(p)}

    def reaches(self, functions: list[tuple[str, str]]) -> list[Reach]:
        """For each (path, qualname): the functions that call it, transitively, and the
        tests that ran them.

        Breadth first and level by level for all of them at once, so each level costs one
        `git grep`; callers come nearest first.
        """
        searches = [_Search(function, self._start(*function)) for function in functions]
        while any(search.frontier for search in searches):
            self._prefetch(
                {target.name for search in searches for target in search.frontier}
                - self._mentioning.keys()
            )
            for search in searches:
                search.frontier = self._advance(search)
        return [self._reach(list(search.found.values())) for search in searches]

    def _start(self, path: str, qualname: str) -> list[_Target]:
        parsed = self._parse(path)
        if parsed is None or qualname not in parsed.functions:
            return []
        first, last = parsed.functions[qualname]
        early, _late = self._lines_run(path)
        return self._targets(path, qualname, not early.isdisjoint(range(first, last + 1)))

    def _advance(self, search: _Search) -> list[_Target]:
        """One level of the search: the callers of its frontier, and what to look for next."""
        following: list[_Target] = []
        for target in search.frontier:
            if target in search.done:
                continue
            search.done.add(target)
            for caller in self._naming(target):
                key = (caller.path, caller.qualname)
                if key != search.function and key not in search.found:
                    search.found[key] = caller
                    following += self._targets(caller.path, caller.qualname, caller.early_counts)
        return following

    def _reach(self, callers: list[Caller]) -> Reach:
        callers = [caller for caller in callers if caller.keeps]
        tests = set[str]()
        for early_counts in (True, False):
            spans = [(c.path, c.body) for c in callers if c.early_counts == early_counts]
            if spans:
                tests |= self._index.tests_running_any(spans, early_contexts=early_counts)
        return Reach(callers, tests)

    # -- what to look for -------------------------------------------------------------

    def _targets(self, path: str, qualname: str, ran_early: bool) -> list[_Target]:
        """The names through which code calls the function `qualname` of `path`."""
        parsed = self._parse(path)
        if parsed is not None and qualname in parsed.fixtures:
            return []  # pytest calls it, no code does; the wide-fixture rule covers its value
        owner, _, name = qualname.rpartition(".")
        cached = _caches(parsed, qualname)
        if not owner:
            return [_Target(path, name, module_level=True, ran_early=ran_early, cached=cached)]
        if parsed is None or owner not in parsed.classes:  # a nested function: be broad
            return [_Target(path, name, module_level=False, ran_early=ran_early, cached=cached)]
        if name in _CONSTRUCTION:
            return self._classes(path, owner, ran_early)
        if name.startswith("__") and name.endswith("__"):
            return []  # called implicitly where an object is used: in the test itself
        accessed = qualname in parsed.calls.decorated
        return [_Target(path, name, False, ran_early, accessed=accessed, cached=cached)]

    def _classes(self, path: str, qualname: str, ran_early: bool) -> list[_Target]:
        """A class and every class that inherits from it, as the names that make them.

        Making one may keep a result where a decorator of the class or of a base may.
        """
        cached = _caches(self._parse(path), qualname)
        if "." in qualname:  # a nested class: reached through its outer class's name
            name = qualname.rpartition(".")[2]
            return [_Target(path, name, False, ran_early, cached=cached)]
        found = [_Target(path, qualname, module_level=True, ran_early=ran_early, cached=cached)]
        seen = set(found)
        pending = list(found)
        while pending:
            base = pending.pop()
            self._prefetch({base.name})
            for other in self._mentioning[base.name]:
                parsed = self._parse(other)
                if parsed is None:
                    continue
                for name, bases in parsed.bindings.classes.items():
                    module_level = name in parsed.bindings.defined
                    cached = base.cached or _caches(parsed, name)
                    subclass = _Target(other, name, module_level, ran_early, cached=cached)
                    if subclass not in seen and self._names(other, bases, base):
                        seen.add(subclass)
                        found.append(subclass)
                        pending.append(subclass)
        return found

    # -- who names it -----------------------------------------------------------------

    def _naming(self, target: _Target) -> Iterator[Caller]:
        """The functions that call `target` and ran where a kept result could serve them."""
        for path in sorted(self._mentioning[target.name]):
            parsed = self._parse(path)
            if parsed is None:
                continue
            early, late = self._lines_run(path)
            for qualname in sorted(self._calling(path, parsed.calls, target)):
                span = parsed.functions.get(qualname)
                if span is None:
                    continue  # module-level code: no function, its import context ran it
                body = range(span[0], span[1] + 1)
                ran_early = target.ran_early and not early.isdisjoint(body)
                if ran_early or not late.isdisjoint(body):
                    keeps = target.cached or self._keeps(path, parsed, qualname, target)
                    yield Caller(path, qualname, target.name, body, ran_early, keeps)

    def _keeps(self, path: str, parsed: CodeIndex, qualname: str, target: _Target) -> bool:
        """Whether function `qualname` of `path` may keep a result of `target` (flows.py).

        A target it names in a string (`getattr(x, "f")()`) is followed no further.
        """
        kept = None if parsed.kept is None else parsed.kept.get(qualname)
        if kept is None or qualname in parsed.calls.strings.get(target.name, ()):
            return True
        names = {target.name}
        if target.module_level:
            names |= self._local_names(path, target)
        return not kept.isdisjoint(names)

    def _calling(self, path: str, calls: scopes.CallIndex, target: _Target) -> set[str]:
        """Qualnames of the functions of `path` that may call `target`."""
        found = set(calls.strings.get(target.name, ()))
        if target.module_level:
            for local in self._local_names(path, target):
                found.update(calls.names.get(local, ()))
        elif path == target.path:
            found.update(calls.names.get(target.name, ()))  # a nested function
        attributes = calls.read if target.accessed else calls.attributes
        for qualname, base in attributes.get(target.name, ()):
            if qualname not in found and self._attribute_names(path, base, target):
                found.add(qualname)
        return found

    def _names(self, path: str, mentions: scopes.Mentions, target: _Target) -> bool:
        """Whether code of `path` that names `mentions` (a class's bases) may name `target`."""
        if target.module_level:
            if not mentions.names.isdisjoint(self._local_names(path, target)):
                return True
        elif path == target.path and target.name in mentions.names:
            return True
        return any(
            self._attribute_names(path, base, target)
            for base, attribute in mentions.attributes
            if attribute == target.name
        )

    def _local_names(self, path: str, target: _Target) -> set[str]:
        """The global names of module `path` that may be the module-level `target`."""
        key = (path, target)
        if key not in self._local:
            self._local[key] = self._find_local_names(path, target)
        return self._local[key]

    def _find_local_names(self, path: str, target: _Target) -> set[str]:
        parsed = self._parse(path)
        if parsed is None:
            return {target.name}
        names = {target.name} if self._binds(path, target.name, target, 0) else set()
        for local, sources in parsed.bindings.imported.items():
            if any(self._imports(path, source, target, 0) for source in sources):
                names.add(local)
        return names

    def _attribute_names(self, path: str, base: str, target: _Target) -> bool:
        """Whether `base.<name>` in `path` may be `target`: yes unless `base` is a module."""
        module = self._module_of(path, base)
        if module is None or isinstance(module, _Ambiguous):
            return True  # an object may hold anything; so may any of several modules
        if not module:
            return False  # a module from outside the project
        return target.module_level and self._binds(module, target.name, target, 0)

    def _binds(self, path: str, name: str, target: _Target, depth: int) -> bool:
        """Whether the global `name` of module `path` may be the module-level `target`."""
        if path == target.path:
            return name == target.name
        key = (path, name, target.path, target.name)
        if key not in self._bound:
            self._bound[key] = False  # while it is found out: a cycle of imports binds nothing
            self._bound[key] = self._find_binding(path, name, target, depth)
        return self._bound[key]

    def _find_binding(self, path: str, name: str, target: _Target, depth: int) -> bool:
        parsed = self._parse(path)
        if parsed is None or depth > _MAX_DEPTH:
            return True
        bindings = parsed.bindings
        sources = bindings.imported.get(name, ())
        if any(self._imports(path, source, target, depth) for source in sources):
            return True
        if name in bindings.defined:
            return False  # its own (a later import of the name was checked above)
        return any(
            self._imports(path, replace(star, name=name), target, depth) for star in bindings.star
        )

    def _imports(self, path: str, source: scopes.ImportedName, target: _Target, depth: int) -> bool:
        """Whether `from <source.module> import <source.name>` in `path` may bind `target`.

        A submodule of that name is a module, never the function.
        """
        submodule = self._resolve(path, _join(source.module, source.name), source.level)
        if isinstance(submodule, str):
            return False
        module = self._resolve(path, source.module, source.level)
        if isinstance(module, _Ambiguous):
            return True
        if module is None or module == path:
            return False
        return self._binds(module, source.name, target, depth + 1)

    # -- modules ----------------------------------------------------------------------

    def _module_of(self, path: str, dotted: str) -> str | _Ambiguous | None:
        """The module that `dotted` is in `path`: a project file, "" for a module from
        outside the project, or None when it is no module (an object, a parameter, self)."""
        key = (path, dotted)
        if key not in self._module_cache:
            self._module_cache[key] = self._find_module(path, dotted)
        return self._module_cache[key]

    def _find_module(self, path: str, dotted: str) -> str | _Ambiguous | None:
        first, _, rest = dotted.partition(".")
        parsed = self._parse(path)
        if not first or parsed is None:
            return None
        bindings = parsed.bindings
        for module in bindings.modules.get(first, ()):
            found = self._resolve(path, _join(module, rest), 0)
            if found is not None:
                return found
            return None if self._resolve(path, module, 0) else ""  # a.Class: an object
        for source in bindings.imported.get(first, ()):
            dotted_module = _join(_join(source.module, source.name), rest)
            found = self._resolve(path, dotted_module, source.level)
            if found is not None:
                return found
            if source.level == 0 and not self._resolve(path, source.module, 0):
                return ""  # from a module outside the project
        return None

    def _resolve(self, path: str, module: str, level: int) -> str | _Ambiguous | None:
        """The project file of `module`, imported from `path` (relative when `level`)."""
        if level:
            folder = PurePosixPath(path).parent
            for _ in range(level - 1):
                folder = folder.parent
            relative = folder.joinpath(*module.split(".")) if module else folder
            return _first_existing(self._python, relative.as_posix())
        key = module
        if key not in self._modules:
            self._modules[key] = self._by_suffix(module)
        return self._modules[key]

    def _by_suffix(self, module: str) -> str | _Ambiguous | None:
        """Files whose path ends like the module (src layouts need no sys.path)."""
        if not module:
            return None
        if not self._by_stem:
            for path in self._python:
                stem = path.removesuffix(".py").removesuffix("/__init__")
                parts = stem.split("/")
                for start in range(len(parts)):
                    self._by_stem.setdefault(".".join(parts[start:]), set()).add(path)
        found = self._by_stem.get(module, set())
        if len(found) > 1:
            return AMBIGUOUS
        return next(iter(found)) if found else None

    # -- files ------------------------------------------------------------------------

    def _prefetch(self, names: set[str]) -> None:
        """Which recorded Python files mention each of `names`: one lookup for all.

        The map's code index answers when it covers every recorded Python file as the
        map's commit has it; otherwise one `git grep` does.
        """
        missing = names - self._mentioning.keys()
        if not missing:
            return
        if self._python <= self._indexed:
            found = self._index.files_naming(missing)
        else:
            found = self._sources.old_python_mentioning(missing)
        for name, files in found.items():
            self._mentioning[name] = files & self._python

    def _lines_run(self, path: str) -> tuple[set[int], set[int]]:
        """Lines of `path` that ran in early contexts, and in the others."""
        if path not in self._ran:
            self._ran[path] = self._index.lines_run(path)
        return self._ran[path]

    def _parse(self, path: str) -> CodeIndex | None:
        """The file's code index: the map's if it describes the map commit's content."""
        if path not in self._files:
            stored = self._index.code(path) if path in self._indexed else None
            if stored is not None:
                self._files[path] = codeindex.load(stored)
            else:
                source = self._sources.old(path)
                tree = None if source is None else scopes.parse(source, path)
                self._files[path] = None if tree is None else codeindex.build(tree)
        return self._files[path]


def _caches(parsed: CodeIndex | None, qualname: str) -> bool:
    """Whether a decorator of the function or class `qualname` may keep its results."""
    return parsed is None or parsed.caching is None or qualname in parsed.caching


def _join(first: str, second: str) -> str:
    return f"{first}.{second}" if first and second else first or second


def _first_existing(files: set[str], stem: str) -> str | None:
    for candidate in (f"{stem}.py", f"{stem}/__init__.py"):
        if candidate in files:
            return candidate
    return None
