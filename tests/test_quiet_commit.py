"""A commit on main whose recording runs no test still gets its map, carried forward.

Each case records the project in full at a first commit and stores its map, commits a
change, plans it and runs the plan with recording on, as CI does on main. The run runs no
test (or some shards run none), yet it leaves a fragment, upload-map stores the map of HEAD
with the tests carried forward, and the next plan starts from that map.
"""

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from selector.cli import main
from selector.mapdb import MapData, read_map
from selector.store import LocalStore

from projects import SPLIT_SUITE, Project, git

VARIANT = f"py{sys.version_info[0]}.{sys.version_info[1]}"
USED = {f"test_used_{i}.py::test_used[{x}]" for i in range(4) for x in (1, 2, 3)}
PLAIN = {f"test_used_{i}.py::test_plain_{i}" for i in range(4)} | {"test_other.py::test_other"}
EVERY_TEST = USED | PLAIN
PLAN = ".selector/plan.json"  # inside .selector/, which git ignores


@pytest.fixture
def recorded(project: Project, capsys: pytest.CaptureFixture[str]) -> Project:
    """SPLIT_SUITE recorded in full at its first commit, its map stored, no fragment left."""
    project.write(SPLIT_SUITE)
    project.commit("first")
    project.record().assert_outcomes(passed=17)
    assert main(["upload-map"]) == 0
    capsys.readouterr()
    for fragment in project.fragments():
        fragment.unlink()
    return project


def plan(*args: str) -> dict[str, Any]:
    """`selector plan` against the previous commit, written to PLAN."""
    command = ["plan", "--base", "HEAD~1", "--no-working-tree", "--format", "json"]
    assert main([*command, "--output", PLAN, *args]) == 0
    document: dict[str, Any] = json.loads(Path(PLAN).read_text())
    return document


def record_plan(project: Project, *args: str) -> pytest.RunResult:
    """The planned run with recording on; it succeeds."""
    result = project.record("--selector-plan", PLAN, *args)
    assert result.ret == pytest.ExitCode.OK
    return result


def upload(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """`selector upload-map`, which succeeds; its stdout and stderr."""
    assert main(["upload-map"]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def map_of(project: Project, commit: str) -> MapData:
    store = LocalStore(project.path / ".selector" / "maps")
    return read_map(store.fetch(commit, VARIANT))


def test_a_commit_that_selects_nothing_gets_its_map(
    recorded: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    first = git(recorded.path, "rev-parse", "HEAD")
    recorded.write({"app.py": SPLIT_SUITE["app.py"].replace("(x):", "(x):  # a comment")})
    head = recorded.commit("a comment")
    quiet = plan()
    assert (quiet["run_all"], quiet["selected"]) == (False, [])
    result = record_plan(recorded)
    result.stdout.fnmatch_lines(
        [
            "selector: shard 1/1: nothing to run in this shard",
            "selector: recorded 0 tests into * (none of the 17 collected ran: it lists them, "
            "so that the base map is carried forward to this commit)",
        ]
    )
    fragment = recorded.fragment()
    assert (fragment.meta.commit, fragment.tests, fragment.collected) == (head, {}, EVERY_TEST)
    assert not [key for key in fragment.contexts if key[0] == "test"]

    out, _err = upload(capsys)
    assert f"17 tests (0 re-run, 17 carried forward from {first[:12]}, 0 no longer" in out
    assert set(map_of(recorded, head).tests) == EVERY_TEST

    # The next change is planned from the map of the quiet commit, and selects by it.
    recorded.write({"app.py": SPLIT_SUITE["app.py"].replace("x * 2", "2 * x")})
    recorded.commit()
    after = plan()
    assert after["map_commit"] == head
    assert set(after["selected"]) == PLAIN


def test_a_shard_beyond_the_plans_count_leaves_a_fragment_and_the_upload_completes(
    recorded: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    first = git(recorded.path, "rev-parse", "HEAD")
    recorded.write({"app.py": SPLIT_SUITE["app.py"].replace("x + 1", "1 + x")})
    head = recorded.commit()
    assert len(plan("--shards", "2")["shards"]) == 2
    runs = [record_plan(recorded, "--selector-shard", f"{k}/3") for k in (1, 2, 3)]
    runs[2].stdout.fnmatch_lines(["selector: shard 3/3: nothing to run in this shard"])
    fragments = [read_map(path) for path in recorded.fragments()]
    counts = sorted(len(fragment.tests) for fragment in fragments)
    assert (counts[0], sum(counts)) == (0, 12), counts
    assert all(fragment.collected == EVERY_TEST for fragment in fragments)

    out, err = upload(capsys)
    assert f"17 tests (12 re-run, 5 carried forward from {first[:12]}, 0 no longer" in out
    assert "warning" not in err
    assert set(map_of(recorded, head).tests) == EVERY_TEST


def test_a_run_whose_selection_is_all_deselected_by_k_leaves_a_fragment(
    recorded: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    first = git(recorded.path, "rev-parse", "HEAD")
    recorded.write({"app.py": SPLIT_SUITE["app.py"].replace("x * 2", "2 * x")})
    head = recorded.commit()
    assert set(plan()["selected"]) == PLAIN
    result = record_plan(recorded, "-k", "not plain and not other")
    result.stdout.fnmatch_lines(["*17 deselected*", "selector: recorded 0 tests into *"])
    assert recorded.fragment().collected == EVERY_TEST

    out, err = upload(capsys)
    assert f"12 tests (0 re-run, 12 carried forward from {first[:12]}, 0 no longer" in out
    # What the change affects was not run: not carried, and every plan selects it.
    assert "5 tests that the change since" in err
    stored = map_of(recorded, head)
    assert set(stored.tests) == USED
    assert stored.collected == EVERY_TEST
    assert set(plan()["selected"]) >= PLAIN


def test_a_run_that_collects_nothing_writes_no_fragment(project: Project) -> None:
    project.write({"test_empty.py": "x = 1\n"})
    project.commit()
    result = project.record()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["selector: no test collected: no fragment written"])
    assert project.fragments() == []
