"""selector's start-up hook for Python processes started during a recording run.

`pytest --selector-record` puts this folder first on PYTHONPATH while it runs (and only
then), so every Python process started meanwhile imports this module at start-up, before
any code of its own. It takes its folder off sys.path again, starts recording if the
process belongs to a run that still goes on (selector/child.py), and then imports the
sitecustomize module that it shadows, if there is one, as if it were not there.

It loads selector from the installation that created the run, whatever the interpreter's
own path holds, so the child records with the same code as the pytest process. If it
cannot record (another interpreter without what the collector needs, an error), it leaves
a marker in the run folder: the pytest process then marks the context that started this
process as incomplete rather than miss its lines.
"""

# Every Python process of a recording run imports this first: it avoids pathlib, whose
# import would be a good part of its cost.
# ruff: noqa: PTH100, PTH112, PTH118, PTH120, PTH123

import importlib
import importlib.util
import os
import sys


def _start() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    run = os.environ.get("SELECTOR_RUN")
    if not run or not os.path.isdir(run):
        return  # a copy of the environment outliving its run: nothing to do
    try:
        _load_selector(os.path.dirname(here))
        from selector import child

        child.bootstrap()
    except Exception as error:  # whatever fails, the process must run on
        _unrecorded(run, f"{type(error).__name__}: {error}")


def _load_selector(package: str) -> None:
    """Import the selector package at `package`, not whichever sys.path would find."""
    if "selector" in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(
        "selector", os.path.join(package, "__init__.py"), submodule_search_locations=[package]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"no selector package at {package}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["selector"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["selector"]
        raise


def _unrecorded(run: str, reason: str) -> None:
    name = os.path.join(run, f"{os.getpid()}-{os.urandom(4).hex()}.unrecorded")
    context = os.environ.get("SELECTOR_CONTEXT") or "session"
    with open(name, "w", encoding="utf-8") as marker:
        marker.write(f"{context}\n{reason}\n")


def _chain() -> None:
    """Import the sitecustomize this module shadows, with site.py's own error handling."""
    ours = sys.modules.pop("sitecustomize", None)
    try:
        importlib.import_module("sitecustomize")
    except ImportError as error:
        if error.name != "sitecustomize":
            raise
        if ours is not None:
            sys.modules["sitecustomize"] = ours


_start()
_chain()
