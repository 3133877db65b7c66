"""A small recorded project shared by the plan tests: built and recorded once, copied per test."""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from projects import git

FILES = {
    ".gitignore": "runpytest-*/\n/stdout\n/stderr\n",
    "README.md": "# shop\n\nA tiny shop.\n",
    "pyproject.toml": """
        [project]
        name = "shop"
        version = "1.0"

        [tool.pytest.ini_options]
        pythonpath = ["src"]
        testpaths = ["tests"]
    """,
    "src/shop/__init__.py": "",
    "src/shop/pricing.py": """
        TAX_RATE = 0.2


        def net(price):
            return price


        def gross(price):
            return round(net(price) * (1 + TAX_RATE), 2)


        def discount(price, percent=10):
            return price * (100 - percent) / 100


        def unused():
            return "never called"
    """,
    "src/shop/catalog.py": """
        from shop.pricing import gross


        def decorate(function):
            return function


        class Item:
            currency = "EUR"

            def __init__(self, name, price):
                self.name = name
                self.price = price

            def label(self):
                return f"{self.name}: {gross(self.price)} {self.currency}"


        @decorate
        def find(items, name):
            return [item for item in items if item.name == name]
    """,
    "src/shop/constants.py": """
        DEFAULT_NAMES = ("apple", "pear")
    """,
    "src/shop/only_imported.py": """
        FLAG = True
    """,
    "src/shop/inventory.py": """
        def load_stock():
            return [("apple", 1.0), ("pear", 2.0)]
    """,
    "tests/conftest.py": """
        import pytest

        from shop.inventory import load_stock


        @pytest.fixture(scope="session")
        def stock():
            return load_stock()
    """,
    "tests/data/prices.json": '{"apple": 1.2}\n',
    "tests/test_pricing.py": """
        from shop import pricing


        def test_net():
            assert pricing.net(3) == 3


        def test_gross():
            assert pricing.gross(10) == 12.0


        def test_discount():
            assert pricing.discount(100) == 90
    """,
    "tests/test_catalog.py": """
        import json
        import pathlib

        from shop import only_imported
        from shop.catalog import Item, find
        from shop.constants import DEFAULT_NAMES

        NAMES = DEFAULT_NAMES


        def test_label():
            assert Item("apple", 1.0).label() == "apple: 1.2 EUR"


        def test_find(stock):
            assert find([Item(*pair) for pair in stock], "pear")[0].price == 2.0


        def test_stock_size(stock):
            assert len(stock) == 2


        def test_names():
            assert NAMES == ("apple", "pear")


        def test_prices_file():
            path = pathlib.Path(__file__).parent / "data" / "prices.json"
            assert json.loads(path.read_text())["apple"] == 1.2
    """,
    "tests/unit/conftest.py": """
        LIMIT = 5
    """,
    "tests/unit/test_limits.py": """
        def test_small():
            assert 1 < 5


        def test_large():
            assert 10 > 5
    """,
    "tests/test_misc.py": """
        def test_addition():
            assert 1 + 1 == 2


        def test_subtraction():
            assert 2 - 1 == 1


        def test_strings():
            assert "a" * 2 == "aa"
    """,
    "tests/test_failing.py": """
        def test_known_bug():
            assert 1 + 1 == 3
    """,
}
ALL_TESTS = 14


def write(root: Path, files: dict[str, str]) -> None:
    """Write dedented files under `root`."""
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(content).lstrip("\n"))


def build(root: Path) -> str:
    """Create, commit, record and upload the sample project; return the recorded commit."""
    return build_project(root, FILES, returncode=1)  # test_known_bug fails


def build_project(root: Path, files: dict[str, str], returncode: int = 0) -> str:
    """Create, commit, record (pytest exits with `returncode`) and upload a project."""
    root.mkdir(parents=True, exist_ok=True)
    write(root, files)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--selector-record", "-p", "no:cacheprovider", "-q"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == returncode, run.stdout + run.stderr
    upload(root)
    return git(root, "rev-parse", "HEAD")


def upload(root: Path) -> None:
    """Run `selector upload-map` in `root`; it must succeed."""
    completed = subprocess.run(
        [sys.executable, "-m", "selector.cli", "upload-map"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


def copy(source: Path, destination: Path) -> Path:
    """A private copy of the recorded project (repository, map and all)."""
    shutil.copytree(source, destination, symlinks=True)
    return destination


def plan(root: Path, *args: str) -> dict[str, Any]:
    """Run `selector plan --format json` in `root` and return the plan."""
    completed = subprocess.run(
        [sys.executable, "-m", "selector.cli", "plan", "--format", "json", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    document: dict[str, Any] = json.loads(completed.stdout)
    document["stderr"] = completed.stderr
    return document


def plan_after_change(root: Path, path: str, old: str, new: str) -> set[str]:
    """Store the map recorded in `root`, change `path` on a branch, and return what is selected."""
    upload(root)
    git(root, "checkout", "-q", "-b", "feature")
    target = root / path
    text = target.read_text()
    assert old in text, (path, old)
    target.write_text(text.replace(old, new, 1))
    git(root, "commit", "-q", "-a", "-m", "change")
    document = plan(root, "--base", "main", "--no-working-tree")
    assert not document["run_all"], document["reasons"]
    return set(document["selected"])


def feature_branch(recorded: Path, destination: Path) -> Path:
    """A private copy of a recorded project, on a new branch `feature` off its `main`."""
    root = copy(recorded, destination)
    git(root, "checkout", "-q", "-b", "feature")
    return root


def change(root: Path, path: str, old: str, new: str) -> dict[str, Any]:
    """Commit one replacement in `path` and plan it against the recorded map."""
    target = root / path
    text = target.read_text()
    assert text.count(old) == 1, (path, old)
    target.write_text(text.replace(old, new))
    git(root, "commit", "-q", "-a", "-m", "change")
    return plan(root, "--base", "main", "--no-working-tree")


def selected(document: dict[str, Any]) -> set[str]:
    """The items a plan selects; the plan must not run everything."""
    assert not document["run_all"], document["reasons"]
    items = document["selected"]
    assert isinstance(items, list)
    return set(items)
