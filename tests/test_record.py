"""Recording: every line a test depends on is attributed to it, by real pytest runs."""

import sys

import pytest
from coverage.numbits import numbits_to_nums
from sample import upload
from stored_maps import only_map

from selector import codeindex
from selector.mapdb import MapData

from projects import Project


def depends(project: Project, data: MapData, nodeid: str, path: str, text: str) -> bool:
    """Whether the recorded test depends on the line of `path` containing `text`."""
    return project.line_of(path, text) in data.test_lines(nodeid).get(path, set())


def own_lines(data: MapData, nodeid: str, path: str) -> set[int]:
    """The lines of `path` that the test itself ran (its imports and fixtures excluded)."""
    return set(numbits_to_nums(data.contexts[("test", nodeid)].lines[path]))


def test_setup_call_and_teardown_belong_to_the_test(project: Project) -> None:
    project.write(
        {
            "app.py": """
                def prepare():
                    return "prepared"

                def work():
                    return "worked"

                def clean():
                    return "cleaned"
            """,
            "test_app.py": """
                import pytest
                import app

                @pytest.fixture
                def resource():
                    app.prepare()
                    yield
                    app.clean()

                def test_uses_resource(resource):
                    assert app.work() == "worked"

                def test_plain():
                    pass
            """,
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=2)
    data = project.fragment()
    used = "test_app.py::test_uses_resource"
    for text in ('return "prepared"', 'return "worked"', 'return "cleaned"'):
        assert depends(project, data, used, "app.py", text)
        assert not depends(project, data, "test_app.py::test_plain", "app.py", text)


def test_wide_fixture_setup_belongs_to_every_test_using_it(project: Project) -> None:
    project.write(
        {
            "app.py": """
                def build():
                    return {"built": True}

                def connect():
                    return "connected"
            """,
            "conftest.py": """
                import pytest
                import app

                @pytest.fixture(scope="session")
                def database():
                    return app.build()

                @pytest.fixture(scope="module")
                def connection(database):
                    return app.connect()
            """,
            "test_one.py": """
                def test_first(connection):
                    assert connection

                def test_second(database):
                    assert database
            """,
            "test_two.py": """
                def test_third(connection):
                    assert connection

                def test_unrelated():
                    pass
            """,
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=4)
    data = project.fragment()
    for nodeid in (
        "test_one.py::test_first",
        "test_one.py::test_second",
        "test_two.py::test_third",
    ):
        assert depends(project, data, nodeid, "app.py", 'return {"built": True}')
    for nodeid in ("test_one.py::test_first", "test_two.py::test_third"):
        assert depends(project, data, nodeid, "app.py", 'return "connected"')
    assert not depends(project, data, "test_one.py::test_second", "app.py", 'return "connected"')
    assert not depends(project, data, "test_two.py::test_unrelated", "app.py", "return {")


def test_xunit_setup_belongs_to_every_test_of_its_scope(project: Project) -> None:
    project.write(
        {
            "app.py": """
                def for_module():
                    return 1

                def for_class():
                    return 2
            """,
            "test_xunit.py": """
                import app

                def setup_module():
                    app.for_module()

                class TestGroup:
                    @classmethod
                    def setup_class(cls):
                        app.for_class()

                    def test_a(self):
                        pass

                    def test_b(self):
                        pass

                def test_outside():
                    pass
            """,
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=3)
    data = project.fragment()
    for nodeid in ("test_xunit.py::TestGroup::test_a", "test_xunit.py::TestGroup::test_b"):
        assert depends(project, data, nodeid, "app.py", "return 1")
        assert depends(project, data, nodeid, "app.py", "return 2")
    assert depends(project, data, "test_xunit.py::test_outside", "app.py", "return 1")
    assert not depends(project, data, "test_xunit.py::test_outside", "app.py", "return 2")


def test_import_time_code_belongs_to_every_importing_test_module(project: Project) -> None:
    project.write(
        {
            "pkg/__init__.py": "",
            "pkg/util.py": """
                def compute():
                    return 42
            """,
            "pkg/constants.py": """
                from pkg.util import compute

                VALUE = compute()
            """,
            "pkg/other.py": """
                OTHER = 1
            """,
            "tests/test_a.py": """
                from pkg.constants import VALUE

                def test_a():
                    assert VALUE == 42
            """,
            "tests/test_b.py": """
                from pkg import constants

                def test_b():
                    assert constants.VALUE == 42
            """,
            "tests/test_c.py": """
                from pkg.other import OTHER

                def test_c():
                    assert OTHER == 1
            """,
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=3)
    data = project.fragment()
    for nodeid in ("tests/test_a.py::test_a", "tests/test_b.py::test_b"):
        assert depends(project, data, nodeid, "pkg/constants.py", "VALUE = compute()")
        assert depends(project, data, nodeid, "pkg/util.py", "return 42")
    assert not depends(project, data, "tests/test_c.py::test_c", "pkg/constants.py", "VALUE =")
    assert depends(project, data, "tests/test_c.py::test_c", "pkg/other.py", "OTHER = 1")


def test_an_import_inside_a_function_links_modules_only_if_it_ran(project: Project) -> None:
    """One that ran may have handed the module to code that kept it: every importer of its
    module depends on the imported one, as for an import at module level. One that never
    ran (an environment switch that was off) handed nothing to anybody."""
    project.write(
        {
            "pkg/__init__.py": "",
            "pkg/used.py": "USED = 1\n",
            "pkg/unused.py": "UNUSED = 2\n",
            "pkg/helpers.py": """
                import os

                def used():
                    from pkg import used
                    return used.USED

                def unused():
                    if os.environ.get("SELECTOR_TEST_NEVER_SET"):
                        from pkg import unused
                        return unused.UNUSED
                    return 0
            """,
            "tests/test_calls.py": """
                from pkg import helpers

                def test_used():
                    assert helpers.used() == 1
            """,
            "tests/test_imports.py": """
                from pkg import helpers

                def test_unused():
                    assert helpers.unused() == 0
            """,
            "tests/test_direct.py": """
                from pkg.unused import UNUSED

                def test_direct():
                    assert UNUSED == 2
            """,
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=3)
    data = project.fragment()
    for nodeid in ("tests/test_calls.py::test_used", "tests/test_imports.py::test_unused"):
        assert depends(project, data, nodeid, "pkg/used.py", "USED = 1")
        assert not depends(project, data, nodeid, "pkg/unused.py", "UNUSED = 2")
    assert depends(project, data, "tests/test_direct.py::test_direct", "pkg/unused.py", "UNUSED")


def test_conftest_import_footprint_belongs_to_tests_below_it(project: Project) -> None:
    project.write(
        {
            "registry.py": """
                HANDLERS = []

                def register(handler):
                    HANDLERS.append(handler)
                    return handler
            """,
            "tests/conftest.py": """
                import registry

                @registry.register
                def handler():
                    return "handled"
            """,
            "tests/test_inside.py": """
                import registry

                def test_inside():
                    assert registry.HANDLERS
            """,
            "elsewhere/test_outside.py": """
                def test_outside():
                    pass
            """,
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=2)
    data = project.fragment()
    inside = "tests/test_inside.py::test_inside"
    assert depends(project, data, inside, "registry.py", "HANDLERS.append(handler)")
    assert depends(project, data, inside, "tests/conftest.py", "@registry.register")
    outside = "elsewhere/test_outside.py::test_outside"
    assert not depends(project, data, outside, "tests/conftest.py", "@registry.register")


def test_files_read_by_a_test_are_its_dependencies(project: Project) -> None:
    project.write(
        {
            "tests/data/cases.json": '{"answer": 42}\n',
            "tests/test_data.py": """
                import json
                import pathlib

                HERE = pathlib.Path(__file__).parent

                def test_reads():
                    assert json.loads((HERE / "data" / "cases.json").read_text())["answer"] == 42

                def test_writes(tmp_path):
                    (tmp_path / "out.txt").write_text("x")
            """,
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=2)
    data = project.fragment()
    assert data.contexts[("test", "tests/test_data.py::test_reads")].reads == {
        "tests/data/cases.json"
    }
    assert not data.contexts[("test", "tests/test_data.py::test_writes")].reads


def test_durations_outcomes_and_meta(project: Project) -> None:
    project.write(
        {
            "test_outcomes.py": """
                import time
                import pytest

                @pytest.fixture
                def broken():
                    raise RuntimeError("setup fails")

                def test_passes():
                    time.sleep(0.05)

                def test_fails():
                    assert False

                def test_errors(broken):
                    pass

                @pytest.mark.skip
                def test_skipped():
                    pass

                @pytest.mark.xfail
                def test_xfails():
                    assert False
            """,
        }
    )
    commit = project.commit()
    result = project.record("-k", "not nothing_matches")
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1, xfailed=1)
    data = project.fragment()
    outcomes = {nodeid.split("::")[1]: test.outcome for nodeid, test in data.tests.items()}
    assert outcomes == {
        "test_passes": "passed",
        "test_fails": "failed",
        "test_errors": "error",
        "test_skipped": "skipped",
        "test_xfails": "xfailed",
    }
    assert data.tests["test_outcomes.py::test_passes"].duration >= 0.05
    assert data.tests["test_outcomes.py::test_passes"].path == "test_outcomes.py"
    assert data.meta.commit == commit
    assert not data.meta.dirty
    assert data.meta.variant == f"py{sys.version_info[0]}.{sys.version_info[1]}"
    assert len(data.collected) == 5


def test_lines_are_normalised_to_statements(project: Project) -> None:
    project.write(
        {
            "app.py": """
                def total(values):
                    result = sum(
                        value
                        for value in values
                    )
                    return result
            """,
            "test_app.py": """
                import app

                def test_total():
                    assert app.total([1, 2]) == 3
            """,
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=1)
    lines = own_lines(project.fragment(), "test_app.py::test_total", "app.py")
    assert lines == {
        project.line_of("app.py", "result = sum("),
        project.line_of("app.py", "return"),
    }


def test_one_liners_and_lambdas_are_recorded(project: Project) -> None:
    project.write(
        {
            "app.py": """
                def double(x): return 2 * x

                triple = lambda x: 3 * x

                def unused(x): return x
            """,
            "test_app.py": """
                import app

                def test_calls():
                    assert app.double(2) == 4
                    assert app.triple(2) == 6
            """,
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=1)
    called = own_lines(project.fragment(), "test_app.py::test_calls", "app.py")
    assert project.line_of("app.py", "def double") in called
    assert project.line_of("app.py", "triple = lambda") in called
    assert project.line_of("app.py", "def unused") not in called


def test_virtualenv_inside_the_repository_is_not_tracked(project: Project) -> None:
    project.write(
        {
            "app.py": "VALUE = 1\n",
            "test_app.py": """
                import json
                import app

                def test_value():
                    assert json.dumps(app.VALUE) == "1"
            """,
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=1)
    data = project.fragment()
    assert set(data.files) <= {"app.py", "test_app.py"}
    assert all(blob is not None and len(blob) == 40 for blob in data.files.values())


@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring needs 3.12")
def test_both_collectors_record_the_same_lines(project: Project) -> None:
    project.write(
        {
            "pkg/__init__.py": "",
            "pkg/shapes.py": """
                import functools

                registry = {}

                def register(cls):
                    registry[cls.__name__] = cls
                    return cls

                @register
                class Square:
                    def __init__(self, side):
                        self.side = side

                    def area(self):
                        return (
                            self.side
                            * self.side
                        )

                    @property
                    def double(self): return 2 * self.area()

                def total(shapes):
                    try:
                        return sum(shape.area() for shape in shapes)
                    except AttributeError:
                        return None
                    finally:
                        pass

                @functools.cache
                def cached(n):
                    return [i for i in range(n)]
            """,
            "tests/conftest.py": """
                import pytest
                from pkg.shapes import Square

                @pytest.fixture(scope="module")
                def square():
                    return Square(3)
            """,
            "tests/test_shapes.py": """
                import pytest
                from pkg import shapes

                def test_area(square):
                    assert square.area() == 9

                @pytest.mark.parametrize("n", [1, 2])
                def test_total(n, square):
                    assert shapes.total([square] * n) == 9 * n

                def test_error():
                    assert shapes.total([object()]) is None

                def test_cached():
                    assert shapes.cached(3) == [0, 1, 2]
                    assert shapes.Square(1).double == 2
            """,
        }
    )
    project.commit()
    project.record("--selector-collector=coverage").assert_outcomes(passed=5)
    by_coverage = project.fragment()
    project.fragments()[0].unlink()
    project.record("--selector-collector=monitoring").assert_outcomes(passed=5)
    by_monitoring = project.fragment()
    assert by_coverage.meta.collector == "coverage"
    assert by_monitoring.meta.collector == "monitoring"
    assert set(by_coverage.tests) == set(by_monitoring.tests)
    for nodeid in by_coverage.tests:
        assert by_coverage.test_lines(nodeid) == by_monitoring.test_lines(nodeid), nodeid


def test_contexts_that_ran_before_the_first_test_are_early(project: Project) -> None:
    project.write(
        {
            "work/__init__.py": "",
            "work/eager.py": "VALUE = 1\n",
            "work/lazy.py": "VALUE = 2\n",
            "tests/conftest.py": """
                import pytest


                @pytest.fixture(scope="session")
                def shared():
                    return 3
            """,
            "tests/test_order.py": """
                from work import eager


                def test_eager(shared):
                    assert eager.VALUE + shared == 4


                def test_lazy():
                    from work import lazy

                    assert lazy.VALUE == 2
            """,
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=2)
    early = {key for key, context in project.fragment().contexts.items() if context.early}
    # Imported while pytest collected, before any test: no test can have cached anything
    # for them. What runs during or between tests is not early.
    assert ("import", "work/eager.py") in early
    assert ("import", "tests/test_order.py") in early
    assert ("import", "work/lazy.py") not in early
    assert ("fixture", "tests::shared") not in early
    assert ("session", "") not in early
    assert not any(kind == "test" for kind, _name in early)


def test_the_stored_map_holds_the_code_index_of_every_python_file_run(project: Project) -> None:
    project.write(
        {
            "work/__init__.py": "",
            "work/api.py": """
                from work.helpers import twice


                def total(items):
                    return twice(sum(items))
            """,
            "work/helpers.py": """
                def twice(value):
                    return 2 * value
            """,
            "tests/test_api.py": """
                from work import api


                def test_total():
                    assert api.total([1, 2]) == 6
            """,
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=1)
    upload(project.path)
    code = only_map(project.path / ".selector" / "maps").code
    assert {"work/api.py", "work/helpers.py", "tests/test_api.py"} <= code.keys()
    text, words = code["work/api.py"]
    index = codeindex.load(text)
    assert index.functions["total"] == (project.line_of("work/api.py", "return twice"),) * 2
    assert index.calls.names["twice"] == {"total"}
    assert {"twice", "sum"} <= set(words)
    assert index.bindings.imported["twice"][0].module == "work.helpers"
