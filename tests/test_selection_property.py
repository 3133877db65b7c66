"""Property: on generated packages and random edits, every test the edit breaks is selected.

Each example generates a small package (modules with constants and functions that call
each other, default arguments, import-time uses, results cached across tests) and tests
that assert the values the functions return at the base, written the ways real suites
write them: plain functions, tests bound by assignment from a factory, tests made by a
factory decorator, and a test class imported from another test module and subclassed.
The base is recorded once; each edit is then applied on its own branch (with the test
files touched too, or not), the suite runs for real at that head, and every test whose
outcome changed must be in the plan.
"""

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from selector.nodeids import covered

from projects import git


@dataclass(frozen=True)
class Function:
    """`def f{module}_{index}(x={default}): return {term} + {offset}`."""

    module: int
    index: int
    default: int
    offset: int
    calls: tuple[int, int] | None  # (module, index) of an earlier function, or None
    uses_constant: bool
    cached: bool  # @functools.cache: later calls, from other tests too, do not run it

    @property
    def name(self) -> str:
        return f"f{self.module}_{self.index}"


@dataclass(frozen=True)
class Package:
    constants: tuple[int, ...]  # C of each module
    functions: tuple[Function, ...]

    def value(self, function: Function) -> int:
        """What the function returns at this version, computed without running it."""
        term = function.default
        if function.calls is not None:
            module, index = function.calls
            term += self.value(self.function(module, index))
        if function.uses_constant:
            term += self.constants[function.module]
        return term + function.offset

    def function(self, module: int, index: int) -> Function:
        return next(f for f in self.functions if (f.module, f.index) == (module, index))

    def source(self, module: int, extra: str = "") -> str:
        lines = ["import functools", *(f"from pkg import m{m}" for m in range(module))]
        lines += ["", f"C = {self.constants[module]}", ""]
        for function in self.functions:
            if function.module != module:
                continue
            term = "x"
            if function.calls is not None:
                term += f" + m{function.calls[0]}.f{function.calls[0]}_{function.calls[1]}()"
            if function.uses_constant:
                term += " + C"
            lines += [
                "",
                *(["@functools.cache"] if function.cached else []),
                f"def {function.name}(x={function.default}):",
                f"    return {term} + {function.offset}",
                "",
            ]
        return "\n".join(lines) + extra + "\n"


@st.composite
def packages(draw: st.DrawFn) -> Package:
    modules = draw(st.integers(1, 3))
    functions: list[Function] = []
    for module in range(modules):
        for index in range(draw(st.integers(1, 3))):
            earlier = [(f.module, f.index) for f in functions if f.module < module]
            calls = draw(st.sampled_from([None, *earlier]))
            functions.append(
                Function(
                    module,
                    index,
                    draw(st.integers(0, 9)),
                    draw(st.integers(0, 9)),
                    calls,
                    draw(st.booleans()),
                    draw(st.booleans()),
                )
            )
    constants = tuple(draw(st.integers(0, 9)) for _ in range(modules))
    return Package(constants, tuple(functions))


@dataclass(frozen=True)
class Edit:
    kind: str  # offset, default, constant, comment, new_function
    target: int  # index into functions (or module for constant/comment/new_function)
    touch_tests: bool = False  # also add a test to every test module: they are in the diff


edits = st.builds(
    Edit,
    st.sampled_from(["offset", "default", "constant", "comment", "new_function"]),
    st.integers(0, 20),
    st.booleans(),
)

# Helpers of the test modules: a factory whose result is bound by assignment, and a
# factory decorator that replaces the function it decorates by the test.
TEST_HELPERS = """
def _check(function, expected):
    def test():
        assert function() == expected

    return test


def _expects(expected):
    def decorate(function):
        def test():
            assert function() == expected

        return test

    return decorate
"""


def write_project(root: Path, package: Package) -> None:
    # Never "too much to narrow": every plan is judged, however much of the suite it selects.
    (root / "selector.yml").write_text("max_fraction: 1\n")
    (root / "pkg").mkdir(parents=True, exist_ok=True)
    (root / "pkg" / "__init__.py").write_text("")
    modules = len(package.constants)
    for module in range(modules):
        (root / "pkg" / f"m{module}.py").write_text(package.source(module))
    for module in range(modules):
        functions = [f for f in package.functions if f.module == module]
        base = [f"from pkg import m{module}", "", f"class TestM{module}:"]
        base += [
            f"    def test_{f.name}(self):\n"
            f"        assert m{module}.{f.name}() == {package.value(f)}\n"
            for f in functions
        ]
        (root / f"test_base_m{module}.py").write_text("\n".join(base))
        tests = [f"from pkg import m{module}", f"from test_base_m{module} import TestM{module}"]
        tests += [TEST_HELPERS, f"AT_IMPORT = m{module}.C", ""]
        tests += [
            f"def test_{f.name}():\n    assert m{module}.{f.name}() == {package.value(f)}\n"
            for f in functions
        ]
        # The factory gets a function that calls the tested one by name: handed over itself
        # (`_check(m0.f0_0, ...)`), a cached result would reach the test through a value,
        # which the cached-results rule does not follow (README, "Limitations").
        tests += [
            f"def _value_{f.name}():\n    return m{module}.{f.name}()\n\n\n"
            f"test_assigned_{f.name} = _check(_value_{f.name}, {package.value(f)})\n"
            for f in functions
        ]
        tests += [
            f"@_expects({package.value(f)})\ndef test_decorated_{f.name}():\n"
            f"    return m{module}.{f.name}()\n"
            for f in functions
        ]
        tests.append(f"class TestTimedM{module}(TestM{module}):\n    pass\n")
        tests.append(
            f"def test_constant_{module}():\n    assert AT_IMPORT == {package.constants[module]}\n"
        )
        (root / f"test_m{module}.py").write_text("\n\n".join(tests))


def touch_tests(root: Path, package: Package) -> set[str]:
    """Add a new passing test to every test module; the new tests' node IDs."""
    added = set()
    for module in range(len(package.constants)):
        with (root / f"test_m{module}.py").open("a") as source:
            source.write(f"\n\ndef test_added_m{module}():\n    assert True\n")
        added.add(f"test_m{module}.py::test_added_m{module}")
    return added


def apply(root: Path, package: Package, edit: Edit) -> None:
    """Change the sources on disk as `edit` says (the tests keep the base's expectations)."""
    modules = len(package.constants)
    if edit.kind in ("offset", "default"):
        function = package.functions[edit.target % len(package.functions)]
        if edit.kind == "offset":
            changed = replace(function, offset=function.offset + 1)
        else:
            changed = replace(function, default=function.default + 1)
        edited = replace(
            package, functions=tuple(changed if f == function else f for f in package.functions)
        )
        module = function.module
        (root / "pkg" / f"m{module}.py").write_text(edited.source(module))
    elif edit.kind == "constant":
        module = edit.target % modules
        constants = tuple(c + 1 if i == module else c for i, c in enumerate(package.constants))
        (root / "pkg" / f"m{module}.py").write_text(
            replace(package, constants=constants).source(module)
        )
    else:
        module = edit.target % modules
        extra = (
            "\n# a comment\n"
            if edit.kind == "comment"
            else "\n\ndef brand_new_helper(y):\n    return y\n"
        )
        (root / "pkg" / f"m{module}.py").write_text(package.source(module, extra))


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=root, capture_output=True, text=True, check=False
    )


def failing(root: Path) -> set[str]:
    result = run(root, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider")
    return set(re.findall(r"^FAILED (\S+)", result.stdout, re.MULTILINE))


@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(package=packages(), changes=st.lists(edits, min_size=3, max_size=3))
@example(  # a cached function whose later caller, in another test, gets the kept result
    package=Package(
        constants=(1, 2),
        functions=(
            Function(0, 0, default=1, offset=0, calls=None, uses_constant=False, cached=True),
            Function(1, 0, default=2, offset=3, calls=(0, 0), uses_constant=True, cached=False),
        ),
    ),
    changes=[Edit("offset", 0, touch_tests=True), Edit("constant", 0), Edit("default", 0, True)],
)
def test_every_test_the_edit_breaks_is_selected(
    tmp_path_factory: pytest.TempPathFactory, package: Package, changes: list[Edit]
) -> None:
    root = tmp_path_factory.mktemp("generated")
    write_project(root, package)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    recorded = run(root, "-m", "pytest", "-q", "--selector-record", "-p", "no:cacheprovider")
    assert recorded.returncode == 0, recorded.stdout
    assert run(root, "-m", "selector.cli", "upload-map").returncode == 0
    for number, edit in enumerate(changes):
        git(root, "checkout", "-q", "-B", f"edit{number}", "main")
        apply(root, package, edit)
        added = touch_tests(root, package) if edit.touch_tests else set()
        git(root, "commit", "-q", "-a", "-m", edit.kind)
        broken = failing(root)
        planned = run(
            root,
            "-m",
            "selector.cli",
            "plan",
            "--base",
            "main",
            "--no-working-tree",
            "--format",
            "json",
        )
        plan = json.loads(planned.stdout)
        if not plan["run_all"]:
            missed = broken - covered(plan["selected"], broken)
            assert not missed, (edit, missed, plan["selected"])
            assert not broken & set(plan["removed"])
        if edit.kind in ("comment", "new_function"):
            assert not broken
            assert set(plan["selected"]) == added and not plan["run_all"]


INSTALLABLE = """
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "generated"
version = "1.0"

[tool.setuptools]
packages = ["pkg"]
"""


def install(root: Path, site: Path) -> None:
    """`pip install .` of the generated project into `site` (offline, no build isolation)."""
    options = ["--no-index", "--no-deps", "--no-build-isolation", "--upgrade", "--target"]
    installed = run(root, "-m", "pip", "install", "-q", *options, str(site), ".")
    assert installed.returncode == 0, installed.stderr


def run_installed(root: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest importing `pkg` from `site`: not the checkout (`-P`, `--import-mode=importlib`)."""
    options = ["-q", "-p", "no:cacheprovider", "--import-mode=importlib"]
    return subprocess.run(
        [sys.executable, "-P", "-m", "pytest", *options, *args],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=False,
    )


@settings(
    max_examples=2,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(package=packages(), changes=st.lists(edits, min_size=2, max_size=2))
def test_every_test_the_edit_breaks_is_selected_from_a_non_editable_install(
    tmp_path_factory: pytest.TempPathFactory, package: Package, changes: list[Edit]
) -> None:
    """The suite imports `pkg` from a `pip install .` made at each head, never the checkout."""
    root = tmp_path_factory.mktemp("installed")
    site = tmp_path_factory.mktemp("site")
    write_project(root, package)
    (root / "pyproject.toml").write_text(INSTALLABLE)
    (root / ".gitignore").write_text("/build/\n*.egg-info/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    install(root, site)
    recorded = run_installed(root, site, "--selector-record")
    assert recorded.returncode == 0, recorded.stdout
    assert "repository files ran from installed copies" in recorded.stdout
    assert run(root, "-m", "selector.cli", "upload-map").returncode == 0
    for number, edit in enumerate(changes):
        git(root, "checkout", "-q", "-B", f"edit{number}", "main")
        apply(root, package, edit)
        git(root, "commit", "-q", "-a", "-m", edit.kind)
        install(root, site)
        result = run_installed(root, site, "-rf")
        broken = set(re.findall(r"^FAILED (\S+)", result.stdout, re.MULTILINE))
        planned = run(root, "-m", "selector.cli", "plan", "--base", "main", "--format", "json")
        plan = json.loads(planned.stdout)
        assert not plan["run_all"], plan["reasons"]
        missed = broken - covered(plan["selected"], broken)
        assert not missed, (edit, missed, plan["selected"])
