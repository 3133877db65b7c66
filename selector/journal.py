"""The data file of one recorded child process: an append-only journal in shared memory.

A child process can end without running any clean-up code: SIGKILL, `os._exit`, a crash,
`Pool.terminate()`. Its records are therefore written as they happen into a file mapped
with MAP_SHARED: a store into the mapping is a store into the kernel's page cache, which
outlives the process, so what a killed child recorded before it died is in the file. The
monitoring collector writes every new line this way (`write_through`); coverage's tracer
keeps its lines in memory until the process ends, so such a journal is only complete if
its end record (`E`) was written, and the reader says which journals are not. Such a
child can also be asked to write what it has while it runs (`flush_signal`), which the
pytest process does at the end of its run for children still running then.

Layout: MAGIC, a header (flags, process id, token, the context that started the process),
then records. A
record is a type byte and a payload; the type byte is stored after the payload, so a
record cut short by the child's death reads as the end of the journal (type 0, the zero
filling of the unused part of the file). Strings are defined once by an `S` record and
named by their number.

While the child lives it holds a shared `flock` on its journal; the kernel releases it
when the process ends, however it ends, so the pytest process can tell which children
still run (`is_running`).
"""

import _thread
import mmap
import os
import signal
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock, every child counts as running until the run ends
    fcntl = None  # type: ignore[assignment]

MAGIC = b"selector-journal-1\n"
SUFFIX = ".journal"
_INITIAL_SIZE = 1 << 16
_U32 = struct.Struct("<I")
_PAIR = struct.Struct("<II")
_TRIPLE = struct.Struct("<III")
_WRITE_THROUGH = 1

STRING, LINE, LINES, READ, INCLUDES, INCOMPLETE, END, FLUSHES, WORKER, STARTED, OUTSIDE = (
    b"SLMRIXEFWBO"
)


class JournalWriter:
    """Appends records to a child's journal; safe to use from several threads."""

    def __init__(self, path: Path, descriptor: int, memory: mmap.mmap, end: int) -> None:
        self.path = path
        self._descriptor = descriptor
        self._memory = memory
        self._end = end
        self._strings: dict[str, int] = {}
        self._lock = _thread.allocate_lock()

    @classmethod
    def create(
        cls, folder: str, token: str, static: str, *, write_through: bool
    ) -> "JournalWriter":
        """A new journal `<token>.journal` in `folder`, locked, with its header written.

        It is written under a temporary name and renamed, so a reader never sees a journal
        without a header, nor an unlocked journal of a running child.
        """
        temporary = Path(folder) / f".{token}.tmp"
        descriptor = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        if fcntl is not None:
            fcntl.flock(descriptor, fcntl.LOCK_SH)
        os.ftruncate(descriptor, _INITIAL_SIZE)
        memory = mmap.mmap(descriptor, _INITIAL_SIZE)
        header = _header(os.getpid(), token, static, write_through)
        memory[: len(header)] = header
        final = temporary.replace(temporary.with_name(f"{token}{SUFFIX}"))
        return cls(final, descriptor, memory, len(header))

    def string(self, text: str) -> int:
        """The number of `text`, defining it on first use."""
        number = self._strings.get(text)
        if number is None:
            with self._lock:
                number = self._strings.get(text)
                if number is None:
                    encoded = text.encode("utf-8", "surrogateescape")
                    self._append(STRING, _U32.pack(len(encoded)) + encoded)
                    number = self._strings[text] = len(self._strings)
        return number

    def line(self, context: int, path: int, line: int) -> None:
        """One line of `path` ran in `context` (numbers from `string`)."""
        with self._lock:
            self._append(LINE, _TRIPLE.pack(context, path, line))

    def lines(self, context: str, path: str, lines: Iterable[int]) -> None:
        """Many lines of `path` ran in `context`."""
        numbers = sorted(lines)
        ids = _PAIR.pack(self.string(context), self.string(path))
        payload = ids + _U32.pack(len(numbers)) + struct.pack(f"<{len(numbers)}I", *numbers)
        with self._lock:
            self._append(LINES, payload)

    def read(self, context: str, path: str) -> None:
        """`context` opened the repository file `path` for reading."""
        payload = _PAIR.pack(self.string(context), self.string(path))
        with self._lock:
            self._append(READ, payload)

    def includes(self, context: str, included: str) -> None:
        """What `included` ran counts for `context` too."""
        payload = _PAIR.pack(self.string(context), self.string(included))
        with self._lock:
            self._append(INCLUDES, payload)

    def incomplete(self, context: str) -> None:
        """The child data of `context` may lack lines (a process that records nothing)."""
        payload = _U32.pack(self.string(context))
        with self._lock:
            self._append(INCOMPLETE, payload)

    def outside(self, installed: str) -> None:
        """This process ran a stale installed copy of a repository file (installed.py)."""
        payload = _U32.pack(self.string(installed))
        with self._lock:
            self._append(OUTSIDE, payload)

    def worker(self, pid: int) -> None:
        """Process `pid` is a worker of a pool this process submits tasks to."""
        with self._lock:
            self._append(WORKER, _U32.pack(pid))

    def flushes(self) -> None:
        """This process writes its lines and an end record when sent `flush_signal()`."""
        with self._lock:
            self._append(FLUSHES, b"")

    def started(self) -> None:
        """Recording is set up: from now on the process runs code that is not selector's."""
        with self._lock:
            self._append(STARTED, b"")

    def end(self, *, timeout: float = -1) -> bool:
        """Mark the journal complete; False if the lock was not had within `timeout`.

        A signal handler passes a timeout: the thread it interrupted may hold the lock.
        """
        if not self._lock.acquire(True, timeout):
            return False
        try:
            self._append(END, b"")
        finally:
            self._lock.release()
        return True

    def lines_safely(self, lines: dict[str, dict[str, set[int]]], *, timeout: float) -> bool:
        """`lines` for every context and path, unless the lock stays taken (see `end`)."""
        if not self._lock.acquire(True, timeout):
            return False
        self._lock.release()
        for context, by_path in lines.items():
            for path, numbers in by_path.items():
                self.lines(context, path, numbers)
        return True

    def abandon(self) -> None:
        """Let go of a journal inherited through fork, leaving it to its process."""
        self._memory.close()
        os.close(self._descriptor)

    def _append(self, kind: int, payload: bytes) -> None:
        start = self._end
        end = start + 1 + len(payload)
        if end >= len(self._memory):
            self._memory.resize(max(2 * len(self._memory), end + _INITIAL_SIZE))
        self._memory[start + 1 : end] = payload
        self._memory[start] = kind
        self._end = end


def _header(pid: int, token: str, static: str, write_through: bool) -> bytes:
    parts = [MAGIC, bytes([_WRITE_THROUGH if write_through else 0]), _U32.pack(pid)]
    for text in (token, static):
        encoded = text.encode("utf-8", "surrogateescape")
        parts += [_U32.pack(len(encoded)), encoded]
    return b"".join(parts)


@dataclass
class Journal:
    """What one child process recorded, as read back by the pytest process."""

    pid: int
    token: str
    static: str  # the context that started the process
    write_through: bool
    ended: bool = False
    flushes: bool = False  # on flush_signal()
    started: bool = False  # done setting up; before, it ran no code but selector's
    lines: dict[str, dict[str, set[int]]] = field(default_factory=dict)
    reads: dict[str, set[str]] = field(default_factory=dict)
    includes: set[tuple[str, str]] = field(default_factory=set)
    incomplete: set[str] = field(default_factory=set)
    workers: set[int] = field(default_factory=set)  # pids of its pools' workers
    outside: set[str] = field(default_factory=set)  # stale installed files it ran

    @property
    def context(self) -> str:
        """The child's process context: whatever it ran outside pool tasks."""
        return f"child:{self.token}"

    @property
    def complete(self) -> bool:
        """Whether every line the child ran is in the journal.

        A child that ended before it started (killed while it set up recording, say a pool
        worker terminated right after its fork) ran nothing of the project's.
        """
        return self.write_through or self.ended or not self.started


class _Cursor:
    """Reads the journal's bytes front to back; `None` at a record cut short."""

    def __init__(self, data: bytes, offset: int) -> None:
        self.data = data
        self.offset = offset

    def take(self, size: int) -> bytes | None:
        end = self.offset + size
        if end > len(self.data):
            return None
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def text(self) -> str | None:
        size = self.take(_U32.size)
        if size is None:
            return None
        encoded = self.take(_U32.unpack(size)[0])
        return None if encoded is None else encoded.decode("utf-8", "surrogateescape")

    def numbers(self, layout: struct.Struct) -> tuple[int, ...] | None:
        chunk = self.take(layout.size)
        return None if chunk is None else layout.unpack(chunk)


def read_header(path: Path) -> Journal | None:
    """The journal at `path` without its records (None if it is not one)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    parsed = _parse_header(data)
    return None if parsed is None else parsed[0]


def read_journal(path: Path) -> Journal | None:
    """Everything the journal at `path` holds (None if it is not one)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    parsed = _parse_header(data)
    if parsed is None:
        return None
    journal, cursor = parsed
    strings: list[str] = []
    while cursor.offset < len(data) and _read_record(journal, cursor, strings):
        pass
    return journal


def _parse_header(data: bytes) -> tuple[Journal, _Cursor] | None:
    if not data.startswith(MAGIC):
        return None
    cursor = _Cursor(data, len(MAGIC))
    flags = cursor.take(1)
    pid = cursor.numbers(_U32)
    token = cursor.text()
    static = cursor.text()
    if flags is None or pid is None or token is None or static is None:
        return None
    return Journal(pid[0], token, static, bool(flags[0] & _WRITE_THROUGH)), cursor


def _read_record(journal: Journal, cursor: _Cursor, strings: list[str]) -> bool:
    """Apply one record to `journal`; False at the end (or at a record cut short)."""
    kind = cursor.take(1)
    if kind is None or kind[0] == 0:
        return False
    kind_byte = kind[0]
    if kind_byte == STRING:
        text = cursor.text()
        if text is None:
            return False
        strings.append(text)
        return True
    if kind_byte == END:
        journal.ended = True
        return True
    if kind_byte == FLUSHES:
        journal.flushes = True
        return True
    if kind_byte == STARTED:
        journal.started = True
        return True
    if kind_byte == LINES:
        return _read_lines(journal, cursor, strings)
    if kind_byte == WORKER:
        pid = cursor.numbers(_U32)
        if pid is not None:
            journal.workers.add(pid[0])
        return pid is not None
    layout = {LINE: _TRIPLE, READ: _PAIR, INCLUDES: _PAIR, INCOMPLETE: _U32, OUTSIDE: _U32}.get(
        kind_byte
    )
    if layout is None:
        return False
    numbers = cursor.numbers(layout)
    if numbers is None or max(numbers[:2]) >= len(strings):
        return False
    first = strings[numbers[0]]
    if kind_byte == LINE:
        journal.lines.setdefault(first, {}).setdefault(strings[numbers[1]], set()).add(numbers[2])
    elif kind_byte == READ:
        journal.reads.setdefault(first, set()).add(strings[numbers[1]])
    elif kind_byte == INCLUDES:
        journal.includes.add((first, strings[numbers[1]]))
    elif kind_byte == OUTSIDE:
        journal.outside.add(first)
    else:
        journal.incomplete.add(first)
    return True


def _read_lines(journal: Journal, cursor: _Cursor, strings: list[str]) -> bool:
    head = cursor.numbers(_TRIPLE)
    if head is None or max(head[:2]) >= len(strings):
        return False
    chunk = cursor.take(head[2] * _U32.size)
    if chunk is None:
        return False
    lines = journal.lines.setdefault(strings[head[0]], {}).setdefault(strings[head[1]], set())
    lines.update(struct.unpack(f"<{head[2]}I", chunk))
    return True


def flush_signal() -> int | None:
    """The signal that asks a child to write its lines: a real-time one, which nobody uses."""
    first: int | None = getattr(signal, "SIGRTMIN", None)
    return None if first is None else first + 5


def hold_lock(path: Path) -> int | None:
    """Create `path` locked for as long as this process (or a fork of it) keeps the returned
    descriptor open, so `is_running(path)` tells others whether it still runs.

    Like a journal, the file is locked under a temporary name and renamed: nobody ever sees
    it unlocked while its holder runs. None where there is no flock.
    """
    if fcntl is None:
        return None
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_SH)
    temporary.replace(path)
    return descriptor


def is_running(path: Path) -> bool:
    """Whether the process writing the journal at `path` (or a fork of it) still runs."""
    if fcntl is None:
        return True
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False
