"""The plan: find the map nearest to the base, diff its commit to HEAD, select, explain.

A plan is the JSON document every later step reads (the pytest plugin, the GitHub
Action, `selector why`). Whenever the tool cannot decide, the plan says `run_all` and
lists the reasons; it never silently runs nothing.
"""

import difflib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git

from selector import gitdiff
from selector.config import Config
from selector.mapdb import MapError, MapIndex, TestResult
from selector.nodeids import by_item, counted, covered
from selector.planned import PLAN_VERSION
from selector.select import Selection, Selector
from selector.shard import Grouping, make_shards
from selector.store import MapStore, StoreError, readable_map_file
from selector.testfiles import pytest_files

ANCESTORS_SEARCHED = gitdiff.SHALLOW_FETCH_DEPTH


@dataclass(frozen=True)
class PlanRequest:
    """What `selector plan` was asked."""

    base: str
    variant: str
    working_tree: bool
    store: MapStore
    map_file: Path | None = None
    shards: int = 1
    grouping: Grouping = "none"


class GitSources:
    """File contents on both sides of the change, read through git (and the work tree).

    The new side is the working tree, or the commit `head` (default: HEAD).
    """

    def __init__(
        self,
        repo: git.Repo,
        root: Path,
        map_commit: str,
        working_tree: bool,
        head: str | None = None,
    ) -> None:
        self._repo = repo
        self._root = root
        self._map_commit = map_commit
        self._working_tree = working_tree
        self._head = head or gitdiff.head_commit(repo)
        self._rule = pytest_files(root)

    def old(self, path: str) -> bytes | None:
        return gitdiff.file_at(self._repo, self._map_commit, path)

    def new(self, path: str) -> bytes | None:
        if self._working_tree:
            try:
                return (self._root / path).read_bytes()
            except OSError:
                return None
        return None if self._head is None else gitdiff.file_at(self._repo, self._head, path)

    def files_mentioning(self, words: Iterable[str]) -> set[str]:
        where = None if self._working_tree else self._head
        return gitdiff.files_mentioning(self._repo, words, where)

    def old_python_mentioning(self, words: Iterable[str]) -> dict[str, set[str]]:
        return gitdiff.python_files_mentioning(self._repo, words, self._map_commit)

    def old_python_mentioning_all(self, words: Iterable[str]) -> set[str]:
        return gitdiff.python_files_mentioning_all(self._repo, words, self._map_commit)

    def old_python_reading_attribute(self, name: str) -> set[str]:
        return gitdiff.python_files_reading_attribute(self._repo, name, self._map_commit)

    def old_blobs(self) -> dict[str, str]:
        return gitdiff.tree_blobs(self._repo, self._map_commit)

    def test_files(self) -> list[str]:
        if self._working_tree or self._head is None:
            files = gitdiff.working_tree_files(self._repo)
        else:
            files = sorted(gitdiff.tree_blobs(self._repo, self._head))
        return [path for path in files if self._rule(path)]


def nearest_stored_maps(
    repo: git.Repo, store: MapStore, variant: str, start: str, skipped: list[str]
) -> Iterator[tuple[str, Path]]:
    """(commit, fetched file) of the stored maps on `start`'s first-parent line, nearest first.

    The caller takes the first it can use. A stored map that cannot be fetched (corrupt,
    unreadable) is reported in `skipped` and the next older one follows: an older map is as
    safe, only its change is longer.
    """
    stored = store.commits(variant)
    for candidate in gitdiff.first_parent_ancestors(repo, start, ANCESTORS_SEARCHED):
        if candidate not in stored:
            continue
        try:
            yield candidate, store.fetch(candidate, variant)
        except StoreError as error:
            skipped.append(f"skipped the stored map of {candidate[:12]}: {error}")


class _RunAll(Exception):
    """Planning stops: everything runs, for this reason.

    `map_tests`: the tests of a map that was read before planning stopped (the summary
    says how many tests run), 0 if none was.
    """

    def __init__(self, reason: str, map_tests: int = 0) -> None:
        super().__init__(reason)
        self.map_tests = map_tests


def make_plan(repo: git.Repo, request: PlanRequest, config: Config) -> dict[str, Any]:
    """The plan for HEAD (and the working tree if asked) against `request.base`."""
    head = gitdiff.head_commit(repo)
    plan: dict[str, Any] = {
        "version": PLAN_VERSION,
        "base": request.base,
        "base_commit": None,
        "head": head,
        "map_commit": None,
        "variant": request.variant,
        "working_tree": request.working_tree,
        "notes": [],
    }
    index = None
    try:
        if head is None:
            raise _RunAll("the repository has no commits")
        base_commit = _resolve(repo, request.base)
        plan["base_commit"] = base_commit
        index = _open_map(repo, request, base_commit, head, plan["notes"])
        plan["map_commit"] = index.meta.commit
        selection = _select(repo, index, request, config)
    except _RunAll as stop:
        stopped = Selection(run_all_reasons=[str(stop)], map_tests=stop.map_tests)
        return _fill(plan, stopped, None, request)
    try:
        return _fill(plan, selection, index, request)
    finally:
        index.close()


def _resolve(repo: git.Repo, base: str) -> str:
    try:
        return gitdiff.resolve_commit(repo, base)
    except gitdiff.GitError as error:
        raise _RunAll(str(error)) from None


def _open_map(
    repo: git.Repo, request: PlanRequest, base_commit: str, head: str, notes: list[str]
) -> MapIndex:
    """The map of the nearest first-parent ancestor of the merge base (or `--map`).

    A stored map that cannot be used (corrupt, another schema) is skipped with a note and
    the next older one is used; only when none is usable does everything run.
    """
    if request.map_file is not None:
        try:
            index = MapIndex(readable_map_file(request.map_file), name=str(request.map_file))
        except (MapError, StoreError) as error:
            raise _RunAll(f"unusable map: {error}") from None
        return _checked(repo, index, request.variant)
    start = gitdiff.merge_base(repo, base_commit, head) or base_commit
    skipped: list[str] = []
    try:
        for commit, path in nearest_stored_maps(
            repo, request.store, request.variant, start, skipped
        ):
            try:
                index = MapIndex(path, verified=True, name=request.store.fetched.get(path))
            except MapError as error:
                skipped.append(f"skipped the stored map of {commit[:12]}: {error}")
                continue
            notes.extend(skipped)
            return _checked(repo, index, request.variant)
    except StoreError as error:
        raise _RunAll(f"no usable map: {error}") from None
    if skipped:
        raise _RunAll(f"unusable map: {'; '.join(skipped)}")
    raise _RunAll(
        f"no {request.variant} map in {request.store.location} for {start[:12]} or its "
        f"first-parent ancestors (up to {ANCESTORS_SEARCHED}): record one on the base branch "
        "(pytest --selector-record; selector upload-map)"
    )


def _checked(repo: git.Repo, index: MapIndex, variant: str) -> MapIndex:
    """The map, if a plan can diff from it; else everything runs, and why."""
    problem = _map_problem(repo, index, variant)
    if problem:
        index.close()
        raise _RunAll(problem, len(index.tests))
    return index


def _map_problem(repo: git.Repo, index: MapIndex, variant: str) -> str | None:
    commit = index.meta.commit
    if index.meta.variant != variant:
        return f"the map is for variant {index.meta.variant}, this plan for {variant}"
    if commit is None:
        return "the map was recorded outside a git repository (no commit to diff from)"
    if not gitdiff.has_commit(repo, commit):
        fetch = gitdiff.fetch_commit_command(repo, commit)
        how = f"`{fetch}`, or " if fetch else "from the repository that has it, or "
        return (
            f"the map's commit {commit[:12]} is not in this clone: fetch it "
            f"({how}actions/checkout with fetch-depth: 0)"
        )
    return None


def _select(repo: git.Repo, index: MapIndex, request: PlanRequest, config: Config) -> Selection:
    commit = index.meta.commit
    assert commit is not None
    root = gitdiff.repo_root(repo)
    try:
        changes = gitdiff.diff(repo, commit, working_tree=request.working_tree)
        sources = GitSources(repo, root, commit, request.working_tree)
        return Selector(index, config, sources, pytest_files(root)).select(changes)
    except gitdiff.GitError as error:
        raise _RunAll(str(error), len(index.tests)) from None
    except sqlite3.DatabaseError as error:
        raise _RunAll(f"unusable map: {index.name} cannot be read ({error})") from None


def _fill(
    plan: dict[str, Any], selection: Selection, index: MapIndex | None, request: PlanRequest
) -> dict[str, Any]:
    """Complete the plan document from a selection: items, estimates, shards."""
    tests = index.tests if index is not None else {}
    total_time = sum(test.duration for test in tests.values())
    plan["run_all"] = selection.run_all
    plan["reasons"] = list(selection.run_all_reasons)
    plan["changed_files"] = selection.changed_files
    plan["total_count"] = len(tests) if index is not None else selection.map_tests
    plan["uncovered_changes"] = list(selection.uncovered)
    plan["removed"] = sorted(selection.removed)
    plan["max_fraction_selection"] = None
    # Recorded tests shard one by one (a long parametrised test can spread over shards);
    # an item with no recorded test (a new test or file) is one unit of median length.
    units: dict[str, float | None] = {}
    if selection.run_all:
        plan["selected"] = []
        plan["tests"] = {}
        plan["selected_count"] = len(tests)
        units.update((nodeid, test.duration) for nodeid, test in tests.items())
        if selection.over_fraction:
            entries, count = _entries(selection, tests, {})
            plan["max_fraction_selection"] = {
                "selected": list(entries),
                "tests": entries,
                "selected_count": count,
            }
    else:
        entries, count = _entries(selection, tests, units)
        plan["selected"] = list(entries)
        plan["tests"] = entries
        plan["selected_count"] = count
    shards = make_shards(units, request.shards, request.grouping)
    plan["estimated_duration"] = round(sum(shard.duration for shard in shards), 3)
    plan["estimated_saved"] = round(max(total_time - plan["estimated_duration"], 0.0), 3)
    plan["grouping"] = request.grouping
    plan["shards"] = [
        {"index": shard.index, "duration": shard.duration, "units": list(shard.units)}
        for shard in shards
    ]
    return plan


def _entries(
    selection: Selection, tests: dict[str, TestResult], units: dict[str, float | None]
) -> tuple[dict[str, dict[str, Any]], int]:
    """The plan's `tests` entries of the selected items, and the recorded tests they run.

    Adds the shard units to `units`: each recorded test with its duration, and each item
    without one as a unit of unknown length.
    """
    entries = {}
    recorded_by_item = by_item(selection.items, tests)
    for item in sorted(selection.items):
        recorded = recorded_by_item[item]
        units.update((nodeid, tests[nodeid].duration) for nodeid in recorded)
        if not recorded:
            units[item] = None
        entries[item] = {"reasons": selection.items[item], "recorded_tests": len(recorded)}
    return entries, sum(len(found) for found in recorded_by_item.values())


def write_plan(plan: dict[str, Any], destination: Path) -> None:
    """Write the plan as JSON (atomically: a reader never sees half of it)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.tmp")
    temporary.write_text(json.dumps(plan, indent=2) + "\n")
    temporary.replace(destination)


def summary(plan: dict[str, Any]) -> list[str]:
    """What a person wants to know about a plan, in a few lines."""
    total = plan["total_count"]
    lines = list(plan["notes"])
    if plan["run_all"]:
        recorded = f" ({total} recorded)" if total else ""
        lines.append(f"running all tests{recorded}, because:")
        lines += [f"  - {reason}" for reason in plan["reasons"]]
        capped = plan.get("max_fraction_selection")
        if capped:
            lines.append(
                f"  (the selection, {counted(capped['selected_count'], 'test')} in "
                f"{counted(len(capped['selected']), 'item')}, is in the plan under "
                "max_fraction_selection)"
            )
        return lines
    selected = plan["selected_count"]
    share = f" ({selected / total:.0%})" if total else ""
    saved = plan.get("estimated_saved", 0.0)
    lines.append(
        f"{selected} of {total} recorded tests selected{share}, in "
        f"{counted(len(plan['selected']), 'item')}; about {_duration(saved)} of recorded "
        "test time saved"
    )
    for reason, count in reason_groups(plan["tests"])[:5]:
        lines.append(f"  {count:>5} {'test' if count == 1 else 'tests'}: {reason}")
    if len(plan["shards"]) > 1:
        spread = ", ".join(_duration(shard["duration"]) for shard in plan["shards"])
        lines.append(f"{len(plan['shards'])} shards, estimated: {spread}")
    if plan["uncovered_changes"]:
        lines.append("changed code no recorded test runs:")
        lines += [f"  - {change}" for change in plan["uncovered_changes"][:10]]
    return lines


def reason_groups(entries: dict[str, Any]) -> list[tuple[str, int]]:
    """Why the selected items run, one line per set of reasons, with the recorded tests it
    selects, most first.

    Items that share their reasons share a line, so each selected test is counted once: a
    test with 500 parameters that 500 changed modules select is one line of 500 tests, not
    a line of 500 tests for every module.
    """
    groups: dict[tuple[str, ...], int] = {}
    for entry in entries.values():
        key = tuple(entry["reasons"])
        groups[key] = groups.get(key, 0) + max(entry["recorded_tests"], 1)
    lines = [
        (key[0] + (" (and other reasons)" if len(key) > 1 else ""), count)
        for key, count in groups.items()
        if key
    ]
    return sorted(lines, key=lambda pair: (-pair[1], pair[0]))


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{seconds:.1f}s"


def explain(plan: dict[str, Any], nodeid: str, known: set[str] | None = None) -> list[str]:
    """Why `nodeid` is, or is not, in the plan.

    `known`: the node IDs of the plan's map, if it can be read; a node ID the plan does
    not select and the map does not know is most likely misspelt, so the nearest known
    ones are shown.
    """
    if nodeid in plan["removed"]:
        return [f"{nodeid} is not run: it was recorded, but its definition is gone"]
    covering = [item for item in plan["selected"] if covered([item], [nodeid])]
    if covering:
        lines = [f"{nodeid} is selected:"]
        for item in covering:
            lines += [f"  - {reason}" for reason in plan["tests"][item]["reasons"]]
        return lines
    if known is not None and not covered([nodeid], known):
        return _unknown(plan, nodeid, known)
    if plan["run_all"]:
        lines = [f"{nodeid} runs: the plan runs every test, because:"]
        lines += [f"  - {reason}" for reason in plan["reasons"]]
        capped = plan.get("max_fraction_selection") or {"selected": [], "tests": {}}
        for item in [item for item in capped["selected"] if covered([item], [nodeid])]:
            lines.append("without max_fraction it would be selected:")
            lines += [f"  - {reason}" for reason in capped["tests"][item]["reasons"]]
        return lines
    changed = ", ".join(plan["changed_files"][:8]) or "none"
    return [
        f"{nodeid} is not selected: no change touches code, fixtures or files it depends on "
        f"(changed files: {changed})"
    ]


def _unknown(plan: dict[str, Any], nodeid: str, known: set[str]) -> list[str]:
    """A node ID that neither the plan nor its map knows, and the nearest known ones."""
    commit = (plan.get("map_commit") or "")[:12]
    runs = "; the plan runs every test, so it runs if pytest collects it" if plan["run_all"] else ""
    lines = [f"{nodeid} is unknown: the map of {commit} has no such test{runs}"]
    nearest = difflib.get_close_matches(nodeid, sorted(known), n=5, cutoff=0.5)
    if nearest:
        lines.append("the nearest known tests:")
        lines += [f"  {name}" for name in nearest]
    return lines
