"""selector.scopes: function spans and the comparison of two versions of a file.

`compare` is the safety contract of selection (DESIGN "Selection", rules 0-2): every case
here is a pair of sources and what the planner must conclude from it.
"""

import ast
from textwrap import dedent

import pytest

from selector.scopes import (
    ChangedConstant,
    FunctionScope,
    NewDefinition,
    SourceChange,
    compare,
    function_scopes,
    innermost_function,
    namespace,
    parse,
)


def tree(source: str) -> ast.Module:
    """The syntax tree of a (dedented) source that must be valid."""
    parsed = parse(dedent(source))
    assert parsed is not None
    return parsed


def changes(old: str, new: str) -> SourceChange:
    """compare() on two sources."""
    return compare(tree(old), tree(new))


def edit(source: str, before: str, after: str) -> str:
    """`source` with its one occurrence of `before` replaced, so a typo cannot make a no-op."""
    assert source.count(before) == 1, before
    return source.replace(before, after)


BASE = '''\
"""Module doc."""
import os

LIMIT = 3


class Shape(object):
    """Class doc."""

    sides = 4

    def area(self, scale: int = 2) -> int:
        """Method doc."""
        return self.sides * scale


@cache
def total(items, start=0):
    """Function doc."""
    return sum(items, start)
'''

NESTED = '''\
def outer(n):
    factor = 2

    def inner(x, scale=3):
        """Inner doc."""
        return x * scale * factor

    class Local:
        kind = "local"

        def method(self):
            return n

    return inner(n), Local
'''

# -- rule 0: same tree ----------------------------------------------------------------------

SAME_TREE = {
    "formatting-and-comments": (
        "x = 1\ndef f(a, b):\n    return a+b\n",
        "# comment\nx = (1)\n\n\ndef f(a,\n      b):\n    return a + b  # sum\n",
    ),
    "quotes": ("s = 'a'\n", 's = "a"\n'),
    "blank-lines": ("def f():\n    pass\n", "def f():\n\n    pass\n\n\n"),
}


@pytest.mark.parametrize(("old", "new"), SAME_TREE.values(), ids=SAME_TREE)
def test_same_tree_is_identical_and_selects_nothing(old: str, new: str) -> None:
    assert changes(old, new) == SourceChange(True, False, (), (), ())


@pytest.mark.parametrize(
    ("old", "new"),
    [("x = 1\n", "x = 1.0\n"), ("x = 1\n", "x = True\n"), ("x = 0.0\n", "x = -0.0\n")],
)
def test_equal_values_of_other_types_are_different_code(old: str, new: str) -> None:
    change = changes(old, new)
    assert not change.identical
    assert change.constants == (ChangedConstant("x", (1, 1)),)


# -- rule 1: function bodies ----------------------------------------------------------------

BODY_CHANGES = {
    "function": (BASE, edit(BASE, "sum(items, start)", "sum(items, start) + 1"), ("total",)),
    "method": (BASE, edit(BASE, "self.sides * scale", "scale * self.sides"), ("Shape.area",)),
    "async": (
        "async def fetch(url):\n    return await get(url)\n",
        "async def fetch(url):\n    return await get(url, 1)\n",
        ("fetch",),
    ),
    "two-functions-in-source-order": (
        "def f():\n    return 1\ndef g():\n    return 2\n",
        "def f():\n    return 0\ndef g():\n    return 0\n",
        ("f", "g"),
    ),
    "lambda-is-part-of-the-body": (
        "def f(xs):\n    return sorted(xs, key=lambda x: x)\n",
        "def f(xs):\n    return sorted(xs, key=lambda x: -x)\n",
        ("f",),
    ),
    "code-added-to-a-docstring-only-function": (
        'def f():\n    """Doc."""\n',
        'def f():\n    """Doc."""\n    return 1\n',
        ("f",),
    ),
    "nested-function": (
        NESTED,
        edit(NESTED, "x * scale * factor", "x * scale + factor"),
        ("outer.inner",),
    ),
    "method-of-a-class-in-a-function": (
        NESTED,
        edit(NESTED, "return n\n", "return -n\n"),
        ("outer.Local.method",),
    ),
    "outer-code": (NESTED, edit(NESTED, "factor = 2", "factor = 3"), ("outer",)),
    "nested-default": (NESTED, edit(NESTED, "scale=3", "scale=4"), ("outer",)),
    "nested-docstring": (NESTED, edit(NESTED, "Inner doc.", "Inner docs."), ("outer",)),
    "nested-decorator": (
        NESTED,
        edit(NESTED, "    def inner", "    @wraps(len)\n    def inner"),
        ("outer",),
    ),
    "class-body-in-a-function": (
        NESTED,
        edit(NESTED, 'kind = "local"', 'kind = "here"'),
        ("outer",),
    ),
}


@pytest.mark.parametrize(("old", "new", "functions"), BODY_CHANGES.values(), ids=BODY_CHANGES)
def test_body_change_selects_only_the_innermost_function(
    old: str, new: str, functions: tuple[str, ...]
) -> None:
    change = changes(old, new)
    assert change.changed_functions == functions
    assert not change.module_changed
    assert not change.identical
    assert not change.added
    assert not change.removed_functions


def test_function_docstring_is_module_level_not_body() -> None:
    change = changes("def f():\n    return 1\n", 'def f():\n    """Doc."""\n    return 1\n')
    assert change.module_changed
    assert change.changed_functions == ()


# -- rule 2: module level -------------------------------------------------------------------

MODULE_LEVEL = {
    "decorator": ("@cache", "@lru_cache"),
    "decorator-removed": ("@cache\n", ""),
    "signature": ("(items, start=0)", "(items, extra, start=0)"),
    "default": ("start=0", "start=1"),
    "annotation": ("scale: int", "scale: float"),
    "return-annotation": ("-> int", "-> float"),
    "class-attribute": ("sides = 4", "sides = 5"),
    "base-class": ("Shape(object)", "Shape(Base)"),
    "module-constant-computed": ("LIMIT = 3", "LIMIT = int(4)"),
    "module-constant-renamed": ("LIMIT = 3", "MAXIMUM = 3"),
    "import": ("import os", "import sys"),
    "module-docstring": ("Module doc.", "Module docs."),
    "class-docstring": ("Class doc.", "Class docs."),
    "function-docstring": ("Function doc.", "Function docs."),
    "method-docstring": ("Method doc.", "Method docs."),
    "async": ("def total", "async def total"),
    "into-a-try": ("import os", "try:\n    import os\nexcept ImportError:\n    os = None"),
}


@pytest.mark.parametrize(("before", "after"), MODULE_LEVEL.values(), ids=MODULE_LEVEL)
def test_module_level_change(before: str, after: str) -> None:
    change = changes(BASE, edit(BASE, before, after))
    assert change.module_changed
    assert not change.identical
    assert change.added == ()


# -- rule 2, refined: a literal constant that alone changed -------------------------------

CONSTANTS = {
    "number": ("LIMIT = 4", ("LIMIT",)),
    "container": ("LIMIT = (1, -2.5, {'a': [None]})", ("LIMIT",)),
    "annotated": ("LIMIT: int = 4", ()),  # another kind of statement
    "computed": ("LIMIT = max(3, 4)", ()),
    "two-targets": ("LIMIT = OTHER = 4", ()),
    "unhashable-key": ("LIMIT = {[1]: 2}", ()),  # raises at import
}


@pytest.mark.parametrize(("after", "names"), CONSTANTS.values(), ids=CONSTANTS)
def test_a_changed_literal_constant_is_listed(after: str, names: tuple[str, ...]) -> None:
    change = changes(BASE, edit(BASE, "LIMIT = 3", after))
    assert change.constants == tuple(ChangedConstant(name, (4, 4)) for name in names)
    assert change.module_changed == (not names)


def test_a_changed_constant_and_a_changed_body_are_both_listed() -> None:
    new = edit(edit(BASE, "LIMIT = 3", "LIMIT = 4"), "self.sides * scale", "scale * self.sides")
    change = changes(BASE, new)
    assert (change.constants, change.changed_functions) == (
        (ChangedConstant("LIMIT", (4, 4)),),
        ("Shape.area",),
    )
    assert not change.module_changed


DEFAULTS_BASE = '''\
def area(width, height=2, *, unit="m", scale=None):
    """Area."""
    return width * height


async def fetch(url, retries=3):
    return url
'''
AREA, FETCH = ChangedConstant("area", (1, 2), True), ChangedConstant("fetch", (6, 6), True)
DEFAULTS = {
    "positional": ("height=2", "height=3", (AREA,)),
    "keyword-only": ('unit="m"', 'unit="cm"', (AREA,)),
    "to-a-container": ("scale=None", "scale=(1, [2])", (AREA,)),
    "async": ("retries=3", "retries=-4", (FETCH,)),
    "computed": ("height=2", "height=max(2, 3)", ()),
    "default-added": ("(width, height=2", "(width=1, height=2", ()),
    "parameter-renamed": ("height=2", "depth=2", ()),
    "annotation-added": ("(width,", "(width: int,", ()),
}


@pytest.mark.parametrize(("before", "after", "listed"), DEFAULTS.values(), ids=DEFAULTS)
def test_a_function_whose_literal_defaults_alone_changed_is_listed(
    before: str, after: str, listed: tuple[ChangedConstant, ...]
) -> None:
    change = changes(DEFAULTS_BASE, edit(DEFAULTS_BASE, before, after))
    assert change.constants == listed
    assert change.module_changed == (not listed)


@pytest.mark.parametrize(
    ("old", "before", "after"),
    [
        (BASE, "start=0", "start=1"),  # `@cache` receives the function at import
        (
            "def f(x=1):\n    return x\n\n\ndef f(x=1):\n    return -x\n",
            "=1):\n    return x",
            "=2):\n    return x",
        ),
    ],
    ids=["decorated", "defined-twice"],
)
def test_a_decorated_function_or_one_defined_twice_is_not_listed(
    old: str, before: str, after: str
) -> None:
    change = changes(old, edit(old, before, after))
    assert change.module_changed
    assert change.constants == ()


def test_names_python_gives_a_meaning_are_not_constants() -> None:
    change = changes('__version__ = "1"\n', '__version__ = "2"\n')
    assert change.module_changed
    assert change.constants == ()


def test_constants_are_not_listed_where_the_module_reads_its_namespace() -> None:
    old = f"{BASE}\n\ndef lookup(name):\n    return globals()[name]\n"
    change = changes(old, edit(old, "LIMIT = 3", "LIMIT = 4"))
    assert change.module_changed
    assert change.constants == ()


def test_pytest_reads_some_module_names_itself() -> None:
    change = changes("pytestmark = []\n", "pytestmark = ['skip']\n")
    assert change.module_changed
    assert change.constants == ()


def test_removed_function_is_module_level_and_listed() -> None:
    old = "def keep():\n    pass\n\n\ndef gone():\n    def inner():\n        pass\n"
    change = changes(old, "def keep():\n    pass\n")
    assert change.module_changed
    assert change.removed_functions == ("gone", "gone.inner")


def test_renamed_function_is_removed_not_added() -> None:
    change = changes(BASE, edit(BASE, "def total", "def grand_total"))
    assert change.module_changed
    assert change.removed_functions == ("total",)
    assert change.added == ()


def test_removed_nested_function_changes_its_parent() -> None:
    old = "def outer():\n    def inner():\n        pass\n    return inner\n"
    change = changes(old, "def outer():\n    return None\n")
    assert change.changed_functions == ("outer",)
    assert change.removed_functions == ("outer.inner",)
    assert not change.module_changed


# -- rule 2, refinement A: fresh inert definitions ------------------------------------------

INERT = {
    "literal-defaults": (
        "def helper(x, y=1, *rest, flag=False, z=(1, 'a'), w=-2.5, m={'k': [1, None]}, **kw):\n"
        "    return LIMIT + os.sep\n"
    ),
    "async": "async def fetch():\n    return await something()\n",
    "class": (
        "class Point:\n"
        '    """A point."""\n'
        "\n"
        "    x = y = 0\n"
        "    origin = (0, 0)\n"
        "    pass\n"
        "\n"
        "    def norm(self, p=2):\n"
        "        return (self.x**p + self.y**p) ** (1 / p)\n"
    ),
    "object-base": "class Marker(object): ...\n",
    "nested-class": "class Outer:\n    class Inner:\n        pass\n",
    "new-test": "def test_new():\n    assert total([1]) == 1\n",
}


def defined_name(source: str) -> str:
    """The name of the one definition in `source`."""
    (statement,) = tree(source).body
    assert isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    return statement.name


@pytest.mark.parametrize("definition", INERT.values(), ids=INERT)
def test_fresh_inert_definition_is_added_not_module_level(definition: str) -> None:
    new = f"{BASE}\n\n{definition}"
    change = changes(BASE, new)
    assert not change.module_changed
    assert change.changed_functions == ()
    lines = (BASE.count("\n") + 3, new.count("\n"))
    assert change.added == (NewDefinition(defined_name(definition), lines, True),)


def test_inserted_in_the_middle() -> None:
    new = edit(BASE, "LIMIT = 3\n", "LIMIT = 3\n\n\ndef helper():\n    pass\n")
    assert changes(BASE, new).added == (NewDefinition("helper", (7, 8), True),)


def test_fresh_definition_alongside_a_body_change() -> None:
    new = edit(BASE, "sum(items, start)", "helper(items)") + "\n\ndef helper(items):\n    pass\n"
    change = changes(BASE, new)
    assert change.changed_functions == ("total",)
    assert [added.name for added in change.added] == ["helper"]
    assert not change.module_changed


@pytest.mark.parametrize(
    "definition",
    [
        "def helper(x: int) -> int:\n    return x\n",
        "class Record:\n    name: str\n    size: int = 0\n",
    ],
)
def test_annotations_are_inert_under_future_annotations(definition: str) -> None:
    old = f"from __future__ import annotations\n\n{BASE}"
    change = changes(old, f"{old}\n\n{definition}")
    assert not change.module_changed
    assert [added.inert for added in change.added] == [True]


NOT_INERT = {
    "decorator": "@cache\ndef helper():\n    pass\n",
    "name-default": "def helper(x=LIMIT):\n    pass\n",
    "call-default": "def helper(x=list()):\n    pass\n",
    "minus-string-default": "def helper(*, x=-'a'):\n    pass\n",
    "unhashable-key-default": "def helper(x={[1]: 2}):\n    pass\n",
    "annotation": "def helper(x: int):\n    pass\n",
    "return-annotation": "def helper() -> None:\n    pass\n",
    "varargs-annotation": "def helper(*args: int):\n    pass\n",
    "base": "class Thing(Shape):\n    pass\n",
    "duplicate-base": "class Thing(object, object):\n    pass\n",
    "metaclass": "class Thing(metaclass=Meta):\n    pass\n",
    "class-decorator": "@dataclass\nclass Thing:\n    x = 1\n",
    "class-attribute-from-name": "class Thing:\n    x = LIMIT\n",
    "class-unpacking": "class Thing:\n    a, b = 1, 2\n",
    "class-dunder": "class Thing:\n    __slots__ = 1\n",
    "class-annotation": "class Thing:\n    x: int = 0\n",
    "class-if": "class Thing:\n    if LIMIT:\n        x = 1\n",
    "class-call": "class Thing:\n    print(1)\n",
    "method-default": "class Thing:\n    def m(self, x=os.sep):\n        pass\n",
}


@pytest.mark.parametrize("definition", NOT_INERT.values(), ids=NOT_INERT)
def test_fresh_definition_that_runs_code_is_module_level(definition: str) -> None:
    change = changes(BASE, f"{BASE}\n\n{definition}")
    assert change.module_changed
    assert [added.inert for added in change.added] == [False]


def test_object_base_is_not_inert_when_object_is_rebound() -> None:
    old = f"{BASE}\n\nobject = type\n"
    change = changes(old, f"{old}\n\nclass Marker(object):\n    pass\n")
    assert change.module_changed
    assert [added.inert for added in change.added] == [False]


NOT_FRESH = {
    "shadows-a-used-builtin": (BASE, "def sum(items, start=0):\n    return 0\n"),
    "name-of-an-attribute": (BASE, "def sides():\n    pass\n"),
    "name-of-an-import": (BASE, "def os():\n    pass\n"),
    "name-of-a-parameter": (BASE, "def scale():\n    pass\n"),
    "redefinition": (BASE, "class Shape:\n    pass\n"),
    "listed-in-all": ('__all__ = ["helper"]\n', "def helper():\n    pass\n"),
    "import-alias": ("import fast as helper\n", "def helper():\n    pass\n"),
    "keyword-argument": ("run(helper=1)\n", "def helper():\n    pass\n"),
    "global-statement": ("def f():\n    global helper\n", "def helper():\n    pass\n"),
    "dotted-string": ("PATCH = 'pkg.mod.helper'\n", "def helper():\n    pass\n"),
    "string": (
        "def f():\n    return getattr(mod, 'helper', None)\n",
        "def helper():\n    pass\n",
    ),
    "star-import": ("from os.path import *\n", "def helper():\n    pass\n"),
    "star-import-in-try": (
        "try:\n    from fast import *\nexcept ImportError:\n    pass\n",
        "def helper():\n    pass\n",
    ),
    "globals": (
        "COMMANDS = {k: v for k, v in globals().items() if k.startswith('cmd_')}\n",
        "def cmd_new():\n    pass\n",
    ),
    "module-getattr": (
        "def __getattr__(name):\n    return getattr(impl, name)\n",
        "def helper():\n    pass\n",
    ),
    "sys-modules": (
        "import sys\nMEMBERS = inspect.getmembers(sys.modules[__name__])\n",
        "def helper():\n    pass\n",
    ),
    "getmembers-and-a-method": (
        "import sys\nfrom inspect import getmembers\nM = getmembers(sys)\nT = t.getmembers()\n",
        "def helper():\n    pass\n",
    ),
    "getmembers-passed": (
        "NAMES = map(inspect.getmembers, MODULES)\n",
        "def helper():\n    pass\n",
    ),
    "xunit-hook": (BASE, "def setup_module():\n    pass\n"),
    "pytest-hook": (BASE, "def pytest_configure(config):\n    pass\n"),
    "dunder": (BASE, "def __dir__():\n    return []\n"),
}


def test_a_getmembers_method_without_arguments_reads_no_namespace() -> None:
    old = "def names(archive):\n    return [m.name for m in archive.getmembers()]\n"
    change = changes(old, f"{old}\n\ndef helper():\n    pass\n")
    assert not change.module_changed
    assert [definition.name for definition in change.added] == ["helper"]


@pytest.mark.parametrize(("old", "definition"), NOT_FRESH.values(), ids=NOT_FRESH)
def test_definition_under_a_name_old_code_may_use_is_module_level(
    old: str, definition: str
) -> None:
    change = changes(old, f"{old}\n\n{definition}")
    assert change.module_changed
    assert change.added == ()


def test_fresh_definition_with_another_module_level_change_lists_nothing() -> None:
    new = edit(BASE, "LIMIT = 3", "LIMIT = 4") + "\n\ndef helper():\n    pass\n"
    change = changes(BASE, new)
    assert change.module_changed
    assert change.added == ()


def test_definition_above_the_module_docstring_is_module_level() -> None:
    change = changes(BASE, f"def helper():\n    pass\n\n\n{BASE}")
    assert change.module_changed
    assert change.added == ()


def test_definition_that_is_not_top_level_is_module_level() -> None:
    change = changes(BASE, f"{BASE}\n\nif LIMIT:\n    def helper():\n        pass\n")
    assert change.module_changed
    assert change.added == ()


# -- a qualname defined more than once ------------------------------------------------------

BRANCHES = """\
if FAST:
    def run():
        return 1
else:
    def run():
        return 2
"""

PROPERTY = """\
class C:
    @property
    def x(self):
        return self._x

    @x.setter
    def x(self, value):
        self._x = value
"""

OVERLOADS = """\
@overload
def f(x: int) -> int: ...
@overload
def f(x: str) -> str: ...
def f(x):
    return x
"""

DUPLICATES = {
    "first-branch": (BRANCHES, "return 1", "return 3", True, ()),
    "last-branch": (BRANCHES, "return 2", "return 3", False, ("run",)),
    "getter": (PROPERTY, "return self._x", "return 0", True, ()),
    "setter": (PROPERTY, "self._x = value", "self._x = -value", False, ("C.x",)),
    "overload-implementation": (OVERLOADS, "return x", "return -x", False, ("f",)),
    "overload-stub": (OVERLOADS, "str) -> str: ...", "str) -> str: pass", True, ()),
}


@pytest.mark.parametrize(
    ("old", "before", "after", "module", "functions"), DUPLICATES.values(), ids=DUPLICATES
)
def test_duplicate_qualname_maps_only_a_change_of_its_last_definition(
    old: str, before: str, after: str, module: bool, functions: tuple[str, ...]
) -> None:
    change = changes(old, edit(old, before, after))
    assert change.module_changed is module
    assert change.changed_functions == functions


def test_changed_duplicate_maps_to_the_span_function_scopes_keeps() -> None:
    assert function_scopes(tree(BRANCHES))["run"].body == (6, 6)


# -- soundness: a different tree always selects something -----------------------------------

PAIRS = {
    **{f"body-{key}": (old, new) for key, (old, new, _) in BODY_CHANGES.items()},
    **{f"module-{key}": (BASE, edit(BASE, *edit_)) for key, edit_ in MODULE_LEVEL.items()},
    **{f"new-{key}": (BASE, f"{BASE}\n\n{d}") for key, d in (INERT | NOT_INERT).items()},
    **{f"fresh-{key}": (old, f"{old}\n\n{d}") for key, (old, d) in NOT_FRESH.items()},
    **{f"dup-{key}": (c[0], edit(c[0], c[1], c[2])) for key, c in DUPLICATES.items()},
}


@pytest.mark.parametrize(("old", "new"), PAIRS.values(), ids=PAIRS)
def test_a_different_tree_always_reports_something(old: str, new: str) -> None:
    change = changes(old, new)
    assert not change.identical
    assert change.module_changed or change.changed_functions or change.added or change.constants


@pytest.mark.parametrize(("old", "new"), [*PAIRS.values(), *SAME_TREE.values()])
def test_identical_means_equal_ast_dumps(old: str, new: str) -> None:
    assert changes(old, new).identical == (ast.dump(tree(old)) == ast.dump(tree(new)))


def test_bodies_swapped_between_redefinitions_are_not_identical() -> None:
    swapped = BRANCHES.replace("return 1", "return 0").replace("return 2", "return 1")
    change = changes(BRANCHES, swapped.replace("return 0", "return 2"))
    assert not change.identical
    assert change.module_changed


def test_deeply_nested_expression_does_not_exhaust_the_stack() -> None:
    old = "def f():\n    return " + " + ".join(["1"] * 2000) + "\n"
    assert changes(old, old).identical
    assert changes(old, old.replace("1\n", "2\n")).changed_functions == ("f",)


# -- function_scopes and innermost_function -------------------------------------------------

SCOPES = '''\
@decorator
@other(
    1)
def decorated(a,
              b):
    """Doc.

    More."""
    x = a
    return x


def one(): return 1


def only_doc():
    """Nothing else."""


@decorator
def decorated_doc():
    """Nothing else."""


async def fetch(url):
    return await get(url)


def outer():
    @decorator
    def inner(y): return y

    class Local:
        def method(self):
            return 1

    return inner


class Parser:
    class State:
        def reset(self):
            pass

    def parse(
        self,
    ):
        return 1


def squeezed(a,
             b): return a


if True:
    def branch():
        return 1
'''

EXPECTED_SCOPES = {
    "decorated": ((1, 8), (9, 10)),
    "one": ((13, 13), (13, 13)),
    "only_doc": ((16, 17), (16, 17)),
    "decorated_doc": ((20, 22), (20, 22)),
    "fetch": ((25, 25), (26, 26)),
    "outer": ((29, 29), (30, 37)),
    "outer.inner": ((30, 31), (31, 31)),
    "outer.Local.method": ((34, 34), (35, 35)),
    "Parser.State.reset": ((42, 42), (43, 43)),
    "Parser.parse": ((45, 47), (48, 48)),
    "squeezed": ((51, 52), (52, 52)),
    "branch": ((56, 56), (57, 57)),
}


def test_function_scopes_spans() -> None:
    scopes = function_scopes(tree(SCOPES))
    assert {name: (scope.header, scope.body) for name, scope in scopes.items()} == EXPECTED_SCOPES
    assert all(name == scope.qualname for name, scope in scopes.items())


def test_function_scopes_keeps_the_last_redefinition() -> None:
    scopes = function_scopes(tree("def f():\n    return 1\ndef f():\n    return 2\n"))
    assert scopes == {"f": FunctionScope("f", (3, 3), (4, 4))}


@pytest.mark.parametrize(
    ("line", "qualname"),
    [
        (10, "decorated"),
        (13, "one"),
        (17, "only_doc"),
        (26, "fetch"),
        (30, "outer"),  # decorator of inner: runs when outer runs
        (31, "outer.inner"),
        (33, "outer"),
        (35, "outer.Local.method"),
        (37, "outer"),
        (43, "Parser.State.reset"),
        (48, "Parser.parse"),
        (57, "branch"),
    ],
)
def test_innermost_function(line: int, qualname: str) -> None:
    scope = innermost_function(function_scopes(tree(SCOPES)), line)
    assert scope is not None
    assert scope.qualname == qualname


@pytest.mark.parametrize("line", [1, 2, 4, 5, 6, 11, 25, 29, 40, 41, 42, 46, 55, 56, 100])
def test_innermost_function_is_none_outside_bodies(line: int) -> None:
    assert innermost_function(function_scopes(tree(SCOPES)), line) is None


def test_innermost_function_of_a_one_liner_nested_on_its_parents_last_line() -> None:
    scopes = function_scopes(tree("def outer():\n    def inner(): return 1\n"))
    assert scopes["outer"].body == scopes["outer.inner"].body == (2, 2)
    scope = innermost_function(scopes, 2)
    assert scope is not None
    assert scope.qualname == "outer.inner"


# -- which names a test file binds (selection rule 4: a test is removed only when gone) --------

BINDS_TEST_X = [
    "def test_x(): pass",
    "class test_x: pass",
    "import test_x",
    "import test_x.sub",
    "import other as test_x",
    "from m import test_x",
    "from m import other as test_x",
    "test_x = make()",
    "a, (b, *test_x) = make()",
    "[a, test_x] = make()",
    "test_x += make()",
    "test_x: object = make()",
    "for test_x in make(): pass",
    "with make() as (a, test_x): pass",
    "try:\n    pass\nexcept E as test_x:\n    pass",
    "match make():\n    case [*test_x]: pass",
    "match make():\n    case {**test_x}: pass",
    "match make():\n    case Point(x=test_x): pass",
    "(test_x := make())\nkeep = 1",
    "def setup():\n    global test_x\n    test_x = make()",
    "if make():\n    test_x = make()\nelse:\n    pass",
    "while make():\n    test_x = make()",
]
# Modules that can bind names no statement shows: nothing in them is certainly gone.
OPEN_MODULES = [
    "from m import *",
    "globals()['test_x'] = make()",
    "globals().update(make())",
    "vars()['test_x'] = make()",
    "setattr(sys.modules[__name__], 'test_x', make())",
    "exec('def test_x(): pass')",
    "def __getattr__(name):\n    return make()",
    "def pytest_generate_tests(metafunc):\n    pass",
    "def load_tests(loader, tests, pattern):\n    return tests",
    "scenarios('features')",
    "make_tests(sys._getframe())",
]


@pytest.mark.parametrize("source", BINDS_TEST_X)
def test_every_binding_of_a_name_keeps_it(source: str) -> None:
    found = namespace(tree(source))
    assert found.complete
    assert not found.certainly_unbound(["test_x"])
    assert found.certainly_unbound(["test_gone"])


@pytest.mark.parametrize("source", OPEN_MODULES)
def test_a_module_that_can_bind_names_unseen_removes_nothing(source: str) -> None:
    assert not namespace(tree(source)).certainly_unbound(["test_gone"])


@pytest.mark.parametrize(
    ("source", "gone"),
    [
        ("class TestA:\n    def test_m(self): pass", True),
        ("class TestA:\n    test_other = make()", False),
        ("class TestA:\n    for test_other in make(): pass", False),
        ("class TestA(Base):\n    pass", False),
        ("class TestA(metaclass=Meta):\n    pass", False),
        ("@add_tests\nclass TestA:\n    pass", False),
        ("class TestA:\n    pass\nTestA.test_other = make()", False),
        ("class TestA:\n    pass\nTestA = make()", False),
        ("TestA = make()", False),
        ("from base import TestA", False),
    ],
)
def test_a_method_is_gone_only_from_a_class_that_cannot_get_it_otherwise(
    source: str, gone: bool
) -> None:
    assert namespace(tree(source)).certainly_unbound(["TestA", "test_other"]) is gone


def test_nested_classes_are_followed() -> None:
    found = namespace(tree("class TestA:\n    class TestB:\n        def test_m(self): pass"))
    assert not found.certainly_unbound(["TestA", "TestB", "test_m"])
    assert found.certainly_unbound(["TestA", "TestB", "test_other"])
    assert found.certainly_unbound(["TestA", "TestC", "test_m"])


def test_binds_follows_only_the_class_statements_of_the_file() -> None:
    found = namespace(
        tree("class TestA:\n    def test_m(self): pass\nclass TestB(Base):\n    pass")
    )
    assert found.binds(["TestA"])
    assert found.binds(["TestA", "test_m"])
    assert not found.binds(["TestA", "test_other"])
    assert not found.binds(["TestB", "test_inherited"])
    assert not found.binds(["lint"])
