"""The pytest process's side of recorded child processes.

A `ChildRun` owns the run folder where the children of one recording process write their
journals (journal.py), and the environment that makes them record (spawn.py). At the end
of the run it reads the journals back as `ChildData`: lines, reads and include edges by
context name, ready for the fragment.

Attribution of a child to tests is by include edges: the context that started a child
includes its process context `child:<token>` (and pool tasks add their submitters). That
is exact as long as the child lives within what started it. A child can outlive it: a
server or a pool that a test started and left running (or kept in a module global), which
later tests then use. The run notices at the end of every test which children still run
(journal.is_running); a child still running after the test that started it ended (or
after its parent process died) is included by every test that ends while it runs. A pool
worker is the exception: every test that used it submitted a task, and includes it (the
owners of pools report their workers' process ids).

Children that keep their lines in memory (coverage's tracer) and still run when the run
ends (a pool never closed, multiprocessing's resource tracker or forkserver) are asked to
write them (journal.flush_signal) and given a few seconds to do so; what ran after that
cannot matter to any test.

A child context that one context alone includes (the usual one-shot CLI run) is folded
into that context, so the map stays as small as if the test had run the code itself.
"""

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from selector.journal import (
    SUFFIX,
    Journal,
    flush_signal,
    hold_lock,
    is_running,
    read_header,
    read_journal,
)
from selector.spawn import ChildEnvironment

UNRECORDED = ".unrecorded"
RUN_FOLDER_PREFIX = "selector-children-"
_OWNER = "owner.lock"  # locked while the recording process that made the folder runs
_CHILD = "child:"
_FLUSH_WAIT = 5.0  # seconds
_POLL = 0.02


@dataclass
class ChildData:
    """What the children of a run add to its fragment, by context name."""

    lines: dict[str, dict[str, set[int]]] = field(default_factory=dict)  # repo-relative paths
    reads: dict[str, set[str]] = field(default_factory=dict)
    includes: set[tuple[str, str]] = field(default_factory=set)
    incomplete: set[str] = field(default_factory=set)  # contexts whose child data may lack lines
    processes: int = 0
    incomplete_processes: int = 0  # killed before writing coverage's lines, or not recording
    outside: set[str] = field(default_factory=set)  # stale installed files children ran


@dataclass
class _Child:
    path: Path
    static: str  # the context that started it
    context: str  # its process context
    running: bool = True


class ChildRun:
    """The run folder of one recording process and what its children left there."""

    def __init__(self, root: str, collector: str) -> None:
        remove_abandoned_run_folders(Path(tempfile.gettempdir()))
        self.folder = Path(tempfile.mkdtemp(prefix=RUN_FOLDER_PREFIX))
        self._owner = hold_lock(self.folder / _OWNER)
        self.environment = ChildEnvironment(str(self.folder), root, collector)
        self._children: dict[str, _Child] = {}  # by journal file name
        self._ended: set[str] = set()  # tests that ended, children that died
        self._outlived: set[tuple[str, str]] = set()  # (test, child) it ran during
        self._workers: set[int] = set()  # pids of pool workers, as the pytest process saw them

    def pool_workers(self, pids: set[int]) -> None:
        """Workers of a pool that the pytest process submits tasks to."""
        self._workers.update(pids)

    def test_ended(self, context: str) -> None:
        """The test `context` ended: which children outlived what started them, or died."""
        self._discover()
        self._ended.add(context)
        for child in self._children.values():
            if not child.running:
                continue
            if child.static in self._ended and child.static != context:
                self._outlived.add((context, child.context))
            if not is_running(child.path):
                child.running = False
                self._ended.add(child.context)

    def finish(self) -> ChildData:
        """Everything the children recorded; the run folder is removed."""
        self._discover()
        self._flush_running()
        data = ChildData()
        journals = []
        try:
            for child in self._children.values():
                journal = read_journal(child.path)
                if journal is not None:
                    _add_journal(data, journal)
                    journals.append(journal)
            for marker in self.folder.glob(f"*{UNRECORDED}"):
                context = marker.read_text(encoding="utf-8").partition("\n")[0]
                data.incomplete.add(context or "session")
                data.incomplete_processes += 1
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
            if self._owner is not None:
                os.close(self._owner)
        workers = _pool_workers(journals, self._workers)
        data.includes.update(edge for edge in self._outlived if edge[1] not in workers)
        _fold(data)
        return data

    def _flush_running(self) -> None:
        """Ask running children that hold lines in memory to write them; wait a little."""
        signum = flush_signal()
        if signum is None:
            return
        waiting = []
        for child in self._children.values():
            journal = read_journal(child.path) if is_running(child.path) else None
            if journal is not None and journal.flushes and not journal.ended:
                os.kill(journal.pid, signum)
                waiting.append(child.path)
        deadline = time.monotonic() + _FLUSH_WAIT
        while waiting and time.monotonic() < deadline:
            time.sleep(_POLL)
            waiting = [path for path in waiting if is_running(path) and not _ended(path)]

    def _discover(self) -> None:
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if not entry.name.endswith(SUFFIX) or entry.name in self._children:
                    continue
                journal = read_header(Path(entry.path))
                if journal is not None:
                    self._children[entry.name] = _Child(
                        Path(entry.path), journal.static, journal.context
                    )


def remove_abandoned_run_folders(temporary: Path) -> None:
    """Delete the run folders of recordings that were killed before their end (SIGKILL).

    Only a folder whose owner lock nobody holds is abandoned: its recording process, and
    every fork of it, is gone (the kernel releases a lock however its process ends; a
    process ID could be reused, or be another PID namespace's), and nobody will read it.
    """
    try:
        entries = [
            entry for entry in os.scandir(temporary) if entry.name.startswith(RUN_FOLDER_PREFIX)
        ]
    except OSError:
        return
    for entry in entries:
        owner = Path(entry.path) / _OWNER
        try:
            # No owner lock yet: the folder of a run starting right now, or an older selector's.
            abandoned = entry.is_dir(follow_symlinks=False) and owner.exists()
            abandoned = abandoned and not is_running(owner)
        except OSError:  # another user's folder
            continue
        if abandoned:
            shutil.rmtree(entry.path, ignore_errors=True)


def _pool_workers(journals: list[Journal], pids: set[int]) -> set[str]:
    """Process contexts of pool workers: reported by a pool's owner, or having run a task."""
    pids = pids.union(*(journal.workers for journal in journals))
    return {
        journal.context
        for journal in journals
        if journal.pid in pids
        or any(included == journal.context for _task, included in journal.includes)
    }


def _ended(path: Path) -> bool:
    journal = read_journal(path)
    return journal is None or journal.ended


def _add_journal(data: ChildData, journal: Journal) -> None:
    data.processes += 1
    for context, by_path in journal.lines.items():
        target = data.lines.setdefault(context, {})
        for path, lines in by_path.items():
            target.setdefault(path, set()).update(lines)
    for context, paths in journal.reads.items():
        data.reads.setdefault(context, set()).update(paths)
    data.includes.update(journal.includes)
    data.includes.add((journal.static, journal.context))
    data.incomplete.update(journal.incomplete)
    data.outside.update(journal.outside)
    if not journal.complete:
        data.incomplete.add(journal.context)
        data.incomplete_processes += 1


def _fold(data: ChildData) -> None:
    """Merge each child context that exactly one other context includes into that one."""
    includers: dict[str, set[str]] = {}
    included: dict[str, set[str]] = {}
    for parent, child in data.includes:
        includers.setdefault(child, set()).add(parent)
        included.setdefault(parent, set()).add(child)
    pending = [context for context in includers if context.startswith(_CHILD)]
    while pending:
        child = pending.pop()
        parents = includers.get(child, set())
        if len(parents) != 1 or child in parents:
            continue
        (parent,) = parents
        _move(data, child, parent)
        del includers[child]
        included[parent].discard(child)
        for target in included.pop(child, set()):
            includers[target].discard(child)
            if target != parent:
                includers[target].add(parent)
                included[parent].add(target)
            if target.startswith(_CHILD):
                pending.append(target)
    data.includes = {(parent, child) for parent, children in included.items() for child in children}


def _move(data: ChildData, source: str, target: str) -> None:
    """What `source` ran, read and lacks becomes `target`'s."""
    for path, lines in data.lines.pop(source, {}).items():
        data.lines.setdefault(target, {}).setdefault(path, set()).update(lines)
    reads = data.reads.pop(source, None)
    if reads:
        data.reads.setdefault(target, set()).update(reads)
    if source in data.incomplete:
        data.incomplete.discard(source)
        data.incomplete.add(target)
