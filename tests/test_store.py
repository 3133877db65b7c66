"""Map stores behind one interface: a local folder, and a real S3-compatible server (moto).

The S3 tests run moto's server on 127.0.0.1 in a thread of the test process and talk to it
over HTTP with boto3, as selector does with any S3-compatible store. They skip when the
`s3` extra (or moto) is not installed.
"""

import gzip
import hashlib
import multiprocessing
import os
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any, cast

import pytest

from selector.cli import main
from selector.config import Config
from selector.mapdb import SESSION, Context, MapData, MapMeta, TestResult, read_map
from selector.s3store import MISSING_EXTRA, S3Backend
from selector.store import (
    DEFAULT_FOLDER,
    STORE_ENV,
    LocalStore,
    MapStore,
    StoredMap,
    StoreError,
    open_store,
    prunable,
    resolve_store,
)

from projects import Project

VARIANT = "py3.11"
COMMITS = [f"{index:040x}" for index in range(1, 5)]
_BUCKETS = count()


def map_data(commit: str, variant: str = VARIANT, tests: int = 3) -> MapData:
    """A small map, shaped like a recorded one."""
    data = MapData(
        meta=MapMeta(commit, False, variant, "0", datetime.now(UTC).isoformat(), "test", "3.11")
    )
    data.context(SESSION).add_lines("app.py", [1, 2])
    for index in range(tests):
        nodeid = f"test_app.py::test_{index}"
        own: Context = data.context(("test", nodeid))
        own.add_lines("app.py", [10 + index])
        own.includes.add(SESSION)
        data.tests[nodeid] = TestResult(0.5, "passed", "test_app.py")
        data.collected.add(nodeid)
    data.files = {"app.py": "a" * 40}
    return data


# -- the stores under test -------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free port of 127.0.0.1, for this module's tests."""
    pytest.importorskip("boto3", reason="the s3 extra is not installed")
    server_module = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def aws_environment(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Point boto3 at `endpoint` with throwaway credentials, whatever the machine configures."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture
def s3_url(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new, empty bucket on the moto server; its s3:// URL with a prefix."""
    import boto3

    aws_environment(monkeypatch, s3_endpoint)
    bucket = f"maps-{os.getpid()}-{next(_BUCKETS)}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/selector/maps"


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MapStore:
    """Each test runs against a local folder and against S3."""
    if request.param == "folder":
        return open_store(str(tmp_path / "maps"), tmp_path)
    return open_store(request.getfixturevalue("s3_url"), tmp_path)


def damage(store: MapStore, stored: StoredMap, content: bytes, tmp_path: Path) -> None:
    """Replace a stored object's bytes, keeping its name."""
    source = tmp_path / "damaged"
    source.write_bytes(content)
    store.backend.write(stored.name, source)


# -- put, list, fetch ---------------------------------------------------------------------


def test_a_stored_map_is_fetched_back_unchanged(store: MapStore) -> None:
    data = map_data(COMMITS[0])
    stored = store.put(data)
    assert (stored.commit, stored.variant) == (COMMITS[0], VARIANT)
    fetched = read_map(store.fetch(COMMITS[0], VARIANT))
    assert fetched.meta == data.meta
    assert fetched.tests == data.tests
    assert fetched.test_lines("test_app.py::test_1") == {"app.py": {1, 2, 11}}


def test_the_object_is_named_by_commit_variant_and_checksum_and_is_plain_gzip(
    store: MapStore, tmp_path: Path
) -> None:
    stored = store.put(map_data(COMMITS[0]))
    assert stored.name == f"{COMMITS[0]}.{VARIANT}.{stored.digest}.sqlite.gz"
    (listed,) = store.backend.list()
    assert (listed.name, listed.size) == (stored.name, stored.size)
    copy = tmp_path / "copy.gz"
    store.backend.read(stored.name, copy)
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == stored.digest
    assert gzip.decompress(copy.read_bytes()).startswith(b"SQLite format 3\0")


def test_a_newer_map_of_the_same_commit_replaces_the_older(store: MapStore) -> None:
    store.put(map_data(COMMITS[0], tests=1))
    store.put(map_data(COMMITS[0], tests=2))
    assert len(store.maps()) == 1
    assert len(read_map(store.fetch(COMMITS[0], VARIANT)).tests) == 2


RACES = [f"{index:040x}" for index in range(100, 108)]


def put_in_step(url: str, base: str, tests: int, barrier: Barrier, report: str) -> None:
    """One uploading process: a map of each commit of RACES, each put started with the
    other process's; what it stored, one `name stored-time` line per put, into `report`."""
    store = open_store(url, Path(base))
    with Path(report).open("w") as lines:
        for commit in RACES:
            barrier.wait()
            stored = store.put(map_data(commit, tests=tests))
            lines.write(f"{stored.name} {stored.modified.isoformat()}\n")


@pytest.mark.parametrize("kind", ["folder", "s3"])
def test_two_puts_at_once_keep_one_map_the_newer(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = str(tmp_path / "maps") if kind == "folder" else request.getfixturevalue("s3_url")
    spawn = multiprocessing.get_context("spawn")  # no fork of a process running moto's thread
    barrier = spawn.Barrier(2)
    reports = [tmp_path / f"{tests}.txt" for tests in (1, 2)]
    processes = [
        spawn.Process(target=put_in_step, args=(url, str(tmp_path), tests, barrier, str(report)))
        for tests, report in zip((1, 2), reports, strict=True)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0]

    store = open_store(url, tmp_path)
    stored_maps = store.maps(VARIANT)
    assert sorted(stored.commit for stored in stored_maps) == RACES  # one each, never none
    remaining = {stored.commit: stored.name for stored in stored_maps}
    puts = [line.split() for report in reports for line in report.read_text().splitlines()]
    for commit in RACES:
        both = [(datetime.fromisoformat(at), name) for name, at in puts if name.startswith(commit)]
        assert len(both) == 2
        assert remaining[commit] == max(both)[1]  # the put that started last


def test_commits_are_listed_per_variant(store: MapStore, tmp_path: Path) -> None:
    for commit in COMMITS[:3]:
        store.put(map_data(commit))
    store.put(map_data(COMMITS[3], variant="py3.12"))
    stray = tmp_path / "stray"
    stray.write_text("not a map\n")
    store.backend.write("notes.txt", stray)
    store.backend.write(f"{COMMITS[3]}.py3.11.sqlite", stray)  # an old, uncompressed name
    assert store.commits(VARIANT) == set(COMMITS[:3])
    assert store.commits("py3.12") == {COMMITS[3]}
    assert store.commits("py3.1") == set()


def test_a_missing_map_is_a_clear_error(store: MapStore) -> None:
    with pytest.raises(StoreError, match=f"^no {VARIANT} map of {COMMITS[0][:12]} in "):
        store.fetch(COMMITS[0], VARIANT)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("flipped byte", "its sha256 does not match its name"),
        ("truncated", "its sha256 does not match its name"),
        ("not gzip, matching checksum", "gzip: "),
        ("cut gzip, matching checksum", "the gzip stream is cut short"),
    ],
)
def test_a_corrupt_map_is_reported_and_never_unpacked(
    store: MapStore, tmp_path: Path, kind: str, message: str
) -> None:
    stored = store.put(map_data(COMMITS[0]))
    original = tmp_path / "original.gz"
    store.backend.read(stored.name, original)
    content = original.read_bytes()
    if kind == "flipped byte":
        damage(store, stored, content[:100] + bytes([content[100] ^ 1]) + content[101:], tmp_path)
    elif kind == "truncated":
        damage(store, stored, content[: len(content) // 2], tmp_path)
    else:  # damage that the checksum in the name cannot see: written so, gzip must catch it
        bad = b"\0" * 64 if kind.startswith("not gzip") else content[: len(content) // 2]
        stored = StoredMap(COMMITS[1], VARIANT, hashlib.sha256(bad).hexdigest(), 0, stored.modified)
        damage(store, stored, bad, tmp_path)
    with pytest.raises(StoreError) as caught:
        store.fetch(stored.commit, VARIANT)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"stored map in {store.location}: {stored.name} is corrupt")


def test_a_map_without_a_commit_cannot_be_stored(store: MapStore) -> None:
    data = map_data(COMMITS[0])
    data.meta = MapMeta(None, False, VARIANT, "0", "", "test", "3.11")
    with pytest.raises(StoreError, match="no commit to store under"):
        store.put(data)
    assert store.maps() == []


def test_a_local_put_leaves_only_the_map(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "maps")
    stored = store.put(map_data(COMMITS[0]))
    assert [path.name for path in (tmp_path / "maps").iterdir()] == [stored.name]


def test_a_local_store_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way\n")
    store = LocalStore(tmp_path / "file" / "maps")
    with pytest.raises(StoreError, match=r"/file is a file, but selector needs a folder there"):
        store.put(map_data(COMMITS[0]))


# -- S3 only ---------------------------------------------------------------------------------


def test_listing_the_maps_of_many_commits_is_one_request(s3_url: str, tmp_path: Path) -> None:
    store = open_store(s3_url, tmp_path)
    for commit in COMMITS:
        store.put(map_data(commit))
    calls: list[str] = []
    client = cast(S3Backend, store.backend)._client
    cast(Any, client).meta.events.register(
        "before-call.s3", lambda model, **_: calls.append(model.name)
    )
    assert store.commits(VARIANT) == set(COMMITS)
    assert calls == ["ListObjectsV2"]


def test_maps_outside_the_prefix_are_not_the_stores(s3_url: str, tmp_path: Path) -> None:
    store = open_store(s3_url, tmp_path)
    store.put(map_data(COMMITS[0]))
    other = open_store(s3_url + "/nested", tmp_path)
    other.put(map_data(COMMITS[1]))
    assert store.commits(VARIANT) == {COMMITS[0]}
    assert other.commits(VARIANT) == {COMMITS[1]}


def test_an_unreachable_s3_store_is_one_line(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nothing listens on any more
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    aws_environment(monkeypatch, f"http://127.0.0.1:{port}")
    store = open_store("s3://maps/app", tmp_path)
    with pytest.raises(StoreError) as caught:
        store.commits(VARIANT)
    message = str(caught.value)
    assert message.startswith("s3://maps/app/: cannot list: Could not connect to the endpoint")
    assert "\n" not in message


def test_a_missing_bucket_is_one_line(s3_url: str, tmp_path: Path) -> None:
    store = open_store("s3://no-such-bucket/app", tmp_path)
    with pytest.raises(StoreError, match=r"^s3://no-such-bucket/app/: cannot list: NoSuchBucket"):
        store.commits(VARIANT)


def test_without_boto3_an_s3_store_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # what Python does when it is not installed
    with pytest.raises(StoreError) as caught:
        open_store("s3://maps/app", tmp_path)
    assert str(caught.value) == MISSING_EXTRA


# -- which store -----------------------------------------------------------------------------


def test_store_precedence_is_option_environment_configuration_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, elsewhere = tmp_path / "repo", tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv(STORE_ENV, raising=False)

    def folder(store: MapStore) -> Path:
        assert isinstance(store, LocalStore)
        return store.folder

    assert folder(resolve_store(None, None, root)) == root / DEFAULT_FOLDER
    assert folder(resolve_store(None, "shared/maps", root)) == root / "shared/maps"
    monkeypatch.setenv(STORE_ENV, "env-maps")
    assert folder(resolve_store(None, "shared/maps", root)) == elsewhere / "env-maps"
    assert folder(resolve_store("cli-maps", "shared/maps", root)) == elsewhere / "cli-maps"
    assert Config().store is None


@pytest.mark.parametrize("url", ["s3://", "s3://A_B/x", "s3://ab", " maps", ""])
def test_a_malformed_store_url_is_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"^store "):
        open_store(url, tmp_path)


# -- selector maps list / prune ------------------------------------------------------------


def stored_at(day: int, variant: str = VARIANT) -> StoredMap:
    when = datetime(2025, 1, day, tzinfo=UTC)
    return StoredMap(f"{day:040x}", variant, "0" * 64, 100, when)


def test_prune_keeps_the_newest_per_variant_and_the_young() -> None:
    maps = [stored_at(day) for day in range(1, 11)] + [stored_at(1, "py3.12")]
    now = datetime(2025, 1, 11, tzinfo=UTC)
    by_day = [int(stored.commit, 16) for stored in prunable(maps, 3, None, now)]
    assert sorted(by_day) == [1, 2, 3, 4, 5, 6, 7]  # py3.12's only map is its newest
    old = prunable(maps, None, timedelta(days=5), now)
    assert sorted(int(stored.commit, 16) for stored in old) == [1, 1, 2, 3, 4, 5]
    both = prunable(maps, 8, timedelta(days=5), now)
    assert sorted(int(stored.commit, 16) for stored in both) == [1, 2]
    assert prunable(maps, None, None, now) == []


def test_maps_list_and_prune_from_the_command_line(
    store: MapStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for commit in COMMITS:
        store.put(map_data(commit))
    monkeypatch.chdir(Path("/"))  # outside any repository: the store must be named
    location = store.location
    assert main(["maps", "list", "--store", location]) == 0
    listed = capsys.readouterr()
    assert listed.out.splitlines()[0].split() == ["commit", "variant", "stored", "(UTC)", "size"]
    assert {line.split()[0] for line in listed.out.splitlines()[1:]} == {c[:12] for c in COMMITS}
    assert listed.err.startswith("selector: 4 maps (")

    assert main(["maps", "prune", "--store", location, "--keep", "1", "--dry-run"]) == 0
    dry = capsys.readouterr()
    assert len(dry.out.splitlines()) == 3
    assert dry.err.startswith("selector: would delete 3 of 4 maps")
    assert len(store.maps()) == 4

    assert main(["maps", "prune", "--store", location, "--keep", "1"]) == 0
    assert capsys.readouterr().err.startswith("selector: deleted 3 of 4 maps")
    assert len(store.maps()) == 1


def test_maps_prune_needs_a_rule_and_a_store(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(STORE_ENV, raising=False)
    assert main(["maps", "prune", "--store", "maps"]) == 1
    assert capsys.readouterr().err == (
        "selector: error: maps prune needs --keep N, --older-than D, or both\n"
    )
    assert main(["maps", "list"]) == 1
    assert capsys.readouterr().err == (
        "selector: error: not inside a git repository: pass --store or set $SELECTOR_STORE\n"
    )
    with pytest.raises(SystemExit):
        main(["maps", "prune", "--older-than", "soon"])
    assert "expected a number and s, m, h, d or w, got 'soon'" in capsys.readouterr().err


# -- end to end through S3 -----------------------------------------------------------------


def test_upload_and_plan_through_an_s3_store_named_in_the_configuration(
    project: Project, s3_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    project.write(
        {
            "pyproject.toml": f'[tool.selector]\nstore = "{s3_url}"\n',
            "app.py": "def one():\n    return 1\n\n\ndef two():\n    return 2\n",
            "test_app.py": (
                "import app\n\n\ndef test_one():\n    assert app.one() == 1\n\n\n"
                "def test_two():\n    assert app.two() == 2\n"
            ),
        }
    )
    commit = project.commit()
    project.record().assert_outcomes(passed=2)
    assert main(["upload-map"]) == 0
    assert f"-> {s3_url}/{commit}." in capsys.readouterr().out
    assert not (project.path / ".selector" / "maps").exists()
    project.write({"app.py": "def one():\n    return 1\n\n\ndef two():\n    return 1 + 1\n"})
    project.commit("two changed")
    assert main(["plan", "--base", commit, "--no-working-tree"]) == 0
    assert capsys.readouterr().out == "test_app.py::test_two\n"
