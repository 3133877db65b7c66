"""Test durations for benchmarks of sharding: a real suite's recorded map and a synthetic tail.

Sharding quality depends on the shape of the durations more than on their number: a suite of
equal tests splits perfectly whatever the algorithm, while a few long tests decide the makespan.
So there are two sets. The real one is what selector itself would shard with: the durations in a
map recorded by ``pytest --selector-record`` and stored by ``selector upload-map``, on a suite
nobody here wrote (attrs, prepared exactly as ``record_overhead.py`` prepares it). The synthetic
one is log-normal, the usual shape of test durations, with a tail long enough to matter.

Both keep the tests in collection order, because some algorithms (pytest-split's
``duration_based_chunks``) cut the collected list into runs of consecutive tests.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from _suite import CACHE, progress, run
from record_overhead import SUITES, Environment, blocking, clean, pytest_command, pytest_env

from selector.mapdb import SCHEMA_VERSION

SUITE = SUITES["attrs"]
# Reads the one map of a store (stored packed, so fetched through the store) with selector's own
# reader, in the suite's virtualenv (where selector is installed), and prints {node ID: duration}.
READ_MAP = """
import json, sys
from pathlib import Path
from selector.mapdb import read_map
from selector.store import LocalStore
store = LocalStore(Path(sys.argv[1]))
(stored,) = store.maps()
tests = read_map(store.fetch(stored.commit, stored.variant)).tests
json.dump({nodeid: test.duration for nodeid, test in tests.items()}, sys.stdout)
"""


@dataclass(frozen=True)
class DurationSet:
    """Seconds per pytest node ID, in collection order, and where they come from."""

    name: str
    source: str  # one Markdown sentence for the report
    durations: dict[str, float]


def synthetic(count: int = 2000, seed: int = 20240601) -> DurationSet:
    """Log-normal durations: median 0.1 s, sigma 1.5, so the longest of 2,000 runs ~20 s.

    Every test is its own function (no parametrisation), so selector's units are the tests and
    any difference from pytest-split is the algorithm's alone. The order is random with respect to
    duration, like a real collection order.
    """
    generator = random.Random(seed)
    median, sigma, per_file = 0.1, 1.5, 100
    durations = {
        f"tests/test_synthetic_{index // per_file:02d}.py::test_{index:04d}": (
            generator.lognormvariate(math.log(median), sigma)
        )
        for index in range(count)
    }
    return DurationSet(
        "synthetic",
        f"Log-normal durations (median {median} s, sigma {sigma}, `random.Random({seed})`), "
        "one test per function.",
        durations,
    )


def recorded(env: Environment) -> DurationSet:
    """The durations of the map recorded on the suite, recording it first if there is none.

    The map and the collection order are cached per Python version and map schema (a map
    of another schema cannot be read); the collection order is written last, so its
    presence means the map is complete. Delete the folder to re-record.
    """
    folder = CACHE / "shards" / f"{SUITE.sdist.stem}-py{env.version}-schema{SCHEMA_VERSION}"
    order_file = folder / "collected.txt"
    if not order_file.exists():
        record(env, folder / "maps")
        write_atomically(order_file, "".join(f"{nodeid}\n" for nodeid in collect(env)))
    store = folder / "maps"
    in_map: dict[str, float] = json.loads(run([env.python, "-c", READ_MAP, store]))
    order = order_file.read_text().splitlines()
    if set(order) != set(in_map):
        raise SystemExit(
            f"the map in {store} and {order_file} disagree on the tests: "
            f"{len(set(order) - set(in_map))} collected but not recorded, "
            f"{len(set(in_map) - set(order))} recorded but not collected; delete {folder}"
        )
    return DurationSet(
        "real",
        f"{SUITE.sdist.stem} (PyPI sdist), every test, as recorded by `pytest --selector-record` "
        f"on Python {env.version}, stored by `selector upload-map` in "
        f"`{store.relative_to(CACHE.parent.parent)}` and read with `selector.mapdb.read_map`.",
        {nodeid: in_map[nodeid] for nodeid in order},
    )


def record(env: Environment, store: Path) -> None:
    """Run the suite once with ``--selector-record`` and store the map with ``upload-map``.

    Uses the same arguments as ``record_overhead.py``'s selector mode. Failing tests still have
    durations, so pytest's exit code 1 is accepted; anything above means the run itself broke.
    """
    progress(f"recording {SUITE.sdist.stem} on Python {env.version} (once; cached)")
    clean(env.folder)
    args = ("--selector-record", *blocking("selector"))
    done = subprocess.run(
        pytest_command(env, SUITE, args),
        cwd=env.folder,
        env=pytest_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode > 1:
        raise SystemExit(f"recording failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    run([env.python.with_name("selector"), "upload-map", "--store", store], cwd=env.folder)
    clean(env.folder)


def collect(env: Environment) -> list[str]:
    """The suite's node IDs in collection order, as pytest-split would receive its items."""
    output = run(
        pytest_command(env, SUITE, ("--collect-only", *blocking())),
        cwd=env.folder,
        env=pytest_env(),
    )
    # With -q, pytest prints one node ID per line, then a blank line and its summary.
    return list(itertools.takewhile(bool, output.splitlines()))


def write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, so that a half-written file never exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as scratch:
        scratch.write(text)
    Path(scratch.name).replace(path)
