"""A real project in a real git repository, recorded by real pytest runs."""

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from selector.mapdb import MapData, read_map

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(path: Path, *args: str) -> str:
    """Run git in `path` and return its output."""
    env = {**os.environ, **GIT_ENV, "HOME": str(path)}
    completed = subprocess.run(
        ["git", *args], cwd=path, env=env, check=True, capture_output=True, text=True
    )
    return completed.stdout.strip()


# A function that 12 of the 17 tests run and one that the other 5 run: a change to `used`
# selects a part of the suite that shards can split.
SPLIT_SUITE = {
    "app.py": """
        def used(x):
            return x + 1


        def other(x):
            return x * 2
    """,
    **{
        f"test_used_{index}.py": f"""
            import pytest

            import app


            @pytest.mark.parametrize("x", [1, 2, 3])
            def test_used(x):
                assert app.used(x) == x + 1


            def test_plain_{index}():
                assert app.other({index}) == {index} * 2
        """
        for index in range(4)
    },
    "test_other.py": """
        import app


        def test_other():
            assert app.other(1) == 2
    """,
}


class Project:
    """A project in a temporary git repository, recorded with `pytest --selector-record`."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path
        git(self.path, "init", "-q", "-b", "main")
        # What pytester itself leaves in the project folder is not part of the project.
        (self.path / ".gitignore").write_text("/runpytest-*\n/stdout\n/stderr\n")

    def write(self, files: dict[str, str]) -> None:
        """Write files (dedented) relative to the project root."""
        for name, content in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(content).lstrip("\n"))

    def commit(self, message: str = "change") -> str:
        """Commit everything and return the new HEAD."""
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "--allow-empty", "-m", message)
        return git(self.path, "rev-parse", "HEAD")

    def record(self, *args: str) -> pytest.RunResult:
        """Run the suite in a fresh interpreter with recording on."""
        return self.pytester.runpytest_subprocess(
            "--selector-record", "-p", "no:cacheprovider", *args
        )

    def fragments(self) -> list[Path]:
        """Fragments the recording runs left."""
        folder = self.path / ".selector" / "fragments"
        return sorted(folder.glob("*.sqlite")) if folder.is_dir() else []

    def fragment(self) -> MapData:
        """The only fragment."""
        fragments = self.fragments()
        assert len(fragments) == 1, fragments
        return read_map(fragments[0])

    def line_of(self, path: str, text: str) -> int:
        """The number of the line of `path` that contains `text` (exactly one must)."""
        lines = (self.path / path).read_text().splitlines()
        found = [number for number, line in enumerate(lines, start=1) if text in line]
        assert len(found) == 1, (path, text, found)
        return found[0]
