"""The pytest side of a plan: run exactly this shard's share of the selected tests.

Everything else is deselected through `pytest_deselected`, so pytest reports it as
deselected, and `-k`/`-m` given by the user narrow the selection further. A shard with
nothing to run is a success with a one-line message, not pytest's "no tests" exit 5.
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from selector.installed import OutsideInstall, find_copies
from selector.nodeids import prefixes
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
    return plan


class PlannedRun:
    """pytest plugin object: deselects what is not this shard's."""

    def __init__(self, plan: dict[str, Any], shard: str | None) -> None:
        shards = plan.get("shards") or []
        self.planned_shards = max(len(shards), 1)
        self.index, self.count = parse_shard(shard or "1", self.planned_shards)
        self.run_all: bool = plan["run_all"]
        self.selected = set(plan["selected"])
        self.assignment = {unit: entry["index"] for entry in shards for unit in entry["units"]}
        self.message = ""

    def runs(self, nodeid: str) -> bool:
        """Whether this shard runs the test."""
        if not self.run_all and not any(item in self.selected for item in prefixes(nodeid)):
            return False
        return shard_of(nodeid, self.assignment, self.planned_shards) == self.index

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        kept = [item for item in items if self.runs(item.nodeid)]
        if len(kept) < len(items):
            kept_ids = {id(item) for item in kept}
            config.hook.pytest_deselected(items=[i for i in items if id(i) not in kept_ids])
            items[:] = kept
        what = "every test" if self.run_all else f"{len(self.selected)} selected items"
        self.message = (
            f"shard {self.index}/{self.count} of a plan that runs {what}: {len(kept)} here"
        )

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK
            self.message = f"shard {self.index}/{self.count}: nothing to run in this shard"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
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
