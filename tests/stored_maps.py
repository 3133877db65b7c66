"""The maps a local store holds, read and altered the way only tests need to."""

import sqlite3
from pathlib import Path

from selector.mapdb import MapData, read_map
from selector.store import LocalStore, compress, map_name


def only_map_file(folder: Path) -> Path:
    """The one map stored in `folder`, unpacked into a plain SQLite file (what --map reads)."""
    store = LocalStore(folder)
    (stored,) = store.maps()
    return store.fetch(stored.commit, stored.variant)


def only_map(folder: Path) -> MapData:
    """The content of the one map stored in `folder`."""
    return read_map(only_map_file(folder))


def rewrite_only_map(folder: Path, sql: str) -> None:
    """Run `sql` on the one map stored in `folder` and store it again, with a valid checksum."""
    store = LocalStore(folder)
    (stored,) = store.maps()
    path = store.fetch(stored.commit, stored.variant)
    with sqlite3.connect(path) as connection:
        connection.execute(sql)
    connection.close()
    packed = path.with_name(path.name + ".gz")
    store.backend.write(map_name(stored.commit, stored.variant, compress(path, packed)), packed)
    store.remove([stored])
