"""pytest --selector-plan/--selector-shard: every selected test runs exactly once across shards."""

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from selector.cli import main
from selector.mapdb import read_map
from selector.nodeids import covered

from projects import SPLIT_SUITE, Project, git

# "path::test PASSED [ 50%]" serially, "[gw0] [ 50%] PASSED path::test" under xdist.
PASSED = re.compile(r"^(?:(?P<serial>\S+::\S+) PASSED|\[gw\d+\] \[...%\] PASSED (?P<xdist>\S+))")


@pytest.fixture
def planned(project: Project) -> Project:
    """A recorded project with a committed change to a function used by part of the suite."""
    project.write(SPLIT_SUITE)
    project.commit()
    project.record().assert_outcomes(passed=17)
    assert main(["upload-map"]) == 0
    project.write({"app.py": "def used(x):\n    return 1 + x\n\ndef other(x):\n    return x * 2\n"})
    project.commit()
    return project


def make_plan(project: Project, *args: str) -> dict[str, Any]:
    command = ["plan", "--base", "HEAD~1", "--no-working-tree", "--format", "json"]
    assert main([*command, "--output", "plan.json", *args]) == 0
    plan: dict[str, Any] = json.loads((project.path / "plan.json").read_text())
    return plan


def collected(project: Project) -> set[str]:
    result = project.pytester.runpytest_subprocess("--co", "-q", "-p", "no:cacheprovider")
    return {line for line in result.outlines if "::" in line and " " not in line}


def run_shard(project: Project, *args: str) -> tuple[pytest.RunResult, list[str]]:
    result = project.pytester.runpytest_subprocess(
        "--selector-plan", "plan.json", "-v", "-p", "no:cacheprovider", *args
    )
    ran = [
        match["serial"] or match["xdist"]
        for line in result.outlines
        if (match := PASSED.match(line))
    ]
    return result, ran


@pytest.mark.parametrize("extra", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_every_selected_test_runs_in_exactly_one_shard(
    planned: Project, extra: tuple[str, ...]
) -> None:
    if extra:
        pytest.importorskip("xdist")
    plan = make_plan(planned, "--shards", "3")
    assert len(plan["shards"]) == 3
    expected = covered(plan["selected"], collected(planned))
    assert len(expected) == 12
    runs: Counter[str] = Counter()
    for index in (1, 2, 3):
        result, ran = run_shard(planned, "--selector-shard", f"{index}/3", *extra)
        assert result.ret == 0
        runs.update(ran)
    assert set(runs) == expected
    assert set(runs.values()) == {1}


def test_run_all_plan_spreads_every_test_over_the_shards(planned: Project) -> None:
    (planned.path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    planned.commit()
    plan = make_plan(planned, "--shards", "2")
    assert plan["run_all"]
    runs: Counter[str] = Counter()
    for index in (1, 2):
        runs.update(run_shard(planned, "--selector-shard", str(index))[1])
    assert set(runs) == collected(planned)
    assert set(runs.values()) == {1}


def test_user_keyword_narrows_the_shard(planned: Project) -> None:
    make_plan(planned)
    _result, ran = run_shard(planned, "-k", "test_used_0")
    assert sorted(ran) == [f"test_used_0.py::test_used[{x}]" for x in (1, 2, 3)]


def test_shards_beyond_the_plan_run_nothing_and_succeed(planned: Project) -> None:
    plan = make_plan(planned, "--shards", "16")
    assert len(plan["shards"]) == 12  # never more shards than tests to run
    assert all(shard["units"] for shard in plan["shards"])
    outcomes = [run_shard(planned, "--selector-shard", f"{index}/16")[0] for index in range(1, 17)]
    assert all(result.ret == 0 for result in outcomes)
    empty = [
        result for result in outcomes if not any(PASSED.match(line) for line in result.outlines)
    ]
    assert empty
    empty[0].stdout.fnmatch_lines(["selector: shard */16: nothing to run in this shard"])


def test_recording_a_shard_keeps_every_collected_node_id(planned: Project) -> None:
    make_plan(planned, "--shards", "2")
    for old in planned.fragments():
        old.unlink()
    result, ran = run_shard(planned, "--selector-shard", "1/2", "--selector-record")
    assert result.ret == 0
    fragment = read_map(planned.fragments()[0])
    assert set(fragment.tests) == set(ran)
    assert fragment.collected == collected(planned)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "selector: no plan at plan.json: run `selector plan --output plan.json` first"),
        ("{not json", "selector: cannot read the plan plan.json: *"),
        ('{"version": 99}', "selector: plan.json is a plan of version 99, *"),
        (
            '{"version": 1}',
            'selector: plan.json is no usable plan: "run_all" is missing; make it with '
            "`selector plan --output plan.json`",
        ),
        (
            '{"version": 1, "run_all": false, "selected": "tests"}',
            'selector: plan.json is no usable plan: "selected" must be a list of node IDs, '
            'not "tests"; *',
        ),
        (
            '{"version": 1, "run_all": "no", "selected": []}',
            'selector: plan.json is no usable plan: "run_all" must be true or false, not "no"; *',
        ),
        (
            '{"version": 1, "run_all": false, "selected": [], "shards": [{"index": 2}]}',
            # fnmatch: "[0]" would be a character class.
            'selector: plan.json is no usable plan: "shards"?0? must hold an "index" from 1 to 1 *',
        ),
    ],
)
def test_unusable_plan_is_a_usage_error(
    project: Project, content: str | None, message: str
) -> None:
    project.write({"test_x.py": "def test_x():\n    pass\n"})
    if content is not None:
        (project.path / "plan.json").write_text(content)
    result = project.pytester.runpytest_subprocess("--selector-plan", "plan.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


@pytest.mark.parametrize(
    ("shard", "message"),
    [
        ("3/2", "--selector-shard 3/2: K must be between 1 and 2"),
        ("1/1", "the plan has 2 shards, --selector-shard says 1: some selected tests would*"),
        ("one", "--selector-shard takes K/N or K, got 'one'"),
    ],
)
def test_shard_outside_the_plan_is_a_usage_error(
    planned: Project, shard: str, message: str
) -> None:
    make_plan(planned, "--shards", "2")
    result, _ran = run_shard(planned, "--selector-shard", shard)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: selector: {message}"])


def outside_plan(project: Project) -> Path:
    """A plan of the committed change, written next to the repository, not inside it."""
    destination = project.path.parent / f"{project.path.name}-plan.json"
    make_plan(project)
    (project.path / "plan.json").replace(destination)
    return destination


@pytest.mark.parametrize("form", ["space", "equals"])
@pytest.mark.parametrize("where", ["relative", "absolute"])
def test_a_plan_outside_the_repository_runs_its_selection(
    planned: Project, form: str, where: str
) -> None:
    """`--selector-plan ../plan.json` makes pytest take the plan's folder into its rootdir
    (the option is read after pytest chose it): the items still match."""
    destination = outside_plan(planned)
    path = f"../{destination.name}" if where == "relative" else str(destination)
    arguments = ["--selector-plan", path] if form == "space" else [f"--selector-plan={path}"]
    result = planned.pytester.runpytest_subprocess(*arguments, "-v", "-p", "no:cacheprovider")
    ran = {match["serial"] for line in result.outlines if (match := PASSED.match(line))}
    assert result.ret == 0
    if form == "space" and where == "relative":
        result.stdout.fnmatch_lines([f"rootdir: {planned.path.parent}"])
    assert {item.partition("::")[0].rpartition("/")[2] for item in ran} == {
        f"test_used_{index}.py" for index in range(4)
    }
    assert len(ran) == 12


@pytest.mark.parametrize("extra", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_plan_whose_tests_are_all_missing_is_an_error(
    planned: Project, extra: tuple[str, ...]
) -> None:
    make_plan(planned)
    for index in range(4):
        (planned.path / f"test_used_{index}.py").unlink()
    result, ran = run_shard(planned, *extra)
    assert ran == []
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(
        [
            "selector: none of the 4 items the plan selects (test_used_0.py::test_used, ...) "
            f"was collected under {planned.path}: run pytest in the checkout the plan was "
            "made for, on every test path it selects"
        ]
    )


def test_a_shard_whose_tests_are_all_missing_is_an_error(planned: Project) -> None:
    plan = {
        "version": 1,
        "run_all": False,
        "selected": ["test_gone.py::test_x", "test_other.py::test_other"],
        "shards": [
            {"index": 1, "units": ["test_gone.py::test_x"]},
            {"index": 2, "units": ["test_other.py::test_other"]},
        ],
    }
    (planned.path / "plan.json").write_text(json.dumps(plan))
    result, ran = run_shard(planned, "--selector-shard", "1/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(
        ["selector: shard 1/2: none of its 1 planned tests (test_gone.py::test_x, ...) was *"]
    )
    result, ran = run_shard(planned, "--selector-shard", "2/2")
    assert result.ret == 0
    assert ran == ["test_other.py::test_other"]
    result.stdout.fnmatch_lines(["selector: selected, but not collected: test_gone.py::test_x"])


def test_a_plan_path_that_hides_the_configuration_file_is_an_error(planned: Project) -> None:
    """With a pytest.ini in the project, `--selector-plan ../plan.json` makes pytest look
    for its configuration above the project: an error that says how to write it."""
    destination = outside_plan(planned)
    planned.write({"pytest.ini": "[pytest]\nmarkers = slow\n"})
    path = f"../{destination.name}"
    result = planned.pytester.runpytest_subprocess("--selector-plan", path)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: selector: pytest took {path} for a test path (it reads selector's options "
            f"after its configuration) and so did not read {planned.path}/pytest.ini: write "
            f"--selector-plan={path}"
        ]
    )
    result = planned.pytester.runpytest_subprocess(f"--selector-plan={path}")
    assert result.ret == 0
    result.assert_outcomes(passed=12, deselected=5)


def test_node_ids_are_relative_to_the_repository_whatever_the_rootdir(project: Project) -> None:
    """A project in a sub-folder with its own pytest.ini: pytest's rootdir is the sub-folder,
    but the map and the plan name tests from the repository root, so the listed items run
    with `xargs pytest` there, and the plan from the sub-folder too."""
    project.write({f"proj/{name}": source for name, source in SPLIT_SUITE.items()})
    project.write({"proj/pytest.ini": "[pytest]\n"})
    project.commit()
    sub = project.path / "proj"
    recorded = subprocess.run(
        [sys.executable, "-m", "pytest", "--selector-record", "-p", "no:cacheprovider", "-q"],
        cwd=sub,
        capture_output=True,
        text=True,
        check=False,
    )
    assert recorded.returncode == 0, recorded.stdout
    assert "proj/test_used_0.py::test_used[1]" in project.fragment().tests
    assert main(["upload-map"]) == 0
    project.write({"proj/app.py": SPLIT_SUITE["app.py"].replace("x + 1", "1 + x")})
    project.commit()
    listed = selector(project.path, "plan", "--base", "HEAD~1", "--no-working-tree")
    items = listed.split()
    assert items == [f"proj/test_used_{index}.py::test_used" for index in range(4)]
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *items],
        cwd=project.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout
    assert "12 passed" in ran.stdout
    selector(
        project.path,
        "plan",
        "--base",
        "HEAD~1",
        "--no-working-tree",
        "--format",
        "json",
        "--output",
        "p.json",
    )
    planned = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--selector-plan=../p.json"],
        cwd=sub,
        capture_output=True,
        text=True,
        check=False,
    )
    assert planned.returncode == 0, planned.stdout
    assert "12 passed, 5 deselected" in planned.stdout


def selector(root: Path, *args: str) -> str:
    """Run the selector command in `root`; it must succeed. Its standard output."""
    completed = subprocess.run(
        [sys.executable, "-m", "selector.cli", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_a_shard_recorded_with_the_plan_outside_the_repository(planned: Project) -> None:
    """The rootdir above the repository changes neither the recorded commit nor the IDs."""
    destination = outside_plan(planned)
    for old in planned.fragments():
        old.unlink()
    result = planned.pytester.runpytest_subprocess(
        "--selector-record", "--selector-plan", f"../{destination.name}", "-p", "no:cacheprovider"
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"rootdir: {planned.path.parent}"])
    fragment = planned.fragment()
    assert fragment.meta.commit == git(planned.path, "rev-parse", "HEAD")
    assert fragment.collected == collected(planned)
    assert len(fragment.tests) == 12
