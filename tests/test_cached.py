"""Cached results: a test that uses a kept result of a changed function is selected.

Each project records for real (the later tests get the cached value and never run the
function), changes the function on a branch, and checks the plan. Without the rule of
selector/cached.py only the first test would be selected, and the others would break
unseen: every scenario here asserts that the later test really fails at the change.
"""

import subprocess
import sys
from pathlib import Path

from sample import plan, plan_after_change
from stored_maps import rewrite_only_map

from projects import Project, git

FIRST, LATER = "tests/test_uses.py::test_first", "tests/test_uses.py::test_later"
TESTS = """
    from work import api


    def test_first():
        assert api.{call} == {first}


    def test_later():
        assert api.{call} == {later}


    def test_unrelated():
        assert api.unrelated() == 1
"""


CACHED_RATE = """
    import functools


    @functools.cache
    def rate():
        return 2


    def price(amount):
        return amount * rate()


    def unrelated():
        return 1
"""


def record(project: Project, module: str, call: str, first: object, later: object) -> None:
    project.write(
        {
            "work/__init__.py": "",
            "work/api.py": module,
            "tests/test_uses.py": TESTS.format(call=call, first=first, later=later),
        }
    )
    project.commit("base")
    project.record().assert_outcomes(passed=3)


def failing_after(project: Project) -> set[str]:
    """The tests that fail at HEAD, run for real."""
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider"],
        cwd=project.path,
        capture_output=True,
        text=True,
        check=False,
    )
    return {line.split()[1] for line in completed.stdout.splitlines() if line.startswith("FAILED")}


def test_a_functools_cache_hit(project: Project) -> None:
    record(
        project,
        CACHED_RATE,
        "price(10)",
        20,
        20,
    )
    assert (
        project.fragment()
        .test_lines(LATER)
        .get("work/api.py", set())
        .isdisjoint({project.line_of("work/api.py", "return 2")})
    )
    selected = plan_after_change(project.path, "work/api.py", "return 2", "return 3")
    assert selected == {FIRST, LATER}
    assert failing_after(project) == {FIRST, LATER}


def test_a_memoised_module_global_built_by_a_helper_of_a_helper(project: Project) -> None:
    record(
        project,
        """
        _TABLE = None


        def _parse():
            return {"a": 1}


        def _build():
            return dict(_parse())


        def table():
            global _TABLE
            if _TABLE is None:
                _TABLE = _build()
            return _TABLE


        def unrelated():
            return 1
        """,
        'table()["a"]',
        1,
        1,
    )
    selected = plan_after_change(project.path, "work/api.py", '{"a": 1}', '{"a": 2}')
    assert selected == {FIRST, LATER}
    assert failing_after(project) == {FIRST, LATER}


def test_a_lazily_built_singleton_whose_constructor_changes(project: Project) -> None:
    record(
        project,
        """
        class Client:
            def __init__(self):
                self.base = "http://old"

            def url(self, path):
                return self.base + path


        class RetryingClient(Client):
            pass


        _CLIENT = None


        def client():
            global _CLIENT
            if _CLIENT is None:
                _CLIENT = RetryingClient()
            return _CLIENT


        def unrelated():
            return 1
        """,
        'client().url("/a")',
        '"http://old/a"',
        '"http://old/a"',
    )
    selected = plan_after_change(project.path, "work/api.py", "http://old", "http://new")
    assert selected == {FIRST, LATER}
    assert failing_after(project) == {FIRST, LATER}


def test_a_function_that_never_ran_hands_on_nothing(project: Project) -> None:
    record(
        project,
        """
        def fallback():
            return 0


        def value(flag=False):
            if flag:
                return fallback()
            return 5


        def unrelated():
            return 1
        """,
        "value()",
        5,
        5,
    )
    # No test ran `fallback`: no result of it can be kept, so nothing is selected.
    assert plan_after_change(project.path, "work/api.py", "return 0", "return -1") == set()


def test_a_method_is_no_mention_of_its_namesakes(project: Project) -> None:
    record(
        project,
        """
        class Store:
            def get(self):
                return 1


        class Cache:
            def get(self):
                return 2

            fetch = get


        def unrelated():
            return Cache().fetch() - 1
        """,
        "Store().get()",
        1,
        1,
    )
    # Cache.get ran in the unrelated test and is named like Store.get, but names nothing.
    selected = plan_after_change(project.path, "work/api.py", "return 1", "return 3")
    assert selected == {FIRST, LATER}


def test_the_reason_names_the_caller(project: Project, tmp_path: Path) -> None:
    record(
        project,
        CACHED_RATE,
        "price(10)",
        20,
        20,
    )
    plan_after_change(project.path, "work/api.py", "return 2", "return 3")
    why = subprocess.run(
        [sys.executable, "-m", "selector.cli", "why", LATER],
        cwd=project.path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "its result may be cached for price (work/api.py), which mentions rate" in why.stdout
    assert git(project.path, "branch", "--show-current") == "feature"


def test_a_cached_result_reached_through_an_alias(project: Project) -> None:
    project.write(
        {
            "work/__init__.py": "",
            "work/rates.py": """
                import functools


                @functools.cache
                def rate():
                    return 2
            """,
            "work/pricing.py": """
                from work.rates import rate as current_rate


                def price(amount):
                    return amount * current_rate()
            """,
            "tests/test_uses.py": """
                from work import pricing, rates


                def test_first():
                    assert rates.rate() == 2


                def test_later():
                    assert pricing.price(10) == 20


                def test_unrelated():
                    assert True
            """,
        }
    )
    project.commit("base")
    project.record().assert_outcomes(passed=3)
    selected = plan_after_change(project.path, "work/rates.py", "return 2", "return 3")
    assert selected == {FIRST, LATER}


def test_a_namesake_in_another_module_is_not_the_function(project: Project) -> None:
    project.write(
        {
            "work/__init__.py": "",
            "work/api.py": """
                def validate(value):
                    return value > 0
            """,
            "work/forms.py": """
                def validate(value):
                    return bool(value)
            """,
            "work/views.py": """
                from work import forms


                def submit(value):
                    return forms.validate(value)
            """,
            "tests/test_uses.py": """
                from work import api, views


                def test_first():
                    assert api.validate(1)


                def test_later():
                    assert views.submit("x")
            """,
        }
    )
    project.commit("base")
    project.record().assert_outcomes(passed=2)
    # views.submit calls forms.validate, which is forms' own: api.validate is not its.
    assert plan_after_change(project.path, "work/api.py", "value > 0", "value >= 0") == {FIRST}


def test_a_function_stored_but_not_called_keeps_no_result(project: Project) -> None:
    project.write(
        {
            "work/__init__.py": "",
            "work/hooks.py": """
                def on_save():
                    return "saved"


                def install(registry):
                    registry["save"] = on_save
                    return registry
            """,
            "tests/test_uses.py": """
                from work import hooks


                def test_first():
                    assert hooks.on_save() == "saved"


                def test_later():
                    assert "save" in hooks.install({})
            """,
        }
    )
    project.commit("base")
    project.record().assert_outcomes(passed=2)
    # Whoever calls the stored function later runs it, and records it then.
    assert plan_after_change(project.path, "work/hooks.py", '"saved"', '"kept"') == {FIRST}


def test_a_caller_that_ran_before_any_test_got_no_result_from_a_test(project: Project) -> None:
    project.write(
        {
            "work/__init__.py": "",
            "work/values.py": """
                def fallback():
                    return 0


                def value(flag=False):
                    if flag:
                        return fallback()
                    return 5


                AT_IMPORT = value()
            """,
            "tests/test_uses.py": """
                from work import values


                def test_first():
                    assert values.value(True) == 0


                def test_later():
                    assert values.AT_IMPORT == 5
            """,
        }
    )
    project.commit("base")
    project.record().assert_outcomes(passed=2)
    # `value` ran at import, before any test, when `fallback` had not run yet: no kept
    # result of it can have reached test_later, which depends on that import.
    assert plan_after_change(project.path, "work/values.py", "return 0", "return -1") == {FIRST}


def test_a_fixture_is_called_by_pytest_alone(project: Project) -> None:
    project.write(
        {
            "work/__init__.py": "",
            "work/api.py": """
                class Box:
                    def __init__(self, value):
                        self._value = value

                    def show(self):
                        return str(self._value)
            """,
            "tests/conftest.py": """
                import pytest


                @pytest.fixture(name="value")
                def _value():
                    return 3
            """,
            "tests/test_uses.py": """
                from work.api import Box


                def test_first(value):
                    assert value == 3


                def test_later():
                    assert Box(1).show() == "1"


                def test_unrelated():
                    assert True
            """,
        }
    )
    project.commit("base")
    project.record().assert_outcomes(passed=3)
    # `str(self._value)` hands some object's `_value` to a call, which could be the
    # module-level `_value`: but that is a fixture, which no code calls.
    assert plan_after_change(project.path, "tests/conftest.py", "return 3", "return 4") == {FIRST}


def test_the_maps_code_index_gives_the_plan_a_parse_of_the_sources_gives(project: Project) -> None:
    record(project, CACHED_RATE, "price(10)", 20, 20)
    with_index = plan_after_change(project.path, "work/api.py", "return 2", "return 3")
    rewrite_only_map(project.path / ".selector" / "maps", "DELETE FROM code_name")
    rewrite_only_map(project.path / ".selector" / "maps", "DELETE FROM code")
    without = plan(project.path, "--base", "main", "--no-working-tree")
    assert set(without["selected"]) == with_index == {FIRST, LATER}


def test_only_a_cached_helper_reaches_the_tests_of_its_callers(project: Project) -> None:
    """Both helpers are called by `price`; only the cached one can hand a result to a test
    that did not run it. `test_cheap` runs `price` on a branch that calls neither."""
    project.write(
        {
            "work/__init__.py": "",
            "work/api.py": """
                import functools


                @functools.cache
                def cached_rate():
                    return 2


                def plain_rate():
                    return 3


                def price(amount, cheap=False):
                    if cheap:
                        return amount
                    return amount * cached_rate() * plain_rate()
            """,
            "tests/test_uses.py": """
                from work import api


                def test_first():
                    assert api.price(10) == 60


                def test_later():
                    assert api.price(10) == 60


                def test_cheap():
                    assert api.price(10, cheap=True) == 10


                def test_none():
                    pass


                def test_nothing():
                    pass
            """,
        }
    )
    project.commit("base")
    project.record().assert_outcomes(passed=5)
    cheap = "tests/test_uses.py::test_cheap"
    root = project.path
    assert plan_after_change(root, "work/api.py", "return 3", "return 4") == {FIRST, LATER}
    assert failing_after(project) == {FIRST, LATER}
    git(root, "checkout", "-q", "main")
    git(root, "branch", "-q", "-D", "feature")
    assert plan_after_change(root, "work/api.py", "return 2", "return 5") == {FIRST, LATER, cheap}
    assert failing_after(project) == {FIRST, LATER}
