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
    import git

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
    config: pytest.Config, variant: str | None, fragments: Path | None
) -> tuple[Path, "RunInfo"]:
    from selector import gitdiff
    from selector.config import ConfigError, load_config, resolve_variant
    from selector.record import RunInfo
    from selector.store import StoreError

    repo = _open_repository(config)
    if repo is None:
        root, commit, dirty = config.rootpath, None, False
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


def _check_fragment_dir(root: Path, fragment_dir: Path) -> None:
    """Stop before the first test if the fragment cannot be written at the end.

    Otherwise the whole suite runs, and its recording is lost (`.selector` a file, a
    read-only folder).
    """
    from selector.store import StoreError, check_writable, ignore_workdir

    try:
        if fragment_dir.parent.is_relative_to(root):
            ignore_workdir(fragment_dir.parent)
        check_writable(fragment_dir)
    except StoreError as error:
        raise pytest.UsageError(f"selector: {error}") from None


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

        root, run = _run_info(early_config, options.selector_variant, options.selector_fragments)
        _check_fragment_dir(root, run.fragment_dir)
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
        from selector.planned import (
            PlannedRun,
            StaleInstallCheck,
            load_plan,
            missed_configuration,
        )

        plan = load_plan(plan_path)
        missed = missed_configuration(config)
        if missed is not None:
            raise pytest.UsageError(f"selector: {missed}")
        root = _repository_root(config)
        planned = PlannedRun(plan, config.getoption("selector_shard"), root)
        config.pluginmanager.register(planned, "selector-planned-run")
        config.pluginmanager.register(StaleInstallCheck(), "selector-stale-install-check")
    elif config.getoption("selector_shard") is not None:
        raise pytest.UsageError("selector: --selector-shard needs --selector-plan")


def _open_repository(config: pytest.Config) -> "git.Repo | None":
    """The repository pytest runs in: the one of the directory pytest was started in, else
    of its rootdir (an option value like `--selector-plan ../plan.json`, read after pytest
    chose its rootdir, can move the rootdir above the repository)."""
    from selector import gitdiff

    for start in (config.invocation_params.dir, config.rootpath):
        repo = gitdiff.open_repo(start)
        if repo is not None and repo.working_tree_dir is not None:
            return repo
    return None


def _repository_root(config: pytest.Config) -> Path:
    """The root a plan's items are relative to; outside any repository, the rootdir."""
    from selector import gitdiff

    repo = _open_repository(config)
    return config.rootpath.resolve() if repo is None else gitdiff.repo_root(repo)
