"""Installed copies of repository files: `pip install .`, tox, a wheel, `pip install --target`.

Tests of a project installed non-editable import it from site-packages, not from the
checkout, and only files under the repository root are recorded. As coverage.py's `[paths]`
setting maps such copies back to the source files, this module builds, once per run, a table
from the installed files to the repository files, from the RECORD file every distribution
installed by pip has:

* A distribution file (a row of its RECORD: what pip installed) whose path in its install
  location (`pkg/mod.py`, `ns/sub/mod.py`) ends a repository file's path (`src/pkg/mod.py`,
  `pkg/mod.py`) is a *match*. The folder before it (`src/`, the empty one) is the
  distribution's source folder: the one most of its matches agree on by content.
* A distribution is *built from this repository* when at least one of its files, not
  empty, equals its match byte for byte, when its `direct_url.json` (PEP 610:
  `pip install .`, a wheel or sdist under the repository) points into the repository, or
  when its name is the `[project] name` of the repository's pyproject.toml (an install
  made from another checkout, or from an index).
* The files of such a distribution that equal their match are *copies*: their lines and
  reads are recorded against the repository file. Those that differ make the distribution
  *stale*: what the tests ran is not the checkout's code, and where it was imported the
  map says so (`OutsideInstall`).

Third-party distributions share no content with the repository and stay untracked.
"""

import csv
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: child processes load this module at start-up
    from importlib import metadata

TABLE_FILE = "installed.json"  # in a recording run's folder, for its child processes


@dataclass(frozen=True, order=True)
class OutsideInstall:
    """A distribution of this repository that tests imported from a stale installed copy."""

    distribution: str
    location: str  # where it is installed (site-packages, a --target folder)
    sources: tuple[str, ...]  # repository folders ("src/pkg/") and files ("mod.py") it holds


@dataclass(frozen=True)
class _Match:
    """One distribution file whose install path ends a repository path."""

    installed: str  # real path of the installed file
    inside: str  # its path in the install location, POSIX
    prefix: str  # repository folder before `inside` ("" or "src/")


@dataclass
class InstalledCopies:
    """Installed files that stand for repository files, and those that are stale."""

    copies: dict[str, str] = field(default_factory=dict)  # installed real path -> repo path
    stale: dict[str, OutsideInstall] = field(default_factory=dict)  # installed real path -> ...

    def save(self, folder: Path) -> None:
        """Write the table where the run's child processes read it (`load`)."""
        stale = {path: asdict(install) for path, install in self.stale.items()}
        text = json.dumps({"copies": self.copies, "stale": stale})
        (folder / TABLE_FILE).write_text(text, encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "InstalledCopies":
        """The table the run's pytest process saved; empty if there is none."""
        try:
            data = json.loads((folder / TABLE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        stale = {
            path: OutsideInstall(item["distribution"], item["location"], tuple(item["sources"]))
            for path, item in data["stale"].items()
        }
        return cls(dict(data["copies"]), stale)


def find_copies(root: Path, repository_files: Iterable[str]) -> InstalledCopies:
    """Every installed distribution file that stands for a repository file, or is stale.

    `repository_files` are repository-relative POSIX paths (git's view of the working tree).
    An installed file may lie under the root (a tox environment, `pip install --target`
    into an ignored folder), but a repository file is never a copy of itself.
    """
    from importlib import metadata

    root_text = os.path.realpath(root)
    paths = list(repository_files)
    endings = _endings(paths)
    checkout = {str(Path(root_text).joinpath(*path.split("/"))) for path in paths}
    project = _project_name(Path(root_text))
    table = InstalledCopies()
    for distribution in metadata.distributions():
        try:
            matches = list(_matches(distribution, endings, checkout))
        except (OSError, ValueError):
            continue  # an unreadable RECORD: pip could not uninstall it either
        if matches:
            _add_distribution(table, root_text, distribution, matches, project)
    return table


def _endings(paths: Iterable[str]) -> dict[str, list[str]]:
    """For every path ending (`pkg/mod.py` of `src/pkg/mod.py`), the paths it ends."""
    endings: dict[str, list[str]] = {}
    for path in paths:
        parts = path.split("/")
        for start in range(len(parts)):
            endings.setdefault("/".join(parts[start:]), []).append(path)
    return endings


def _matches(
    distribution: "metadata.Distribution",
    endings: dict[str, list[str]],
    checkout: set[str],
) -> Iterator[_Match]:
    """The files of `distribution` whose install path ends a repository path.

    RECORD is read as text: `Distribution.files` makes a path object of every line, which
    took most of the time of a run's look-up over a virtualenv's distributions.
    """
    for row in csv.reader((distribution.read_text("RECORD") or "").splitlines()):
        inside = row[0] if row else ""
        repository_paths = endings.get(inside)
        if not repository_paths or inside.startswith("../") or "/__pycache__/" in f"/{inside}":
            continue
        installed = os.path.realpath(str(distribution.locate_file(inside)))
        if installed in checkout or not Path(installed).is_file():
            continue
        for path in repository_paths:
            yield _Match(installed, inside, path[: len(path) - len(inside)])


def _add_distribution(
    table: InstalledCopies,
    root: str,
    distribution: "metadata.Distribution",
    matches: list[_Match],
    project: str | None,
) -> None:
    """Add the copies and stale files of one distribution, if it was built from the repo."""
    equal = {match for match in matches if _same_content(match.installed, root, match)}
    votes: dict[str, int] = {}
    for match in equal or matches:
        votes[match.prefix] = votes.get(match.prefix, 0) + 1
    prefix = max(sorted(votes), key=lambda candidate: votes[candidate])
    chosen = [match for match in matches if match.prefix == prefix]
    # An empty file (a bare __init__.py) equal to one of the repository's proves nothing.
    name = distribution.metadata["Name"] or ""
    evidence = any(Path(match.installed).stat().st_size for match in equal)
    if not evidence and _normalised(name) != project and not _installed_from(distribution, root):
        return
    different = [match for match in chosen if match not in equal]
    for match in chosen:
        if match in equal:
            table.copies[match.installed] = prefix + match.inside
    if different:
        install = OutsideInstall(
            distribution=name,
            location=os.path.realpath(str(distribution.locate_file(""))),
            sources=tuple(sorted({_source(prefix, match.inside) for match in chosen})),
        )
        for match in different:
            table.stale[match.installed] = install


def _same_content(installed: str, root: str, match: _Match) -> bool:
    """Whether the installed file holds the bytes of its match (sizes first: data files)."""
    copy, original = Path(installed), Path(root) / match.prefix / match.inside
    try:
        if copy.stat().st_size != original.stat().st_size:
            return False
        return copy.read_bytes() == original.read_bytes()
    except OSError:
        return False


def _source(prefix: str, inside: str) -> str:
    """The repository folder (`src/pkg/`) or file (`mod.py`) a top-level name comes from."""
    top, separator, _rest = inside.partition("/")
    return prefix + top + ("/" if separator else "")


def _project_name(root: Path) -> str | None:
    """The normalised `[project] name` of the repository's pyproject.toml, if it has one."""
    import tomllib

    try:
        name = tomllib.loads((root / "pyproject.toml").read_text()).get("project", {}).get("name")
    except (OSError, ValueError, AttributeError):
        return None
    return _normalised(name) if isinstance(name, str) else None


def _normalised(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_from(distribution: "metadata.Distribution", root: str) -> bool:
    """Whether pip installed `distribution` from the repository (PEP 610 direct_url.json)."""
    from urllib.parse import unquote, urlparse

    text = distribution.read_text("direct_url.json")
    if not text:
        return False
    try:
        url = urlparse(json.loads(text).get("url", ""))
    except (ValueError, AttributeError):
        return False
    if url.scheme != "file":
        return False
    location = os.path.realpath(unquote(url.path))
    return location == root or location.startswith(root + os.sep)


def outside_message(install: OutsideInstall) -> str:
    """One line: tests imported stale code, what that means for plans, and what to do."""
    return (
        f"the tests imported {install.distribution} from {install.location}, an installed "
        f"copy that differs from the checkout ({', '.join(install.sources)}): plans run every "
        "test for changes there; install it with `pip install -e .` (or reinstall it) "
        "before recording"
    )
