"""How balanced are selector's shards, next to pytest-split's, on the same durations?

    python bench/shards.py [--python 3.13]

For N = 2, 4, 8 and 16 shards, reports the makespan (the longest shard's total duration, which
is how long CI waits) of selector's shards, of pytest-split's ``least_duration`` and of its
``duration_based_chunks``, next to the lower bound max(total / N, longest test) that no split of
whole tests can beat. Two duration sets (see ``_durations.py``): attrs' suite as recorded in a
selector map, and a synthetic long tail.

Both tools run their own code, unmodified: selector from the working tree in the suite's
virtualenv (where it is installed editable), pytest-split from PyPI in a virtualenv of its own;
each gets the durations as JSON and says which shard every test lands in. The makespans are then
computed here, with one ruler, from per-test durations: selector shards recorded tests one by one
(as ``selector plan`` does, so a parametrised test can spread over shards), and a test goes where
``shard_of`` sends it, as in CI.

Exits 1 if selector's makespan is above ``least_duration``'s anywhere (by more than 1 ms, see
``TIE``), or more than 5% above the lower bound for N <= 8 on the real suite (the target of the
"Balanced shards" issue); the report then says what limits it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _durations import SUITE, DurationSet, recorded, synthetic
from _suite import CACHE, REPO_ROOT, find_python, make_venv, run
from record_overhead import prepare

COUNTS = (2, 4, 8, 16)
PYTEST_SPLIT = "0.11.0"
# pytest-split needs pytest; pinned too, so that the environment is the same on every machine.
PYTEST_SPLIT_REQUIREMENTS = (f"pytest-split=={PYTEST_SPLIT}", "pytest==8.4.2")
ALGORITHMS = ("least_duration", "duration_based_chunks")
TARGET_COUNTS = (2, 4, 8)
TARGET_EXCESS = 0.05
# selector reasons about durations in milliseconds (its plans round shard durations to them), and
# a recorded duration varies from run to run by far more: a makespan that is less than this much
# above least_duration's is a tie of the packing order, not a worse split.
TIE = 0.001

# Both drivers read {"tests": [[node ID, seconds], ...], "counts": [...]} on stdin, in collection
# order, and print the shard (0-based) of every test, in the same order.
#
# selector: units and their durations as `selector plan` builds them when everything runs (one
# per recorded test, see `_fill` in selector/plan.py), then make_shards, then shard_of for each
# test, which is how `pytest --selector-shard` decides.
SELECTOR_DRIVER = """
import json, sys
from selector.shard import make_shards, shard_of
job = json.load(sys.stdin)
units = dict(job["tests"])
shards = {}
for count in job["counts"]:
    assignment = {unit: s.index for s in make_shards(units, count) for unit in s.units}
    shards[count] = [shard_of(nodeid, assignment, count) - 1 for nodeid, _ in job["tests"]]
json.dump({"shards": shards, "units": [nodeid for nodeid, _ in job["tests"]]}, sys.stdout)
"""
# pytest-split: its algorithms read `item.nodeid`, and least_duration breaks ties by `str(item)`,
# which for a pytest Function is `<Function name[params]>`; the stand-in prints the same.
PYTEST_SPLIT_DRIVER = """
import json, sys
from pytest_split.algorithms import Algorithms
class Item:
    def __init__(self, nodeid):
        self.nodeid = nodeid
        head, bracket, params = nodeid.partition("[")
        self.name = head.rpartition("::")[2] + bracket + params
    def __repr__(self):
        return f"<Function {self.name}>"
job = json.load(sys.stdin)
items = [Item(nodeid) for nodeid, _ in job["tests"]]
durations = dict(job["tests"])
position = {id(item): index for index, item in enumerate(items)}
result = {}
for algorithm in Algorithms:
    result[algorithm.name] = {}
    for count in job["counts"]:
        shard = [-1] * len(items)
        for index, group in enumerate(algorithm.value(count, items, durations)):
            for item in group.selected:
                shard[position[id(item)]] = index
        result[algorithm.name][count] = shard
json.dump(result, sys.stdout)
"""


@dataclass(frozen=True)
class Unit:
    """One of selector's units (a recorded test) and the durations of the tests it holds."""

    name: str
    durations: tuple[float, ...]

    def __str__(self) -> str:
        return f"`{self.name}` ({sum(self.durations):.2f} s, {len(self.durations)} test(s))"


@dataclass(frozen=True)
class Row:
    """One shard count of one duration set: the makespans and what bounds them."""

    count: int
    bound: float
    selector: float
    pytest_split: dict[str, float]
    unit_bound: float  # max(total / N, longest unit): the best selector's units allow


def drive(python: Path, code: str, durations: Mapping[str, float]) -> Any:
    """Run a driver in a virtualenv with the durations on stdin; return its parsed JSON."""
    job = {"tests": list(durations.items()), "counts": list(COUNTS)}
    done = subprocess.run(
        [python, "-c", code], input=json.dumps(job), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"driver failed in {python} ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout)


def makespan(durations: Sequence[float], shards: Sequence[int], count: int, who: str) -> float:
    """The longest shard's total, after checking that every test is in exactly one shard."""
    if len(shards) != len(durations) or not all(0 <= shard < count for shard in shards):
        raise SystemExit(f"{who} with N={count} did not put every test in one of the shards")
    totals = [0.0] * count
    for duration, shard in zip(durations, shards, strict=True):
        totals[shard] += duration
    return max(totals)


def longest_first(names: Sequence[str], durations: Sequence[float]) -> list[Unit]:
    """selector's units (the name of each test's unit comes from its driver), longest first."""
    grouped: dict[str, list[float]] = {}
    for name, duration in zip(names, durations, strict=True):
        grouped.setdefault(name, []).append(duration)
    units = [Unit(name, tuple(members)) for name, members in grouped.items()]
    return sorted(units, key=lambda unit: -sum(unit.durations))


def measure(
    tests: DurationSet, selector_python: Path, split_python: Path
) -> tuple[list[Row], list[Unit]]:
    """Shard one duration set with every algorithm and every N; also return selector's units."""
    durations = list(tests.durations.values())
    total, longest = sum(durations), max(durations)
    ours = drive(selector_python, SELECTOR_DRIVER, tests.durations)
    theirs = drive(split_python, PYTEST_SPLIT_DRIVER, tests.durations)
    units = longest_first(ours["units"], durations)
    rows = [
        Row(
            count,
            max(total / count, longest),
            makespan(durations, ours["shards"][str(count)], count, "selector"),
            {
                name: makespan(durations, theirs[name][str(count)], count, name)
                for name in ALGORITHMS
            },
            max(total / count, sum(units[0].durations)),
        )
        for count in COUNTS
    ]
    return rows, units


def over(value: float, bound: float) -> str:
    """A makespan with how far above the lower bound it is."""
    return f"{value:.3f} s (+{(value / bound - 1) * 100:.2f}%)"


def table(tests: DurationSet, rows: Sequence[Row], units: Sequence[Unit]) -> list[str]:
    """The Markdown section of one duration set, with the units that could limit selector."""
    durations = tests.durations.values()
    # Shown apart when it is not the longest unit anyway: the unit that parametrisation makes.
    parametrised = next((unit for unit in units if len(unit.durations) > 1), units[0])
    lines = [
        f"### {tests.name}",
        "",
        f"{tests.source} {len(durations)} tests in {len(units)} selector units, total "
        f"{sum(durations):.2f} s; longest test {max(durations):.2f} s; longest unit {units[0]}"
        + (f"; longest parametrised unit {parametrised}." if parametrised != units[0] else "."),
        "",
        "| N | lower bound | selector | least_duration | duration_based_chunks |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {row.count} | {row.bound:.3f} s | {over(row.selector, row.bound)} | "
        + " | ".join(over(row.pytest_split[name], row.bound) for name in ALGORITHMS)
        + " |"
        for row in rows
    ]
    return lines


def problems(tests: DurationSet, rows: Sequence[Row], units: Sequence[Unit]) -> list[str]:
    """Where selector misses the issue's targets, one line per N with what limits it there."""
    found = []
    for row in rows:
        least = row.pytest_split["least_duration"]
        misses = []
        if row.selector > least + TIE:
            misses.append(f"selector {row.selector:.3f} s > least_duration {least:.3f} s")
        if (
            tests.name == "real"
            and row.count in TARGET_COUNTS
            and row.selector > row.bound * (1 + TARGET_EXCESS)
        ):
            misses.append(
                f"selector {over(row.selector, row.bound)} is more than {TARGET_EXCESS:.0%} "
                "above the lower bound"
            )
        if misses:
            found.append(
                f"{tests.name}, N={row.count}: {'; '.join(misses)}. {diagnosis(row, units[0])}"
            )
    return found


def diagnosis(row: Row, longest: Unit) -> str:
    """Why selector's makespan is what it is: its units, the durations, or its packing."""
    if row.unit_bound > row.bound:
        return (
            f"Its longest unit, {longest}, is longer than total/N and than any single test, "
            f"so no selector shard can be shorter than {row.unit_bound:.3f} s."
        )
    if row.selector <= row.pytest_split["least_duration"] + TIE:
        return (
            "least_duration, the same longest-first rule applied to single tests, does no "
            "better: the durations (a few tests long next to total/N) defeat longest-first "
            "packing itself."
        )
    return (
        f"No unit is longer than total/N ({row.unit_bound:.3f} s is reachable with selector's "
        "units): its longest-first packing does worse than least_duration's on the same tests."
    )


def header(argv: Sequence[str], version: str) -> list[str]:
    """Report preamble: the exact command and the versions the numbers depend on."""
    selector = run(["git", "-C", REPO_ROOT, "describe", "--always", "--dirty"]).strip()
    return [
        f"Command: `{shlex.join(['python', 'bench/shards.py', *argv])}`",
        "",
        f"selector {selector} (working tree; `make_shards`, grouping `none`), pytest-split "
        f"{PYTEST_SPLIT}, both on Python {version}; machine: {platform.platform()}. Makespan = "
        "the longest shard's total recorded duration; lower bound = max(total / N, longest "
        "test); in brackets: how far above the lower bound.",
    ]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options: only the Python version the suite is recorded and sharded with."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--python",
        default="3.13",
        help="major.minor the suite is recorded with (default 3.13: its sys.monitoring "
        "collector slows tests down least, so the durations are closest to a plain run)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    """Measure both duration sets; exit 1 if selector misses a target."""
    args = parse_args(argv)
    env = prepare(SUITE, args.python)
    split_python = make_venv(
        find_python(args.python),
        CACHE / "venvs" / f"pytest-split-{PYTEST_SPLIT}-py{args.python}",
        PYTEST_SPLIT_REQUIREMENTS,
        os.environ,
    )
    print("\n".join(header(argv, args.python)), flush=True)
    missed: list[str] = []
    for tests in (recorded(env), synthetic()):
        rows, units = measure(tests, env.python, split_python)
        print("\n" + "\n".join(table(tests, rows, units)), flush=True)
        missed += problems(tests, rows, units)
    if missed:
        print("\n**Selector misses the target:**\n")
        print("\n".join(f"* {line}" for line in missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
