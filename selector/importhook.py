"""One import hook per process, shared by the recorder and recorded child processes.

Two things need to see a module being executed by its first import:

* attribution: a tracked module's body runs inside a context chosen by whoever records
  this process (its import context in the pytest process, the process context in a child
  process), because its effects outlive whichever test happened to import it first;
* patching: selector wraps the task submission of the standard library's process pools
  (see spawn.py) when, and only when, their modules are imported, so that a process that
  never uses them never pays for importing them.

A meta path finder finds every module with the finders after it and wraps the loader of
those it cares about. Wrapping sets an instance attribute, so the loader keeps its class
(`isinstance` checks and resource readers still work). There is one finder per process:
a forked child points the same finder at its own callbacks (two such finders would each
ask the other to find a module, for ever).
"""

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any

Executing = Callable[[ModuleType], AbstractContextManager[None]]
Patch = Callable[[ModuleType], None]


class _Finder(importlib.abc.MetaPathFinder):
    """Finds modules with the other finders and wraps the loaders of interesting ones."""

    def __init__(self) -> None:
        self.tracked: Callable[[str], bool] | None = None
        self.executing: Executing | None = None
        self.patches: dict[str, Patch] = {}

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        spec = self._find_with_others(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        tracked = self.tracked
        if fullname in self.patches or (
            tracked is not None and spec.origin is not None and tracked(spec.origin)
        ):
            _wrap_loader(spec.loader)
        return spec

    @staticmethod
    def _find_with_others(
        fullname: str, path: Sequence[str] | None, target: ModuleType | None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in list(sys.meta_path):
            if isinstance(finder, _Finder):
                continue
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec: importlib.machinery.ModuleSpec | None = find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None


_FINDER = _Finder()


def _wrap_loader(loader: Any) -> None:
    original = loader.exec_module
    if getattr(original, "selector_wrapped", False):
        return

    def exec_module(module: ModuleType) -> None:
        executing = _FINDER.executing
        origin = getattr(module.__spec__, "origin", None)
        tracked = _FINDER.tracked
        if executing is None or tracked is None or origin is None or not tracked(origin):
            original(module)
        else:
            with executing(module):
                original(module)
        patch = _FINDER.patches.get(module.__name__)
        if patch is not None:
            patch(module)

    exec_module.selector_wrapped = True  # type: ignore[attr-defined]
    try:
        loader.exec_module = exec_module
    except (AttributeError, TypeError):
        return  # a loader with slots: its imports count for the importing context


def install(
    tracked: Callable[[str], bool], executing: Executing, patches: dict[str, Patch]
) -> None:
    """Route this process's imports to these callbacks (replacing any previous ones).

    Modules named in `patches` that are imported already are patched now.
    """
    _FINDER.tracked = tracked
    _FINDER.executing = executing
    _FINDER.patches = dict(patches)
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    for name, patch in patches.items():
        module = sys.modules.get(name)
        if module is not None:
            patch(module)


def uninstall() -> None:
    """Stop seeing imports; wrapped loaders fall back to their own `exec_module`."""
    _FINDER.tracked = None
    _FINDER.executing = None
    _FINDER.patches = {}
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
