"""The pytest side of a plan: run exactly this shard's share of the selected tests.

Everything else is deselected through `pytest_deselected`, so pytest reports it as
deselected, and `-k`/`-m` given by the user narrow the selection further. A shard with
nothing to run is a success with a one-line message, not pytest's "no tests" exit 5.

The plan's items are relative to the repository root, and pytest's node IDs to its rootdir,
which depends on the arguments and configuration files: a collected test is matched by its
repository-relative node ID (`repository_nodeid`), whatever the rootdir. A plan whose
selected tests are none of them collected, or a shard whose planned tests are all missing,
is a usage error, never a green run of nothing: the run is not the one the plan was for.
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from selector.installed import OutsideInstall, find_copies
from selector.nodeids import prefixes, repository_nodeid
from selector.shard import shard_of

PLAN_VERSION = 1


def _usage_error(message: str) -> pytest.UsageError:
    return pytest.UsageError(f"selector: {message}")


def parse_shard(text: str, plan_shards: int) -> tuple[int, int]:
    """`K/N` or `K` (N from the plan) -> (K, N), checked against the plan.

    N may exceed the plan's shard count (a fixed CI matrix, and a plan that needed fewer
    shards): the extra shards run nothing. N below it would leave tests unrun: an error.
    """
    index_text, _, count_text = text.partition("/")
    try:
        index = int(index_text)
        count = int(count_text) if count_text else plan_shards
    except ValueError:
        raise _usage_error(f"--selector-shard takes K/N or K, got {text!r}") from None
    if count < plan_shards:
        raise _usage_error(
            f"the plan has {plan_shards} shards, --selector-shard says {count}: "
            "some selected tests would not run"
        )
    if not 1 <= index <= count:
        raise _usage_error(f"--selector-shard {text}: K must be between 1 and {count}")
    return index, count


def load_plan(path: Path) -> dict[str, Any]:
    """A plan file, or a usage error that says what is wrong with it."""
    try:
        plan = json.loads(path.read_text())
    except FileNotFoundError:
        raise _usage_error(
            f"no plan at {path}: run `selector plan --output {path}` first"
        ) from None
    except (OSError, ValueError) as error:
        raise _usage_error(f"cannot read the plan {path}: {error}") from None
    if not isinstance(plan, dict) or plan.get("version") != PLAN_VERSION:
        found = plan.get("version") if isinstance(plan, dict) else None
        raise _usage_error(
            f"{path} is a plan of version {found}, this selector reads version {PLAN_VERSION}"
        )
    problem = _plan_problem(plan)
    if problem is not None:
        raise _usage_error(
            f"{path} is no usable plan: {problem}; make it with `selector plan --output {path}`"
        )
    return plan


def _plan_problem(plan: dict[str, Any]) -> str | None:
    """What is wrong with the keys a planned run reads, if anything (one bad key named)."""
    if not isinstance(plan.get("run_all"), bool):
        return _bad_key(plan, "run_all", "true or false")
    if not _strings(plan.get("selected")):
        return _bad_key(plan, "selected", "a list of node IDs")
    shards = plan.get("shards", [])
    if not isinstance(shards, list):
        return _bad_key(plan, "shards", "a list of shards")
    for number, shard in enumerate(shards):
        if not (
            isinstance(shard, dict)
            and type(shard.get("index")) is int
            and 1 <= shard["index"] <= len(shards)
            and _strings(shard.get("units"))
        ):
            return f'"shards"[{number}] must hold an "index" from 1 to {len(shards)} and "units"'
    return None


def _bad_key(plan: dict[str, Any], key: str, wanted: str) -> str:
    if key not in plan:
        return f'"{key}" is missing'
    return f'"{key}" must be {wanted}, not {json.dumps(plan[key])[:60]}'


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(element, str) for element in value)


# pytest's configuration files, in the order it looks for them in a folder, and the section
# that makes one a configuration (pytest.ini is one whatever it holds).
_CONFIG_FILES = {
    "pytest.ini": "",
    ".pytest.ini": "",
    "pyproject.toml": "[tool.pytest",
    "tox.ini": "[pytest]",
    "setup.cfg": "[tool:pytest]",
}


def missed_configuration(config: pytest.Config) -> str | None:
    """Why this run lacks the project's pytest configuration, if `--selector-plan` did it.

    pytest picks its rootdir and configuration file before it loads plugins, so in
    `--selector-plan PATH` (space form) it takes PATH for a test path: a PATH outside the
    folder pytest starts in moves the search for the configuration above the project,
    which then runs without its own (`pythonpath`, `python_files`, `addopts`, ...).
    """
    arguments = list(config.invocation_params.args)
    if "--selector-plan" not in arguments[:-1]:
        return None
    value = arguments[arguments.index("--selector-plan") + 1]
    start = config.invocation_params.dir.resolve()
    if (start / value).resolve().parent.is_relative_to(start):
        return None
    used = None if config.inipath is None else config.inipath.resolve()
    for folder in (start, *start.parents):
        for name, section in _CONFIG_FILES.items():
            candidate = folder / name
            if candidate.is_file() and section in candidate.read_text(errors="replace"):
                if candidate == used:
                    return None
                return (
                    f"pytest took {value} for a test path (it reads selector's options after "
                    f"its configuration) and so did not read {candidate}: write "
                    f"--selector-plan={value}"
                )
    return None


class PlannedRun:
    """pytest plugin object: deselects what is not this shard's.

    `root` is the repository the plan was made in, resolved; `nodeids` holds the
    repository-relative node ID of every collected item, by `id(item)`, and `real_paths`
    the real path of every test file.
    """

    def __init__(self, plan: dict[str, Any], shard: str | None, root: Path) -> None:
        shards = plan.get("shards") or []
        self.planned_shards = max(len(shards), 1)
        self.index, self.count = parse_shard(shard or "1", self.planned_shards)
        self.run_all: bool = plan["run_all"]
        self.selected = set(plan["selected"])
        self.assignment = {unit: entry["index"] for entry in shards for unit in entry["units"]}
        self.root = root
        self.nodeids: dict[int, str] = {}
        self.real_paths: dict[Path, Path] = {}
        self.error: str | None = None  # this is not the run the plan was made for
        self.missing: list[str] = []  # selected items that match no collected test
        self.message = ""

    def nodeid(self, item: pytest.Item) -> str:
        """The repository-relative node ID of a collected item."""
        found = self.nodeids.get(id(item))
        if found is None:
            found = self.nodeids[id(item)] = repository_nodeid(item, self.root, self.real_paths)
        return found

    def runs(self, nodeid: str) -> bool:
        """Whether this shard runs the test (by its repository-relative node ID)."""
        return self.is_selected(nodeid) and self.is_this_shards(nodeid)

    def is_selected(self, nodeid: str) -> bool:
        """Whether the plan runs the test, in any shard."""
        return self.run_all or any(item in self.selected for item in prefixes(nodeid))

    def is_this_shards(self, nodeid: str) -> bool:
        return shard_of(nodeid, self.assignment, self.planned_shards) == self.index

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        self.nodeid(item)

    def check_collected(self) -> str | None:
        """Whether this is the run the plan was made for, judged on every test collected
        (before `-k`/`-m` narrowed them): what is wrong if not."""
        if self.run_all or not self.selected:
            return None
        selected = [nodeid for nodeid in self.nodeids.values() if self.is_selected(nodeid)]
        if not selected:
            return (
                f"none of the {len(self.selected)} items the plan selects "
                f"({min(self.selected)}, ...) was collected under {self.root}: run pytest in "
                "the checkout the plan was made for, on every test path it selects"
            )
        units = [unit for unit, index in self.assignment.items() if index == self.index]
        if units and not any(self.is_this_shards(nodeid) for nodeid in selected):
            return (
                f"shard {self.index}/{self.count}: none of its {len(units)} planned tests "
                f"({min(units)}, ...) was collected under {self.root}"
            )
        return None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        self.error = self.check_collected()
        self.missing = self.not_collected()
        if hasattr(config, "workeroutput"):  # an xdist worker: its controller reports
            config.workeroutput["selector_error"] = self.error
            config.workeroutput["selector_missing"] = self.missing
        kept = [item for item in items if self.error is None and self.runs(self.nodeid(item))]
        if len(kept) < len(items):
            kept_ids = {id(item) for item in kept}
            config.hook.pytest_deselected(items=[i for i in items if id(i) not in kept_ids])
            items[:] = kept
        what = "every test" if self.run_all else f"{len(self.selected)} selected items"
        self.message = (
            f"shard {self.index}/{self.count} of a plan that runs {what}: {len(kept)} here"
        )

    def not_collected(self) -> list[str]:
        """Selected items that cover no collected test (a test a change elsewhere removed)."""
        found = {prefix for nodeid in self.nodeids.values() for prefix in prefixes(nodeid)}
        return sorted(self.selected - found)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """pytest-xdist's controller collects nothing: a worker tells it what it found."""
        output = getattr(node, "workeroutput", {})
        self.error = self.error or output.get("selector_error")
        self.missing = self.missing or output.get("selector_missing", [])

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.error is not None:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
            self.message = self.error
        elif exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK
            self.message = f"shard {self.index}/{self.count}: nothing to run in this shard"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.missing and self.error is None:
            shown = ", ".join(self.missing[:3]) + (", ..." if len(self.missing) > 3 else "")
            terminalreporter.write_line(f"selector: selected, but not collected: {shown}")
        if self.message:
            terminalreporter.write_line(f"selector: {self.message}")


class StaleInstallCheck:
    """pytest plugin object: warns when the tests import stale installed copies of the repo.

    A planned run tests the working tree's code; a package installed non-editable before
    the change (`pip install .`) makes the tests run the old code instead, and pass or fail
    for it. The check runs in the terminal summary: the tests' imports are all done, and a
    recording run has stopped recording, so the files the check reads are not the tests'.
    """

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        for install in stale_imports(config):
            terminalreporter.write_line(
                f"selector: WARNING: the tests imported {install.distribution} from "
                f"{install.location}, an installed copy that differs from the working tree "
                f"({', '.join(install.sources)}): they tested the old code; reinstall it "
                "(`pip install .`) or install it editable (`pip install -e .`)",
                yellow=True,
                bold=True,
            )


def stale_imports(config: pytest.Config) -> list[OutsideInstall]:
    """The repository's distributions imported from copies that differ from the working tree."""
    from selector import gitdiff

    # A plan file outside the repository can move pytest's rootdir out of it.
    repo = gitdiff.open_repo(config.rootpath) or gitdiff.open_repo(config.invocation_params.dir)
    if repo is None:
        return []
    stale = find_copies(gitdiff.repo_root(repo), gitdiff.working_tree_files(repo)).stale
    files = [getattr(module, "__file__", None) for module in list(sys.modules.values())]
    imported = {os.path.realpath(file) for file in files if isinstance(file, str)}
    return sorted({stale[path] for path in imported.intersection(stale)})
