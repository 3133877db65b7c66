"""Shared helpers for benchmarks that run a third-party test suite.

Benchmarks measure selector on code nobody here wrote, so their numbers cannot be tuned to our own
tests. Each suite comes from a pinned PyPI sdist (hash-checked, so a re-published file cannot
change the numbers silently), is unpacked under ``bench/.cache/`` and committed to a throwaway git
repository (selector records the commit), and runs in one virtualenv per Python version.
Everything is cached: a second benchmark run only measures.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = REPO_ROOT / "bench" / ".cache"


@dataclass(frozen=True)
class Sdist:
    """A source distribution pinned by version and by the sha256 of its archive."""

    name: str
    version: str
    sha256: str

    @property
    def stem(self) -> str:
        """The folder name the archive unpacks to, e.g. ``attrs-25.4.0``."""
        return f"{self.name}-{self.version}"


def run(
    cmd: Sequence[str | Path], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> str:
    """Run a setup step and return its stdout.

    Setup output is noise while it works and essential when it does not, so it is captured and only
    shown (with the command) on failure, which stops the benchmark: a half-built environment must
    never produce numbers.
    """
    done = subprocess.run(
        [str(part) for part in cmd], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"setup step failed ({done.returncode}): {' '.join(map(str, cmd))}")
    return done.stdout


def progress(message: str) -> None:
    """Say what slow setup is doing, on stderr so that stdout stays a pasteable report."""
    print(message, file=sys.stderr, flush=True)


def fetch_sdist(sdist: Sdist) -> Path:
    """Download the sdist once with pip (the only network access there is) and verify its hash."""
    folder = CACHE / "sdists"
    archive = folder / f"{sdist.stem}.tar.gz"
    if not archive.exists():
        progress(f"downloading {sdist.stem} sdist")
        folder.mkdir(parents=True, exist_ok=True)
        run(
            [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
             "--dest", folder, f"{sdist.name}=={sdist.version}"]
        )  # fmt: skip
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != sdist.sha256:
        raise SystemExit(f"{archive}: sha256 {digest}, expected {sdist.sha256}")
    return archive


def unpack(sdist: Sdist) -> Path:
    """Unpack the sdist into ``bench/.cache/suites/`` and return the suite folder.

    Unpacks next to the target and renames at the end, so an interrupted unpack is never mistaken
    for a complete one.
    """
    target = CACHE / "suites" / sdist.stem
    if target.exists():
        return target
    archive = fetch_sdist(sdist)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch, tarfile.open(archive) as tar:
        tar.extractall(scratch, filter="data")
        (Path(scratch) / sdist.stem).rename(target)
    return target


def git_snapshot(folder: Path, message: str) -> None:
    """Commit the folder as the first commit of a fresh repository, unless it already is one.

    Identity, signing and hooks are fixed on the command line so that the caller's git configuration
    can neither break nor change the snapshot.
    """
    if (folder / ".git").exists():
        return
    git: list[str | Path] = ["git", "-C", folder, "-c", "user.name=selector-bench", "-c",
           "user.email=bench@selector.invalid", "-c", "commit.gpgsign=false",
           "-c", "core.hooksPath=/dev/null"]  # fmt: skip
    run([*git, "init", "-q"])
    run([*git, "add", "-A"])
    run([*git, "commit", "-q", "-m", message])


def assert_pristine(folder: Path) -> None:
    """Stop unless the suite's tracked files are exactly as committed.

    The suite folder is shared by the benchmarks and some change its code on purpose (mutants);
    anything measured on changed code would be a number for some other suite.
    """
    changed = run(["git", "-C", folder, "status", "--porcelain", "--untracked-files=no"])
    if changed:
        raise SystemExit(f"{folder} differs from its commit:\n{changed}")


def python_version(interpreter: Path) -> str:
    """The ``major.minor`` an interpreter really is (a name or a pyenv shim can lie)."""
    return run([interpreter, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).strip()


def find_python(version: str) -> Path:
    """Find an interpreter for ``major.minor``: pyenv's installs first, then ``pythonX.Y`` on PATH.

    pyenv's real binaries come first because its shims on PATH resolve through the caller's pyenv
    configuration, which may point elsewhere.
    """
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    installs = sorted(
        (pyenv_root / "versions").glob(f"{version}.*/bin/python{version}"),
        key=lambda path: [int(part) for part in re.findall(r"\d+", path.parts[-3])],
    )
    on_path = [shutil.which(name) for name in (f"python{version}", "python3")]
    for candidate in [*reversed(installs), *(Path(found) for found in on_path if found)]:
        if python_version(candidate) == version:
            return candidate
    raise SystemExit(f"no Python {version} found (looked in {pyenv_root}/versions and on PATH)")


def make_venv(
    python: Path, folder: Path, requirements: Sequence[str], env: Mapping[str, str]
) -> Path:
    """Build a virtualenv with ``pip install <requirements>`` and return its interpreter.

    A stamp written last records what was installed (plus selector's own pyproject, whose
    dependencies may change): a matching stamp means the environment is complete and current;
    anything else rebuilds it from scratch rather than patching a half-known state.
    """
    venv_python = folder / "bin" / "python"
    stamp = folder / "bench-stamp.json"
    wanted = json.dumps(
        {
            "python": str(python),
            "requirements": list(requirements),
            "selector_pyproject": hashlib.sha256(
                (REPO_ROOT / "pyproject.toml").read_bytes()
            ).hexdigest(),
        },
        indent=1,
    )
    if stamp.exists() and stamp.read_text() == wanted:
        return venv_python
    progress(f"building {folder.name}")
    shutil.rmtree(folder, ignore_errors=True)
    run([python, "-m", "venv", folder])
    pip: list[str | Path] = [
        venv_python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]
    run([*pip, *requirements], env=env)
    stamp.write_text(wanted)
    return venv_python
