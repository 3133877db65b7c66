"""Turning the fragments of recording runs into the stored map of a commit.

Every recording process (each CI shard, each xdist worker) writes one fragment. The map
for a commit is the merge of that commit's fragments, stored per variant.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from selector import __version__
from selector.mapdb import MapData, MapError, MapMeta, merge, read_map
from selector.store import LocalStore


class UploadError(Exception):
    """Nothing could be uploaded; the message says what to do."""


@dataclass
class UploadResult:
    """What `upload_fragments` stored and what it passed over."""

    stored: list[tuple[Path, MapData]] = field(default_factory=list)
    other_commits: int = 0
    unreadable: list[str] = field(default_factory=list)
    dirty: bool = False


def upload_fragments(
    fragment_dir: Path, store: LocalStore, commit: str, variant: str | None
) -> UploadResult:
    """Merge the fragments recorded at `commit` into one map per variant and store them."""
    result = UploadResult()
    by_variant: dict[str, list[MapData]] = {}
    for path in sorted(fragment_dir.glob("*.sqlite")) if fragment_dir.is_dir() else []:
        try:
            fragment = read_map(path)
        except MapError as error:
            result.unreadable.append(str(error))
            continue
        if fragment.meta.commit != commit:
            result.other_commits += 1
            continue
        if variant is None or fragment.meta.variant == variant:
            by_variant.setdefault(fragment.meta.variant, []).append(fragment)
    if not by_variant:
        raise UploadError(
            f"no fragments recorded at {commit[:12]}"
            + (f" for variant {variant}" if variant else "")
            + f" under {fragment_dir}: run `pytest --selector-record` first"
        )
    for found_variant, fragments in sorted(by_variant.items()):
        merged = merge(fragments, _merged_meta(commit, found_variant, fragments))
        result.dirty = result.dirty or merged.meta.dirty
        result.stored.append((store.put(merged), merged))
    return result


def _merged_meta(commit: str, variant: str, fragments: list[MapData]) -> MapMeta:
    return MapMeta(
        commit=commit,
        dirty=any(fragment.meta.dirty for fragment in fragments),
        variant=variant,
        tool_version=__version__,
        created=datetime.now(UTC).isoformat(),
        collector=",".join(sorted({fragment.meta.collector for fragment in fragments})),
        python=max(fragment.meta.python for fragment in fragments),
    )
