"""What the cached-results rule (cached.py) needs to know of one Python file.

Finding the functions that call a changed function means reading every file that might
call it: on a large project, hundreds of files per plan. Parsing them is most of the cost,
and the map's files do not change between the plans made against it. So the map keeps
each file's index, made once (`mapdb`: tables `code` and `code_name`). A plan reads it
back instead of parsing, and looks up which files name a word in `code_name` instead of
running `git grep`.

`upload-map` and `selector run` index the files of the maps they store
(`complete`), from the map commit's content: carrying a map forward keeps the index of
every file the change did not touch, so only the touched ones are read again.

The index is JSON: the body span of every function, what each function calls
(`scopes.CallIndex`), how the module binds names (`scopes.Bindings`), its classes, its
pytest fixtures, and where its functions may keep results (`flows`). Stored with it are
the words a lookup may ask for: called names and attributes, attribute reads, getattr
strings, class bases and imported names.
"""

import ast
import json
from dataclasses import dataclass
from typing import Any

import git

from selector import flows, gitdiff, scopes
from selector.mapdb import MapData, StoredCode


@dataclass(frozen=True)
class CodeIndex:
    """One file's functions, calls, bindings, classes and fixtures."""

    functions: dict[str, tuple[int, int]]  # qualname -> body span
    calls: scopes.CallIndex
    bindings: scopes.Bindings
    classes: frozenset[str]  # qualnames
    fixtures: frozenset[str]  # qualnames
    # What flows.py says: None in an index stored before it did, where anything may cache.
    kept: dict[str, frozenset[str]] | None  # qualname -> names whose results it may keep
    caching: frozenset[str] | None  # qualnames with a decorator that may cache


def build(tree: ast.Module) -> CodeIndex:
    """The index of a parsed file."""
    return CodeIndex(
        {qualname: scope.body for qualname, scope in scopes.function_scopes(tree).items()},
        scopes.call_index(tree),
        scopes.bindings(tree),
        frozenset(scopes.class_spans(tree)),
        scopes.fixtures(tree),
        flows.kept_mentions(tree),
        flows.caching_definitions(tree),
    )


def store(index: CodeIndex) -> StoredCode:
    """The index as the map keeps it."""
    calls, bindings = index.calls, index.bindings
    document = {
        "functions": index.functions,
        "calls": {
            "names": _sorted_sets(calls.names),
            "attributes": _sorted_sets(calls.attributes),
            "read": _sorted_sets(calls.read),
            "strings": _sorted_sets(calls.strings),
            "decorated": sorted(calls.decorated),
        },
        "bindings": {
            "defined": sorted(bindings.defined),
            "classes": {name: _mentions(bases) for name, bases in bindings.classes.items()},
            "imported": {
                name: [[entry.module, entry.level, entry.name] for entry in entries]
                for name, entries in bindings.imported.items()
            },
            "modules": {name: list(targets) for name, targets in bindings.modules.items()},
            "star": [[entry.module, entry.level, entry.name] for entry in bindings.star],
        },
        "classes": sorted(index.classes),
        "fixtures": sorted(index.fixtures),
        "kept": _sorted_sets(index.kept or {}),
        "caching": sorted(index.caching or ()),
    }
    words = {*calls.names, *calls.attributes, *calls.read, *calls.strings}
    for bases in bindings.classes.values():
        words.update(bases.names)
        words.update(attribute for _base, attribute in bases.attributes)
    for entries in bindings.imported.values():
        words.update(entry.name for entry in entries)
    return json.dumps(document, separators=(",", ":")), tuple(sorted(words))


def complete(repo: git.Repo, commit: str, data: MapData) -> None:
    """Index every Python file of the map that has no index yet, from its content at
    `commit` (the map's), where that is the content recorded."""
    blobs = gitdiff.tree_blobs(repo, commit)
    for path, blob in data.files.items():
        if path in data.code or not path.endswith(".py") or blobs.get(path) != blob:
            continue
        source = gitdiff.file_at(repo, commit, path)
        tree = None if source is None else scopes.parse(source, path)
        if tree is not None:
            data.code[path] = store(build(tree))


def load(text: str) -> CodeIndex:
    """A stored index back."""
    document = json.loads(text)
    calls, bindings = document["calls"], document["bindings"]
    return CodeIndex(
        {qualname: (span[0], span[1]) for qualname, span in document["functions"].items()},
        scopes.CallIndex(
            names={name: set(owners) for name, owners in calls["names"].items()},
            attributes=_pairs(calls["attributes"]),
            read=_pairs(calls["read"]),
            strings={name: set(owners) for name, owners in calls["strings"].items()},
            decorated=set(calls["decorated"]),
        ),
        scopes.Bindings(
            frozenset(bindings["defined"]),
            {name: _load_mentions(bases) for name, bases in bindings["classes"].items()},
            {
                name: tuple(scopes.ImportedName(*entry) for entry in entries)
                for name, entries in bindings["imported"].items()
            },
            {name: tuple(targets) for name, targets in bindings["modules"].items()},
            tuple(scopes.ImportedName(*entry) for entry in bindings["star"]),
        ),
        frozenset(document["classes"]),
        frozenset(document["fixtures"]),
        {q: frozenset(names) for q, names in document["kept"].items()}
        if "kept" in document
        else None,
        frozenset(document["caching"]) if "caching" in document else None,
    )


def _sorted_sets(mapping: dict[str, Any]) -> dict[str, list[Any]]:
    return {key: sorted(values) for key, values in mapping.items()}


def _pairs(mapping: dict[str, list[list[str]]]) -> dict[str, set[tuple[str, str]]]:
    return {key: {(pair[0], pair[1]) for pair in pairs} for key, pairs in mapping.items()}


def _mentions(mentions: scopes.Mentions) -> dict[str, list[Any]]:
    return {
        "names": sorted(mentions.names),
        "attributes": sorted(mentions.attributes),
    }


def _load_mentions(document: dict[str, list[Any]]) -> scopes.Mentions:
    attributes = frozenset((pair[0], pair[1]) for pair in document["attributes"])
    return scopes.Mentions(frozenset(document["names"]), attributes, attributes, frozenset())
