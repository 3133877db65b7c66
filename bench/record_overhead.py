"""What does recording per-test coverage cost on a real test suite?

    python bench/record_overhead.py [--python 3.11 3.12 3.13] [--runs 5] [--suite attrs]

Runs a third-party suite (see ``_suite.py``) under pytest in four modes, each a separate process:
``plain`` (the baseline), ``selector`` (``--selector-record``), ``cov-context`` (pytest-cov with
one coverage context per test, the obvious do-it-yourself alternative) and ``testmon``
(pytest-testmon's full recording run). Each mode loads only its own tool's plugin, so its time is
the tool's whole cost. Rounds are interleaved and the order of modes rotates every round, so
machine noise (other jobs, CPU frequency) spreads over all modes instead of landing on one.
Prints a Markdown report on stdout; exits non-zero if a mode's pytest exit code differs from
plain's (the tool broke something), or if a requested mode is not available.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from _suite import (
    CACHE,
    REPO_ROOT,
    Sdist,
    assert_pristine,
    find_python,
    git_snapshot,
    make_venv,
    progress,
    run,
    unpack,
)

PYTHONS = ("3.11", "3.12", "3.13")
MODE_NAMES = ("plain", "selector", "cov-context", "testmon")
# pytest-randomly is blocked whether installed or not (blocking an absent plugin is a no-op): a
# random test order would make runs incomparable.
COMMON_ARGS = ("-q", "-p", "no:randomly")
# Plugins that only some modes use; each mode blocks those it does not use, so that it pays only
# for its own tool. Only testmon keeps the cache provider: it reads the --lf option defined there.
OPTIONAL_PLUGINS = ("cacheprovider", "selector", "testmon", "pytest_cov")
# What a run leaves in the suite folder; removed before every run so each one records from scratch.
LEFTOVERS = (".selector", ".coverage*", ".testmondata*", ".hypothesis", ".pytest_cache")
# Environment variables through which the caller's shell could change what pytest or coverage do.
FOREIGN_ENV = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "COVERAGE_PROCESS_START", "PYTHONPATH")
# Versions of these are printed with the results, since the numbers depend on them.
REPORTED_DISTS = ("pytest", "coverage", "pytest-cov", "pytest-testmon", "hypothesis")


@dataclass(frozen=True)
class Suite:
    """A third-party test suite and how to run it reproducibly."""

    sdist: Sdist
    requirements: tuple[str, ...]
    source_package: str
    pytest_args: tuple[str, ...]


SUITES = {
    "attrs": Suite(
        sdist=Sdist(
            "attrs", "25.4.0", "16d5969b87f0859ef33a48b35d55ac1be6e42ae49d5e853b597db70c35c57e11"
        ),
        # The "tests" dependency group of attrs' pyproject, at the versions of its uv.lock, minus
        # pytest-xdist (the benchmark runs in one process). The mypy and pyright groups are left
        # out: without their tools test_mypy.yml is not collected and test_pyright.py skips itself.
        requirements=(
            "pytest==8.4.2",
            "hypothesis==6.140.3",
            "cloudpickle==3.1.1",
            "pympler==1.1",
            "coverage==7.10.7",
            "pytest-cov==7.0.0",
            "pytest-testmon==2.2.0",
        ),
        source_package="attr",
        pytest_args=(
            # attrs' conftest loads its own hypothesis profile ("patience") but leaves it random;
            # a fixed seed makes every run generate the same examples.
            "--hypothesis-seed=0",
            # Fails without any plugin on CPython 3.11.7 and 3.12.1 (passes on 3.13): its
            # inspect.signature() of a Converter depends on the patch release. Deselected on every
            # version, so that each runs the same tests and a clean baseline exits 0.
            "--deselect=tests/test_converters.py::TestPipe::test_wrapped_annotation",
        ),
    ),
}


@dataclass(frozen=True)
class Mode:
    """One way of running the suite: its pytest arguments and the data file(s) the tool leaves."""

    name: str
    args: tuple[str, ...]
    leaves: str


def blocking(*keep: str) -> tuple[str, ...]:
    """Arguments that block every optional plugin except those kept."""
    return tuple(
        arg for name in OPTIONAL_PLUGINS if name not in keep for arg in ("-p", f"no:{name}")
    )


def modes_for(suite: Suite) -> dict[str, Mode]:
    """The modes by name; each blocks the other tools' plugins so that it pays only for its own."""
    cov_args = (f"--cov={suite.source_package}", "--cov-context=test", "--cov-report=")
    modes = (
        Mode("plain", blocking(), ""),
        Mode("selector", ("--selector-record", *blocking("selector")), ".selector/fragments/*"),
        Mode("cov-context", (*cov_args, *blocking("pytest_cov")), ".coverage*"),
        Mode("testmon", ("--testmon", *blocking("testmon", "cacheprovider")), ".testmondata*"),
    )
    return {mode.name: mode for mode in modes}


@dataclass(frozen=True)
class Environment:
    """A suite folder and the interpreter of the virtualenv that runs it."""

    folder: Path
    python: Path
    version: str


@dataclass(frozen=True)
class Run:
    """One timed pytest process."""

    mode: str
    seconds: float
    cpu_seconds: float
    returncode: int
    summary: str
    leftover_files: int
    leftover_bytes: int
    output: str


def prepare(suite: Suite, version: str) -> Environment:
    """Unpack and commit the suite, and build its virtualenv for one Python version.

    The suite and selector are installed editable, so the code under test lives in the suite's
    repository: that is what selector and testmon track (never site-packages), as in a project's CI.
    """
    folder = unpack(suite.sdist)
    git_snapshot(folder, f"{suite.sdist.stem} from its PyPI sdist")
    # The suite's build backend (hatch-vcs) would read the version from git, which has no tags here.
    env = {**os.environ, "SETUPTOOLS_SCM_PRETEND_VERSION": suite.sdist.version}
    requirements = ("-e", str(folder), "-e", str(REPO_ROOT), *suite.requirements)
    venv = CACHE / "venvs" / f"{suite.sdist.stem}-py{version}"
    python = make_venv(find_python(version), venv, requirements, env)
    return Environment(folder, python, version)


def pytest_env() -> dict[str, str]:
    """The caller's environment without what could change pytest's behaviour, hash seed fixed."""
    env = {key: value for key, value in os.environ.items() if key not in FOREIGN_ENV}
    env["PYTHONHASHSEED"] = "0"
    return env


def clean(folder: Path) -> None:
    """Remove what earlier runs left, so every run records from scratch."""
    for pattern in LEFTOVERS:
        for path in folder.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()


def leftovers(folder: Path, pattern: str) -> tuple[int, int]:
    """Number and total size of the files a tool left (a matching folder counts its content)."""
    if not pattern:
        return 0, 0
    files = [
        path
        for match in folder.glob(pattern)
        for path in ([match] if match.is_file() else match.rglob("*"))
        if path.is_file()
    ]
    return len(files), sum(path.stat().st_size for path in files)


def summary_line(output: str) -> str:
    """pytest's final counts line without its duration, e.g. ``1300 passed, 20 skipped``."""
    found = re.findall(r"^=*\s*(\d+ \w+.*?) in [\d.]+s", output, flags=re.MULTILINE)
    return found[-1] if found else "(no summary)"


def pytest_command(env: Environment, suite: Suite, args: Sequence[str]) -> list[str]:
    """The full pytest command line for the suite with extra arguments."""
    return [str(env.python), "-m", "pytest", *COMMON_ARGS, *suite.pytest_args, *args]


def children_cpu() -> float:
    """CPU seconds (user + system) of all finished child processes so far.

    Wall time is what users wait for, but on a shared machine it also measures the other jobs;
    CPU time barely does, so it is reported next to it as a cross-check.
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_mode(env: Environment, suite: Suite, mode: Mode) -> Run:
    """Run the suite once in one mode from a clean folder; time the whole process."""
    assert_pristine(env.folder)
    clean(env.folder)
    command = pytest_command(env, suite, mode.args)
    cpu_start, start = children_cpu(), time.perf_counter()
    done = subprocess.run(
        command, cwd=env.folder, env=pytest_env(), capture_output=True, text=True, check=False
    )
    seconds, cpu_seconds = time.perf_counter() - start, children_cpu() - cpu_start
    output = done.stdout + done.stderr
    assert_pristine(env.folder)
    files, size = leftovers(env.folder, mode.leaves)
    return Run(
        mode.name, seconds, cpu_seconds, done.returncode, summary_line(output), files, size, output
    )


def collected(env: Environment, suite: Suite, plain: Mode) -> int:
    """Count the suite's tests; as the first run after setup it also warms the bytecode caches."""
    progress(f"  {env.version} collecting (untimed warm-up)")
    clean(env.folder)
    command = pytest_command(env, suite, (*plain.args, "--collect-only"))
    output = run(command, cwd=env.folder, env=pytest_env())
    found = re.search(r"^(\d+)(?:/\d+)? tests? collected", output, flags=re.MULTILINE)
    if found is None:
        raise SystemExit(f"cannot count the collected tests:\n{output}")
    return int(found.group(1))


def has_selector(env: Environment) -> bool:
    """Whether the installed selector already provides ``--selector-record`` (it may not yet)."""
    done = subprocess.run(
        [env.python, "-m", "pytest", "--help"],
        cwd=env.folder,
        env=pytest_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return "--selector-record" in done.stdout


def dist_versions(env: Environment) -> dict[str, str]:
    """Versions of the distributions the numbers depend on, as installed in the virtualenv."""
    script = (
        "import importlib.metadata as m, json, platform; "
        f"d = {{n: m.version(n) for n in {list(REPORTED_DISTS)!r}}}; "
        "d['python'] = platform.python_version(); print(json.dumps(d))"
    )
    versions: dict[str, str] = json.loads(run([env.python, "-c", script]))
    return versions


def rotated(modes: Sequence[Mode], round_index: int) -> list[Mode]:
    """The modes in this round's order: shifted by one every round, so none always goes first."""
    shift = round_index % len(modes)
    return [*modes[shift:], *modes[:shift]]


def measure(env: Environment, suite: Suite, modes: Sequence[Mode], runs: int) -> list[list[Run]]:
    """All timed runs for one Python, as rounds of one run per mode."""
    rounds: list[list[Run]] = []
    for round_index in range(runs):
        rounds.append([])
        for mode in rotated(modes, round_index):
            result = run_mode(env, suite, mode)
            progress(
                f"  {env.version} round {round_index + 1}/{runs} {mode.name:<11} "
                f"{result.seconds:7.2f}s exit {result.returncode}"
            )
            rounds[-1].append(result)
    return rounds


def human_size(size: int) -> str:
    """Bytes as KiB/MiB, which is how people compare data files."""
    if size >= 1 << 20:
        return f"{size / (1 << 20):.1f} MiB"
    return f"{size / 1024:.0f} KiB"


def table(modes: Sequence[Mode], results: Sequence[Run]) -> list[str]:
    """The Markdown table: wall times and their ratios to plain (median- and min-based), median
    CPU time and its ratio, and the data each tool left behind."""
    runs = {mode.name: [r for r in results if r.mode == mode.name] for mode in modes}
    wall = {name: [r.seconds for r in rs] for name, rs in runs.items()}
    cpu = {name: statistics.median(r.cpu_seconds for r in rs) for name, rs in runs.items()}
    lines = [
        "| mode | wall median | ratio | wall min | ratio (min) | CPU median | ratio (CPU) "
        "| data file | outcome |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for mode in modes:
        median, fastest = statistics.median(wall[mode.name]), min(wall[mode.name])
        last = runs[mode.name][-1]
        data = (
            f"`{mode.leaves}`: {last.leftover_files} file(s), {human_size(last.leftover_bytes)}"
            if mode.leaves
            else "-"
        )
        lines.append(
            f"| {mode.name} | {median:.1f} s | {median / statistics.median(wall['plain']):.2f}x "
            f"| {fastest:.1f} s | {fastest / min(wall['plain']):.2f}x | {cpu[mode.name]:.1f} s "
            f"| {cpu[mode.name] / cpu['plain']:.2f}x | {data} | {last.summary} |"
        )
    return lines


def failures(rounds: Sequence[Sequence[Run]]) -> list[Run]:
    """Runs that exited differently from plain in the same round (the tool changed an outcome or
    crashed), and runs that did not get to run the tests at all (pytest exit code above 1)."""
    bad = []
    for runs in rounds:
        baseline = next(r.returncode for r in runs if r.mode == "plain")
        bad += [r for r in runs if r.returncode != baseline or r.returncode > 1]
    return bad


def report_failures(version: str, bad: Sequence[Run]) -> None:
    """Show on stderr why runs failed: the tail of the first failing run's output per mode."""
    shown: set[str] = set()
    for result in bad:
        progress(f"FAILED: Python {version} {result.mode} exited {result.returncode}")
        if result.mode not in shown:
            shown.add(result.mode)
            progress("\n".join(result.output.splitlines()[-40:]))


def header(argv: Sequence[str], suite: Suite, modes: Sequence[Mode]) -> list[str]:
    """Report preamble: the exact command, the machine, and each mode's pytest arguments."""
    command = shlex.join(["python", "bench/record_overhead.py", *argv])
    # selector is installed editable: the numbers are for the working tree, which may be dirty.
    selector = run(["git", "-C", REPO_ROOT, "describe", "--always", "--dirty"]).strip()
    lines = [
        f"Command: `{command}`",
        "",
        f"Suite: {suite.sdist.name} {suite.sdist.version} (PyPI sdist, editable install); selector "
        f"{selector}; machine: {platform.platform()}, {os.cpu_count()} CPUs. Every mode runs "
        f"`pytest {shlex.join([*COMMON_ARGS, *suite.pytest_args])}` plus:",
        "",
    ]
    lines += [f"* {mode.name}: `{shlex.join(mode.args)}`" for mode in modes]
    return lines


def benchmark_python(suite: Suite, modes: Sequence[Mode], version: str, runs: int) -> bool:
    """Set up, measure and report one Python version; False if any run failed or was impossible."""
    env = prepare(suite, version)
    available = [m for m in modes if m.name != "selector" or has_selector(env)]
    count = collected(env, suite, next(m for m in modes if m.name == "plain"))
    load_before = os.getloadavg()[0]
    rounds = measure(env, suite, available, runs)
    load_after = os.getloadavg()[0]
    versions = dist_versions(env)
    print(f"\n### Python {versions.pop('python')}\n")
    dists = ", ".join(f"{name} {value}" for name, value in versions.items())
    print(
        f"{count} tests collected; {runs} run(s) per mode, interleaved; 1-minute load average "
        f"{load_before:.1f} before, {load_after:.1f} after. Versions: {dists}.\n"
    )
    print("\n".join(table(available, [r for runs in rounds for r in runs])), flush=True)
    missing = [m.name for m in modes if m not in available]
    if missing:
        print(f"\nNot measured: {', '.join(missing)} (pytest has no `--selector-record` yet).")
    bad = failures(rounds)
    report_failures(version, bad)
    return not bad and not missing


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line options; plain always runs because every ratio is relative to it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--python", nargs="+", default=list(PYTHONS), help="major.minor versions")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per mode (default 5)")
    parser.add_argument("--suite", choices=sorted(SUITES), default="attrs")
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=MODE_NAMES,
        default=list(MODE_NAMES),
        help="modes to run (plain is always added)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def main(argv: Sequence[str]) -> int:
    """Run the benchmark for every requested Python; exit 1 if anything failed."""
    args = parse_args(argv)
    suite = SUITES[args.suite]
    all_modes = modes_for(suite)
    modes = [all_modes[name] for name in dict.fromkeys(["plain", *args.modes])]
    print("\n".join(header(argv, suite, modes)), flush=True)
    ok = [benchmark_python(suite, modes, version, args.runs) for version in args.python]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
