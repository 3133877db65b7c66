"""selector plan, end to end: a recorded project, a real change, the plan it gets."""

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sample import ALL_TESTS, build, build_project, copy, plan, write
from stored_maps import only_map_file, rewrite_only_map

from projects import git

FAILING = "tests/test_failing.py::test_known_bug"
CATALOG_TESTS = {
    f"tests/test_catalog.py::{name}"
    for name in ("test_label", "test_find", "test_stock_size", "test_names", "test_prices_file")
}
PRICING_TESTS = {
    f"tests/test_pricing.py::{name}" for name in ("test_net", "test_gross", "test_discount")
}


class Shop:
    """A private copy of the recorded sample project, on a feature branch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        git(path, "checkout", "-q", "-b", "feature")

    def replace(self, name: str, old: str, new: str) -> None:
        target = self.path / name
        text = target.read_text()
        assert old in text, (name, old)
        target.write_text(text.replace(old, new, 1))

    def write(self, files: dict[str, str]) -> None:
        write(self.path, files)

    def commit(self) -> None:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", "change")

    def rerecord(self) -> None:
        """Record and upload the map at HEAD, and make HEAD the base branch."""
        for command in (
            [sys.executable, "-m", "pytest", "--selector-record", "-q", "-p", "no:cacheprovider"],
            [sys.executable, "-m", "selector.cli", "upload-map"],
        ):
            subprocess.run(command, cwd=self.path, capture_output=True, check=False)
        git(self.path, "branch", "-f", "main", "HEAD")

    def plan(self, *args: str) -> dict[str, Any]:
        return plan(self.path, "--base", "main", *(args or ("--no-working-tree",)))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("recorded") / "shop"
    build(root)
    return root


@pytest.fixture
def shop(recorded: Path, tmp_path: Path) -> Iterator[Shop]:
    yield Shop(copy(recorded, tmp_path / "shop"))


def selected(document: dict[str, Any]) -> set[str]:
    assert not document["run_all"], document["reasons"]
    return set(document["selected"])


# -- rule 1: function bodies --------------------------------------------------------


def test_function_body_change_selects_the_tests_that_ran_it(shop: Shop) -> None:
    shop.replace("src/shop/pricing.py", "    return price\n", "    return price + 0\n")
    shop.commit()
    document = shop.plan()
    assert selected(document) == {
        "tests/test_pricing.py::test_net",
        "tests/test_pricing.py::test_gross",
        "tests/test_catalog.py::test_label",
        FAILING,
    }
    reasons = document["tests"]["tests/test_pricing.py::test_net"]["reasons"]
    assert reasons == ["src/shop/pricing.py:5 in net"]
    assert document["selected_count"] == 4
    assert document["total_count"] == ALL_TESTS


def test_change_in_a_session_fixture_selects_every_test_using_it(shop: Shop) -> None:
    shop.replace("src/shop/inventory.py", '("pear", 2.0)]', '("pear", 2.0), ("fig", 3.0)]')
    shop.commit()
    assert selected(shop.plan()) == {
        "tests/test_catalog.py::test_find",
        "tests/test_catalog.py::test_stock_size",
        FAILING,
    }


def test_change_in_a_fixture_body_in_conftest(shop: Shop) -> None:
    shop.replace("tests/conftest.py", "return load_stock()", "return list(load_stock())")
    shop.commit()
    assert selected(shop.plan()) == {
        "tests/test_catalog.py::test_find",
        "tests/test_catalog.py::test_stock_size",
        FAILING,
    }


def test_decorator_function_body_runs_at_import(shop: Shop) -> None:
    shop.replace("src/shop/catalog.py", "    return function\n", "    return function  # noqa\n")
    shop.replace(
        "src/shop/catalog.py",
        "def decorate(function):",
        "def decorate(function):\n    assert function",
    )
    shop.commit()
    assert selected(shop.plan()) == CATALOG_TESTS | {FAILING}


# -- rule 2: module level -----------------------------------------------------------


def test_module_constant_used_at_import_time(shop: Shop) -> None:
    shop.replace("src/shop/constants.py", '("apple", "pear")', '("apple", "pear", "fig")')
    shop.commit()
    document = shop.plan()
    # The test file reads it at import: its whole module, all of whose tests the map knows.
    assert selected(document) == {"tests/test_catalog.py", FAILING}
    reasons = document["tests"]["tests/test_catalog.py"]["reasons"]
    assert reasons == [
        "src/shop/constants.py:1 DEFAULT_NAMES changed; "
        "tests/test_catalog.py reads it at import time"
    ]


def test_module_constant_computed_at_import(shop: Shop) -> None:
    shop.replace("src/shop/constants.py", '("apple", "pear")', 'tuple(["apple", "pear"])')
    shop.commit()
    document = shop.plan()
    assert selected(document) == CATALOG_TESTS | {FAILING}
    reasons = document["tests"]["tests/test_catalog.py::test_names"]["reasons"]
    assert reasons == ["src/shop/constants.py:1 at module level"]


def test_class_attribute_change(shop: Shop) -> None:
    shop.replace("src/shop/catalog.py", 'currency = "EUR"', 'currency = "USD"')
    shop.commit()
    assert selected(shop.plan()) == CATALOG_TESTS | {FAILING}


def test_default_argument_change(shop: Shop) -> None:
    """A literal default of an undecorated top-level function: what ran it (and what names
    it, tests/test_constants.py), not everything that imports its module."""
    shop.replace("src/shop/pricing.py", "percent=10", "percent=20")
    shop.commit()
    document = shop.plan()
    assert selected(document) == {"tests/test_pricing.py::test_discount", FAILING}
    reasons = document["tests"]["tests/test_pricing.py::test_discount"]["reasons"]
    changed = "src/shop/pricing.py:12 default value of discount changed"
    assert f"{changed}; discount (src/shop/pricing.py) runs with it" in reasons


def test_signature_change(shop: Shop) -> None:
    shop.replace("src/shop/pricing.py", "percent=10", "percent=10, rounding=None")
    shop.commit()
    assert selected(shop.plan()) == PRICING_TESTS | CATALOG_TESTS | {FAILING}


def test_decorator_line_change(shop: Shop) -> None:
    shop.replace("src/shop/catalog.py", "@decorate\n", "")
    shop.commit()
    assert selected(shop.plan()) == CATALOG_TESTS | {FAILING}


def test_docstring_is_code(shop: Shop) -> None:
    shop.replace("src/shop/pricing.py", "def net(price):\n", 'def net(price):\n    """Net."""\n')
    shop.commit()
    assert selected(shop.plan()) == PRICING_TESTS | CATALOG_TESTS | {FAILING}


def test_module_only_imported_by_tests(shop: Shop) -> None:
    shop.replace("src/shop/only_imported.py", "FLAG = True", "FLAG = bool(0)")
    shop.commit()
    assert selected(shop.plan()) == CATALOG_TESTS | {FAILING}


def test_module_imported_by_conftest_selects_everything_below_it(shop: Shop) -> None:
    shop.write({"src/shop/inventory.py": "import os\n\ndef load_stock():\n    return []\n"})
    shop.commit()
    document = shop.plan()
    assert document["run_all"]
    assert "above max_fraction 0.8" in document["reasons"][0]


def test_module_imported_by_conftest_code_that_never_ran_selects_only_its_users(
    tmp_path: Path,
) -> None:
    """python-dateutil's conftest imports `dateutil.tz` only when $DATEUTIL_TZPATH is set:
    where it is not, a change to `tz` reaches the tests that import `tz`, not every test."""
    root = tmp_path / "zones"
    build_project(
        root,
        {
            "work/__init__.py": "",
            "work/zones.py": "ZONES = ['UTC']\n",
            "tests/conftest.py": """
                import os


                def pytest_configure(config):
                    if os.environ.get("SELECTOR_TEST_NEVER_SET"):
                        from work import zones

                        zones.ZONES.append(os.environ["SELECTOR_TEST_NEVER_SET"])
            """,
            "tests/test_zones.py": """
                from work import zones


                def test_zones():
                    assert zones.ZONES == ["UTC"]
            """,
            "tests/test_other.py": """
                def test_other():
                    pass
            """,
        },
    )
    git(root, "checkout", "-q", "-b", "feature")
    write(root, {"work/zones.py": "ZONES = sorted(['UTC'])\n"})
    git(root, "commit", "-q", "-a", "-m", "computed")
    assert selected(plan(root, "--base", "main")) == {"tests/test_zones.py::test_zones"}


# -- rule 0 and the refinements ---------------------------------------------------------


def test_formatting_and_comments_select_nothing(shop: Shop) -> None:
    shop.replace("src/shop/pricing.py", "TAX_RATE = 0.2\n", "# the rate\nTAX_RATE = 0.20\n\n")
    shop.replace("src/shop/catalog.py", "self.name = name", "self.name = name  # keep")
    shop.commit()
    document = shop.plan()
    assert selected(document) == {FAILING}
    assert document["uncovered_changes"] == []


def test_comments_in_test_files_and_conftest_select_nothing(shop: Shop) -> None:
    """pytest reads them to rewrite asserts: that reading is loading, not a test's doing."""
    shop.replace("tests/test_pricing.py", "def test_net():", "# net\ndef test_net():")
    shop.replace("tests/conftest.py", "import pytest\n", "import pytest  # fixtures\n")
    shop.commit()
    assert selected(shop.plan()) == {FAILING}


def test_new_inert_function_with_a_fresh_name_selects_nothing(shop: Shop) -> None:
    with (shop.path / "src/shop/pricing.py").open("a") as source:
        source.write("\n\ndef tax_free(price):\n    return price\n")
    shop.commit()
    document = shop.plan()
    assert selected(document) == {FAILING}
    assert document["uncovered_changes"] == [
        "src/shop/pricing.py:20-21 new tax_free (no test runs it yet)"
    ]


def test_new_function_whose_name_is_used_elsewhere_is_a_module_change(shop: Shop) -> None:
    with (shop.path / "src/shop/pricing.py").open("a") as source:
        source.write("\n\ndef tax_free(price):\n    return price\n")
    shop.write({"src/shop/uses.py": "from shop.pricing import tax_free\n"})
    shop.commit()
    assert selected(shop.plan()) == PRICING_TESTS | CATALOG_TESTS | {FAILING}


def test_changed_function_that_no_test_runs_is_reported(shop: Shop) -> None:
    shop.replace("src/shop/pricing.py", '"never called"', '"still never called"')
    shop.commit()
    document = shop.plan()
    assert selected(document) == {FAILING}
    assert document["uncovered_changes"] == [
        "src/shop/pricing.py:17 in unused (no recorded test runs it)"
    ]


# -- rule 3: conftest.py ----------------------------------------------------------------


def test_conftest_module_level_change_selects_its_folder(shop: Shop) -> None:
    shop.replace("tests/unit/conftest.py", "LIMIT = 5", "LIMIT = int(6)")
    shop.commit()
    document = shop.plan()
    assert selected(document) == {"tests/unit", FAILING}
    assert document["selected_count"] == 3


# -- rule 4: test files -----------------------------------------------------------------


def test_new_test_function_is_selected(shop: Shop) -> None:
    with (shop.path / "tests/test_pricing.py").open("a") as source:
        source.write("\n\ndef test_new():\n    assert True\n")
    shop.commit()
    assert selected(shop.plan()) == {"tests/test_pricing.py::test_new", FAILING}


def test_new_test_file_is_selected(shop: Shop) -> None:
    shop.write({"tests/test_new.py": "def test_new():\n    assert True\n"})
    shop.commit()
    assert selected(shop.plan()) == {"tests/test_new.py", FAILING}


def test_changed_test_selects_itself(shop: Shop) -> None:
    shop.replace(
        "tests/test_pricing.py", "assert pricing.net(3) == 3", "assert pricing.net(4) == 4"
    )
    shop.commit()
    assert selected(shop.plan()) == {"tests/test_pricing.py::test_net", FAILING}


def test_deleted_test_disappears(shop: Shop) -> None:
    shop.replace(
        "tests/test_pricing.py",
        "def test_discount():\n    assert pricing.discount(100) == 90\n",
        "",
    )
    shop.commit()
    document = shop.plan()
    assert "tests/test_pricing.py::test_discount" in document["removed"]
    assert "tests/test_pricing.py::test_discount" not in selected(document)


def test_renamed_test_file(shop: Shop) -> None:
    git(shop.path, "mv", "tests/test_pricing.py", "tests/test_prices.py")
    shop.commit()
    document = shop.plan()
    assert selected(document) == {"tests/test_prices.py", FAILING}
    assert set(document["removed"]) == PRICING_TESTS


def test_deleted_module_selects_its_importers(shop: Shop) -> None:
    git(shop.path, "rm", "-q", "src/shop/only_imported.py")
    shop.commit()
    assert selected(shop.plan()) == CATALOG_TESTS | {FAILING}


# -- rule 5: other files ------------------------------------------------------------------


def test_data_file_read_by_a_test(shop: Shop) -> None:
    shop.write({"tests/data/prices.json": '{"apple": 1.3}\n'})
    shop.commit()
    document = shop.plan()
    assert selected(document) == {"tests/test_catalog.py::test_prices_file", FAILING}
    reasons = document["tests"]["tests/test_catalog.py::test_prices_file"]["reasons"]
    assert reasons == ["tests/data/prices.json changed (the test read it)"]


def test_readme_change_selects_nothing(shop: Shop) -> None:
    shop.write({"README.md": "# shop\n\nA tiny, tiny shop.\n"})
    shop.commit()
    document = shop.plan()
    assert selected(document) == {FAILING}
    assert document["tests"][FAILING]["reasons"] == ["failed when the map was recorded"]


@pytest.mark.parametrize(
    ("name", "content"),
    [("pyproject.toml", None), ("poetry.lock", "# lock\n"), ("requirements-dev.txt", "x\n")],
)
def test_dependency_and_config_files_run_everything(
    shop: Shop, name: str, content: str | None
) -> None:
    if content is None:
        shop.replace(name, 'version = "1.0"', 'version = "1.1"')
    else:
        shop.write({name: content})
    shop.commit()
    document = shop.plan()
    assert document["run_all"]
    assert document["reasons"][0].startswith(f"{name} changed, and it is a run-all file")


def test_unknown_file_runs_everything(shop: Shop) -> None:
    shop.write({"assets/logo.svg": "<svg/>\n"})
    shop.commit()
    document = shop.plan()
    assert document["run_all"]
    assert document["reasons"][0].startswith("assets/logo.svg changed: a file no recorded test")


def test_unknown_files_can_be_ignored_by_configuration(shop: Shop) -> None:
    shop.write({"selector.yml": "unknown_files: ignore\n"})
    shop.commit()
    shop.rerecord()
    shop.write({"assets/logo.svg": "<svg/>\n"})
    shop.commit()
    assert selected(shop.plan()) == {FAILING}


# -- rule 6 and 7 -----------------------------------------------------------------------


def test_failing_test_is_always_selected(shop: Shop) -> None:
    shop.commit()
    assert selected(shop.plan()) == {FAILING}


def test_no_map_runs_everything(shop: Shop) -> None:
    for stored in (shop.path / ".selector" / "maps").glob("*.sqlite.gz"):
        stored.unlink()
    document = shop.plan()
    assert document["run_all"]
    assert document["reasons"][0].startswith("no py")
    assert "running all tests" in document["stderr"]


def test_corrupt_map_runs_everything(shop: Shop) -> None:
    (stored,) = (shop.path / ".selector" / "maps").glob("*.sqlite.gz")
    stored.write_bytes(stored.read_bytes()[:2000])
    document = shop.plan()
    assert document["run_all"]
    assert document["reasons"][0].startswith("unusable map:")


def test_a_corrupt_newest_map_is_skipped_for_an_older_one(shop: Shop) -> None:
    older = git(shop.path, "rev-parse", "HEAD")
    shop.replace("src/shop/pricing.py", "    return price\n", "    return price + 0\n")
    shop.commit()
    shop.rerecord()
    newest = git(shop.path, "rev-parse", "HEAD")
    (stored,) = (shop.path / ".selector" / "maps").glob(f"{newest}.*.sqlite.gz")
    stored.write_bytes(stored.read_bytes()[:2000])
    document = shop.plan()
    assert document["map_commit"] == older
    assert PRICING_TESTS - {"tests/test_pricing.py::test_discount"} <= selected(document)
    assert document["notes"][0].startswith(f"skipped the stored map of {newest[:12]}")
    assert "skipped the stored map" in document["stderr"]


def test_map_of_another_schema_version_runs_everything(shop: Shop) -> None:
    rewrite_only_map(
        shop.path / ".selector" / "maps",
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
    )
    document = shop.plan()
    assert document["run_all"]
    assert "schema version 99" in document["reasons"][0]


def test_map_of_another_variant_runs_everything(shop: Shop) -> None:
    stored = only_map_file(shop.path / ".selector" / "maps")
    document = shop.plan("--no-working-tree", "--map", str(stored), "--variant", "py2.7")
    assert document["run_all"]
    assert document["reasons"][0].startswith("the map is for variant py3.")


def test_map_commit_missing_from_a_shallow_clone(shop: Shop, tmp_path: Path) -> None:
    shop.replace("src/shop/pricing.py", "    return price\n", "    return price + 0\n")
    shop.commit()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", "-b", "feature", shop.path.as_uri(), str(clone))
    stored = only_map_file(shop.path / ".selector" / "maps")
    document = plan(clone, "--base", "HEAD", "--no-working-tree", "--map", str(stored))
    assert document["run_all"]
    assert "git fetch --depth=1 origin" in document["reasons"][0]


# -- working tree and explanations ------------------------------------------------------


def test_uncommitted_changes_count_locally_but_not_in_ci(shop: Shop) -> None:
    shop.replace("src/shop/pricing.py", "    return price\n", "    return price + 0\n")
    local = plan(shop.path, "--base", "main", "--working-tree")
    assert "tests/test_pricing.py::test_net" in selected(local)
    committed = plan(shop.path, "--base", "main", "--no-working-tree")
    assert selected(committed) == {FAILING}


def test_why_explains_a_selected_and_an_unselected_test(shop: Shop) -> None:
    shop.replace("src/shop/pricing.py", "    return price\n", "    return price + 0\n")
    shop.commit()
    shop.plan()

    def why(nodeid: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "selector.cli", "why", nodeid],
            cwd=shop.path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    assert why("tests/test_pricing.py::test_gross") == textwrap.dedent(
        """\
        tests/test_pricing.py::test_gross is selected:
          - src/shop/pricing.py:5 in net
        """
    )
    assert why("tests/unit/test_limits.py::test_small").startswith(
        "tests/unit/test_limits.py::test_small is not selected: no change touches"
    )
