"""A changed literal constant selects what reads its name (selector/constants.py), and a
changed literal default value what reads the function's name and what ran the function.

One project is recorded once; each test changes one constant in a private copy and checks
the plan, and where the refinement applies, that the tests it leaves out still pass.
"""

import ast
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest
from sample import build_project, change, feature_branch, selected

from selector.constants import NameUses, module_escapes, name_uses


def parsed(source: str) -> ast.Module:
    return ast.parse(dedent(source))


# -- where a file mentions the name --------------------------------------------------------

USES = {
    "function": ("def f():\n    return LIMIT\n", {"f"}, False),
    "attribute-in-a-method": (
        "class C:\n    def m(self):\n        return settings.LIMIT\n",
        {"C.m"},
        False,
    ),
    "nested-default": ("def f():\n    def g(x=LIMIT):\n        pass\n", {"f"}, False),
    "top-level-default": ("def f(x=LIMIT):\n    pass\n", set(), True),
    "class-body": ("class C:\n    size = LIMIT\n", set(), True),
    "module-level": ("DOUBLE = LIMIT * 2\n", set(), True),
    "getattr-string": ('def f(m):\n    return getattr(m, "LIMIT")\n', {"f"}, False),
    "all": ('__all__ = ["LIMIT"]\n', set(), False),
    "docstring": ('def f():\n    """Uses LIMIT."""\n', set(), False),
    "import-in-a-function": ("def f():\n    from m import LIMIT\n", set(), False),
    "defined-twice": ("def f():\n    return LIMIT\ndef f():\n    pass\n", set(), True),
}


@pytest.mark.parametrize(("source", "functions", "at_import"), USES.values(), ids=USES)
def test_name_uses(source: str, functions: set[str], at_import: bool) -> None:
    uses = name_uses(parsed(source), "LIMIT")
    assert uses == NameUses(frozenset(functions), at_import, False, None)


def test_a_relative_star_import_is_listed_with_its_level() -> None:
    source = "from . import *\nfrom .. import *\n"
    assert name_uses(parsed(source), "LIMIT").star_levels == (1, 2)


def test_the_changed_statement_is_no_use_and_an_import_holds_the_name() -> None:
    source = "from m import LIMIT\nLIMIT = 3\n"
    assert name_uses(parsed(source), "LIMIT", (2, 2)) == NameUses(frozenset(), False, True, None)


OPAQUE = {
    "code-in-a-string": 'CODE = "def f(): return LIMIT"\n',
    "doctest": 'def f():\n    """\n    >>> LIMIT\n    3\n    """\n',
    "alias": "from m import LIMIT as BOUND\n",
    "into-a-class": "class C:\n    from m import LIMIT\n",
}


@pytest.mark.parametrize("source", OPAQUE.values(), ids=OPAQUE)
def test_uses_that_cannot_be_followed(source: str) -> None:
    assert name_uses(parsed(source), "LIMIT").opaque is not None


CLOSED = {
    "import": "import pkg.settings\nfrom pkg import settings\nfrom pkg.settings import A\n",
    "attribute": "x = settings.A + pkg.settings.B\n",
    "getattr": 'x = getattr(settings, "A")\n',
    "monkeypatch": 'def test(monkeypatch):\n    monkeypatch.setattr(settings, "A", 1)\n',
    "docstring": '"""The settings."""\n',
}


@pytest.mark.parametrize("source", CLOSED.values(), ids=CLOSED)
def test_a_module_used_by_named_attributes_only_stays_closed(source: str) -> None:
    assert module_escapes(parsed(source), "settings") is None


ESCAPES = {
    "argument": ("configure(settings)\n", "settings is used as a value"),
    "computed-getattr": ("x = getattr(settings, name)\n", "settings is used as a value"),
    "dotted-argument": ("configure(pkg.settings)\n", "settings is used as a value"),
    "alias": ("import pkg.settings as s\n", "settings is imported as s"),
    "star": ("from pkg.settings import *\n", "names of settings are star-imported"),
    "string": ('import_module("pkg.settings")\n', "a string names settings"),
    "namespace": ("x = settings.__dict__[key]\n", "settings is used as a value"),
    "namespace-by-getattr": ('x = getattr(settings, "__dict__")\n', "settings is used as a value"),
}


@pytest.mark.parametrize(("source", "why"), ESCAPES.values(), ids=ESCAPES)
def test_a_module_that_may_reach_code_as_a_value(source: str, why: str) -> None:
    assert module_escapes(parsed(source), "settings") == why


# -- end to end ------------------------------------------------------------------------------

FILES = {
    ".gitignore": "runpytest-*/\n/stdout\n/stderr\n",
    "pyproject.toml": """
        [tool.pytest.ini_options]
        testpaths = ["tests"]
    """,
    "docs/settings.md": "`work.settings` holds TIMEOUT and RETRIES.\n",
    "work/__init__.py": "",
    "work/settings.py": '''
        """Settings: TIMEOUT, RETRIES and the others."""

        TIMEOUT = 30
        RETRIES = 3
        UNREAD = "x"
        NAMES = ("a", "b")
    ''',
    "work/client.py": """
        from work import settings
        from work.settings import RETRIES


        def timeout():
            return settings.TIMEOUT


        def retries():
            return RETRIES


        def timeout_by_name():
            return getattr(settings, "TIMEOUT")
    """,
    "work/derived.py": """
        from work.settings import NAMES

        UPPER = tuple(name.upper() for name in NAMES)
    """,
    "work/plugin.py": """
        LEVEL = 1
    """,
    "work/escaping.py": """
        from work import escaped


        def configure(module):
            return sorted(key for key in vars(module) if key.isupper())


        def keys():
            return configure(escaped)
    """,
    "work/escaped.py": """
        COLOUR = "red"
    """,
    "work/local.py": """
        TIMEOUT = 5


        def own_timeout():
            return TIMEOUT
    """,
    "work/sizes.py": """
        SIZE_LIMIT = 7
    """,
    "work/registry.py": """
        import sys


        def collected():
            return [getattr(module, "SIZE_LIMIT", None) for module in list(sys.modules.values())]
    """,
    "work/limits/__init__.py": """
        CEILING = 9
    """,
    "work/limits/use.py": """
        from . import *


        def ceiling():
            return CEILING
    """,
    "work/named.py": """
        SIZE = 1
    """,
    "config/app.json": '{"module": "work.named"}\n',
    "work/shapes.py": """
        import inspect


        def area(width, height=2):
            return width * height


        def perimeter(width, height=2):
            return 2 * (width + height)


        def scaled(factor, *, base=10):
            return factor * base


        def default_height():
            return inspect.signature(perimeter).parameters["height"].default
    """,
    "work/report.py": """
        from work.shapes import area


        def summary():
            return area(3)
    """,
    "work/handlers.py": """
        from work import shapes

        HANDLERS = {"scaled": shapes.scaled}
    """,
    "tests/test_shapes.py": """
        from work import report, shapes


        def test_area():
            assert shapes.area(3) == 6


        def test_area_explicit():
            assert shapes.area(3, 4) == 12


        def test_perimeter():
            assert shapes.perimeter(1, 1) == 4


        def test_default_height():
            assert shapes.default_height() == 2


        def test_summary():
            assert report.summary() == 6


        def test_scaled():
            assert shapes.scaled(2) == 20


        def test_nothing():
            pass
    """,
    "tests/test_handlers.py": """
        from work import handlers


        def test_keys():
            assert list(handlers.HANDLERS) == ["scaled"]


        def test_call():
            assert handlers.HANDLERS["scaled"](2) == 20
    """,
    "tests/test_client.py": """
        from work import client


        def test_timeout():
            assert client.timeout() == 30


        def test_retries():
            assert client.retries() == 3


        def test_by_name():
            assert client.timeout_by_name() == 30
    """,
    "tests/test_local.py": """
        from work import local


        def test_own_timeout():
            assert local.own_timeout() == 5
    """,
    "tests/test_registry.py": """
        from work import registry, sizes


        def test_collected():
            assert 7 in registry.collected()
    """,
    "tests/test_limits.py": """
        from work.limits import use


        def test_ceiling():
            assert use.ceiling() == 9
    """,
    "tests/test_derived.py": """
        from work import derived


        def test_upper():
            assert derived.UPPER == ("A", "B")
    """,
    "tests/test_plugin.py": """
        import pathlib


        def test_exec():
            folder = pathlib.Path(__file__).parents[1] / "work"
            namespace = {}
            for source in folder.glob("plug*.py"):  # a loader that names no module
                exec(source.read_text(), namespace)
            assert [v for k, v in namespace.items() if k.isupper()] == [1]
    """,
    "tests/test_escaping.py": """
        from work import escaping


        def test_keys():
            assert escaping.keys() == ["COLOUR"]
    """,
    "tests/test_other.py": """
        from work import named


        def test_one():
            pass


        def test_two():
            pass


        def test_three():
            pass
    """,
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("constants") / "project"
    build_project(root, FILES)
    return root


@pytest.fixture
def project(recorded: Path, tmp_path: Path) -> Path:
    return feature_branch(recorded, tmp_path / "project")


def passing(root: Path) -> set[str]:
    """The tests that pass at HEAD, run for real."""
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return {line.split()[1] for line in completed.stdout.splitlines() if line.startswith("PASSED")}


def test_a_constant_read_through_the_module_selects_its_readers(project: Path) -> None:
    document = change(project, "work/settings.py", "TIMEOUT = 30", "TIMEOUT = 31")
    readers = {"tests/test_client.py::test_timeout", "tests/test_client.py::test_by_name"}
    assert selected(document) == readers
    reasons = document["tests"]["tests/test_client.py::test_timeout"]["reasons"]
    assert reasons == ["work/settings.py:3 TIMEOUT changed; timeout (work/client.py) reads it"]
    assert readers.isdisjoint(passing(project))


def test_a_constant_read_from_a_module_found_at_run_time_selects_the_reader(
    project: Path,
) -> None:
    document = change(project, "work/sizes.py", "SIZE_LIMIT = 7", "SIZE_LIMIT = 8")
    assert selected(document) == {"tests/test_registry.py::test_collected"}
    assert "tests/test_registry.py::test_collected" not in passing(project)


def test_a_constant_copied_by_a_relative_star_import_selects_its_readers(project: Path) -> None:
    document = change(project, "work/limits/__init__.py", "CEILING = 9", "CEILING = 10")
    assert selected(document) == {"tests/test_limits.py::test_ceiling"}
    assert "tests/test_limits.py::test_ceiling" not in passing(project)


def test_a_constant_copied_by_an_import_selects_the_readers_of_the_copy(project: Path) -> None:
    document = change(project, "work/settings.py", "RETRIES = 3", "RETRIES = 4")
    assert selected(document) == {"tests/test_client.py::test_retries"}


def test_a_constant_nobody_reads_selects_nothing(project: Path) -> None:
    document = change(project, "work/settings.py", 'UNREAD = "x"', 'UNREAD = "y"')
    assert selected(document) == set()
    assert document["uncovered_changes"] == [
        "work/settings.py:5 UNREAD changed (no recorded test reads it)"
    ]


def test_a_constant_read_at_import_time_selects_what_depends_on_the_reader(project: Path) -> None:
    document = change(project, "work/settings.py", 'NAMES = ("a", "b")', 'NAMES = ("a", "c")')
    assert selected(document) == {"tests/test_derived.py::test_upper"}
    assert "tests/test_derived.py::test_upper" not in passing(project)


def test_a_module_read_outside_its_import_selects_what_read_it(project: Path) -> None:
    document = change(project, "work/plugin.py", "LEVEL = 1", "LEVEL = 2")
    assert selected(document) == {"tests/test_plugin.py::test_exec"}
    reasons = document["tests"]["tests/test_plugin.py::test_exec"]["reasons"]
    assert reasons == ["work/plugin.py:1 changed, and its text was read outside its import"]
    assert "tests/test_plugin.py::test_exec" not in passing(project)


def test_a_comment_in_a_file_whose_text_a_test_reads_selects_that_test(project: Path) -> None:
    document = change(project, "work/plugin.py", "LEVEL = 1", "LEVEL = 1  # the level")
    assert selected(document) == {"tests/test_plugin.py::test_exec"}


def test_a_module_handed_to_code_as_a_value_is_a_module_level_change(project: Path) -> None:
    document = change(project, "work/escaped.py", 'COLOUR = "red"', 'COLOUR = "blue"')
    assert selected(document) == {"tests/test_escaping.py::test_keys"}
    reasons = document["tests"]["tests/test_escaping.py::test_keys"]["reasons"]
    assert reasons == [
        "work/escaped.py:1 at module level (COLOUR: work/escaping.py: escaped is used as a value)"
    ]


def test_a_module_named_in_a_file_that_may_run_is_a_module_level_change(project: Path) -> None:
    document = change(project, "work/named.py", "SIZE = 1", "SIZE = 2")
    assert selected(document) == {f"tests/test_other.py::test_{n}" for n in ("one", "two", "three")}
    reasons = document["tests"]["tests/test_other.py::test_one"]["reasons"]
    assert reasons == [
        "work/named.py:1 at module level (SIZE: config/app.json names SIZE or named)"
    ]


# -- a changed literal default value --------------------------------------------------------


def test_a_changed_default_selects_the_tests_that_ran_the_function_or_name_it(
    project: Path,
) -> None:
    document = change(
        project, "work/shapes.py", "def area(width, height=2)", "def area(width, height=3)"
    )
    shapes = "tests/test_shapes.py::test_"
    assert selected(document) == {f"{shapes}area", f"{shapes}area_explicit", f"{shapes}summary"}
    reasons = document["tests"][f"{shapes}area"]["reasons"]
    assert (
        "work/shapes.py:4 default value of area changed; area (work/shapes.py) runs with it"
        in reasons
    )
    assert {f"{shapes}area", f"{shapes}summary"}.isdisjoint(passing(project))


def test_a_changed_default_selects_code_that_reads_it_without_a_call(project: Path) -> None:
    document = change(
        project, "work/shapes.py", "perimeter(width, height=2)", "perimeter(width, height=3)"
    )
    shapes = "tests/test_shapes.py::test_"
    assert selected(document) == {f"{shapes}perimeter", f"{shapes}default_height"}
    assert f"{shapes}default_height" not in passing(project)


def test_a_function_kept_at_import_time_selects_what_depends_on_the_keeper(project: Path) -> None:
    document = change(project, "work/shapes.py", "base=10", "base=11")
    assert selected(document) == {
        "tests/test_shapes.py::test_scaled",
        "tests/test_handlers.py::test_keys",
        "tests/test_handlers.py::test_call",
    }
    reasons = document["tests"]["tests/test_handlers.py::test_keys"]["reasons"]
    keeper = "work/handlers.py reads it at import time"
    assert f"work/shapes.py:12 default value of scaled changed; {keeper}" in reasons
    assert "tests/test_handlers.py::test_call" not in passing(project)
