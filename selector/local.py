"""The local loop: `selector run` tests what the uncommitted work can affect, testmon-style.

Each run plans the working tree against the *local map*, runs the selected tests with
pytest (recording them), and folds that run into the local map, so the next run selects
only what changed since this one.

The local map is `.selector/local/<variant>.sqlite`. A map describes one commit, but the
state a local run saw is usually not committed, so its commit is a *snapshot*: a commit of
the working tree taken just before planning (`gitdiff.snapshot`), on top of HEAD, held in
the object database only. Every existing rule then applies unchanged: the next plan diffs
the snapshot against the working tree, tree to tree, and carrying the unaffected tests
forward goes from one snapshot to the next. Files edited while the tests ran differ from
the snapshot; the map is then marked dirty and those files count as changed next time.

Without a usable local map the first run starts from the store's map of HEAD's nearest
first-parent ancestor (what CI uploaded), and without that it runs everything and records
the map. A snapshot that `git gc` has pruned (unreachable commits older than two weeks)
makes the local map unusable: the run says so and starts over from the store.
"""

import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import git

from selector import codeindex, gitdiff
from selector.carry import CarryError, carry_forward
from selector.config import Config
from selector.mapdb import MapData, MapError, MapIndex, merge, read_map, write_map
from selector.plan import PlanRequest, make_plan, nearest_stored_maps, write_plan
from selector.store import MapStore, ignore_workdir
from selector.upload import merged_meta

LOCAL_DIR = Path(".selector") / "local"


class LocalRunError(Exception):
    """The local map cannot be brought up to date (one-line message)."""


@dataclass(frozen=True)
class LocalRequest:
    """What `selector run` was asked."""

    variant: str
    store: MapStore
    pytest_args: tuple[str, ...] = ()


@dataclass
class LocalPlan:
    """The plan of one local run and what it was made from."""

    plan: dict[str, Any]
    snapshot: str
    base_map: Path | None  # the map the plan read: the local one, or None (from the store)
    notes: list[str] = field(default_factory=list)


def local_map_path(root: Path, variant: str) -> Path:
    """Where the local map of a variant lives."""
    return root / LOCAL_DIR / f"{variant}.sqlite"


def plan_working_tree(
    repo: git.Repo, request: LocalRequest, config: Config, root: Path
) -> LocalPlan:
    """Snapshot the working tree, then plan it against the local map (or the store's)."""
    snapshot = gitdiff.snapshot(repo)
    notes: list[str] = []
    base_map = _usable_local_map(repo, local_map_path(root, request.variant), request, notes)
    if base_map is None:
        head = gitdiff.head_commit(repo)
        assert head is not None  # a snapshot needs a HEAD commit
        found = next(nearest_stored_maps(repo, request.store, request.variant, head, notes), None)
        base_map = None if found is None else found[1]
    plan_request = PlanRequest(
        base="HEAD",
        variant=request.variant,
        working_tree=True,
        store=request.store,
        map_file=base_map,
    )
    return LocalPlan(make_plan(repo, plan_request, config), snapshot, base_map, notes)


def _usable_local_map(
    repo: git.Repo, path: Path, request: LocalRequest, notes: list[str]
) -> Path | None:
    """The local map if a plan can use it; else None, and a note saying why if it exists."""
    if not path.exists():
        return None
    try:
        index = MapIndex(path)
    except MapError as error:
        notes.append(f"the local map is unusable, starting from the store's: {error}")
        return None
    try:
        commit, variant = index.meta.commit, index.meta.variant
    finally:
        index.close()
    if variant != request.variant:
        notes.append(f"the local map is of variant {variant}, starting from the store's")
    elif commit is None or not gitdiff.has_commit(repo, commit):
        notes.append("the local map's snapshot was pruned by git gc, starting from the store's")
    else:
        return path
    return None


def pytest_command(plan_file: Path, fragments: Path, request: LocalRequest) -> list[str]:
    """The pytest run of a local plan: only what it selects, recorded into `fragments`."""
    return [
        sys.executable,
        "-m",
        "pytest",
        "--selector-record",
        f"--selector-plan={plan_file}",
        f"--selector-fragments={fragments}",
        f"--selector-variant={request.variant}",
        *request.pytest_args,
    ]


def run_pytest(planned: LocalPlan, request: LocalRequest, root: Path) -> tuple[int, list[MapData]]:
    """Run the plan with pytest in `root`; its exit status and the fragments it recorded."""
    workdir = root / LOCAL_DIR
    ignore_workdir(workdir)
    plan_file = workdir / "plan.json"
    write_plan(planned.plan, plan_file)
    with tempfile.TemporaryDirectory(prefix="fragments-", dir=workdir) as scratch:
        with subprocess.Popen(pytest_command(plan_file, Path(scratch), request), cwd=root) as child:
            try:
                status = child.wait()
            except KeyboardInterrupt:  # pytest got the Ctrl-C too, and ends in its own way
                status = child.wait()
        fragments = [read_map(path) for path in sorted(Path(scratch).glob("*.sqlite"))]
    return status, fragments


def update_local_map(
    repo: git.Repo,
    planned: LocalPlan,
    fragments: list[MapData],
    config: Config,
    destination: Path,
) -> MapData:
    """Fold a run's fragments into the local map of the snapshot the run was planned from.

    Tests the run did not re-run are carried forward from the map the plan read, unless
    the change can affect them: those stay collected but unrecorded, so every later run
    selects them until one runs them. A test file the run did not collect at all (pytest
    was given other paths) keeps its tests, if it still exists: not collecting it says
    nothing about them.
    """
    snapshot_files = gitdiff.tree_blobs(repo, planned.snapshot)
    fresh = merge(fragments, merged_meta(planned.snapshot, planned.plan["variant"], fragments))
    fresh.meta = replace(fresh.meta, dirty=_edited(snapshot_files, fresh))
    if planned.base_map is not None:
        base = read_map(planned.base_map)
        collected_files = {nodeid.partition("::")[0] for nodeid in fresh.collected}
        removed = set(planned.plan["removed"])
        for nodeid in (base.collected | base.tests.keys()) - removed:
            path = nodeid.partition("::")[0]
            if path not in collected_files and path in snapshot_files:
                fresh.collected.add(nodeid)
        if not fresh.collected.issubset(fresh.tests):
            try:
                fresh, _report = carry_forward(repo, planned.base_map, base, fresh, config)
            except CarryError as error:
                raise LocalRunError(str(error)) from None
    codeindex.complete(repo, planned.snapshot, fresh)
    write_map(destination, fresh)
    return fresh


def _edited(snapshot_files: dict[str, str], data: MapData) -> bool:
    """Whether a recorded file's content is not the snapshot's (edited while tests ran)."""
    return any(
        path in snapshot_files and snapshot_files[path] != blob for path, blob in data.files.items()
    )
