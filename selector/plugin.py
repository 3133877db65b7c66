"""pytest options of selector and the start of recording.

Recording starts in `pytest_load_initial_conftests`, before the first conftest.py is
imported: what a root conftest imports at start-up is part of every test's footprint.
This module is imported by every pytest run in an environment where selector is
installed, so it imports the recorder (and GitPython) only when recording is asked for.
"""

import os
import sys
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
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
        "--selector-variant",
        default=None,
        help="variant key of the recorded map (default: $SELECTOR_VARIANT or pyX.Y)",
    )


def default_variant() -> str:
    """Maps are only comparable between runs of the same Python minor version."""
    return os.environ.get("SELECTOR_VARIANT") or f"py{sys.version_info[0]}.{sys.version_info[1]}"


def _run_info(rootpath: Path, variant: str | None) -> tuple[Path, "RunInfo"]:
    from selector import gitdiff
    from selector.record import RunInfo

    repo = gitdiff.open_repo(rootpath)
    if repo is None:
        root, commit, dirty = rootpath, None, False
    else:
        root, commit = gitdiff.repo_root(repo), gitdiff.head_commit(repo)
        dirty = commit is not None and gitdiff.is_dirty(repo)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return root, RunInfo(
        commit=commit,
        dirty=dirty,
        variant=variant or default_variant(),
        fragment_dir=root / FRAGMENT_DIR,
        worker=worker,
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None]:
    options = early_config.known_args_namespace
    if options.selector_record:
        from selector.collectors import CollectorError, TrackedFiles, make_collector
        from selector.record import Recorder

        root, run = _run_info(early_config.rootpath, options.selector_variant)
        tracked = TrackedFiles(root)
        try:
            collector = make_collector(options.selector_collector, tracked)
        except CollectorError as error:
            raise pytest.UsageError(f"selector: {error}") from None
        recorder = Recorder(tracked, collector, run)
        early_config.pluginmanager.register(recorder, "selector-recorder")
        recorder.start()
    return (yield)
