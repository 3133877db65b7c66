"""The recording plugin: attributes every executed line to the tests it matters to.

Per-test coverage alone misses what runs once per process. The recorder therefore keeps a
stack of *contexts* and tells the collector whenever the top changes:

* a test's setup, call and teardown run in its `test` context;
* the setup of a fixture wider than a function (and xunit `setup_module`/`setup_class`,
  which pytest runs as such fixtures) runs in a `fixture` context that every test using the
  fixture includes, not only the first one that triggered it;
* a module's first import runs in an `import` context (a meta path finder wraps the
  loader), which the importer includes; after the run, each module's import context
  also includes those of the project modules its source imports, so the second test
  module importing a module depends on its import-time code although `sys.modules` made
  the import free;
* collection of a node runs in a `collect` context that every test under it includes,
  and anything else (start-up, conftest hooks) in the `session` context every test
  includes;
* Python child processes started meanwhile record too (child.py, children.py): what a
  child runs belongs to the context that started it, a pool task's lines to the context
  that submitted it, and a context whose child data may lack lines includes `INCOMPLETE`.

Repository files opened for reading are recorded per context through an audit hook, except
where the code that reads them is known to serve other tests than the current context's:

* Hypothesis mines the literals of every local module for the data of its `@given` tests
  (in its `pytest_collection_modifyitems`, or when a test imports a new module): those
  reads are the `MINED` context's, which the tests marked `hypothesis` include;
* pytest renders a failure's traceback from source files after the outcome is decided:
  those reads belong to no context.

A test package's `__init__.py` that pytest imported itself, bypassing the import hook (as
the parent of a conftest.py it loads with `--import-mode=importlib`), ran in the session;
its module-level lines and its read become its import context, which the tests under its
folder include as they do their conftest.py files'.
"""

import ast
import os
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import pytest
from coverage.numbits import numbits_to_nums, nums_to_numbits

from selector import __version__, importhook, scopes, spawn
from selector.children import ChildData, ChildRun
from selector.collectors import ContextLines, LineCollector, TrackedFiles
from selector.gitdiff import blob_id
from selector.installed import OutsideInstall, outside_message
from selector.mapdb import (
    INCOMPLETE,
    MINED,
    SESSION,
    ContextKey,
    MapData,
    MapMeta,
    TestResult,
    write_map,
)
from selector.nodeids import counted, repository_nodeid
from selector.store import StoreError, ignore_workdir

_ACTIVE: "Recorder | None" = None
_FORK_HANDLER_INSTALLED = False
# A run that ran no test (all deselected, an empty shard) still has something to write: the
# node IDs it collected, from which upload-map carries the base map forward to this commit.
_WRITE_EXIT_CODES = (
    pytest.ExitCode.OK,
    pytest.ExitCode.TESTS_FAILED,
    pytest.ExitCode.NO_TESTS_COLLECTED,
)
# Modules outside the repository whose reads of repository files are not the current
# context's: Hypothesis's miner of literals, pytest's renderer of tracebacks.
_MINER = "hypothesis.internal.constants_ast"
_RENDERER = "_pytest._code.code"
_KNOWN_READERS = frozenset({_MINER, _RENDERER})


def _key(context: str) -> ContextKey:
    kind, _, name = context.partition(":")
    return kind, name


def _context(kind: str, name: str) -> str:
    return f"{kind}:{name}"


def _after_fork_in_child() -> None:
    """A fork of the recording pytest process becomes a recorded child."""
    recorder = _ACTIVE
    if recorder is not None:
        recorder.become_child()


@dataclass(frozen=True)
class RunInfo:
    """What the recorder needs to know about where it records."""

    commit: str | None
    dirty: bool
    variant: str
    fragment_dir: Path
    worker: str


class Recorder:
    """The pytest plugin object that records one run into one fragment."""

    def __init__(self, tracked: TrackedFiles, collector: LineCollector, run: RunInfo) -> None:
        self.tracked = tracked
        self._collector = collector
        self._run = run
        self._stack: list[str] = []
        self._includes: set[tuple[ContextKey, ContextKey]] = set()
        self._reads: dict[str, set[str]] = {}
        self._modules: dict[str, tuple[str, str | None]] = {}  # path -> (name, package)
        self._tests: dict[str, TestResult] = {}
        self._test_includes: dict[str, set[ContextKey]] = {}
        self._collected: list[str] = []
        self._nodeids: dict[str, str] = {}  # pytest's node ID -> the repository-relative one
        self._children: ChildRun | None = None
        self._incomplete: dict[str, str] = {}  # context -> why its child data may lack lines
        self._controller = False
        self._forked = False
        self._testing = False  # a test has started: contexts active from now on are late
        self._reporting = False  # a test phase's outcome is decided, its report being made
        self._early: set[str] = set()
        self._late: set[str] = set()
        self.message = ""
        self.notes: list[str] = []

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start collecting; from now on imports, opens, lines and children are attributed."""
        global _ACTIVE, _FORK_HANDLER_INSTALLED  # noqa: PLW0603 - one recorder per process
        self._note_imported_modules()
        self._stack = [_context(*SESSION)]
        self._children = ChildRun(self.tracked.root, self._collector.name)
        self.tracked.installed.save(self._children.folder)
        _ACTIVE = self
        spawn.install(self, self._children.environment, restore=True)
        importhook.install(self.tracked, self.importing, spawn.PATCHES)
        if not _FORK_HANDLER_INSTALLED and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _FORK_HANDLER_INSTALLED = True
        self._collector.start(self._stack[0])

    def _stop(self) -> tuple[ContextLines, ChildData]:
        global _ACTIVE  # noqa: PLW0603
        _ACTIVE = None
        spawn.uninstall()
        importhook.uninstall()
        self._note_imported_modules()
        by_context = self._collector.stop()
        children, self._children = self._children, None
        return by_context, children.finish() if children is not None else ChildData()

    def discard(self) -> None:
        """Stop without writing a fragment: the run ended before its session did.

        A conftest that fails to import or a usage error ends pytest before
        `pytest_sessionfinish`; tracing must still stop and the children's run folder go.
        """
        if self._children is not None and not self._forked:
            self._stop()
            self.message = "run ended before its tests: no fragment written"

    def become_child(self) -> None:
        """In a fork of this process: record it as a child, write no fragment from it."""
        global _ACTIVE  # noqa: PLW0603
        _ACTIVE = None
        self._forked = True
        assert self._children is not None
        from selector import child

        child.adopt(self._children.environment, self._stack[-1], self.tracked, self._collector)

    def _push(self, kind: str, name: str, *, included: bool) -> None:
        if self._forked:
            return
        context = _context(kind, name)
        if included:
            self._includes.add((_key(self._stack[-1]), (kind, name)))
        self._stack.append(context)
        self._active(context)

    def _pop(self) -> None:
        if self._forked:
            return
        self._stack.pop()
        self._active(self._stack[-1])

    def _active(self, context: str) -> None:
        """From now on, `context` runs: lines, reads and children are its."""
        self._collector.switch_context(context)
        spawn.switch(context)
        (self._late if self._testing else self._early).add(context)

    # -- spawn.Owner: what the hooks on child processes ask of the pytest process --------

    def context(self) -> str:
        """The context the code running now belongs to."""
        return self._stack[-1]

    def incomplete(self, reason: str) -> None:
        """A process started now will not record: its starter's data may lack lines."""
        self._incomplete.setdefault(self._stack[-1], reason)

    def task(self, _context: str) -> AbstractContextManager[None]:
        """Pool tasks run in worker processes, never here."""
        return nullcontext()

    def replacing(self) -> None:
        """An exec replaces pytest itself: nothing to save, no fragment is written."""

    def pool_workers(self, pids: set[int]) -> None:
        """Workers of a pool that tests submit tasks to (they need no other attribution)."""
        if self._children is not None:
            self._children.pool_workers(pids)

    # -- what the import hook and the audit hook report ---------------------------------

    @contextmanager
    def importing(self, module: ModuleType) -> Iterator[None]:
        """Run a tracked module's body in its own import context."""
        spec = module.__spec__
        origin = spec.origin if spec is not None else None
        if origin is None or not self.tracked(origin):
            yield
            return
        path = self.tracked.relative(origin)
        self._modules[path] = (module.__name__, spec.parent if spec is not None else None)
        # A conftest.py belongs to the tests below its folder (see `_file_imports`), not to
        # whichever collector happened to trigger its import.
        self._push("import", path, included=Path(path).name != "conftest.py")
        try:
            yield
        finally:
            self._pop()

    def opened(self, target: object) -> None:
        """A file was opened for reading: remember it if it is a repository file."""
        path = self.tracked.repository_path(target)
        if path is None:
            return
        context = self._stack[-1]
        reader = _known_reader(sys._getframe())
        if reader == _RENDERER and self._reporting:
            return
        if reader == _MINER:
            if context != _context(*SESSION):
                # It draws from what it mines now, like the `@given` tests.
                self._includes.add((_key(context), MINED))
            context = _context(*MINED)
        self._reads.setdefault(context, set()).add(path)

    def _note_imported_modules(self) -> None:
        """Tracked modules already in sys.modules (imported before recording, or cached)."""
        for name, module in list(sys.modules.items()):
            origin = getattr(getattr(module, "__spec__", None), "origin", None)
            if isinstance(origin, str) and self.tracked(origin):
                path = self.tracked.relative(origin)
                self._modules.setdefault(path, (name, getattr(module.__spec__, "parent", None)))

    # -- pytest hooks -----------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        """The xdist controller runs no tests; its workers record."""
        if config.getoption("dist", "no") != "no" and not hasattr(config, "workerinput"):
            self._stop()  # the workers' children are theirs
            self.message = "recording in the xdist workers, one fragment each"
            self._controller = True

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> object:
        self._push("collect", collector.nodeid, included=False)
        try:
            return (yield)
        finally:
            self._pop()

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        root, resolved = Path(self.tracked.root), dict[Path, Path]()
        self._nodeids = {item.nodeid: repository_nodeid(item, root, resolved) for item in items}
        self._collected = list(self._nodeids.values())

    def _nodeid(self, pytest_nodeid: str) -> str:
        """The map's node ID of a test: relative to the repository, not pytest's rootdir."""
        return self._nodeids.get(pytest_nodeid, pytest_nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any]) -> object:
        if fixturedef.scope == "function":
            return (yield)
        self._push("fixture", _fixture_name(fixturedef), included=True)
        try:
            return (yield)
        finally:
            self._pop()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> object:
        self._testing = True
        nodeid = self._nodeid(item.nodeid)
        self._push("test", nodeid, included=False)
        try:
            return (yield)
        finally:
            self._pop()
            if self._children is not None and not self._forked:
                self._children.test_ended(_context("test", nodeid))
            self._test_includes[nodeid] = _test_includes(item)
            result = self._tests.get(nodeid)
            if result is not None:
                markers = tuple(sorted({marker.name for marker in item.iter_markers()}))
                self._tests[nodeid] = TestResult(
                    result.duration, result.outcome, self._item_path(item), markers
                )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self) -> object:
        self._reporting = True
        try:
            return (yield)
        finally:
            self._reporting = False

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        nodeid = self._nodeid(report.nodeid)
        previous = self._tests.get(nodeid, TestResult(0.0, "passed", None))
        self._tests[nodeid] = TestResult(
            previous.duration + report.duration, _outcome(previous.outcome, report), None
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, exitstatus: int) -> None:
        if self._controller or self._forked or self._children is None:
            return
        by_context, children = self._stop()
        if exitstatus not in _WRITE_EXIT_CODES:
            self.message = f"run ended with {pytest.ExitCode(exitstatus).name}: no fragment written"
            return
        if not self._collected:
            self.message = "no test collected: no fragment written"
            return
        data = self._map_data(by_context, children)
        destination = self._run.fragment_dir / self._fragment_name()
        workdir = self._run.fragment_dir.parent  # .selector/, where maps go too
        try:
            if workdir.is_relative_to(self.tracked.root):
                ignore_workdir(workdir)
            write_map(destination, data)
        except (OSError, StoreError) as error:  # checked at the start, changed since
            self.message = f"no fragment written: {error}"
            return
        commit_note = "" if self._run.commit else " (not in a git repository: commit null)"
        recorded = counted(len(data.tests), "test")
        self.message = f"recorded {recorded} into {destination}{commit_note}"
        if not data.tests:
            self.message += (
                f" (none of the {len(data.collected)} collected ran: it lists them, so that "
                "the base map is carried forward to this commit)"
            )
        self.notes = _child_notes(children, self._incomplete) + _installed_notes(
            self.tracked, data.meta.outside
        )

    def pytest_unconfigure(self) -> None:
        self.discard()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line in [self.message, *self.notes] if self.message else []:
            terminalreporter.write_line(f"selector: {line}")

    # -- building the fragment --------------------------------------------------------

    def _item_path(self, item: pytest.Item) -> str | None:
        filename = str(item.path)
        return self.tracked.relative(filename) if self.tracked(filename) else None

    def _fragment_name(self) -> str:
        commit = (self._run.commit or "nocommit")[:12]
        return f"{commit}-{self._run.variant}-{self._run.worker}-{time.time_ns()}.sqlite"

    def _map_data(self, by_context: ContextLines, children: ChildData) -> MapData:
        data = MapData(
            meta=MapMeta(
                commit=self._run.commit,
                dirty=self._run.dirty,
                variant=self._run.variant,
                tool_version=__version__,
                created=datetime.now(UTC).isoformat(),
                collector=self._collector.name,
                python=".".join(map(str, sys.version_info[:3])),
                outside=tuple(sorted(self.tracked.outside(children.outside))),
            ),
            tests=self._tests,
            collected=set(self._collected),
        )
        sources = _Sources(self.tracked.root)
        for context, lines_by_file in by_context.items():
            target = data.context(_key(context))
            for filename, lines in lines_by_file.items():
                path = self.tracked.relative(filename)
                target.add_lines(path, scopes.normalise_lines(lines, sources.starts(path)))
        for context, paths in self._reads.items():
            data.context(_key(context)).reads.update(paths)
        for parent, child in self._includes:
            data.context(parent).includes.add(child)
        for nodeid, includes in self._test_includes.items():
            test = data.tests.get(nodeid)
            own = data.context(("test", nodeid))
            own.includes.update(includes)
            if test is not None and test.path is not None:
                own.includes.update(self._file_imports(test.path))
        self._add_children(data, children, sources)
        self._add_import_graph(data, sources)
        for package in self._test_packages():
            _adopt_package_import(data, package, sources.tree(package))
        # The session context runs between tests too, whatever it ran first.
        for context in self._early - self._late - {_context(*SESSION)}:
            found = data.contexts.get(_key(context))
            if found is not None:
                found.early = True
        data.files = {path: sources.blob(path) for path in sources.paths_of(data)}
        return data

    def _add_children(self, data: MapData, children: ChildData, sources: "_Sources") -> None:
        """What child processes ran and read, their include edges and incomplete marks."""
        for context, lines_by_path in children.lines.items():
            target = data.context(_key(context))
            for path, lines in lines_by_path.items():
                target.add_lines(path, scopes.normalise_lines(lines, sources.starts(path)))
        for context, paths in children.reads.items():
            data.context(_key(context)).reads.update(paths)
        for parent, child in children.includes:
            data.context(_key(child))
            data.context(_key(parent)).includes.add(_key(child))
        for context in children.incomplete.union(self._incomplete):
            data.context(INCOMPLETE)
            data.context(_key(context)).includes.add(INCOMPLETE)

    def _add_import_graph(self, data: MapData, sources: "_Sources") -> None:
        """Static import edges between the import contexts of every tracked module.

        An import inside a function that no context ran, in this process or its children
        (a lazy import nobody needed, an environment switch that was off), is no edge.
        """
        by_name = {name: path for path, (name, _package) in self._modules.items()}
        trees = {path: sources.tree(path) for path in self._modules}
        lazy = {
            path for path, tree in trees.items() if tree is not None and scopes.lazy_imports(tree)
        }
        ran = _lines_run(data, lazy)
        for path, (_name, package) in self._modules.items():
            importer = data.context(("import", path))
            tree = trees[path]
            if tree is None:
                continue
            for name in scopes.imported_modules(tree, package, ran.get(path)):
                target = by_name.get(name)
                if target is not None and target != path:
                    importer.includes.add(("import", target))

    def _file_imports(self, path: str) -> set[ContextKey]:
        """The import contexts a test file depends on: its own, and its folders' conftest.py
        and `__init__.py` files'."""
        keys = {("import", path)} if path in self._modules else set()
        folder = Path(path).parent
        for directory in (folder, *folder.parents):
            for name in ("conftest.py", "__init__.py"):
                module = (directory / name).as_posix()
                if module in self._modules:
                    keys.add(("import", module))
        return keys

    def _test_packages(self) -> set[str]:
        """The imported `__init__.py` files of the folders that hold recorded tests."""
        packages = set()
        for test in self._tests.values():
            if test.path is not None:
                for directory in Path(test.path).parents:
                    init = (directory / "__init__.py").as_posix()
                    if init in self._modules:
                        packages.add(init)
        return packages


def _adopt_package_import(data: MapData, path: str, tree: Any) -> None:
    """What the session ran and read of a test package's `__init__.py` as it was imported.

    pytest imports a test package itself (the parent of a conftest.py it loads), outside
    any collector, and with `--import-mode=importlib` bypassing the import hook too. Like
    a conftest.py, the package belongs to the tests below its folder (`_file_imports`), not
    to every test: the session's read, its module-level lines and its include of the import
    context become the import context's. Lines inside functions stay the session's, which
    may have called them.
    """
    session = data.contexts.get(SESSION)
    if session is None:
        return
    imported = ("import", path)
    session.includes.discard(imported)
    if path in session.reads:
        session.reads.discard(path)
        data.context(imported).reads.add(path)
    bits = session.lines.get(path)
    if bits is None or tree is None:
        return
    called = _lines_run_by_calls(tree)
    lines = set(numbits_to_nums(bits))
    data.context(imported).add_lines(path, lines - called)
    if lines & called:
        session.lines[path] = nums_to_numbits(lines & called)
    else:
        del session.lines[path]


def _lines_run_by_calls(tree: ast.Module) -> set[int]:
    """The lines of function and lambda bodies (a one-liner's `def` line among them)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno:
            lines.update(range(node.body[0].lineno, node.end_lineno + 1))
        elif isinstance(node, ast.Lambda) and node.end_lineno:
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def _lines_run(data: MapData, paths: set[str]) -> dict[str, set[int]]:
    """The lines of each of `paths` that ran in any context, in one pass over the contexts."""
    ran: dict[str, set[int]] = {path: set() for path in paths}
    if paths:
        for context in data.contexts.values():
            for path in paths & context.lines.keys():
                ran[path].update(numbits_to_nums(context.lines[path]))
    return ran


class _Sources:
    """File contents read once each after the run: blob ids, trees, statement maps."""

    def __init__(self, root: str) -> None:
        self._root = Path(root)
        self._content: dict[str, bytes | None] = {}
        self._trees: dict[str, Any] = {}
        self._starts: dict[str, list[int]] = {}

    def content(self, path: str) -> bytes | None:
        if path not in self._content:
            try:
                self._content[path] = (self._root / path).read_bytes()
            except OSError:
                self._content[path] = None
        return self._content[path]

    def blob(self, path: str) -> str | None:
        content = self.content(path)
        return None if content is None else blob_id(content)

    def tree(self, path: str) -> Any:
        if path not in self._trees:
            content = self.content(path)
            self._trees[path] = None if content is None else scopes.parse(content, path)
        return self._trees[path]

    def starts(self, path: str) -> list[int]:
        if path not in self._starts:
            tree = self.tree(path)
            self._starts[path] = [] if tree is None else scopes.statement_starts(tree)
        return self._starts[path]

    @staticmethod
    def paths_of(data: MapData) -> set[str]:
        paths: set[str] = set()
        for context in data.contexts.values():
            paths.update(context.lines)
            paths.update(context.reads)
        return paths


def _fixture_name(fixturedef: pytest.FixtureDef[Any]) -> str:
    return f"{fixturedef.baseid}::{fixturedef.argname}"


def _test_includes(item: pytest.Item) -> set[ContextKey]:
    """What a test includes besides its own lines: collection, session, wide fixtures."""
    includes: set[ContextKey] = {SESSION}
    includes.update(("collect", node.nodeid) for node in item.listchain()[:-1])
    if item.get_closest_marker("hypothesis") is not None:
        includes.add(MINED)
    fixture_info = getattr(item, "_fixtureinfo", None)
    definitions = getattr(fixture_info, "name2fixturedefs", {})
    for name in getattr(item, "fixturenames", ()):
        for fixturedef in definitions.get(name, ()):
            if fixturedef.scope != "function":
                includes.add(("fixture", _fixture_name(fixturedef)))
    return includes


def _known_reader(frame: FrameType | None) -> str | None:
    """The innermost of `_KNOWN_READERS` on the stack of an open, if any."""
    while frame is not None:
        module = frame.f_globals.get("__name__")
        if module in _KNOWN_READERS:
            return str(module)
        frame = frame.f_back
    return None


def _child_notes(children: ChildData, starts: dict[str, str]) -> list[str]:
    """Lines for the terminal about child processes, if there were any."""
    notes = []
    if children.processes:
        notes.append(f"recorded {children.processes} child processes")
    if children.incomplete_processes:
        notes.append(
            f"{children.incomplete_processes} child processes did not record all they ran "
            "(killed before writing, or not able to record): the tests they belong to are "
            "selected by every change"
        )
    for context, reason in sorted(starts.items()):
        notes.append(f"{context}: {reason}; it is selected by every change")
    return notes


def _installed_notes(tracked: TrackedFiles, outside: tuple[OutsideInstall, ...]) -> list[str]:
    """Lines for the terminal about repository code that ran from installed copies."""
    notes = []
    copies = tracked.copies_run()
    if copies:
        notes.append(
            f"{len(copies)} repository files ran from installed copies (such as "
            f"{min(copies)}), recorded as the repository files they equal"
        )
    notes.extend(outside_message(install) for install in outside)
    return notes


def _outcome(previous: str, report: pytest.TestReport) -> str:
    """Fold one phase's report into the test's outcome; a failure in any phase wins."""
    if previous in ("failed", "error"):
        return previous
    if report.failed:
        return "failed" if report.when == "call" else "error"
    if report.skipped:
        return "xfailed" if hasattr(report, "wasxfail") else "skipped"
    if report.when == "call" and hasattr(report, "wasxfail"):
        return "xpassed"
    return previous
