"""lookup, export and stats on a recorded project."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from coverage import CoverageData
from sample import build, copy

from selector.mapdb import read_map


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("recorded") / "shop"
    build(root)
    return root


def selector(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [sys.executable, "-m", "selector.cli", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if check:
        assert completed.returncode == 0, completed.stderr
    return completed


def found(root: Path, target: str) -> list[str]:
    return selector(root, "lookup", target, "--format", "list").stdout.split()


def test_lookup_a_line_a_range_a_function_and_a_method(recorded: Path) -> None:
    net = ["tests/test_catalog.py::test_label", "tests/test_pricing.py::test_gross"]
    net.append("tests/test_pricing.py::test_net")
    assert found(recorded, "src/shop/pricing.py:5") == sorted(net)
    assert found(recorded, "src/shop/pricing.py:net") == sorted(net)
    assert found(recorded, "src/shop/pricing.py:5-6") == sorted(net)
    # The def line runs when the module is imported: every importer depends on it.
    assert len(found(recorded, "src/shop/pricing.py:4")) == 8
    assert found(recorded, "src/shop/catalog.py::Item.label") == [
        "tests/test_catalog.py::test_label"
    ]
    assert found(recorded, "src/shop/pricing.py:17") == []


def test_lookup_a_whole_file_includes_its_readers(recorded: Path) -> None:
    assert found(recorded, "tests/data/prices.json") == ["tests/test_catalog.py::test_prices_file"]


def test_lookup_prints_durations_and_json(recorded: Path) -> None:
    text = selector(recorded, "lookup", "src/shop/pricing.py:net")
    assert text.stdout.count("s  tests/") == 3
    assert "3 tests" in text.stderr
    rows = json.loads(
        selector(recorded, "lookup", "src/shop/pricing.py:net", "--format", "json").stdout
    )
    assert {row["outcome"] for row in rows} == {"passed"}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nowhere.py", "the map has no record of nowhere.py"),
        ("src/shop/pricing.py:missing", "src/shop/pricing.py has no function or class 'missing'"),
        ("src/shop/pricing.py:9-3", "src/shop/pricing.py:9-3: the range ends before it starts"),
    ],
)
def test_lookup_errors_are_one_line(recorded: Path, target: str, message: str) -> None:
    completed = selector(recorded, "lookup", target, check=False)
    assert completed.returncode == 1
    assert completed.stderr == f"selector: error: {message}\n"


def test_export_to_coverage_with_one_context_per_test(recorded: Path, tmp_path: Path) -> None:
    root = copy(recorded, tmp_path / "shop")
    exported = tmp_path / "exported.coverage"
    selector(root, "export", "--coverage", str(exported))
    data = CoverageData(basename=str(exported))
    data.read()
    recorded_map = read_map(next((root / ".selector" / "fragments").glob("*.sqlite")))
    assert set(data.measured_contexts()) == set(recorded_map.tests)
    nodeid = "tests/test_pricing.py::test_net"
    data.set_query_contexts([nodeid])
    pricing = str(root / "src/shop/pricing.py")
    assert set(data.lines(pricing) or []) == recorded_map.test_lines(nodeid)["src/shop/pricing.py"]
    html = subprocess.run(
        [
            sys.executable,
            "-m",
            "coverage",
            "html",
            "--data-file",
            str(exported),
            "--show-contexts",
            "-d",
            str(tmp_path / "html"),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert html.returncode == 0, html.stdout + html.stderr
    page = next((tmp_path / "html").glob("*pricing_py.html")).read_text()
    assert nodeid in page


def test_export_to_csv_by_line_and_by_function(recorded: Path, tmp_path: Path) -> None:
    lines, functions = tmp_path / "lines.csv", tmp_path / "functions.csv"
    selector(recorded, "export", "--csv", str(lines))
    selector(recorded, "export", "--csv", str(functions), "--by", "function")
    rows = list(csv.reader(lines.open()))
    assert rows[0] == ["test", "file", "line"]
    assert ["tests/test_pricing.py::test_net", "src/shop/pricing.py", "5"] in rows
    by_function = list(csv.reader(functions.open()))
    assert ["tests/test_pricing.py::test_gross", "src/shop/pricing.py", "net"] in by_function
    assert ["tests/test_pricing.py::test_gross", "src/shop/pricing.py", "<module>"] in by_function


def test_stats(recorded: Path) -> None:
    output = selector(recorded, "stats", "--top", "3").stdout
    assert "14 tests (1 failed, 13 passed)" in output
    coupled = output.split("most coupled files (tests that depend on them):\n")[1]
    assert coupled.splitlines()[0].split()[0] == "14"  # the conftest's imports reach everything


@pytest.mark.parametrize(
    "command", ["upload-map", "plan", "why", "lookup", "export", "stats", "maps", "run"]
)
def test_every_command_has_help_with_an_example(recorded: Path, command: str) -> None:
    assert "example" in selector(recorded, command, "--help").stdout
