"""Every command against every bad environment: an exit status and one `selector:` line,
never a traceback.

The environments are built once per module from one recorded project, and each case runs
in its own copy, so no command sees what another one wrote.
"""

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sample import FILES, build_project
from stored_maps import only_map_file

from selector.store import LocalStore, compress, map_name

# Without CAP_DAC_OVERRIDE root obeys permission bits like any user, so a read-only
# folder is read-only for the command under test too.
AS_USER = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
PROJECT = {name: text for name, text in FILES.items() if name != "tests/test_failing.py"}
FOREIGN_COMMIT = "f" * 40

COMMANDS: dict[str, list[str]] = {
    "plan": ["selector", "plan", "--base", "main", "--format", "json"],
    "upload-map": ["selector", "upload-map"],
    "lookup": ["selector", "lookup", "src/shop/pricing.py:5", "--format", "list"],
    "why": ["selector", "why", "tests/test_pricing.py::test_net"],
    "export": ["selector", "export", "--csv", "map.csv"],
    "stats": ["selector", "stats"],
    "maps list": ["selector", "maps", "list"],
    "run --dry-run": ["selector", "run", "--dry-run"],
    "--selector-record": ["pytest", "--selector-record"],
    "--selector-plan": ["pytest", "--selector-plan={plan}"],
}

# The exit status of each command in each environment; what is not listed exits 0.
# 1: a `selector: error:` line; 4: pytest's usage error, `ERROR: selector: ...`; the
# closed standard output ends a command that writes to it with 1 and no message.
FAILING = {
    "outside git": {
        "plan": 1,
        "upload-map": 1,
        "lookup": 1,
        "why": 1,
        "export": 1,
        "stats": 1,
        "maps list": 1,
        "run --dry-run": 1,
    },
    ".selector a file": {
        "plan": 1,
        "upload-map": 1,
        "lookup": 1,
        "why": 1,
        "export": 1,
        "stats": 1,
        "maps list": 1,
        "run --dry-run": 1,
        "--selector-record": 4,
    },
    "read-only .selector": {"upload-map": 1, "--selector-record": 4},
    "closed stdout": {
        "plan": 1,
        "upload-map": 1,
        "lookup": 1,
        "why": 1,
        "export": 1,
        "stats": 1,
        "maps list": 1,
        "run --dry-run": 1,
        "--selector-record": 1,
        "--selector-plan": 1,
    },
    "no map": {"lookup": 1, "export": 1, "stats": 1},
    "corrupt map": {"lookup": 1, "export": 1, "stats": 1},
}


def _without_map(root: Path) -> None:
    shutil.rmtree(root / ".selector" / "maps")


def _a_file(root: Path) -> None:
    shutil.rmtree(root / ".selector")
    (root / ".selector").write_text("not a folder\n")


def _read_only(root: Path) -> None:
    for folder, _dirs, files in os.walk(root / ".selector"):
        for name in files:
            (Path(folder) / name).chmod(0o444)
        Path(folder).chmod(0o555)


def _edited(root: Path) -> None:
    """An uncommitted change, so that `run --dry-run` has something to print."""
    pricing = root / "src" / "shop" / "pricing.py"
    pricing.write_text(pricing.read_text().replace("    return price\n", "    return price + 0\n"))


def _corrupt(root: Path) -> None:
    (stored,) = (root / ".selector" / "maps").glob("*.sqlite.gz")
    stored.write_bytes(stored.read_bytes()[:100])


def _foreign(root: Path) -> None:
    """The map stored under HEAD's name holds another repository's map (another commit)."""
    folder = root / ".selector" / "maps"
    copy = only_map_file(folder)
    with sqlite3.connect(copy) as connection:
        connection.execute("UPDATE meta SET value = ? WHERE key = 'commit'", (FOREIGN_COMMIT,))
    connection.close()
    (stored,) = LocalStore(folder).maps()
    packed = copy.with_name(copy.name + ".gz")
    digest = compress(copy, packed)
    (folder / stored.name).unlink()
    shutil.copyfile(packed, folder / map_name(stored.commit, stored.variant, digest))


SPOILERS: dict[str, Callable[[Path], None]] = {
    ".selector a file": _a_file,
    "read-only .selector": _read_only,
    "closed stdout": _edited,
    "no map": _without_map,
    "corrupt map": _corrupt,
    "foreign map": _foreign,
}


@pytest.fixture(scope="module")
def environments(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each bad environment, built once: a recorded project, spoiled in one way each."""
    base = tmp_path_factory.mktemp("environments")
    recorded = base / "recorded"
    build_project(recorded, PROJECT)
    subprocess.run(
        [sys.executable, "-m", "selector.cli", "plan", "--base", "main"],
        cwd=recorded,
        capture_output=True,
        check=True,
    )  # the last plan, for `selector why`
    found = {}
    for name, spoil in SPOILERS.items():
        found[name] = base / name.replace(" ", "-")
        shutil.copytree(recorded, found[name], symlinks=True)
        spoil(found[name])
    outside = found["outside git"] = base / "outside"
    (outside / "tests").mkdir(parents=True)
    (outside / "tests" / "test_plain.py").write_text("def test_plain():\n    pass\n")
    return found


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid plan outside every environment, for `pytest --selector-plan`."""
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    path.write_text(
        '{"version": 1, "run_all": true, "reasons": ["a test"], "selected": [], '
        '"tests": {}, "shards": []}\n'
    )
    return path


def _run(command: list[str], root: Path, closed_stdout: bool) -> tuple[int, str, str]:
    """Run `command` in `root`; with `closed_stdout`, into a pipe nobody reads any more."""
    program, *rest = command
    if program == "pytest":
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *rest]
    else:
        argv = [sys.executable, "-m", "selector.cli", *rest]
    if os.geteuid() == 0 and "read-only" in root.name:
        argv = AS_USER + argv
    env = {key: value for key, value in os.environ.items() if not key.startswith("SELECTOR_")}
    if not closed_stdout:
        done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr
    reader, writer = os.pipe()
    os.close(reader)
    try:
        closed = subprocess.run(
            argv, cwd=root, env=env, stdout=writer, stderr=subprocess.PIPE, check=False
        )
    finally:
        os.close(writer)
    return closed.returncode, "", closed.stderr.decode()


@pytest.mark.parametrize("environment", [*SPOILERS, "outside git"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_bad_environment_is_one_line_never_a_traceback(
    environments: dict[str, Path], plan_file: Path, tmp_path: Path, environment: str, command: str
) -> None:
    if environment == "read-only .selector" and os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("root ignores permission bits, and setpriv is not there to drop that")
    root = tmp_path / environments[environment].name
    shutil.copytree(environments[environment], root, symlinks=True)
    argv = [part.format(plan=plan_file) for part in COMMANDS[command]]
    status, stdout, stderr = _run(argv, root, closed_stdout=environment == "closed stdout")
    output = stdout + stderr
    assert "Traceback" not in output, output
    assert "INTERNALERROR" not in output, output
    assert status == FAILING.get(environment, {}).get(command, 0), output
    if status == 0 or environment == "closed stdout":
        return
    if argv[0] == "pytest":
        assert [line for line in output.splitlines() if "selector:" in line] == [
            line for line in output.splitlines() if line.startswith("ERROR: selector: ")
        ], output
        assert len([line for line in output.splitlines() if "ERROR" in line]) == 1, output
    else:
        errors = [line for line in stderr.splitlines() if line.startswith("selector: error: ")]
        assert len(errors) == 1, stderr
        assert all(line.startswith("selector: ") for line in stderr.splitlines()), stderr
