"""Is `selector plan` fast enough on a large map?

    python bench/plan_scale.py [--tests 50000] [--files 2000] [--changed 20] [--seed 1]
                               [--repeat 5] [--profile]

The target: on a map of 50,000 tests x 2,000 source files, `selector plan` for a 20-file change
takes under 2 s and 200 MB, interpreter start-up excluded. Recording a real suite of that size
would take hours and need a project nobody has at hand, so both are synthetic, shaped like what
the recorder writes (``selector/record.py``, ``_map_data``):

* a git repository with ``--files`` Python source files (packages of about 50 modules, 50-300
  lines each, functions of 3-30 lines calling into the modules they import), a few hundred test
  files holding ``--tests`` tests (plain, parametrised, in a class), conftest.py files with a
  session and per-package fixtures, and one JSON data file per package, committed at C;
* a map for C built directly with ``selector.mapdb``: each test executes lines in 5-40 files
  (log-normal, median 10, mostly the modules its file imports and what they import), includes
  the session, its collectors, the wide fixtures it uses and the import contexts of its file and
  conftests; each module's import context runs its module-level lines and includes the import
  contexts of the modules it imports (the static graph); module fixtures read the data files;
* a ``--changed``-file commit on a branch: function-body edits, a module-level constant, a new
  function, a data file, an edited test and a new test.

Then it runs ``selector plan --base C --no-working-tree --format json`` ``--repeat`` times, each
in a fresh interpreter that imports ``selector.cli`` before measuring, so start-up is excluded
but every import the command itself triggers counts. Reported: wall time around
``selector.cli.main``, its CPU time (robust when other jobs share the machine), how much of it
the modules ``main`` imports take (a fixed cost, whatever the map), the growth of peak RSS over
that call, tracemalloc's peak in one extra run (tracing slows the run, so it is not timed), the
map's size and the plan's selected count, as a Markdown table on stdout. A run more
than FAR_OVER times over the time target ends the measuring, since the verdict is clear and
every run would take minutes. The exit status is 1 when the median time is over 2 s or the
largest RSS growth over 200 MiB, and 2 when the plan runs everything (then selection was not
measured at all). ``--profile`` adds a cProfile run and prints where the time goes.

The repository and its map depend only on the arguments and this file, so they are built once
under ``bench/.cache/plan_scale/`` and reused; commits have fixed dates, so their ids repeat.
"""

import argparse
import hashlib
import io
import json
import math
import os
import platform
import pstats
import random
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from selector import __version__, codeindex, scopes
from selector.gitdiff import blob_id
from selector.mapdb import (
    SCHEMA_VERSION,
    SESSION,
    Context,
    ContextKey,
    MapData,
    MapMeta,
    TestResult,
    write_map,
)
from selector.store import LocalStore

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = REPO_ROOT / "bench" / ".cache" / "plan_scale"
TIME_LIMIT = 2.0  # seconds
MEMORY_LIMIT = 200  # MiB
FAR_OVER = 10  # a run this many times over TIME_LIMIT ends the measuring
MODULES_PER_PACKAGE = 50
TESTS_PER_FILE = 125  # on average; a few hundred test files for 50,000 tests
STORED_BY = ("mapdb.py", "store.py")  # the code that decides a stored map's bytes
FIXED_KINDS = 5  # changes besides function-body edits: constant, new def, data, test, new test
VARIANT = f"py{sys.version_info[0]}.{sys.version_info[1]}"  # what `selector plan` defaults to
# Fixed identity and dates make the commit ids, and so the cache, reproducible; no user or system
# git configuration (hooks, signing, templates) takes part in building the repository.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}

# The measured process. It imports selector.cli (start-up, not measured), then calls main()
# once; the plan goes to a buffer, and one JSON line of figures to the real stdout. Peak RSS is
# read from VmHWM where Linux has it: ru_maxrss carries over the peak of the process that
# forked this one (the kernel folds the old address space's peak in at exec), so a large parent
# would hide the growth being measured.
DRIVER = """
import contextlib, cProfile, io, json, resource, sys, time, tracemalloc
import selector.cli

def peak_kib():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

def cpu_seconds():
    usages = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(usage.ru_utime + usage.ru_stime for usage in usages)

mode, argv = sys.argv[1], sys.argv[2:]
if mode == "imports":  # what main() imports lazily for `plan`, timed alone
    cpu, start = cpu_seconds(), time.perf_counter()
    import selector.plan, selector.upload
    print(json.dumps({"seconds": time.perf_counter() - start, "cpu_seconds": cpu_seconds() - cpu}))
    sys.exit()
plan, summary = io.StringIO(), io.StringIO()
profiler = cProfile.Profile() if mode.startswith("profile=") else None
if mode == "tracemalloc":
    tracemalloc.start()
before, cpu, start = peak_kib(), cpu_seconds(), time.perf_counter()
with contextlib.redirect_stdout(plan), contextlib.redirect_stderr(summary):
    if profiler is None:
        status = selector.cli.main(argv)
    else:
        status = profiler.runcall(selector.cli.main, argv)
elapsed, cpu, after = time.perf_counter() - start, cpu_seconds() - cpu, peak_kib()
traced = tracemalloc.get_traced_memory()[1] if mode == "tracemalloc" else None
if profiler is not None:
    profiler.dump_stats(mode.partition("=")[2])
document = json.loads(plan.getvalue()) if status == 0 else {}
print(json.dumps({
    "status": status, "seconds": elapsed, "cpu_seconds": cpu, "rss_before_kib": before,
    "rss_after_kib": after, "traced_peak": traced, "run_all": document.get("run_all"),
    "reasons": document.get("reasons"), "selected": document.get("selected_count"),
    "items": len(document.get("selected", ())), "total": document.get("total_count"),
    "stderr": summary.getvalue()[-2000:],
}))
"""

# Lines of the conftest.py text (Generator._conftest) that run at start-up and in its fixture.
_CONFTEST_HOOK_BODY, _CONFTEST_FIXTURE_BODY = 9, 14
_WORDS = ("alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "theta")
_ALWAYS, _BRANCH, _NEVER = "always", "branch", "never"  # when a call runs a body line
# Statement blocks a function body is made of: (text, when it runs). `{a}`, `{b}` are numbers.
_BLOCKS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("total += {a}", _ALWAYS),),
    (("if total > LIMIT:", _ALWAYS), ("    total -= LIMIT", _BRANCH)),
    (("for step in range({a}):", _ALWAYS), ("    total += step * {b}", _ALWAYS)),
    (("items = [total, value, {a}]", _ALWAYS), ("total += len(items)", _ALWAYS)),
    (('label = "{word}-" + str(total)', _ALWAYS), ("total += len(label)", _ALWAYS)),
    (
        ("try:", _ALWAYS),
        ("    total = total // {a}", _ALWAYS),
        ("except ZeroDivisionError:", _NEVER),
        ("    total = 0", _NEVER),
    ),
)


# -- the synthetic project ---------------------------------------------------------------


@dataclass(frozen=True)
class Function:
    """A function of a source module and the lines a call to it runs."""

    name: str
    first: int  # its first body line, `total = value * a + b`, where body edits happen
    full: tuple[int, ...]  # lines a call runs when the `if` branches are taken
    partial: tuple[int, ...]  # lines a call runs when they are not


@dataclass
class SourceFile:
    """A Python file of the project: its text and what importing it runs."""

    path: str
    name: str  # dotted module name
    lines: list[str] = field(default_factory=list)
    top_level: list[int] = field(default_factory=list)  # lines run when it is imported
    imports: list[int] = field(default_factory=list)  # indexes into Project.modules
    functions: list[Function] = field(default_factory=list)


@dataclass(frozen=True)
class TestDef:
    """One test function or method, and the node IDs pytest gives it."""

    __test__ = False  # not a test class, though pytest's name rule says so

    nodeids: tuple[str, ...]
    body: tuple[int, ...]  # the lines of its own body
    fixtures: tuple[str, ...]  # the wide fixtures it uses
    calls: tuple[int, int]  # (module, function) its body calls


@dataclass
class TestFile:
    """A test module: its text, the modules it tests and its tests."""

    __test__ = False

    source: SourceFile  # imports: its subjects, the first is the module it is named after
    package: int
    table_body: int  # the body line of its `table` fixture, which reads the data file
    tests: list[TestDef] = field(default_factory=list)


@dataclass
class Project:
    """Everything generated, by kind; paths are repository-relative."""

    package_files: list[SourceFile] = field(default_factory=list)  # every __init__.py
    modules: list[SourceFile] = field(default_factory=list)
    package_of: list[int] = field(default_factory=list)  # package number of each module
    conftests: list[SourceFile] = field(default_factory=list)  # root one, then per package
    test_files: list[TestFile] = field(default_factory=list)
    data_files: dict[str, str] = field(default_factory=dict)

    def sources(self) -> list[SourceFile]:
        """Every Python file."""
        tests = [test_file.source for test_file in self.test_files]
        return [*self.package_files, *self.modules, *self.conftests, *tests]

    def files(self) -> dict[str, str]:
        """Every file of the repository with its content."""
        texts = {
            ".gitignore": ".selector/\n__pycache__/\n",
            "README.md": "# synthetic\n\nGenerated by selector's bench/plan_scale.py.\n",
            "pyproject.toml": '[project]\nname = "synthetic"\nversion = "0"\n\n'
            '[tool.pytest.ini_options]\ntestpaths = ["tests"]\npythonpath = ["src"]\n',
            **self.data_files,
        }
        texts.update((source.path, "\n".join(source.lines) + "\n") for source in self.sources())
        return texts


def _package(package: int) -> str:
    return f"pkg{package:02d}"


def _import_line(module: SourceFile) -> str:
    package_name, _, module_name = module.name.rpartition(".")
    return f"from {package_name} import {module_name}"


def _call(module: SourceFile, function: int, argument: str) -> str:
    return f"{module.name.rpartition('.')[2]}.{module.functions[function].name}({argument})"


class Generator:
    """Writes the synthetic project from one random seed."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.project = Project()

    def generate(self, tests: int, files: int) -> Project:
        """About MODULES_PER_PACKAGE modules per package; `files` source files in all."""
        packages = max(1, round(files / (MODULES_PER_PACKAGE + 1)))
        self.project.package_files.append(
            SourceFile("src/app/__init__.py", "app", ['"""Synthetic application."""'], [1])
        )
        for package in range(packages):
            name = f"app.{_package(package)}"
            text = [f'"""Package {name}."""', "", f'NAME = "{name}"']
            path = f"src/app/{_package(package)}/__init__.py"
            self.project.package_files.append(SourceFile(path, name, text, [1, 3]))
        for index in range(files - 1 - packages):
            self.project.package_of.append(index % packages)
            self.project.modules.append(self._module(index, index % packages))
        self.project.conftests.append(self._conftest("tests/conftest.py", 0, "session", "settings"))
        for package in range(packages):
            mine = [
                index for index, owner in enumerate(self.project.package_of) if owner == package
            ]
            path = f"tests/{_package(package)}/conftest.py"
            self.project.conftests.append(self._conftest(path, mine[0], "module", "service"))
            self.project.data_files[f"data/{_package(package)}.json"] = json.dumps(
                {"package": package, "rows": [[row, row * row] for row in range(40)]}, indent=1
            )
        self._test_files(tests)
        return self.project

    def _module(self, index: int, package: int) -> SourceFile:
        """Module `index`: imports of lower-numbered modules, constants, then functions."""
        rng, modules = self.rng, self.project.modules
        name = f"app.{_package(package)}.mod{index:04d}"
        source = SourceFile(f"src/{name.replace('.', '/')}.py", name)
        same_package = [
            other for other in range(index) if self.project.package_of[other] == package
        ]
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4)) if index else 0):
            if same_package and rng.random() < 0.5:
                imported = rng.choice(same_package)
            else:
                imported = int(index * rng.random() ** 2)  # low numbers: a widely used core
            if imported not in source.imports:
                source.imports.append(imported)
        lines = [f'"""Synthetic module {name}, generated by bench/plan_scale.py."""', ""]
        lines += [_import_line(modules[imported]) for imported in source.imports]
        lines += ["", f"LIMIT = {rng.randint(100, 999)}", f'NAME = "{name}"']
        source.top_level = [number for number, line in enumerate(lines, start=1) if line]
        size = rng.randint(50, 300)
        while len(lines) < size - 10 or len(source.functions) < 2:
            callee = None
            if source.imports:
                target = modules[rng.choice(source.imports)]
                callee = _call(target, rng.randrange(len(target.functions)), "total")
            lines += ["", ""]
            source.top_level.append(len(lines) + 1)
            function_name = f"f{index:04d}_{len(source.functions):02d}"
            text, function = self._function(function_name, callee, len(lines) + 1)
            source.functions.append(function)
            lines += text
        source.lines = lines
        return source

    def _function(self, name: str, callee: str | None, start: int) -> tuple[list[str], Function]:
        """A function whose `def` is at line `start`: statement blocks and a return."""
        rng = self.rng
        lines = [
            f"def {name}(value):",
            f"    total = value * {rng.randint(2, 9)} + {rng.randint(1, 99)}",
        ]
        kinds = ["", _ALWAYS]  # the def line runs at import, not in a call
        blocks = [rng.choice(_BLOCKS) for _ in range(rng.randint(1, 8))]
        if callee is not None and rng.random() < 0.6:
            blocks.insert(rng.randrange(len(blocks) + 1), ((f"total = {callee}", _ALWAYS),))
        for block in blocks:
            numbers = {"a": rng.randint(2, 9), "b": rng.randint(2, 9), "word": rng.choice(_WORDS)}
            for text, kind in block:
                lines.append("    " + text.format(**numbers))
                kinds.append(kind)
        lines.append("    return total")
        kinds.append(_ALWAYS)
        numbered = list(enumerate(kinds, start=start))
        full = tuple(line for line, kind in numbered if kind in (_ALWAYS, _BRANCH))
        partial = tuple(line for line, kind in numbered if kind == _ALWAYS)
        return lines, Function(name, start + 1, full, partial)

    def _conftest(self, path: str, uses: int, scope: str, fixture: str) -> SourceFile:
        """A conftest.py with a hook and one wide fixture that calls module `uses`."""
        module = self.project.modules[uses]
        lines = [
            '"""Shared fixtures, generated by bench/plan_scale.py."""',
            "",
            "import pytest",
            "",
            _import_line(module),
            "",
            "",
            "def pytest_configure(config):",
            '    config.addinivalue_line("markers", "slow: a slow test")',
            "",
            "",
            f'@pytest.fixture(scope="{scope}")',
            f"def {fixture}():",
            f"    return {_call(module, 0, '1')}",
        ]
        name = path.removesuffix(".py").replace("/", ".")
        return SourceFile(path, name, lines, [1, 3, 5, 8, 12], [uses])

    def _test_files(self, tests: int) -> None:
        """A few hundred test files, each named after the module it mostly tests."""
        rng, modules = self.rng, self.project.modules
        count = max(1, min(tests, round(tests / TESTS_PER_FILE)))
        weights = [rng.lognormvariate(0, 0.6) for _ in range(count)]
        quotas = [max(1, int(tests * weight / sum(weights))) for weight in weights]
        for _ in range(tests - sum(quotas)):
            quotas[rng.randrange(count)] += 1
        while sum(quotas) > tests:  # the minimum of one per file can overshoot
            quotas[quotas.index(max(quotas))] -= 1
        names: set[str] = set()
        named_after = rng.sample(list(range(len(modules))) * (count // len(modules) + 1), count)
        for number, (subject, quota) in enumerate(zip(named_after, quotas, strict=True)):
            package = self.project.package_of[subject]
            path = f"tests/{_package(package)}/test_{modules[subject].name.rpartition('.')[2]}"
            path += f"_{number}.py" if path in names else ".py"
            names.add(path.removesuffix(".py"))
            mine = [
                index for index, owner in enumerate(self.project.package_of) if owner == package
            ]
            others = rng.sample(mine, min(len(mine), rng.randint(0, 2)))
            if rng.random() < 0.3:
                others.append(rng.randrange(len(modules)))
            imports = [subject, *(other for other in dict.fromkeys(others) if other != subject)]
            self.project.test_files.append(self._test_file(path, package, imports, quota))

    def _test_file(self, path: str, package: int, subjects: list[int], quota: int) -> TestFile:
        """Test module text: imports, the `table` fixture, plain, parametrised, class tests."""
        rng, modules = self.rng, self.project.modules
        lines = [
            f'"""Tests of {modules[subjects[0]].name}, generated by bench/plan_scale.py."""',
            "",
            "import json",
            "from pathlib import Path",
            "",
            "import pytest",
            "",
            *(_import_line(modules[subject]) for subject in subjects),
            "",
            f'DATA = Path(__file__).parents[2] / "data" / "{_package(package)}.json"',
            "",
            "",
            '@pytest.fixture(scope="module")',
            "def table():",
            "    return json.loads(DATA.read_text())",
        ]
        # Imported, everything up to the fixture's decorator runs (its `def` line is part of
        # the decorated statement, its body is the fixture's).
        top_level = [number for number, line in enumerate(lines[:-2], start=1) if line]
        name = path.removesuffix(".py").replace("/", ".")
        source = SourceFile(path, name, lines, top_level, subjects)
        test_file = TestFile(source, package, len(lines))
        in_class = False
        written = 0
        while written < quota:
            if not in_class and written >= 0.7 * quota >= 10:
                in_class = True
                lines += ["", "", "class TestBehaviour:"]
                source.top_level.append(len(lines))
            params = min(rng.randint(2, 10), quota - written) if rng.random() < 0.15 else 0
            lines += [""] if in_class else ["", ""]
            written += self._test(test_file, params if params > 1 else 0, in_class)
        return test_file

    def _test(self, test_file: TestFile, params: int, in_class: bool) -> int:
        """Append one test (function or method, maybe parametrised); how many node IDs it has."""
        rng, source = self.rng, test_file.source
        subject = rng.choice(source.imports)
        function = rng.randrange(len(self.project.modules[subject].functions))
        fixtures = tuple(
            fixture
            for fixture, share in (("settings", 0.6), ("service", 0.4), ("table", 0.25))
            if rng.random() < share
        )
        indent = "    " if in_class else ""
        arguments = (["self"] if in_class else []) + (["case"] if params else []) + list(fixtures)
        number = len(test_file.tests)
        name = f"test_{number:04d}"
        if params:
            source.lines.append(f'{indent}@pytest.mark.parametrize("case", range({params}))')
        # A decorated def is one statement starting at its decorator.
        source.top_level.append(len(source.lines) + (0 if params else 1))
        call = _call(self.project.modules[subject], function, "case" if params else str(number))
        source.lines += [
            f"{indent}def {name}({', '.join(arguments)}):",
            f"{indent}    value = {call}",
            f"{indent}    assert value is not None",
        ]
        item = f"{source.path}::{'TestBehaviour::' if in_class else ''}{name}"
        nodeids = tuple(f"{item}[{case}]" for case in range(params)) if params else (item,)
        body = (len(source.lines) - 1, len(source.lines))
        test_file.tests.append(TestDef(nodeids, body, fixtures, (subject, function)))
        return len(nodeids)


# -- the map, as the recorder would write it ------------------------------------------------


def _import_keys(project: Project, imports: list[int]) -> set[ContextKey]:
    """The import contexts a file's imports include: each module and its parent packages.

    The same shape `scopes.imported_modules` gives the recorder: `from app.pkg03 import mod7`
    loads `app`, `app.pkg03` and `app.pkg03.mod7`.
    """
    keys: set[ContextKey] = set()
    for imported in imports:
        keys.add(("import", project.package_files[0].path))
        package = project.package_of[imported]
        keys.add(("import", project.package_files[package + 1].path))
        keys.add(("import", project.modules[imported].path))
    return keys


def _closure(project: Project, start: list[int]) -> list[int]:
    """`start` and every module they import, transitively, nearest first."""
    seen = dict.fromkeys(start)
    pending = deque(start)
    while pending:
        for imported in project.modules[pending.popleft()].imports:
            if imported not in seen:
                seen[imported] = None
                pending.append(imported)
    return list(seen)


class MapBuilder:
    """Builds the map of the project at a commit, context by context."""

    def __init__(self, project: Project, rng: random.Random) -> None:
        self.project = project
        self.rng = rng
        self.executed: set[tuple[int, int]] = set()  # (module, function) some test ran
        self.package_modules: dict[int, list[int]] = {}
        for module, package in enumerate(project.package_of):
            self.package_modules.setdefault(package, []).append(module)

    def build(self, commit: str) -> MapData:
        """Imports, session, wide fixtures, collection and every test's own context."""
        project = self.project
        data = MapData(
            meta=MapMeta(
                commit=commit,
                dirty=False,
                variant=VARIANT,
                tool_version=__version__,
                created=datetime.now(UTC).isoformat(),
                collector="coverage",
                python=platform.python_version(),
            )
        )
        for source in project.sources():
            imported = data.context(("import", source.path))
            imported.add_lines(source.path, source.top_level)
            imported.includes.update(_import_keys(project, source.imports))
        data.context(SESSION).add_lines(project.conftests[0].path, [_CONFTEST_HOOK_BODY])
        for number, conftest in enumerate(project.conftests):
            folder = conftest.path.rpartition("/")[0]
            fixture = data.context(("fixture", f"{folder}::{'service' if number else 'settings'}"))
            fixture.add_lines(conftest.path, [_CONFTEST_FIXTURE_BODY])
            self._run(fixture, {conftest.imports[0]: {0}})
        for test_file in project.test_files:
            self._test_file(data, test_file)
        for (kind, _name), context in data.contexts.items():
            context.early = kind in ("import", "collect")  # pytest collects before any test
        texts = project.files()
        referenced = {path for context in data.contexts.values() for path in context.lines}
        referenced.update(path for context in data.contexts.values() for path in context.reads)
        data.files = {path: blob_id(texts[path].encode()) for path in sorted(referenced)}
        for path in data.files:  # the code index the recorder writes for every Python file
            tree = scopes.parse(texts[path], path) if path.endswith(".py") else None
            if tree is not None:
                data.code[path] = codeindex.store(codeindex.build(tree))
        return data

    def _test_file(self, data: MapData, test_file: TestFile) -> None:
        """The file's collection, its `table` fixture and its tests."""
        project, rng = self.project, self.rng
        path = test_file.source.path
        package_key = ("fixture", f"{path.rpartition('/')[0]}::service")
        fixtures = {"settings": ("fixture", "tests::settings"), "service": package_key}
        data.context(("collect", path)).includes.add(("import", path))
        table = ("fixture", f"{path}::table")
        if any("table" in test.fixtures for test in test_file.tests):
            data.context(table).add_lines(path, [test_file.table_body])
            data.context(table).reads.add(f"data/{_package(test_file.package)}.json")
            fixtures["table"] = table
        conftests = [project.conftests[0].path, project.conftests[test_file.package + 1].path]
        includes = {SESSION, ("collect", path), ("import", path)}
        includes.update(("import", conftest) for conftest in conftests)
        pool = _closure(project, test_file.source.imports)
        for test in test_file.tests:
            for nodeid in test.nodeids:
                context = data.context(("test", nodeid))
                context.add_lines(path, test.body)
                self._run(context, self._modules_run(test_file, pool, test))
                context.includes.update(includes)
                context.includes.update(fixtures[fixture] for fixture in test.fixtures)
                outcome = rng.choices(("passed", "skipped", "failed"), (0.9965, 0.003, 0.0005))[0]
                duration = rng.lognormvariate(math.log(0.02), 1.2)
                data.tests[nodeid] = TestResult(duration, outcome, path)
                data.collected.add(nodeid)

    def _modules_run(
        self, test_file: TestFile, pool: list[int], test: TestDef
    ) -> dict[int, set[int]]:
        """Functions a test runs, by module: 5-40 files (median 10), mostly near its subjects."""
        rng, project = self.rng, self.project
        wanted = min(40, max(5, round(rng.lognormvariate(math.log(10), 0.55))))
        wanted = min(wanted, len(project.modules))
        subject, function = test.calls
        run = {subject: {function}}
        package = self.package_modules[test_file.package]
        while len(run) < wanted:  # the global draws always end it
            draw = rng.random()
            if draw < 0.6:
                module = rng.choice(pool)
            elif draw < 0.85:
                module = rng.choice(package)
            else:
                module = rng.randrange(len(project.modules))
            if module in run:
                continue
            functions = len(project.modules[module].functions)
            calls = rng.randint(1, 3 if module in test_file.source.imports else 2)
            run[module] = set(rng.sample(range(functions), min(calls, functions)))
        return run

    def _run(self, context: Context, run: dict[int, set[int]]) -> None:
        """Add the lines of calls to these functions; some skip their `if` branches."""
        for module, functions in run.items():
            source = self.project.modules[module]
            lines: set[int] = set()
            for function in functions:
                self.executed.add((module, function))
                taken = source.functions[function]
                lines.update(taken.full if self.rng.random() < 0.7 else taken.partial)
            context.add_lines(source.path, lines)


# -- the change -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """One changed file and the kind of change."""

    path: str
    kind: str


def make_change(
    project: Project, executed: set[tuple[int, int]], changed: int, rng: random.Random
) -> list[Edit]:
    """Edit `changed` files in place: the mix a feature branch typically has.

    The module-level change goes to a module that only test files import: one in a core
    module selects nearly everything, which `max_fraction` turns into a run-all plan, and
    then there would be no selection left to measure.
    """
    modules = project.modules
    imported = {module for source in [*modules, *project.conftests] for module in source.imports}
    order = rng.sample(range(len(modules)), len(modules))
    constant = next(module for module in order if module not in imported)
    others = [module for module in order if module != constant]
    new_function, bodies = others[0], others[1 : changed - FIXED_KINDS + 1]
    edits = []
    for module in bodies:
        ran = [
            function
            for function in range(len(modules[module].functions))
            if (module, function) in executed
        ]
        for function in rng.sample(ran, min(len(ran), rng.choice((1, 1, 2)))) or [0]:
            modules[module].lines[modules[module].functions[function].first - 1] += " + 1"
        edits.append(Edit(modules[module].path, "function body"))
    lines = modules[constant].lines
    at = next(number for number, line in enumerate(lines) if line.startswith("LIMIT = "))
    lines[at] = f"LIMIT = {int(lines[at].split()[-1]) + 1}"
    edits.append(Edit(modules[constant].path, "module-level constant"))
    modules[new_function].lines += [
        "",
        "",
        f"def bench_new_{new_function}(value):",
        "    return value + 1",
    ]
    edits.append(Edit(modules[new_function].path, "new function"))
    edited, extended = rng.sample(project.test_files, 2)
    test = rng.choice(edited.tests)
    edited.source.lines[test.body[0] - 1] += " or 0"
    edits.append(Edit(edited.source.path, "test body"))
    extended.source.lines += [
        "",
        "",
        "def test_bench_new(settings):",
        "    assert settings is not None",
    ]
    edits.append(Edit(extended.source.path, "new test"))
    read = sorted(
        {
            f"data/{_package(test_file.package)}.json"
            for test_file in project.test_files
            if any("table" in test.fixtures for test in test_file.tests)
        }
    )
    data_file = rng.choice(read)
    project.data_files[data_file] = project.data_files[data_file].replace('"rows"', '"rows_v2"')
    edits.append(Edit(data_file, "data file read by tests"))
    return edits


# -- the repository, built once ---------------------------------------------------------------


def _git(root: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", *args],
        cwd=root,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.strip()


def _write(root: Path, texts: dict[str, str]) -> None:
    for path, text in texts.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


@dataclass(frozen=True)
class Layout:
    """Where one workload's files live inside its cache folder."""

    folder: Path

    @property
    def root(self) -> Path:
        """The repository, where `selector plan` runs."""
        return self.folder / "repo"

    @property
    def map_file(self) -> Path:
        """The map as `write_map` writes it, kept outside the store to report its size."""
        return self.folder / "map.sqlite"

    @property
    def store(self) -> Path:
        """The store folder, holding the map in whatever form the store keeps it."""
        return self.root / ".selector" / "maps"


@dataclass(frozen=True)
class Workload:
    """A built workload: where it is, its two commits and what the change edited."""

    layout: Layout
    base: str
    head: str
    edits: tuple[Edit, ...]
    test_files: int


def build(layout: Layout, tests: int, files: int, changed: int, seed: int) -> Workload:
    """Project at C on main, its map in the store, the change at HEAD on a branch."""
    project = Generator(random.Random(f"project-{seed}")).generate(tests, files)
    root = layout.root
    root.mkdir(parents=True)
    _write(root, project.files())
    _git(root, "init", "--quiet", "--initial-branch=main")
    _git(root, "add", "--all")
    _git(root, "commit", "--quiet", "--message=synthetic project")
    base = _git(root, "rev-parse", "HEAD")
    builder = MapBuilder(project, random.Random(f"map-{seed}"))
    data = builder.build(base)
    write_map(layout.map_file, data)
    LocalStore(layout.store).put(data)
    before = project.files()
    edits = make_change(project, builder.executed, changed, random.Random(f"change-{seed}"))
    after = project.files()
    _write(root, {path: text for path, text in after.items() if before.get(path) != text})
    _git(root, "checkout", "--quiet", "-b", "feature")
    _git(root, "commit", "--quiet", "--all", "--message=a change")
    head = _git(root, "rev-parse", "HEAD")
    return Workload(layout, base, head, tuple(edits), len(project.test_files))


def prepare(tests: int, files: int, changed: int, seed: int) -> Workload:
    """The workload for these arguments, from the cache or built into it.

    The key covers this file, the map schema, the code that writes and stores maps (the
    stored bytes follow it) and the Python minor version (the map's variant), so a change to
    any of them builds afresh. A build happens in a scratch folder renamed into place at the
    end: an interrupted build leaves nothing that looks finished.
    """
    digest = hashlib.sha256(f"{SCHEMA_VERSION} {VARIANT}".encode())
    for source in (Path(__file__), *(REPO_ROOT / "selector" / name for name in STORED_BY)):
        digest.update(source.read_bytes())
    folder = CACHE / f"t{tests}-f{files}-c{changed}-s{seed}-{digest.hexdigest()[:12]}"
    saved = folder / "workload.json"
    if not saved.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE, prefix=".build-") as scratch:
            built = build(Layout(Path(scratch)), tests, files, changed, seed)
            fields = {
                "base": built.base,
                "head": built.head,
                "edits": [[edit.path, edit.kind] for edit in built.edits],
                "test_files": built.test_files,
            }
            Path(scratch, saved.name).write_text(json.dumps(fields, indent=1))
            Path(scratch).rename(folder)
            Path(scratch).mkdir()  # for TemporaryDirectory to remove
    fields = json.loads(saved.read_text())
    edits = tuple(Edit(path, kind) for path, kind in fields["edits"])
    return Workload(Layout(folder), fields["base"], fields["head"], edits, fields["test_files"])


# -- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """The figures of one measured `selector plan`."""

    seconds: float
    cpu_seconds: float  # this process's and its finished children's (git) user + system time
    rss_growth: float  # MiB: peak RSS after the call minus peak RSS before it
    rss_peak: float  # MiB: the process's peak RSS, interpreter and imports included
    traced_peak: float | None  # MiB, tracemalloc runs only
    selected: int
    items: int
    total: int


def plan_arguments(workload: Workload) -> list[str]:
    """The measured command's arguments, after `selector`."""
    return ["plan", "--base", workload.base, "--no-working-tree", "--format", "json"]


def _drive(workload: Workload, mode: str) -> dict[str, Any]:
    """The figures of one fresh interpreter running the driver in `mode`."""
    env = {key: value for key, value in os.environ.items() if key != "SELECTOR_VARIANT"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, "-c", DRIVER, mode, *plan_arguments(workload)],
        cwd=workload.layout.root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        sys.exit(f"plan_scale: the measured process failed:\n{completed.stderr}")
    figures: dict[str, Any] = json.loads(completed.stdout.splitlines()[-1])
    return figures


def measure_imports(workload: Workload) -> tuple[float, float]:
    """Wall and CPU seconds of the imports `main` makes before planning: a fixed cost."""
    figures = _drive(workload, "imports")
    return figures["seconds"], figures["cpu_seconds"]


def measure(workload: Workload, mode: str) -> Run:
    """One measured `selector plan`; `mode` is plain, tracemalloc or profile=FILE."""
    figures = _drive(workload, mode)
    if figures["status"] != 0:
        sys.exit(f"plan_scale: selector plan exited {figures['status']}:\n{figures['stderr']}")
    if figures["run_all"]:
        print(f"plan_scale: the plan runs everything: {figures['reasons']}", file=sys.stderr)
        sys.exit(2)
    traced = figures["traced_peak"]
    return Run(
        seconds=figures["seconds"],
        cpu_seconds=figures["cpu_seconds"],
        rss_growth=(figures["rss_after_kib"] - figures["rss_before_kib"]) / 1024,
        rss_peak=figures["rss_after_kib"] / 1024,
        traced_peak=None if traced is None else traced / 2**20,
        selected=figures["selected"],
        items=figures["items"],
        total=figures["total"],
    )


def profile(workload: Workload, top: int) -> str:
    """Where a plan's time goes: cProfile's top functions, by cumulative and own time."""
    with tempfile.TemporaryDirectory() as scratch:
        stats_file = Path(scratch, "plan.prof")
        measure(workload, f"profile={stats_file}")
        report = io.StringIO()
        stats = pstats.Stats(str(stats_file), stream=report)
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)
        return report.getvalue()


# -- reporting ------------------------------------------------------------------------------


def _map_rows(map_file: Path) -> dict[str, int]:
    """Row counts of the map's main tables, to say what "large" means here."""
    connection = sqlite3.connect(f"{map_file.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("context", "line_bits", "includes", "file")
        }
    finally:
        connection.close()


def report(
    workload: Workload,
    runs: list[Run],
    *,
    traced: Run | None,
    command: str,
    arguments: argparse.Namespace,
    load: float,
    imports: tuple[float, float],
) -> list[str]:
    """The Markdown report."""
    seconds = [run.seconds for run in runs]
    cpu = [run.cpu_seconds for run in runs]
    growth = [run.rss_growth for run in runs]
    peak = [run.rss_peak for run in runs]
    layout = workload.layout
    rows = _map_rows(layout.map_file)
    stored = sum(path.stat().st_size for path in layout.store.rglob("*") if path.is_file())
    kinds: dict[str, int] = {}
    for edit in workload.edits:
        kinds[edit.kind] = kinds.get(edit.kind, 0) + 1
    change = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
    first = runs[0]
    return [
        f"## `selector plan`: {arguments.tests:,} tests x {arguments.files:,} files, "
        f"{len(workload.edits)}-file change",
        "",
        f"Measured: `cd {layout.root} && selector {shlex.join(plan_arguments(workload))}`",
        f"(`selector.cli.main` in a fresh interpreter that imported `selector.cli` first), "
        f"{len(runs)} runs, by `{command}`."
        + (
            f" Measuring stopped after a run over {FAR_OVER}x the time target."
            if len(runs) < arguments.repeat
            else ""
        ),
        "",
        "| figure | median | max | target |",
        "| --- | ---: | ---: | ---: |",
        f"| wall time | {statistics.median(seconds):.2f} s | {max(seconds):.2f} s "
        f"| < {TIME_LIMIT:g} s |",
        f"| CPU time (user + system, git children included) | {statistics.median(cpu):.2f} s "
        f"| {max(cpu):.2f} s | |",
        f"| of which: the imports `main` makes (one extra run) | {imports[0]:.2f} s wall, "
        f"{imports[1]:.2f} s CPU | | |",
        f"| peak RSS growth during the call | {statistics.median(growth):.0f} MiB "
        f"| {max(growth):.0f} MiB | < {MEMORY_LIMIT} MiB |",
        f"| peak RSS of the process (start-up included) | {statistics.median(peak):.0f} MiB "
        f"| {max(peak):.0f} MiB | |",
        "| tracemalloc peak (one extra, untimed run) | "
        + (f"{traced.traced_peak or 0:.0f} MiB | | |" if traced else "not run | | |"),
        "",
        "| workload | |",
        "| --- | --- |",
        f"| map | {layout.map_file.stat().st_size / 2**20:.1f} MiB as written by `write_map` "
        f"({stored / 2**20:.1f} MiB in the store): {rows['context']:,} contexts, "
        f"{rows['line_bits']:,} line_bits rows, {rows['includes']:,} includes rows, "
        f"{rows['file']:,} files |",
        f"| project | {arguments.files:,} source files, {workload.test_files} test files, "
        f"{first.total:,} tests (seed {arguments.seed}) |",
        f"| change ({workload.base[:12]}..{workload.head[:12]}) | {change} |",
        f"| plan | {first.selected:,} of {first.total:,} tests selected, "
        f"in {first.items:,} items |",
        f"| machine | Python {platform.python_version()}, {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load:.1f} when measuring "
        "started (wall time grows with it, CPU time much less) |",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Build (or reuse) the workload, measure, print the report; non-zero above target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tests", type=int, default=50_000, help="tests in the map")
    parser.add_argument("--files", type=int, default=2_000, help="source files in the project")
    parser.add_argument("--changed", type=int, default=20, help="files the change touches")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the project")
    parser.add_argument("--repeat", type=int, default=5, help="measured runs (default: 5)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile report")
    given = sys.argv[1:] if argv is None else list(argv)
    arguments = parser.parse_args(given)
    if arguments.files < 2 * MODULES_PER_PACKAGE or arguments.tests < 2 * TESTS_PER_FILE:
        parser.error(f"need --files >= {2 * MODULES_PER_PACKAGE}, --tests >= {2 * TESTS_PER_FILE}")
    if not FIXED_KINDS < arguments.changed <= arguments.files // 2 or arguments.repeat < 1:
        parser.error(f"need {FIXED_KINDS} < --changed <= --files / 2 and --repeat >= 1")
    workload = prepare(arguments.tests, arguments.files, arguments.changed, arguments.seed)
    load = os.getloadavg()[0]
    runs = [measure(workload, "plain")]
    while len(runs) < arguments.repeat and runs[-1].seconds <= FAR_OVER * TIME_LIMIT:
        runs.append(measure(workload, "plain"))
    traced = None if len(runs) < arguments.repeat else measure(workload, "tracemalloc")
    imports = measure_imports(workload)
    command = shlex.join(["python", "bench/plan_scale.py", *given])
    print(
        "\n".join(
            report(
                workload,
                runs,
                traced=traced,
                command=command,
                arguments=arguments,
                load=load,
                imports=imports,
            )
        )
    )
    if arguments.profile:
        print(f"\n```\n{profile(workload, 30)}```")
    too_slow = statistics.median(run.seconds for run in runs) > TIME_LIMIT
    too_big = max(run.rss_growth for run in runs) > MEMORY_LIMIT
    return 1 if too_slow or too_big else 0


if __name__ == "__main__":
    sys.exit(main())
