"""Where maps live: keyed by commit and variant, compressed, and checked on every read.

A store is a flat set of named objects behind `Backend`, the one small interface each kind
of storage implements: a local folder (the default, `.selector/maps/`, which CI persists
with actions/cache) or S3-compatible object storage (`s3://bucket/prefix`, with the `s3`
extra). Everything else, the naming, compression and validation, is `MapStore`'s, so every
backend stores maps the same way.

Object names are `<commit>.<variant>.<sha256>.sqlite.gz`:

* commit and variant in the name make one listing enough to know which commits of a range
  have a map, instead of one request per commit;
* the sha256 of the object's bytes is checked before anything is unpacked, and gzip checks
  its own CRC while unpacking, so a truncated upload or a damaged download is reported and
  never trusted (the SQLite schema version and integrity are checked by `mapdb.connect`
  when the unpacked map is opened);
* gzip (stdlib zlib, level 6) because restoring a map is on the path of every plan and gzip
  unpacks 3-4x faster than lzma, while lzma's smaller files save nothing that matters at a
  map's size; zstandard is faster still, but not in the standard library before 3.14, and
  its gain is tens of milliseconds on a real suite's map. Numbers: bench/map_store.py.

Writes are atomic: a local object is written to a temporary file and renamed, and an S3 PUT
is atomic by itself. A newer map of the same commit and variant replaces the older one, also
when two uploads store one at once (`MapStore.put`).
"""

import functools
import hashlib
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Protocol

from selector.mapdb import MapData, write_map

DEFAULT_FOLDER = Path(".selector") / "maps"
STORE_ENV = "SELECTOR_STORE"
COMPRESSION_LEVEL = 6
_CHUNK = 1 << 20
_NAMES = count()  # unique names in the scratch folder
_VARIANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_MAP_NAME = re.compile(
    r"^(?P<commit>[0-9a-f]{40})\.(?P<variant>[A-Za-z0-9][A-Za-z0-9._+-]*)"
    r"\.(?P<digest>[0-9a-f]{64})\.sqlite\.gz$"
)
# S3's bucket naming rules, simplified: what a bucket name may never contain is enough here.
_S3_URL = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$")


def ignore_workdir(folder: Path) -> None:
    """Create selector's working folder with a .gitignore, so git never sees its files.

    A map or fragment inside the work tree must not make the tree dirty nor show up as an
    untracked file in a diff. A folder that cannot be made is a StoreError that says why.
    """
    check_folder(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        ignore = folder / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# created by selector\n*\n")
    except OSError as error:
        raise StoreError(f"cannot write to {folder}: {error.strerror}") from None


def check_folder(folder: Path) -> None:
    """Fail in one line if `folder`, or a folder above it, exists as something else.

    A file named `.selector` shadows every path selector keeps there (plans, maps,
    fragments); saying so at once beats a traceback from deep inside, or a whole test
    run recorded for nothing.
    """
    for path in (folder, *folder.parents):
        if path.exists() and not path.is_dir():
            raise StoreError(
                f"{path} is a file, but selector needs a folder there (for {folder}): move "
                "or delete the file"
            )
        if path.is_dir():
            return


def check_writable(folder: Path) -> None:
    """Create `folder` and prove that a file can be written there, or say why not.

    Tried for real (a temporary file, removed at once): permission bits do not tell what
    a privileged user, a read-only mount or a full disk allows.
    """
    check_folder(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise StoreError(f"cannot write to {folder}: {error.strerror}") from None


class StoreError(Exception):
    """The store cannot be used as asked (one-line message)."""


def check_variant(variant: str) -> str:
    """Variants become part of file names and cache keys, so they are kept plain."""
    if not _VARIANT.match(variant):
        raise StoreError(
            f"variant {variant!r} may only contain letters, digits, '.', '_', '+' and '-'"
        )
    return variant


# -- the interface of a kind of storage -----------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    """One object as a listing shows it."""

    name: str
    size: int
    modified: datetime  # timezone-aware


class Backend(Protocol):
    """A flat set of named objects. Every failure is a StoreError with a one-line message."""

    @property
    def location(self) -> str:
        """How messages name the store: a folder, or s3://bucket/prefix."""

    def list(self, prefix: str = "") -> list[StoredObject]:
        """The objects whose name starts with `prefix`, in as few requests as the storage allows."""

    def read(self, name: str, destination: Path) -> None:
        """Copy an object's bytes into the local file `destination`."""

    def write(self, name: str, source: Path, stored: datetime | None = None) -> None:
        """Store the bytes of the local file `source`; readers see all of them or none.

        `stored`, if given, is kept with the object as the time it was stored, to the
        microsecond, for `stored_at`.
        """

    def stored_at(self, name: str) -> datetime | None:
        """When an object was stored: the `stored` time its writer gave, else the storage's
        own time; None if the object is gone."""

    def delete(self, names: Sequence[str]) -> None:
        """Remove objects; a name that is already gone is not an error."""


class FolderBackend:
    """Objects as files in a local folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def location(self) -> str:
        return os.fspath(self.folder)

    def list(self, prefix: str = "") -> list[StoredObject]:
        check_folder(self.folder)
        if not self.folder.is_dir():
            return []
        found = []
        try:
            for entry in os.scandir(self.folder):
                if entry.name.startswith(prefix) and entry.is_file():
                    status = entry.stat()
                    modified = _from_nanoseconds(status.st_mtime_ns)
                    found.append(StoredObject(entry.name, status.st_size, modified))
        except OSError as error:
            raise StoreError(f"cannot list {self.folder}: {error.strerror}") from None
        return found

    def read(self, name: str, destination: Path) -> None:
        try:
            shutil.copyfile(self.folder / name, destination)
        except OSError as error:
            raise StoreError(f"cannot read {self.folder / name}: {error.strerror}") from None

    def write(self, name: str, source: Path, stored: datetime | None = None) -> None:
        """Copy into a hidden temporary file beside the target, then rename it into place.

        The stored time becomes the file's modification time (which the rename keeps).
        """
        check_folder(self.folder)
        temporary: Path | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary_name = tempfile.mkstemp(prefix=f".{name}.", dir=self.folder)
            temporary = Path(temporary_name)
            with os.fdopen(handle, "wb") as target, source.open("rb") as data:
                shutil.copyfileobj(data, target, _CHUNK)
                target.flush()
                os.fsync(target.fileno())
            if stored is not None:
                nanoseconds = _to_nanoseconds(stored)
                os.utime(temporary, ns=(nanoseconds, nanoseconds))
            temporary.replace(self.folder / name)
        except OSError as error:
            raise StoreError(f"cannot write to {self.folder}: {error.strerror}") from None
        finally:
            if temporary is not None:
                temporary.unlink(missing_ok=True)

    def stored_at(self, name: str) -> datetime | None:
        try:
            return _from_nanoseconds((self.folder / name).stat().st_mtime_ns)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StoreError(f"cannot read {self.folder / name}: {error.strerror}") from None

    def delete(self, names: Sequence[str]) -> None:
        try:
            for name in names:
                (self.folder / name).unlink(missing_ok=True)
        except OSError as error:
            raise StoreError(f"cannot delete from {self.folder}: {error.strerror}") from None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _to_nanoseconds(moment: datetime) -> int:
    """A file time for `moment`, exact to its microsecond (a float would round it)."""
    return (moment - _EPOCH) // _MICROSECOND * 1000


def _from_nanoseconds(nanoseconds: int) -> datetime:
    """The moment of a file time, to the microsecond: `_to_nanoseconds` read back exactly."""
    return _EPOCH + nanoseconds // 1000 * _MICROSECOND


# -- the format of a stored map -------------------------------------------------------


def compress(source: Path, destination: Path) -> str:
    """Write `source` gzip-compressed to `destination`; the sha256 of what was written."""
    digest = hashlib.sha256()
    packer = zlib.compressobj(COMPRESSION_LEVEL, wbits=31)  # 31: a gzip container
    with source.open("rb") as raw, destination.open("wb") as packed:
        while chunk := raw.read(_CHUNK):
            data = packer.compress(chunk)
            digest.update(data)
            packed.write(data)
        data = packer.flush()
        digest.update(data)
        packed.write(data)
    return digest.hexdigest()


def unpack(source: Path, destination: Path, digest: str) -> None:
    """Check `source` against its sha256, then gunzip it to `destination` (atomically).

    Raises StoreError if the checksum differs or the gzip stream is damaged or truncated.
    """
    found = hashlib.sha256()
    with source.open("rb") as packed:
        while chunk := packed.read(_CHUNK):
            found.update(chunk)
    if found.hexdigest() != digest:
        raise StoreError(f"{source.name} is corrupt (its sha256 does not match its name)")
    _gunzip(source, destination)


def _gunzip(source: Path, destination: Path) -> None:
    """Unpack a gzip file to `destination` (atomically); StoreError if it is damaged."""
    temporary = destination.with_name(f".{destination.name}.tmp")
    unpacker = zlib.decompressobj(wbits=31)
    try:
        with source.open("rb") as packed, temporary.open("wb") as raw:
            while chunk := packed.read(_CHUNK):
                raw.write(unpacker.decompress(chunk))
            raw.write(unpacker.flush())
        if not unpacker.eof or unpacker.unused_data:
            raise StoreError(f"{source.name} is corrupt (the gzip stream is cut short)")
        temporary.replace(destination)
    except zlib.error as error:
        raise StoreError(f"{source.name} is corrupt (gzip: {error})") from None
    finally:
        temporary.unlink(missing_ok=True)


@dataclass(frozen=True)
class StoredMap:
    """A map in a store, as its object's name and listing describe it."""

    commit: str
    variant: str
    digest: str
    size: int
    modified: datetime

    @property
    def name(self) -> str:
        """The object's name."""
        return map_name(self.commit, self.variant, self.digest)


def map_name(commit: str, variant: str, digest: str) -> str:
    """The object name of a map: what a listing needs to know about it, and its checksum."""
    return f"{commit}.{variant}.{digest}.sqlite.gz"


def _parse(stored: StoredObject) -> StoredMap | None:
    """The map an object is, or None for an object that is not one (a stray file)."""
    match = _MAP_NAME.match(stored.name)
    if match is None:
        return None
    return StoredMap(
        match["commit"], match["variant"], match["digest"], stored.size, stored.modified
    )


def _newest_first(found: list[StoredMap]) -> list[StoredMap]:
    return sorted(found, key=lambda stored: (stored.modified, stored.name), reverse=True)


class MapStore:
    """Maps kept in a backend: put, list, fetch and prune, each validated the same way."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        # Where each fetched copy came from: messages name the stored map, not the copy.
        self.fetched: dict[Path, str] = {}

    @property
    def location(self) -> str:
        """How messages name the store."""
        return self.backend.location

    def maps(self, variant: str | None = None, commit: str | None = None) -> list[StoredMap]:
        """Stored maps, newest first: one listing (narrowed by name where `commit` is given)."""
        prefix = "" if commit is None else f"{commit}."
        found = [stored for item in self.backend.list(prefix) if (stored := _parse(item))]
        if variant is not None:
            found = [stored for stored in found if stored.variant == variant]
        return _newest_first(found)

    def commits(self, variant: str) -> set[str]:
        """Every commit that has a map of `variant`: one listing, whatever the range."""
        return {stored.commit for stored in self.maps(variant)}

    def fetch(self, commit: str, variant: str) -> Path:
        """A local, checksum-verified, unpacked copy of the newest map of `commit` and `variant`.

        The copy lives in a temporary folder that is removed when the process exits.
        """
        found = self.maps(check_variant(variant), commit)
        if not found:
            raise StoreError(f"no {variant} map of {commit[:12]} in {self.location}")
        stored = found[0]
        folder = _scratch_folder() / str(next(_NAMES))
        folder.mkdir()
        packed = folder / stored.name
        try:
            self.backend.read(stored.name, packed)
            unpacked = folder / f"{commit}.{variant}.sqlite"
            try:
                unpack(packed, unpacked, stored.digest)
            except StoreError as error:
                raise StoreError(f"stored map in {self.location}: {error}") from None
        finally:
            packed.unlink(missing_ok=True)
        self.fetched[unpacked] = f"{self.location.rstrip('/')}/{stored.name}"
        return unpacked

    def put(self, data: MapData) -> StoredMap:
        """Store a map under its own commit and variant; an older one of both is replaced.

        The map is stored with the time its put started, and then every map of the commit
        and variant but the newest is deleted. Two puts at once both see both maps once
        both are written, order them by the same stored times (the name breaks a tie), and
        delete the same one: whichever finishes last, one map remains, the one whose put
        started last, and never none, since nobody deletes the newest.
        """
        started = datetime.now(UTC)
        commit = data.meta.commit
        if commit is None:
            raise StoreError("a map recorded outside a git repository has no commit to store under")
        variant = check_variant(data.meta.variant)
        raw = _scratch_folder() / f"{next(_NAMES)}.put.sqlite"
        packed = raw.with_suffix(".sqlite.gz")
        try:
            write_map(raw, data)
            digest = compress(raw, packed)
            size = packed.stat().st_size
            self.backend.write(map_name(commit, variant, digest), packed, started)
        finally:
            raw.unlink(missing_ok=True)
            packed.unlink(missing_ok=True)
        self._keep_newest(commit, variant)
        return StoredMap(commit, variant, digest, size, started)

    def _keep_newest(self, commit: str, variant: str) -> None:
        """Delete every map of `commit` and `variant` but the one stored last.

        A listing's times can be too coarse to order maps stored within a second (S3's), so
        with several maps each one's own stored time decides.
        """
        found = self.maps(variant, commit)
        if len(found) < 2:
            return
        stored_at: dict[str, datetime] = {}
        for stored in found:
            moment = self.backend.stored_at(stored.name)
            if moment is not None:  # else deleted meanwhile, by a put that saw a newer one
                stored_at[stored.name] = moment
        if stored_at:
            newest = max(stored_at, key=lambda name: (stored_at[name], name))
            self.backend.delete([name for name in stored_at if name != newest])

    def remove(self, maps: Sequence[StoredMap]) -> None:
        """Delete these maps from the store."""
        self.backend.delete([stored.name for stored in maps])


def readable_map_file(path: Path) -> Path:
    """A map file given by name (`--map`), as SQLite: a stored map (`.sqlite.gz`, what a
    cache or an artifact holds) is unpacked into a temporary copy first.

    The content decides, not the name. A stored map's name carries its sha256, which is
    checked as in the store; gzip checks its own CRC either way.
    """
    try:
        with path.open("rb") as handle:
            packed = handle.read(2) == b"\x1f\x8b"
    except OSError:
        return path  # opening it as a map says what is wrong
    if not packed:
        return path
    match = _MAP_NAME.match(path.name)
    unpacked = _scratch_folder() / f"{next(_NAMES)}.sqlite"
    if match is None:
        _gunzip(path, unpacked)
    else:
        unpack(path, unpacked, match["digest"])
    return unpacked


@functools.cache
def _scratch() -> tempfile.TemporaryDirectory[str]:
    """The process's folder for maps being packed or unpacked; the cache keeps it until exit."""
    return tempfile.TemporaryDirectory(prefix="selector-maps-", ignore_cleanup_errors=True)


def _scratch_folder() -> Path:
    return Path(_scratch().name)


class LocalStore(MapStore):
    """Maps in a local folder."""

    def __init__(self, folder: Path) -> None:
        super().__init__(FolderBackend(folder))
        self.folder = folder


# -- choosing what to prune -----------------------------------------------------------


def prunable(
    maps: Sequence[StoredMap],
    keep: int | None,
    older_than: timedelta | None,
    now: datetime,
) -> list[StoredMap]:
    """The maps `selector maps prune` deletes.

    `keep` protects the newest N maps of each variant, `older_than` every map stored at
    most that long ago. A map is deleted only if no given rule protects it, so
    `--keep 5 --older-than 30d` never leaves fewer than 5 maps of a variant, and never
    deletes a map younger than 30 days.
    """
    if keep is None and older_than is None:
        return []
    rank: dict[str, int] = {}
    doomed = []
    for stored in _newest_first(list(maps)):
        position = rank[stored.variant] = rank.get(stored.variant, 0) + 1
        kept_by_count = keep is not None and position <= keep
        kept_by_age = older_than is not None and now - stored.modified <= older_than
        if not kept_by_count and not kept_by_age:
            doomed.append(stored)
    return doomed


# -- which store --------------------------------------------------------------------


def check_store(text: str) -> str:
    """A store URL as written in the configuration: a path, or s3://bucket[/prefix]."""
    if not text.strip() or text != text.strip():
        raise StoreError(f"store {text!r} must be a folder path or s3://bucket/prefix")
    if text.startswith("s3://") and _S3_URL.match(text) is None:
        raise StoreError(
            f"store {text!r} is not an S3 URL: write s3://bucket/prefix, with a bucket name of "
            "3-63 lowercase letters, digits, '.' and '-'"
        )
    return text


def open_store(text: str, base: Path) -> MapStore:
    """The store a URL names; a relative folder is taken from `base`."""
    check_store(text)
    match = _S3_URL.match(text)
    if match is None:
        return LocalStore(base / text)
    from selector.s3store import S3Backend

    return MapStore(S3Backend(match["bucket"], (match["prefix"] or "").strip("/")))


def resolve_store(explicit: str | None, configured: str | None, root: Path) -> MapStore:
    """The store to use: --store, then $SELECTOR_STORE, then the configuration, then the default.

    A relative folder on the command line or in the environment is taken from the current
    directory, as the caller wrote it there; one in the configuration from the repository
    root, where the configuration lives.
    """
    given = explicit or os.environ.get(STORE_ENV)
    if given:
        return open_store(given, Path.cwd())
    if configured:
        return open_store(configured, root)
    return LocalStore(root / DEFAULT_FOLDER)
