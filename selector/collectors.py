"""Line collectors: which lines of tracked files ran, per context.

A context is one unit of attribution (a test, a wide fixture's setup, a module's import).
The recorder tells the collector when the context changes; the collector gathers raw line
numbers per context and file. Two implementations produce the same sets:

* `MonitoringCollector` (Python 3.12+) uses `sys.monitoring`: each line reports once per
  context and is then disabled, and `restart_events()` re-arms every line when the context
  changes. Cost is paid once per line per test, not once per executed line.
* `CoverageCollector` uses coverage.py's C tracer with one dynamic context per context. It
  is the choice on 3.11, where `sys.monitoring` does not exist. coverage's own sysmon core
  cannot switch contexts (it warns `no-sysmon-context` and drops them), so it is never used.

Recorded child processes (selector/child.py) run the same collectors; a forked child keeps
the one it inherited and calls `forget`, so it records its own lines only.
"""

import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import CodeType
from typing import Any, Literal, Protocol

from selector.installed import InstalledCopies, OutsideInstall

# context -> absolute file name -> raw line numbers
ContextLines = dict[str, dict[str, set[int]]]
CollectorKind = Literal["auto", "monitoring", "coverage"]


class CollectorError(Exception):
    """The requested collector cannot run here (one-line message for the user)."""


class LineCollector(Protocol):
    """What the recorder needs from a collector."""

    name: str

    def start(self, context: str) -> None:
        """Begin collecting, attributing lines to `context`."""

    def switch_context(self, context: str) -> None:
        """Attribute the lines that run from now on to `context`."""

    def stop(self) -> ContextLines:
        """Stop collecting and return what ran, per context and file."""

    def forget(self, context: str) -> None:
        """Drop what was collected so far and go on collecting for `context` (after a fork)."""


class TrackedFiles:
    """Decides, once per file name, whether lines in it are recorded.

    Only Python files under the repository root are tracked, never the interpreter's own
    prefix (a virtualenv inside the repository) nor installed packages, nor selector's
    working folder; but installed copies of repository files (`installed.copies`, see
    installed.py) are tracked as the repository file they copy. The stale installed
    files that this process ran or imported are in `outside_files`, each passed once to
    `noticed_outside` (a child process writes it to its journal).
    """

    def __init__(self, root: Path, installed: InstalledCopies | None = None) -> None:
        self.root = os.path.realpath(root)
        self.installed = installed or InstalledCopies()
        self.outside_files: set[str] = set()
        self.noticed_outside: Callable[[str], None] = _ignore
        prefixes = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
        self._excluded = tuple(
            os.path.realpath(prefix) + os.sep
            for prefix in prefixes
            if os.path.realpath(prefix).startswith(self.root + os.sep)
        ) + tuple(os.path.join(self.root, name) + os.sep for name in (".git", ".selector"))
        self._decided: dict[str, bool] = {}
        self._relative: dict[str, str] = {}

    def __call__(self, filename: str) -> bool:
        decided = self._decided.get(filename)
        if decided is None:
            decided = self._decided[filename] = self._decide(filename)
        return decided

    def _decide(self, filename: str) -> bool:
        if not filename.endswith(".py") or filename.startswith("<"):
            return False
        real = os.path.realpath(filename)
        if real in self.installed.copies:
            return True
        if real in self.installed.stale:
            if real not in self.outside_files:
                self.outside_files.add(real)
                self.noticed_outside(real)
            return False
        if not real.startswith(self.root + os.sep) or real.startswith(self._excluded):
            return False
        parts = real.split(os.sep)
        return "site-packages" not in parts and "dist-packages" not in parts

    def outside(self, files: Iterable[str] = ()) -> set[OutsideInstall]:
        """The stale distributions of `outside_files` and of `files` (from child processes)."""
        stale = self.installed.stale
        return {stale[path] for path in self.outside_files.union(files) if path in stale}

    def copies_run(self) -> list[str]:
        """The installed copies that this process decided to record (that is, ran)."""
        ran = {os.path.realpath(name) for name, tracked in self._decided.items() if tracked}
        return sorted(ran.intersection(self.installed.copies))

    def relative(self, filename: str) -> str:
        """Repository-relative POSIX path of a tracked file (asked once per file and context)."""
        found = self._relative.get(filename)
        if found is None:
            real = os.path.realpath(filename)
            found = self.installed.copies.get(real)
            if found is None:
                found = Path(os.path.relpath(real, self.root)).as_posix()
            self._relative[filename] = found
        return found

    def repository_path(self, target: object) -> str | None:
        """Repository-relative path of a file name that an audit `open` event names, if any.

        Any repository file counts (data files too), but not folders, bytecode, nor git's or
        selector's own files.
        """
        try:
            name = os.fsdecode(target)  # type: ignore[arg-type]
        except TypeError:
            return None
        real = os.path.realpath(name)
        copied = self.installed.copies.get(real)
        if copied is not None:
            return copied
        if not real.startswith(self.root + os.sep) or real.endswith((".pyc", ".pyo")):
            return None
        if os.path.isdir(real):
            return None
        relative = Path(os.path.relpath(real, self.root)).as_posix()
        if relative.startswith((".git/", ".selector/")) or "/__pycache__/" in f"/{relative}":
            return None
        return relative

    def coverage_include(self) -> list[str]:
        """coverage.py include patterns: the repository and the installed copies of its files."""
        return [os.path.join(self.root, "*"), *sorted(self.installed.copies)]

    def coverage_omit(self) -> list[str]:
        """coverage.py omit patterns that keep its tracer out of what we never track.

        An omit pattern wins over every include pattern, so a folder that holds installed
        copies (a tox or virtualenv site-packages inside the repository) is omitted around
        them, entry by entry.
        """
        copies = self.installed.copies
        patterns = [
            pattern
            for prefix in self._excluded
            for pattern in _omit_around(
                prefix, [path for path in copies if path.startswith(prefix)]
            )
        ]
        return patterns if copies else [*patterns, "*/site-packages/*"]


def _ignore(_installed: str) -> None:
    """What a process that writes no journal does when it runs a stale installed copy."""


def _omit_around(folder: str, kept: list[str]) -> list[str]:
    """Patterns that omit everything under `folder` (ending in a separator) but `kept` files.

    coverage.py resolves symbolic links in patterns, so a link to a folder on the way to a
    kept file (a virtualenv's `lib64`) is not omitted either.
    """
    if not kept:
        return [f"{folder}*"]
    top = folder.rstrip(os.sep)
    on_the_way = {top}
    for path in kept:
        parent = os.path.dirname(path)
        while parent not in on_the_way and parent.startswith(folder):
            on_the_way.add(parent)
            parent = os.path.dirname(parent)
    wanted = on_the_way.union(kept)
    patterns = []
    for parent in sorted(on_the_way):
        with os.scandir(parent) as entries:
            for entry in entries:
                if entry.path not in wanted and os.path.realpath(entry.path) not in wanted:
                    patterns.append(f"{entry.path}{os.sep}*" if entry.is_dir() else entry.path)
    return patterns


def _one_liner_line(code: CodeType) -> int | None:
    """The line of a code object whose body starts on its `def` line, else None.

    `sys.monitoring` emits no LINE event for instructions on the same line as the code's
    RESUME unless PY_START stays active on that code (CPython gh-155992, seen on 3.13 for
    one-liners, lambdas and generator expressions). The PY_START handler records that line
    itself instead.
    """
    ranges = [(start, end, line) for start, end, line in code.co_lines() if line is not None]
    resume = _resume_offset(code)
    for index, (start, end, line) in enumerate(ranges):
        if start <= resume < end:
            if end > resume + 2:
                return line
            following = ranges[index + 1] if index + 1 < len(ranges) else None
            return line if following is not None and following[2] == line else None
    return None


def _resume_offset(code: CodeType) -> int:
    """Byte offset of the first RESUME instruction (after generator/closure prologue)."""
    import dis

    resume = dis.opmap["RESUME"]
    payload = code.co_code
    for offset in range(0, len(payload), 2):
        if payload[offset] == resume:
            return offset
    return 0


def _new_set(_context: str, _filename: str) -> set[int]:
    return set()


class MonitoringCollector:
    """`sys.monitoring` collector: first hit of each line per context, then DISABLE.

    PY_START is enabled globally; the first time a code object of a tracked file starts,
    LINE events are switched on locally for that code only, so untracked code (pytest,
    libraries) costs one PY_START callback per context and never a LINE callback.

    `new_lines(context, filename)` makes the set that holds one file's lines in one
    context; a child process supplies sets that also write each new line to its journal,
    so that its lines survive the process being killed.
    """

    name = "monitoring"

    def __init__(self, is_tracked: Callable[[str], bool]) -> None:
        self._is_tracked = is_tracked
        self.new_lines: Callable[[str, str], set[int]] = _new_set
        self._by_context: ContextLines = {}
        self._context = ""
        self._current: dict[str, set[int]] = {}
        # id(code) -> (code, its one-liner line): keyed by identity, because equal code
        # objects from two files compare equal; the reference keeps the id from being reused.
        self._instrumented: dict[int, tuple[CodeType, int | None]] = {}
        self._tool = -1

    def start(self, context: str) -> None:
        monitoring: Any = getattr(sys, "monitoring", None)
        if monitoring is None:
            raise CollectorError("the monitoring collector needs Python 3.12 or newer")
        self._tool = self._claim_tool_id(monitoring)
        events = monitoring.events
        monitoring.register_callback(self._tool, events.PY_START, self._on_start)
        monitoring.register_callback(self._tool, events.LINE, self._on_line)
        self._enter(context)
        monitoring.set_events(self._tool, events.PY_START)

    @staticmethod
    def _claim_tool_id(monitoring: Any) -> int:
        for tool in (3, 4, 2, 5):
            if monitoring.get_tool(tool) is None:
                monitoring.use_tool_id(tool, "selector")
                return tool
        raise CollectorError("every sys.monitoring tool id is taken by other tools")

    def _on_start(self, code: CodeType, _offset: int) -> object:
        monitoring: Any = getattr(sys, "monitoring")  # noqa: B009 - absent on 3.11 for mypy
        known = self._instrumented.get(id(code))
        if known is None:
            if not self._is_tracked(code.co_filename):
                return monitoring.DISABLE
            known = self._instrumented[id(code)] = (code, _one_liner_line(code))
            monitoring.set_local_events(self._tool, code, monitoring.events.LINE)
        line = known[1]
        if line is not None:
            self._lines_of(code.co_filename).add(line)
        return monitoring.DISABLE

    def _on_line(self, code: CodeType, line: int) -> object:
        self._lines_of(code.co_filename).add(line)
        return sys.monitoring.DISABLE  # type: ignore[attr-defined,unused-ignore]

    def _lines_of(self, filename: str) -> set[int]:
        lines = self._current.get(filename)
        if lines is None:
            lines = self._current[filename] = self.new_lines(self._context, filename)
        return lines

    def _enter(self, context: str) -> None:
        self._context = context
        self._current = self._by_context.setdefault(context, {})

    def switch_context(self, context: str) -> None:
        self._enter(context)
        sys.monitoring.restart_events()  # type: ignore[attr-defined,unused-ignore]

    def forget(self, context: str) -> None:
        """Start over in `context`, keeping the tool id and the instrumented code (cheap)."""
        self._by_context = {}
        self.switch_context(context)

    def stop(self) -> ContextLines:
        monitoring: Any = getattr(sys, "monitoring")  # noqa: B009
        monitoring.set_events(self._tool, 0)
        for code, _line in self._instrumented.values():
            monitoring.set_local_events(self._tool, code, 0)
        monitoring.register_callback(self._tool, monitoring.events.PY_START, None)
        monitoring.register_callback(self._tool, monitoring.events.LINE, None)
        monitoring.free_tool_id(self._tool)
        self._instrumented.clear()
        return self._by_context


class CoverageCollector:
    """coverage.py's C tracer with one dynamic context per context."""

    name = "coverage"

    def __init__(self, tracked: TrackedFiles) -> None:
        self._tracked = tracked
        self._coverage = self._new_coverage()

    def _new_coverage(self) -> Any:
        from coverage import Coverage

        coverage = Coverage(
            data_file=None,
            config_file=False,
            branch=False,
            include=self._tracked.coverage_include(),
            omit=self._tracked.coverage_omit(),
        )
        # COVERAGE_CORE=sysmon in the environment would silently drop contexts.
        coverage.set_option("run:core", "ctrace")
        coverage.set_option("run:disable_warnings", ["no-data-collected"])
        return coverage

    def start(self, context: str) -> None:
        self._coverage.start()
        self._coverage.switch_context(context)

    def switch_context(self, context: str) -> None:
        self._coverage.switch_context(context)

    def stop(self) -> ContextLines:
        self._coverage.stop()
        return self.lines()

    def forget(self, context: str) -> None:
        """Stop the inherited tracer and start a fresh one: its data is the parent's."""
        self._coverage.stop()
        self._coverage = self._new_coverage()
        self.start(context)

    def lines(self) -> ContextLines:
        """What ran so far, per context and file; collecting goes on if it was running."""
        data = self._coverage.get_data()
        by_context: ContextLines = {}
        for filename in data.measured_files():
            if not self._tracked(filename):
                continue
            for line, contexts in data.contexts_by_lineno(filename).items():
                for context in contexts:
                    by_context.setdefault(context, {}).setdefault(filename, set()).add(line)
        return by_context


def make_collector(kind: CollectorKind, tracked: TrackedFiles) -> LineCollector:
    """The collector for `kind`; `auto` picks `sys.monitoring` where it exists."""
    if kind == "auto":
        kind = "monitoring" if sys.version_info >= (3, 12) else "coverage"
    if kind == "monitoring":
        if sys.version_info < (3, 12):
            raise CollectorError("--selector-collector=monitoring needs Python 3.12 or newer")
        return MonitoringCollector(tracked)
    return CoverageCollector(tracked)
