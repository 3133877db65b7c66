"""Splitting the selected tests into shards of about equal recorded duration.

Units are recorded tests (node IDs) or items without a recording (a new test function, a
new test file), each with an estimated duration. Longest-processing-time-first puts the
longest unit on the least loaded shard, which is within 4/3 of the optimum and, with many
small units, very close to it. Everything is deterministic: ties break by name and by
shard index, so the same plan always gives the same shards.

The pytest side decides a test's shard by the most specific unit that covers it; a test
no unit covers (a new test inside a changed file, or any test when everything runs) goes
to a shard chosen by a stable hash of its node ID.
"""

import hashlib
import heapq
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from selector.nodeids import prefixes

Grouping = Literal["none", "module", "class"]


@dataclass(frozen=True)
class Shard:
    """One CI job's share: its units and their estimated total duration."""

    index: int  # 1-based, as in `--selector-shard K/N`
    units: tuple[str, ...]
    duration: float


def estimate_durations(units: Mapping[str, float | None]) -> dict[str, float]:
    """Units without a duration get the median of the known ones."""
    known = [duration for duration in units.values() if duration is not None]
    median = statistics.median(known) if known else 1.0
    return {unit: median if duration is None else duration for unit, duration in units.items()}


def group_of(unit: str, grouping: Grouping) -> str:
    """The group a unit belongs to: its file (module), its class, or itself."""
    if grouping == "none":
        return unit
    path, _, rest = unit.partition("::")
    if grouping == "module" or not rest:
        return path
    names = rest.split("::")
    return "::".join([path, *names[:-1]]) if len(names) > 1 else path


def _groups(durations: Mapping[str, float], grouping: Grouping, ideal: float) -> list[list[str]]:
    """Units grouped; a group longer than the ideal shard alone is split into its units."""
    grouped: dict[str, list[str]] = {}
    for unit in sorted(durations):
        grouped.setdefault(group_of(unit, grouping), []).append(unit)
    result: list[list[str]] = []
    for members in grouped.values():
        if sum(durations[unit] for unit in members) > ideal and len(members) > 1:
            result.extend([unit] for unit in members)
        else:
            result.append(members)
    return result


def make_shards(
    units: Mapping[str, float | None], count: int, grouping: Grouping = "none"
) -> list[Shard]:
    """Longest-processing-time-first over groups of units, into at most `count` shards.

    There are never more shards than units (an empty shard would be a CI job that runs
    nothing), but always at least one.
    """
    if count < 1:
        raise ValueError("the number of shards must be at least 1")
    count = max(1, min(count, len(units)))
    durations = estimate_durations(units)
    ideal = sum(durations.values()) / count
    groups = _groups(durations, grouping, ideal)
    groups.sort(key=lambda members: (-sum(durations[unit] for unit in members), members[0]))
    loads = [(0.0, index) for index in range(count)]
    assigned: list[list[str]] = [[] for _ in range(count)]
    for members in groups:
        load, index = heapq.heappop(loads)
        assigned[index].extend(members)
        heapq.heappush(loads, (load + sum(durations[unit] for unit in members), index))
    return [
        Shard(index + 1, tuple(sorted(members)), round(sum(durations[u] for u in members), 3) + 0.0)
        for index, members in enumerate(assigned)
    ]


def hashed_shard(nodeid: str, count: int) -> int:
    """A stable shard (1..count) for a test no unit covers; the same on every machine."""
    digest = hashlib.sha256(nodeid.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def shard_of(nodeid: str, assignment: Mapping[str, int], count: int) -> int:
    """The shard that runs `nodeid`: its most specific assigned unit's, else by hash."""
    found = None
    for prefix in prefixes(nodeid):
        found = assignment.get(prefix, found)
    return found if found is not None else hashed_shard(nodeid, count)
