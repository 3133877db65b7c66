"""How big are stored maps, which compression should store them, and how fast is upload-map?

    python bench/map_store.py [--python 3.11] [--tests 50000] [--files 2000] [--changed 20]
                              [--shards 8] [--seed 1] [--repeat 3]

Two maps: a real one, recorded by ``pytest --selector-record`` on attrs' suite (prepared as in
``record_overhead.py``, stored by ``selector upload-map``, cached under
``bench/.cache/map_store/``), and ``plan_scale.py``'s synthetic map of ``--tests`` tests over
``--files`` files with its ``--changed``-file change (built and cached by ``plan_scale.prepare``).

1. **Compression**: each map raw and packed with gzip (levels 1, 6, 9), lzma (preset 6) and, when
   installed, zstandard (levels 3, 19); pack time, and restore time (the sha256 check of the packed
   bytes plus unpacking, what every plan pays), medians of ``--repeat`` runs, in memory.
2. **upload-map on the large map**: ``--shards`` fragments of a planned run at HEAD (each with a
   share of the tests the plan selects, collection and imports of the whole suite, and
   ``collected`` listing every test, as CI shards write them), then, in this process, each phase
   of the upload: read and merge the fragments, restore the base map from the store, carry it
   forward, store the result. Then the whole command once in a fresh interpreter:
   ``selector upload-map --fragments F --store S`` in the synthetic repository.

Targets (exit 1 if missed): merge + carry forward of the large map under 5 s; the real suite's
map compressed under 1 MB. Prints a Markdown report on stdout.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib
import lzma
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from _durations import SUITE, record
from _suite import CACHE, REPO_ROOT, assert_pristine, progress
from plan_scale import VARIANT, Workload
from plan_scale import prepare as prepare_synthetic
from record_overhead import prepare as prepare_suite

from selector import gitdiff
from selector.carry import carry_forward
from selector.config import Config
from selector.mapdb import (
    SCHEMA_VERSION,
    Context,
    MapData,
    MapMeta,
    merge,
    read_map,
    write_map,
)
from selector.nodeids import covered
from selector.plan import PlanRequest, make_plan
from selector.store import COMPRESSION_LEVEL, LocalStore, ignore_workdir

MERGE_CARRY_LIMIT = 5.0  # seconds
REAL_PACKED_LIMIT = 1_000_000  # bytes
FOLDER = CACHE / "map_store"


# -- codecs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    """One way to pack a map: bytes in, bytes out, both ways."""

    name: str
    pack: Callable[[bytes], bytes]
    unpack: Callable[[bytes], bytes]


def codecs() -> tuple[list[Codec], list[str]]:
    """The codecs to compare, and the ones that cannot be measured here (and why)."""
    found = [gzip_codec(level) for level in (1, 6, 9)]
    found.append(Codec("lzma -6 (xz)", lambda raw: lzma.compress(raw, preset=6), lzma.decompress))
    try:  # not in the standard library before 3.14, and not a dependency: measured if present
        zstandard = importlib.import_module("zstandard")
    except ImportError:
        return found, ["zstandard: not installed here (`pip install zstandard` to compare)"]
    for level in (3, 19):
        packer = zstandard.ZstdCompressor(level=level)
        found.append(
            Codec(f"zstd -{level}", packer.compress, zstandard.ZstdDecompressor().decompress)
        )
    return found, []


def gzip_codec(level: int) -> Codec:
    """gzip at `level`, through zlib as selector.store packs maps."""

    def pack(raw: bytes) -> bytes:
        return zlib.compress(raw, level, wbits=31)

    def unpack(packed: bytes) -> bytes:
        return zlib.decompress(packed, wbits=31)

    return Codec(f"gzip -{level}", pack, unpack)


@dataclass(frozen=True)
class Packed:
    """One codec on one map."""

    codec: str
    size: int
    pack_seconds: float
    restore_seconds: float


def restore(codec: Codec, packed: bytes) -> bytes:
    """What a fetch does with a packed map: check its sha256, unpack it."""
    hashlib.sha256(packed).hexdigest()
    return codec.unpack(packed)


def timed(action: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time of `repeat` runs of `action`, and what the last run returned."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def compare(raw: bytes, repeat: int) -> tuple[list[Packed], list[str]]:
    """Every codec on `raw`; restoring checks the sha256 of the packed bytes, as a fetch does."""
    rows = []
    available, missing = codecs()
    for codec in available:
        pack_seconds, packed = timed(functools.partial(codec.pack, raw), repeat)
        assert isinstance(packed, bytes)
        restore_seconds, restored = timed(functools.partial(restore, codec, packed), repeat)
        assert restored == raw, codec.name
        rows.append(Packed(codec.name, len(packed), pack_seconds, restore_seconds))
    return rows, missing


# -- the real suite's map -------------------------------------------------------------------


def real_map(version: str) -> tuple[Path, int]:
    """The real suite's map, unpacked from its store (recorded once), and its test count."""
    # Per map schema too: a map of another schema cannot be read.
    store = LocalStore(FOLDER / f"{SUITE.sdist.stem}-py{version}-schema{SCHEMA_VERSION}" / "maps")
    if not store.maps():
        env = prepare_suite(SUITE, version)
        assert_pristine(env.folder)
        progress(f"recording {SUITE.sdist.stem} on Python {version} (once; cached)")
        record(env, store.folder)
    (stored,) = store.maps()
    path = store.fetch(stored.commit, stored.variant)
    return path, len(read_map(path).tests)


# -- upload-map on the large map ------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """Where the synthetic upload's inputs are."""

    workload: Workload
    fragments: Path
    store: LocalStore
    recorded: int  # tests of the base map
    selected: int
    total: int


def prepare_upload(workload: Workload, shards: int) -> Upload:
    """The base map in a store of our own, and the fragments of a planned run at HEAD.

    The fragments' lines are the base map's (the change moves few of them); only the amount of
    data matters for timing. Our own folders keep plan_scale's cached repository unchanged.
    """
    folder = FOLDER / workload.layout.folder.name
    shutil.rmtree(folder, ignore_errors=True)
    store = LocalStore(folder / "maps")
    base = read_map(workload.layout.map_file)
    store.put(base)
    selected = planned_tests(workload, store, base)
    collected = set(base.tests) | {
        f"{edit.path}::test_bench_new" for edit in workload.edits if edit.kind == "new test"
    }
    fragments = folder / "fragments"
    ignore_workdir(fragments)
    for shard in range(shards):
        fragment = shard_fragment(base, workload.head, sorted(selected)[shard::shards])
        fragment.collected = collected
        write_map(fragments / f"shard-{shard}.sqlite", fragment)
    return Upload(workload, fragments, store, len(base.tests), len(selected), len(collected))


def planned_tests(workload: Workload, store: LocalStore, base: MapData) -> set[str]:
    """The recorded tests the plan from the base map to HEAD selects."""
    repo = gitdiff.open_repo(workload.layout.root)
    assert repo is not None
    request = PlanRequest(base.meta.commit or "", VARIANT, working_tree=False, store=store)
    plan = make_plan(repo, request, Config())
    if plan["run_all"]:
        raise SystemExit(f"map_store: the plan runs everything: {plan['reasons']}")
    return covered(plan["selected"], base.tests)


def shard_fragment(base: MapData, head: str, tests: list[str]) -> MapData:
    """What one shard records: its tests, and the shared contexts every process runs."""
    meta = base.meta
    fragment = MapData(
        meta=MapMeta(head, False, meta.variant, meta.tool_version, now(), meta.collector, "3")
    )
    for key, context in base.contexts.items():
        if key[0] != "test":
            fragment.contexts[key] = context
    for nodeid in tests:
        fragment.contexts["test", nodeid] = base.contexts.get(("test", nodeid), Context())
        fragment.tests[nodeid] = base.tests[nodeid]
    fragment.files = dict(base.files)
    return fragment


def now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class Phases:
    """Seconds of each phase of one upload, measured in this process."""

    merge: float
    restore: float
    carry: float
    store: float
    carried: int
    size: int


def upload_phases(upload: Upload) -> Phases:
    """One upload, phase by phase, as `selector.upload.upload` runs them."""
    repo = gitdiff.open_repo(upload.workload.layout.root)
    assert repo is not None
    head, base = upload.workload.head, upload.workload.base
    start = time.perf_counter()
    fragments = [read_map(path) for path in sorted(upload.fragments.glob("*.sqlite"))]
    meta = fragments[0].meta
    fresh = merge(fragments, MapMeta(head, False, VARIANT, meta.tool_version, now(), "x", "3"))
    merged = time.perf_counter()
    base_path = upload.store.fetch(base, VARIANT)
    base_map = read_map(base_path)
    restored = time.perf_counter()
    data, report = carry_forward(repo, base_path, base_map, fresh, Config())
    carried = time.perf_counter()
    stored = upload.store.put(data)
    done = time.perf_counter()
    upload.store.remove(upload.store.maps(commit=head))
    return Phases(
        merged - start,
        restored - merged,
        carried - restored,
        done - carried,
        report.carried,
        stored.size,
    )


def upload_command(upload: Upload) -> list[str]:
    return ["upload-map", "--fragments", str(upload.fragments), "--store", str(upload.store.folder)]


def upload_end_to_end(upload: Upload) -> float:
    """Wall time of the whole command in a fresh interpreter (start-up included)."""
    env = {key: value for key, value in os.environ.items() if key != "SELECTOR_STORE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "selector.cli", *upload_command(upload)],
        cwd=upload.workload.layout.root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"map_store: selector upload-map failed:\n{done.stderr}")
    upload.store.remove(upload.store.maps(commit=upload.workload.head))
    return seconds


# -- the report -----------------------------------------------------------------------------


def mib(size: int) -> str:
    return f"{size / 2**20:.2f} MiB" if size >= 2**20 else f"{size / 1024:.0f} KiB"


def compression_rows(name: str, raw: int, rows: list[Packed]) -> list[str]:
    chosen = f"gzip -{COMPRESSION_LEVEL}"
    return [
        f"| {name} | {row.codec}{' (selector)' if row.codec == chosen else ''} | {mib(row.size)} "
        f"| {raw / row.size:.1f}x | {row.pack_seconds:.3f} s | {row.restore_seconds:.3f} s |"
        for row in rows
    ]


@dataclass(frozen=True)
class Sizes:
    """One map: its tests, its raw size and every codec on it."""

    tests: int
    raw: int
    packed: list[Packed]


@dataclass(frozen=True)
class Measured:
    """Everything the report shows."""

    real: Sizes
    large: Sizes
    missing: list[str]  # codecs that could not be measured
    upload: Upload
    phases: list[Phases]
    end_to_end: float


def report(arguments: argparse.Namespace, measured: Measured) -> tuple[list[str], bool]:
    """The Markdown report, and whether every target was met."""
    real_tests, real_raw, real_rows = measured.real.tests, measured.real.raw, measured.real.packed
    large = measured.large
    large_tests, large_raw, large_rows = large.tests, large.raw, large.packed
    upload, phases, missing = measured.upload, measured.phases, measured.missing
    merge_carry = statistics.median(p.merge + p.restore + p.carry for p in phases)
    chosen = next(row for row in real_rows if row.codec == f"gzip -{COMPRESSION_LEVEL}")

    def median(field: Callable[[Phases], float]) -> str:
        return f"{statistics.median(field(p) for p in phases):.2f} s"

    workload = upload.workload
    lines = [
        "## Stored maps: size, compression, upload-map",
        "",
        f"Measured by `python {shlex.join(['bench/map_store.py', *sys.argv[1:]])}`, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs; medians of "
        f"{arguments.repeat} runs.",
        "",
        "| map | codec | packed | ratio | pack | restore (sha256 + unpack) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        f"| {SUITE.sdist.stem}, {real_tests:,} tests (real) | raw SQLite | {mib(real_raw)} "
        "| 1.0x | | |",
        *compression_rows(f"{SUITE.sdist.stem} (real)", real_raw, real_rows),
        f"| synthetic, {large_tests:,} tests x {arguments.files:,} files | raw SQLite "
        f"| {mib(large_raw)} | 1.0x | | |",
        *compression_rows("synthetic", large_raw, large_rows),
        *(f"| | {note} | | | | |" for note in missing),
        "",
        f"`selector upload-map` on the synthetic map: {arguments.shards} shard fragments of a "
        f"planned run at {workload.head[:12]} ({upload.selected:,} tests re-run of "
        f"{upload.total:,} collected; the {len(workload.edits)}-file change of plan_scale.py), "
        f"carried forward from the map of {workload.base[:12]}.",
        "",
        "| phase | time | target |",
        "| --- | ---: | ---: |",
        f"| read + merge {arguments.shards} fragments | {median(lambda p: p.merge)} | |",
        f"| restore the base map (fetch: sha256, gunzip; read) | {median(lambda p: p.restore)} | |",
        f"| carry forward (plan rules, move lines, combine) | {median(lambda p: p.carry)} | |",
        f"| **merge + carry forward** | **{merge_carry:.2f} s** | < {MERGE_CARRY_LIMIT:g} s |",
        f"| store (write SQLite, gzip, write) | {median(lambda p: p.store)} | |",
        f"| whole command, fresh interpreter | {measured.end_to_end:.2f} s | |",
        "",
        f"Carried forward: {phases[0].carried:,} tests; stored map {mib(phases[0].size)}. "
        f"The whole command: `cd {workload.layout.root} && selector "
        f"{shlex.join(upload_command(upload))}`.",
        "",
        f"Real suite's map, compressed as stored: {mib(chosen.size)} (target < 1 MB).",
    ]
    met = merge_carry < MERGE_CARRY_LIMIT and chosen.size < REAL_PACKED_LIMIT
    return lines, met


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--python", default="3.11", help="Python of the real suite's recording")
    parser.add_argument("--tests", type=int, default=50_000)
    parser.add_argument("--files", type=int, default=2_000)
    parser.add_argument("--changed", type=int, default=20)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    arguments = parse_args(argv)
    real_path, real_tests = real_map(arguments.python)
    progress("building or reusing the synthetic workload (plan_scale.prepare)")
    workload = prepare_synthetic(
        arguments.tests, arguments.files, arguments.changed, arguments.seed
    )
    progress("comparing codecs")
    real_raw = real_path.read_bytes()
    real_rows, missing = compare(real_raw, arguments.repeat)
    large_raw = workload.layout.map_file.read_bytes()
    large_rows, _ = compare(large_raw, arguments.repeat)
    progress(f"writing {arguments.shards} fragments of a planned run")
    upload = prepare_upload(workload, arguments.shards)
    progress("timing upload-map")
    phases = [upload_phases(upload) for _ in range(arguments.repeat)]
    end_to_end = upload_end_to_end(upload)
    measured = Measured(
        Sizes(real_tests, len(real_raw), real_rows),
        Sizes(upload.recorded, len(large_raw), large_rows),
        missing,
        upload,
        phases,
        end_to_end,
    )
    lines, met = report(arguments, measured)
    print("\n".join(lines))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
