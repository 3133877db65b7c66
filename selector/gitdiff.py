"""Everything selector needs from git, and the only module that talks to it.

Keeping git behind this small API means the rest of the project deals in plain shas, repo-relative
paths and hunks, and the GitPython pitfalls (path decoding, diff direction, per-file patch
processes) are handled once, here. A diff is parsed from one ``git diff --raw -z --patch -U0``
run: the NUL-separated raw records carry the exact path bytes, statuses and blob ids, and the
patch that follows carries the hunks and git's own binary verdict, in the same order.
"""

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import git

_SHA = re.compile(r"[0-9a-f]{40}")
_NULL_SHA = "0" * 40
# How much history a fetch hint asks for in a shallow clone: as many first-parent
# ancestors as a plan searches for a map.
SHALLOW_FETCH_DEPTH = 200
_GITLINK_MODE = "160000"
_STATUSES = {
    "A": "added",
    "D": "deleted",
    "M": "modified",
    "R": "renamed",
    "C": "copied",
    "T": "type_changed",
}
# Each file pair's part of the patch starts with this line (consumed whole: it holds paths).
_SECTION_HEADER = re.compile(rb"^diff --git [^\n]*\n", re.MULTILINE)
# The other patch lines that matter. Content lines start with "+", "-", " " or "\", so none of
# these patterns can match inside a file's text, however odd that text is.
_PATCH_LINE = re.compile(
    rb"""^(?:
        index\ [0-9a-f]+\.\.(?P<new_blob>[0-9a-f]+)
      | (?P<binary>Binary\ files\ )
      | @@\ -(?P<old_start>\d+)(?:,(?P<old_count>\d+))?
        \ \+(?P<new_start>\d+)(?:,(?P<new_count>\d+))?\ @@
    )""",
    re.MULTILINE | re.VERBOSE,
)
# Flags that pin `git diff` to one parseable output whatever the user's git config says: exact
# hunks (no context, no merged neighbours), full blob ids, no colour, no external or textconv
# drivers, paths from the top level, submodules as gitlink ids, and a submodule's own untracked
# files not counted as a change of the superproject.
_DIFF_ARGS = (
    "--raw",
    "-z",
    "--patch",
    "--unified=0",
    "--inter-hunk-context=0",
    "--find-renames",
    "--find-copies",
    "--no-abbrev",
    "--full-index",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--no-relative",
    "--submodule=short",
    "--ignore-submodules=untracked",
)
# GIT_DIFF_OPTS=--unified=N would silently override --unified=0; an empty value is ignored by git.
_DIFF_ENV = {"GIT_DIFF_OPTS": ""}
# Snapshot commits are selector's, not the user's: a fixed identity, so that a repository
# without user.name and user.email configured can have them too.
_SNAPSHOT_IDENTITY = {
    "GIT_AUTHOR_NAME": "selector",
    "GIT_AUTHOR_EMAIL": "selector@localhost",
    "GIT_COMMITTER_NAME": "selector",
    "GIT_COMMITTER_EMAIL": "selector@localhost",
}


class GitError(Exception):
    """A git problem the user must act on; str(error) is a one-line message saying what to do."""


def open_repo(path: Path) -> git.Repo | None:
    """The repository containing ``path`` (searching parents), or None when there is none.

    None rather than an exception because "not in a repository" is an expected situation the
    caller reports in its own words.
    """
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def repo_root(repo: git.Repo) -> Path:
    """The working tree's top level, resolved, so it compares equal to resolved file paths."""
    if repo.working_tree_dir is None:
        raise GitError(
            f"{repo.git_dir} is a bare repository: run selector in a clone with a working tree"
        )
    return Path(repo.working_tree_dir).resolve()


def head_commit(repo: git.Repo) -> str | None:
    """The sha HEAD points at, or None in a repository that has no commit yet."""
    try:
        return repo.head.commit.hexsha
    except ValueError:  # GitPython's way of saying HEAD is an unborn branch
        return None


def is_dirty(repo: git.Repo) -> bool:
    """Whether tracked files differ from HEAD, staged or not; untracked files do not count.

    One ``git status`` run, which refreshes stat information so that merely touched files are
    not reported. GIT_OPTIONAL_LOCKS=0 keeps it from rewriting the index behind the user's back.
    """
    output = _run(
        repo,
        "status",
        "--porcelain",
        "-z",
        "--untracked-files=no",
        env={"GIT_OPTIONAL_LOCKS": "0"},
    )
    return bool(output)


def is_detached(repo: git.Repo) -> bool:
    """Whether HEAD points at a commit directly rather than at a branch."""
    return repo.head.is_detached


def remote_branches_containing(repo: git.Repo, commit: str) -> list[str]:
    """Remote-tracking branches (``origin/main``) whose history contains ``commit``.

    As far as this clone knows: one ``git branch --remotes --contains`` run, no network.
    """
    _require_sha(commit)
    output = _run(repo, "branch", "--remotes", "--contains", commit, "--format=%(refname:short)")
    return output.decode().split()


def blob_id(data: bytes) -> str:
    """The id git gives a blob with these bytes (``git hash-object``), computed without git."""
    digest = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    digest.update(data)
    return digest.hexdigest()


def resolve_commit(repo: git.Repo, rev: str) -> str:
    """The commit sha a revision names (``origin/main``, a sha, ``HEAD~3``, a tag).

    A revision that is missing is the usual CI failure (shallow or single-branch checkouts), so
    the error says how to fetch it.
    """
    status, output, stderr = _git(
        repo, "rev_parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"
    )
    if status == 1:  # --quiet: the name does not resolve to a commit here
        raise GitError(_missing_revision_message(repo, rev))
    if status != 0:
        raise GitError(_failure_message(repo, "rev-parse", stderr))
    return output.decode().strip()


def merge_base(repo: git.Repo, a: str, b: str) -> str | None:
    """The best common ancestor of two revisions, or None when git finds none.

    None also covers a shallow clone whose history is cut before the common ancestor.
    """
    commits = resolve_commit(repo, a), resolve_commit(repo, b)
    status, output, stderr = _git(repo, "merge_base", "--end-of-options", *commits)
    if status == 1:  # git's answer for "no common ancestor"
        return None
    if status != 0:
        raise GitError(_failure_message(repo, "merge-base", stderr))
    return output.decode().strip()


def first_parent_ancestors(repo: git.Repo, rev: str, limit: int) -> list[str]:
    """``rev``'s commit, then its first-parent ancestors, newest first, at most ``limit``.

    First parents follow the mainline a branch was merged into, which is where maps are recorded.
    History ends quietly at a shallow clone's boundary, as git itself sees it.
    """
    if limit < 1:
        return []
    commit = resolve_commit(repo, rev)
    output = _run(repo, "rev_list", "--first-parent", f"--max-count={limit}", commit)
    return output.decode().split()


def has_commit(repo: git.Repo, sha: str) -> bool:
    """Whether the commit object itself is present locally (a shallow clone may lack it).

    Asked through GitPython's long-running ``cat-file --batch-check``, so checking many candidate
    commits costs no process each.
    """
    _require_sha(sha)
    try:
        _, kind, _ = repo.git.get_object_header(sha)
    except ValueError:  # git answered "missing"
        return False
    return _type_name(kind) == "commit"


def read_blob(repo: git.Repo, blob_sha: str) -> bytes:
    """The bytes of a blob, read through GitPython's long-running ``cat-file --batch``."""
    _require_sha(blob_sha)
    try:
        _, kind, _, data = repo.git.get_object_data(blob_sha)
    except ValueError as error:
        raise GitError(
            f"blob {blob_sha} is not in {_where(repo)}: fetch the commits that contain it"
        ) from error
    if _type_name(kind) != "blob":
        raise GitError(f"{blob_sha} is a {_type_name(kind)}, not a blob: pass a blob id")
    return data


def file_at(repo: git.Repo, commit: str, path: str) -> bytes | None:
    """The content of a repo-relative path at a commit; None if no file is there.

    Walks the commit's trees in process, because ``cat-file --batch`` cannot be handed a path
    that is not valid UTF-8. A directory or a submodule at ``path`` is not a file: None.
    """
    sha = commit if _SHA.fullmatch(commit) else resolve_commit(repo, commit)
    try:
        tree = git.Commit(repo, bytes.fromhex(sha)).tree
    except ValueError as error:
        raise GitError(_missing_revision_message(repo, commit)) from error
    try:
        item = tree.join(path)
    except KeyError:
        return None
    if not isinstance(item, git.Blob):
        return None
    data: bytes = item.data_stream.read()
    return data


@dataclass(frozen=True)
class Hunk:
    """One changed region, numbered as in a unified diff header.

    For a pure insertion ``old_start`` is the old line after which lines are inserted (0 = top);
    for a pure deletion ``new_start`` is the new line after which lines were removed.
    """

    old_start: int
    old_count: int
    new_start: int
    new_count: int


@dataclass(frozen=True)
class FileChange:
    """How one file differs between the two sides of a diff.

    Paths are repo-relative, '/'-separated, and decoded with os.fsdecode so that os.fsencode gives
    back the exact bytes git stores. For a gitlink the blob fields hold the submodule commit. For
    the working tree side, ``new_blob`` is the id git would store the file under; the blob itself
    is not written, so read the file rather than the blob.
    """

    status: str
    old_path: str | None
    new_path: str | None
    old_blob: str | None
    new_blob: str | None
    binary: bool
    submodule: bool
    mode_only: bool
    hunks: tuple[Hunk, ...]


def diff(
    repo: git.Repo, old_commit: str, new_commit: str = "HEAD", *, working_tree: bool = False
) -> list[FileChange]:
    """What changed from ``old_commit`` to ``new_commit``, with renames and copies found.

    With ``working_tree`` the new side is the working tree instead (``new_commit`` is ignored):
    tracked files as they are on disk, staged or not, plus untracked files that are not ignored,
    which appear as added. Only the trees of the two sides are read, so a shallow clone holding
    both commits is enough. Hunks have no context lines, so they are exactly the changed lines.
    """
    if not working_tree:
        return _diff(repo, old_commit, new_commit)
    # Untracked files join the diff as intent-to-add entries of a throwaway copy of the index, so
    # git itself decides what is ignored, what is binary and what was renamed, and the user's
    # index is never touched.
    with tempfile.TemporaryDirectory(prefix="selector-") as scratch:
        index = Path(scratch, "index")
        live_index = Path(repo.git_dir, "index")
        if live_index.exists():  # keeps staged content and git's stat cache; absent when empty
            shutil.copyfile(live_index, index)
        env = {"GIT_INDEX_FILE": str(index)}
        _run(repo, "add", "--intent-to-add", "--all", env=env)
        return _diff(repo, old_commit, env=env)


def snapshot(repo: git.Repo) -> str:
    """A commit of the working tree exactly as ``diff(..., working_tree=True)`` sees it.

    Tracked files as they are on disk and untracked files that are not ignored, on top of HEAD.
    The commit and its blobs go into the object database and nowhere else: no ref, no index,
    no working tree change (``git stash create`` does the same but leaves untracked files
    out). It is unreachable, so ``git gc`` prunes it once it is older than
    ``gc.pruneExpire`` (two weeks by default); whoever keeps its sha must expect that.
    """
    with tempfile.TemporaryDirectory(prefix="selector-") as scratch:
        index = Path(scratch, "index")
        live_index = Path(repo.git_dir, "index")
        if live_index.exists():  # git's stat cache: only changed files are hashed again
            shutil.copyfile(live_index, index)
        env = {"GIT_INDEX_FILE": str(index)}
        _run(repo, "add", "--all", env=env)
        tree = _run(repo, "write_tree", env=env).decode().strip()
    head = head_commit(repo)
    parent = ["-p", head] if head else []
    message = ["-m", "selector: working tree snapshot"]
    commit = _run(repo, "commit_tree", *parent, *message, tree, env=_SNAPSHOT_IDENTITY)
    return commit.decode().strip()


def tree_blobs(repo: git.Repo, commit: str) -> dict[str, str]:
    """Every file of ``commit``'s tree with its blob id (one ``git ls-tree`` run)."""
    output = _run(repo, "ls_tree", "-r", "-z", "--full-tree", "--end-of-options", commit)
    blobs = {}
    for record in output.split(b"\0"):
        if record:
            info, _, path = record.partition(b"\t")
            _mode, kind, sha = info.split(b" ")
            if kind == b"blob":
                blobs[os.fsdecode(path)] = sha.decode()
    return blobs


def working_tree_files(repo: git.Repo) -> list[str]:
    """Files of the working tree that git would see: tracked ones and untracked, unignored ones."""
    output = _run(repo, "ls_files", "-z", "--cached", "--others", "--exclude-standard")
    return sorted({os.fsdecode(path) for path in output.split(b"\0") if path})


def files_mentioning(repo: git.Repo, words: Iterable[str], commit: str | None) -> set[str]:
    """Files of ``commit`` (None: the working tree) in which any of ``words`` is a whole word.

    One ``git grep`` run; binary files count too, since any mention may be a use.
    """
    patterns = [argument for word in sorted(set(words)) for argument in ("-e", word)]
    if not patterns:
        return set()
    return _files_matching(repo, ["-w", "-F", *patterns], commit)


def _files_matching(
    repo: git.Repo, arguments: list[str], commit: str | None, *paths: str
) -> set[str]:
    """The files of ``commit`` (None: the working tree) that ``git grep -l`` matches."""
    where = [commit] if commit else ["--untracked"]
    status, output, stderr = _git(repo, "grep", "-z", "-l", *arguments, *where, "--", *paths)
    if status not in (0, 1):
        raise GitError(_failure_message(repo, "grep", stderr))
    prefix = f"{commit}:".encode() if commit else b""
    return {os.fsdecode(path.removeprefix(prefix)) for path in output.split(b"\0") if path}


def python_files_mentioning(
    repo: git.Repo, words: Iterable[str], commit: str
) -> dict[str, set[str]]:
    """For each word, the Python files of ``commit`` in which it occurs as a whole word.

    One ``git grep --only-matching`` run for all the words: each record is the file and one
    matching word, so a file name holding a newline is still read right (it ends at NUL).
    """
    wanted = sorted(set(words))
    found: dict[str, set[str]] = {word: set() for word in wanted}
    if not wanted:
        return found
    patterns = [argument for word in wanted for argument in ("-e", word)]
    status, output, stderr = _git(
        repo, "grep", "-z", "-o", "-w", "-F", *patterns, commit, "--", "*.py"
    )
    if status not in (0, 1):
        raise GitError(_failure_message(repo, "grep", stderr))
    prefix = f"{commit}:".encode()
    position = 0
    while position < len(output):
        separator = output.index(b"\0", position)
        end = output.index(b"\n", separator)
        path = os.fsdecode(output[position:separator].removeprefix(prefix))
        word = output[separator + 1 : end].decode("utf-8", "surrogateescape")
        if word in found:
            found[word].add(path)
        position = end + 1
    return found


def python_files_mentioning_all(repo: git.Repo, words: Iterable[str], commit: str) -> set[str]:
    """Python files of ``commit`` in which every one of ``words`` occurs as a whole word."""
    patterns = [argument for word in sorted(set(words)) for argument in ("-e", word)]
    return _files_matching(repo, ["-w", "-F", "--all-match", *patterns], commit, "*.py")


def python_files_reading_attribute(repo: git.Repo, name: str, commit: str) -> set[str]:
    """Python files of ``commit`` where ``name`` follows a dot or is a whole quoted string,
    or that star-import a package relatively (`from . import *`).

    Those are the places that can read a module's global without naming the module in the
    same file (`module.NAME` on a module found at run time, `getattr(module, "NAME")`, a
    bare `NAME` copied from the package's `__init__`). ``name`` is an identifier, so it
    needs no escaping in a regular expression.
    """
    patterns = [
        rf"\.[[:space:]]*{name}([^[:alnum:]_]|$)",
        f"[\"']{name}[\"']",
        r"from[[:space:]]+\.+[[:space:]]*import[[:space:]]+\*",
    ]
    arguments = [argument for pattern in patterns for argument in ("-e", pattern)]
    return _files_matching(repo, ["-E", *arguments], commit, "*.py")


@dataclass
class _Raw:
    """One record of ``git diff --raw -z``: modes, blob ids, status letter and paths."""

    old_mode: str
    new_mode: str
    old_blob: str
    new_blob: str
    status: str
    old_path: str
    new_path: str


@dataclass
class _Section:
    """What one ``diff --git`` section of the patch says about its file pair."""

    new_blob: str | None = None
    binary: bool = False
    hunks: list[Hunk] = field(default_factory=list)


def _diff(repo: git.Repo, *revisions: str, env: dict[str, str] | None = None) -> list[FileChange]:
    """Run one ``git diff`` over ``revisions`` and turn its output into FileChanges."""
    status, output, stderr = _git(
        repo,
        "diff",
        *_DIFF_ARGS,
        "--end-of-options",
        *revisions,
        "--",
        env={**_DIFF_ENV, **(env or {})},
    )
    if status != 0:
        for revision in revisions:
            resolve_commit(repo, revision)  # raises the fetch advice when a side is missing
        raise GitError(_failure_message(repo, "diff", stderr))
    records, patch = _parse_raw(output)
    sections = _parse_patch(patch)
    return [_file_change(record, sections) for record in records]


def _parse_raw(output: bytes) -> tuple[list[_Raw], bytes]:
    """Split ``--raw -z --patch`` output into its raw records and the patch text after them.

    Each record is ``:modes shas status`` NUL path NUL (NUL second path for renames and copies);
    one more NUL separates the records from the patch.
    """
    records = []
    position = 0
    while output.startswith(b":", position):
        end = output.index(b"\0", position)
        old_mode, new_mode, old_blob, new_blob, status = output[position + 1 : end].decode().split()
        paths = []
        for _ in range(2 if status[0] in "RC" else 1):
            start, end = end + 1, output.index(b"\0", end + 1)
            paths.append(os.fsdecode(output[start:end]))
        records.append(_Raw(old_mode, new_mode, old_blob, new_blob, status[0], paths[0], paths[-1]))
        position = end + 1
    return records, output[position + 1 :]


def _parse_patch(patch: bytes) -> Iterator[_Section]:
    """The patch's ``diff --git`` sections in order, reading only the lines that matter."""
    for text in _SECTION_HEADER.split(patch)[1:]:  # [0] is the empty text before the first
        section = _Section()
        for line in _PATCH_LINE.finditer(text):
            if line["new_blob"]:
                section.new_blob = line["new_blob"].decode()
            elif line["binary"]:
                section.binary = True
            else:
                section.hunks.append(
                    Hunk(
                        int(line["old_start"]),
                        int(line["old_count"] or 1),
                        int(line["new_start"]),
                        int(line["new_count"] or 1),
                    )
                )
        yield section


def _file_change(record: _Raw, sections: Iterator[_Section]) -> FileChange:
    """Combine a raw record with its patch section(s) into the public FileChange.

    A type change (file to symlink, file to submodule) is printed as a deletion section followed
    by an addition section; its hunk spans the whole old content and the whole new content.
    """
    section = next(sections)
    hunks = tuple(section.hunks)
    if record.status == "T":
        added = next(sections)
        section = _Section(added.new_blob, section.binary or added.binary)
        hunks = _whole_file_hunks(hunks, tuple(added.hunks))
    submodule = _GITLINK_MODE in (record.old_mode, record.new_mode)
    new_blob = record.new_blob
    if new_blob == _NULL_SHA:  # a working tree file git has not stored; its id is in the patch
        new_blob = section.new_blob or record.old_blob  # no index line: content is unchanged
    return FileChange(
        status=_STATUSES[record.status],
        old_path=None if record.status == "A" else record.old_path,
        new_path=None if record.status == "D" else record.new_path,
        old_blob=None if record.status == "A" else record.old_blob,
        new_blob=None if record.status == "D" else new_blob,
        binary=section.binary,
        submodule=submodule,
        mode_only=record.status == "M"
        and record.old_blob == new_blob
        and record.old_mode != record.new_mode,
        hunks=() if submodule or section.binary else hunks,
    )


def _whole_file_hunks(removed: tuple[Hunk, ...], added: tuple[Hunk, ...]) -> tuple[Hunk, ...]:
    """One hunk replacing all old lines by all new lines, from a deletion and an addition diff."""
    if not removed and not added:
        return ()
    old = removed[0] if removed else Hunk(0, 0, 0, 0)
    new = added[0] if added else Hunk(0, 0, 0, 0)
    return (Hunk(old.old_start, old.old_count, new.new_start, new.new_count),)


def _git(
    repo: git.Repo, command: str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, bytes, str]:
    """Run ``git <command> <args>`` through GitPython; exit status, exact stdout bytes, stderr.

    Arguments go to git as argv, so paths and revisions need no quoting. GitPython would strip
    the last newline of stdout by default; the parsers here need the bytes as git wrote them.
    """
    status, stdout, stderr = getattr(repo.git, command)(
        *args,
        env=env,
        with_extended_output=True,
        with_exceptions=False,
        stdout_as_string=False,
        strip_newline_in_stdout=False,
    )
    return status, stdout, stderr


def _run(repo: git.Repo, command: str, *args: str, env: dict[str, str] | None = None) -> bytes:
    """Run a git command that is expected to succeed; its stdout, or GitError."""
    status, stdout, stderr = _git(repo, command, *args, env=env)
    if status != 0:
        raise GitError(_failure_message(repo, command.replace("_", "-"), stderr))
    return stdout


def _failure_message(repo: git.Repo, command: str, stderr: str) -> str:
    """One line: which git command failed where, git's own reason, and a fix when one is known."""
    if "safe.directory" in stderr:
        root = _where(repo)
        return (
            f"git refuses to work in {root} because another user owns it: "
            f"run `git config --global --add safe.directory {root}`"
        )
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
    reason = (errors or lines or ["git gave no reason"])[0]
    return f"`git {command}` failed in {_where(repo)}: {reason}"


def _missing_revision_message(repo: git.Repo, rev: str) -> str:
    """Say that ``rev`` is not here and give a command that makes it resolve.

    ``git fetch origin main`` alone does not create ``origin/main`` in a single-branch
    clone (its refspec names one other branch), so a remote branch is fetched with an
    explicit refspec; in a shallow clone with a depth, so that the map of an ancestor can
    be found. Where the remote does not exist, the fix is another revision or the remote.
    """
    remotes = [each.name for each in repo.remotes]
    remote, _, branch = rev.partition("/")
    if branch and remote in remotes:
        fix = f"fetch it (`{fetch_branch_command(repo, remote, branch)}`; in GitHub Actions, "
        fix += "actions/checkout with fetch-depth: 0) or check the name"
    elif branch and remote == "origin":  # the default base, in a clone without origin
        fix = f"this clone has no remote {remote!r}: " + _other_base(repo, remotes, branch)
    elif remotes:
        fix = f"fetch it (`git fetch {_remote(remotes)} {rev}`) or check the name"
    else:
        fix = "this clone has no remote to fetch it from: check the name"
    return f"revision {rev!r} is not a commit in {_where(repo)}: {fix}"


def fetch_branch_command(repo: git.Repo, remote: str, branch: str) -> str:
    """The command that creates ``remote/branch`` here, whatever the clone's refspecs."""
    depth = f" --depth={SHALLOW_FETCH_DEPTH}" if is_shallow(repo) else ""
    return f"git fetch{depth} {remote} +refs/heads/{branch}:refs/remotes/{remote}/{branch}"


def fetch_commit_command(repo: git.Repo, sha: str) -> str | None:
    """The command that fetches one commit (by its sha), or None without a remote.

    A shallow clone fetches the commit alone; a full one keeps its history whole.
    """
    remotes = [each.name for each in repo.remotes]
    depth = " --depth=1" if is_shallow(repo) else ""
    return f"git fetch{depth} {_remote(remotes)} {sha}" if remotes else None


def is_shallow(repo: git.Repo) -> bool:
    """Whether the clone's history is cut (``git clone --depth``)."""
    return (Path(repo.common_dir) / "shallow").is_file()


def _remote(remotes: list[str]) -> str:
    """The remote to fetch from: origin if there is one, else the first."""
    return "origin" if "origin" in remotes else remotes[0]


def _other_base(repo: git.Repo, remotes: list[str], branch: str) -> str:
    """What to compare with instead of a branch of a remote this clone does not have."""
    if branch in {head.name for head in repo.heads}:
        return f"use the local branch instead (`--base {branch}`)"
    if remotes:
        other = _remote(remotes)
        command = fetch_branch_command(repo, other, branch)
        return f"use `--base {other}/{branch}` after `{command}`"
    command = fetch_branch_command(repo, "origin", branch)
    return (
        f"add it (`git remote add origin URL`, then `{command}`) or use a branch or commit "
        "of this clone"
    )


def _where(repo: git.Repo) -> str:
    """The directory to name in messages: the working tree, or the git directory if bare."""
    return os.fspath(repo.working_tree_dir or repo.git_dir)


def _type_name(kind: str | bytes) -> str:
    """An object type from GitPython's cat-file helpers, which return bytes though typed str."""
    return os.fsdecode(kind)


def _require_sha(sha: str) -> None:
    """Reject anything but a full lowercase sha before it reaches a cat-file batch process.

    A stray newline would desynchronise the long-running process for every later call in older
    GitPython releases, and only full shas name a commit the same way in every clone.
    """
    if not _SHA.fullmatch(sha):
        raise ValueError(f"expected a 40-hex sha, got {sha!r}")
