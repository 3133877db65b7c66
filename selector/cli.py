"""The `selector` command: argument parsing and output only."""

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selector import __version__
from selector.nodeids import counted

if TYPE_CHECKING:
    from selector.carry import CarryReport
    from selector.store import MapStore

EPILOG_UPLOAD = """examples:
  pytest --selector-record && selector upload-map
  pytest --selector-plan plan.json --selector-record && selector upload-map --store s3://ci-maps/app
"""
EPILOG_MAPS = """examples:
  selector maps list --store s3://ci-maps/app
  selector maps prune --keep 50 --older-than 30d
"""
STORE_HELP = "a folder or s3://bucket/prefix (default: $SELECTOR_STORE, config, .selector/maps)"
VARIANT_HELP = "map variant (default: config, $SELECTOR_VARIANT, pyX.Y)"
EPILOG_PLAN = """examples:
  selector plan --base origin/main --format list | xargs -r pytest
  selector plan --base HEAD~3 --format json --output plan.json --shards 4
  pytest --selector-plan plan.json --selector-shard 2/4
"""
EPILOG_WHY = """example:
  selector why tests/test_parser.py::test_unicode
"""
EPILOG_LOOKUP = """examples:
  selector lookup src/shop/pricing.py:12
  selector lookup src/shop/pricing.py:10-20 --format list | xargs -r pytest
  selector lookup src/shop/catalog.py::Item.label
"""
EPILOG_EXPORT = """examples:
  selector export --coverage .coverage.selector && coverage html \\
      --data-file .coverage.selector --show-contexts
  selector export --csv map.csv --by function
"""
EPILOG_STATS = """example:
  selector stats --top 5
"""
EPILOG_RUN = """examples:
  selector run                     # what the uncommitted work can affect, recorded
  selector run --dry-run           # only say what would run
  selector run -- -x -n 2 tests/   # pytest options and paths after --
  ptw . --runner selector --patterns '**/*.py' run   # on every save (pytest-watcher)
"""
LAST_PLAN = Path(".selector") / "last-plan.json"


class UserError(Exception):
    """A problem the user must fix: printed as one line, exit status 1."""


def _repository() -> tuple[Path, str]:
    from selector import gitdiff

    repo = gitdiff.open_repo(Path.cwd())
    if repo is None:
        raise UserError("not inside a git repository: run selector from your project's checkout")
    commit = gitdiff.head_commit(repo)
    if commit is None:
        raise UserError("the repository has no commits yet: commit, record, then upload")
    return gitdiff.repo_root(repo), commit


def upload_map(arguments: argparse.Namespace) -> int:
    """Merge the fragments recorded at HEAD, carry the base map forward, store the map."""
    from selector import gitdiff
    from selector.config import load_config
    from selector.plugin import FRAGMENT_DIR
    from selector.store import resolve_store
    from selector.upload import UploadRequest, upload

    root, commit = _repository()
    repo = gitdiff.open_repo(root)
    assert repo is not None
    config = load_config(root)
    request = UploadRequest(
        fragment_dir=arguments.fragments or root / FRAGMENT_DIR,
        store=resolve_store(arguments.store, config.store, root),
        variant=arguments.variant,
        base_map=arguments.base_map,
        force=arguments.force,
    )
    result = upload(repo, request, config)
    for message in result.unreadable:
        print(f"selector: skipped a fragment: {message}", file=sys.stderr)
    if result.other_commits:
        print(
            f"selector: ignored {result.other_commits} fragments recorded at other commits",
            file=sys.stderr,
        )
    for message in result.warnings:
        print(f"selector: warning: {message}", file=sys.stderr)
    for stored in result.stored:
        data, carry = stored.data, stored.carry
        if carry is not None and carry.not_carried:
            print(f"selector: warning: {_not_carried(carry)}", file=sys.stderr)
        tests = counted(len(data.tests), "test")
        if carry is not None:
            tests += (
                f" ({carry.rerun} re-run, {carry.carried} carried forward from "
                f"{carry.base_commit[:12]}, {carry.removed} no longer collected)"
            )
        where = f"{request.store.location.rstrip('/')}/{stored.stored.name}"
        print(
            f"selector: stored map of {commit[:12]} ({data.meta.variant}): {tests}, "
            f"{len(data.files)} files -> {where} ({_size(stored.stored.size)})"
        )
    return 0


def _not_carried(carry: "CarryReport") -> str:
    """One line about the tests the change can affect that were not re-run."""
    names = ", ".join(carry.not_carried[:5]) + (", ..." if len(carry.not_carried) > 5 else "")
    why = f" (every test: {carry.run_all_reason})" if carry.run_all_reason else ""
    were = "was" if len(carry.not_carried) == 1 else "were"
    return (
        f"{counted(len(carry.not_carried), 'test')} that the change since "
        f"{carry.base_commit[:12]} can affect{why} {were} not re-run: the map has no "
        f"recording of them, so every plan selects them until a run records them: {names}"
    )


def _size(count: int) -> str:
    """Bytes for people: 812 B, 245.1 KiB, 12.4 MiB."""
    value, unit = float(count), "B"
    for larger in ("KiB", "MiB", "GiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"


def _store_of(arguments: argparse.Namespace) -> "MapStore":
    """The store named by --store, $SELECTOR_STORE or the configuration of the repository here.

    Outside a repository only an explicit store can be meant: the configuration and the
    default folder are the repository's.
    """
    from selector import gitdiff
    from selector.config import load_config
    from selector.store import STORE_ENV, resolve_store

    repo = gitdiff.open_repo(Path.cwd())
    if repo is None:
        if not (arguments.store or os.environ.get(STORE_ENV)):
            raise UserError(f"not inside a git repository: pass --store or set ${STORE_ENV}")
        return resolve_store(arguments.store, None, Path.cwd())
    root = gitdiff.repo_root(repo)
    return resolve_store(arguments.store, load_config(root).store, root)


def list_maps(arguments: argparse.Namespace) -> int:
    """Print the stored maps, newest first."""
    store = _store_of(arguments)
    found = store.maps(arguments.variant)
    if found:
        print(f"{'commit':<12}  {'variant':<10}  {'stored (UTC)':<16}  size")
    for stored in found:
        when = stored.modified.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        print(f"{stored.commit[:12]}  {stored.variant:<10}  {when:<16}  {_size(stored.size)}")
    total = _size(sum(stored.size for stored in found))
    print(f"selector: {counted(len(found), 'map')} ({total}) in {store.location}", file=sys.stderr)
    return 0


def prune_maps(arguments: argparse.Namespace) -> int:
    """Delete the maps that neither --keep nor --older-than keeps."""
    from selector.store import prunable

    if arguments.keep is None and arguments.older_than is None:
        raise UserError("maps prune needs --keep N, --older-than D, or both")
    store = _store_of(arguments)
    found = store.maps(arguments.variant)
    doomed = prunable(found, arguments.keep, arguments.older_than, datetime.now(UTC))
    for stored in doomed:
        print(stored.name)
    if not arguments.dry_run:
        store.remove(doomed)
    verb = "would delete" if arguments.dry_run else "deleted"
    print(
        f"selector: {verb} {len(doomed)} of {len(found)} maps "
        f"({_size(sum(stored.size for stored in doomed))}) in {store.location}",
        file=sys.stderr,
    )
    return 0


def plan(arguments: argparse.Namespace) -> int:
    """Select the tests the change from the base can affect."""
    from selector import gitdiff
    from selector.config import load_config, resolve_variant
    from selector.plan import PlanRequest, make_plan, summary, write_plan
    from selector.store import check_folder, resolve_store

    root, _commit = _repository()
    repo = gitdiff.open_repo(root)
    assert repo is not None
    check_folder(root / LAST_PLAN.parent)
    config = load_config(root)
    working_tree = arguments.working_tree
    if working_tree is None:
        working_tree = not os.environ.get("CI")
    request = PlanRequest(
        base=arguments.base,
        variant=resolve_variant(arguments.variant, config),
        working_tree=working_tree,
        store=resolve_store(arguments.store, config.store, root),
        map_file=arguments.map,
        shards=arguments.shards,
        grouping=arguments.group,
    )
    document = make_plan(repo, request, config)
    kept = _keep_last_plan(document, root)
    for line in summary(document):
        print(f"selector: {line}", file=sys.stderr)
    if arguments.format == "github":
        from selector.github import publish_plan

        if arguments.output:
            write_plan(document, arguments.output)
        elif not kept:
            raise UserError(f"the plan could not be kept in {LAST_PLAN}: pass --output FILE")
        publish_plan(document, arguments.output or root / LAST_PLAN, os.environ)
        return 0
    if arguments.format == "json":
        text = json.dumps(document, indent=2) + "\n"
    else:
        text = "".join(f"{item}\n" for item in document["selected"])
        if document["run_all"]:
            text = "".join(f"{path}\n" for path in _all_tests_args(root))
    if arguments.output:
        arguments.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _keep_last_plan(document: dict[str, Any], root: Path) -> bool:
    """Keep a copy of the plan for `selector why`; whether it was kept.

    The copy is a convenience: a read-only `.selector/` must not cost the plan itself, so
    a failure is a one-line warning and the command goes on.
    """
    from selector.plan import write_plan
    from selector.store import StoreError, ignore_workdir

    try:
        ignore_workdir(root / LAST_PLAN.parent)
        write_plan(document, root / LAST_PLAN)
    except StoreError as error:
        problem = str(error)
    except OSError as error:
        problem = f"cannot write {root / LAST_PLAN}: {error.strerror}"
    else:
        return True
    print(f"selector: warning: the plan is not kept for `selector why`: {problem}", file=sys.stderr)
    return False


def run(arguments: argparse.Namespace) -> int:
    """Plan the working tree against the local map, run the selection, update the map."""
    from selector import gitdiff
    from selector.config import load_config, resolve_variant
    from selector.local import (
        LocalRequest,
        local_map_path,
        plan_working_tree,
        run_pytest,
        update_local_map,
    )
    from selector.plan import summary
    from selector.store import check_folder, resolve_store

    root, _commit = _repository()
    repo = gitdiff.open_repo(root)
    assert repo is not None
    check_folder(root / LAST_PLAN.parent)
    config = load_config(root)
    request = LocalRequest(
        variant=resolve_variant(arguments.variant, config),
        store=resolve_store(arguments.store, config.store, root),
        pytest_args=tuple(arguments.pytest_args),
    )
    planned = plan_working_tree(repo, request, config, root)
    document = planned.plan
    _keep_last_plan(document, root)
    for line in [*planned.notes, *summary(document)]:
        print(f"selector: {line}", file=sys.stderr)
    if arguments.dry_run:
        items = _all_tests_args(root) if document["run_all"] else document["selected"]
        sys.stdout.write("".join(f"{item}\n" for item in items))
        return 0
    if not document["run_all"] and not document["selected"]:
        print("selector: nothing to run: no change since the map affects a test", file=sys.stderr)
        return 0
    status, fragments = run_pytest(planned, request, root)
    if not fragments:
        print(
            "selector: the run recorded nothing (interrupted, or no test ran): "
            "the local map is unchanged",
            file=sys.stderr,
        )
        return status
    destination = local_map_path(root, request.variant)
    data = update_local_map(repo, planned, fragments, config, destination)
    print(
        f"selector: local map updated: {counted(len(data.tests), 'test')} -> {destination}",
        file=sys.stderr,
    )
    return status


def _all_tests_args(root: Path) -> list[str]:
    """What `--format list` prints when everything runs: the project's own test paths."""
    from selector.testfiles import pytest_files

    return list(pytest_files(root).testpaths) or ["."]


def why(arguments: argparse.Namespace) -> int:
    """Explain from the last plan why a test is, or is not, selected."""
    from selector.plan import explain
    from selector.store import check_folder

    path = arguments.plan
    if path is None:
        root, _commit = _repository()
        path = root / LAST_PLAN
        check_folder(path.parent)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no plan at {path}: run `selector plan` first") from None
    except OSError as error:
        raise UserError(f"cannot read the plan {path}: {error.strerror}") from None
    except ValueError as error:
        raise UserError(f"cannot read the plan {path}: {error}") from None
    for line in explain(document, arguments.nodeid, _known_tests(arguments, document)):
        print(line)
    return 0


def _known_tests(arguments: argparse.Namespace, document: dict[str, Any]) -> set[str] | None:
    """The node IDs of the map a plan was made from: the local map of `selector run`, or
    the store's; None where that map cannot be read here."""
    from selector.config import ConfigError
    from selector.local import local_map_path
    from selector.mapdb import MapError, MapIndex
    from selector.store import StoreError

    commit, variant = document.get("map_commit"), document.get("variant")
    if not isinstance(commit, str) or not isinstance(variant, str):
        return None
    try:
        root, _head = _repository()
        local = local_map_path(root, variant)
        index = MapIndex(local) if local.is_file() else None
        if index is not None and index.meta.commit != commit:
            index.close()
            index = None
        if index is None:
            index = MapIndex(_store_of(arguments).fetch(commit, variant), verified=True)
    except (UserError, ConfigError, StoreError, MapError):
        return None
    try:
        return set(index.tests) | index.collected
    finally:
        index.close()


def _local_map(arguments: argparse.Namespace) -> tuple[Path, Path, str]:
    """(repository root, map file, its name for messages): `--map`, else the map of HEAD's
    nearest ancestor, named as stored (the file is a temporary copy)."""
    from selector import gitdiff
    from selector.config import load_config, resolve_variant
    from selector.plan import nearest_stored_maps
    from selector.store import readable_map_file

    root, commit = _repository()
    if arguments.map is not None:
        return root, readable_map_file(arguments.map), str(arguments.map)
    repo = gitdiff.open_repo(root)
    assert repo is not None
    variant = resolve_variant(arguments.variant, load_config(root))
    store = _store_of(arguments)
    skipped: list[str] = []
    found = next(nearest_stored_maps(repo, store, variant, commit, skipped), None)
    if found is not None:
        return root, found[1], store.fetched[found[1]]
    for message in skipped:
        print(f"selector: {message}", file=sys.stderr)
    raise UserError(
        f"no {variant} map for HEAD or its ancestors in {store.location}: "
        "record one (pytest --selector-record; selector upload-map) or pass --map"
    )


def _map_source(root: Path, index_commit: str | None, path: str) -> bytes | None:
    from selector import gitdiff

    repo = gitdiff.open_repo(root)
    if repo is None or index_commit is None:
        return None
    return gitdiff.file_at(repo, index_commit, path)


def lookup(arguments: argparse.Namespace) -> int:
    """Which recorded tests run some code."""
    from selector.explore import Target, lookup
    from selector.mapdb import MapIndex

    root, map_file, name = _local_map(arguments)
    target = Target.parse(arguments.target)
    index = MapIndex(map_file, name=name)
    try:
        source = _map_source(root, index.meta.commit, target.path) if target.name else None
        found = lookup(index, target, source)
    finally:
        index.close()
    if arguments.format == "json":
        rows = [
            {"test": nodeid, "duration": test.duration, "outcome": test.outcome}
            for nodeid, test in found.items()
        ]
        print(json.dumps(rows, indent=2))
    elif arguments.format == "list":
        for nodeid in found:
            print(nodeid)
    else:
        for nodeid, test in found.items():
            print(f"{test.duration:9.3f}s  {nodeid}")
        total = sum(test.duration for test in found.values())
        print(f"selector: {counted(len(found), 'test')}, {total:.1f}s recorded", file=sys.stderr)
    return 0


def export(arguments: argparse.Namespace) -> int:
    """The map as a coverage.py data file or as CSV rows."""
    from selector.explore import export_coverage, export_csv
    from selector.mapdb import read_map

    root, map_file, name = _local_map(arguments)
    data = read_map(map_file, name=name)
    if arguments.coverage is not None:
        count = export_coverage(data, root, arguments.coverage)
        print(f"selector: wrote {arguments.coverage} with {count} test contexts")
    if arguments.csv is not None:
        sources = {}
        if arguments.by == "function":
            sources = {path: _map_source(root, data.meta.commit, path) for path in data.files}
        rows = export_csv(data, arguments.csv, sources, arguments.by)
        print(f"selector: wrote {arguments.csv} with {rows} rows")
    return 0


def stats(arguments: argparse.Namespace) -> int:
    """What the map holds."""
    from selector.explore import stats
    from selector.mapdb import MapIndex, read_map

    _root, map_file, name = _local_map(arguments)
    data = read_map(map_file, name=name)
    index = MapIndex(map_file, name=name)
    try:
        found = stats(data, index, arguments.top)
    finally:
        index.close()
    meta = data.meta
    print(f"map: {name}")
    print(f"commit {meta.commit}  variant {meta.variant}  recorded {meta.created}")
    outcomes = ", ".join(f"{count} {name}" for name, count in sorted(found.outcomes.items()))
    print(f"{counted(found.tests, 'test')} ({outcomes}), {counted(found.files, 'file')}")
    print(f"recorded test time {found.total_duration:.1f}s")
    for install in meta.outside:
        print(
            f"imported from a stale installed copy: {install.distribution} at "
            f"{install.location}: changes to {', '.join(install.sources)} run every test"
        )
    sections: list[tuple[str, list[tuple[str, str]] | list[tuple[str, int]]]] = [
        ("longest tests (s)", [(name, f"{value:.3f}") for name, value in found.longest]),
        ("tests per test file", found.tests_per_file),
        ("most coupled files (tests that depend on them)", found.most_coupled),
        ("tests that depend on the most files", found.widest_tests),
    ]
    for title, rows in sections:
        print(f"\n{title}:")
        for name, value in rows:
            print(f"  {value!s:>9}  {name}")
    return 0


def _map_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--map", type=Path, help="map file (default: HEAD's, from the store)")
    parser.add_argument("--store", help=STORE_HELP)
    parser.add_argument("--variant", help=VARIANT_HELP)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="selector", description="Run only the tests a git change can affect."
    )
    parser.add_argument("--version", action="version", version=f"selector {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    upload = commands.add_parser(
        "upload-map",
        help="merge the fragments recorded at HEAD and store the map",
        description="Merge the fragments that `pytest --selector-record` wrote at HEAD "
        "into one map per variant and put it in the store.",
        epilog=EPILOG_UPLOAD,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upload.add_argument(
        "--fragments", type=Path, help="folder of fragments (default: .selector/fragments)"
    )
    upload.add_argument("--store", help=STORE_HELP)
    upload.add_argument("--variant", help="only this variant (default: every variant found)")
    upload.add_argument(
        "--base-map",
        type=Path,
        metavar="FILE",
        help="map (SQLite) to carry the tests that did not run forward from (default: the "
        "stored map of the nearest first-parent ancestor)",
    )
    upload.add_argument(
        "--force",
        action="store_true",
        help="upload even from a dirty working tree or a detached commit no remote has",
    )
    upload.set_defaults(handler=upload_map)

    planner = commands.add_parser(
        "plan",
        help="select the tests a change can affect",
        description="Restore the map nearest to the base, diff its commit against HEAD "
        "and select the tests the change can affect. A summary goes to stderr.",
        epilog=EPILOG_PLAN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    planner.add_argument(
        "--base", default="origin/main", help="revision to compare with (default: origin/main)"
    )
    planner.add_argument(
        "--format",
        choices=("list", "json", "github"),
        default="list",
        help="list: one item per line, for xargs -r pytest; json: the whole plan; github: "
        "the plan to --output, step outputs and summary for GitHub Actions",
    )
    planner.add_argument("--output", type=Path, help="write the plan here instead of stdout")
    planner.add_argument(
        "--shards", type=_positive, default=1, help="split into N balanced shards (default: 1)"
    )
    planner.add_argument(
        "--group",
        choices=("none", "module", "class"),
        default="none",
        help="keep a module's or class's tests on one shard (default: none)",
    )
    planner.add_argument("--map", type=Path, help="use this map file instead of the store")
    planner.add_argument("--store", help=STORE_HELP)
    planner.add_argument("--variant", help=VARIANT_HELP)
    planner.add_argument(
        "--working-tree",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="include uncommitted changes (default: yes, unless $CI is set)",
    )
    planner.set_defaults(handler=plan)

    explainer = commands.add_parser(
        "why",
        help="explain why a test is (not) in the last plan",
        description="Explain, from the last plan, why a test is or is not selected.",
        epilog=EPILOG_WHY,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explainer.add_argument("nodeid", help="the test's node ID")
    explainer.add_argument(
        "--plan", type=Path, help="plan file (default: .selector/last-plan.json)"
    )
    explainer.add_argument("--store", help=f"where the plan's map is: {STORE_HELP}")
    explainer.set_defaults(handler=why)

    looker = commands.add_parser(
        "lookup",
        help="which tests run this code",
        description="Which recorded tests execute a file, lines, or a function or class "
        "(line numbers of the map's commit), with their recorded durations.",
        epilog=EPILOG_LOOKUP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    looker.add_argument(
        "target", help="PATH, PATH:LINE, PATH:START-END, PATH::Class.method or PATH:function"
    )
    looker.add_argument("--format", choices=("text", "list", "json"), default="text")
    _map_options(looker)
    looker.set_defaults(handler=lookup)

    exporter = commands.add_parser(
        "export",
        help="the map as a coverage.py data file or CSV",
        description="Export the map: a coverage.py data file with one context per test "
        "(for `coverage html --show-contexts`), or CSV rows.",
        epilog=EPILOG_EXPORT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    exporter.add_argument("--coverage", type=Path, help="write a coverage.py data file here")
    exporter.add_argument("--csv", type=Path, help="write CSV rows here")
    exporter.add_argument(
        "--by", choices=("line", "function"), default="line", help="CSV rows per line or function"
    )
    _map_options(exporter)
    exporter.set_defaults(handler=export)

    statistician = commands.add_parser(
        "stats",
        help="what the map holds",
        description="Tests, files, durations, the most coupled files and the widest tests.",
        epilog=EPILOG_STATS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    statistician.add_argument("--top", type=_positive, default=10, help="rows per list")
    _map_options(statistician)
    statistician.set_defaults(handler=stats)

    runner = commands.add_parser(
        "run",
        usage="selector run [-h] [--dry-run] [--store STORE] [--variant VARIANT] [PYTEST ARGS]",
        help="run what the uncommitted work can affect, and update the local map",
        description="Plan the working tree (uncommitted changes included) against the "
        "local map, run the selected tests with pytest while recording them, and update "
        "the local map from that run, so the next run selects only what changed since. "
        "The first run starts from the store's map of HEAD's nearest ancestor, or runs "
        "everything. Anything after selector's own options goes to pytest (a -- before "
        "it is optional). The exit status is pytest's.",
        epilog=EPILOG_RUN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    runner.add_argument("--dry-run", action="store_true", help="only print what would run")
    runner.add_argument("--store", help=STORE_HELP)
    runner.add_argument("--variant", help=VARIANT_HELP)
    runner.set_defaults(handler=run, pytest_args=[])
    _add_maps_parser(commands)
    return parser


def _add_maps_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    mapper = commands.add_parser(
        "maps",
        help="list or prune the stored maps",
        description="List the maps in the store, or delete old ones.",
        epilog=EPILOG_MAPS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = mapper.add_subparsers(dest="action", required=True, metavar="ACTION")
    lister = actions.add_parser("list", help="the stored maps, newest first")
    pruner = actions.add_parser(
        "prune",
        help="delete old maps",
        description="Delete the maps that no option keeps: --keep N keeps the newest N of "
        "each variant, --older-than D those stored less than D ago; with both, a map is "
        "deleted only if neither keeps it.",
    )
    for action in (lister, pruner):
        action.add_argument("--store", help=STORE_HELP)
        action.add_argument("--variant", help="only maps of this variant")
    pruner.add_argument("--keep", type=_positive, metavar="N", help="keep the newest N per variant")
    pruner.add_argument(
        "--older-than",
        type=_age,
        metavar="D",
        help="delete maps stored more than D ago: a number and s, m, h, d or w (30d)",
    )
    pruner.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    lister.set_defaults(handler=list_maps)
    pruner.set_defaults(handler=prune_maps)


def _age(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhdw])", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a number and s, m, h, d or w, got {text!r}")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match[2]]
    return timedelta(**{unit: int(match[1])})


# `selector run`'s own options, and whether each takes a value; what follows them is pytest's.
_RUN_OPTIONS = {
    "-h": False,
    "--help": False,
    "--dry-run": False,
    "--store": True,
    "--variant": True,
}


def _split_run_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """`run` and its own leading options, and the rest for pytest (after an optional --).

    argparse cannot hand unknown options through in order (`-k expr` would lose `-k`), and
    a watcher such as pytest-watcher passes pytest's options without a `--`.
    """
    position = 1
    while position < len(argv):
        name = argv[position].partition("=")[0]
        if name not in _RUN_OPTIONS:
            break
        takes_value = _RUN_OPTIONS[name] and "=" not in argv[position]
        position += 2 if takes_value else 1
    rest = argv[position:]
    return argv[:position], rest[1:] if rest[:1] == ["--"] else rest


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; user errors are one line, never a traceback."""
    from selector.config import ConfigError
    from selector.explore import TargetError
    from selector.gitdiff import GitError
    from selector.local import LocalRunError
    from selector.mapdb import MapError
    from selector.store import StoreError
    from selector.upload import UploadError

    if sys.stdout is None:  # started with standard output closed (`>&-`)
        sys.stdout = Path(os.devnull).open("w")  # noqa: SIM115 (open until the process ends)
    own = list(sys.argv[1:] if argv is None else argv)
    pytest_args: list[str] = []
    if own[:1] == ["run"]:
        own, pytest_args = _split_run_arguments(own)
    arguments = build_parser().parse_args(own)
    if pytest_args:
        arguments.pytest_args = pytest_args
    try:
        status: int = arguments.handler(arguments)
        sys.stdout.flush()
    except BrokenPipeError:
        return _reader_gone()
    except (
        UserError,
        MapError,
        StoreError,
        UploadError,
        ConfigError,
        GitError,
        TargetError,
        LocalRunError,
    ) as error:
        print(f"selector: error: {error}", file=sys.stderr)
        return 1
    return status


def _reader_gone() -> int:
    """The reader of standard output left (`selector lookup ... | head -1`): stop quietly.

    As the Python documentation recommends for SIGPIPE: standard output goes to devnull,
    so the interpreter's own flush at exit cannot raise again, and the status is 1.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


if __name__ == "__main__":
    sys.exit(main())
