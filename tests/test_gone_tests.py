"""A recorded test leaves the plan only when it is certainly gone (selection rule 4).

Each case records a real project, changes a fixture every test uses and edits the test
files (so they are in the diff), runs the suite at the new commit, and checks that every
test that fails there is selected, and that a test certainly gone is listed as removed.
"""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sample import build_project, feature_branch, plan, write

from selector.nodeids import covered

from projects import git

PROJECT = {
    # Every plan is judged, however much of the suite it selects.
    "selector.yml": "max_fraction: 1\n",
    "pyproject.toml": """
        [project]
        name = "ser"
        version = "1.0"

        [tool.pytest.ini_options]
        pythonpath = ["src"]
        testpaths = ["tests"]
    """,
    "src/ser/__init__.py": "",
    "src/ser/core.py": """
        def dump(value):
            return repr(value)


        def find(items, name):
            return [item for item in items if item == name]
    """,
    "tests/__init__.py": "",
    # A plugin's item in every test file (as pytest-mypy's `::mypy`): no statement binds it.
    "tests/conftest.py": """
        import pytest


        @pytest.fixture
        def codec():
            return "repr"


        class Lint(pytest.Item):
            def runtest(self):
                compile(self.path.read_text(), str(self.path), "exec")


        class LintFile(pytest.File):
            def collect(self):
                yield Lint.from_parent(self, name="lint")


        def pytest_collect_file(file_path, parent):
            if file_path.name.startswith("test_") and file_path.suffix == ".py":
                return LintFile.from_parent(parent, path=file_path)
    """,
    "tests/test_base.py": """
        from ser.core import dump


        class TestSerializer:
            def test_dump(self, codec):
                assert codec == "repr"
                assert dump(1) == "1"

            def test_text(self):
                assert dump("a") == "'a'"
    """,
    # pytest collects the imported class again here, and the subclass inherits its tests.
    "tests/test_timed.py": """
        from .test_base import TestSerializer


        class TestTimed(TestSerializer):
            def test_timed(self):
                assert True
    """,
    "tests/test_find.py": """
        from ser.core import find


        def _make_find_test(name):
            def test(codec):
                assert codec == "repr"
                assert find([name, "other"], name) == [name]

            return test


        test_find_apple = _make_find_test("apple")
        test_find_pear, test_find_plum = _make_find_test("pear"), _make_find_test("plum")


        def test_plain():
            assert find([], "x") == []
    """,
    "tests/test_factory.py": """
        def checks(name):
            def decorate(function):
                def test(codec):
                    assert codec == "repr"
                    function(name)

                return test

            return decorate


        @checks("apple")
        def test_made(name):
            assert name == "apple"
    """,
}
FIXTURE_CHANGE = ('return "repr"', 'return "json"')
EVERY_TEST_FILE = ("test_base.py", "test_timed.py", "test_find.py", "test_factory.py")


def failing(root: Path) -> set[str]:
    """The tests that fail at the checked-out commit, run for real."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return set(re.findall(r"^FAILED (\S+)", result.stdout, re.MULTILINE))


def replace(root: Path, path: str, old: str, new: str) -> None:
    target = root / path
    text = target.read_text()
    assert old in text, (path, old)
    target.write_text(text.replace(old, new, 1))


def add_test(root: Path, name: str) -> None:
    """Append a new passing test to tests/`name`: the file is in the diff."""
    with (root / "tests" / name).open("a") as source:
        source.write(f"\n\ndef test_added_to_{name[5:-3]}():\n    assert True\n")


def commit(root: Path) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "change")


def check_plan(root: Path) -> dict[str, Any]:
    """The plan of HEAD against main: not run-all, and every test failing at HEAD selected."""
    document = plan(root, "--base", "main", "--no-working-tree")
    assert not document["run_all"], document["reasons"]
    broken = failing(root)
    assert broken
    missed = broken - covered(document["selected"], broken)
    assert not missed, (missed, document["selected"], document["removed"])
    assert not broken & set(document["removed"])
    return document


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("recorded") / "ser"
    build_project(root, PROJECT)
    return root


@pytest.fixture
def ser(recorded: Path, tmp_path: Path) -> Path:
    """A private copy of the recorded project, on a feature branch."""
    return feature_branch(recorded, tmp_path / "ser")


def test_fixture_change_selects_imported_assigned_and_decorated_tests(ser: Path) -> None:
    replace(ser, "tests/conftest.py", *FIXTURE_CHANGE)
    for name in EVERY_TEST_FILE:
        add_test(ser, name)
    commit(ser)
    document = check_plan(ser)
    assert document["removed"] == []
    assert failing(ser) == {
        "tests/test_base.py::TestSerializer::test_dump",
        "tests/test_timed.py::TestSerializer::test_dump",
        "tests/test_timed.py::TestTimed::test_dump",
        "tests/test_find.py::test_find_apple",
        "tests/test_find.py::test_find_pear",
        "tests/test_find.py::test_find_plum",
        "tests/test_factory.py::test_made",
    }


def test_merge_of_a_fixture_change_and_a_test_file_change(ser: Path) -> None:
    git(ser, "checkout", "-q", "-b", "fixture", "main")
    replace(ser, "tests/conftest.py", *FIXTURE_CHANGE)
    commit(ser)
    git(ser, "checkout", "-q", "feature")
    add_test(ser, "test_find.py")
    add_test(ser, "test_timed.py")
    commit(ser)
    git(ser, "merge", "-q", "--no-edit", "fixture")
    check_plan(ser)


def test_a_deleted_test_is_removed_and_its_neighbours_stay(ser: Path) -> None:
    replace(ser, "tests/conftest.py", *FIXTURE_CHANGE)
    replace(ser, "tests/test_find.py", "test_find_pear, test_find_plum = ", "test_find_pear, _ = ")
    replace(ser, "tests/test_base.py", "    def test_text(self):", "    def test_renamed(self):")
    commit(ser)
    document = check_plan(ser)
    assert document["removed"] == [
        "tests/test_base.py::TestSerializer::test_text",
        "tests/test_find.py::test_find_plum",
    ]
    # TestTimed inherits from an imported class: what it lost cannot be told from its file.
    assert "tests/test_timed.py::TestTimed::test_text" in document["selected"]


@pytest.mark.parametrize(
    "binding",
    [
        "globals()['test_find_plum'] = _make_find_test('plum')",
        "setattr(sys.modules[__name__], 'test_find_plum', _make_find_test('plum'))",
        "from tests.test_factory import *",
        "for test_find_plum in [_make_find_test('plum')]:\n    pass",
        "with open(__file__) as test_find_plum:\n    pass",
        "test_find_plum: object = _make_find_test('plum')",
        "if True:\n    test_find_plum = _make_find_test('plum')",
        "def pytest_generate_tests(metafunc):\n    pass",
    ],
    ids=["globals", "setattr", "star-import", "for", "with", "annotated", "if", "hook"],
)
def test_a_test_bound_any_other_way_is_not_removed(ser: Path, binding: str) -> None:
    """The assignment of test_find_plum goes; another binding of it, or a module that may
    bind names unseen, keeps it in the plan."""
    replace(ser, "tests/conftest.py", *FIXTURE_CHANGE)
    replace(ser, "tests/test_find.py", "test_find_pear, test_find_plum = ", "test_find_pear, _ = ")
    write(ser, {"tests/test_find.py": f"import sys\n{(ser / 'tests/test_find.py').read_text()}"})
    with (ser / "tests/test_find.py").open("a") as source:
        source.write(f"\n\n{binding}\n")
    commit(ser)
    document = check_plan(ser)
    assert document["removed"] == []
    assert "tests/test_find.py::test_find_plum" in covered(
        document["selected"], ["tests/test_find.py::test_find_plum"]
    )


def test_the_example_project_with_a_test_bound_by_assignment(tmp_path: Path) -> None:
    """examples/shop with a test made by a factory: a change to `find` and to the test file
    selects both tests that fail."""
    example = Path(__file__).parent.parent / "examples" / "shop"
    files = {
        path.relative_to(example).as_posix(): path.read_text()
        for path in example.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    files["selector.yml"] = "max_fraction: 1\n"
    files["tests/test_catalog.py"] += (
        "\n\ndef _make_find_test(name):\n"
        "    def test(stock):\n"
        "        assert find(stock, name)[0].name == name\n\n"
        "    return test\n\n\n"
        'test_find_apple = _make_find_test("apple")\n'
    )
    root = tmp_path / "shop"
    build_project(root, files)
    git(root, "checkout", "-q", "-b", "feature")
    replace(root, "src/shop/catalog.py", "if item.name == name]", "if item.name != name]")
    add_test(root, "test_catalog.py")
    commit(root)
    document = check_plan(root)
    assert failing(root) == {
        "tests/test_catalog.py::test_find",
        "tests/test_catalog.py::test_find_apple",
    }
    assert document["removed"] == []
