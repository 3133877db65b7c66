"""What does recording child processes cost, next to coverage.py's own subprocess support?

    python bench/subprocess_overhead.py [--python 3.11 3.12 3.13] [--runs 5] [--tests 100]

Generates a suite in which every test runs a small CLI in a child Python process
(``subprocess.run([sys.executable, "-m", "tool", ...])``), the shape that makes a suite spend its
time starting interpreters, and runs it in four modes, each a separate process:

* ``plain``: pytest alone, the baseline;
* ``selector``: ``pytest --selector-record`` (children record for their tests);
* ``pytest-cov``: pytest-cov with one context per test (``--cov-context=test``) and coverage's
  ``[run] patch = subprocess``, which starts coverage in every child. The children's lines carry
  no test context: this is the price of measuring children, without their attribution;
* ``coverage-run``: ``coverage run -m pytest`` with ``patch = subprocess`` and
  ``dynamic_context = test_function``, then ``coverage combine`` (timed too: without it the
  children's data is a pile of files).

Rounds are interleaved and the order of modes rotates every round, so machine noise spreads over
all modes; each mode's number is its median. The selector run's fragment is checked to hold the
children's lines for every test, so the number is for a recording that works. Prints a Markdown
report on stdout; exits non-zero if a plain or selector run fails (the other tools' own
failures are reported, not fatal).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from _suite import CACHE, REPO_ROOT, find_python, git_snapshot, make_venv, progress, run

PYTHONS = ("3.11", "3.12", "3.13")
REQUIREMENTS = ("pytest==8.4.2", "coverage==7.10.7", "pytest-cov==7.0.0")
COMMON_ARGS = ("-q", "-p", "no:randomly", "-p", "no:cacheprovider")
TESTS_PER_FILE = 10
COVERAGE_RC = {
    # pytest-cov sets the per-test contexts itself; coverage's dynamic_context would conflict.
    "pytest-cov.ini": "[run]\npatch = subprocess\nparallel = true\nsource = tool\n",
    "coverage-run.ini": (
        "[run]\npatch = subprocess\nparallel = true\nsource = tool\n"
        "dynamic_context = test_function\n"
    ),
}
TOOL = {
    "tool/__init__.py": "",
    "tool/__main__.py": """
        import sys

        from tool.cli import main

        sys.exit(main(sys.argv[1:]))
    """,
    "tool/cli.py": """
        import argparse
        import json

        from tool import work


        def main(arguments):
            parser = argparse.ArgumentParser(prog="tool")
            parser.add_argument("number", type=int)
            options = parser.parse_args(arguments)
            print(json.dumps({"number": options.number, "primes": work.primes(options.number)}))
            return 0
    """,
    "tool/work.py": """
        def primes(limit):
            found = []
            for candidate in range(2, limit):
                if all(candidate % prime for prime in found if prime * prime <= candidate):
                    found.append(candidate)
            return len(found)
    """,
}
TEST_FILE = """
    import json
    import subprocess
    import sys

    import pytest


    @pytest.mark.parametrize("number", {numbers})
    def test_cli(number):
        done = subprocess.run(
            [sys.executable, "-m", "tool", str(number)], capture_output=True, text=True, check=True
        )
        assert json.loads(done.stdout)["number"] == number
"""


@dataclass(frozen=True)
class Mode:
    """One way of running the suite: its commands (run in order, all timed) and what it leaves."""

    name: str
    commands: tuple[tuple[str, ...], ...]
    leaves: str


@dataclass(frozen=True)
class Run:
    """One timed run of a mode."""

    mode: str
    seconds: float
    cpu_seconds: float
    returncode: int
    output: str


def suite_files(tests: int) -> dict[str, str]:
    """The generated suite: the CLI package, ``tests / 10`` test files, coverage's settings."""
    files = {name: textwrap.dedent(text).lstrip("\n") for name, text in TOOL.items()}
    for index in range(0, tests, TESTS_PER_FILE):
        numbers = list(range(500 + index, 500 + min(index + TESTS_PER_FILE, tests)))
        files[f"tests/test_cli_{index // TESTS_PER_FILE:02d}.py"] = textwrap.dedent(
            TEST_FILE.format(numbers=numbers)
        ).lstrip("\n")
    files.update(COVERAGE_RC)
    files[".gitignore"] = ".selector/\n.coverage*\n__pycache__/\n"
    # A pytest configuration of its own: without one, pytest takes the nearest ancestor's (this
    # repository's pyproject.toml, as the suite lives under bench/.cache/) as its configuration
    # and rootdir, and selector records into this repository instead of the suite's.
    files["pytest.ini"] = "[pytest]\n"
    return files


def build_suite(tests: int) -> Path:
    """Write and commit the suite under ``bench/.cache/``, unless the same one is there."""
    files = suite_files(tests)
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:12]
    folder = CACHE / "subprocess" / f"suite-{tests}-{digest}"
    if not folder.exists():
        scratch = folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(scratch, ignore_errors=True)
        for name, text in files.items():
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            (scratch / name).write_text(text)
        git_snapshot(scratch, "generated suite: one child process per test")
        scratch.rename(folder)
    return folder


def modes_for(python: Path) -> list[Mode]:
    """The four modes; each blocks the plugins of the tools it does not use."""
    pytest = (str(python), "-m", "pytest", *COMMON_ARGS)
    return [
        Mode("plain", ((*pytest, "-p", "no:selector", "-p", "no:pytest_cov"),), ""),
        Mode(
            "selector",
            ((*pytest, "--selector-record", "-p", "no:pytest_cov"),),
            ".selector/fragments/*",
        ),
        Mode(
            "pytest-cov",
            (
                (
                    *pytest,
                    "-p",
                    "no:selector",
                    "--cov=tool",
                    "--cov-context=test",
                    "--cov-config=pytest-cov.ini",
                    "--cov-report=",
                ),
            ),
            ".coverage*",
        ),
        Mode(
            "coverage-run",
            (
                (
                    str(python),
                    "-m",
                    "coverage",
                    "run",
                    "--rcfile=coverage-run.ini",
                    "-m",
                    "pytest",
                    *COMMON_ARGS,
                    "-p",
                    "no:selector",
                    "-p",
                    "no:pytest_cov",
                ),
                (str(python), "-m", "coverage", "combine", "-q", "--rcfile=coverage-run.ini"),
            ),
            ".coverage*",
        ),
    ]


def pytest_env() -> dict[str, str]:
    """The caller's environment without what could change pytest or coverage, hash seed fixed."""
    foreign = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "COVERAGE_PROCESS_START", "PYTHONPATH")
    env = {key: value for key, value in os.environ.items() if key not in foreign}
    env["PYTHONHASHSEED"] = "0"
    return env


def clean(folder: Path) -> None:
    """What earlier runs left, removed so every run starts from scratch."""
    for pattern in (".selector", ".coverage*"):
        for path in folder.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def children_cpu() -> float:
    """CPU seconds of all finished child processes (and theirs) so far: a cross-check of wall
    time on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_mode(folder: Path, mode: Mode) -> Run:
    """Run one mode once from a clean folder; the time of all its commands together."""
    clean(folder)
    outputs, returncode = [], 0
    cpu_start, start = children_cpu(), time.perf_counter()
    for command in mode.commands:
        done = subprocess.run(
            command, cwd=folder, env=pytest_env(), capture_output=True, text=True, check=False
        )
        outputs.append(done.stdout + done.stderr)
        returncode = returncode or done.returncode
    seconds, cpu = time.perf_counter() - start, children_cpu() - cpu_start
    return Run(mode.name, seconds, cpu, returncode, "\n".join(outputs))


def check_recording(python: Path, folder: Path, tests: int, output: str) -> None:
    """Stop unless the selector run recorded, for every test, its child's call of `primes`."""
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from selector.mapdb import read_map

        (fragment,) = Path(".selector/fragments").glob("*.sqlite")
        data = read_map(fragment)
        line = Path("tool/work.py").read_text().splitlines().index("    found = []") + 1
        missing = [test for test in data.tests if line not in data.test_lines(test)["tool/work.py"]]
        print(len(data.tests), len(missing))
        """
    )
    fragments = list((folder / ".selector" / "fragments").glob("*.sqlite"))
    if len(fragments) != 1:
        raise SystemExit(f"the selector run left {len(fragments)} fragments; it printed:\n{output}")
    recorded, missing = map(int, run([python, "-c", script], cwd=folder).split())
    if recorded != tests or missing:
        raise SystemExit(f"selector recorded {recorded} tests, {missing} without their child")


def rotated(modes: Sequence[Mode], round_index: int) -> list[Mode]:
    """This round's order: shifted by one every round, so no mode always goes first."""
    shift = round_index % len(modes)
    return [*modes[shift:], *modes[:shift]]


def measure(python: Path, folder: Path, modes: Sequence[Mode], runs: int, tests: int) -> list[Run]:
    """All timed runs, as interleaved rounds of one run per mode."""
    results = []
    for round_index in range(runs):
        for mode in rotated(modes, round_index):
            result = run_mode(folder, mode)
            if mode.name == "selector" and result.returncode == 0:
                check_recording(python, folder, tests, result.output)
            progress(
                f"  round {round_index + 1}/{runs} {mode.name:<12} {result.seconds:7.2f}s "
                f"exit {result.returncode}"
            )
            results.append(result)
    return results


def table(modes: Sequence[Mode], results: Sequence[Run]) -> list[str]:
    """Markdown: median wall time, its ratio to plain and to coverage's subprocess patch, CPU."""
    wall = {
        m.name: statistics.median(r.seconds for r in results if r.mode == m.name) for m in modes
    }
    cpu = {
        m.name: statistics.median(r.cpu_seconds for r in results if r.mode == m.name) for m in modes
    }
    lines = [
        "| mode | wall median | vs plain | vs pytest-cov | vs coverage-run | CPU median |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode in modes:
        seconds = wall[mode.name]
        lines.append(
            f"| {mode.name} | {seconds:.2f} s | {seconds / wall['plain']:.2f}x "
            f"| {seconds / wall['pytest-cov']:.2f}x | {seconds / wall['coverage-run']:.2f}x "
            f"| {cpu[mode.name]:.2f} s |"
        )
    return lines


def benchmark_python(version: str, runs: int, tests: int, folder: Path) -> bool:
    """Build the virtualenv, measure, print one version's report; False if a run failed."""
    venv = CACHE / "venvs" / f"subprocess-overhead-py{version}"
    python = make_venv(
        find_python(version), venv, ("-e", str(REPO_ROOT), *REQUIREMENTS), os.environ
    )
    modes = modes_for(python)
    progress(f"Python {version}: warm-up run (untimed)")
    run_mode(folder, modes[0])
    load_before = os.getloadavg()[0]
    results = measure(python, folder, modes, runs, tests)
    load_after = os.getloadavg()[0]
    actual = run([python, "-c", "import platform; print(platform.python_version())"]).strip()
    print(f"\n### Python {actual}\n")
    print(
        f"{tests} tests, one child process each; {runs} runs per mode, interleaved; 1-minute load "
        f"average {load_before:.1f} before, {load_after:.1f} after.\n"
    )
    print("\n".join(table(modes, results)), flush=True)
    bad = [r for r in results if r.returncode != 0]
    for result in bad:
        progress(f"FAILED: {result.mode} exited {result.returncode}\n{result.output[-3000:]}")
    failed = sorted({r.mode for r in bad})
    if failed:
        counts = ", ".join(f"{name} {sum(r.mode == name for r in bad)}" for name in failed)
        print(f"\nRuns that failed (of {runs} per mode): {counts}; see stderr.", flush=True)
    return not any(r.mode in ("plain", "selector") for r in bad)


def header(argv: Sequence[str], folder: Path) -> list[str]:
    """The exact command, the machine and each mode's commands (paths shortened)."""
    command = shlex.join(["python", "bench/subprocess_overhead.py", *argv])
    selector = run(["git", "-C", REPO_ROOT, "describe", "--always", "--dirty"]).strip()
    lines = [
        f"Command: `{command}`",
        "",
        f"selector {selector}; machine: {platform.platform()}, {os.cpu_count()} CPUs; suite: "
        f"`{folder.relative_to(REPO_ROOT)}`; {', '.join(REQUIREMENTS)}. Modes (`python` is the "
        "virtualenv's):",
        "",
    ]
    for mode in modes_for(Path("python")):
        commands = " && ".join(shlex.join(command) for command in mode.commands)
        lines.append(f"* {mode.name}: `{commands}`")
    return lines


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--python", nargs="+", default=list(PYTHONS), help="major.minor versions")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per mode (default 5)")
    parser.add_argument("--tests", type=int, default=100, help="tests, one child each (100)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.tests < 1:
        parser.error("--runs and --tests must be at least 1")
    return args


def main(argv: Sequence[str]) -> int:
    """Measure every requested Python; exit 1 if a plain or selector run failed (the other
    tools' own failures are reported, not fatal: they are part of what is compared)."""
    args = parse_args(argv)
    folder = build_suite(args.tests)
    print("\n".join(header(argv, folder)), flush=True)
    ok = [benchmark_python(version, args.runs, args.tests, folder) for version in args.python]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
