"""Carrying a map forward: the map of HEAD from a run that re-ran only some of its tests.

On main, CI usually runs only what the plan selects. The fragments of such a run hold the
re-run tests, plus `collected`: every test pytest collected, deselected ones included. The
map of HEAD is then the base map (recorded at an earlier commit B) brought to HEAD:

* **Who is carried.** A test of the base map that is still collected at HEAD and was not
  re-run is carried forward only if the change B -> HEAD cannot affect it, decided by the
  same rules as a plan (`select.Selector` on the base map and that diff, without the
  `max_fraction` fallback). Such a test ran no changed function body, no module whose
  module level changed, read no changed file: it executes the same statements at HEAD, and
  only their line numbers moved. A test the change CAN affect but that was not re-run is
  not carried: its lines at HEAD are unknown (a changed function may now call code it never
  called before), so no translation of old lines is safe. It stays in `collected` without a
  recording, and every plan selects such a test ("collected but not run") until a run
  records it. Tests no longer collected at HEAD are dropped; re-run tests replace their old
  recording.
* **How lines move.** For a changed Python file the statements of both versions are
  aligned per function (qualname) on their own syntax, not their text, so a reformatted
  statement, or one shifted by an edit elsewhere, keeps its identity and gets its new first
  line; a statement that changed matches nothing and its line drops out. Only tests the
  change affects ran such statements, and they are not carried, so for carried tests the
  translation is exact: what a full re-recording at HEAD gives (tests/test_upload.py proves
  it). Lines no statement owns, and files that are not valid Python on both sides, move by
  the diff's hunks: a line inside a hunk drops, a line after one shifts. Renamed files move,
  deleted files drop, blob ids become HEAD's.
* **Shared contexts** (session, collection, imports, wide fixtures) are the union of the
  carried-forward base context and the re-run's. A carried test keeps every line and edge
  its contexts had; a re-run test may gain lines it no longer runs, which costs precision
  (it is selected a little more often), never safety. Contexts no test reaches any more are
  dropped.
"""

import ast
import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import git
from coverage.numbits import numbits_to_nums, numbits_union, nums_to_numbits

from selector import gitdiff, scopes
from selector.config import Config
from selector.gitdiff import FileChange, Hunk
from selector.mapdb import Context, ContextKey, MapData, MapIndex, StoredCode
from selector.nodeids import covered
from selector.plan import GitSources
from selector.select import Selector
from selector.testfiles import pytest_files

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
# Fields holding the statements nested in a statement; a statement's own syntax is the rest.
_BLOCKS = frozenset({"body", "orelse", "finalbody", "handlers", "cases"})


class CarryError(Exception):
    """The base map cannot be carried forward; the message says what to do."""


@dataclass
class CarryReport:
    """What carrying forward did with the tests of the base map."""

    base_commit: str
    rerun: int
    carried: int
    removed: int  # recorded in the base map, no longer collected at HEAD
    not_carried: list[str] = field(default_factory=list)  # affected, not re-run: unrecorded
    run_all_reason: str | None = None  # why the change affects every test, if it does


def carry_forward(
    repo: git.Repo, base_path: Path, base: MapData, fresh: MapData, config: Config
) -> tuple[MapData, CarryReport]:
    """The map of HEAD: `fresh` (merged fragments of HEAD) plus what `base` still knows.

    `base_path` is the base map's file (the plan rules query it); `base` is its content.
    Both `base` and `fresh` are consumed: their contexts become the result's.
    """
    base_commit, head = _commits(repo, base, fresh)
    changes = [] if base_commit == head else gitdiff.diff(repo, base_commit, head)
    affected, reason = _affected(repo, base_path, (base_commit, head), changes, config)
    candidates = {nodeid for nodeid in base.tests if nodeid in fresh.collected}
    candidates.difference_update(fresh.tests)
    not_carried = candidates if affected is None else candidates & affected
    keep = candidates - not_carried
    report = CarryReport(
        base_commit=base_commit,
        rerun=len(fresh.tests),
        carried=len(keep),
        removed=len(set(base.tests) - fresh.collected),
        not_carried=sorted(not_carried),
        run_all_reason=reason,
    )
    translation = Translation(repo, base_commit, head, changes)
    merged = _combine(base, fresh, keep, translation)
    head_blobs = gitdiff.tree_blobs(repo, head)
    merged.files = {path: head_blobs.get(path) for path in _paths(merged)}
    merged.files.update((path, blob) for path, blob in fresh.files.items() if path in merged.files)
    merged.code = _carried_code(base, fresh, changes, merged.files)
    return merged, report


def _carried_code(
    base: MapData, fresh: MapData, changes: list[FileChange], files: dict[str, str | None]
) -> dict[str, StoredCode]:
    """The code indexes (codeindex.py) that still hold at HEAD: the base map's of the files
    the change did not touch, and the fresh ones. `codeindex.complete` adds the others."""
    touched = {path for change in changes for path in (change.old_path, change.new_path) if path}
    code = {path: entry for path, entry in base.code.items() if path not in touched}
    code.update(fresh.code)
    return {path: entry for path, entry in code.items() if path in files}


def _commits(repo: git.Repo, base: MapData, fresh: MapData) -> tuple[str, str]:
    """The base map's commit and HEAD's, checked to be usable together."""
    base_commit, head = base.meta.commit, fresh.meta.commit
    if base_commit is None or head is None:
        raise CarryError("the base map was recorded outside a git repository: it has no commit")
    if base.meta.variant != fresh.meta.variant:
        raise CarryError(
            f"the base map is of variant {base.meta.variant}, the fragments of "
            f"{fresh.meta.variant}: pass a base map of the same variant"
        )
    if not gitdiff.has_commit(repo, base_commit):
        fetch = gitdiff.fetch_commit_command(repo, base_commit)
        how = f"`{fetch}`, or " if fetch else "from the repository that has it, or "
        raise CarryError(
            f"the base map's commit {base_commit[:12]} is not in this clone: fetch it "
            f"({how}actions/checkout with fetch-depth: 0)"
        )
    return base_commit, head


def _affected(
    repo: git.Repo,
    base_path: Path,
    commits: tuple[str, str],
    changes: list[FileChange],
    config: Config,
) -> tuple[set[str] | None, str | None]:
    """Tests of the base map that the change can affect, as a plan would select them.

    None (with the reason) when the change affects every test. The selected share of the
    suite does not matter here, so `max_fraction` is lifted.
    """
    base_commit, head = commits
    root = gitdiff.repo_root(repo)
    index = MapIndex(base_path)
    try:
        selector = Selector(
            index,
            replace(config, max_fraction=1.0),
            GitSources(repo, root, base_commit, working_tree=False, head=head),
            pytest_files(root),
        )
        selection = selector.select(changes)
        if selection.run_all:
            return None, selection.run_all_reasons[0]
        return covered(selection.items, index.tests), None
    finally:
        index.close()


# -- moving lines from the base commit to HEAD ------------------------------------------


@dataclass(frozen=True)
class _FileMove:
    """Where the lines of one changed file of the base commit are at HEAD."""

    new_path: str | None  # None: deleted
    hunks: tuple[Hunk, ...] = ()
    statements: dict[int, set[int]] | None = None  # old statement start -> new starts
    owned: frozenset[int] = frozenset()  # every statement start of the old version


class Translation:
    """Line numbers, paths and context names of the base commit, as they are at HEAD."""

    def __init__(self, repo: git.Repo, base: str, head: str, changes: list[FileChange]) -> None:
        self._moves: dict[str, _FileMove] = {}
        for change in changes:
            if change.old_path is None or change.status == "copied":
                continue  # an added file, or a copy whose source stays where it was
            self._moves[change.old_path] = _file_move(repo, base, head, change)
        self._lines: dict[tuple[str, bytes], bytes] = {}

    def path(self, path: str) -> str | None:
        """The path at HEAD of a file of the base commit; None if it was deleted."""
        move = self._moves.get(path)
        return path if move is None else move.new_path

    def key(self, key: ContextKey) -> ContextKey:
        """A context's name at HEAD: a renamed module's import context follows the module."""
        kind, name = key
        if kind != "import" or name not in self._moves:
            return key
        return kind, self._moves[name].new_path or name

    def touches(self, context: Context) -> bool:
        """Whether the context mentions a changed file, i.e. needs translating at all."""
        moved = self._moves.keys()
        return (
            not moved.isdisjoint(context.lines)
            or not moved.isdisjoint(context.reads)
            or any(self.key(key) != key for key in context.includes)
        )

    def context(self, context: Context) -> Context:
        """The context with every line, read and include as at HEAD."""
        if not self.touches(context):
            return context
        moved = Context(
            reads={path for path in map(self.path, context.reads) if path is not None},
            includes={self.key(key) for key in context.includes},
            early=context.early,
        )
        for path, bits in context.lines.items():
            new_path = self.path(path)
            if new_path is None:
                continue
            new_bits = self._numbits(path, bits)
            old = moved.lines.get(new_path)
            moved.lines[new_path] = new_bits if old is None else numbits_union(old, new_bits)
        return moved

    def _numbits(self, path: str, bits: bytes) -> bytes:
        """Lines of `path` moved to HEAD; many contexts share the same lines, hence the cache."""
        move = self._moves.get(path)
        if move is None:
            return bits
        cached = self._lines.get((path, bits))
        if cached is None:
            lines = [new for old in numbits_to_nums(bits) for new in _move_line(move, old)]
            cached = self._lines[path, bits] = nums_to_numbits(lines)
        return cached


def _file_move(repo: git.Repo, base: str, head: str, change: FileChange) -> _FileMove:
    new_path = change.new_path
    old_path = change.old_path
    assert old_path is not None
    if new_path is None or change.old_blob == change.new_blob:
        return _FileMove(new_path)
    statements, owned = None, frozenset[int]()
    if old_path.endswith(".py") and new_path.endswith(".py") and not change.submodule:
        old_source = gitdiff.file_at(repo, base, old_path)
        new_source = gitdiff.file_at(repo, head, new_path)
        old_tree = None if old_source is None else scopes.parse(old_source, old_path)
        new_tree = None if new_source is None else scopes.parse(new_source, new_path)
        if old_tree is not None and new_tree is not None:
            statements, owned = statement_moves(old_tree, new_tree)
    return _FileMove(new_path, change.hunks, statements, owned)


def _move_line(move: _FileMove, line: int) -> Iterable[int]:
    """Where one recorded line of the base version is at HEAD (nowhere if it changed)."""
    if move.statements is not None:
        if line in move.statements:
            return move.statements[line]
        if line in move.owned:
            return ()  # the statement starting here changed
    shifted = shift_line(line, move.hunks)
    return () if shifted is None else (shifted,)


def shift_line(line: int, hunks: tuple[Hunk, ...]) -> int | None:
    """`line` of the old side moved past the hunks before it; None if a hunk replaced it."""
    offset = 0
    for hunk in hunks:
        if hunk.old_count and hunk.old_start <= line < hunk.old_start + hunk.old_count:
            return None
        last_before = hunk.old_start + hunk.old_count - 1 if hunk.old_count else hunk.old_start
        if line <= last_before:
            break
        offset += hunk.new_count - hunk.old_count
    return line + offset


def statement_moves(old: ast.Module, new: ast.Module) -> tuple[dict[int, set[int]], frozenset[int]]:
    """First lines of the statements of `old` that `new` still has, and where they are there.

    Statements are compared on their own syntax (a compound statement without the
    statements nested in it), function by function, and aligned with difflib: an unchanged
    function aligns whole, a changed one around its changes. Also returned: every statement
    start of `old`, so a caller can tell a changed statement from a line no statement owns.
    """
    old_units, new_units = _statements(old), _statements(new)
    moves: dict[int, set[int]] = {}
    for unit, before in old_units.items():
        after = new_units.get(unit, [])
        old_keys = [key for key, _line in before]
        new_keys = [key for key, _line in after]
        if old_keys == new_keys:
            pairs = [(0, 0, len(before))]
        else:
            matcher = difflib.SequenceMatcher(None, old_keys, new_keys, autojunk=False)
            pairs = [(a, b, size) for a, b, size in matcher.get_matching_blocks()]
        for old_index, new_index, size in pairs:
            for offset in range(size):
                moves.setdefault(before[old_index + offset][1], set()).add(
                    after[new_index + offset][1]
                )
    owned = frozenset(line for statements in old_units.values() for _key, line in statements)
    return moves, owned


def _statements(tree: ast.Module) -> dict[str, list[tuple[str, int]]]:
    """Per function qualname ("" for module level), its statements: (own syntax, first line).

    A class body belongs to the unit around it, as in scopes.function_scopes; a function's
    code is its own unit, so an edit in one function cannot shift the alignment of another.
    """
    units: dict[str, list[tuple[str, int]]] = {}
    _collect(tree.body, "", "", units)
    return units


def _collect(
    nodes: Sequence[ast.AST], unit: str, prefix: str, units: dict[str, list[tuple[str, int]]]
) -> None:
    for node in nodes:
        if isinstance(node, ast.stmt | ast.excepthandler):  # a case belongs to its `match`
            units.setdefault(unit, []).append((_own_syntax(node), _first_line(node)))
        inner_unit, inner_prefix = unit, prefix
        if isinstance(node, _FUNCTIONS):
            inner_unit = prefix + node.name
            inner_prefix = inner_unit + "."
        elif isinstance(node, ast.ClassDef):
            inner_prefix = f"{prefix}{node.name}."
        for name, value in ast.iter_fields(node):
            if name in _BLOCKS and isinstance(value, list):
                _collect(value, inner_unit, inner_prefix, units)


def _first_line(node: ast.stmt | ast.excepthandler) -> int:
    """A statement's first line as the map records it (decorators included)."""
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(decorator.lineno for decorator in decorators)])


def _own_syntax(node: ast.AST) -> str:
    """The statement without the statements nested in it, equal for equal code (no positions)."""
    parts = [type(node).__name__]
    for name, value in ast.iter_fields(node):
        if name == "cases":
            parts.append(_dump([(case.pattern, case.guard) for case in value]))
        elif name not in _BLOCKS:
            parts.append(f"{name}={_dump(value)}")
    return "\0".join(parts)


def _dump(value: object) -> str:
    if isinstance(value, ast.AST):
        return ast.dump(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_dump(item) for item in value) + "]"
    return repr(value)


# -- combining the base map and the re-run ------------------------------------------------


def _combine(base: MapData, fresh: MapData, keep: set[str], translation: Translation) -> MapData:
    """Carried tests and shared contexts from `base`, moved to HEAD, under `fresh`."""
    # The carried tests' lines are as blind to a stale installed copy as when recorded.
    outside = tuple(sorted(set(base.meta.outside).union(fresh.meta.outside)))
    merged = MapData(meta=replace(fresh.meta, outside=outside), collected=set(fresh.collected))
    for key, context in base.contexts.items():
        if key[0] != "test" or key[1] in keep:
            _add(merged, translation.key(key), translation.context(context))
    for key, context in fresh.contexts.items():
        if key[0] == "test":
            merged.contexts.pop(key, None)  # a re-run test's own lines replace the old ones
        _add(merged, key, context)
    merged.tests = {nodeid: base.tests[nodeid] for nodeid in keep}
    merged.tests.update(fresh.tests)
    _drop_unreachable(merged)
    return merged


def _add(data: MapData, key: ContextKey, context: Context) -> None:
    """Put `context` into `data` under `key`, united with what is there already.

    The first context of a key is taken as it is, not copied: both inputs of `_combine`
    are consumed, and copying every context of a large map costs more than the rest.
    """
    present = data.contexts.get(key)
    if present is None:
        data.contexts[key] = context
    else:
        _unite(present, context)


def _unite(target: Context, source: Context) -> None:
    target.early = target.early and source.early
    for path, bits in source.lines.items():
        old = target.lines.get(path)
        target.lines[path] = bits if old is None else numbits_union(old, bits)
    target.reads.update(source.reads)
    target.includes.update(source.includes)


def _drop_unreachable(data: MapData) -> None:
    """Forget contexts that no recorded test includes: no plan can reach them."""
    pending = [("test", nodeid) for nodeid in data.tests]
    reached: set[ContextKey] = set()
    while pending:
        key = pending.pop()
        context = data.contexts.get(key)
        if context is None or key in reached:
            continue
        reached.add(key)
        pending.extend(context.includes)
    data.contexts = {key: value for key, value in data.contexts.items() if key in reached}


def _paths(data: MapData) -> set[str]:
    paths: set[str] = set()
    for context in data.contexts.values():
        paths.update(context.lines)
        paths.update(context.reads)
    return paths
