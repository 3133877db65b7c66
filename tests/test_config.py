"""selector.config against real pyproject.toml and selector.yml files written in tmp_path.

Every key is read from both formats, and every error message is checked word for word: the
message is the whole user interface of a configuration mistake, and it must fit on one line.
"""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from selector.config import (
    DEFAULT_IGNORE,
    DEFAULT_RUN_ALL,
    Config,
    ConfigError,
    compile_globs,
    glob_to_regex,
    load_config,
)

FORMATS = ("toml", "yml", "yaml")


def toml_value(value: object) -> str:
    """TOML for the values these tests use: JSON spells strings, lists and numbers the same way."""
    if isinstance(value, dict):
        pairs = ", ".join(f"{json.dumps(key)} = {toml_value(item)}" for key, item in value.items())
        return "{ " + pairs + " }"
    return json.dumps(value)


def write_settings(root: Path, fmt: str, settings: dict[str, object]) -> str:
    """Write `settings` the way a user of `fmt` would; return how errors name the file."""
    if fmt == "toml":
        lines = ["[project]", 'name = "demo"', "", "[tool.selector]"]
        lines += [f"{key} = {toml_value(value)}" for key, value in settings.items()]
        (root / "pyproject.toml").write_text("\n".join(lines) + "\n")
        return "pyproject.toml [tool.selector]"
    name = f"selector.{fmt}"
    (root / name).write_text(yaml.safe_dump(settings))
    return name


def load_error(root: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(root)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- defaults ---------------------------------------------------------------------------------


def test_no_configuration_file_means_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert config == Config()
    assert config.source is None
    assert config.ignore == DEFAULT_IGNORE
    assert config.run_all == DEFAULT_RUN_ALL
    assert config.unknown_files == "all"
    assert config.max_fraction == 0.8
    assert config.always_run == config.always_run_markers == ()
    assert config.dependencies == ()
    assert config.variant is None


def test_pyproject_without_tool_selector_means_defaults(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\n\n[tool.ruff]\nx = 1\n')
    assert load_config(tmp_path) == Config()


def test_pyproject_without_tool_selector_leaves_selector_yml_in_charge(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    (tmp_path / "selector.yml").write_text("max_fraction: 0.5\n")
    assert load_config(tmp_path) == Config(max_fraction=0.5, source="selector.yml")


@pytest.mark.parametrize("text", ["", "# nothing configured yet\n"])
def test_empty_selector_yml_means_defaults_from_that_file(tmp_path: Path, text: str) -> None:
    (tmp_path / "selector.yml").write_text(text)
    assert load_config(tmp_path) == Config(source="selector.yml")


def test_empty_tool_selector_table_means_defaults_from_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.selector]\n")
    assert load_config(tmp_path) == Config(source="pyproject.toml")


@pytest.mark.parametrize(
    ("patterns", "path"),
    [
        (DEFAULT_IGNORE, "README.md"),
        (DEFAULT_IGNORE, "docs/api/index.rst"),
        (DEFAULT_IGNORE, "docs/conf.py"),
        (DEFAULT_IGNORE, "LICENSE"),
        (DEFAULT_IGNORE, "CHANGELOG.md"),
        (DEFAULT_IGNORE, ".gitignore"),
        (DEFAULT_RUN_ALL, "pyproject.toml"),
        (DEFAULT_RUN_ALL, "packages/core/pyproject.toml"),
        (DEFAULT_RUN_ALL, "requirements-dev.txt"),
        (DEFAULT_RUN_ALL, "requirements/test.txt"),
        (DEFAULT_RUN_ALL, "uv.lock"),
        (DEFAULT_RUN_ALL, "poetry.lock"),
        (DEFAULT_RUN_ALL, "tox.ini"),
        (DEFAULT_RUN_ALL, "selector.yml"),
    ],
)
def test_default_lists_cover_the_usual_files(patterns: tuple[str, ...], path: str) -> None:
    assert compile_globs(patterns).fullmatch(path)


@pytest.mark.parametrize(
    "path", ["src/pkg/module.py", "tests/test_a.py", "conftest.py", "tests/data/input.json"]
)
def test_default_lists_leave_code_and_test_data_alone(path: str) -> None:
    config = Config()
    assert not config.is_ignored(path)
    assert not config.is_run_all(path)


# --- every key, from every format -------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"ignore": ["*.ipynb"]}, Config(ignore=(*DEFAULT_IGNORE, "*.ipynb"))),
        ({"ignore": "*.ipynb"}, Config(ignore=(*DEFAULT_IGNORE, "*.ipynb"))),
        ({"ignore": ["*.md", "*.txt"]}, Config(ignore=(*DEFAULT_IGNORE, "*.txt"))),
        ({"ignore": ["*.txt"], "ignore_defaults": False}, Config(ignore=("*.txt",))),
        ({"ignore_defaults": False}, Config(ignore=())),
        ({"ignore_defaults": True}, Config()),
        ({"run_all": ["Makefile"]}, Config(run_all=(*DEFAULT_RUN_ALL, "Makefile"))),
        ({"run_all": ["Makefile"], "run_all_defaults": False}, Config(run_all=("Makefile",))),
        ({"run_all_defaults": False}, Config(run_all=())),
        ({"unknown_files": "ignore"}, Config(unknown_files="ignore")),
        ({"unknown_files": "all"}, Config(unknown_files="all")),
        ({"max_fraction": 0.5}, Config(max_fraction=0.5)),
        ({"max_fraction": 1}, Config(max_fraction=1.0)),
        (
            {"always_run": ["tests/test_smoke.py", "tests/e2e/", "tests/test_a.py::TestApi"]},
            Config(always_run=("tests/test_smoke.py", "tests/e2e/", "tests/test_a.py::TestApi")),
        ),
        ({"always_run": "tests/test_smoke.py"}, Config(always_run=("tests/test_smoke.py",))),
        (
            {"always_run_markers": ["smoke", "critical"]},
            Config(always_run_markers=("smoke", "critical")),
        ),
        (
            {"dependencies": {"data/*.csv": ["tests/test_data.py"], "schema.json": "tests/api/"}},
            Config(
                dependencies=(
                    ("data/*.csv", ("tests/test_data.py",)),
                    ("schema.json", ("tests/api/",)),
                )
            ),
        ),
        ({"variant": "py3.12-linux"}, Config(variant="py3.12-linux")),
        ({"store": "s3://ci-maps/app"}, Config(store="s3://ci-maps/app")),
        ({"store": "../maps"}, Config(store="../maps")),
    ],
)
def test_each_key_is_read_from_every_format(
    tmp_path: Path, fmt: str, settings: dict[str, object], expected: Config
) -> None:
    write_settings(tmp_path, fmt, settings)
    source = "pyproject.toml" if fmt == "toml" else f"selector.{fmt}"
    assert load_config(tmp_path) == replace(expected, source=source)


def test_yaml_null_variant_means_the_default(tmp_path: Path) -> None:
    (tmp_path / "selector.yml").write_text("variant: null\n")
    assert load_config(tmp_path).variant is None


def test_hand_written_toml_and_yaml_mean_the_same(tmp_path: Path) -> None:
    toml_root, yaml_root = tmp_path / "toml", tmp_path / "yaml"
    toml_root.mkdir()
    yaml_root.mkdir()
    (toml_root / "pyproject.toml").write_text(
        "[tool.selector]\n"
        'ignore = ["*.ipynb", "notes/"]\n'
        'run_all = ["Makefile"]\n'
        'unknown_files = "ignore"\n'
        "max_fraction = 0.6\n"
        'always_run = ["tests/test_smoke.py"]\n'
        'always_run_markers = ["smoke"]\n'
        "\n"
        "[tool.selector.dependencies]\n"
        '"data/**/*.csv" = ["tests/test_data.py", "tests/test_report.py::TestCsv"]\n'
        '"templates/" = "tests/test_render.py"\n'
    )
    (yaml_root / "selector.yml").write_text(
        "ignore:\n"
        '  - "*.ipynb"\n'
        "  - notes/\n"
        "run_all: [Makefile]\n"
        "unknown_files: ignore\n"
        "max_fraction: 0.6\n"
        "always_run:\n"
        "  - tests/test_smoke.py\n"
        "always_run_markers: [smoke]\n"
        "dependencies:\n"
        "  data/**/*.csv:\n"
        "    - tests/test_data.py\n"
        "    - tests/test_report.py::TestCsv\n"
        "  templates/: tests/test_render.py\n"
    )
    expected = Config(
        ignore=(*DEFAULT_IGNORE, "*.ipynb", "notes/"),
        run_all=(*DEFAULT_RUN_ALL, "Makefile"),
        unknown_files="ignore",
        max_fraction=0.6,
        always_run=("tests/test_smoke.py",),
        always_run_markers=("smoke",),
        dependencies=(
            ("data/**/*.csv", ("tests/test_data.py", "tests/test_report.py::TestCsv")),
            ("templates/", ("tests/test_render.py",)),
        ),
    )
    assert load_config(toml_root) == replace(expected, source="pyproject.toml")
    assert load_config(yaml_root) == replace(expected, source="selector.yml")


# --- glob semantics ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # No "/": the file name, at any depth.
        ("*.md", "README.md", True),
        ("*.md", "docs/a/b.md", True),
        ("*.md", "docs/a/b.md.py", False),
        ("*.md", "notes.md/x.py", False),
        ("LICENSE*", "LICENSE", True),
        ("LICENSE*", "vendor/lib/LICENSE.txt", True),
        ("Makefile", "Makefile", True),
        ("Makefile", "sub/Makefile", True),
        ("Makefile", "Makefile.in", False),
        ("docs", "docs/index.rst", False),  # a name never matches a directory
        ("*", "a/b/c.py", True),
        ("?.py", "pkg/a.py", True),
        ("?.py", "pkg/ab.py", False),
        ("*.md", "Notes.MD", False),  # case-sensitive, like git
        (".gitignore", "sub/.gitignore", True),
        # A "/" before the end anchors at the root; a leading "/" only anchors.
        ("docs/*.rst", "docs/index.rst", True),
        ("docs/*.rst", "docs/api/index.rst", False),
        ("docs/*.rst", "sub/docs/index.rst", False),
        ("/setup.py", "setup.py", True),
        ("/setup.py", "sub/setup.py", False),
        ("src/*/data.json", "src/pkg/data.json", True),
        ("src/*/data.json", "src/a/b/data.json", False),
        # "**": any number of directories.
        ("docs/**", "docs/index.rst", True),
        ("docs/**", "docs/a/b/c.png", True),
        ("docs/**", "docs", False),
        ("docs/**", "sub/docs/index.rst", False),
        ("docs/**", "docsite/index.rst", False),
        ("**/fixtures/*.json", "fixtures/a.json", True),
        ("**/fixtures/*.json", "tests/unit/fixtures/a.json", True),
        ("**/fixtures/*.json", "tests/fixtures/deep/a.json", False),
        ("a/**/b.txt", "a/b.txt", True),
        ("a/**/b.txt", "a/x/b.txt", True),
        ("a/**/b.txt", "a/x/y/b.txt", True),
        ("a/**/b.txt", "ab.txt", False),
        ("data/**/*.csv", "data/2024/01/x.csv", True),
        ("**", "anything/at/all.py", True),
        ("a**b", "axxb", True),  # "**" inside a segment is a plain "*"
        ("a**b", "ax/xb", False),
        # A trailing "/": every file under a directory of that name.
        ("build/", "build/x.o", True),
        ("build/", "src/build/lib/x.o", True),
        ("build/", "build", False),
        ("build/", "rebuild/x.o", False),
        ("/build/", "build/x.o", True),
        ("/build/", "src/build/x.o", False),
        ("docs/api/", "docs/api/x.rst", True),
        ("docs/api/", "sub/docs/api/x.rst", False),
        # Classes and escapes.
        ("file[0-9].txt", "file7.txt", True),
        ("file[0-9].txt", "filex.txt", False),
        ("file[!0-9].txt", "filex.txt", True),
        ("file[!0-9].txt", "file7.txt", False),
        ("a[!x]b", "a/b", False),  # a negated class never matches "/"
        ("x[]]y", "x]y", True),
        ("\\*.md", "*.md", True),
        ("\\*.md", "a.md", False),
        ("a+b(c).txt", "a+b(c).txt", True),  # regex characters are literal
        ("a.txt", "abtxt", False),
    ],
)
def test_glob_semantics(pattern: str, path: str, expected: bool) -> None:
    assert bool(compile_globs([pattern]).fullmatch(path)) is expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("!docs/keep.md", "negation ('!') is not supported"),
        ("/", "it names no file"),
        ("data[", "'[' without a closing ']'"),
        ("data[abc", "'[' without a closing ']'"),
        ("a\\", "it ends with an escaping '\\'"),
        ("[z-a]", "bad character range z-a"),
    ],
)
def test_invalid_globs(pattern: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        glob_to_regex(pattern)
    assert str(caught.value) == message


def test_no_globs_match_nothing() -> None:
    assert compile_globs([]).fullmatch("anything") is None
    assert not Config(ignore=(), run_all=()).is_ignored("README.md")


# --- Config's questions -----------------------------------------------------------------------


def test_run_all_wins_over_ignore() -> None:
    config = Config(ignore=("docs/**",), run_all=("*.lock",))
    assert config.is_ignored("docs/index.md")
    assert config.is_run_all("docs/poetry.lock")
    assert not config.is_ignored("docs/poetry.lock")


def test_user_ignore_extends_and_defaults_can_go(tmp_path: Path) -> None:
    write_settings(tmp_path, "yml", {"ignore": ["*.ipynb"], "run_all_defaults": False})
    config = load_config(tmp_path)
    assert config.is_ignored("notebooks/demo.ipynb")
    assert config.is_ignored("README.md")
    assert not config.is_run_all("pyproject.toml")


def test_dependent_tests_are_the_union_in_config_order() -> None:
    config = Config(
        dependencies=(
            ("data/**", ("tests/test_data.py", "tests/test_io.py")),
            ("*.csv", ("tests/test_csv.py", "tests/test_data.py")),
            ("other/*", ("tests/test_other.py",)),
        )
    )
    assert config.dependent_tests("data/a/b.csv") == (
        "tests/test_data.py",
        "tests/test_io.py",
        "tests/test_csv.py",
    )
    assert config.dependent_tests("x.csv") == ("tests/test_csv.py", "tests/test_data.py")
    assert config.dependent_tests("src/a.py") == ()


def test_config_built_in_code_compiles_its_globs() -> None:
    config = Config(ignore=("*.txt",), run_all=("Makefile",))
    assert config.is_ignored("a/b.txt")
    assert config.is_run_all("Makefile")
    with pytest.raises(ValueError, match="negation"):
        Config(ignore=("!x",))


# --- validation -------------------------------------------------------------------------------

KNOWN_KEYS = (
    "ignore, ignore_defaults, run_all, run_all_defaults, unknown_files, max_fraction, "
    "always_run, always_run_markers, dependencies, variant, store"
)
FRACTION = "max_fraction must be a number between 0 (exclusive) and 1, got "


@pytest.mark.parametrize("fmt", ["toml", "yml"])
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ignroe": ["x"]}, "unknown key 'ignroe' (did you mean 'ignore'?)"),
        ({"run-all": ["x"]}, "unknown key 'run-all' (did you mean 'run_all'?)"),
        ({"colour": "blue"}, f"unknown key 'colour' (known keys: {KNOWN_KEYS})"),
        ({"ignore": 3}, "ignore must be a list of strings, got 3"),
        ({"ignore": {"a": "b"}}, "ignore must be a list of strings, got a mapping"),
        ({"ignore": ["*.md", 3]}, "ignore[1] must be a string, got 3"),
        ({"ignore": ["*.md", ""]}, "ignore[1] must not be empty"),
        ({"ignore": "  "}, "ignore must not be empty"),
        ({"run_all": [" Makefile"]}, "run_all[0] ' Makefile' has leading or trailing whitespace"),
        (
            {"ignore": ["!docs/keep.md"]},
            "ignore[0] '!docs/keep.md' is not a valid glob: negation ('!') is not supported",
        ),
        ({"run_all": ["x[ab"]}, "run_all[0] 'x[ab' is not a valid glob: '[' without a closing ']'"),
        ({"ignore_defaults": "no"}, "ignore_defaults must be true or false, got 'no'"),
        ({"run_all_defaults": 0}, "run_all_defaults must be true or false, got 0"),
        ({"unknown_files": "skip"}, "unknown_files must be 'all' or 'ignore', got 'skip'"),
        ({"unknown_files": ["all"]}, "unknown_files must be 'all' or 'ignore', got a list"),
        ({"max_fraction": "high"}, FRACTION + "'high'"),
        ({"max_fraction": True}, FRACTION + "true"),
        ({"max_fraction": 0}, FRACTION + "0"),
        ({"max_fraction": 1.5}, FRACTION + "1.5"),
        ({"max_fraction": -0.2}, FRACTION + "-0.2"),
        ({"max_fraction": 80}, FRACTION + "80"),
        ({"always_run": [""]}, "always_run[0] must not be empty"),
        ({"always_run": 1}, "always_run must be a list of strings, got 1"),
        (
            {"always_run_markers": ["smoke", "@slow"]},
            "always_run_markers[1] must be a marker name such as 'slow', got '@slow'",
        ),
        (
            {"dependencies": ["data/*.csv"]},
            "dependencies must map globs to lists of tests, got a list",
        ),
        (
            {"dependencies": {"data/*.csv": []}},
            "dependencies['data/*.csv'] must name at least one test",
        ),
        (
            {"dependencies": {"data/*.csv": [3]}},
            "dependencies['data/*.csv'][0] must be a string, got 3",
        ),
        (
            {"dependencies": {"data/*.csv": True}},
            "dependencies['data/*.csv'] must be a list of strings, got true",
        ),
        ({"dependencies": {"": ["tests/"]}}, "dependencies key must not be empty"),
        (
            {"dependencies": {"a[": ["tests/"]}},
            "dependencies key 'a[' is not a valid glob: '[' without a closing ']'",
        ),
        ({"variant": 3.12}, "variant must be a string, got 3.12"),
        ({"variant": ""}, "variant must not be empty"),
        (
            {"variant": "py 3"},
            "variant 'py 3' may only contain letters, digits, '.', '_', '+' and '-'",
        ),
        ({"store": 3}, "store must be a string, got 3"),
        ({"store": ""}, "store must not be empty"),
        (
            {"store": "s3://Maps_Bucket/app"},
            "store 's3://Maps_Bucket/app' is not an S3 URL: write s3://bucket/prefix, with a "
            "bucket name of 3-63 lowercase letters, digits, '.' and '-'",
        ),
    ],
)
def test_validation_errors_name_file_key_and_problem(
    tmp_path: Path, fmt: str, settings: dict[str, object], message: str
) -> None:
    where = write_settings(tmp_path, fmt, settings)
    assert load_error(tmp_path) == f"{where}: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_fraction: .nan\n", FRACTION + "nan"),
        ("ignore:\n", "ignore must be a list of strings, got null"),
        ("dependencies:\n  1: [tests/]\n", "dependencies key must be a string, got 1"),
        ("3: x\n", "unknown key '3' (known keys: " + KNOWN_KEYS + ")"),
    ],
)
def test_yaml_only_mistakes(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "selector.yml").write_text(text)
    assert load_error(tmp_path) == f"selector.yml: {message}"


def test_toml_nan_is_not_a_fraction(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.selector]\nmax_fraction = nan\n")
    assert load_error(tmp_path) == "pyproject.toml [tool.selector]: " + FRACTION + "nan"


def test_tool_selector_must_be_a_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool]\nselector = 3\n")
    assert load_error(tmp_path) == "pyproject.toml [tool.selector]: must be a table, got 3"


@pytest.mark.parametrize(
    ("text", "described"), [("- ignore\n- run_all\n", "a list"), ("just text\n", "'just text'")]
)
def test_yaml_top_level_must_be_a_mapping(tmp_path: Path, text: str, described: str) -> None:
    (tmp_path / "selector.yaml").write_text(text)
    assert load_error(tmp_path) == (
        f"selector.yaml: the top level must be a mapping of settings, got {described}"
    )


# --- which file -------------------------------------------------------------------------------


@pytest.mark.parametrize(("first", "second"), [("toml", "yml"), ("toml", "yaml"), ("yml", "yaml")])
def test_two_configuration_files_are_an_error(tmp_path: Path, first: str, second: str) -> None:
    where_first = write_settings(tmp_path, first, {"max_fraction": 0.5})
    where_second = write_settings(tmp_path, second, {"max_fraction": 0.6})
    assert load_error(tmp_path) == (
        f"{where_first} and {where_second} both configure selector; keep one"
    )


def test_an_empty_tool_selector_table_still_conflicts(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.selector]\n")
    (tmp_path / "selector.yml").write_text("max_fraction: 0.5\n")
    assert load_error(tmp_path) == (
        "pyproject.toml [tool.selector] and selector.yml both configure selector; keep one"
    )


# --- files that cannot be read ----------------------------------------------------------------


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\nversion 1\n')
    assert load_error(tmp_path) == (
        "pyproject.toml: invalid TOML: "
        "Expected '=' after a key in a key/value pair (at line 3, column 9)"
    )


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "selector.yml").write_text("ignore:\n  - a\nrun_all: [b\nvariant: x\n")
    assert load_error(tmp_path) == (
        "selector.yml: invalid YAML at line 4, column 8: expected ',' or ']', but got ':'"
    )


def test_yaml_indentation_mistake(tmp_path: Path) -> None:
    (tmp_path / "selector.yml").write_text("ignore:\n  - a\n run_all: b\n")
    message = load_error(tmp_path)
    assert message.startswith("selector.yml: invalid YAML at line 3, column ")


def test_files_that_are_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_bytes(b"[tool.selector]\nignore = ['\xff']\n")
    assert load_error(tmp_path) == "pyproject.toml: invalid TOML: not UTF-8 (byte 27)"
    (tmp_path / "pyproject.toml").unlink()
    (tmp_path / "selector.yml").write_bytes(b"ignore: ['\xff']\n")
    assert load_error(tmp_path).startswith("selector.yml: invalid YAML: ")


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "selector.yml").mkdir()
    assert load_error(tmp_path) == "selector.yml: cannot read it: Is a directory"
