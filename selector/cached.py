"""Cached results: the tests that may use a changed function's result without running it.

A function whose result is kept across tests (`functools.cache`, a memoised module global,
a class-level cache, a lazily built singleton) runs in the first test that needs it; later
tests get the kept value and record none of the function's lines. Selecting only the tests
that ran a changed function would miss them.

The rule: a test that ran a function G also depends on every function F that G mentions
and that did not run in the test (a cache may have skipped it), transitively. Seen from a
changed F, the tests to add are those that ran any function that mentions F, directly or
through a chain of functions that mention one another. Every function of such a chain
must have run in some recorded test, F included: a function that never ran has no kept
result to hand on, and a test that ran G got its value through G.

Mentions are names as the syntax tree has them, unresolved (`scopes.function_references`):
a name, an attribute or a string equal to F's name anywhere in G's definition. A method
named like a dunder (`__init__`, `__call__`, `__getitem__`, ...) is called implicitly
through its class, so mentioning the class, or a class that inherits from it (by base
name), counts as mentioning the method.

What it costs: a test that ran G on a branch that does not call F is selected too when F
changes, as is a test that ran a function mentioning an unrelated F of the same name.
`bench/selection.py` measures it on a real suite. Residual assumption: code that reaches
a kept result without naming what computed it (`getattr(obj, "prefix_" + name)`) is not
seen, as for the other static rules.
"""

from collections import deque
from dataclasses import dataclass
from typing import Protocol

from selector import scopes
from selector.mapdb import MapIndex


class OldSources(Protocol):
    """The map commit's side of the change."""

    def old(self, path: str) -> bytes | None:
        """Content of `path` at the map's commit."""

    def old_mentioning(self, word: str) -> set[str]:
        """Files of the map's commit in which `word` occurs as a whole word."""


@dataclass(frozen=True)
class _Parsed:
    """What the rule needs of one file: function spans, mentions, class bases."""

    functions: dict[str, scopes.FunctionScope]
    mentions: dict[str, set[str]]
    bases: dict[str, set[str]]


@dataclass(frozen=True)
class Caller:
    """A function that ran in recorded tests and mentions a changed function (or a caller)."""

    path: str
    qualname: str
    mentions: str  # the name it mentions
    tests: frozenset[str]


class CachedCallers:
    """Finds callers through the map commit's sources, parsing each file at most once."""

    def __init__(self, index: MapIndex, sources: OldSources) -> None:
        self._index = index
        self._sources = sources
        self._python = {path for path in index.blobs if path.endswith(".py")}
        self._files: dict[str, _Parsed | None] = {}
        self._mentioning: dict[str, set[str]] = {}

    def of(self, path: str, qualname: str) -> list[Caller]:
        """Functions that ran in recorded tests and mention the function, transitively.

        Nearest first (breadth first), so a test's first reason names its nearest caller.
        """
        found: dict[tuple[str, str], Caller] = {}
        done: set[str] = set()
        pending = deque(self._names(qualname))
        while pending:
            name = pending.popleft()
            if name in done:
                continue
            done.add(name)
            for caller in self._mentioning_functions(name):
                key = (caller.path, caller.qualname)
                if key != (path, qualname) and key not in found:
                    found[key] = caller
                    pending.extend(self._names(caller.qualname))
        return list(found.values())

    def _mentioning_functions(self, name: str) -> list[Caller]:
        """The functions that mention `name` and ran in some recorded test."""
        callers = []
        for path in sorted(self._files_mentioning(name)):
            parsed = self._parse(path)
            if parsed is None:
                continue
            for qualname, mentions in parsed.mentions.items():
                if name not in mentions:
                    continue
                first, last = parsed.functions[qualname].body
                tests = self._index.tests_running(path, range(first, last + 1))
                if tests:
                    callers.append(Caller(path, qualname, name, frozenset(tests)))
        return callers

    def _names(self, qualname: str) -> list[str]:
        """The names by which code calls the function `qualname`."""
        parts = qualname.split(".")
        name = parts[-1]
        if len(parts) < 2 or not (name.startswith("__") and name.endswith("__")):
            return [name]
        return sorted(self._subclasses(parts[-2]))

    def _subclasses(self, name: str) -> set[str]:
        """The class `name` and every recorded class that inherits from it, by base name."""
        found = {name}
        pending = [name]
        while pending:
            base = pending.pop()
            for path in self._files_mentioning(base):
                parsed = self._parse(path)
                if parsed is None:
                    continue
                for subclass, bases in parsed.bases.items():
                    if base in bases and subclass not in found:
                        found.add(subclass)
                        pending.append(subclass)
        return found

    def _files_mentioning(self, name: str) -> set[str]:
        """Recorded Python files of the map's commit that mention `name` (one git grep)."""
        if name not in self._mentioning:
            self._mentioning[name] = self._sources.old_mentioning(name) & self._python
        return self._mentioning[name]

    def _parse(self, path: str) -> _Parsed | None:
        if path not in self._files:
            source = self._sources.old(path)
            tree = None if source is None else scopes.parse(source, path)
            self._files[path] = (
                None
                if tree is None
                else _Parsed(
                    scopes.function_scopes(tree),
                    scopes.function_references(tree),
                    scopes.class_bases(tree),
                )
            )
        return self._files[path]
