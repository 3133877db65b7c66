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
  includes.

Repository files opened for reading are recorded per context through an audit hook.
"""

import importlib.abc
import importlib.machinery
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from selector import __version__, scopes
from selector.collectors import LineCollector, TrackedFiles
from selector.gitdiff import blob_id
from selector.mapdb import SESSION, ContextKey, MapData, MapMeta, TestResult, write_map
from selector.store import ignore_workdir

_ACTIVE: "Recorder | None" = None
_AUDIT_HOOK_INSTALLED = False
_WRITE_EXIT_CODES = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)


def _key(context: str) -> ContextKey:
    kind, _, name = context.partition(":")
    return kind, name


def _context(kind: str, name: str) -> str:
    return f"{kind}:{name}"


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook (installed once per process, cannot be removed): files opened for reading."""
    if event == "open" and _ACTIVE is not None:
        _ACTIVE.opened(args)


@dataclass(frozen=True)
class RunInfo:
    """What the recorder needs to know about where it records."""

    commit: str | None
    dirty: bool
    variant: str
    fragment_dir: Path
    worker: str


class _FootprintFinder(importlib.abc.MetaPathFinder):
    """Finds modules with the finders after it and wraps loaders of tracked files.

    The wrapped `exec_module` runs the module body inside that module's import context.
    Wrapping sets an instance attribute, so the loader keeps its class (`isinstance`
    checks and resource readers still work).
    """

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        spec = self._find_with_others(fullname, path, target)
        recorder = _ACTIVE
        if (
            spec is not None
            and recorder is not None
            and spec.origin is not None
            and spec.loader is not None
            and recorder.tracked(spec.origin)
        ):
            _wrap_loader(spec.loader)
        return spec

    def _find_with_others(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in list(sys.meta_path):
            if finder is self:
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec: importlib.machinery.ModuleSpec | None = find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None


def _wrap_loader(loader: Any) -> None:
    original = loader.exec_module
    if getattr(original, "selector_wrapped", False):
        return

    def exec_module(module: ModuleType) -> None:
        recorder = _ACTIVE
        if recorder is None:
            original(module)
            return
        with recorder.importing(module):
            original(module)

    exec_module.selector_wrapped = True  # type: ignore[attr-defined]
    try:
        loader.exec_module = exec_module
    except (AttributeError, TypeError):
        return  # a loader with slots: its imports count for the importing context


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
        self._finder = _FootprintFinder()
        self._controller = False
        self.message = ""

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start collecting; from now on imports, opens and lines are attributed."""
        global _ACTIVE, _AUDIT_HOOK_INSTALLED  # noqa: PLW0603 - one recorder per process
        self._note_imported_modules()
        self._stack = [_context(*SESSION)]
        _ACTIVE = self
        if not _AUDIT_HOOK_INSTALLED:
            sys.addaudithook(_audit)
            _AUDIT_HOOK_INSTALLED = True
        sys.meta_path.insert(0, self._finder)
        self._collector.start(self._stack[0])

    def _stop(self) -> dict[str, dict[str, set[int]]]:
        global _ACTIVE  # noqa: PLW0603
        _ACTIVE = None
        if self._finder in sys.meta_path:
            sys.meta_path.remove(self._finder)
        self._note_imported_modules()
        return self._collector.stop()

    def _push(self, kind: str, name: str, *, included: bool) -> None:
        context = _context(kind, name)
        if included:
            self._includes.add((_key(self._stack[-1]), (kind, name)))
        self._stack.append(context)
        self._collector.switch_context(context)

    def _pop(self) -> None:
        self._stack.pop()
        self._collector.switch_context(self._stack[-1])

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

    def opened(self, args: tuple[Any, ...]) -> None:
        """A file was opened: remember repository files opened for reading."""
        target, mode, flags = (*args, None, None, None)[:3]
        if isinstance(target, int) or target is None:
            return
        if isinstance(mode, str):
            if "r" not in mode and "+" not in mode:
                return
        elif isinstance(flags, int) and flags & os.O_ACCMODE == os.O_WRONLY:
            return
        path = self._repository_path(target)
        if path is not None:
            self._reads.setdefault(self._stack[-1], set()).add(path)

    def _repository_path(self, target: Any) -> str | None:
        try:
            name = os.fsdecode(target)
        except TypeError:
            return None
        real = os.path.realpath(name)
        root = self.tracked.root
        if not real.startswith(root + os.sep) or real.endswith((".pyc", ".pyo")):
            return None
        if os.path.isdir(real):
            return None
        relative = Path(os.path.relpath(real, root)).as_posix()
        if relative.startswith((".git/", ".selector/")) or "/__pycache__/" in f"/{relative}":
            return None
        return relative

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
            self._stop()
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
        self._collected = [item.nodeid for item in items]

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
        self._push("test", item.nodeid, included=False)
        try:
            return (yield)
        finally:
            self._pop()
            self._test_includes[item.nodeid] = _test_includes(item)
            result = self._tests.get(item.nodeid)
            if result is not None:
                markers = tuple(sorted({marker.name for marker in item.iter_markers()}))
                self._tests[item.nodeid] = TestResult(
                    result.duration, result.outcome, self._item_path(item), markers
                )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        previous = self._tests.get(report.nodeid, TestResult(0.0, "passed", None))
        self._tests[report.nodeid] = TestResult(
            previous.duration + report.duration, _outcome(previous.outcome, report), None
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, exitstatus: int) -> None:
        if self._controller:
            return
        by_context = self._stop()
        if exitstatus not in _WRITE_EXIT_CODES:
            self.message = f"run ended with {pytest.ExitCode(exitstatus).name}: no fragment written"
            return
        if not self._tests:
            self.message = "no test ran: no fragment written"
            return
        data = self._map_data(by_context)
        destination = self._run.fragment_dir / self._fragment_name()
        ignore_workdir(self._run.fragment_dir.parent)
        write_map(destination, data)
        commit_note = "" if self._run.commit else " (not in a git repository: commit null)"
        self.message = f"recorded {len(data.tests)} tests into {destination}{commit_note}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.message:
            terminalreporter.write_line(f"selector: {self.message}")

    # -- building the fragment --------------------------------------------------------

    def _item_path(self, item: pytest.Item) -> str | None:
        filename = str(item.path)
        return self.tracked.relative(filename) if self.tracked(filename) else None

    def _fragment_name(self) -> str:
        commit = (self._run.commit or "nocommit")[:12]
        return f"{commit}-{self._run.variant}-{self._run.worker}-{time.time_ns()}.sqlite"

    def _map_data(self, by_context: dict[str, dict[str, set[int]]]) -> MapData:
        data = MapData(
            meta=MapMeta(
                commit=self._run.commit,
                dirty=self._run.dirty,
                variant=self._run.variant,
                tool_version=__version__,
                created=datetime.now(UTC).isoformat(),
                collector=self._collector.name,
                python=".".join(map(str, sys.version_info[:3])),
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
        self._add_import_graph(data, sources)
        for nodeid, includes in self._test_includes.items():
            test = data.tests.get(nodeid)
            own = data.context(("test", nodeid))
            own.includes.update(includes)
            if test is not None and test.path is not None:
                own.includes.update(self._file_imports(test.path))
        data.files = {path: sources.blob(path) for path in sources.paths_of(data)}
        return data

    def _add_import_graph(self, data: MapData, sources: "_Sources") -> None:
        """Static import edges between the import contexts of every tracked module."""
        by_name = {name: path for path, (name, _package) in self._modules.items()}
        for path, (_name, package) in self._modules.items():
            importer = data.context(("import", path))
            tree = sources.tree(path)
            if tree is None:
                continue
            for name in scopes.imported_modules(tree, package):
                target = by_name.get(name)
                if target is not None and target != path:
                    importer.includes.add(("import", target))

    def _file_imports(self, path: str) -> set[ContextKey]:
        """The import contexts a test file depends on: its own and its conftest.py files'."""
        keys = {("import", path)} if path in self._modules else set()
        folder = Path(path).parent
        for directory in (folder, *folder.parents):
            conftest = (directory / "conftest.py").as_posix()
            if conftest in self._modules:
                keys.add(("import", conftest))
        return keys


class _Sources:
    """File contents read once each after the run: blob ids, trees, statement maps."""

    def __init__(self, root: str) -> None:
        self._root = Path(root)
        self._content: dict[str, bytes | None] = {}
        self._trees: dict[str, Any] = {}

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
        tree = self.tree(path)
        return [] if tree is None else scopes.statement_starts(tree)

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
    fixture_info = getattr(item, "_fixtureinfo", None)
    definitions = getattr(fixture_info, "name2fixturedefs", {})
    for name in getattr(item, "fixturenames", ()):
        for fixturedef in definitions.get(name, ()):
            if fixturedef.scope != "function":
                includes.add(("fixture", _fixture_name(fixturedef)))
    return includes


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
