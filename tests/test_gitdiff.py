"""selector.gitdiff against real repositories built in tmp_path with the git command line.

No mocks: the point of gitdiff is to read git's output correctly, so every test makes git
produce the situation (renames, shallow clones, odd file names, hostile config) for real.
"""

import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import git
import pytest

from selector.gitdiff import (
    FileChange,
    GitError,
    Hunk,
    blob_id,
    diff,
    file_at,
    first_parent_ancestors,
    has_commit,
    head_commit,
    is_dirty,
    merge_base,
    open_repo,
    read_blob,
    repo_root,
    resolve_commit,
)

TEN_LINES = "".join(f"line {n}\n" for n in range(1, 11))


@pytest.fixture(autouse=True)
def isolated_git_config(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shield the tests from the machine's git config, so they pass the same everywhere."""
    empty = tmp_path_factory.mktemp("home") / "gitconfig"
    empty.touch()
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def run_git(cwd: Path, *args: str) -> str:
    """Run git as a user would, with an identity, so commits work on a machine without config."""
    command = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args]
    result = subprocess.run(command, cwd=cwd, capture_output=True, check=False)
    assert result.returncode == 0, os.fsdecode(result.stderr)
    return os.fsdecode(result.stdout).strip()


def write(root: Path, files: Mapping[str, str | bytes | None]) -> None:
    """Create, overwrite or (for None) delete files under root."""
    for name, content in files.items():
        path = root / name
        if content is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def commit(
    root: Path, files: Mapping[str, str | bytes | None] | None = None, message: str = "c"
) -> str:
    """Apply ``files``, commit everything, return the new commit's sha."""
    write(root, files or {})
    run_git(root, "add", "--all")
    run_git(root, "commit", "--quiet", "--allow-empty", "-m", message)
    return run_git(root, "rev-parse", "HEAD")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty repository on branch main."""
    path = tmp_path / "repo"
    path.mkdir()
    run_git(path, "init", "--quiet", "--initial-branch=main")
    return path


@pytest.fixture
def repo(root: Path) -> Iterator[git.Repo]:
    """The GitPython handle on ``root``, closed afterwards to end its cat-file processes."""
    opened = open_repo(root)
    assert opened is not None
    yield opened
    opened.close()


def only(changes: list[FileChange]) -> FileChange:
    """The single change a test expects."""
    assert len(changes) == 1, changes
    return changes[0]


def by_path(changes: list[FileChange]) -> dict[str, FileChange]:
    """Changes keyed by their new path (old path for deletions)."""
    return {str(change.new_path or change.old_path): change for change in changes}


def test_modified_file_hunks_are_exact(root: Path, repo: git.Repo) -> None:
    old = commit(root, {"m.py": TEN_LINES})
    lines = TEN_LINES.splitlines(keepends=True)
    lines.insert(3, "inserted a\ninserted b\n")  # after old line 3
    lines[6] = ""  # delete old line 6 (index shifted by the insertion)
    lines[8] = "line eight\n"  # replace old line 8
    new = commit(root, {"m.py": "top\n" + "".join(lines)})

    change = only(diff(repo, old, new))

    assert change.status == "modified"
    assert (change.old_path, change.new_path) == ("m.py", "m.py")
    assert change.hunks == (
        Hunk(0, 0, 1, 1),  # pure insertion at the top
        Hunk(3, 0, 5, 2),  # pure insertion after old line 3
        Hunk(6, 1, 8, 0),  # deletion of old line 6, after new line 8
        Hunk(8, 1, 10, 1),  # replacement
    )
    assert change.old_blob == blob_id(TEN_LINES.encode())
    assert change.new_blob == run_git(root, "rev-parse", f"{new}:m.py")
    assert not (change.binary or change.submodule or change.mode_only)


def test_new_commit_defaults_to_head(root: Path, repo: git.Repo) -> None:
    old = commit(root, {"a.py": "a\n"})
    commit(root, {"a.py": "b\n"})
    assert diff(repo, old) == diff(repo, old, "HEAD")
    assert only(diff(repo, old)).hunks == (Hunk(1, 1, 1, 1),)


def test_added_and_deleted_files_have_one_whole_file_hunk(root: Path, repo: git.Repo) -> None:
    old = commit(root, {"gone.py": "a\nb\nc\n", "stay.py": "x\n"})
    new = commit(root, {"gone.py": None, "new.py": "1\n2\n", "empty.py": ""})

    changes = by_path(diff(repo, old, new))

    assert set(changes) == {"gone.py", "new.py", "empty.py"}
    deleted, added = changes["gone.py"], changes["new.py"]
    assert (deleted.status, deleted.new_path, deleted.new_blob) == ("deleted", None, None)
    assert deleted.hunks == (Hunk(1, 3, 0, 0),)
    assert (added.status, added.old_path, added.old_blob) == ("added", None, None)
    assert added.hunks == (Hunk(0, 0, 1, 2),)
    assert changes["empty.py"].hunks == ()  # nothing to cover, as git prints no hunk


def test_rename_without_edits(root: Path, repo: git.Repo) -> None:
    old = commit(root, {"pkg/old_name.py": TEN_LINES})
    run_git(root, "mv", "pkg/old_name.py", "pkg/new_name.py")
    new = commit(root)

    change = only(diff(repo, old, new))

    assert change.status == "renamed"
    assert (change.old_path, change.new_path) == ("pkg/old_name.py", "pkg/new_name.py")
    assert change.old_blob == change.new_blob
    assert change.hunks == ()


def test_rename_with_edits_has_hunks_between_old_and_new_content(
    root: Path, repo: git.Repo
) -> None:
    old = commit(root, {"a.py": TEN_LINES})
    new = commit(root, {"a.py": None, "b.py": TEN_LINES.replace("line 5\n", "line five\n")})

    change = only(diff(repo, old, new))

    assert (change.status, change.old_path, change.new_path) == ("renamed", "a.py", "b.py")
    assert change.hunks == (Hunk(5, 1, 5, 1),)
    assert change.old_blob != change.new_blob


def test_copy_is_detected_from_a_modified_source(root: Path, repo: git.Repo) -> None:
    old = commit(root, {"src.py": TEN_LINES})
    new = commit(
        root,
        {
            "src.py": TEN_LINES + "line 11\n",  # -C takes copy sources among modified files
            "copy.py": TEN_LINES.replace("line 2\n", "line two\n"),
        },
    )

    changes = by_path(diff(repo, old, new))

    copied = changes["copy.py"]
    assert (copied.status, copied.old_path) == ("copied", "src.py")
    assert copied.hunks == (Hunk(2, 1, 2, 1),)
    assert changes["src.py"].status == "modified"
    assert changes["src.py"].hunks == (Hunk(10, 0, 11, 1),)


def test_binary_file_has_no_hunks(root: Path, repo: git.Repo) -> None:
    old = commit(root, {"data.bin": b"\x00\x01\x02text\n", "a.txt": "a\n"})
    new = commit(root, {"data.bin": b"\x00\x01\x03text\n", "b.bin": b"\x00" * 10})

    changes = by_path(diff(repo, old, new))

    assert changes["data.bin"].binary
    assert changes["data.bin"].hunks == ()
    assert (changes["b.bin"].status, changes["b.bin"].binary) == ("added", True)


def test_mode_only_change(root: Path, repo: git.Repo) -> None:
    old = commit(root, {"run.sh": "echo hi\n"})
    (root / "run.sh").chmod(0o755)
    new = commit(root)

    change = only(diff(repo, old, new))

    assert (change.status, change.mode_only, change.hunks) == ("modified", True, ())
    assert change.old_blob == change.new_blob


def test_type_change_replaces_the_whole_file(root: Path, repo: git.Repo) -> None:
    old = commit(root, {"target.txt": "t\n", "link": "a\nb\n"})
    (root / "link").unlink()
    (root / "link").symlink_to("target.txt")
    new = commit(root)

    change = only(diff(repo, old, new))

    assert (change.status, change.old_path, change.new_path) == ("type_changed", "link", "link")
    assert change.hunks == (Hunk(1, 2, 1, 1),)
    assert change.new_blob == blob_id(b"target.txt")


def test_submodule_gitlink(root: Path, repo: git.Repo) -> None:
    first = commit(root, {"a.py": "a\n"})
    second = commit(root, {"a.py": "b\n"})
    (root / "vendor" / "lib").mkdir(parents=True)  # an unpopulated submodule, not a deleted one
    run_git(root, "update-index", "--add", "--cacheinfo", f"160000,{first},vendor/lib")
    added_at = commit(root)
    run_git(root, "update-index", "--cacheinfo", f"160000,{second},vendor/lib")
    moved_at = commit(root)

    added = only(diff(repo, second, added_at))
    moved = only(diff(repo, added_at, moved_at))

    assert (added.status, added.new_path, added.submodule) == ("added", "vendor/lib", True)
    assert (added.new_blob, added.hunks, added.binary) == (first, (), False)
    assert (moved.status, moved.submodule, moved.old_blob, moved.new_blob) == (
        "modified",
        True,
        first,
        second,
    )
    assert moved.hunks == ()


def fs_name(raw: bytes, root: Path) -> str:
    """The str that os.fsencode turns back into ``raw``, skipping if the filesystem refuses it."""
    name = os.fsdecode(raw)
    try:
        write(root, {name: "probe\n"})
    except (OSError, UnicodeError) as error:
        pytest.skip(f"filesystem refuses the file name {raw!r}: {error}")
    (root / name).unlink()
    return name


@pytest.mark.parametrize("quote_path", ["true", "false"])
def test_awkward_file_names_round_trip(root: Path, repo: git.Repo, quote_path: str) -> None:
    run_git(root, "config", "core.quotePath", quote_path)
    raw_names = [b"caf\xe9.py", "na\u00efve.py".encode(), b"with space.py", b"tab\there.py"]
    raw_names += [b'quote"d.py', b"back\\slash.py", b"new\nline.py", b"dir with space/x y.py"]
    names = [fs_name(raw, root) for raw in raw_names]
    old = commit(root, dict.fromkeys(names, "one\n"))
    new = commit(root, dict.fromkeys(names, "two\n"))

    changes = diff(repo, old, new)

    assert sorted(os.fsencode(str(change.new_path)) for change in changes) == sorted(raw_names)
    assert all(change.hunks == (Hunk(1, 1, 1, 1),) for change in changes)
    latin1 = os.fsdecode(b"caf\xe9.py")
    assert file_at(repo, old, latin1) == b"one\n"

    run_git(root, "mv", latin1, "renamed.py")
    renamed = only(diff(repo, new, commit(root)))
    assert (renamed.status, renamed.old_path) == ("renamed", latin1)
    assert renamed.old_path is not None
    assert os.fsencode(renamed.old_path) == b"caf\xe9.py"


def test_user_config_cannot_change_the_output(
    root: Path, repo: git.Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = commit(root, {"pkg/a.py": TEN_LINES, "pkg/b.py": TEN_LINES})
    new = commit(
        root,
        {"pkg/a.py": TEN_LINES.replace("line 3\n", "3\n").replace("line 6\n", "6\n")},
    )
    expected = diff(repo, old, new)
    hostile = {
        "diff.noprefix": "true",
        "diff.mnemonicPrefix": "true",
        "diff.context": "7",
        "diff.interHunkContext": "10",
        "diff.renames": "false",
        "diff.relative": "true",
        "diff.external": "false",
        "color.ui": "always",
        "core.abbrev": "7",
    }
    for key, value in hostile.items():
        run_git(root, "config", key, value)
    monkeypatch.setenv("GIT_DIFF_OPTS", "--unified=5")
    monkeypatch.chdir(root / "pkg")

    assert diff(repo, old, new) == expected
    assert only(expected).hunks == (Hunk(3, 1, 3, 1), Hunk(6, 1, 6, 1))


def test_working_tree_diff_sees_staged_unstaged_and_untracked(root: Path, repo: git.Repo) -> None:
    files = {n: f"{n}\n" for n in ("staged.py", "unstaged.py", "deleted.py", "touched.py")}
    base = commit(root, {**files, ".gitignore": "*.log\n"})
    commit(root, {"later.py": "x\n"})
    write(root, {"staged.py": "staged\nmore\n"})
    run_git(root, "add", "staged.py")
    write(root, {"unstaged.py": "changed\n", "deleted.py": None, "new.py": "n\n", "x.log": "ig\n"})
    (root / "touched.py").touch()
    status_before = run_git(root, "status", "--porcelain")

    changes = by_path(diff(repo, base, working_tree=True))

    assert set(changes) == {"staged.py", "unstaged.py", "deleted.py", "new.py", "later.py"}
    assert changes["staged.py"].hunks == (Hunk(1, 1, 1, 2),)
    assert changes["unstaged.py"].hunks == (Hunk(1, 1, 1, 1),)
    assert changes["unstaged.py"].new_blob == blob_id(b"changed\n")
    assert changes["deleted.py"].status == "deleted"
    assert (changes["new.py"].status, changes["new.py"].hunks) == ("added", (Hunk(0, 0, 1, 1),))
    assert changes["new.py"].new_blob == blob_id(b"n\n")
    assert run_git(root, "status", "--porcelain") == status_before  # the user's index untouched


def test_working_tree_diff_sees_an_unstaged_move_and_chmod(root: Path, repo: git.Repo) -> None:
    base = commit(root, {"old.py": TEN_LINES, "run.sh": "echo hi\n"})
    (root / "old.py").rename(root / "new.py")
    (root / "run.sh").chmod(0o755)

    changes = by_path(diff(repo, base, working_tree=True))

    assert set(changes) == {"new.py", "run.sh"}
    assert (changes["new.py"].status, changes["new.py"].old_path) == ("renamed", "old.py")
    assert changes["new.py"].hunks == ()
    assert (changes["run.sh"].mode_only, changes["run.sh"].new_blob) == (
        True,
        blob_id(b"echo hi\n"),
    )


def test_working_tree_in_a_repository_without_commits_needs_a_base(root: Path) -> None:
    opened = open_repo(root)
    assert opened is not None
    with pytest.raises(GitError, match="'HEAD'"):
        diff(opened, "HEAD", working_tree=True)


@pytest.fixture
def shallow(tmp_path: Path, root: Path) -> tuple[Path, list[str]]:
    """A depth-1 clone of a four-commit history, plus the first commit fetched at depth 1."""
    lines = TEN_LINES.splitlines(keepends=True)
    shas = [commit(root, {"a.py": "".join(lines[: 2 * n])}, f"c{n}") for n in range(1, 5)]
    run_git(root, "config", "uploadpack.allowAnySHA1InWant", "true")
    clone = tmp_path / "clone"
    run_git(tmp_path, "clone", "--quiet", "--depth", "1", root.as_uri(), str(clone))
    run_git(clone, "fetch", "--quiet", "--depth", "1", "origin", shas[0])
    return clone, shas


def test_shallow_clone_diffs_two_fetched_commits(
    shallow: tuple[Path, list[str]], repo: git.Repo
) -> None:
    clone_path, shas = shallow
    clone = open_repo(clone_path)
    assert clone is not None

    assert diff(clone, shas[0], shas[3]) == diff(repo, shas[0], shas[3])
    assert only(diff(clone, shas[0], shas[3])).hunks == (Hunk(2, 0, 3, 6),)
    assert has_commit(clone, shas[0])
    assert not has_commit(clone, shas[1])
    assert has_commit(repo, shas[1])
    assert first_parent_ancestors(clone, "HEAD", 10) == [shas[3]]
    assert merge_base(clone, shas[0], shas[3]) is None
    assert merge_base(repo, shas[0], shas[3]) == shas[0]
    with pytest.raises(GitError, match="fetch"):
        diff(clone, shas[1], shas[3])


def test_resolve_commit(root: Path, repo: git.Repo) -> None:
    first = commit(root)
    second = commit(root)
    run_git(root, "tag", "-a", "v1", "-m", "tag", first)
    run_git(root, "remote", "add", "origin", "https://example.invalid/repo.git")

    assert resolve_commit(repo, "HEAD") == second
    assert resolve_commit(repo, "HEAD~1") == first
    assert resolve_commit(repo, first[:10]) == first
    assert resolve_commit(repo, "v1") == first  # an annotated tag peels to its commit
    with pytest.raises(GitError) as unknown:
        resolve_commit(repo, "origin/main")
    message = str(unknown.value)
    assert "'origin/main'" in message
    assert "git fetch origin +refs/heads/main:refs/remotes/origin/main" in message
    assert "\n" not in message
    with pytest.raises(GitError, match="--output=x"):  # an argument, never an option
        resolve_commit(repo, "--output=x")
    assert not (root / "x").exists()


def test_first_parent_ancestors_follow_the_mainline(root: Path, repo: git.Repo) -> None:
    a = commit(root, {"f.py": "a\n"}, "a")
    b = commit(root, {"f.py": "b\n"}, "b")
    run_git(root, "checkout", "--quiet", "-b", "side", a)
    side = [commit(root, {"s.py": f"{n}\n"}, f"s{n}") for n in range(2)]
    run_git(root, "checkout", "--quiet", "main")
    run_git(root, "merge", "--quiet", "--no-ff", "-m", "merge", "side")
    merge = run_git(root, "rev-parse", "HEAD")
    c = commit(root, {"f.py": "c\n"}, "c")

    assert first_parent_ancestors(repo, "main", 10) == [c, merge, b, a]
    assert first_parent_ancestors(repo, "main", 2) == [c, merge]
    assert first_parent_ancestors(repo, "side", 10) == [side[1], side[0], a]
    assert first_parent_ancestors(repo, "main", 0) == []
    assert merge_base(repo, "side", b) == a
    with pytest.raises(GitError, match="nope"):
        first_parent_ancestors(repo, "nope", 3)


def test_unrelated_histories_have_no_merge_base(root: Path, repo: git.Repo) -> None:
    main = commit(root, {"a.py": "a\n"})
    run_git(root, "checkout", "--quiet", "--orphan", "other")
    other = commit(root, {"b.py": "b\n"})
    assert merge_base(repo, main, other) is None


@pytest.mark.parametrize("data", [b"", b"hello\n", b"\x00\xff binary", "caf\u00e9\n".encode()])
def test_blob_id_matches_git_hash_object(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert blob_id(data) == run_git(tmp_path, "hash-object", "--no-filters", str(path))


def test_read_blob_and_file_at(root: Path, repo: git.Repo) -> None:
    old = commit(root, {"pkg/mod.py": "v1\n", "top.txt": "t\n"})
    commit(root, {"pkg/mod.py": "v2\n"})
    blob = run_git(root, "rev-parse", f"{old}:pkg/mod.py")

    assert read_blob(repo, blob) == b"v1\n"
    assert file_at(repo, old, "pkg/mod.py") == b"v1\n"
    assert file_at(repo, "HEAD", "pkg/mod.py") == b"v2\n"
    assert file_at(repo, old, "pkg/missing.py") is None
    assert file_at(repo, old, "pkg") is None  # a directory is not a file
    assert file_at(repo, old, "top.txt/x") is None
    with pytest.raises(GitError, match="not a blob"):
        read_blob(repo, old)
    with pytest.raises(GitError, match="fetch"):
        read_blob(repo, "1" * 40)
    with pytest.raises(GitError, match="'nope'"):
        file_at(repo, "nope", "top.txt")


def test_is_dirty(root: Path, repo: git.Repo) -> None:
    commit(root, {"a.py": "a\n"})
    assert not is_dirty(repo)
    write(root, {"untracked.py": "u\n"})
    (root / "a.py").touch()
    assert not is_dirty(repo)
    write(root, {"a.py": "changed\n"})
    assert is_dirty(repo)
    run_git(root, "add", "a.py")
    write(root, {"a.py": "a\n"})  # staged change, working tree back to HEAD's content
    assert is_dirty(repo)


def test_open_repo_and_root(tmp_path: Path, root: Path) -> None:
    (root / "sub" / "dir").mkdir(parents=True)
    nested = open_repo(root / "sub" / "dir")
    assert nested is not None
    assert repo_root(nested) == root.resolve()
    assert open_repo(tmp_path / "elsewhere") is None
    (tmp_path / "plain").mkdir()
    assert open_repo(tmp_path / "plain") is None


def test_empty_repository_has_no_head_commit(root: Path, repo: git.Repo) -> None:
    assert head_commit(repo) is None
    assert not is_dirty(repo)
    first = commit(root)
    assert head_commit(repo) == first


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_dubious_ownership_says_how_to_allow_it(root: Path) -> None:
    commit(root, {"a.py": "a\n"})
    subprocess.run(["chown", "-R", "4242:4242", str(root)], check=True)
    opened = open_repo(root)
    assert opened is not None
    with pytest.raises(GitError, match=r"safe\.directory") as refused:
        is_dirty(opened)
    assert "\n" not in str(refused.value)
