"""selector's configuration: `[tool.selector]` in pyproject.toml or a selector.yml, same keys.

Keys, all optional:

    ignore              globs of files whose change selects nothing (docs, prose)
    ignore_defaults     false: drop DEFAULT_IGNORE, so `ignore` is the whole list
    run_all             globs of files whose change runs every test
    run_all_defaults    false: drop DEFAULT_RUN_ALL, so `run_all` is the whole list
    unknown_files       "all" (default) or "ignore": what a changed file that matches no rule does
    max_fraction        0 < x <= 1: above this fraction of the suite selected, run everything
    always_run          node IDs or prefixes (file, file::Class, directory) always selected
    always_run_markers  tests carrying any of these pytest markers are always selected
    dependencies        glob -> tests: a change to a matching file selects those tests
    variant             variant key of the maps (default: pyX.Y)
    store               where maps live: a folder (relative to the repository root) or
                        s3://bucket/prefix (default: .selector/maps)

`ignore` and `run_all` extend the defaults instead of replacing them: a project that adds one
pattern must not silently lose the lock files and pytest config that make selection safe, so
dropping the defaults takes an explicit `ignore_defaults = false` / `run_all_defaults = false`.
A list key also accepts a single string.

Globs are matched against repo-relative POSIX paths, case-sensitively, the way .gitignore does:

* a pattern without "/" matches the file name at any depth ("*.md" matches "docs/a/b.md");
  unlike .gitignore it never matches a directory name: write "build/" for that;
* a pattern with a "/" before its end is anchored at the root; a leading "/" only anchors;
* a trailing "/" matches every file under a directory of that name ("build/" at any depth,
  "/build/" at the root only);
* "*", "?" and "[...]" ("[!...]" negates) never match "/"; "**" as a whole path segment
  matches any number of directories ("**/x", "a/**/b"), and "dir/**" everything under dir;
* "\\" escapes the next character. Negation ("!pattern") is an error, not a silent no-match.
"""

import difflib
import os
import re
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from selector.store import StoreError, check_store, check_variant

DEFAULT_IGNORE: tuple[str, ...] = (
    # Prose and documentation. A test that reads one of these files is still selected through
    # the map's record of the files each test opened, and doctest files are tests themselves.
    "*.md",
    "*.rst",
    "*.adoc",
    "docs/**",
    "doc/**",
    "LICENSE*",
    "LICENCE*",
    "COPYING*",
    "NOTICE*",
    "AUTHORS*",
    "CONTRIBUTORS*",
    "CHANGELOG*",
    "CHANGES*",
    "HISTORY*",
    "NEWS*",
    "CITATION.cff",
    "CODEOWNERS",
    # Repository and editor housekeeping that neither Python nor pytest reads.
    ".gitignore",
    ".editorconfig",
    ".mailmap",
    ".git-blame-ignore-revs",
    ".pre-commit-config.yaml",
    ".readthedocs.yaml",
    ".readthedocs.yml",
    ".github/ISSUE_TEMPLATE/**",
    ".github/FUNDING.yml",
    ".github/dependabot.yml",
)
DEFAULT_RUN_ALL: tuple[str, ...] = (
    # What gets installed, and with which versions (at any depth: monorepos nest packages).
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "MANIFEST.in",
    "requirements*.txt",
    "requirements*.in",
    "requirements/**",
    "constraints*.txt",
    "*.lock",
    "Pipfile",
    "environment.yml",
    "environment.yaml",
    "uv.toml",
    "hatch.toml",
    ".python-version",
    ".tool-versions",
    # How the tests run, and code that runs before any recorder could see it.
    "pytest.ini",
    ".pytest.ini",
    "tox.ini",
    "noxfile.py",
    ".coveragerc",
    "sitecustomize.py",
    # The rules of selection themselves.
    "selector.yml",
    "selector.yaml",
)
DEFAULT_UNKNOWN_FILES = "all"
UNKNOWN_FILES_CHOICES = ("all", "ignore")
DEFAULT_MAX_FRACTION = 0.8

_PYPROJECT = "pyproject.toml"
_YAML_FILES = ("selector.yml", "selector.yaml")
_KEYS = (
    "ignore",
    "ignore_defaults",
    "run_all",
    "run_all_defaults",
    "unknown_files",
    "max_fraction",
    "always_run",
    "always_run_markers",
    "dependencies",
    "variant",
    "store",
)


class ConfigError(Exception):
    """The configuration cannot be used; one line naming the file, the key and the problem."""


def glob_to_regex(pattern: str) -> str:
    """Translate one glob (module docstring) into a regex for `re.fullmatch` on a path.

    fnmatch lets "*" cross "/" and knows no "**", so "*.md" would not mean "any .md file"
    the way users of .gitignore expect. Raises ValueError for a pattern that cannot match.
    """
    if pattern.startswith("!"):
        raise ValueError("negation ('!') is not supported")
    anchored = "/" in pattern.rstrip("/")
    segments = pattern.strip("/").split("/")
    if segments == [""]:
        raise ValueError("it names no file")
    if not anchored:
        segments.insert(0, "**")
    if pattern.endswith("/"):
        segments.append("**")
    last = len(segments) - 1
    regex = "".join(
        _segment_regex(segment, index == last) for index, segment in enumerate(segments)
    )
    try:
        re.compile(regex)
    except re.error as exc:
        raise ValueError(exc.msg) from None
    return regex


def _segment_regex(segment: str, last: bool) -> str:
    """One path segment with the "/" that follows it, if any."""
    if segment == "**":
        return ".+" if last else "(?:.+/)?"
    parts: list[str] = []
    index = 0
    while index < len(segment):
        char = segment[index]
        index += 1
        if char == "*":
            parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        elif char == "[":
            part, index = _bracket_regex(segment, index)
            parts.append(part)
        elif char == "\\":
            if index == len(segment):
                raise ValueError("it ends with an escaping '\\'")
            parts.append(re.escape(segment[index]))
            index += 1
        else:
            parts.append(re.escape(char))
    return "".join(parts) + ("" if last else "/")


def _bracket_regex(segment: str, start: int) -> tuple[str, int]:
    """The class whose members begin at segment[start], and the index just after its "]"."""
    negate = segment[start : start + 1] in ("!", "^")
    first = start + 1 if negate else start
    end = segment.find("]", first + 1)  # a "]" right after "[" is a member, as in fnmatch
    if end < 0:
        raise ValueError("'[' without a closing ']'")
    members = "".join("-" if char == "-" else re.escape(char) for char in segment[first:end])
    return f"[^/{members}]" if negate else f"[{members}]", end + 1


def compile_globs(patterns: Iterable[str]) -> re.Pattern[str]:
    """One regex for a list of globs, so a path is tested against all of them in one match.

    An empty list gives "(?!)", which matches nothing (an empty regex would match "").
    """
    return re.compile("|".join(f"(?:{glob_to_regex(pattern)})" for pattern in patterns) or "(?!)")


@dataclass(frozen=True)
class Config:
    """The effective settings; `Config()` is the defaults. Globs compile once, here."""

    ignore: tuple[str, ...] = DEFAULT_IGNORE
    run_all: tuple[str, ...] = DEFAULT_RUN_ALL
    unknown_files: str = DEFAULT_UNKNOWN_FILES
    max_fraction: float = DEFAULT_MAX_FRACTION
    always_run: tuple[str, ...] = ()
    always_run_markers: tuple[str, ...] = ()
    dependencies: tuple[tuple[str, tuple[str, ...]], ...] = ()
    variant: str | None = None
    store: str | None = None
    source: str | None = None
    _ignore: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _run_all: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _dependencies: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ignore", compile_globs(self.ignore))
        object.__setattr__(self, "_run_all", compile_globs(self.run_all))
        rules = tuple((compile_globs([glob]), tests) for glob, tests in self.dependencies)
        object.__setattr__(self, "_dependencies", rules)

    def is_run_all(self, path: str) -> bool:
        """Whether a change to `path` (repo-relative, POSIX) runs every test."""
        return self._run_all.fullmatch(path) is not None

    def is_ignored(self, path: str) -> bool:
        """Whether a change to `path` selects nothing by itself.

        A run-all match wins, so a lock file under docs/ still runs everything: in doubt,
        select more.
        """
        return self._ignore.fullmatch(path) is not None and not self.is_run_all(path)

    def dependent_tests(self, path: str) -> tuple[str, ...]:
        """Node IDs or prefixes that `dependencies` ties to `path`: the union, in config order."""
        tests: dict[str, None] = {}
        for pattern, targets in self._dependencies:
            if pattern.fullmatch(path):
                tests.update(dict.fromkeys(targets))
        return tuple(tests)


def _describe(value: object) -> str:
    """A wrong value as the user wrote it, in words both TOML and YAML users recognise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


@dataclass(frozen=True)
class _Settings:
    """The raw settings of one file, and how error messages name that file."""

    source: str
    where: str
    values: Mapping[object, object]

    def config(self) -> Config:
        """Validate every key; the first problem raises ConfigError."""
        self._check_keys()
        return Config(
            ignore=self._extended("ignore", DEFAULT_IGNORE),
            run_all=self._extended("run_all", DEFAULT_RUN_ALL),
            unknown_files=self._unknown_files(),
            max_fraction=self._max_fraction(),
            always_run=self._list("always_run", self.values.get("always_run", []), self._string),
            always_run_markers=self._list(
                "always_run_markers", self.values.get("always_run_markers", []), self._marker
            ),
            dependencies=self._dependencies(),
            variant=self._variant(),
            store=self._store(),
            source=self.source,
        )

    def error(self, message: str) -> ConfigError:
        """Every message starts with the file, so the user knows where to look."""
        return ConfigError(f"{self.where}: {message}")

    def _check_keys(self) -> None:
        for key in self.values:
            if key not in _KEYS:
                close = difflib.get_close_matches(str(key), _KEYS, n=1)
                hint = f"did you mean {close[0]!r}?" if close else "known keys: " + ", ".join(_KEYS)
                raise self.error(f"unknown key {str(key)!r} ({hint})")

    def _extended(self, key: str, defaults: tuple[str, ...]) -> tuple[str, ...]:
        """The defaults (unless `<key>_defaults = false`) followed by the user's globs."""
        use_defaults = self.values.get(f"{key}_defaults", True)
        if not isinstance(use_defaults, bool):
            raise self.error(f"{key}_defaults must be true or false, got {_describe(use_defaults)}")
        globs = self._list(key, self.values.get(key, []), self._glob)
        return tuple(dict.fromkeys((defaults if use_defaults else ()) + globs))

    def _unknown_files(self) -> str:
        value = self.values.get("unknown_files", DEFAULT_UNKNOWN_FILES)
        if not isinstance(value, str) or value not in UNKNOWN_FILES_CHOICES:
            choices = " or ".join(repr(choice) for choice in UNKNOWN_FILES_CHOICES)
            raise self.error(f"unknown_files must be {choices}, got {_describe(value)}")
        return value

    def _max_fraction(self) -> float:
        value = self.values.get("max_fraction", DEFAULT_MAX_FRACTION)
        # bool is an int subclass, and NaN fails every comparison, hence the negated range.
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            raise self.error(
                f"max_fraction must be a number between 0 (exclusive) and 1, got {_describe(value)}"
            )
        return float(value)

    def _dependencies(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        value = self.values.get("dependencies", {})
        if not isinstance(value, dict):
            raise self.error(
                f"dependencies must map globs to lists of tests, got {_describe(value)}"
            )
        rules: list[tuple[str, tuple[str, ...]]] = []
        for glob, targets in value.items():
            pattern = self._glob("dependencies key", glob)
            label = f"dependencies[{pattern!r}]"
            tests = self._list(label, targets, self._string)
            if not tests:
                raise self.error(f"{label} must name at least one test")
            rules.append((pattern, tests))
        return tuple(rules)

    def _variant(self) -> str | None:
        value = self.values.get("variant")
        if value is None:
            return None
        try:
            return check_variant(self._string("variant", value))
        except StoreError as exc:  # the store's rule, so a configured variant is always storable
            raise self.error(str(exc)) from None

    def _store(self) -> str | None:
        value = self.values.get("store")
        if value is None:
            return None
        try:
            return check_store(self._string("store", value))
        except StoreError as exc:  # the store's own rule, so a configured store always opens
            raise self.error(str(exc)) from None

    def _list(
        self, label: str, value: object, item: Callable[[str, object], str]
    ) -> tuple[str, ...]:
        """A list of strings, each checked by `item`; a single string is a list of one."""
        if isinstance(value, str):
            return (item(label, value),)
        if not isinstance(value, list):
            raise self.error(f"{label} must be a list of strings, got {_describe(value)}")
        return tuple(item(f"{label}[{index}]", element) for index, element in enumerate(value))

    def _string(self, label: str, value: object) -> str:
        """A non-blank string without surrounding spaces, which would never match anything."""
        if not isinstance(value, str):
            raise self.error(f"{label} must be a string, got {_describe(value)}")
        if not value.strip():
            raise self.error(f"{label} must not be empty")
        if value != value.strip():
            raise self.error(f"{label} {value!r} has leading or trailing whitespace")
        return value

    def _glob(self, label: str, value: object) -> str:
        pattern = self._string(label, value)
        try:
            glob_to_regex(pattern)
        except ValueError as exc:
            raise self.error(f"{label} {pattern!r} is not a valid glob: {exc}") from None
        return pattern

    def _marker(self, label: str, value: object) -> str:
        name = self._string(label, value)
        if not name.isidentifier():
            raise self.error(f"{label} must be a marker name such as 'slow', got {name!r}")
        return name


def load_config(root: Path) -> Config:
    """The configuration of the repository at `root`; defaults when nothing configures selector.

    Two configuration files would leave it unclear which one a reader should trust, so that
    is an error rather than a silent precedence rule.
    """
    found = _from_pyproject(root) + [
        settings for name in _YAML_FILES for settings in _from_yaml(root, name)
    ]
    if len(found) > 1:
        raise ConfigError(
            f"{found[0].where} and {found[1].where} both configure selector; keep one"
        )
    return found[0].config() if found else Config()


def _read(root: Path, name: str) -> bytes | None:
    """The file's bytes, or None when it does not exist."""
    path = root / name
    if not path.exists():
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read it: {exc.strerror}") from None


def _from_pyproject(root: Path) -> list[_Settings]:
    """`[tool.selector]`, if pyproject.toml has it: the file alone configures nothing."""
    data = _read(root, _PYPROJECT)
    if data is None:
        return []
    try:
        document = tomllib.loads(data.decode())
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{_PYPROJECT}: invalid TOML: not UTF-8 (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{_PYPROJECT}: invalid TOML: {exc}") from None
    tool = document.get("tool")
    if not isinstance(tool, dict) or "selector" not in tool:
        return []
    where = f"{_PYPROJECT} [tool.selector]"
    table = tool["selector"]
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table, got {_describe(table)}")
    return [_Settings(_PYPROJECT, where, table)]


def _from_yaml(root: Path, name: str) -> list[_Settings]:
    """The settings of selector.yml (or .yaml): its whole purpose, so an empty file counts."""
    data = _read(root, name)
    if data is None:
        return []
    try:
        document = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: invalid YAML{_yaml_problem(exc)}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"{name}: the top level must be a mapping of settings, got {_describe(document)}"
        )
    return [_Settings(name, name, document)]


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's message spans several lines; keep the position and the problem."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f" at line {mark.line + 1}, column {mark.column + 1}: {exc.problem or exc.context}"
    return ": " + " ".join(str(exc).split())


def resolve_variant(explicit: str | None, config: Config) -> str:
    """The map variant: the command line, then $SELECTOR_VARIANT, then the configuration,
    then the Python minor version (maps are only comparable within one)."""
    chosen = explicit or os.environ.get("SELECTOR_VARIANT") or config.variant
    return check_variant(chosen) if chosen else f"py{sys.version_info[0]}.{sys.version_info[1]}"
