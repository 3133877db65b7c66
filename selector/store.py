"""Where maps live: keyed by commit and variant.

The default store is a folder (`.selector/maps/`), which CI persists with actions/cache.
Map files are named `<commit>.<variant>.sqlite`, so listing a folder lists every map.
"""

import re
from pathlib import Path

from selector.mapdb import MapData, write_map

DEFAULT_FOLDER = Path(".selector") / "maps"
_VARIANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_MAP_NAME = re.compile(r"^(?P<commit>[0-9a-f]{40})\.(?P<variant>.+)\.sqlite$")


def ignore_workdir(folder: Path) -> None:
    """Create selector's working folder with a .gitignore, so git never sees its files.

    A map or fragment inside the work tree must not make the tree dirty nor show up as an
    untracked file in a diff.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# created by selector\n*\n")


class StoreError(Exception):
    """The store cannot be used as asked (one-line message)."""


def check_variant(variant: str) -> str:
    """Variants become part of file names and cache keys, so they are kept plain."""
    if not _VARIANT.match(variant):
        raise StoreError(
            f"variant {variant!r} may only contain letters, digits, '.', '_', '+' and '-'"
        )
    return variant


class LocalStore:
    """Maps in a local folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path_for(self, commit: str, variant: str) -> Path:
        """Where the map of `commit` and `variant` is (or would be) stored."""
        return self.folder / f"{commit}.{check_variant(variant)}.sqlite"

    def put(self, data: MapData) -> Path:
        """Store a map under its own commit and variant, replacing an older one atomically."""
        if data.meta.commit is None:
            raise StoreError("a map recorded outside a git repository has no commit to store under")
        destination = self.path_for(data.meta.commit, data.meta.variant)
        write_map(destination, data)
        return destination

    def find(self, commit: str, variant: str) -> Path | None:
        """The stored map of `commit` and `variant`, if there is one."""
        path = self.path_for(commit, variant)
        return path if path.is_file() else None

    def commits(self, variant: str) -> set[str]:
        """Every commit that has a map of `variant`: one directory listing."""
        if not self.folder.is_dir():
            return set()
        found = set()
        for entry in self.folder.iterdir():
            match = _MAP_NAME.match(entry.name)
            if match and match["variant"] == variant:
                found.add(match["commit"])
        return found
