"""Reads of a source file's text belong to the tests whose outcome they can change.

Hypothesis mines the literals of every local module for the data of its `@given` tests;
pytest imports a test package's `__init__.py` itself; pytest reads source files to render a
failure's traceback. Each project is recorded once by a real pytest run; each test changes
one thing in a private copy and checks the plan.
"""

import ast
from pathlib import Path
from textwrap import dedent

import pytest
from sample import build_project, change, feature_branch, selected

from selector.constants import imports_differ, mined_literals_differ
from selector.mapdb import MINED, SESSION, Context, read_map

from projects import git

HYPOTHESIS_PROJECT = {
    "pyproject.toml": """
        [tool.pytest.ini_options]
        pythonpath = ["src"]
    """,
    "src/shapes/__init__.py": "",
    "src/shapes/limits.py": '''
        """Limits of shapes."""

        CEILING = 1000


        def clamp(x):
            return min(x, CEILING)


        def double(x):
            return x * 2
    ''',
    "src/shapes/broken.py": """
        def explode():
            raise ValueError("boom")
    """,
    "tests/test_props.py": """
        from hypothesis import given, strategies as st

        from shapes import limits


        @given(st.integers())
        def test_clamp(x):
            assert limits.clamp(x) <= 1000


        @given(st.text())
        def test_text(s):
            assert isinstance(s, str)


        def test_double():
            assert limits.double(2) == 4


        def test_plain():
            assert True
    """,
    "tests/test_failures.py": """
        import pytest

        from shapes import broken


        def test_broken():
            broken.explode()


        @pytest.mark.xfail(raises=ValueError, strict=True)
        def test_known_bug():
            broken.explode()
    """,
}
ALWAYS = {"tests/test_failures.py::test_broken"}  # failed when recorded: always selected


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("reads") / "project"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PYTEST_ADDOPTS", raising=False)  # Hypothesis's plugin is the point
        build_project(root, HYPOTHESIS_PROJECT, returncode=1)
    return root


@pytest.fixture
def project(recorded: Path, tmp_path: Path) -> Path:
    return feature_branch(recorded, tmp_path / "project")


def reasons_of(document: dict[str, object], item: str) -> list[str]:
    tests = document["tests"]
    assert isinstance(tests, dict)
    found: list[str] = tests[item]["reasons"]
    return found


def test_a_mined_literal_selects_the_given_tests(project: Path) -> None:
    document = change(project, "src/shapes/limits.py", "CEILING = 1000", "CEILING = 2000")
    assert selected(document) == {
        "tests/test_props.py::test_clamp",
        "tests/test_props.py::test_text",
        *ALWAYS,
    }
    assert reasons_of(document, "tests/test_props.py::test_text") == [
        "src/shapes/limits.py:3 changed literals that Hypothesis mines for the data of @given tests"
    ]


def test_a_body_change_with_the_same_literals_selects_what_ran_it(project: Path) -> None:
    document = change(project, "src/shapes/limits.py", "return x * 2", "return 2 * x")
    assert selected(document) == {"tests/test_props.py::test_double", *ALWAYS}


def test_a_comment_in_a_mined_module_selects_nothing(project: Path) -> None:
    document = change(project, "src/shapes/limits.py", "CEILING = 1000", "CEILING = 1000  # px")
    assert selected(document) == ALWAYS


def test_a_changed_import_selects_the_given_tests(project: Path) -> None:
    """Hypothesis mines every local module imported: a test file's imports change the pool."""
    document = change(
        project,
        "tests/test_failures.py",
        "from shapes import broken",
        "from shapes import broken, limits",
    )
    given = {"tests/test_props.py::test_clamp", "tests/test_props.py::test_text"}
    assert selected(document) == {*given, "tests/test_failures.py"}


def test_only_the_given_tests_include_the_mined_files(recorded: Path) -> None:
    (fragment,) = (recorded / ".selector" / "fragments").glob("*.sqlite")
    data = read_map(fragment)
    assert {"src/shapes/limits.py", "src/shapes/broken.py"} <= data.contexts[MINED].reads
    session = data.contexts.get(SESSION, Context())
    assert not any(path.startswith("src/") for path in session.reads)
    including = {
        name for (kind, name), context in data.contexts.items() if MINED in context.includes
    }
    assert including == {"tests/test_props.py::test_clamp", "tests/test_props.py::test_text"}


def test_rendering_a_traceback_is_no_read_of_the_source(recorded: Path) -> None:
    (fragment,) = (recorded / ".selector" / "fragments").glob("*.sqlite")
    data = read_map(fragment)
    for name in ("test_broken", "test_known_bug"):
        context = data.contexts[("test", f"tests/test_failures.py::{name}")]
        assert "src/shapes/broken.py" not in context.reads


def test_a_comment_in_a_module_in_a_rendered_traceback_selects_nothing(project: Path) -> None:
    document = change(
        project, "src/shapes/broken.py", 'ValueError("boom")', 'ValueError("boom")  # !'
    )
    assert selected(document) == ALWAYS


PACKAGES_PROJECT = {
    "tests/first/__init__.py": """
        SETTINGS = dict(mode="fast")
    """,
    "tests/first/conftest.py": """
        import pytest
    """,
    "tests/first/test_one.py": """
        def test_one():
            pass
    """,
    "tests/second/__init__.py": "",
    "tests/second/conftest.py": """
        import pytest
    """,
    "tests/second/test_two.py": """
        def test_two():
            pass
    """,
}


@pytest.mark.parametrize("mode", ["prepend", "importlib"])
def test_a_test_package_init_selects_the_tests_of_its_folder(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "project"
    files = {
        **PACKAGES_PROJECT,
        "pyproject.toml": f'[tool.pytest.ini_options]\naddopts = "--import-mode={mode}"\n',
    }
    build_project(root, files)
    git(root, "checkout", "-q", "-b", "feature")
    document = change(root, "tests/first/__init__.py", '"fast"', '"slow"')
    assert selected(document) == {"tests/first/test_one.py::test_one"}


LITERALS = {
    "same": ("X = 1000\n", "X = 1000  # px\n", False),
    "value": ("X = 1000\n", "X = 2000\n", True),
    "negated": ("X = 1000\n", "X = -1000\n", True),
    "negated-elsewhere": ("X = -5000\nY = 5000\n", "X = -5000\nY = -5000\n", True),
    "docstring": ('"""Old."""\nX = 1\n', '"""New."""\nX = 1\n', False),
    "function-docstring": ('def f():\n    """Old."""\n', 'def f():\n    """New."""\n', False),
    "moved": ("X = 1000\nY = 2000\n", "Y = 2000\nX = 1000\n", False),
    "into-an-f-string": ('"abcdef"\nX = f"{1}"\n', 'X = "abcdef"\n', True),
    "bare-string-made-a-value": ('def f():\n    x = 1\n    "text"\n', 'X = "text"\n', True),
}


@pytest.mark.parametrize(("old", "new", "differ"), LITERALS.values(), ids=LITERALS)
def test_mined_literals_differ(old: str, new: str, differ: bool) -> None:
    old_source, new_source = dedent(old).encode(), dedent(new).encode()
    trees = ast.parse(old_source), ast.parse(new_source)
    assert mined_literals_differ(old_source, new_source, *trees) is differ


IMPORTS = {
    "same": ("import os\nimport sys\n", "import sys\nimport os\n", False),
    "added": ("import os\n", "import os\nfrom pkg import extra\n", True),
    "in-a-function": ("def f():\n    pass\n", "def f():\n    import pkg.extra\n", True),
    "by-name": ('M = "pkg.a"\n', 'M = importlib.import_module("pkg.a")\n', True),
}


@pytest.mark.parametrize(("old", "new", "differ"), IMPORTS.values(), ids=IMPORTS)
def test_imports_differ(old: str, new: str, differ: bool) -> None:
    assert imports_differ(ast.parse(old), ast.parse(new)) is differ
