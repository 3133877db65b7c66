"""selector run, the local loop: a real project, real edits, real pytest runs, one after another."""

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sample import upload

from selector.cli import _split_run_arguments

from projects import Project

FILES = {
    "pyproject.toml": """
        [tool.pytest.ini_options]
        pythonpath = ["src"]
        testpaths = ["tests"]
    """,
    "src/calc.py": """
        def add(a, b):
            return a + b


        def mul(a, b):
            return a * b
    """,
    "tests/test_add.py": """
        from calc import add


        def test_add():
            assert add(2, 3) == 5


        def test_add_zero():
            assert add(2, 0) == 2
    """,
    "tests/test_mul.py": """
        from calc import mul


        def test_mul():
            assert mul(2, 3) == 6
    """,
}
ADD_TESTS = {"tests/test_add.py::test_add", "tests/test_add.py::test_add_zero"}
MUL_TESTS = {"tests/test_mul.py::test_mul"}
ALL_TESTS = ADD_TESTS | MUL_TESTS
_RESULT = re.compile(r"^(tests/\S+) (PASSED|FAILED|ERROR)", re.MULTILINE)
SELECTOR = [sys.executable, "-m", "selector.cli"]


@pytest.fixture
def calc(project: Project) -> Project:
    project.write(FILES)
    project.commit("calc")
    return project


def run(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """`selector run ARGS -- -v` in the project (-v: pytest names every test it runs)."""
    return subprocess.run(
        [*SELECTOR, "run", *args, "-v", "-p", "no:cacheprovider"],
        cwd=project.path,
        capture_output=True,
        text=True,
        check=False,
    )


def ran(completed: subprocess.CompletedProcess[str]) -> set[str]:
    return {match[1] for match in _RESULT.finditer(completed.stdout)}


def edit(project: Project, old: str, new: str, path: str = "src/calc.py") -> None:
    target = project.path / path
    text = target.read_text()
    assert old in text, (path, old)
    target.write_text(text.replace(old, new, 1))


def local_map(project: Project) -> Path:
    return (
        project.path
        / ".selector"
        / "local"
        / f"py{sys.version_info[0]}.{sys.version_info[1]}.sqlite"
    )


def test_the_first_run_runs_everything_and_the_next_nothing(calc: Project) -> None:
    first = run(calc)
    assert first.returncode == 0, first.stdout + first.stderr
    assert ran(first) == ALL_TESTS
    assert "no py" in first.stderr  # no map anywhere: the reason everything runs
    assert local_map(calc).is_file()
    second = run(calc)
    assert second.returncode == 0, second.stderr
    assert ran(second) == set()
    assert "nothing to run" in second.stderr
    assert calc.pytester.path.joinpath(".selector", "local", ".gitignore").is_file()


def test_an_uncommitted_edit_runs_its_tests_once(calc: Project) -> None:
    run(calc)
    edit(calc, "return a * b", "return b * a")
    assert ran(run(calc)) == MUL_TESTS
    assert ran(run(calc)) == set()
    calc.commit("committed as it was tested")
    assert ran(run(calc)) == set()


def test_a_failing_test_runs_until_it_passes(calc: Project) -> None:
    run(calc)
    edit(calc, "return a + b", "return a + b + 1")
    broken = run(calc)
    assert broken.returncode == 1
    assert ran(broken) == ADD_TESTS
    assert ran(run(calc)) == ADD_TESTS  # no new edit: the failures run again
    edit(calc, "return a + b + 1", "return a + b")
    fixed = run(calc)
    assert fixed.returncode == 0
    assert ran(fixed) == ADD_TESTS
    assert ran(run(calc)) == set()


def test_the_first_run_starts_from_the_stored_map(calc: Project) -> None:
    calc.record()
    upload(calc.path)
    edit(calc, "return a * b", "return b * a")
    first = run(calc)
    assert ran(first) == MUL_TESTS, first.stderr
    assert local_map(calc).is_file()
    assert ran(run(calc)) == set()


def test_dry_run_prints_what_would_run_and_changes_nothing(calc: Project) -> None:
    run(calc)
    before = local_map(calc).read_bytes()
    edit(calc, "return a * b", "return b * a")
    dry = subprocess.run(
        [*SELECTOR, "run", "--dry-run"], cwd=calc.path, capture_output=True, text=True, check=False
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.split() == sorted(MUL_TESTS)
    assert local_map(calc).read_bytes() == before
    assert ran(run(calc)) == MUL_TESTS


def test_tests_outside_the_paths_given_to_pytest_stay_selected(calc: Project) -> None:
    run(calc)
    edit(calc, "return a + b", "return b + a")
    edit(calc, "return a * b", "return b * a")
    assert ran(run(calc, "tests/test_mul.py")) == MUL_TESTS
    assert ran(run(calc)) == ADD_TESTS  # affected, not run yet
    assert ran(run(calc)) == set()


def test_a_test_deselected_by_k_stays_selected(calc: Project) -> None:
    run(calc)
    edit(calc, "return a + b", "return b + a")
    assert ran(run(calc, "-k", "zero")) == {"tests/test_add.py::test_add_zero"}
    assert ran(run(calc)) == {"tests/test_add.py::test_add"}
    assert ran(run(calc)) == set()


def test_an_unusable_local_map_starts_over(calc: Project) -> None:
    run(calc)
    local_map(calc).write_bytes(b"not a map")
    again = run(calc)
    assert "the local map is unusable" in again.stderr
    assert ran(again) == ALL_TESTS
    assert ran(run(calc)) == set()


def test_a_source_edited_while_its_tests_run_counts_as_changed(calc: Project) -> None:
    # The test rewrites the module it imported: the lines recorded are of the old content.
    calc.write(
        {
            "tests/test_touch.py": """
                import pathlib

                from calc import mul


                def test_touch():
                    source = pathlib.Path(__file__).parents[1] / "src" / "calc.py"
                    text = source.read_text()
                    if "# touched" not in text:
                        source.write_text(text + "# touched\\n")
                    assert mul(1, 1) == 1
            """
        }
    )
    calc.commit("a test that edits a source")
    assert ran(run(calc)) == {*ALL_TESTS, "tests/test_touch.py::test_touch"}
    # calc.py now differs from the content the run started from: every test of it runs.
    assert ran(run(calc)) == {*ALL_TESTS, "tests/test_touch.py::test_touch"}
    assert ran(run(calc)) == set()


@pytest.mark.parametrize(
    ("argv", "own", "for_pytest"),
    [
        (["run"], ["run"], []),
        (["run", "-x"], ["run"], ["-x"]),
        (["run", "--dry-run", "-k", "foo"], ["run", "--dry-run"], ["-k", "foo"]),
        (["run", "--store", "s", "--", "--store", "t"], ["run", "--store", "s"], ["--store", "t"]),
        (["run", "--variant=v", "tests/", "-x"], ["run", "--variant=v"], ["tests/", "-x"]),
        (["run", "tests/", "--dry-run"], ["run"], ["tests/", "--dry-run"]),
    ],
)
def test_selectors_options_come_first_and_the_rest_is_pytests(
    argv: list[str], own: list[str], for_pytest: list[str]
) -> None:
    assert _split_run_arguments(argv) == (own, for_pytest)


def test_pytest_watcher_runs_it_on_every_save(calc: Project) -> None:
    # The README's recipe. '**/*.py', not ptw's default '*.py': watchdog 7 matches patterns
    # against whole paths. An absolute root: watchdog 7.1's inotify observer loses every event
    # in a sub-folder of a relative one ('.').
    scripts = Path(sys.executable).parent
    ptw = [str(scripts / "ptw"), "--patterns", "**/*.py", "--now"]
    watcher = subprocess.Popen(
        [*ptw, "--runner", str(scripts / "selector"), str(calc.path), "run", "-v"],
        cwd=calc.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        first = _read_until(watcher, "local map updated")
        assert "tests/test_mul.py::test_mul PASSED" in first
        assert "tests/test_add.py::test_add PASSED" in first
        time.sleep(0.5)  # let the watcher settle before the save it must see
        edit(calc, "return a * b", "return b * a")
        second = _read_until(watcher, "local map updated")
    finally:
        os.killpg(watcher.pid, signal.SIGTERM)
        watcher.wait(timeout=30)
    assert "tests/test_mul.py::test_mul PASSED" in second
    assert "tests/test_add.py::test_add" not in second


def _read_until(watcher: "subprocess.Popen[bytes]", marker: str) -> str:
    """What the watcher prints from now until `marker` shows up (at most three minutes: a run
    of `selector run` on a loaded CI machine takes far longer than on a quiet one)."""
    assert watcher.stdout is not None
    output = b""
    deadline = time.monotonic() + 180
    while marker.encode() not in output:
        assert time.monotonic() < deadline, output.decode()
        ready, _, _ = select.select([watcher.stdout], [], [], 1)
        if ready:
            chunk = os.read(watcher.stdout.fileno(), 65536)
            assert chunk, f"the watcher ended: {output.decode()}"
            output += chunk
    return output.decode()
