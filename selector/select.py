"""From the changed files and a map to the tests the change can affect, with reasons.

The contract (README "How selection works"): a test whose outcome the change can alter is
selected; where the tool cannot decide, it runs everything and says why. Selected items are
node IDs without their parametrisation (`tests/test_a.py::test_x` runs every parameter of
`test_x`, whose ids may themselves depend on the change) or prefixes: a test file, or a
folder whose conftest.py changed.
"""

import ast
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Protocol

from selector import constants, scopes
from selector.cached import CachedCallers
from selector.config import Config
from selector.gitdiff import FileChange, Hunk
from selector.installed import OutsideInstall
from selector.mapdb import INCOMPLETE, MINED, SESSION, ContextKey, MapIndex
from selector.nodeids import covered, item_of, prefixes

_FAILED_OUTCOMES = ("failed", "error")
_REASONS_PER_ITEM = 5


class ChangeSources(Protocol):
    """File contents on both sides of the change, and repository-wide look-ups."""

    def old(self, path: str) -> bytes | None:
        """Content of `path` at the map's commit."""

    def new(self, path: str) -> bytes | None:
        """Content of `path` on the planned side (HEAD or the working tree)."""

    def files_mentioning(self, words: Iterable[str]) -> set[str]:
        """Every file on the planned side that holds one of `words` as a word."""

    def old_python_mentioning(self, words: Iterable[str]) -> dict[str, set[str]]:
        """For each word, the Python files of the map's commit that hold it as a word."""

    def old_python_mentioning_all(self, words: Iterable[str]) -> set[str]:
        """The Python files of the map's commit that hold every one of `words` as a word."""

    def old_python_reading_attribute(self, name: str) -> set[str]:
        """Python files of the map's commit where `name` follows a dot or is a quoted string,
        or that star-import a package relatively (`from . import *`)."""

    def old_blobs(self) -> dict[str, str]:
        """Blob id of every file at the map's commit."""

    def test_files(self) -> list[str]:
        """Files on the planned side that pytest collects tests from."""


@dataclass
class Selection:
    """What to run and why."""

    run_all_reasons: list[str] = field(default_factory=list)
    items: dict[str, list[str]] = field(default_factory=dict)  # item -> reasons
    uncovered: list[str] = field(default_factory=list)
    removed: set[str] = field(default_factory=set)  # recorded tests that no longer exist
    changed_files: list[str] = field(default_factory=list)
    over_fraction: bool = False  # everything runs only because `items` exceed max_fraction
    map_tests: int = 0  # tests in a map that planning read but could not use

    @property
    def run_all(self) -> bool:
        """Whether everything must run."""
        return bool(self.run_all_reasons)


class Selector:
    """Applies the selection rules to one change against one map."""

    def __init__(
        self,
        index: MapIndex,
        config: Config,
        sources: ChangeSources,
        is_test_file: Callable[[str], bool],
    ) -> None:
        self._index = index
        self._config = config
        self._sources = sources
        self._is_test_file = is_test_file
        self._selection = Selection()
        self._tests_by_file: dict[str, list[str]] = {}
        for nodeid, test in index.tests.items():
            if test.path is not None:
                self._tests_by_file.setdefault(test.path, []).append(nodeid)
        # Changed test files: the old and the new syntax tree (None: not valid Python).
        self._changed_test_files: dict[str, tuple[ast.Module | None, ast.Module | None]] = {}
        self._gone_files: set[str] = set()
        self._callers = CachedCallers(index, sources)
        self._given_tests = index.tests_including(*MINED)  # they draw Hypothesis's mined data
        # Changed functions that ran: (path, qualname, tests that ran it, reason).
        self._ran_changed: list[tuple[str, str, set[str], str]] = []

    def select(self, changes: Iterable[FileChange]) -> Selection:
        """Every rule, in order; the result lists items, reasons and uncovered changes."""
        changed: set[str] = set()
        for change in changes:
            changed.update(path for path in (change.old_path, change.new_path) if path)
            self._file_change(change)
        self._selection.changed_files = sorted(changed)
        self._cached_results()
        if changed:
            self._incomplete_child_data()
        if self._index.meta.dirty:
            self._recorded_from_uncommitted_files()
        self._always_selected()
        self._drop_removed_tests()
        self._collapse_covered_items()
        self._check_fraction()
        return self._selection

    # -- recording the outcome ----------------------------------------------------------

    def _select(self, nodeids: Iterable[str], reason: str) -> None:
        for nodeid in nodeids:
            self._select_item(item_of(nodeid), reason)

    def _select_item(self, item: str, reason: str) -> None:
        reasons = self._selection.items.setdefault(item, [])
        if reason not in reasons and len(reasons) < _REASONS_PER_ITEM:
            reasons.append(reason)

    def _run_all(self, reason: str) -> None:
        if reason not in self._selection.run_all_reasons:
            self._selection.run_all_reasons.append(reason)

    # -- per changed file ---------------------------------------------------------------

    def _file_change(self, change: FileChange) -> None:
        paths = [path for path in (change.old_path, change.new_path) if path is not None]
        for path in paths:
            stale = self._stale_install(path)
            if stale is not None:
                self._run_all(
                    f"{path} changed, and the recorded run imported {stale.distribution} from "
                    f"an installed copy at {stale.location} that differs from the checkout, so "
                    "the map does not know which tests run it: record with the package "
                    "installed editable (`pip install -e .`) or freshly reinstalled"
                )
                return
            if self._config.is_run_all(path):
                self._run_all(f"{path} changed, and it is a run-all file (dependencies, config)")
                return
            for target in self._config.dependent_tests(path):
                self._select_item(target.rstrip("/"), f"{path} changed (configured dependency)")
        if change.submodule:
            self._unknown_change(paths, "submodule")
        elif change.old_path is not None and change.old_path.endswith(".py"):
            self._python_change(change)
        elif change.new_path is not None and change.new_path.endswith(".py"):
            self._added_python(change.new_path)
        else:
            self._other_change(change, paths)

    def _stale_install(self, path: str) -> OutsideInstall | None:
        """The stale installed distribution the recorded run imported `path`'s code from."""
        for install in self._index.meta.outside:
            for source in install.sources:
                if path == source or (source.endswith("/") and path.startswith(source)):
                    return install
        return None

    def _python_change(self, change: FileChange) -> None:
        old_path = change.old_path
        assert old_path is not None
        new_path = change.new_path
        if change.status == "copied" and new_path is not None:
            self._added_python(new_path)
        elif change.status == "modified" and not change.mode_only:
            self._modified_python(old_path, change.hunks)
        elif change.status == "modified":
            self._whole_file(old_path, f"{old_path}: file mode changed")
        else:
            self._gone_files.add(old_path)
            what = "deleted" if new_path is None else f"moved to {new_path}"
            self._whole_file(old_path, f"{old_path} {what}")
            if new_path is not None and new_path.endswith(".py"):
                self._added_python(new_path)
            elif new_path is not None:
                self._other_change(change, [new_path])

    def _whole_file(self, path: str, reason: str, *, mined: bool = True) -> None:
        """Rule 2 for the whole file: everything that ran, imported or read it.

        Without `mined`, Hypothesis's mining of its literals does not count: the file's
        literals are as they were, or `_source_readers` compared them.
        """
        index = self._index
        self._select(index.tests_running(path), reason)
        self._select(index.tests_including("import", path), reason)
        readers = index.contexts_reading(path)
        self._select(index.tests_including_any(readers if mined else readers - {MINED}), reason)
        if path not in self._gone_files and (
            path in self._tests_by_file or self._is_test_file(path)
        ):
            self._select_item(path, reason)
        if PurePosixPath(path).name == "conftest.py":
            folder = PurePosixPath(path).parent.as_posix()
            if folder == ".":
                self._run_all(f"{reason}: the root conftest.py applies to every test")
            else:
                self._select_item(folder, f"{reason}: conftest.py applies to {folder}/")

    def _modified_python(self, path: str, hunks: tuple[Hunk, ...]) -> None:
        old_source, new_source = self._sources.old(path), self._sources.new(path)
        old_tree = None if old_source is None else scopes.parse(old_source, path)
        new_tree = None if new_source is None else scopes.parse(new_source, path)
        if path in self._tests_by_file or self._is_test_file(path):
            self._changed_test_files[path] = (old_tree, new_tree)
        if old_source is None or new_source is None or old_tree is None or new_tree is None:
            self._whole_file(path, f"{path}: not valid Python on one side of the change")
            return
        read_as_text = self._source_readers(path, hunks)
        read_as_text |= self._mined(path, hunks, (old_source, new_source), (old_tree, new_tree))
        change = scopes.compare(old_tree, new_tree)
        if change.identical:
            return
        if change.module_changed:
            self._whole_file(path, f"{_where(path, hunks)} at module level", mined=False)
            return
        old_scopes = scopes.function_scopes(old_tree)
        for qualname in change.changed_functions:
            scope = old_scopes[qualname]
            first, last = scope.body
            reason = f"{_where(path, hunks, first, last)} in {qualname}"
            tests = self._index.tests_running(path, range(first, last + 1))
            if tests:
                self._select(tests, reason)
                self._ran_changed.append((path, qualname, tests, reason))
            else:
                self._selection.uncovered.append(f"{reason} (no recorded test runs it)")
        for added in change.added:
            self._added_definition(path, added)
        for constant in change.constants:
            self._changed_constant(path, hunks, constant, read_as_text=read_as_text)

    def _source_readers(self, path: str, hunks: tuple[Hunk, ...]) -> bool:
        """Tests that read a changed Python file's text depend on all of it, comments too.

        Importing reads it in the module's own import context, which this leaves out; what
        else read it (`inspect.getsource`, a test of source text, a tool that `exec`s it, a
        traceback) is selected whatever the change, even one to a comment. Returns whether
        anything did.
        """
        outside = self._index.contexts_reading(path) - _loading(path) - {MINED}
        self._select(
            self._index.tests_including_any(outside),
            f"{_where(path, hunks)} changed, and its text was read outside its import",
        )
        return bool(outside)

    def _mined(
        self,
        path: str,
        hunks: tuple[Hunk, ...],
        sources: tuple[bytes, bytes],
        trees: tuple[ast.Module, ast.Module],
    ) -> bool:
        """The `@given` tests, where the change may change the literals Hypothesis mines for
        their data: the file's own, if it read them (the map's `MINED` context), or the
        modules that are imported, wherever imports change. Returns whether it selected."""
        if not self._given_tests:
            return False
        where = _where(path, hunks)
        if MINED in self._index.contexts_reading(path) and constants.mined_literals_differ(
            *sources, *trees
        ):
            reason = f"{where} changed literals that Hypothesis mines for the data of @given tests"
        elif constants.imports_differ(*trees):
            reason = (
                f"{where} changed imports, and Hypothesis mines the literals of the modules "
                "imported for the data of @given tests"
            )
        else:
            return False
        self._select(self._given_tests, reason)
        return True

    def _changed_constant(
        self,
        path: str,
        hunks: tuple[Hunk, ...],
        constant: scopes.ChangedConstant,
        *,
        read_as_text: bool,
    ) -> None:
        """A literal that alone changed (a constant, or a function's default values): what
        reads its name (selector/constants.py), and for a function, what ran it.

        Code other than the module's import that ran the statement (`runpy`, a tool) did
        with the value what names nothing: the tests that include it are selected; those
        that read the file's text were (`_source_readers`).
        """
        first, last = constant.lines
        where = _where(path, hunks, first, last)
        readers = constants.find_readers(path, constant, self._sources, self._may_run)
        if isinstance(readers, str):
            reason = f"{where} at module level ({constant.name}: {readers})"
            self._whole_file(path, reason, mined=False)
            return
        reason = f"{where} {constant.what} changed"
        reached = bool(readers.at_import)
        for module in readers.at_import:
            self._whole_file(module, f"{reason}; {module} reads it at import time", mined=False)
        for reader in readers.functions:
            first, last = reader.body
            called = constant.function and (reader.path, reader.qualname) == (path, constant.name)
            verb = "runs with it" if called else "reads it"
            read = f"{reason}; {reader.qualname} ({reader.path}) {verb}"
            tests = self._index.tests_running(reader.path, range(first, last + 1))
            if tests:
                self._select(tests, read)
                self._ran_changed.append((reader.path, reader.qualname, tests, read))
                reached = True
        statement = range(constant.lines[0], constant.lines[1] + 1)
        outside = self._index.contexts_running(path, statement) - _loading(path)
        tests = self._index.tests_including_any(outside)
        self._select(tests, f"{reason}; {path} ran outside its import")
        if not (reached or tests or read_as_text):
            self._selection.uncovered.append(f"{reason} (no recorded test reads it)")

    def _may_run(self, path: str) -> bool:
        """Whether a file that is not Python source may take part in a test run."""
        return path in self._tests_by_file or not self._config.is_ignored(path)

    def _cached_results(self) -> None:
        """Tests that may use a cached result of a changed function without running it."""
        functions = [(path, qualname) for path, qualname, _tests, _reason in self._ran_changed]
        reaches = self._callers.reaches(functions)
        for (_path, _qualname, ran, reason), reach in zip(self._ran_changed, reaches, strict=True):
            more = reach.tests - ran
            if not more:
                continue
            nearest, others = reach.callers[0], len(reach.callers) - 1
            self._select(
                more,
                f"{reason}; its result may be cached for {nearest.qualname} ({nearest.path}), "
                f"which mentions {nearest.mentions}"
                + (f", and {others} more callers" if others else ""),
            )

    def _added_definition(self, path: str, added: scopes.NewDefinition) -> None:
        """A new inert top-level def/class: affects no existing test if its name is fresh."""
        first, last = added.lines
        where = f"{path}:{first}-{last}" if last > first else f"{path}:{first}"
        if self._sources.files_mentioning([added.name]) - {path}:
            self._whole_file(path, f"{where} new {added.name}, a name used in other files")
        elif self._is_test_file(path) and added.name.startswith(("test", "Test")):
            self._select_item(f"{path}::{added.name}", f"{where} new test {added.name}")
        elif path in self._tests_by_file:
            # The module itself holds tests (doctests): a new definition may be a new one.
            self._select_item(path, f"{where} new {added.name} in a module with tests")
        else:
            self._selection.uncovered.append(f"{where} new {added.name} (no test runs it yet)")

    def _added_python(self, path: str) -> None:
        name = PurePosixPath(path)
        if self._is_test_file(path):
            self._select_item(path, f"{path} is a new test file")
        elif name.name == "conftest.py":
            self._whole_file(path, f"{path} is a new conftest.py")
        elif name.name == "__init__.py":
            folder = name.parent.as_posix()
            reason = f"{path} is new: modules of {folder}/ now form a regular package"
            for recorded in self._index.blobs:
                if recorded.startswith(f"{folder}/") or folder == ".":
                    self._whole_file(recorded, reason)
        elif name.stem in sys.stdlib_module_names:
            self._run_all(f"{path} is new and may shadow the standard library module {name.stem}")
        else:
            self._selection.uncovered.append(f"{path} is a new module (no test runs it yet)")

    def _other_change(self, change: FileChange, paths: list[str]) -> None:
        """Rule 5: data files. Readers if any; else ignored, or unknown (everything)."""
        for path in paths:
            readers = self._index.tests_reading(path)
            if readers:
                self._select(readers, f"{path} changed (the test read it)")
            elif not self._config.is_ignored(path) and not self._config.dependent_tests(path):
                kind = "binary file" if change.binary else "file"
                self._unknown_change([path], kind)

    def _unknown_change(self, paths: list[str], kind: str) -> None:
        for path in paths:
            if self._config.is_ignored(path) or self._config.unknown_files == "ignore":
                continue
            self._run_all(
                f"{path} changed: a {kind} no recorded test read; list it under ignore or "
                "dependencies in [tool.selector] to narrow this"
            )

    # -- whole-map rules ----------------------------------------------------------------

    def _incomplete_child_data(self) -> None:
        """A test whose child processes may not have recorded everything depends on all files."""
        reason = "a child process of it may not have recorded every line (killed, or not Python)"
        self._select(self._index.tests_including(*INCOMPLETE), reason)

    def _recorded_from_uncommitted_files(self) -> None:
        """A map recorded from a dirty tree has lines of content no commit holds."""
        committed = self._sources.old_blobs()
        for path, blob in self._index.blobs.items():
            if blob is not None and committed.get(path) != blob:
                self._whole_file(path, f"{path} was recorded with uncommitted changes")

    def _always_selected(self) -> None:
        index, config = self._index, self._config
        for nodeid, test in index.tests.items():
            if test.outcome in _FAILED_OUTCOMES:
                self._select_item(item_of(nodeid), f"{test.outcome} when the map was recorded")
            markers = set(test.markers).intersection(config.always_run_markers)
            if markers:
                self._select_item(item_of(nodeid), f"marked {', '.join(sorted(markers))}")
        for item in config.always_run:
            self._select_item(item.rstrip("/"), "always_run in the configuration")
        for nodeid in index.collected.difference(index.tests):
            self._select_item(item_of(nodeid), "collected but not run when the map was recorded")
        collected_files = {nodeid.partition("::")[0] for nodeid in index.collected}
        for path in self._sources.test_files():
            if path not in self._tests_by_file and path not in collected_files:
                self._select_item(path, f"{path} has no recorded tests")

    def _drop_removed_tests(self) -> None:
        """Recorded tests that are certainly gone leave the plan: pytest errors on a node
        ID it cannot find. A test whose file may still define it stays, whatever selects it."""
        namespaces = {
            path: (_namespace(old), _namespace(new))
            for path, (old, new) in self._changed_test_files.items()
        }
        for path, nodeids in self._tests_by_file.items():
            for nodeid in nodeids:
                gone = path in self._gone_files or (
                    path in namespaces and _certainly_gone(item_of(nodeid), *namespaces[path])
                )
                if gone:
                    self._selection.removed.add(nodeid)
                    self._selection.items.pop(item_of(nodeid), None)

    def _collapse_covered_items(self) -> None:
        """An item inside a selected folder, file or class is run by it already."""
        items = self._selection.items
        for item in sorted(items, key=len, reverse=True):
            wider = next((p for p in prefixes(item) if p != item and p in items), None)
            if wider is not None:
                for reason in items.pop(item):
                    self._select_item(wider, reason)

    def _check_fraction(self) -> None:
        total = len(self._index.tests)
        if total == 0 or self._selection.run_all:
            return
        selected = len(covered(self._selection.items, self._index.tests))
        limit = self._config.max_fraction
        if selected / total > limit:
            self._selection.over_fraction = True
            self._run_all(
                f"{selected} of {total} recorded tests selected, above max_fraction {limit:g}"
            )


def _namespace(tree: ast.Module | None) -> scopes.Namespace | None:
    return None if tree is None else scopes.namespace(tree)


def _certainly_gone(item: str, old: scopes.Namespace | None, new: scopes.Namespace | None) -> bool:
    """Whether the test `item` of a changed test file can no longer be collected.

    Only a test whose own binding the old file has and the new one lacks, in a file that
    cannot bind names unseen (scopes.Namespace), is gone. A name no statement bound (an
    item a plugin makes for the file: pytest-mypy's `::mypy`) or that is no identifier (a
    doctest's `module.function`) says nothing: it stays.
    """
    parts = item.split("::")[1:]
    if old is None or new is None or not parts:
        return False
    if not all(part.isidentifier() for part in parts):
        return False
    return old.binds(parts) and new.certainly_unbound(parts)


def _loading(path: str) -> set[ContextKey]:
    """The contexts in which Python and pytest load `path` as a module.

    Its import; its collection, where pytest's assertion rewriting reads a test file before
    the import begins; and for a conftest.py the session, in which pytest imports it.
    """
    loading: set[ContextKey] = {("import", path), ("collect", path)}
    if PurePosixPath(path).name == "conftest.py":
        loading.add(SESSION)
    return loading


def _where(path: str, hunks: tuple[Hunk, ...], first: int = 0, last: int = sys.maxsize) -> str:
    """`path:lines`: the changed lines on the new side, of the hunks that touch old lines
    first..last; only `path` when no hunk does (the change is known from the syntax tree).

    A hunk that only inserts (`-5,0 +6,2`) lies between old lines 5 and 6, so it touches
    both: lines added at the top of a function's body are in that function.
    """
    spans = []
    for hunk in hunks:
        old_last = hunk.old_start + max(hunk.old_count, 1) - (1 if hunk.old_count else 0)
        if hunk.old_start > last or old_last < first:
            continue
        new_last = hunk.new_start + max(hunk.new_count, 1) - 1
        start = max(hunk.new_start, 1)
        spans.append(f"{start}" if new_last <= start else f"{start}-{new_last}")
    if not spans:
        return path
    return f"{path}:" + ",".join(spans[:4]) + (",..." if len(spans) > 4 else "")
