"""Looking into a map: which tests run some code, exports, statistics.

Everything a map knows should be easy to see: `lookup` answers "which tests run this line
or function", `export` hands the map to coverage.py (one context per test, for
`coverage html --show-contexts`) or to a spreadsheet, `stats` shows its shape.
Line numbers are those of the map's own commit.
"""

import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from coverage import CoverageData

from selector import scopes
from selector.mapdb import MapData, MapIndex, TestResult

_LINES = re.compile(r"^(?P<start>\d+)(?:-(?P<end>\d+))?$")


class TargetError(Exception):
    """The target cannot be looked up (one-line message)."""


@dataclass(frozen=True)
class Target:
    """What `lookup` was asked about: a file, optionally lines or a function/class."""

    path: str
    lines: range | None = None
    name: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Target":
        """`PATH`, `PATH:LINE`, `PATH:START-END`, `PATH::Class.method` or `PATH:function`."""
        path, separator, rest = text.partition("::")
        if separator:
            return cls(path, name=rest)
        path, separator, rest = text.rpartition(":")
        if not separator:
            return cls(text)
        match = _LINES.match(rest)
        if match is None:
            return cls(path, name=rest)
        start = int(match["start"])
        end = int(match["end"] or start)
        if end < start:
            raise TargetError(f"{text}: the range ends before it starts")
        return cls(path, lines=range(start, end + 1))


def _named_lines(source: bytes | None, target: Target) -> range:
    """The lines of the function or class `target.name` in the map commit's source."""
    tree = scopes.parse(source) if source is not None else None
    if tree is None:
        raise TargetError(f"{target.path} is not a Python file the map's commit can parse")
    functions = scopes.function_scopes(tree)
    if target.name in functions:
        first, last = functions[target.name].body
        return range(first, last + 1)
    for name, span in scopes.class_spans(tree).items():
        if name == target.name:
            return range(span[0], span[1] + 1)
    raise TargetError(f"{target.path} has no function or class {target.name!r}")


def lookup(index: MapIndex, target: Target, source: bytes | None) -> dict[str, TestResult]:
    """The recorded tests that run the target code (or read the target file)."""
    if target.path not in index.blobs:
        raise TargetError(f"the map has no record of {target.path}")
    lines = target.lines
    if target.name is not None:
        lines = _named_lines(source, target)
    nodeids = index.tests_running(target.path, lines)
    if lines is None:
        nodeids |= index.tests_reading(target.path)
    return {nodeid: index.tests[nodeid] for nodeid in sorted(nodeids) if nodeid in index.tests}


def export_coverage(data: MapData, root: Path, destination: Path) -> int:
    """A coverage.py data file with one context per test; returns the number of tests."""
    destination.unlink(missing_ok=True)
    coverage_data = CoverageData(basename=str(destination))
    for nodeid in sorted(data.tests):
        coverage_data.set_context(nodeid)
        lines = data.test_lines(nodeid)
        coverage_data.add_lines(
            {str(root / path): sorted(numbers) for path, numbers in lines.items()}
        )
    coverage_data.write()
    return len(data.tests)


def export_csv(data: MapData, destination: Path, sources: dict[str, bytes | None], by: str) -> int:
    """Rows of (test, file, line) or, with `by="function"`, (test, file, function)."""
    function_of = _function_finders(sources) if by == "function" else {}
    rows = 0
    with destination.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["test", "file", by])
        for nodeid in sorted(data.tests):
            for path, numbers in sorted(data.test_lines(nodeid).items()):
                cells: list[int] | list[str]
                if by == "line":
                    cells = sorted(numbers)
                else:
                    finder = function_of.get(path)
                    cells = sorted({finder(number) if finder else "" for number in numbers})
                for cell in cells:
                    writer.writerow([nodeid, path, cell])
                    rows += 1
    return rows


def _function_finders(sources: dict[str, bytes | None]) -> dict[str, "_FunctionFinder"]:
    finders = {}
    for path, source in sources.items():
        tree = scopes.parse(source) if source is not None else None
        if tree is not None:
            finders[path] = _FunctionFinder(scopes.function_scopes(tree))
    return finders


class _FunctionFinder:
    """Line -> the innermost function whose body holds it ('<module>' outside any)."""

    def __init__(self, functions: dict[str, scopes.FunctionScope]) -> None:
        self._functions = functions

    def __call__(self, line: int) -> str:
        found = scopes.innermost_function(self._functions, line)
        return "<module>" if found is None else found.qualname


@dataclass(frozen=True)
class Stats:
    """The shape of a map."""

    tests: int
    files: int
    total_duration: float
    longest: list[tuple[str, float]]
    tests_per_file: list[tuple[str, int]]
    most_coupled: list[tuple[str, int]]
    widest_tests: list[tuple[str, int]]
    outcomes: dict[str, int]


def stats(data: MapData, index: MapIndex, top: int = 10) -> Stats:
    """Counts, durations, and where coupling is highest."""
    by_duration = sorted(data.tests.items(), key=lambda pair: -pair[1].duration)
    per_file = Counter(test.path or "?" for test in data.tests.values())
    source_files = sorted(path for path in index.blobs if path.endswith(".py"))
    coupled = sorted(
        ((path, len(index.tests_running(path))) for path in source_files),
        key=lambda pair: (-pair[1], pair[0]),
    )
    widest = sorted(
        ((nodeid, len(data.test_lines(nodeid))) for nodeid in data.tests),
        key=lambda pair: (-pair[1], pair[0]),
    )
    return Stats(
        tests=len(data.tests),
        files=len(index.blobs),
        total_duration=sum(test.duration for test in data.tests.values()),
        longest=[(nodeid, test.duration) for nodeid, test in by_duration[:top]],
        tests_per_file=per_file.most_common(top),
        most_coupled=coupled[:top],
        widest_tests=widest[:top],
        outcomes=dict(Counter(test.outcome for test in data.tests.values())),
    )
