"""Which files pytest collects tests from, read from the project's pytest configuration.

The planner needs this for files it has no recording of (a new test file, or one the
recording run did not collect): those run in full. Only `python_files` and `testpaths`
matter here; they are read from the first pytest configuration file pytest itself would
use (pytest.ini, pyproject.toml, tox.ini, setup.cfg).
"""

import configparser
import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DEFAULT_PYTHON_FILES = ("test_*.py", "*_test.py")
# Folders pytest never recurses into by default (its `norecursedirs`), plus virtualenvs.
_SKIPPED_FOLDERS = (
    "*.egg",
    ".*",
    "_darcs",
    "build",
    "CVS",
    "dist",
    "node_modules",
    "venv",
    "{arch}",
)


@dataclass(frozen=True)
class PytestFiles:
    """Decides whether a repository-relative path is a test file pytest collects."""

    python_files: tuple[str, ...] = DEFAULT_PYTHON_FILES
    testpaths: tuple[str, ...] = ()

    def __call__(self, path: str) -> bool:
        pure = PurePosixPath(path)
        if not any(fnmatch.fnmatch(pure.name, pattern) for pattern in self.python_files):
            return False
        folders = pure.parts[:-1]
        if any(fnmatch.fnmatch(part, skip) for part in folders for skip in _SKIPPED_FOLDERS):
            return False
        return not self.testpaths or any(
            path == root or path.startswith(f"{root}/") for root in self.testpaths
        )


def _ini_options(root: Path) -> dict[str, str | list[str]] | None:
    """pytest's ini options from the first configuration file that has a pytest section."""
    pytest_ini = root / "pytest.ini"
    if pytest_ini.is_file():
        return _ini_section(pytest_ini, "pytest") or {}
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            table = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            table = {}
        options = table.get("tool", {}).get("pytest", {}).get("ini_options")
        if isinstance(options, dict):
            return options
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        if (root / name).is_file():
            found = _ini_section(root / name, section)
            if found is not None:
                return found
    return None


def _ini_section(path: Path, section: str) -> dict[str, str | list[str]] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return None
    return dict(parser[section]) if parser.has_section(section) else None


def _words(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(value.split() if isinstance(value, str) else value)


def pytest_files(root: Path) -> PytestFiles:
    """The test file rule of the project at `root`."""
    options = _ini_options(root) or {}
    python_files = _words(options.get("python_files")) or DEFAULT_PYTHON_FILES
    testpaths = tuple(p.strip("/").removeprefix("./") for p in _words(options.get("testpaths")))
    return PytestFiles(python_files, testpaths)
