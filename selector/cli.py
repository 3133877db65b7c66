"""The `selector` command: argument parsing and output only."""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from selector import __version__

EPILOG_UPLOAD = """example:
  pytest --selector-record && selector upload-map
"""
EPILOG_PLAN = """examples:
  selector plan --base origin/main --format list | xargs -r pytest
  selector plan --base HEAD~3 --format json --output plan.json --shards 4
  pytest --selector-plan plan.json --selector-shard 2/4
"""
EPILOG_WHY = """example:
  selector why tests/test_parser.py::test_unicode
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
    """Merge the fragments recorded at HEAD and store the map."""
    from selector.plugin import FRAGMENT_DIR
    from selector.store import DEFAULT_FOLDER, LocalStore
    from selector.upload import upload_fragments

    root, commit = _repository()
    fragment_dir = arguments.fragments or root / FRAGMENT_DIR
    store = LocalStore(arguments.store or root / DEFAULT_FOLDER)
    result = upload_fragments(fragment_dir, store, commit, arguments.variant)
    for message in result.unreadable:
        print(f"selector: skipped a fragment: {message}", file=sys.stderr)
    if result.other_commits:
        print(
            f"selector: ignored {result.other_commits} fragments recorded at other commits",
            file=sys.stderr,
        )
    if result.dirty:
        print(
            "selector: warning: some fragments were recorded with uncommitted changes",
            file=sys.stderr,
        )
    for path, data in result.stored:
        print(
            f"selector: stored map of {commit[:12]} ({data.meta.variant}): "
            f"{len(data.tests)} tests, {len(data.files)} files -> {path}"
        )
    return 0


def plan(arguments: argparse.Namespace) -> int:
    """Select the tests the change from the base can affect."""
    from selector import gitdiff
    from selector.config import load_config, resolve_variant
    from selector.plan import PlanRequest, make_plan, summary, write_plan
    from selector.store import DEFAULT_FOLDER, LocalStore, ignore_workdir

    root, _commit = _repository()
    repo = gitdiff.open_repo(root)
    assert repo is not None
    config = load_config(root)
    working_tree = arguments.working_tree
    if working_tree is None:
        working_tree = not os.environ.get("CI")
    request = PlanRequest(
        base=arguments.base,
        variant=resolve_variant(arguments.variant, config),
        working_tree=working_tree,
        store=LocalStore(arguments.store or root / DEFAULT_FOLDER),
        map_file=arguments.map,
        shards=arguments.shards,
        grouping=arguments.group,
    )
    document = make_plan(repo, request, config)
    ignore_workdir(root / LAST_PLAN.parent)
    write_plan(document, root / LAST_PLAN)
    for line in summary(document):
        print(f"selector: {line}", file=sys.stderr)
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


def _all_tests_args(root: Path) -> list[str]:
    """What `--format list` prints when everything runs: the project's own test paths."""
    from selector.testfiles import pytest_files

    return list(pytest_files(root).testpaths) or ["."]


def why(arguments: argparse.Namespace) -> int:
    """Explain from the last plan why a test is, or is not, selected."""
    from selector.plan import explain

    path = arguments.plan
    if path is None:
        root, _commit = _repository()
        path = root / LAST_PLAN
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no plan at {path}: run `selector plan` first") from None
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read the plan {path}: {error}") from None
    for line in explain(document, arguments.nodeid):
        print(line)
    return 0


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
    upload.add_argument("--store", type=Path, help="map folder (default: .selector/maps)")
    upload.add_argument("--variant", help="only this variant (default: every variant found)")
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
        choices=("list", "json"),
        default="list",
        help="list: one item per line, for xargs -r pytest; json: the whole plan",
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
    planner.add_argument("--store", type=Path, help="map folder (default: .selector/maps)")
    planner.add_argument(
        "--variant", help="map variant (default: config, $SELECTOR_VARIANT, pyX.Y)"
    )
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
    explainer.set_defaults(handler=why)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; user errors are one line, never a traceback."""
    from selector.config import ConfigError
    from selector.gitdiff import GitError
    from selector.mapdb import MapError
    from selector.store import StoreError
    from selector.upload import UploadError

    arguments = build_parser().parse_args(argv)
    try:
        status: int = arguments.handler(arguments)
    except (UserError, MapError, StoreError, UploadError, ConfigError, GitError) as error:
        print(f"selector: error: {error}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
