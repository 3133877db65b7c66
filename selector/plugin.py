"""pytest options of selector and the start of recording.

Recording starts in `pytest_load_initial_conftests`, before the first conftest.py is
imported: what a root conftest imports at start-up is part of every test's footprint.
This module is imported by every pytest run in an environment where selector is
installed, so it imports the recorder (and GitPython) only when recording is asked for.
"""

import os
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from selector.collectors import TrackedFiles
    from selector.record import RunInfo

FRAGMENT_DIR = Path(".selector") / "fragments"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("selector", "selector: record per-test coverage, run planned tests")
    group.addoption(
        "--selector-record",
        action="store_true",
        help="record the lines every test executes into a map fragment under .selector/",
    )
    group.addoption(
        "--selector-collector",
        choices=("auto", "monitoring", "coverage"),
        default="auto",
        help="line collector: sys.monitoring (3.12+) or coverage.py's tracer (default: auto)",
    )
    group.addoption(
        "--selector-plan",
        type=Path,
        default=None,
        metavar="PLAN",
        help="run only what this plan (from `selector plan --output`) selects",
    )
    group.addoption(
        "--selector-shard",
        default=None,
        metavar="K/N",
        help="with --selector-plan: run shard K of N (or K, with N from the plan)",
    )
    group.addoption(
        "--selector-fragments",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the recorded fragment into DIR (default: .selector/fragments)",
    )
    group.addoption(
        "--selector-variant",
        default=None,
        help="variant key of the recorded map (default: $SELECTOR_VARIANT, the configuration, "
        "or pyX.Y)",
    )


def _run_info(
    rootpath: Path, variant: str | None, fragments: Path | None
) -> tuple[Path, "RunInfo"]:
    from selector import gitdiff
    from selector.config import ConfigError, load_config, resolve_variant
    from selector.record import RunInfo
    from selector.store import StoreError

    repo = gitdiff.open_repo(rootpath)
    if repo is None:
        root, commit, dirty = rootpath, None, False
    else:
        root, commit = gitdiff.repo_root(repo), gitdiff.head_commit(repo)
        dirty = commit is not None and gitdiff.is_dirty(repo)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    try:
        variant = resolve_variant(variant, load_config(root))
    except (ConfigError, StoreError) as error:
        raise pytest.UsageError(f"selector: {error}") from None
    return root, RunInfo(
        commit=commit,
        dirty=dirty,
        variant=variant,
        fragment_dir=fragments.resolve() if fragments else root / FRAGMENT_DIR,
        worker=worker,
    )


def _tracked_files(root: Path) -> "TrackedFiles":
    """What is recorded: the repository's files, and installed copies of them."""
    from selector import gitdiff
    from selector.collectors import TrackedFiles
    from selector.installed import find_copies

    repo = gitdiff.open_repo(root)
    if repo is None:
        return TrackedFiles(root)
    return TrackedFiles(root, find_copies(root, gitdiff.working_tree_files(repo)))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None]:
    options = early_config.known_args_namespace
    if options.selector_record:
        from selector.collectors import CollectorError, make_collector
        from selector.record import Recorder

        root, run = _run_info(
            early_config.rootpath, options.selector_variant, options.selector_fragments
        )
        tracked = _tracked_files(root)
        try:
            collector = make_collector(options.selector_collector, tracked)
        except CollectorError as error:
            raise pytest.UsageError(f"selector: {error}") from None
        recorder = Recorder(tracked, collector, run)
        early_config.pluginmanager.register(recorder, "selector-recorder")
        recorder.start()
        try:
            return (yield)
        except BaseException:
            recorder.discard()
            raise
    return (yield)


def pytest_configure(config: pytest.Config) -> None:
    plan_path = config.getoption("selector_plan")
    if plan_path is not None:
        from selector.planned import PlannedRun, StaleInstallCheck, load_plan

        planned = PlannedRun(load_plan(plan_path), config.getoption("selector_shard"))
        config.pluginmanager.register(planned, "selector-planned-run")
        config.pluginmanager.register(StaleInstallCheck(), "selector-stale-install-check")
    elif config.getoption("selector_shard") is not None:
        raise pytest.UsageError("selector: --selector-shard needs --selector-plan")
