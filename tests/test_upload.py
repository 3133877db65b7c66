"""selector upload-map: merge, carry forward, refuse, on real repositories and real pytest runs."""

import ast
import json
import shutil
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from stored_maps import only_map, only_map_file

from selector import codeindex
from selector.carry import shift_line, statement_moves
from selector.cli import main
from selector.gitdiff import Hunk
from selector.mapdb import MapData, read_map
from selector.store import LocalStore

from projects import Project, git

VARIANT = f"py{sys.version_info[0]}.{sys.version_info[1]}"

OPS = """
    SCALE = 10


    def add(a, b):
        return a + b


    def mul(a, b):
        return a * b


    def scaled(x):
        value = x * SCALE
        return value


    def describe(x):
        return "value " + str(x)
"""
# At HEAD: comment lines inserted above everything, mul's body changed, describe's statement
# reformatted over several lines (same syntax tree), everything else shifted.
OPS_AT_HEAD = """
    # Arithmetic,
    # for the tests.

    SCALE = 10


    def add(a, b):
        return a + b


    def mul(a, b):
        return b * a


    def scaled(x):
        value = x * SCALE
        return value


    def describe(x):
        return (
            "value "
            + str(x)
        )
"""
PROJECT = {
    "pyproject.toml": """
        [tool.pytest.ini_options]
        pythonpath = ["src"]
        testpaths = ["tests"]
    """,
    "src/calc/__init__.py": "",
    "src/calc/ops.py": OPS,
    "src/calc/text.py": """
        def shout(word):
            return word.upper() + "!"
    """,
    "tests/conftest.py": """
        import pytest

        from calc import ops


        @pytest.fixture(scope="session")
        def base():
            return ops.add(1, 1)
    """,
    "tests/test_ops.py": """
        from calc import ops


        def test_add(base):
            assert ops.add(base, 1) == 3


        def test_mul():
            assert ops.mul(2, 3) == 6


        def test_scaled():
            assert ops.scaled(2) == 20


        def test_describe():
            assert ops.describe(1) == "value 1"
    """,
    "tests/test_text.py": """
        from calc.text import shout


        def test_shout():
            assert shout("a") == "A!"
    """,
    "tests/test_gone.py": """
        def test_gone():
            assert True
    """,
}
UNAFFECTED = {f"tests/test_ops.py::{name}" for name in ("test_add", "test_scaled", "test_describe")}


def maps_folder(project: Project) -> Path:
    return project.path / ".selector" / "maps"


def upload(capsys: pytest.CaptureFixture[str], *args: str, status: int = 0) -> tuple[str, str]:
    """Run `selector upload-map` here; its stdout and stderr."""
    assert main(["upload-map", *args]) == status
    captured = capsys.readouterr()
    return captured.out, captured.err


def make_plan(project: Project, base: str) -> dict[str, Any]:
    """`selector plan --base BASE` for HEAD, written where `--selector-plan` reads it."""
    destination = project.path / ".selector" / "plan.json"
    arguments = ["plan", "--base", base, "--no-working-tree", "--format", "json"]
    assert main([*arguments, "--output", str(destination)]) == 0
    document: dict[str, Any] = json.loads(destination.read_text())
    return document


def clear_fragments(project: Project) -> None:
    shutil.rmtree(project.path / ".selector" / "fragments", ignore_errors=True)


def record_base(project: Project, capsys: pytest.CaptureFixture[str]) -> str:
    """The project recorded in full and uploaded at its first commit."""
    project.write(PROJECT)
    commit = project.commit("base")
    project.record().assert_outcomes(passed=6)
    upload(capsys)
    clear_fragments(project)
    return commit


def change_to_head(project: Project) -> str:
    """The change of OPS_AT_HEAD, a renamed module, a deleted test file and a new test."""
    project.write({"src/calc/ops.py": OPS_AT_HEAD})
    git(project.path, "mv", "src/calc/text.py", "src/calc/words.py")
    git(project.path, "rm", "-q", "tests/test_gone.py")
    test_ops = project.path / "tests" / "test_ops.py"
    test_ops.write_text(
        test_ops.read_text() + "\n\ndef test_new():\n    assert ops.add(2, 2) == 4\n"
    )
    project.write(
        {
            "tests/test_text.py": """
                from calc.words import shout


                def test_shout():
                    assert shout("a") == "A!"
            """
        }
    )
    return project.commit("change")


# -- carrying forward ------------------------------------------------------------------


def test_carried_forward_map_equals_a_full_recording_for_the_tests_not_rerun(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    base = record_base(project, capsys)
    head = change_to_head(project)
    plan = make_plan(project, base)
    assert set(plan["selected"]) == {
        "tests/test_ops.py::test_mul",
        "tests/test_ops.py::test_new",
        "tests/test_text.py",
    }
    project.record("--selector-plan", ".selector/plan.json").assert_outcomes(passed=3)
    out, _err = upload(capsys)
    assert f"6 tests (3 re-run, 3 carried forward from {base[:12]}, 1 no longer collected)" in out
    carried = only_map_at(project, head)

    clear_fragments(project)
    project.record().assert_outcomes(passed=6)
    full = project.fragment()

    assert carried.meta.commit == head
    assert set(carried.tests) == set(full.tests)
    assert set(carried.tests) - set(plan_tests(carried, plan)) == UNAFFECTED
    for nodeid in UNAFFECTED:
        assert carried.test_lines(nodeid) == full.test_lines(nodeid), nodeid
    describe = "tests/test_ops.py::test_describe"
    old_lines = only_map_at(project, base).test_lines(describe)["src/calc/ops.py"]
    assert carried.test_lines(describe)["src/calc/ops.py"] != old_lines  # they did move
    for nodeid in carried.tests:  # re-run tests: the union of shared contexts only adds
        for path, lines in full.test_lines(nodeid).items():
            assert lines <= carried.test_lines(nodeid)[path], (nodeid, path)
    assert carried.files == {path: full.files.get(path) for path in carried.files}
    # Every Python file has its code index as at HEAD: made again for a changed or renamed
    # one, kept for the others.
    python = {path for path in carried.files if path.endswith(".py")}
    assert python == carried.code.keys()
    for path in python:
        at_head = codeindex.build(ast.parse((project.path / path).read_bytes()))
        assert carried.code[path] == codeindex.store(at_head), path


def only_map_at(project: Project, commit: str) -> MapData:
    store = LocalStore(maps_folder(project))
    return read_map(store.fetch(commit, VARIANT))


def plan_tests(data: MapData, plan: dict[str, Any]) -> set[str]:
    return {
        nodeid
        for nodeid in data.tests
        if any(nodeid == item or nodeid.startswith(f"{item}::") for item in plan["selected"])
    }


def test_a_carried_test_is_selected_when_the_function_it_ran_changes_later(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """describe's only line moved and was reformatted at HEAD; a later edit must still find it."""
    base = record_base(project, capsys)
    change_to_head(project)
    make_plan(project, base)
    project.record("--selector-plan", ".selector/plan.json").assert_outcomes(passed=3)
    upload(capsys)
    head = git(project.path, "rev-parse", "HEAD")
    ops = project.path / "src" / "calc" / "ops.py"
    ops.write_text(ops.read_text().replace('"value "', '"value: "'))
    project.commit("later")
    assert make_plan(project, head)["selected"] == ["tests/test_ops.py::test_describe"]


def test_an_affected_test_that_was_not_rerun_is_not_carried_and_every_plan_selects_it(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    record_base(project, capsys)
    project.write({"src/calc/ops.py": OPS.replace("a * b", "b * a")})
    head = project.commit("mul changed")
    project.record("-k", "not test_mul").assert_outcomes(passed=5, deselected=1)
    _out, err = upload(capsys)
    assert "1 test that the change since" in err
    assert "every plan selects them until a run records them: tests/test_ops.py::test_mul" in err
    stored = only_map_at(project, head)
    assert "tests/test_ops.py::test_mul" not in stored.tests
    assert "tests/test_ops.py::test_mul" in stored.collected
    plan = make_plan(project, "HEAD")
    assert plan["selected"] == ["tests/test_ops.py::test_mul"]
    assert plan["tests"]["tests/test_ops.py::test_mul"]["reasons"] == [
        "collected but not run when the map was recorded"
    ]


def test_a_run_of_every_test_is_stored_as_it_is(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    record_base(project, capsys)
    change_to_head(project)
    project.record().assert_outcomes(passed=6)
    out, _err = upload(capsys)
    assert "stored map of" in out
    assert "carried forward" not in out


def test_the_nearest_stored_map_is_the_base_and_a_corrupt_one_is_skipped(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    first = record_base(project, capsys)
    project.write({"src/calc/text.py": "def shout(word):\n    return word.upper() + '!'\n"})
    project.commit("second")
    project.record().assert_outcomes(passed=6)
    upload(capsys)
    clear_fragments(project)
    store = LocalStore(maps_folder(project))
    (second,) = store.maps(commit=git(project.path, "rev-parse", "HEAD"))
    (maps_folder(project) / second.name).write_bytes(b"\x1f\x8b damaged")
    project.write({"src/calc/ops.py": OPS.replace("a * b", "b * a")})
    project.commit("third")
    project.record("-k", "test_mul").assert_outcomes(passed=1, deselected=5)
    out, err = upload(capsys)
    assert f"skipped the stored map of {second.commit[:12]}: stored map in" in err
    assert "is corrupt" in err
    assert f"carried forward from {first[:12]}" in out


def test_base_map_option_carries_from_a_given_file(
    project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    base = record_base(project, capsys)
    base_file = tmp_path / "base.sqlite"
    shutil.copyfile(only_map_file(maps_folder(project)), base_file)
    shutil.rmtree(maps_folder(project))
    project.write({"src/calc/ops.py": OPS.replace("a * b", "b * a")})
    project.commit("mul changed")
    project.record("-k", "test_mul").assert_outcomes(passed=1, deselected=5)
    out, _err = upload(capsys, "--base-map", str(base_file))
    assert f"6 tests (1 re-run, 5 carried forward from {base[:12]}, 0 no longer collected)" in out


def test_a_partial_run_without_a_base_map_is_stored_and_its_gaps_are_selected(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a project whose configuration deselects tests gets on its first upload."""
    project.write(PROJECT)
    commit = project.commit()
    project.record("-k", "test_mul").assert_outcomes(passed=1, deselected=5)
    _out, err = upload(capsys)
    assert err.startswith(
        f"selector: warning: the fragments ran 1 of 6 collected tests and no {VARIANT} map of "
        f"{commit[:12]} or its first-parent ancestors is in "
    )
    stored = only_map(maps_folder(project))
    assert stored.meta.commit == commit
    assert set(stored.tests) == {"tests/test_ops.py::test_mul"}
    assert len(stored.collected) == 6
    plan = make_plan(project, "HEAD")
    assert set(plan["selected"]) == {
        f"tests/test_ops.py::{name}" for name in ("test_add", "test_scaled", "test_describe")
    } | {"tests/test_text.py::test_shout", "tests/test_gone.py::test_gone"}


def test_a_base_map_of_a_commit_missing_from_the_clone_is_a_clear_error(
    project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    record_base(project, capsys)
    base_file = tmp_path / "base.sqlite"
    shutil.copyfile(only_map_file(maps_folder(project)), base_file)
    git(project.path, "checkout", "-q", "--orphan", "other")
    project.commit("unrelated history")
    git(project.path, "branch", "-D", "main")
    git(project.path, "reflog", "expire", "--expire=now", "--all")
    git(project.path, "gc", "-q", "--prune=now")
    project.record("-k", "test_mul").assert_outcomes(passed=1, deselected=5)
    _out, err = upload(capsys, "--base-map", str(base_file), status=1)
    assert err.count("\n") == 1
    assert "is not in this clone: fetch it" in err


def test_a_corrupt_base_map_file_is_a_clear_error(
    project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    record_base(project, capsys)
    project.record("-k", "test_mul").assert_outcomes(passed=1, deselected=5)
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"SQLite format 3\0" + b"\0" * 100)
    _out, err = upload(capsys, "--base-map", str(broken), status=1)
    assert err.count("\n") == 1
    assert "is not a readable selector map" in err


# -- refusing ---------------------------------------------------------------------------


def test_a_dirty_working_tree_is_refused_unless_forced(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.write(PROJECT)
    project.commit()
    project.record().assert_outcomes(passed=6)
    project.write({"src/calc/text.py": "def shout(word):\n    return word + '!'\n"})
    _out, err = upload(capsys, status=1)
    assert err == (
        "selector: error: the working tree has uncommitted changes and a map must describe "
        "a commit: commit or stash them, or pass --force\n"
    )
    assert not maps_folder(project).exists()
    upload(capsys, "--force")


def test_fragments_recorded_from_a_dirty_tree_are_refused_unless_forced(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.write(PROJECT)
    project.commit()
    project.write({"src/calc/text.py": "def shout(word):\n    return word + '!'\n"})
    project.record().assert_outcomes(passed=5, failed=1)
    git(project.path, "checkout", "-q", "--", "src/calc/text.py")
    _out, err = upload(capsys, status=1)
    assert err.count("\n") == 1
    assert "1 fragments were recorded with uncommitted changes" in err
    upload(capsys, "--force")
    assert only_map(maps_folder(project)).meta.dirty


def test_a_detached_commit_no_remote_has_is_refused_and_a_pushed_one_is_not(
    project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    project.write(PROJECT)
    project.commit()
    git(project.path, "remote", "add", "origin", str(remote))
    git(project.path, "push", "-q", "origin", "main")
    git(project.path, "checkout", "-q", "--detach")
    project.record().assert_outcomes(passed=6)
    upload(capsys)  # detached, but origin/main has it

    project.write({"README.md": "local only\n"})
    commit = project.commit("not pushed")
    clear_fragments(project)
    project.record().assert_outcomes(passed=6)
    _out, err = upload(capsys, status=1)
    assert err == (
        f"selector: error: HEAD ({commit[:12]}) is detached and no remote branch contains it, "
        "so nobody else could plan against its map: push it or check out a branch, or pass "
        "--force\n"
    )
    upload(capsys, "--force")


def test_an_unwritable_store_is_one_line_and_leaves_nothing(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.write(PROJECT)
    project.commit()
    project.record().assert_outcomes(passed=6)
    blocker = project.path / "blocker"
    blocker.write_text("a file where the store folder should be\n")
    _out, err = upload(capsys, "--store", str(blocker / "maps"), status=1)
    assert err.count("\n") == 1
    assert err == (
        f"selector: error: {blocker} is a file, but selector needs a folder there "
        f"(for {blocker / 'maps'}): move or delete the file\n"
    )


def test_all_fragments_corrupt_is_a_clear_error(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    project.write(PROJECT)
    project.commit()
    folder = project.path / ".selector" / "fragments"
    folder.mkdir(parents=True)
    (folder / "bad.sqlite").write_bytes(b"garbage" * 50)
    _out, err = upload(capsys, status=1)
    assert err.count("\n") == 1
    assert err.startswith("selector: error: no fragments recorded at")
    assert "1 unreadable, such as: " in err


def test_fragments_from_another_folder(
    project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    project.write(PROJECT)
    project.commit()
    project.record().assert_outcomes(passed=6)
    shards = tmp_path / "downloaded"
    shutil.move(project.path / ".selector" / "fragments", shards)
    out, _err = upload(capsys, "--fragments", str(shards))
    assert "6 tests" in out


# -- moving lines ------------------------------------------------------------------------


def moves(old: str, new: str) -> dict[int, set[int]]:
    found, _owned = statement_moves(
        ast.parse(textwrap.dedent(old)), ast.parse(textwrap.dedent(new))
    )
    return found


def test_a_reformatted_statement_keeps_its_identity() -> None:
    old = """
        def f(x):
            return "a" + str(x)
    """
    new = """
        def f(x):
            return (
                "a"
                + str(x)
            )
    """
    assert moves(old, new) == {2: {2}, 3: {3}}


def test_statements_after_an_insertion_shift_and_a_changed_one_drops() -> None:
    old = """
        A = 1

        def f():
            x = 1
            return x
    """
    new = """
        A = 1

        def g():
            return 0

        def f():
            x = 2
            return x
    """
    assert moves(old, new) == {2: {2}, 4: {7}, 6: {9}}


def test_a_change_in_one_function_does_not_misalign_another() -> None:
    old = """
        def f():
            return 1

        def g():
            return 1
    """
    new = """
        def f():
            print()
            return 1

        def g():
            return 1
    """
    assert moves(old, new) == {2: {2}, 3: {4}, 5: {6}, 6: {7}}


@pytest.mark.parametrize(
    ("line", "expected"),
    [(1, 1), (4, 4), (5, None), (6, None), (7, 8), (10, 11), (11, 13), (20, 22)],
)
def test_lines_outside_statements_move_by_the_hunks(line: int, expected: int | None) -> None:
    # lines 5-6 replaced by 3 lines; one line inserted after old line 10
    hunks = (Hunk(5, 2, 5, 3), Hunk(10, 0, 12, 1))
    assert shift_line(line, hunks) == expected
