"""Where a function can keep what a call returned (selector/flows.py), on small sources."""

import ast
import json
from textwrap import dedent

import pytest

from selector import codeindex
from selector.flows import caching_definitions, kept_mentions

KEEPS = {
    "returned": ("def g(x):\n    return f(x) + 1\n", False),
    "global": (
        "_v = None\ndef g():\n    global _v\n    if _v is None:\n        _v = f()\n    return _v\n",
        True,
    ),
    "nonlocal": (
        "def g():\n    v = None\n    def h():\n        nonlocal v\n        v = f()\n",
        True,
    ),
    "module-dict": ("CACHE = {}\ndef g(k):\n    CACHE[k] = f(k)\n", True),
    "mutable-default": ("def g(k, _c={}):\n    v = f(k)\n    _c[k] = v\n    return v\n", True),
    "class-attribute": ("class C:\n    def g(self):\n        type(self).x = f()\n", True),
    "self-outside-construction": ("class C:\n    def g(self):\n        self.x = f()\n", True),
    "self-in-construction": ("class C:\n    def __init__(self):\n        self.x = f()\n", False),
    "local-container": (
        "def g(xs):\n    out = []\n    for x in xs:\n        out.append(f(x))\n    return out\n",
        False,
    ),
    "parameter-container": ("def g(out):\n    out.append(f())\n", True),
    "extended-parameter": ("def g(out):\n    out += [f()]\n", True),
    "extended-local": ("def g():\n    out = []\n    out += [f()]\n    return out\n", False),
    "global-by-name": ("def g():\n    global N\n    N += f()\n", True),
    "handed-to-a-call": ("def g(k):\n    v = f(k)\n    remember(k, v)\n    return v\n", True),
    "builtin": ("def g(k):\n    return sorted(list(f(k)))\n", False),
    "function-handed-over": ("def g(xs):\n    return list(map(f, xs))\n", True),
    "captured": ("def g():\n    v = f()\n    def h():\n        return v\n    return h\n", True),
    "walrus-into-a-global": ("D = {}\ndef g():\n    if (v := f()):\n        D[1] = v\n", True),
    "decorated-by-it": ("@f\ndef g():\n    pass\n", True),
}

CALLERS = {KEEPS["nonlocal"][0]: {"g.h"}}  # the function that calls f, where not g


@pytest.mark.parametrize(("source", "keeps"), KEEPS.values(), ids=KEEPS)
def test_kept_mentions(source: str, keeps: bool) -> None:
    kept = kept_mentions(ast.parse(dedent(source)))
    callers = CALLERS.get(source, {"g", "C.g", "C.__init__"})
    (caller,) = callers.intersection(kept)
    assert ("f" in kept[caller]) is keeps


def test_caching_decorators_are_every_decorator_not_known_to_keep_nothing() -> None:
    source = """
        import functools, pytest

        @functools.cache
        def a(): pass

        @functools.lru_cache(maxsize=None)
        def b(): pass

        @memoize
        def c(): pass

        @property
        def d(self): pass

        @pytest.mark.slow
        def e(): pass

        class K:
            @functools.cached_property
            def f(self): pass

            @staticmethod
            def g(): pass

        def plain(): pass
    """
    assert caching_definitions(ast.parse(dedent(source))) == {"a", "b", "c", "K.f"}


def test_an_index_stored_before_flows_lets_anything_keep_results() -> None:
    text, _words = codeindex.store(codeindex.build(ast.parse("def g():\n    return f()\n")))
    document = json.loads(text)
    del document["kept"], document["caching"]
    index = codeindex.load(json.dumps(document))
    assert index.kept is None
    assert index.caching is None
