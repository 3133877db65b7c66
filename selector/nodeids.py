"""pytest node IDs and the items of a plan that cover them.

Node IDs in maps and plans are relative to the repository root, whatever pytest's rootdir
(which moves with the arguments and configuration files): `repository_nodeid`.

A plan selects *items*: node IDs without their parametrisation (`a.py::test_x` runs every
parameter of `test_x`) or prefixes (a folder, a test file, a class). One function decides
what covers what, so the planner, the sharding and the pytest plugin agree.
"""

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest


def _split(nodeid: str) -> tuple[str, list[str], str]:
    """(`path`, [names...], `[params]`) of a node ID; params may themselves contain '::'."""
    path, _, rest = nodeid.partition("::")
    bracket = rest.find("[")
    names, params = (rest, "") if bracket < 0 else (rest[:bracket], rest[bracket:])
    return path, names.split("::") if names else [], params


def item_of(nodeid: str) -> str:
    """The node ID without its parametrisation: `a.py::test[1-2]` -> `a.py::test`."""
    path, names, _params = _split(nodeid)
    return "::".join([path, *names])


def prefixes(nodeid: str) -> Iterable[str]:
    """Every item that can cover `nodeid`, least specific first.

    Each folder, the file, each class, the test function, and the node ID itself.
    """
    path, names, params = _split(nodeid)
    parts = path.split("/")
    for index in range(1, len(parts) + 1):
        yield "/".join(parts[:index])
    for index in range(1, len(names) + 1):
        yield "::".join([path, *names[:index]])
    if params:
        yield nodeid


def covered(items: Iterable[str], nodeids: Iterable[str]) -> set[str]:
    """The node IDs that the items run."""
    wanted = set(items)
    return {nodeid for nodeid in nodeids if any(p in wanted for p in prefixes(nodeid))}


def by_item(items: Iterable[str], nodeids: Iterable[str]) -> dict[str, list[str]]:
    """For each item, the node IDs it runs: one pass over the node IDs.

    A node ID goes to the least specific item that covers it; items of a plan do not
    nest (a covered item is folded into the wider one), so that is its only item.
    """
    grouped: dict[str, list[str]] = {item: [] for item in items}
    for nodeid in nodeids:
        for prefix in prefixes(nodeid):
            found = grouped.get(prefix)
            if found is not None:
                found.append(nodeid)
                break
    return grouped


def counted(count: int, noun: str) -> str:
    """How messages count tests, items and maps: `1 test`, `2 tests`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def repository_nodeid(item: "pytest.Item", root: Path, resolved: dict[Path, Path]) -> str:
    """The node ID of `item` with its file relative to `root`, not to pytest's rootdir.

    pytest names a test by the file that collects it (the node whose ID is the node ID's
    path part) and the names inside. A file outside `root` keeps pytest's node ID.
    `resolved` caches real paths between calls.
    """
    path_part, separator, rest = item.nodeid.partition("::")
    file = next((node for node in item.listchain() if node.nodeid == path_part), None)
    if file is None or not path_part:
        return item.nodeid
    if file.path not in resolved:
        resolved[file.path] = Path(os.path.realpath(file.path))
    real = resolved[file.path]
    if not real.is_relative_to(root):
        return item.nodeid
    return real.relative_to(root).as_posix() + separator + rest
