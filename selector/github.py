"""GitHub Actions glue for the composite action (action.yml): cache keys, the restored map,
step outputs and the step summary.

The action's YAML stays thin and its logic lives here, typed and tested: the shell steps
only pass values through `env:` and call `python -m selector.github ...` or `selector plan
--format github`, which write what the runner reads in the runner's own file formats.

Maps travel through the Actions cache as a folder that holds exactly one map. The key is
`selector-map:<variant>:<commit>`; a plan restores with the prefix `selector-map:<variant>:`
and gets the newest map of that variant, whose commit the matched key names. A colon can
appear in no variant (see `store.check_variant`), so one variant's prefix never matches
another's keys (`py3.1` and `py3.11`, `py3.12` and `py3.12-linux`).
"""

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selector.cli import VARIANT_HELP

CACHE_KEY_PREFIX = "selector-map"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_OUTPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

# What the step summary shows. Every shown line is cut to LINE_LIMIT characters, so the
# summary stays far below GitHub's limit of 1 MiB per step whatever the plan holds:
# (10 + 30) lines of at most 300 four-byte characters, plus a fence as long, is < 100 KiB.
REASONS_SHOWN = 10
UNCOVERED_SHOWN = 30
LINE_LIMIT = 300


@dataclass(frozen=True)
class CacheKeys:
    """The cache key of one commit's map, and the prefix that finds the newest map."""

    variant: str
    commit: str

    @property
    def restore_key(self) -> str:
        """The prefix of every key of this variant."""
        return f"{CACHE_KEY_PREFIX}:{self.variant}:"

    @property
    def key(self) -> str:
        """The key this commit's map is saved under."""
        return f"{self.restore_key}{self.commit}"


def commit_of_key(key: str, variant: str) -> str | None:
    """The commit whose map a matched cache key names, or None for a key that is not one."""
    prefix = CacheKeys(variant, "").restore_key
    commit = key[len(prefix) :] if key.startswith(prefix) else ""
    return commit if _COMMIT.match(commit) else None


# -- the runner's files ----------------------------------------------------------------


def format_outputs(values: Mapping[str, str]) -> str:
    """Values in the format of $GITHUB_OUTPUT (and $GITHUB_ENV).

    A single-line value is written `name=value`. A value with a line break uses the
    multiline form with a random delimiter, so that no value, whatever it holds, can end
    itself early and set another output.
    """
    lines = []
    for name, value in values.items():
        if not _OUTPUT_NAME.match(name):
            raise ValueError(f"not an output name: {name!r}")
        if "\n" not in value and "\r" not in value:
            lines.append(f"{name}={value}\n")
            continue
        delimiter = f"ghadelimiter_{uuid.uuid4()}"
        while delimiter in value:
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
        lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(lines)


def _append(environ: Mapping[str, str], variable: str, text: str) -> None:
    """Append to the runner's file named by `variable`; outside a runner, print instead."""
    path = environ.get(variable)
    if path:
        with Path(path).open("a", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)


def write_outputs(values: Mapping[str, str], environ: Mapping[str, str]) -> None:
    """Set step outputs (printed to stdout when not running in a GitHub Actions step)."""
    _append(environ, "GITHUB_OUTPUT", format_outputs(values))


# -- a plan's outputs and summary --------------------------------------------------------


def matrix(plan: Mapping[str, Any]) -> list[int]:
    """Shard numbers for `strategy.matrix`: never empty, as an empty matrix is an error.

    A plan that selects nothing still gets one shard, whose job passes with nothing to run.
    """
    return list(range(1, max(len(plan.get("shards") or []), 1) + 1))


def plan_outputs(plan: Mapping[str, Any], plan_file: Path) -> dict[str, str]:
    """The action's outputs for a plan."""
    return {
        "matrix": json.dumps(matrix(plan), separators=(",", ":")),
        "run-all": "true" if plan["run_all"] else "false",
        "selected-count": str(plan["selected_count"]),
        "total-count": str(plan["total_count"]),
        "plan-file": os.fspath(plan_file.resolve()),
        "map-commit": plan.get("map_commit") or "",
    }


def _shown(text: str) -> str:
    """One line of text from the repository (file names, reasons), safe to show.

    Control characters, line breaks included, would let a crafted file name forge lines of
    the summary; they become U+FFFD. Long lines are cut.
    """
    clean = "".join(char if char.isprintable() else "\ufffd" for char in text)
    return clean if len(clean) <= LINE_LIMIT else clean[: LINE_LIMIT - 1] + "\u2026"


def _block(lines: list[str], total: int) -> list[str]:
    """Lines in a fenced code block: nothing in it renders as Markdown, HTML or a link.

    The fence is longer than any run of backticks inside, so no line can close it.
    """
    shown = [_shown(line) for line in lines]
    if total > len(lines):
        shown.append(f"... and {total - len(lines)} more")
    longest = max((len(run) for line in shown for run in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}text", *shown, fence, ""]


def _seconds(value: float) -> str:
    minutes, rest = divmod(round(value), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{value:.1f}s"


def step_summary(plan: Mapping[str, Any]) -> str:
    """The step summary: what runs, what it saves, why, and what no test covers."""
    total, selected = plan["total_count"], plan["selected_count"]
    shards = plan.get("shards") or []
    if plan["run_all"]:
        recorded = f" ({total} recorded)" if total else ""
        lines = [f"### selector: every test runs{recorded}", ""]
        ran = f"every test{recorded}"
    else:
        share = f" ({selected / total:.0%})" if total else ""
        lines = [f"### selector: {selected} of {total} recorded tests selected{share}", ""]
        ran = f"{selected} of {total} recorded tests, in {len(plan['selected'])} items"
    rows = [
        ("Runs", ran),
        (
            "Estimated test time",
            f"{_seconds(plan.get('estimated_duration', 0.0))}, "
            f"{_seconds(plan.get('estimated_saved', 0.0))} saved",
        ),
        ("Shards", f"{len(shards)}: " + ", ".join(_seconds(s["duration"]) for s in shards)),
    ]
    if plan.get("map_commit"):
        rows.append(("Map", f"commit `{plan['map_commit'][:12]}`, variant `{plan['variant']}`"))
    lines += ["| | |", "| --- | --- |", *(f"| {name} | {value} |" for name, value in rows), ""]
    if plan["run_all"]:
        lines += ["Why every test runs:", ""]
        why = [f"- {reason}" for reason in plan["reasons"]]
        lines += _block(why[:REASONS_SHOWN], len(why))
        capped = plan.get("max_fraction_selection")
        if capped:
            lines += [
                f"Without `max_fraction` the plan would run {capped['selected_count']} of "
                f"{total} recorded tests, in {len(capped['selected'])} items (recorded tests "
                "selected per set of reasons):",
                "",
                *_reasons_block(capped["tests"]),
            ]
    elif plan["tests"]:
        lines += ["Why (recorded tests selected per set of reasons):", ""]
        lines += _reasons_block(plan["tests"])
    uncovered = plan.get("uncovered_changes") or []
    if uncovered:
        lines += ["Changed lines that no recorded test runs:", ""]
        lines += _block(list(uncovered[:UNCOVERED_SHOWN]), len(uncovered))
    return "\n".join(lines)


def _reasons_block(entries: Mapping[str, Any]) -> list[str]:
    """The top reasons of a plan's `tests` entries, weighted by the tests they select."""
    from selector.plan import reason_groups  # only `selector plan` writes a summary

    groups = reason_groups(dict(entries))
    top = [f"{count:>6}  {reason}" for reason, count in groups[:REASONS_SHOWN]]
    return _block(top, len(groups))


def publish_plan(plan: Mapping[str, Any], plan_file: Path, environ: Mapping[str, str]) -> None:
    """Set the plan's step outputs and append its step summary."""
    write_outputs(plan_outputs(plan, plan_file), environ)
    _append(environ, "GITHUB_STEP_SUMMARY", step_summary(plan))


# -- `python -m selector.github ...`: the action's own steps ------------------------------
#
# Not a `selector` subcommand: the action calls this module directly, which spares each
# call the imports of the whole command line (a third of a second, several times a plan).


def keys(arguments: argparse.Namespace) -> int:
    """Outputs `variant`, `commit`, `key` and `restore-key` for HEAD of the repository here."""
    from selector import gitdiff
    from selector.config import load_config, resolve_variant

    repo = gitdiff.open_repo(Path.cwd())
    commit = None if repo is None else gitdiff.head_commit(repo)
    if repo is None or commit is None:
        raise gitdiff.GitError("the cache key needs a git repository with a commit")
    variant = resolve_variant(arguments.variant, load_config(gitdiff.repo_root(repo)))
    found = CacheKeys(variant, commit)
    values = {"variant": variant, "commit": commit, "key": found.key}
    write_outputs({**values, "restore-key": found.restore_key}, os.environ)
    return 0


def take_map(arguments: argparse.Namespace) -> int:
    """Run a selector command with the map that the matched cache key names.

    The map is taken out of the restored folder, which is left empty: the folder is what
    the action saves, and an upload must save its new map alone. Without a matched key, or
    with a map that cannot be used, the command runs without it (a plan then runs every
    test, and says why).
    """
    from selector.cli import main as selector
    from selector.store import LocalStore, StoreError, check_variant

    command = arguments.command[1:] if arguments.command[:1] == ["--"] else arguments.command
    with tempfile.TemporaryDirectory(prefix="selector-map-") as scratch:
        if arguments.key:
            try:
                variant = check_variant(arguments.variant)
                commit = commit_of_key(arguments.key, variant)
                if commit is None:
                    raise StoreError(f"{arguments.key!r} is not the cache key of a {variant} map")
                store = LocalStore(arguments.source)  # its temporary folder holds the map
                taken = Path(scratch) / "map.sqlite"
                shutil.copyfile(store.fetch(commit, variant), taken)
                command = [*command, f"{arguments.option}={taken}"]
                print(f"selector: using the restored {variant} map of {commit[:12]}")
            except StoreError as error:
                print(f"selector: cannot use the restored map: {error}", file=sys.stderr)
        shutil.rmtree(arguments.source, ignore_errors=True)
        return selector(command)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m selector.github",
        description="Steps of selector's composite GitHub Action. Outputs go to "
        "$GITHUB_OUTPUT, or to stdout outside GitHub Actions.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    keyer = actions.add_parser(
        "keys", help="the cache key of HEAD's map and the prefix that restores the newest"
    )
    keyer.add_argument("--variant", help=VARIANT_HELP)
    keyer.set_defaults(handler=keys)
    taker = actions.add_parser(
        "take-map",
        help="run a selector command with the map a matched cache key names",
        description="Take the map that the matched cache key names out of the restored "
        "folder (leaving it empty) and run `selector COMMAND OPTION=MAP`.",
    )
    taker.add_argument("--from", dest="source", type=Path, required=True, help="restored folder")
    taker.add_argument("--key", default="", help="the matched cache key (empty: none)")
    taker.add_argument("--variant", default="", help="the map variant")
    taker.add_argument(
        "--as", dest="option", choices=("--map", "--base-map"), required=True, help="how to pass it"
    )
    taker.add_argument("command", nargs=argparse.REMAINDER, help="-- and a selector command")
    taker.set_defaults(handler=take_map)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one step; a problem is one line on stderr and exit status 1, never a traceback."""
    from selector.config import ConfigError
    from selector.gitdiff import GitError
    from selector.store import StoreError

    arguments = _parser().parse_args(argv)
    try:
        status: int = arguments.handler(arguments)
    except (ConfigError, GitError, StoreError) as error:
        print(f"selector: error: {error}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
