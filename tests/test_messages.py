"""What selector tells people: stored maps named as stored, fetch hints that work, unknown
node IDs, counts and reasons that add up, and the selection that max_fraction set aside."""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sample import build, build_project, copy, plan
from stored_maps import only_map_file, rewrite_only_map

from projects import git

# Five modules that one parametrised test (30 parameters) runs, one module that a single
# test runs, and nine tests that run neither: 40 tests, max_fraction 0.75.
GROUPED = {
    "pyproject.toml": """
        [tool.pytest.ini_options]
        testpaths = ["tests"]
        pythonpath = ["."]

        [tool.selector]
        max_fraction = 0.75
    """,
    **{f"m{index}.py": f"def f{index}(x):\n    return x + {index}\n" for index in range(5)},
    "single.py": "def g(x):\n    return x\n",
    "tests/test_wide.py": """
        import pytest

        import m0, m1, m2, m3, m4


        @pytest.mark.parametrize("x", range(30))
        def test_p(x):
            assert m0.f0(m1.f1(m2.f2(m3.f3(m4.f4(x))))) == x + 10
    """,
    "tests/test_single.py": """
        import single


        def test_one():
            assert single.g(1) == 1
    """,
    "tests/test_rest.py": "\n".join(f"def test_{n}():\n    pass\n\n" for n in range(9)),
}


def selector(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a selector command in `root`."""
    return subprocess.run(
        [sys.executable, "-m", "selector.cli", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample shop, recorded and uploaded once for the module."""
    root = tmp_path_factory.mktemp("shop") / "shop"
    build(root)
    git(root, "branch", "feature")
    return root


@pytest.fixture
def shop(recorded: Path, tmp_path: Path) -> Path:
    """A private copy of the recorded shop."""
    return copy(recorded, tmp_path / "shop")


@pytest.fixture(scope="module")
def grouped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("grouped") / "project"
    build_project(root, GROUPED)
    return root


def _change(root: Path, edits: dict[str, tuple[str, str]]) -> None:
    """Commit edits (path: (old, new)) on a branch of `root`."""
    git(root, "checkout", "-q", "-b", "change")
    for path, (old, new) in edits.items():
        target = root / path
        target.write_text(target.read_text().replace(old, new, 1))
    git(root, "commit", "-q", "-a", "-m", "change")


def test_a_stored_map_file_is_read_as_it_is_stored(shop: Path) -> None:
    (stored,) = (shop / ".selector" / "maps").glob("*.sqlite.gz")
    document = plan(shop, "--base", "main", "--map", str(stored))
    assert not document["run_all"], document["reasons"]
    assert document["total_count"] == 14
    renamed = shop.parent / "map.sqlite.gz"  # an artifact's name: only gzip checks it
    renamed.write_bytes(stored.read_bytes())
    shown = selector(shop, "stats", "--map", str(renamed))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"map: {renamed}\n")
    renamed.write_bytes(stored.read_bytes()[:-20])
    document = plan(shop, "--base", "main", "--map", str(renamed))
    assert document["run_all"]
    assert document["reasons"] == [
        "unusable map: map.sqlite.gz is corrupt (the gzip stream is cut short)"
    ]


def test_stats_and_map_errors_name_the_stored_map(shop: Path) -> None:
    folder = shop / ".selector" / "maps"
    (stored,) = folder.glob("*.sqlite.gz")
    shown = selector(shop, "stats")
    assert shown.stdout.startswith(f"map: {stored}\n")
    rewrite_only_map(folder, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    (stored,) = folder.glob("*.sqlite.gz")
    failed = selector(shop, "stats")
    assert failed.returncode == 1
    assert failed.stderr == (
        f"selector: error: {stored} has map schema version 99, this selector reads version 3; "
        "re-record it with this version\n"
    )
    document = plan(shop, "--base", "main")
    assert str(stored) in document["reasons"][0]
    assert "selector-maps-" not in document["stderr"] + failed.stderr


def test_why_names_an_unknown_node_id_and_the_nearest_known_ones(shop: Path) -> None:
    plan(shop, "--base", "main")
    explained = selector(shop, "why", "tests/test_pricing.py::test_gros")
    assert explained.returncode == 0, explained.stderr
    lines = explained.stdout.splitlines()
    assert lines[0].startswith("tests/test_pricing.py::test_gros is unknown: the map of ")
    assert lines[1:3] == ["the nearest known tests:", "  tests/test_pricing.py::test_gross"]
    known = selector(shop, "why", "tests/test_pricing.py::test_gross").stdout
    assert known.startswith("tests/test_pricing.py::test_gross is not selected")


def test_the_fetch_hint_works_in_a_clone_without_origin(shop: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(shop), str(clone))
    git(clone, "remote", "remove", "origin")
    store = f"--store={shop / '.selector' / 'maps'}"
    document = plan(clone, store)
    assert document["reasons"][0].endswith(
        "this clone has no remote 'origin': use the local branch instead (`--base main`)"
    )
    assert not plan(clone, store, "--base", "main")["run_all"]
    git(clone, "checkout", "-q", "-b", "feature")
    git(clone, "branch", "-q", "-D", "main")
    reason = plan(clone, store)["reasons"][0]
    assert "add it (`git remote add origin URL`, then `git fetch origin " in reason
    git(clone, "remote", "add", "origin", shop.as_uri())
    git(clone, *shlex.split(reason.split("then `")[1].split("`")[0])[1:])
    assert not plan(clone, store)["run_all"]


def test_the_fetch_hint_works_in_a_shallow_single_branch_clone(shop: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", "-b", "feature", shop.as_uri(), str(clone))
    store = f"--store={shop / '.selector' / 'maps'}"
    reason = plan(clone, store)["reasons"][0]
    command = reason.split("fetch it (`")[1].split("`")[0]
    assert command == "git fetch --depth=200 origin +refs/heads/main:refs/remotes/origin/main"
    assert "git fetch origin main" not in reason  # it would not create origin/main here
    git(clone, *shlex.split(command)[1:])
    document = plan(clone, store)
    assert not document["run_all"], document["reasons"]


def test_counts_and_reasons_add_up(grouped: Path, tmp_path: Path) -> None:
    root = copy(grouped, tmp_path / "project")
    _change(root, {"single.py": ("    return x\n", "    x = x + 0\n    return x\n")})
    document = plan(root, "--base", "main")
    assert "      1 test: single.py:2 in g\n" in document["stderr"]
    assert "in 1 item;" in document["stderr"]
    git(root, "checkout", "-q", "main")
    git(root, "branch", "-q", "-D", "change")
    # Lines added at the top of a body are in it (a reason never says `:?`); the test of 30
    # parameters that all five changes select is one line of 30 tests, not five.
    _change(
        root, {f"m{i}.py": (f"def f{i}(x):\n", f"def f{i}(x):\n    x = x + 0\n") for i in range(5)}
    )
    document = plan(root, "--base", "main")
    assert document["tests"]["tests/test_wide.py::test_p"]["reasons"] == [
        f"m{i}.py:2 in f{i}" for i in range(5)
    ]
    lines = [line for line in document["stderr"].splitlines() if " tests: " in line]
    assert lines == ["selector:      30 tests: m0.py:2 in f0 (and other reasons)"]


def test_max_fraction_keeps_the_selection_beside_the_decision(
    grouped: Path, tmp_path: Path
) -> None:
    root = copy(grouped, tmp_path / "project")
    edits = {f"m{i}.py": (f"    return x + {i}\n", f"    return x + {i} + 0\n") for i in range(5)}
    _change(root, {**edits, "single.py": ("    return x\n", "    return x + 0\n")})
    document = plan(root, "--base", "main")
    assert document["run_all"]
    assert document["reasons"] == ["31 of 40 recorded tests selected, above max_fraction 0.75"]
    kept = document["max_fraction_selection"]
    assert kept["selected"] == ["tests/test_single.py::test_one", "tests/test_wide.py::test_p"]
    assert kept["selected_count"] == 31
    assert kept["tests"]["tests/test_single.py::test_one"] == {
        "reasons": ["single.py:2 in g"],
        "recorded_tests": 1,
    }
    assert "running all tests (40 recorded), because:" in document["stderr"]
    assert (
        "(the selection, 31 tests in 2 items, is in the plan under max_fraction_selection)"
        in (document["stderr"])
    )
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    published = selector(
        root,
        "plan",
        "--base",
        "main",
        "--format",
        "github",
        "--output",
        str(tmp_path / "plan.json"),
        GITHUB_STEP_SUMMARY=str(summary),
        GITHUB_OUTPUT=str(outputs),
    )
    assert published.returncode == 0, published.stderr
    text = summary.read_text()
    assert "Without `max_fraction` the plan would run 31 of 40 recorded tests, in 2 items" in text
    assert "    30  m0.py:2 in f0 (and other reasons)" in text
    assert "     1  single.py:2 in g" in text
    assert json.loads((tmp_path / "plan.json").read_text())["max_fraction_selection"] == kept
    assert selector(root, "why", "tests/test_single.py::test_one").stdout == (
        "tests/test_single.py::test_one runs: the plan runs every test, because:\n"
        "  - 31 of 40 recorded tests selected, above max_fraction 0.75\n"
        "without max_fraction it would be selected:\n"
        "  - single.py:2 in g\n"
    )


def test_running_all_counts_only_a_map_that_was_read(shop: Path) -> None:
    other_variant = plan(shop, "--base", "main", "--variant", "other")
    assert "running all tests, because:" in other_variant["stderr"]
    stored = only_map_file(shop / ".selector" / "maps")
    foreign = plan(shop, "--base", "main", "--map", str(stored), "--variant", "other")
    assert "running all tests (14 recorded), because:" in foreign["stderr"]
    unknown_base = plan(shop, "--base", "no-such-branch")
    assert "running all tests, because:" in unknown_base["stderr"]


def test_upload_skips_a_fragment_it_cannot_open(shop: Path) -> None:
    folder = shop / ".selector" / "fragments"
    (fragment,) = folder.glob("*.sqlite")
    unreadable = folder / "unreadable.sqlite"
    unreadable.write_bytes(fragment.read_bytes())
    unreadable.chmod(0)
    (folder / "folder.sqlite").mkdir()
    command = [sys.executable, "-m", "selector.cli", "upload-map"]
    if os.geteuid() == 0:  # root reads anything unless it drops CAP_DAC_OVERRIDE
        if not shutil.which("setpriv"):
            pytest.skip("root ignores permission bits, and setpriv is not there to drop that")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    done = subprocess.run(command, cwd=shop, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"selector: skipped a fragment: no map at {folder / 'folder.sqlite'}",
        f"selector: skipped a fragment: cannot open {unreadable} (unable to open database file)",
    ]
    assert done.stdout.startswith("selector: stored map of ")
