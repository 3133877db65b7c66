"""Does selector select every test a change breaks, and how few others, next to pytest-testmon?

    python bench/selection.py [--suite attrs|cachetools|dateutil] [--python 3.12] [--mutants 30]
                              [--seed 1]

On a third-party suite (attrs, the pin of ``record_overhead.py``, python-dateutil, or cachetools,
installed non-editable as its tox.ini does): record a map with selector and a .testmondata with
testmon at commit C, and the plain outcome of every test (twice: tests whose outcome differs
between the two runs are flaky and not judged). Then, for seeded single-line mutants (see
``_mutate.py``), each committed on top of C: run the whole suite plain to find the tests whose
outcome the mutant changes ("failing"), ask selector for its plan from C, and ask testmon, from a
fresh copy of the baseline data, which tests it would collect. A tool is safe on a mutant when it
selects every failing test; its precision is how small a share of the suite it selects. A failing
test that a tool missed counts only if it fails when run alone, too (see ``evaluate``). Prints a
Markdown report on stdout; exits 1 if selector missed any failing test.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from _mutate import CATEGORIES, INERT, Mutant, apply, draw
from _suite import (
    CACHE,
    REPO_ROOT,
    Sdist,
    find_python,
    git_snapshot,
    make_venv,
    progress,
    run,
    unpack,
)


@dataclass(frozen=True)
class Suite:
    """A third-party suite to mutate: its pinned sdist, what its tests need, how they run, and
    which folders hold the code under test and the tests."""

    sdist: Sdist
    requirements: tuple[str, ...]
    args: tuple[str, ...]
    sources: tuple[str, ...]
    tests: tuple[str, ...]
    # False: installed the way tox installs a project by default, a copy built from the committed
    # files into site-packages (see install_copy), which the tests import instead of the clone.
    editable: bool = True


TOOLS = ("coverage==7.10.7", "pytest-cov==7.0.0", "pytest-testmon==2.2.0")
SUITES = {
    # The pin, requirements and arguments of record_overhead.py's attrs suite (see the reasons
    # there), but a Hypothesis that mines the literals of local modules for its data, as a new
    # user's would. attrs builds classes at import in every test module: the hard case.
    "attrs": Suite(
        Sdist("attrs", "25.4.0",
              "16d5969b87f0859ef33a48b35d55ac1be6e42ae49d5e853b597db70c35c57e11"),
        ("pytest==8.4.2", "hypothesis==6.170.29", "cloudpickle==3.1.1", "pympler==1.1", *TOOLS),
        ("-p", "no:randomly", "--hypothesis-seed=0",
         "--deselect=tests/test_converters.py::TestPipe::test_wrapped_annotation"),
        ("src",),
        ("tests",),
    ),
    # A library of a module per concern (parser, rrule, tz, relativedelta, easter), each with
    # its own test files, the modules importing each other. Its setup.cfg turns warnings into
    # errors, so the tools must run warning-free. The docs' exercises are not part of the suite.
    "dateutil": Suite(
        Sdist(
            "python-dateutil",
            "2.9.0.post0",
            "37dd54208da7e1cd875388217d5e00ebd4179249f90fb72437e91a35459a0ad3",
        ),
        ("pytest==8.4.2", "hypothesis==6.140.3", "freezegun==1.5.5", "six==1.17.0", *TOOLS),
        ("-p", "no:randomly", "--hypothesis-seed=0", "-o", "testpaths=tests"),
        ("src",),
        ("tests",),
    ),
    # A src-layout package whose tox.ini installs it the tox way (not editable) and runs
    # pytest on it: the tests import the copy in site-packages, never the repository's files.
    # Its subject is caching (memoizing decorators, cache classes kept in module globals and
    # class attributes), the cached-results rule's own ground. It has no pytest configuration,
    # and pytest would look for one upwards and find selector's own (the clone lives in
    # bench/.cache): -c names the suite's tox.ini, which has no [pytest] section either.
    "cachetools": Suite(
        Sdist("cachetools", "8.0.3",
              "79245d0d90464e29355f13658cd769e57d98ed06242d3c6fbd71796ca0938ef9"),
        ("pytest==8.4.2", "setuptools==84.2.1", "setuptools-scm==10.3.4", *TOOLS),
        ("-p", "no:randomly", "-c", "tox.ini"),
        ("src",),
        ("tests",),
        editable=False,
    ),
}  # fmt: skip
# How a plan words a selection made only by the cached-results rule (selector/select.py).
CACHED_REASON = "its result may be cached for"
# The rule behind a reason of the plan (selector/select.py), by a phrase of it: the first match
# wins (a cached-results reason extends the function-body or constant reason it follows from).
RULES = (
    ("cached results", CACHED_REASON),
    ("Hypothesis's mined literals", "literals that Hypothesis mines"),
    ("text read", "its text was read outside its import"),
    ("constant readers", " changed; "),
    ("module level", " at module level"),
    ("data file read", "(the test read it)"),
    ("failed when recorded", " when the map was recorded"),
    ("new code", " new "),
    ("function body", " in "),
)
OTHER_RULE = "other"
RUN_ALL_RULE = "run everything"
# Each run loads only the tool it measures. Plain runs go on past a module that no longer imports,
# so that one broken test module does not hide the outcomes of all the others.
PLAIN_ARGS = ("-p", "no:selector", "-p", "no:testmon", "-p", "no:cacheprovider",
              "--continue-on-collection-errors")  # fmt: skip
SELECTOR_ARGS = ("--selector-record", "-p", "no:testmon", "-p", "no:cacheprovider")
# testmon keeps the cache provider: it reads the --lf option defined there.
TESTMON_ARGS = ("--testmon", "-p", "no:selector")
TESTMON_SELECT_ARGS = (*TESTMON_ARGS, "--testmon-nocollect", "--collect-only", "-q")
# The default max_fraction (0.8) turns a large selection into "run everything", which is safe by
# construction and would hide exactly the misses this benchmark looks for.
SELECTOR_CONFIG = "max_fraction: 1\n"
DEFAULT_MAX_FRACTION = 0.8
GIT_IDENTITY = ("-c", "user.name=selector-bench", "-c", "user.email=bench@selector.invalid",
                "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null")  # fmt: skip
# Environment variables through which the caller's shell could change what the runs do ($CI also
# switches hypothesis to its CI profile).
FOREIGN_ENV = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "COVERAGE_PROCESS_START", "PYTHONPATH", "CI")
# JUnit XML elements of a test case -> outcome; a case without any of them passed.
JUNIT_OUTCOMES = {"failure": "failed", "error": "error", "skipped": "skipped"}
MISSES_SHOWN = 10


class NotJudged(Exception):
    """A mutant's run gave no outcomes: it hung (a mutant may loop forever), or it broke
    pytest's own report (a test that unloads modules). It is reported, not judged."""


@dataclass(frozen=True)
class Workspace:
    """The benchmark's own clone of the suite, its virtualenv, and where run artefacts go."""

    suite: Suite
    repo: Path
    python: Path
    scratch: Path
    base: str
    selector_version: str

    @property
    def selector(self) -> Path:
        """selector's console script in the virtualenv."""
        return self.python.parent / "selector"

    @property
    def testmon_baseline(self) -> Path:
        """testmon's data as recorded at the base commit, copied in before every selection."""
        return self.scratch / "testmon"


@dataclass(frozen=True)
class Baseline:
    """Every test's outcome at the base commit, the flaky tests, and how long a plain run takes."""

    outcomes: dict[str, str]
    flaky: frozenset[str]
    seconds: float


@dataclass(frozen=True)
class Verdict:
    """One mutant: the tests its change broke and what each tool selected."""

    mutant: Mutant
    total: int
    failing: frozenset[str]
    selector: frozenset[str]
    testmon: frozenset[str]
    collateral: frozenset[str]  # missed, but unchanged when run alone: not judged
    cached_only: frozenset[str]  # selected by selector only for the cached-results rule
    plan_notes: tuple[str, ...]
    by_rule: dict[str, frozenset[str]]  # the tests each rule of selector's plan selected

    def missed(self, tool: str) -> frozenset[str]:
        """Failing tests the tool did not select."""
        return self.failing - (self.selector if tool == "selector" else self.testmon)


def prepare(version: str, suite: Suite) -> Workspace:
    """Clone the pinned suite into the benchmark's own folder and build its virtualenv.

    Mutants are committed in a clone, never in the shared snapshot that other benchmarks run, and
    the clone is what the virtualenv installs (editable, or a copy rebuilt at every commit): code
    under test must be the mutated code. The clone is made afresh every time, so no mutant or tool
    data of an earlier run survives.
    """
    sdist = suite.sdist
    shared = unpack_snapshot(sdist)
    folder = CACHE / "selection" / sdist.stem
    repo = folder / "repo"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    run(["git", "clone", "-q", shared, repo])
    (repo / "selector.yml").write_text(SELECTOR_CONFIG)
    selector_version = freeze_selector(folder / "selector-ci")
    env = {**os.environ, "SETUPTOOLS_SCM_PRETEND_VERSION": sdist.version}
    editable = ("-e", str(repo)) if suite.editable else ()
    requirements = (*editable, "-e", str(folder / "selector-ci"), *suite.requirements)
    venv = CACHE / "venvs" / f"{sdist.stem}-selection-py{version}"
    python = make_venv(find_python(version), venv, requirements, env)
    base = run(["git", "-C", repo, "rev-parse", "HEAD"]).strip()
    ws = Workspace(suite, repo, python, folder, base, selector_version)
    if not suite.editable:
        install_copy(ws)
    return ws


def install_copy(ws: Workspace) -> None:
    """Install the clone's HEAD into the virtualenv as a copy, as tox does before every run.

    The copy is built from ``git archive`` of HEAD, so that only committed files go in and no
    build folder is left in the clone; the build requirements are the suite's own (no build
    isolation: a fresh build environment per mutant would cost more than the mutant's run).
    """
    export = ws.scratch / "package"
    archive = ws.scratch / "package.tar"
    shutil.rmtree(export, ignore_errors=True)
    git(ws, "archive", "--format=tar", f"--output={archive}", "HEAD")
    with tarfile.open(archive) as tar:
        tar.extractall(export, filter="data")
    run([ws.python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--force-reinstall", "--no-build-isolation", export])  # fmt: skip


def freeze_selector(target: Path) -> str:
    """Copy selector's working tree as it is now (package and top-level files) to ``target``, for
    an editable install; return its ``git describe`` and a digest of the copied package.

    A run takes an hour, during which the working tree may change: the benchmark must judge one
    version of selector from its first mutant to its last, and say which.
    """
    shutil.copytree(
        REPO_ROOT / "selector", target / "selector", ignore=shutil.ignore_patterns("__pycache__")
    )
    for path in REPO_ROOT.iterdir():
        if path.is_file():
            shutil.copy(path, target / path.name)
    digest = hashlib.sha256()
    for path in sorted((target / "selector").rglob("*.py")):
        digest.update(path.read_bytes())
    described = run(["git", "-C", REPO_ROOT, "describe", "--always", "--dirty"]).strip()
    return f"{described} (package sha256 {digest.hexdigest()[:12]})"


def unpack_snapshot(sdist: Sdist) -> Path:
    """The shared, committed suite folder (for attrs, the same one record_overhead.py measures)."""
    folder = unpack(sdist)
    git_snapshot(folder, f"{sdist.stem} from its PyPI sdist")
    return folder


def git(ws: Workspace, *args: str) -> str:
    """git in the clone, with an identity and no hooks, so the caller's config cannot interfere."""
    return run(["git", "-C", ws.repo, *GIT_IDENTITY, *args])


def pytest_env() -> dict[str, str]:
    """The caller's environment without what could change pytest's behaviour, hash seed fixed."""
    env = {key: value for key, value in os.environ.items() if key not in FOREIGN_ENV}
    env["PYTHONHASHSEED"] = "0"
    return env


def pytest(
    ws: Workspace, args: Sequence[str | Path], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run the suite's pytest with extra arguments in the clone; a hang raises ``NotJudged``."""
    # Hypothesis replays the failures it saved: a mutant's must not leak into the next run.
    shutil.rmtree(ws.repo / ".hypothesis", ignore_errors=True)
    command = [str(ws.python), "-m", "pytest", *ws.suite.args, *map(str, args)]
    try:
        return subprocess.run(
            command, cwd=ws.repo, env=pytest_env(), capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise NotJudged(f"timed out after {timeout:.0f}s: {shlex.join(command)}") from None


def checked(done: subprocess.CompletedProcess[str], what: str) -> str:
    """The output of a run that got to run tests (exit 0 or 1); else the benchmark stops."""
    output = done.stdout + done.stderr
    if done.returncode > 1:
        sys.stderr.write("\n".join(output.splitlines()[-40:]) + "\n")
        raise SystemExit(f"{what}: pytest exited {done.returncode}")
    return output


def outcomes(
    ws: Workspace, timeout: float, only: Sequence[str] = (), every: Iterable[str] = ()
) -> dict[str, str]:
    """Every test's outcome (or only these tests') in a plain run, by node ID (from pytest's
    JUnit XML report).

    A mutant can break what conftest.py imports (attrs' conftest imports hypothesis, which
    imports attrs): pytest then stops before collecting (exit 4) and writes no report. Every
    test of `every` (the baseline's) is then an error, as it would be in CI. A run that
    ends otherwise without a report (a test unloaded the modules that write it) cannot be
    judged.
    """
    report = ws.scratch / "junit.xml"
    report.unlink(missing_ok=True)
    done = pytest(ws, [*PLAIN_ARGS, f"--junitxml={report}", *only], timeout)
    if not report.exists():
        output = done.stdout + done.stderr
        if done.returncode == 4 and "while loading conftest" in output and every:
            return dict.fromkeys(only or every, "error")
        checked(done, "plain run")
        raise NotJudged(f"pytest exited {done.returncode} and wrote no JUnit report")
    return parse_junit(report, ws.repo)


def parse_junit(report: Path, repo: Path) -> dict[str, str]:
    """Node ID -> outcome (passed, failed, error, skipped, xfailed; several if a teardown also
    failed). A module that failed to import appears under its dotted name, without ``::``."""
    results = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = sorted(
            "xfailed" if child.get("type") == "pytest.xfail" else JUNIT_OUTCOMES[child.tag]
            for child in case
            if child.tag in JUNIT_OUTCOMES
        )
        results[node_id(case.get("classname", ""), case.get("name", ""), repo)] = (
            "+".join(kinds) or "passed"
        )
    return results


def node_id(classname: str, name: str, repo: Path) -> str:
    """Undo JUnit's ``tests.test_x.TestC`` + ``test_f[p]`` back into ``tests/test_x.py::TestC::
    test_f[p]``: the longest dotted prefix naming a file of the repository is the module."""
    parts = classname.split(".") if classname else []
    for cut in range(len(parts), 0, -1):
        module = "/".join(parts[:cut]) + ".py"
        if (repo / module).is_file():
            return "::".join([module, *parts[cut:], name])
    return name


def collected(ws: Workspace) -> set[str]:
    """The node IDs pytest collects, to check that the JUnit names were mapped back exactly."""
    done = pytest(ws, [*PLAIN_ARGS, "--collect-only", "-q"], 600)
    return {line for line in checked(done, "collection").splitlines() if "::" in line}


def record_baseline(ws: Workspace) -> Baseline:
    """Outcomes (two plain runs), selector's map and testmon's data, all at the base commit."""
    progress("baseline: two plain runs")
    start = time.perf_counter()
    first = outcomes(ws, 3600)
    seconds = time.perf_counter() - start
    second = outcomes(ws, 3600)
    if set(first) != collected(ws):
        raise SystemExit("JUnit test names do not map back to the collected node IDs")
    flaky = frozenset(
        test for test in first.keys() | second.keys() if first.get(test) != second.get(test)
    )
    progress("baseline: selector records, testmon records")
    checked(pytest(ws, SELECTOR_ARGS, 3600), "selector recording")
    # --force: the deselected test never runs, and there is no earlier map to carry it forward
    # from; the plans then select it always, which changes no verdict.
    run([ws.selector, "upload-map", "--force"], cwd=ws.repo, env=pytest_env())
    if not records_sources(ws):
        raise SystemExit("selector's map ties no test to the code under test")
    checked(pytest(ws, TESTMON_ARGS, 3600), "testmon recording")
    ws.testmon_baseline.mkdir()
    copy_testmon_data(ws.repo, ws.testmon_baseline)
    if testmon_selection(ws, set(first)):
        raise SystemExit("testmon selects tests without a change: it did not find its data")
    return Baseline(first, flaky, seconds)


def records_sources(ws: Workspace) -> bool:
    """Whether selector's map ties some test to a file of the code under test.

    Where the tests import an installed copy, this is what shows that selector recorded the copy
    as the clone's files: a map of test files only would select nothing for any mutant.
    """
    table = ws.scratch / "map.csv"
    command: list[str | Path] = [ws.selector, "export", "--csv", table, "--by", "function"]
    run(command, cwd=ws.repo, env=pytest_env())
    folders = tuple(f"{folder}/" for folder in ws.suite.sources)
    with table.open(newline="", encoding="utf-8") as rows:
        return any(row["file"].startswith(folders) for row in csv.DictReader(rows))


def copy_testmon_data(source: Path, target: Path) -> None:
    """Replace testmon's data in ``target`` by that in ``source``.

    testmon leaves its SQLite database in write-ahead-log mode, with most of the data still in the
    ``-wal`` file: the database is its files together.
    """
    for old in target.glob(".testmondata*"):
        old.unlink()
    for path in source.glob(".testmondata*"):
        shutil.copy(path, target / path.name)


def changed(baseline: Baseline, after: dict[str, str]) -> frozenset[str]:
    """Tests whose outcome differs from the baseline (gone and new ones too), except flaky ones."""
    return frozenset(
        test
        for test in baseline.outcomes.keys() | after.keys()
        if "::" in test
        and test not in baseline.flaky
        and baseline.outcomes.get(test) != after.get(test)
    )


def expand(items: Iterable[str], tests: Iterable[str]) -> frozenset[str]:
    """The tests a plan's items run: the item itself, or anything below it (class, file, folder)."""
    prefixes = [(item, (f"{item}::", f"{item}[", f"{item}/")) for item in items]
    return frozenset(
        test
        for test in tests
        if any(test == item or test.startswith(below) for item, below in prefixes)
    )


@dataclass(frozen=True)
class SelectorPlan:
    """What selector's plan runs, what of it only the cached-results rule asked for, and its
    notes (run-all reasons, changed code no recorded test runs) for diagnosing a miss."""

    selected: frozenset[str]
    cached_only: frozenset[str]
    notes: tuple[str, ...]
    by_rule: dict[str, frozenset[str]]


def selector_selection(ws: Workspace, tests: set[str]) -> SelectorPlan:
    """selector's plan from the base commit.

    The cached-results rule (selector/cached.py) is safety bought with precision; the tests
    that no other rule selected are counted apart (by their reasons), to show what it costs.
    """
    command: list[str | Path] = [
        ws.selector,
        "plan",
        "--base",
        ws.base,
        "--no-working-tree",
        "--format",
        "json",
    ]
    plan = json.loads(run(command, cwd=ws.repo, env=pytest_env()))
    notes = (*plan["reasons"], *(f"uncovered: {note}" for note in plan["uncovered_changes"]))
    if plan["run_all"]:
        return SelectorPlan(frozenset(tests), frozenset(), notes, {RUN_ALL_RULE: frozenset(tests)})
    cached = {
        item
        for item, entry in plan["tests"].items()
        if all(CACHED_REASON in reason for reason in entry["reasons"])
    }
    selected = expand(plan["selected"], tests)
    items_by_rule: dict[str, set[str]] = {}
    for item, entry in plan["tests"].items():
        for reason in entry["reasons"]:
            items_by_rule.setdefault(rule_of(reason), set()).add(item)
    by_rule = {rule: expand(items, tests) for rule, items in items_by_rule.items()}
    cached_only = selected - expand(set(plan["selected"]) - cached, tests)
    return SelectorPlan(selected, cached_only, notes, by_rule)


def rule_of(reason: str) -> str:
    """The rule that gave a reason of the plan (see RULES)."""
    return next((rule for rule, phrase in RULES if phrase in reason), OTHER_RULE)


def testmon_selection(ws: Workspace, tests: set[str]) -> frozenset[str]:
    """The tests testmon would run, judged from the baseline data (a fresh copy every time).

    ``--testmon-nocollect --collect-only`` lists the selected tests without running or recording.
    A test module that no longer imports surfaces as a collection error, which a real run would
    report too: it counts as selecting that module's tests.
    """
    copy_testmon_data(ws.testmon_baseline, ws.repo)
    done = pytest(ws, TESTMON_SELECT_ARGS, 600)
    output = done.stdout + done.stderr
    if done.returncode == 4 and "while loading conftest" in output:
        return frozenset(tests)  # the run stops at start-up: every test errors, loudly
    broken = re.findall(r"ERROR collecting (\S+)", output)
    if not broken:
        checked(done, "testmon selection")
    listed = {line.strip() for line in output.splitlines() if "::" in line}
    return frozenset(tests & listed) | expand(broken, tests)


def evaluate(ws: Workspace, baseline: Baseline, mutant: Mutant) -> Verdict:
    """Commit the mutant on top of the base commit and judge both tools on it.

    A failing test that a tool missed is run again, alone, before it counts: if its outcome is
    then the base's, it failed in the full run only because of other tests (an earlier failing
    test that left global state behind, or flakiness). Running it would not have told the
    change's author anything that the tests the tools did select could not, so it is not judged.
    The misses are the report's point: such collateral outcomes must not fake one.
    """
    git(ws, "checkout", "-q", "-f", "-B", "selection-mutant", ws.base)
    apply(mutant, ws.repo)
    git(ws, "commit", "-q", "-a", "-m", f"mutant: {mutant.describe()}")
    if not ws.suite.editable:
        install_copy(ws)
    timeout = 3 * baseline.seconds + 120
    after = outcomes(ws, timeout, every=baseline.outcomes)
    failing = changed(baseline, after)
    tests = {test for test in baseline.outcomes.keys() | after.keys() if "::" in test}
    planned = selector_selection(ws, tests)
    by_selector = planned.selected
    by_testmon = testmon_selection(ws, tests)
    missed = sorted((failing - (by_selector & by_testmon)) & after.keys())
    collateral: frozenset[str] = frozenset()
    if missed:
        alone = outcomes(ws, timeout, missed, every=baseline.outcomes)
        collateral = frozenset(
            test for test in missed if alone.get(test) == baseline.outcomes.get(test)
        )
    return Verdict(
        mutant,
        len(tests),
        failing - collateral,
        by_selector,
        by_testmon,
        collateral,
        planned.cached_only,
        planned.notes,
        planned.by_rule,
    )


def share(part: int, whole: int) -> str:
    """A percentage, or a dash where there is nothing to divide."""
    return f"{100 * part / whole:.1f}%" if whole else "-"


def summary_row(label: str, verdicts: Sequence[Verdict]) -> str:
    """One table row: failures, mean selected share and safety (share of failing tests selected)."""
    failing = sum(len(v.failing) for v in verdicts)
    breaking = sum(1 for v in verdicts if v.failing)
    cells = [label, str(len(verdicts)), str(breaking), str(failing)]
    for tool in ("selector", "testmon"):
        fractions = [
            len(v.selector if tool == "selector" else v.testmon) / v.total for v in verdicts
        ]
        cells.append(f"{100 * statistics.mean(fractions):.1f}%")
    cached = statistics.mean(len(v.cached_only) / v.total for v in verdicts)
    cells.insert(-1, f"{100 * cached:.1f}%")
    for tool in ("selector", "testmon"):
        missed = sum(len(v.missed(tool)) for v in verdicts)
        unsafe = sum(1 for v in verdicts if v.missed(tool))
        cells.append(f"{share(failing - missed, failing)} ({unsafe} unsafe)")
    return "| " + " | ".join(cells) + " |"


def summary_table(verdicts: Sequence[Verdict]) -> list[str]:
    """Per category and overall: the numbers the issue asks for."""
    lines = [
        "| category | mutants | breaking | failing tests | selected: selector "
        "| of it for cached results only | selected: testmon | safety: selector "
        "| safety: testmon |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for category in CATEGORIES:
        group = [v for v in verdicts if v.mutant.category == category]
        if group:
            lines.append(summary_row(category + (" (inert)" if category in INERT else ""), group))
    lines.append(summary_row("**all**", verdicts))
    return lines


def rule_table(verdicts: Sequence[Verdict]) -> list[str]:
    """Per rule of selector's plan, the mean share of the suite it selects, and on how many
    mutants it selects anything: the imprecise rule shows itself at the top."""
    rules = {rule for v in verdicts for rule in v.by_rule}
    rows = []
    for rule in rules:
        mean = statistics.mean(len(v.by_rule.get(rule, ())) / v.total for v in verdicts)
        used = sum(1 for v in verdicts if v.by_rule.get(rule))
        if used:
            rows.append((mean, rule, used))
    lines = [
        "| rule of selector's plan | mean share of the suite it selects "
        "| mutants where it selects |",
        "| --- | ---: | ---: |",
    ]
    for mean, rule, used in sorted(rows, reverse=True):
        lines.append(f"| {rule} | {100 * mean:.1f}% | {used} |")
    return lines


def mutant_table(verdicts: Sequence[Verdict]) -> list[str]:
    """Every mutant with its failing tests and both tools' selection and misses."""
    lines = [
        "| # | category | mutation | failing | selector | of it for cached results only "
        "| testmon | missed: selector | missed: testmon |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for number, v in enumerate(verdicts, 1):
        mutation = v.mutant.describe().replace("|", "\\|")
        lines.append(
            f"| {number} | {v.mutant.category} | {mutation} "
            f"| {len(v.failing)} | {len(v.selector)} | {len(v.cached_only)} | {len(v.testmon)} "
            f"| {len(v.missed('selector'))} | {len(v.missed('testmon'))} |"
        )
    return lines


def findings(verdicts: Sequence[Verdict], unjudged: Sequence[tuple[Mutant, str]]) -> list[str]:
    """Every unsafe case per tool (with selector's plan notes), collateral failures, inert
    mutants that selected tests anyway, and mutants that could not be judged."""
    lines = [f"* not judged ({why}): {mutant.describe()}" for mutant, why in unjudged]
    for tool in ("selector", "testmon"):
        for number, v in enumerate(verdicts, 1):
            missed = sorted(v.missed(tool))
            if missed:
                lines.append(
                    f"* {tool} missed {len(missed)} failing test(s) of #{number} "
                    f"({v.mutant.category}) {v.mutant.describe()}:"
                )
                lines += [f"  * `{test}`" for test in missed[:MISSES_SHOWN]]
                if len(missed) > MISSES_SHOWN:
                    lines.append(f"  * ... and {len(missed) - MISSES_SHOWN} more")
                if tool == "selector":
                    lines += [f"  * plan: {note}" for note in v.plan_notes[:MISSES_SHOWN]]
    for number, v in enumerate(verdicts, 1):
        if v.collateral:
            lines.append(
                f"* #{number}: {len(v.collateral)} missed test(s) failed in the full run only, "
                "not alone (collateral of other failing tests, or flaky; not judged): "
                + ", ".join(f"`{test}`" for test in sorted(v.collateral)[:MISSES_SHOWN])
            )
        if v.mutant.category in INERT and (v.selector or v.testmon):
            lines.append(
                f"* #{number} ({v.mutant.category}) selected tests: selector "
                f"{len(v.selector)}, testmon {len(v.testmon)}"
            )
    return lines or ["* none"]


def versions(ws: Workspace) -> str:
    """Versions the numbers depend on, as installed in the benchmark's virtualenv (a suite that
    does not use Hypothesis has none)."""
    script = (
        "import importlib.metadata as m, platform; "
        "v = {d.metadata['Name'].lower(): d.version for d in m.distributions()}; "
        f"print(', '.join(f'{{n}} {{v[n]}}' for n in ({ws.suite.sdist.name!r}, 'pytest', "
        "'pytest-testmon', 'coverage', 'hypothesis') if n in v) + ', Python ' "
        "+ platform.python_version())"
    )
    return run([ws.python, "-c", script]).strip()


def report(
    argv: Sequence[str],
    ws: Workspace,
    baseline: Baseline,
    verdicts: Sequence[Verdict],
    unjudged: Sequence[tuple[Mutant, str]],
) -> list[str]:
    """The whole Markdown report."""
    over = sum(1 for v in verdicts if len(v.selector) / v.total > DEFAULT_MAX_FRACTION)
    install = (
        "editable install"
        if ws.suite.editable
        else "installed non-editable: a copy in site-packages rebuilt at every commit"
    )
    return [
        f"Command: `{shlex.join(['python', 'bench/selection.py', *argv])}`",
        "",
        f"Suite: {ws.suite.sdist.stem} (PyPI sdist, {install}); "
        f"selector {ws.selector_version}; "
        f"{versions(ws)}; "
        f"{platform.platform()}. {len(baseline.outcomes)} tests, {len(baseline.flaky)} flaky at "
        f"the base (not judged); plain run {baseline.seconds:.0f} s. selector runs with "
        f"`{SELECTOR_CONFIG.strip()}`: with the default {DEFAULT_MAX_FRACTION} it would have run "
        f"everything for {over} of {len(verdicts)} mutants.",
        "",
        "Selected: mean share of the suite a tool selects. Failing: outcome differs from the "
        "base (a missed one must also differ when run alone). Safety: share of the failing tests "
        "that a tool selects; unsafe: mutants with a miss.",
        "",
        *summary_table(verdicts),
        "",
        "Share of the suite each rule of selector's plan selects, by the reasons the plan gives "
        "(at most 5 per item; a test selected by several rules counts under each):",
        "",
        *rule_table(verdicts),
        "",
        *mutant_table(verdicts),
        "",
        "Findings:",
        "",
        *findings(verdicts, unjudged),
    ]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--suite", choices=sorted(SUITES), default="attrs", help="default: attrs")
    parser.add_argument("--python", default="3.12", help="major.minor version (default 3.12)")
    parser.add_argument("--mutants", type=int, default=30, help="number of mutants (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the mutant draw (default 1)")
    args = parser.parse_args(argv)
    if args.mutants < 1:
        parser.error("--mutants must be at least 1")
    return args


def main(argv: Sequence[str]) -> int:
    """Record the baseline, judge every mutant, report; exit 1 if selector missed a failing test."""
    args = parse_args(argv)
    ws = prepare(args.python, SUITES[args.suite])
    mutants = draw(ws.repo, ws.suite.sources, ws.suite.tests, args.mutants, args.seed)
    baseline = record_baseline(ws)
    verdicts: list[Verdict] = []
    unjudged: list[tuple[Mutant, str]] = []
    for number, mutant in enumerate(mutants, 1):
        progress(f"mutant {number}/{len(mutants)} ({mutant.category}): {mutant.describe()}")
        try:
            verdict = evaluate(ws, baseline, mutant)
        except NotJudged as error:
            progress(f"  {error}")
            unjudged.append((mutant, str(error)))
            continue
        verdicts.append(verdict)
        progress(
            f"  failing {len(verdict.failing)}, selector {len(verdict.selector)}, "
            f"testmon {len(verdict.testmon)}, selector missed {len(verdict.missed('selector'))}"
        )
    if not verdicts:
        raise SystemExit("no mutant could be judged")
    print("\n".join(report(argv, ws, baseline, verdicts, unjudged)))
    return 1 if any(v.missed("selector") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
