"""The map: what one test run learned at one commit, as a single SQLite file.

Lines are attributed to *contexts*, not directly to tests, because much of what a test
depends on is shared: the setup of a session fixture, the import of a module, the
collection of a test file. Storing each of those once and linking tests to them keeps the
map small and makes "every test that uses this fixture" a join instead of a copy.

* `context (kind, name)`: kind is `test` (name: node ID), `fixture` (`baseid::name`),
  `import` (repo-relative path of the module), `collect` (collector node ID), `session`,
  `child` (a random token: what a child process ran outside pool tasks), `incomplete`
  (the one context `INCOMPLETE`, without lines: a context that includes it has child
  process data that may lack lines, and depends on every file of the project) or `mined`
  (the one context `MINED`, without lines: the files whose literals Hypothesis mined for
  the data its `@given` tests draw, which include it).
* `line_bits`: per context and file, the executed lines as coverage.py numbits, normalised
  to the first line of their statement.
* `includes`: context A includes context B when everything B ran counts for A too (a test
  includes its wide fixtures, its module's import, the imports that import made, ...).
  Only direct edges are stored; readers follow them transitively.
* `file_read`: repository files a context opened for reading.
* `meta`: key/value pairs; `installed_outside` (optional, JSON) lists the distributions
  built from the repository that the run imported from an installed copy differing from
  the checkout (installed.py): a change to their sources must run every test.

A map is written to a temporary file in the destination folder and renamed into place,
so an interrupted writer never leaves a half-written map behind.
"""

import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from coverage.numbits import numbits_to_nums, numbits_union, nums_to_numbits

from selector.installed import OutsideInstall

SCHEMA_VERSION = 3

ContextKey = tuple[str, str]  # (kind, name)
_SQL_VARIABLES = 500  # bound parameters per statement, well under SQLite's limit
SESSION: ContextKey = ("session", "")
INCOMPLETE: ContextKey = ("incomplete", "")
MINED: ContextKey = ("mined", "hypothesis")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE file (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, blob TEXT);
CREATE TABLE context (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    early INTEGER NOT NULL,
    UNIQUE (kind, name)
);
CREATE TABLE test (
    id INTEGER PRIMARY KEY,
    nodeid TEXT NOT NULL UNIQUE,
    context_id INTEGER NOT NULL REFERENCES context (id),
    path TEXT,
    duration REAL NOT NULL,
    outcome TEXT NOT NULL,
    markers TEXT NOT NULL
);
CREATE TABLE line_bits (
    context_id INTEGER NOT NULL REFERENCES context (id),
    file_id INTEGER NOT NULL REFERENCES file (id),
    numbits BLOB NOT NULL,
    PRIMARY KEY (context_id, file_id)
) WITHOUT ROWID;
CREATE INDEX line_bits_by_file ON line_bits (file_id);
CREATE TABLE file_read (
    context_id INTEGER NOT NULL REFERENCES context (id),
    file_id INTEGER NOT NULL REFERENCES file (id),
    PRIMARY KEY (context_id, file_id)
) WITHOUT ROWID;
CREATE INDEX file_read_by_file ON file_read (file_id);
CREATE TABLE includes (
    context_id INTEGER NOT NULL REFERENCES context (id),
    included_id INTEGER NOT NULL REFERENCES context (id),
    PRIMARY KEY (context_id, included_id)
) WITHOUT ROWID;
CREATE INDEX includes_reverse ON includes (included_id);
CREATE TABLE collected (nodeid TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE code (file_id INTEGER PRIMARY KEY REFERENCES file (id), data TEXT NOT NULL);
CREATE TABLE code_name (
    name TEXT NOT NULL,
    file_id INTEGER NOT NULL REFERENCES file (id),
    PRIMARY KEY (name, file_id)
) WITHOUT ROWID;
"""
# A file's code index (codeindex.py): its JSON text, and the words a lookup finds it by.
StoredCode = tuple[str, tuple[str, ...]]


class MapError(Exception):
    """A map that cannot be used; str(error) says why in one line."""


@dataclass(frozen=True)
class MapMeta:
    """Where and how a map was recorded."""

    commit: str | None
    dirty: bool
    variant: str
    tool_version: str
    created: str  # ISO 8601, UTC
    collector: str
    python: str
    outside: tuple[OutsideInstall, ...] = ()


@dataclass
class Context:
    """What one context ran (numbits per file), read, and includes."""

    lines: dict[str, bytes] = field(default_factory=dict)
    reads: set[str] = field(default_factory=set)
    includes: set[ContextKey] = field(default_factory=set)
    # Every line of it ran before the first test of its process started (in every process
    # that ran it): no test can have left it a cached result (see cached.py).
    early: bool = False

    def add_lines(self, path: str, lines: Iterable[int]) -> None:
        """Add executed line numbers of `path`."""
        bits = nums_to_numbits(lines)
        old = self.lines.get(path)
        self.lines[path] = bits if old is None else numbits_union(old, bits)


@dataclass(frozen=True)
class TestResult:
    """How a test ended in the recorded run. Its lines live in context ("test", node ID)."""

    __test__ = False  # not a test class, though pytest's name rule says so

    duration: float
    outcome: str  # passed, failed, error, skipped, xfailed, xpassed
    path: str | None  # repo-relative file that defines the test
    markers: tuple[str, ...] = ()  # names of the pytest markers it carries


@dataclass
class MapData:
    """A whole map in memory (used to write fragments and to merge them)."""

    meta: MapMeta
    files: dict[str, str | None] = field(default_factory=dict)  # path -> git blob id
    contexts: dict[ContextKey, Context] = field(default_factory=dict)
    tests: dict[str, TestResult] = field(default_factory=dict)
    collected: set[str] = field(default_factory=set)
    code: dict[str, StoredCode] = field(default_factory=dict)  # Python file -> its index

    def context(self, key: ContextKey) -> Context:
        """The context `key`, created empty if new."""
        found = self.contexts.get(key)
        if found is None:
            found = self.contexts[key] = Context()
        return found

    def test_lines(self, nodeid: str) -> dict[str, set[int]]:
        """Every line the test depends on: its own and all that its contexts include."""
        lines: dict[str, set[int]] = {}
        for key in self.closure(("test", nodeid)):
            for path, bits in self.contexts[key].lines.items():
                lines.setdefault(path, set()).update(numbits_to_nums(bits))
        return lines

    def closure(self, start: ContextKey) -> set[ContextKey]:
        """`start` and every context it includes, transitively."""
        seen = {start} if start in self.contexts else set()
        pending = list(seen)
        while pending:
            for included in self.contexts[pending.pop()].includes:
                if included not in seen and included in self.contexts:
                    seen.add(included)
                    pending.append(included)
        return seen


# -- writing ------------------------------------------------------------------------


@contextlib.contextmanager
def _atomic_path(destination: Path) -> Iterator[Path]:
    """A temporary path beside `destination`, renamed onto it if the block succeeds."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent
    )
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        temporary.replace(destination)
    finally:
        temporary.unlink(missing_ok=True)


def write_map(destination: Path, data: MapData) -> None:
    """Write `data` as a complete map at `destination`, atomically."""
    with _atomic_path(destination) as temporary:
        connection = sqlite3.connect(temporary)
        try:
            connection.executescript(
                "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" + _SCHEMA
            )
            with connection:
                _insert(connection, data)
            connection.execute("VACUUM")
        finally:
            connection.close()
        with temporary.open("rb") as written:
            os.fsync(written.fileno())


def _outside_rows(outside: tuple[OutsideInstall, ...]) -> list[tuple[str, str]]:
    """The `installed_outside` meta row, only where there is something to say."""
    if not outside:
        return []
    items = [
        {"distribution": item.distribution, "location": item.location, "sources": item.sources}
        for item in outside
    ]
    return [("installed_outside", json.dumps(items))]


def _read_outside(text: str | None) -> tuple[OutsideInstall, ...]:
    if not text:
        return ()
    try:
        return tuple(
            OutsideInstall(item["distribution"], item["location"], tuple(item["sources"]))
            for item in json.loads(text)
        )
    except (ValueError, TypeError, KeyError) as error:
        raise MapError(
            f"the map's installed_outside entry is unreadable ({error}); re-record it"
        ) from None


def _insert(connection: sqlite3.Connection, data: MapData) -> None:
    meta = data.meta
    connection.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?)",
        [
            ("schema_version", str(SCHEMA_VERSION)),
            ("commit", meta.commit),
            ("dirty", "1" if meta.dirty else "0"),
            ("variant", meta.variant),
            ("tool_version", meta.tool_version),
            ("created", meta.created),
            ("collector", meta.collector),
            ("python", meta.python),
            *_outside_rows(meta.outside),
        ],
    )
    paths = set(data.files) | set(data.code)
    for context in data.contexts.values():
        paths.update(context.lines)
        paths.update(context.reads)
    file_ids = {path: index for index, path in enumerate(sorted(paths), start=1)}
    connection.executemany(
        "INSERT INTO file (id, path, blob) VALUES (?, ?, ?)",
        [(file_id, path, data.files.get(path)) for path, file_id in file_ids.items()],
    )
    context_ids = {key: index for index, key in enumerate(sorted(data.contexts), start=1)}
    connection.executemany(
        "INSERT INTO context (id, kind, name, early) VALUES (?, ?, ?, ?)",
        [
            (context_id, kind, name, int(data.contexts[kind, name].early))
            for (kind, name), context_id in context_ids.items()
        ],
    )
    connection.executemany(
        "INSERT INTO line_bits (context_id, file_id, numbits) VALUES (?, ?, ?)",
        [
            (context_ids[key], file_ids[path], bits)
            for key, context in data.contexts.items()
            for path, bits in context.lines.items()
        ],
    )
    connection.executemany(
        "INSERT INTO file_read (context_id, file_id) VALUES (?, ?)",
        [
            (context_ids[key], file_ids[path])
            for key, context in data.contexts.items()
            for path in context.reads
        ],
    )
    connection.executemany(
        "INSERT INTO includes (context_id, included_id) VALUES (?, ?)",
        [
            (context_ids[key], context_ids[included])
            for key, context in data.contexts.items()
            for included in context.includes
            if included in context_ids
        ],
    )
    connection.executemany(
        "INSERT INTO test (nodeid, context_id, path, duration, outcome, markers)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                nodeid,
                context_ids[("test", nodeid)],
                test.path,
                test.duration,
                test.outcome,
                " ".join(test.markers),
            )
            for nodeid, test in sorted(data.tests.items())
            if ("test", nodeid) in context_ids
        ],
    )
    connection.executemany(
        "INSERT INTO collected (nodeid) VALUES (?)", [(nodeid,) for nodeid in data.collected]
    )
    connection.executemany(
        "INSERT INTO code (file_id, data) VALUES (?, ?)",
        [(file_ids[path], text) for path, (text, _words) in data.code.items()],
    )
    connection.executemany(
        "INSERT INTO code_name (name, file_id) VALUES (?, ?)",
        [(word, file_ids[path]) for path, (_text, words) in data.code.items() for word in words],
    )


# -- reading ------------------------------------------------------------------------


def connect(path: Path, *, verified: bool = False, name: str | None = None) -> sqlite3.Connection:
    """Open a map read-only after checking that it is one this version can use.

    SQLite's integrity check reads every page; a map the store has just checked against
    its checksum (`verified`) skips it. Messages call the map `name` if given: an unpacked
    copy of a stored map is gone when the command ends, the stored map is what to fix.
    """
    shown = name or path
    if not path.is_file():
        raise MapError(f"no map at {shown}")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.DatabaseError as error:  # the file cannot be opened: permissions, a lock
        raise MapError(f"cannot open {shown} ({error})") from None
    try:
        meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
        if not verified and connection.execute("PRAGMA quick_check").fetchone() != ("ok",):
            raise MapError(f"{shown} is corrupt (SQLite integrity check failed); re-record it")
    except sqlite3.DatabaseError as error:
        connection.close()
        raise MapError(f"{shown} is not a readable selector map ({error}); re-record it") from None
    except MapError:
        connection.close()
        raise
    version = meta.get("schema_version")
    if version != str(SCHEMA_VERSION):
        connection.close()
        raise MapError(
            f"{shown} has map schema version {version}, this selector reads version "
            f"{SCHEMA_VERSION}; re-record it with this version"
        )
    return connection


def read_meta(connection: sqlite3.Connection) -> MapMeta:
    """The meta data of an open map."""
    meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
    return MapMeta(
        commit=meta.get("commit"),
        dirty=meta.get("dirty") == "1",
        variant=meta["variant"],
        tool_version=meta["tool_version"],
        created=meta["created"],
        collector=meta["collector"],
        python=meta["python"],
        outside=_read_outside(meta.get("installed_outside")),
    )


def read_tests(connection: sqlite3.Connection) -> dict[str, TestResult]:
    """Every recorded test of an open map."""
    return {
        nodeid: TestResult(duration, outcome, path, tuple(markers.split()))
        for nodeid, path, duration, outcome, markers in connection.execute(
            "SELECT nodeid, path, duration, outcome, markers FROM test"
        )
    }


def read_map(path: Path, *, name: str | None = None) -> MapData:
    """Load a whole map into memory (`name`: how messages call it, as in `connect`)."""
    connection = connect(path, name=name)
    try:
        return _load(connection)
    except (sqlite3.DatabaseError, KeyError) as error:
        raise MapError(
            f"{name or path} is not a readable selector map ({error}); re-record it"
        ) from None
    finally:
        connection.close()


def _load(connection: sqlite3.Connection) -> MapData:
    data = MapData(meta=read_meta(connection))
    paths = dict(connection.execute("SELECT id, path FROM file").fetchall())
    data.files = dict(connection.execute("SELECT path, blob FROM file").fetchall())
    keys: dict[int, ContextKey] = {}
    for context_id, kind, name, early in connection.execute(
        "SELECT id, kind, name, early FROM context"
    ):
        keys[context_id] = (kind, name)
        data.contexts[kind, name] = Context(early=bool(early))
    for context_id, file_id, bits in connection.execute(
        "SELECT context_id, file_id, numbits FROM line_bits"
    ):
        data.contexts[keys[context_id]].lines[paths[file_id]] = bits
    for context_id, file_id in connection.execute("SELECT context_id, file_id FROM file_read"):
        data.contexts[keys[context_id]].reads.add(paths[file_id])
    for context_id, included_id in connection.execute(
        "SELECT context_id, included_id FROM includes"
    ):
        data.contexts[keys[context_id]].includes.add(keys[included_id])
    data.tests = read_tests(connection)
    data.collected = {nodeid for (nodeid,) in connection.execute("SELECT nodeid FROM collected")}
    words: dict[int, list[str]] = {}
    for word, file_id in connection.execute("SELECT name, file_id FROM code_name"):
        words.setdefault(file_id, []).append(word)
    data.code = {
        paths[file_id]: (text, tuple(sorted(words.get(file_id, ()))))
        for file_id, text in connection.execute("SELECT file_id, data FROM code")
    }
    return data


# -- merging ------------------------------------------------------------------------


def merge(maps: list[MapData], meta: MapMeta) -> MapData:
    """One map from fragments of the same commit and variant.

    Fragments are applied oldest first. A test recorded in several fragments keeps the
    newest recording (its own context is replaced, not united); shared contexts (imports,
    fixtures, collection) are united, since every fragment's run really executed them. A
    shared context is early only if it was early in every fragment.
    """
    merged = MapData(meta=meta)
    for fragment in sorted(maps, key=lambda data: data.meta.created):
        merged.files.update(fragment.files)
        merged.collected.update(fragment.collected)
        merged.code.update(fragment.code)
        merged.tests.update(fragment.tests)
        for key, context in fragment.contexts.items():
            if key[0] == "test":
                merged.contexts[key] = Context(
                    dict(context.lines), set(context.reads), set(context.includes)
                )
                continue
            new = key not in merged.contexts
            target = merged.context(key)
            target.early = context.early and (new or target.early)
            for path, bits in context.lines.items():
                old = target.lines.get(path)
                target.lines[path] = bits if old is None else numbits_union(old, bits)
            target.reads.update(context.reads)
            target.includes.update(context.includes)
    return merged


# -- querying -----------------------------------------------------------------------

# The tests are named by the reached contexts' own rows (a test's context is ("test", nodeid)),
# found by primary key. Joining `test`, which has no index on context_id, made SQLite scan every
# test and build a throwaway index on each query: most of a query's time on a large map.
_TESTS_ABOVE = """
WITH RECURSIVE reached (id) AS (
    {seed}
    UNION
    SELECT includes.context_id FROM includes JOIN reached ON includes.included_id = reached.id
)
SELECT context.name FROM reached JOIN context ON context.id = reached.id
WHERE context.kind = 'test'
"""


def _bit_numbers(value: int) -> Iterator[int]:
    """The numbers of the set bits of `value` (the lines of a numbits integer)."""
    while value:
        low = value & -value
        yield low.bit_length() - 1
        value ^= low


def _lines_intersect(numbits: bytes, lines: bytes) -> bool:
    """Whether two numbits share a line, as one integer AND.

    coverage's `numbits_any_intersection` answers the same in a Python loop over byte pairs,
    and this runs for every context that executed a changed file.
    """
    return bool(int.from_bytes(numbits, "little") & int.from_bytes(lines, "little"))


class MapIndex:
    """Read-only questions a plan asks of a stored map, answered by SQL on the file.

    "Which tests depend on these lines" starts from the contexts that ran the lines and
    follows `includes` upwards to the tests, so a line run once by a session fixture
    reaches every test that uses the fixture.
    """

    def __init__(self, path: Path, *, verified: bool = False, name: str | None = None) -> None:
        self.path = path
        self.name = name or str(path)  # how messages call the map (see `connect`)
        self._connection = connect(path, verified=verified, name=name)
        self._connection.create_function("lines_intersect", 2, _lines_intersect, deterministic=True)
        try:
            self.meta = read_meta(self._connection)
            self.blobs: dict[str, str | None] = dict(
                self._connection.execute("SELECT path, blob FROM file").fetchall()
            )
            self._file_ids: dict[str, int] = dict(
                self._connection.execute("SELECT path, id FROM file").fetchall()
            )
            self.tests = read_tests(self._connection)
            self.collected = {
                nodeid for (nodeid,) in self._connection.execute("SELECT nodeid FROM collected")
            }
        except (sqlite3.DatabaseError, KeyError) as error:
            self._connection.close()
            raise MapError(
                f"{self.name} is not a readable selector map ({error}); re-record it"
            ) from None

    def close(self) -> None:
        """Release the file."""
        self._connection.close()

    def tests_running(self, path: str, lines: Iterable[int] | None = None) -> set[str]:
        """Tests that depend on any of `lines` of `path` (any line at all if None)."""
        file_id = self._file_ids.get(path)
        if file_id is None:
            return set()
        parameters: list[object] = [file_id]
        if lines is None:
            seed = "SELECT context_id FROM line_bits WHERE file_id = ?"
        else:
            seed = (
                "SELECT context_id FROM line_bits WHERE file_id = ? AND lines_intersect(numbits, ?)"
            )
            parameters.append(nums_to_numbits(lines))
        return self._tests_above(seed, parameters)

    def contexts_running(self, path: str, lines: Iterable[int]) -> set[ContextKey]:
        """The contexts that ran any of `lines` of `path` themselves (not through includes)."""
        file_id = self._file_ids.get(path)
        if file_id is None:
            return set()
        rows = self._connection.execute(
            "SELECT context.kind, context.name FROM line_bits"
            " JOIN context ON context.id = line_bits.context_id"
            " WHERE line_bits.file_id = ? AND lines_intersect(line_bits.numbits, ?)",
            [file_id, nums_to_numbits(lines)],
        )
        return {(kind, name) for kind, name in rows}

    def contexts_reading(self, path: str) -> set[ContextKey]:
        """The contexts that opened `path` for reading themselves (not through includes)."""
        file_id = self._file_ids.get(path)
        if file_id is None:
            return set()
        rows = self._connection.execute(
            "SELECT context.kind, context.name FROM file_read"
            " JOIN context ON context.id = file_read.context_id WHERE file_read.file_id = ?",
            [file_id],
        )
        return {(kind, name) for kind, name in rows}

    def lines_run(self, path: str) -> tuple[set[int], set[int]]:
        """Lines of `path` that ran: in early contexts, and in the others."""
        file_id = self._file_ids.get(path)
        early: set[int] = set()
        late: set[int] = set()
        if file_id is None:
            return early, late
        rows = self._connection.execute(
            "SELECT line_bits.numbits, context.early FROM line_bits"
            " JOIN context ON context.id = line_bits.context_id WHERE line_bits.file_id = ?",
            [file_id],
        )
        union = [0, 0]  # numbits as integers (bit n: line n), united with one OR each
        for bits, is_early in rows:
            union[bool(is_early)] |= int.from_bytes(bits, "little")
        late.update(_bit_numbers(union[0]))
        early.update(_bit_numbers(union[1]))
        return early, late

    def tests_running_any(
        self, spans: Iterable[tuple[str, range]], *, early_contexts: bool = True
    ) -> set[str]:
        """Tests that depend on a line of any (path, lines) span, in one query.

        Without `early_contexts`, what ran in early contexts does not count.
        """
        seeds: list[str] = []
        parameters: list[object] = []
        for path, lines in spans:
            file_id = self._file_ids.get(path)
            if file_id is not None:
                seeds.append("(file_id = ? AND lines_intersect(numbits, ?))")
                parameters += [file_id, nums_to_numbits(lines)]
        if not seeds:
            return set()
        seed = f"SELECT context_id FROM line_bits WHERE ({' OR '.join(seeds)})"
        if not early_contexts:
            seed += " AND context_id IN (SELECT id FROM context WHERE NOT early)"
        return self._tests_above(seed, parameters)

    def code(self, path: str) -> str | None:
        """The code index (codeindex.py) of `path` as recorded, if the map has one."""
        file_id = self._file_ids.get(path)
        row = self._connection.execute(
            "SELECT data FROM code WHERE file_id = ?", [file_id]
        ).fetchone()
        return None if row is None else str(row[0])

    def indexed_files(self) -> set[str]:
        """The files the map has a code index of."""
        rows = self._connection.execute(
            "SELECT file.path FROM code JOIN file ON file.id = code.file_id"
        )
        return {path for (path,) in rows}

    def files_naming(self, words: Iterable[str]) -> dict[str, set[str]]:
        """For each word, the indexed files whose code index lists it (one query)."""
        wanted = sorted(set(words))
        found: dict[str, set[str]] = {word: set() for word in wanted}
        for start in range(0, len(wanted), _SQL_VARIABLES):
            chunk = wanted[start : start + _SQL_VARIABLES]
            rows = self._connection.execute(
                "SELECT code_name.name, file.path FROM code_name"
                " JOIN file ON file.id = code_name.file_id"
                f" WHERE code_name.name IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            for word, path in rows:
                found[word].add(path)
        return found

    def tests_reading(self, path: str) -> set[str]:
        """Tests that depend on a context that opened `path` for reading."""
        file_id = self._file_ids.get(path)
        if file_id is None:
            return set()
        return self._tests_above("SELECT context_id FROM file_read WHERE file_id = ?", [file_id])

    def tests_including(self, kind: str, name: str) -> set[str]:
        """Tests that include the context (kind, name), directly or through others."""
        return self.tests_including_any({(kind, name)})

    def tests_including_any(self, keys: Iterable[ContextKey]) -> set[str]:
        """Tests that include any of the contexts, directly or through others."""
        wanted = sorted(keys)
        tests: set[str] = set()
        step = _SQL_VARIABLES // 2
        for start in range(0, len(wanted), step):
            chunk = wanted[start : start + step]
            seed = "SELECT id FROM context WHERE " + " OR ".join(
                ["(kind = ? AND name = ?)"] * len(chunk)
            )
            tests |= self._tests_above(seed, [part for key in chunk for part in key])
        return tests

    def _tests_above(self, seed: str, parameters: list[object]) -> set[str]:
        """Recorded tests whose contexts include a seed context, directly or not.

        A test context without a recorded result is not a test of the map (the `test` table
        is what lists them), hence the check against `self.tests`.
        """
        query = _TESTS_ABOVE.format(seed=seed)
        rows = self._connection.execute(query, parameters)
        return {nodeid for (nodeid,) in rows if nodeid in self.tests}
