"""Recording inside a Python process started while `pytest --selector-record` runs.

Such a process is started with selector's sitecustomize.py first on PYTHONPATH (spawn.py),
which calls `bootstrap`; a fork of a recording process calls `adopt` (the pytest process)
or continues through `os.register_at_fork` (a child). It then records, into its journal
(journal.py), the lines it executes in repository files:

* Everything it runs belongs to its *process context* `child:<token>`: start-up, imports,
  a server's request handlers, a pool worker's initializer. The context that started the
  process (`SELECTOR_CONTEXT` then, the parent's current context at a fork) includes it:
  a test, a wide fixture (so every test that uses the fixture), or the process context of
  the parent (grandchildren, at any depth).
* A pool task runs in the context of whoever submitted it (spawn.Task), and that context
  includes the worker's process context too: its imports and caches served the task. The
  body of a module imported during a task still runs in the process context, since every
  later task of the worker uses the module without importing it again.
* Files opened for reading, and processes started that will not record (spawn.py), are
  recorded per context as in the pytest process.

With the monitoring collector every new line is in the journal before it executes, so a
child killed at any point has recorded everything it ran. coverage's tracer (Python 3.11)
holds lines in memory: they are written at exit, at `os._exit`, at SIGTERM in a child
started as a new interpreter and in its forks (the default disposition only: the handler
writes, then dies of the signal as before; not in a fork of the pytest process, where a
SIGTERM handler made `Pool.terminate()` hang now and then, as coverage.py found for its
own), before an exec,
and when the pytest process ends its run while the child still runs (journal.flush_signal,
again only where that signal has its default disposition); a child killed otherwise leaves
a journal without its end record, which makes the pytest process mark what the child
belongs to as incomplete. A child killed while it still sets up recording (a pool worker
terminated right after its fork, before its handlers are in place) ran nothing of the
project's yet: its journal has no start record, and counts as complete.
"""

import atexit
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType, ModuleType
from typing import NoReturn

from selector import importhook, spawn
from selector.collectors import (
    CoverageCollector,
    LineCollector,
    MonitoringCollector,
    TrackedFiles,
    make_collector,
)
from selector.installed import InstalledCopies
from selector.journal import JournalWriter, flush_signal
from selector.spawn import ChildEnvironment

_RECORDING: "ChildRecording | None" = None
_HANDLERS_INSTALLED = False
_FLUSH_HANDLED = False
_ORIGINAL_EXIT = os._exit
_SIGNAL_TIMEOUT = 1.0  # seconds a signal handler waits for the journal


class _JournalLines(set[int]):
    """One file's lines in one context, each new one written to the journal at once."""

    __slots__ = ("_context", "_journal", "_path")

    def __init__(self, journal: JournalWriter, context: int, path: int) -> None:
        super().__init__()
        self._journal = journal
        self._context = context
        self._path = path

    def add(self, line: int) -> None:
        if line not in self:
            super().add(line)
            self._journal.line(self._context, self._path, line)


class ChildRecording:
    """The owner (spawn.Owner) of a recorded child process."""

    def __init__(
        self,
        environment: ChildEnvironment,
        tracked: TrackedFiles,
        collector: LineCollector,
        journal: JournalWriter,
        token: str,
    ) -> None:
        self.environment = environment
        self.tracked = tracked
        self.collector = collector
        self.journal = journal
        self.process = f"child:{token}"
        self._stack = [self.process]
        self._task_contexts: set[str] = set()
        self._reads: set[tuple[str, str]] = set()
        self._workers: set[int] = set()

    # -- spawn.Owner ------------------------------------------------------------------

    def context(self) -> str:
        """The context of the code running now: a task's submitter, or the process."""
        return self._stack[-1]

    def opened(self, target: object) -> None:
        """A file opened for reading: a dependency of the current context if in the repo."""
        path = self.tracked.repository_path(target)
        key = (self._stack[-1], path)
        if path is not None and key not in self._reads:
            self._reads.add(key)  # type: ignore[arg-type]
            self.journal.read(self._stack[-1], path)

    def incomplete(self, reason: str) -> None:
        """Something this context started will not record."""
        self.journal.incomplete(self._stack[-1])

    @contextmanager
    def task(self, context: str) -> Iterator[None]:
        """Run a pool task in the context that submitted it."""
        if context == self._stack[-1]:
            yield
            return
        if context not in self._task_contexts:
            self._task_contexts.add(context)
            self.journal.includes(context, self.process)
        self._enter(context)
        try:
            yield
        finally:
            self._leave()

    def replacing(self) -> None:
        """An exec replaces this process: what is only in memory must be written now."""
        self.finish()

    def pool_workers(self, pids: set[int]) -> None:
        """Workers of a pool this process submits to (see children.py)."""
        for pid in pids - self._workers:
            self._workers.add(pid)
            self.journal.worker(pid)

    # -- the rest ---------------------------------------------------------------------

    @contextmanager
    def importing(self, _module: ModuleType) -> Iterator[None]:
        """A tracked module's body runs in the process context (see the module docstring)."""
        if self._stack[-1] == self.process:
            yield
            return
        self._enter(self.process)
        try:
            yield
        finally:
            self._leave()

    def new_lines(self, context: str, filename: str) -> set[int]:
        """The set for one file's lines in one context (MonitoringCollector.new_lines)."""
        journal = self.journal
        path = self.tracked.relative(filename)
        return _JournalLines(journal, journal.string(context), journal.string(path))

    def finish(self, timeout: float = -1) -> None:
        """Write what is only in memory (coverage's lines), then the end record."""
        if isinstance(self.collector, CoverageCollector):
            lines = {
                context: {self.tracked.relative(name): lines for name, lines in files.items()}
                for context, files in self.collector.lines().items()
            }
            if not self.journal.lines_safely(lines, timeout=timeout):
                return
        self.journal.end(timeout=timeout)

    def _enter(self, context: str) -> None:
        self._stack.append(context)
        self.collector.switch_context(context)
        spawn.switch(context)

    def _leave(self) -> None:
        self._stack.pop()
        self.collector.switch_context(self._stack[-1])
        spawn.switch(self._stack[-1])


def bootstrap() -> None:
    """Record this process, if it was started by a recording run that still goes on.

    Called by selector's sitecustomize.py; an exception makes it leave a marker that the
    pytest process turns into an incomplete mark for the starting context.
    """
    environment = ChildEnvironment.from_environ()
    if environment is None or _RECORDING is not None:
        return
    static = os.environ.get(spawn.CONTEXT) or "session"
    installed = InstalledCopies.load(Path(environment.run))
    _start(environment, static, TrackedFiles(Path(environment.root), installed), None)


def adopt(
    environment: ChildEnvironment, static: str, tracked: TrackedFiles, collector: LineCollector
) -> None:
    """Record a fork of the pytest process as a child started in `static`.

    The fork keeps the inherited collector, told to forget the pytest process's lines.
    """
    _start(environment, static, tracked, collector)


def _start(
    environment: ChildEnvironment,
    static: str,
    tracked: TrackedFiles,
    collector: LineCollector | None,
) -> None:
    global _RECORDING  # noqa: PLW0603 - one recording per process
    fresh = collector is None
    if collector is None:
        collector = _new_collector(environment, tracked)
    write_through = isinstance(collector, MonitoringCollector)
    token = os.urandom(8).hex()
    journal = JournalWriter.create(environment.run, token, static, write_through=write_through)
    recording = ChildRecording(environment, tracked, collector, journal, token)
    tracked.noticed_outside = journal.outside
    try:
        if isinstance(collector, MonitoringCollector):
            collector.new_lines = recording.new_lines
        if fresh:
            collector.start(recording.process)
        else:
            collector.forget(recording.process)
        importhook.install(tracked, recording.importing, spawn.PATCHES)
        spawn.install(recording, environment, restore=False)
    except BaseException:
        journal.incomplete(recording.process)
        raise
    _RECORDING = recording
    _install_handlers(write_through=write_through, on_sigterm=fresh)
    if _FLUSH_HANDLED:
        journal.flushes()
    journal.started()


def _new_collector(environment: ChildEnvironment, tracked: TrackedFiles) -> LineCollector:
    """The pytest process's kind of collector, where this interpreter has it."""
    if environment.collector == "monitoring" and sys.version_info >= (3, 12):
        return make_collector("monitoring", tracked)
    return make_collector("coverage", tracked)


def _install_handlers(*, write_through: bool, on_sigterm: bool) -> None:
    """Exit, fork and (for coverage's in-memory lines) signal handlers, once per process.

    `on_sigterm`: also write at SIGTERM. Not in forks of the pytest process: there, with
    a handler, a pool worker sent SIGTERM by `Pool.terminate()` now and then lived on, and
    the pool's owner waited for it forever (about 1 run in 40 of a fork-pool test suite
    under load, none without the handler). A fork killed before it wrote is incomplete.
    """
    global _HANDLERS_INSTALLED  # noqa: PLW0603
    if _HANDLERS_INSTALLED:
        return
    _HANDLERS_INSTALLED = True
    atexit.register(_finish)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork)
    if not write_through:
        os._exit = _exit
        _handle_signals(on_sigterm=on_sigterm)


def _finish(timeout: float = -1) -> None:
    if _RECORDING is not None:
        _RECORDING.finish(timeout)


def _exit(status: int) -> NoReturn:
    """os._exit skips atexit: write the journal's end first."""
    _finish()
    _ORIGINAL_EXIT(status)


def _handle_signals(*, on_sigterm: bool = True) -> None:
    global _FLUSH_HANDLED  # noqa: PLW0603
    if on_sigterm:
        _handle(getattr(signal, "SIGTERM", None), _on_sigterm)
    _FLUSH_HANDLED = _handle(flush_signal(), _on_flush_request)


def _handle(signum: int | None, handler: Callable[[int, FrameType | None], None]) -> bool:
    """Install `handler` if `signum` exists and has its default disposition."""
    if signum is None:
        return False
    try:
        if signal.getsignal(signum) is not signal.SIG_DFL:
            return False
        signal.signal(signum, handler)
    except ValueError:
        return False  # not the main thread: no handler possible
    return True


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    """Write the journal's end, then die of the signal as the process would have.

    Dying must not depend on the writing: an exception would go into whatever code the
    signal interrupted, and the process would live on. A journal without an end marks the
    child's data incomplete, which is safe.
    """
    try:
        _finish(_SIGNAL_TIMEOUT)
    finally:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _on_flush_request(_signum: int, _frame: FrameType | None) -> None:
    """Write what is in memory; never raise into the code the signal interrupted.

    If writing fails the journal has no end, and the child's data counts as incomplete.
    """
    with suppress(Exception):
        _finish(_SIGNAL_TIMEOUT)


def _after_fork() -> None:
    """In a fork of a child: a new child, started in the context the parent was in."""
    recording = _RECORDING
    if recording is None:
        return
    recording.journal.abandon()
    _start(recording.environment, recording.context(), recording.tracked, recording.collector)
