"""Recording under bad conditions: a complete fragment or none, and a line that says which."""

import signal
import subprocess
import sys
import time

import pytest
from stored_maps import only_map

from selector.children import RUN_FOLDER_PREFIX
from selector.cli import main

from projects import Project, git


def test_failing_suite_still_leaves_a_complete_fragment(project: Project) -> None:
    project.write({"test_fail.py": "def test_fails():\n    assert False\n"})
    project.commit()
    result = project.record()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["selector: recorded 1 test into *"])
    assert project.fragment().tests["test_fail.py::test_fails"].outcome == "failed"


def test_collection_error_leaves_no_fragment_and_says_so(project: Project) -> None:
    project.write(
        {
            "test_ok.py": "def test_ok():\n    pass\n",
            "test_broken.py": "import does_not_exist\n",
        }
    )
    project.commit()
    result = project.record()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["selector: run ended with INTERRUPTED: no fragment written"])
    assert project.fragments() == []


def test_interrupted_run_leaves_no_fragment_and_says_so(project: Project) -> None:
    project.write(
        {
            "test_interrupt.py": """
                def test_before():
                    pass

                def test_ctrl_c():
                    raise KeyboardInterrupt
            """,
        }
    )
    project.commit()
    result = project.record()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["selector: run ended with INTERRUPTED: no fragment written"])
    assert project.fragments() == []


@pytest.mark.parametrize(
    ("files", "args"),
    [
        ({"conftest.py": "import does_not_exist\n"}, ()),
        ({}, ("--selector-shard", "1")),  # a usage error in pytest_configure
        ({}, ()),
    ],
    ids=["conftest-import-error", "usage-error", "complete-run"],
)
def test_a_run_leaves_no_temporary_folder(
    project: Project,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, str],
    args: tuple[str, ...],
) -> None:
    temporary = tmp_path_factory.mktemp("tmpdir")
    monkeypatch.setenv("TMPDIR", str(temporary))
    project.write({"test_plain.py": "def test_plain():\n    pass\n", **files})
    project.commit()
    project.record(*args)
    assert list(temporary.iterdir()) == []


WAITING_TEST = """
    import pathlib
    import time


    def test_waits():
        pathlib.Path("started").touch()
        deadline = time.monotonic() + 60
        while not pathlib.Path("release").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
"""


def test_a_killed_recordings_run_folder_is_removed_by_the_next_run_and_no_live_one_is(
    project: Project, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    temporary = tmp_path_factory.mktemp("tmpdir")
    monkeypatch.setenv("TMPDIR", str(temporary))
    project.write(
        {
            "test_killed.py": "import os, signal\n\ndef test_killed():\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n",
            "test_waiting.py": WAITING_TEST,
            "test_plain.py": "def test_plain():\n    pass\n",
        }
    )
    project.commit()
    older = temporary / f"{RUN_FOLDER_PREFIX}made-by-an-older-selector"
    older.mkdir()
    assert project.record("test_killed.py").ret == -signal.SIGKILL
    (killed,) = set(temporary.glob(f"{RUN_FOLDER_PREFIX}*")) - {older}

    # A run that starts while another runs: the killed run's folder goes, the live one stays.
    command = [sys.executable, "-m", "pytest", "--selector-record", "-p", "no:cacheprovider"]
    with subprocess.Popen([*command, "test_waiting.py"], cwd=project.path) as waiting:
        deadline = time.monotonic() + 60
        while not (project.path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        (live,) = set(temporary.glob(f"{RUN_FOLDER_PREFIX}*")) - {older, killed}
        project.record("test_plain.py").assert_outcomes(passed=1)
        assert set(temporary.glob(f"{RUN_FOLDER_PREFIX}*")) == {older, live}
        (project.path / "release").touch()
        assert waiting.wait(timeout=60) == 0
    assert list(temporary.iterdir()) == [older]
    assert len(project.fragments()) == 2


def test_crashed_run_leaves_nothing_behind(project: Project) -> None:
    project.write({"test_crash.py": "import os\n\ndef test_crash():\n    os._exit(3)\n"})
    project.commit()
    assert project.record().ret == 3
    folder = project.path / ".selector"
    assert not folder.exists() or not any(folder.rglob("*.sqlite*"))


def test_outside_a_git_repository_the_commit_is_null(project: Project) -> None:
    project.write({"test_plain.py": "def test_plain():\n    pass\n"})
    (project.path / ".git").rename(project.path / "not-git")
    result = project.record()
    result.stdout.fnmatch_lines(["selector: recorded 1 test into * (not in a git repository*"])
    assert project.fragment().meta.commit is None


def test_dirty_working_tree_is_noted(project: Project) -> None:
    project.write({"test_plain.py": "def test_plain():\n    pass\n"})
    project.commit()
    project.write({"test_plain.py": "def test_plain():\n    assert True\n"})
    project.record().assert_outcomes(passed=1)
    assert project.fragment().meta.dirty


def test_xdist_workers_write_fragments_that_upload_map_merges(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("xdist")
    project.write(
        {
            "app.py": "def one():\n    return 1\n\ndef two():\n    return 2\n",
            **{
                f"test_{index}.py": f"import app\n\ndef test_{index}():\n    assert app.one()\n"
                for index in range(6)
            },
            "test_two.py": "import app\n\ndef test_two():\n    assert app.two() == 2\n",
        }
    )
    commit = project.commit()
    result = project.record("-n", "2")
    result.assert_outcomes(passed=7)
    assert len(project.fragments()) == 2
    monkeypatch.chdir(project.path)
    assert main(["upload-map"]) == 0
    variant = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    assert f"stored map of {commit[:12]} ({variant}): 7 tests" in capsys.readouterr().out
    merged = only_map(project.path / ".selector" / "maps")
    assert merged.meta.commit == commit
    assert len(merged.tests) == 7
    two = project.line_of("app.py", "return 2")
    assert two in merged.test_lines("test_two.py::test_two")["app.py"]
    assert two not in merged.test_lines("test_0.py::test_0")["app.py"]


def test_upload_map_without_fragments_is_a_clear_error(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project.commit("empty")
    monkeypatch.chdir(project.path)
    assert main(["upload-map"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "run `pytest --selector-record` first" in error


def test_upload_map_skips_a_corrupt_fragment(
    project: Project, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project.write({"test_plain.py": "def test_plain():\n    pass\n"})
    project.commit()
    project.record().assert_outcomes(passed=1)
    corrupt = project.path / ".selector" / "fragments" / "corrupt.sqlite"
    corrupt.write_bytes(b"not a database at all" * 100)
    monkeypatch.chdir(project.path)
    assert main(["upload-map"]) == 0
    captured = capsys.readouterr()
    assert "skipped a fragment" in captured.err
    assert "1 test," in captured.out
    assert ".selector" not in git(project.path, "status", "--porcelain", "--untracked-files=all")
