"""The `selector` command: argument parsing and output only."""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from selector import __version__

EPILOG_UPLOAD = """example:
  pytest --selector-record && selector upload-map
"""


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; user errors are one line, never a traceback."""
    from selector.mapdb import MapError
    from selector.store import StoreError
    from selector.upload import UploadError

    arguments = build_parser().parse_args(argv)
    try:
        status: int = arguments.handler(arguments)
    except (UserError, MapError, StoreError, UploadError) as error:
        print(f"selector: error: {error}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
