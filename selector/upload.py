"""Turning the fragments of recording runs into the stored map of HEAD.

Every recording process (each CI shard, each xdist worker) writes one fragment. The map of
a commit is the merge of that commit's fragments, per variant. When the fragments ran only
some of the collected tests (a planned run), the others are carried forward from the base
map: the stored map of the nearest first-parent ancestor of HEAD that has one, or
`--base-map` (see carry.py for the rules).

A map describes a commit that others can plan against, so uploading refuses, unless
forced, a working tree or fragments with uncommitted changes (the map would hold lines of
code no commit has) and a detached HEAD that no remote branch contains (nobody else has
the commit). Every map is built before the first one is stored: an upload stores all of
its variants or none.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import git

from selector import __version__, codeindex, gitdiff
from selector.carry import CarryError, CarryReport, carry_forward
from selector.config import Config
from selector.installed import outside_message
from selector.mapdb import MapData, MapError, MapMeta, merge, read_map
from selector.plan import nearest_stored_maps
from selector.store import MapStore, StoredMap, check_folder, readable_map_file


class UploadError(Exception):
    """Nothing was uploaded; the message says what to do."""


@dataclass(frozen=True)
class UploadRequest:
    """What `selector upload-map` was asked."""

    fragment_dir: Path
    store: MapStore
    variant: str | None = None
    base_map: Path | None = None
    force: bool = False


@dataclass
class Stored:
    """One variant's map, where it went, and what was carried forward into it."""

    data: MapData
    stored: StoredMap
    carry: CarryReport | None


@dataclass
class UploadResult:
    """What `upload` stored and what it passed over."""

    stored: list[Stored] = field(default_factory=list)
    other_commits: int = 0
    unreadable: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def upload(repo: git.Repo, request: UploadRequest, config: Config) -> UploadResult:
    """Merge the fragments of HEAD per variant, complete them from the base map, store them."""
    commit = _uploadable_head(repo, request.force)
    result = UploadResult()
    by_variant = _fragments(request, commit, result)
    dirty = sum(fragment.meta.dirty for fragments in by_variant.values() for fragment in fragments)
    if dirty and not request.force:
        raise UploadError(
            f"{dirty} fragments were recorded with uncommitted changes, so their lines are of "
            "code no commit holds: record again from a clean working tree, or pass --force"
        )
    built = []
    for variant, fragments in sorted(by_variant.items()):
        fresh = merge(fragments, merged_meta(commit, variant, fragments))
        built.append(_complete(repo, request, config, fresh, result))
    for data, carry in built:
        result.warnings.extend(outside_message(install) for install in data.meta.outside)
        codeindex.complete(repo, commit, data)
        result.stored.append(Stored(data, request.store.put(data), carry))
    return result


def _uploadable_head(repo: git.Repo, force: bool) -> str:
    """HEAD's commit, unless its map would describe something nobody else can plan against."""
    commit = gitdiff.head_commit(repo)
    if commit is None:
        raise UploadError("the repository has no commits yet: commit, record, then upload")
    if force:
        return commit
    if gitdiff.is_dirty(repo):
        raise UploadError(
            "the working tree has uncommitted changes and a map must describe a commit: "
            "commit or stash them, or pass --force"
        )
    if gitdiff.is_detached(repo) and not gitdiff.remote_branches_containing(repo, commit):
        raise UploadError(
            f"HEAD ({commit[:12]}) is detached and no remote branch contains it, so nobody "
            "else could plan against its map: push it or check out a branch, or pass --force"
        )
    return commit


def _fragments(
    request: UploadRequest, commit: str, result: UploadResult
) -> dict[str, list[MapData]]:
    """The readable fragments recorded at `commit`, per variant."""
    folder = request.fragment_dir
    check_folder(folder)
    by_variant: dict[str, list[MapData]] = {}
    for path in sorted(folder.glob("*.sqlite")) if folder.is_dir() else []:
        try:
            fragment = read_map(path)
        except MapError as error:
            result.unreadable.append(str(error))
            continue
        if fragment.meta.commit != commit:
            result.other_commits += 1
        elif request.variant is None or fragment.meta.variant == request.variant:
            by_variant.setdefault(fragment.meta.variant, []).append(fragment)
    if not by_variant:
        unreadable = result.unreadable
        raise UploadError(
            f"no fragments recorded at {commit[:12]}"
            + (f" for variant {request.variant}" if request.variant else "")
            + f" under {folder}: run `pytest --selector-record` first"
            + (f" ({len(unreadable)} unreadable, such as: {unreadable[0]})" if unreadable else "")
        )
    return by_variant


def _complete(
    repo: git.Repo, request: UploadRequest, config: Config, fresh: MapData, result: UploadResult
) -> tuple[MapData, CarryReport | None]:
    """The map to store: the fragments alone if they ran every collected test, else carried.

    Without a base map the fragments are stored as they are. That is safe: every plan selects
    a collected test the map has no recording of, and the next recording run records it. It
    is also what a project whose own configuration deselects some tests (`-m "not slow"`)
    gets on its first upload, where refusing would leave it no way forward.
    """
    if fresh.collected.issubset(fresh.tests):
        return fresh, None
    base = _base_map(repo, request, fresh, result.warnings)
    if base is None:
        commit = fresh.meta.commit or ""
        result.warnings.append(
            f"the fragments ran {len(fresh.tests)} of {len(fresh.collected)} collected tests "
            f"and no {fresh.meta.variant} map of {commit[:12]} or its first-parent ancestors is "
            f"in {request.store.location} to carry the others forward from: the map has no "
            "recording of them, so every plan selects them until a run records them"
        )
        return fresh, None
    path, data = base
    try:
        return carry_forward(repo, path, data, fresh, config)
    except CarryError as error:
        raise UploadError(str(error)) from None


def _base_map(
    repo: git.Repo, request: UploadRequest, fresh: MapData, warnings: list[str]
) -> tuple[Path, MapData] | None:
    """`--base-map`, or the stored map nearest to HEAD on the first-parent line.

    A stored map that cannot be used (corrupt, another schema) is reported in `warnings`
    and the next older one is tried: carrying from an older map is as safe, only more of
    its tests are affected by the longer change.
    """
    if request.base_map is not None:
        path = readable_map_file(request.base_map)
        return path, read_map(path, name=str(request.base_map))
    commit, variant = fresh.meta.commit, fresh.meta.variant
    assert commit is not None
    for candidate, path in nearest_stored_maps(repo, request.store, variant, commit, warnings):
        try:
            return path, read_map(path, name=request.store.fetched.get(path))
        except MapError as error:
            warnings.append(f"skipped the stored map of {candidate[:12]}: {error}")
    return None


def merged_meta(commit: str, variant: str, fragments: list[MapData]) -> MapMeta:
    """The meta of the map merged from fragments of one commit and variant."""
    return MapMeta(
        commit=commit,
        dirty=any(fragment.meta.dirty for fragment in fragments),
        variant=variant,
        tool_version=__version__,
        created=datetime.now(UTC).isoformat(),
        collector=",".join(sorted({fragment.meta.collector for fragment in fragments})),
        python=max(fragment.meta.python for fragment in fragments),
        outside=tuple(sorted({item for fragment in fragments for item in fragment.meta.outside})),
    )
