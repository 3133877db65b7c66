"""What a recording process does about the processes it starts.

Both the pytest process and every recorded child process (child.py) are *owners*: they
know the context that their running code belongs to, and hand it on to the processes they
start.

* **Environment.** While recording, `os.environ` carries `selector/_bootstrap` first on
  PYTHONPATH (its sitecustomize.py starts recording in every Python process that starts),
  the run folder, the repository root, the collector, and `SELECTOR_CONTEXT`: the owner's
  current context, updated at every switch, so a child started by any means (subprocess,
  os.system, a shell script, multiprocessing's spawn) knows whose it is.
* **Audit hook.** Processes started with an explicit environment (`subprocess.run(...,
  env={...})`) would lose those variables, or carry a stale context copied earlier; the
  hook sees `subprocess.Popen` before the environment is used and brings a dict up to date
  in place. Where it cannot (another mapping, `os.posix_spawn` with its own environment,
  a Python started with -I, -E or -S, which ignore PYTHONPATH or sitecustomize), the
  owner marks its current context incomplete: the map then treats the tests that include
  it as depending on everything. The same hook reports files opened for reading.
* **Pool tasks.** A worker of a `multiprocessing.Pool` or `ProcessPoolExecutor` outlives
  the test that created it and runs tasks for others. Submitting a task wraps its function
  in a `Task` that carries the submitter's current context; the worker runs it in that
  context. Submitting also reports the pool's worker processes (`Owner.pool_workers`): a
  worker, even one that never got a task, is reached through the tests that submitted to
  its pool, so it needs no other attribution. Only process pools are wrapped:
  `multiprocessing.pool.ThreadPool` runs in the owner's own process, whose collector
  attributes its lines already.
"""

import functools
import os
import sys
from collections.abc import Callable, Mapping, MutableMapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

BOOTSTRAP = str(Path(__file__).resolve().parent / "_bootstrap")
RUN = "SELECTOR_RUN"
ROOT = "SELECTOR_ROOT"
COLLECTOR = "SELECTOR_COLLECTOR"
CONTEXT = "SELECTOR_CONTEXT"
PYTHONPATH = "PYTHONPATH"
_FLAGS_IGNORING_BOOTSTRAP = frozenset("IES")  # isolated, no PYTHON* variables, no site
_FLAGS_WITH_ARGUMENT = frozenset("WXQ")


@dataclass(frozen=True)
class ChildEnvironment:
    """Where the children of one recording run write, and how they record."""

    run: str  # folder of the children's journals
    root: str  # repository root: what is tracked
    collector: str  # "monitoring" or "coverage"

    @classmethod
    def from_environ(cls) -> "ChildEnvironment | None":
        """The run this process belongs to, if it was started by a recording run."""
        values = [os.environ.get(name) for name in (RUN, ROOT, COLLECTOR)]
        run, root, collector = values
        if run is None or root is None or collector is None or not Path(run).is_dir():
            return None
        return cls(run, root, collector)

    def variables(self, context: str) -> dict[str, str]:
        """The variables a child needs, but PYTHONPATH."""
        return {RUN: self.run, ROOT: self.root, COLLECTOR: self.collector, CONTEXT: context}


class Owner(Protocol):
    """What the process that records (pytest, or a child) does for the hooks here."""

    def context(self) -> str:
        """The context that the code running now belongs to."""

    def opened(self, target: object) -> None:
        """A file was opened for reading."""

    def incomplete(self, reason: str) -> None:
        """A process started now will not record: mark the current context incomplete."""

    def task(self, context: str) -> AbstractContextManager[None]:
        """Run a pool task submitted in `context`."""

    def replacing(self) -> None:
        """This process is about to exec another program: save what must be saved."""

    def pool_workers(self, pids: set[int]) -> None:
        """These processes are workers of a pool this process submits tasks to."""


@dataclass
class _Installed:
    owner: Owner
    environment: ChildEnvironment
    saved: dict[str, str | None]  # the variables as they were, restored by `uninstall`


_STATE: _Installed | None = None
_AUDIT_HOOK_INSTALLED = False


def install(owner: Owner, environment: ChildEnvironment, *, restore: bool) -> None:
    """Make `owner` the owner of this process's children (replacing any previous one).

    With `restore`, `uninstall` puts the environment back as it was (the pytest process);
    a child never uninstalls.
    """
    global _STATE, _AUDIT_HOOK_INSTALLED  # noqa: PLW0603 - one owner per process
    names = (RUN, ROOT, COLLECTOR, CONTEXT, PYTHONPATH)
    saved = {name: os.environ.get(name) for name in names} if restore else {}
    _STATE = _Installed(owner, environment, saved)
    _bring_up_to_date(os.environ, environment, owner.context())
    if not _AUDIT_HOOK_INSTALLED:
        sys.addaudithook(_audit)
        _AUDIT_HOOK_INSTALLED = True


def uninstall() -> None:
    """No owner any more: the environment as it was, pools as they were."""
    global _STATE
    state, _STATE = _STATE, None
    if state is None:
        return
    for name, value in state.saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _unpatch()


def switch(context: str) -> None:
    """The owner's code now runs in `context`: children started from now on are its."""
    if _STATE is not None:
        os.environ[CONTEXT] = context


def current_owner() -> Owner | None:
    """The owner of this process, if it records."""
    return None if _STATE is None else _STATE.owner


# -- the environment of children ---------------------------------------------------------


def _bring_up_to_date(
    env: MutableMapping[str, str], environment: ChildEnvironment, context: str
) -> None:
    for name, value in environment.variables(context).items():
        if env.get(name) != value:
            env[name] = value
    entries = env.get(PYTHONPATH, "").split(os.pathsep)
    if entries[0] != BOOTSTRAP:
        rest = [entry for entry in entries if entry and entry != BOOTSTRAP]
        env[PYTHONPATH] = os.pathsep.join([BOOTSTRAP, *rest])


def _carries(env: Mapping[str, str], environment: ChildEnvironment, context: str) -> bool:
    variables = environment.variables(context)
    first = env.get(PYTHONPATH, "").split(os.pathsep)[0]
    return first == BOOTSTRAP and all(env.get(name) == value for name, value in variables.items())


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook (installed once per process, cannot be removed)."""
    state = _STATE
    if state is None:
        return
    if event == "open":
        target = _read_target(args)
        if target is not None:
            state.owner.opened(target)
    elif event == "subprocess.Popen":
        executable, argv, _cwd, env = args
        _starting(state, env, _argv(executable, argv), fixable=True)
    elif event in ("os.posix_spawn", "os.spawn"):
        program, argv, env = args[-3:]
        _starting(state, env, _argv(program, argv), fixable=False)
    elif event == "os.exec":
        program, argv, env = args
        _starting(state, env, _argv(program, argv), fixable=False)
        state.owner.replacing()
    elif event == "os.system":
        _bring_up_to_date(os.environ, state.environment, state.owner.context())


def _read_target(args: tuple[object, ...]) -> object | None:
    """The file an `open` audit event opens for reading, if it reads one by name."""
    target, mode, flags = (*args, None, None, None)[:3]
    if isinstance(target, int) or target is None:
        return None
    if isinstance(mode, str):
        if "r" not in mode and "+" not in mode:
            return None
    elif isinstance(flags, int) and flags & os.O_ACCMODE == os.O_WRONLY:
        return None
    return target


def _argv(program: object, argv: object) -> list[str]:
    """The command line of a process being started, as far as it is a list of strings."""
    if isinstance(argv, str | bytes | os.PathLike):
        return []  # a shell command line: whatever it runs inherits the environment
    try:
        words = [os.fsdecode(word) for word in argv]  # type: ignore[attr-defined]
    except TypeError:
        return []
    if isinstance(program, str | bytes | os.PathLike) and words:
        words[0] = os.fsdecode(program)
    return words


def _starting(state: _Installed, env: object, argv: list[str], *, fixable: bool) -> None:
    """A process starts with `env` (None: this process's environment)."""
    owner, environment = state.owner, state.environment
    context = owner.context()
    if env is None or env is os.environ:
        _bring_up_to_date(os.environ, environment, context)
    elif fixable and isinstance(env, dict):
        _bring_up_to_date(env, environment, context)
    elif not isinstance(env, Mapping) or not _carries(env, environment, context):
        owner.incomplete("a process started with an environment selector could not extend")
        return
    if _ignores_bootstrap(argv):
        owner.incomplete(f"{' '.join(argv[:3])} ignores PYTHONPATH or sitecustomize")


def _ignores_bootstrap(argv: list[str]) -> bool:
    """Whether `argv` runs Python with -I, -E or -S (no recording in it, then)."""
    if not argv or not Path(argv[0]).name.startswith("python"):
        return False
    words = iter(argv[1:])
    for word in words:
        if not word.startswith("-") or word in ("-", "--") or word.startswith("--"):
            return False
        for index, flag in enumerate(word[1:]):
            if flag in _FLAGS_IGNORING_BOOTSTRAP:
                return True
            if flag in "cm":
                return False
            if flag in _FLAGS_WITH_ARGUMENT:
                if index == len(word) - 2:
                    next(words, None)
                break
    return False


# -- pool tasks --------------------------------------------------------------------------


class Task:
    """A pool task's function, with the context of whoever submitted it."""

    __slots__ = ("context", "function")

    def __init__(self, function: Callable[..., Any], context: str) -> None:
        self.function = function
        self.context = context

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        owner = current_owner()
        if owner is None:
            return self.function(*args, **kwargs)
        with owner.task(self.context):
            return self.function(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Task, (self.function, self.context))


_ORIGINALS: list[tuple[type, str, Any]] = []


def _attributed(function: Callable[..., Any]) -> Callable[..., Any]:
    owner = current_owner()
    return function if owner is None else Task(function, owner.context())


def _wrap_argument(
    cls: type, name: str, position: int, keyword: str | None, skip: type | None = None
) -> None:
    """Make `cls.name` wrap its argument at `position` (or `keyword`) in a `Task`."""
    original = cls.__dict__[name]

    @functools.wraps(original)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if skip is not None and isinstance(self, skip):
            return original(self, *args, **kwargs)
        if len(args) > position:
            args = (*args[:position], _attributed(args[position]), *args[position + 1 :])
        elif keyword is not None and keyword in kwargs:
            kwargs[keyword] = _attributed(kwargs[keyword])
        result = original(self, *args, **kwargs)
        _note_workers(self)
        return result

    _ORIGINALS.append((cls, name, original))
    setattr(cls, name, method)


def _note_workers(pool: Any) -> None:
    """Report the pool's worker processes: `Pool._pool`, `ProcessPoolExecutor._processes`."""
    owner = current_owner()
    processes = getattr(pool, "_pool", None)
    if processes is None:
        processes = (getattr(pool, "_processes", None) or {}).values()
    pids = {process.pid for process in processes if getattr(process, "pid", None)}
    if owner is not None and pids:
        owner.pool_workers(pids)


def _patched(cls: type) -> bool:
    return any(patched is cls for patched, _name, _original in _ORIGINALS)


def _patch_pool(module: ModuleType) -> None:
    """multiprocessing.pool.Pool: apply_async, imap, and what map and starmap go through.

    `_map_async(func, iterable, mapper, ...)` makes one task per chunk that calls
    `mapper((func, chunk))`, so wrapping `mapper` switches context once per chunk.
    """
    pool = module.Pool
    if _patched(pool):
        return
    for name in ("apply_async", "imap", "imap_unordered"):
        _wrap_argument(pool, name, 0, "func", skip=module.ThreadPool)
    _wrap_argument(pool, "_map_async", 2, "mapper", skip=module.ThreadPool)


def _patch_executor(module: ModuleType) -> None:
    """concurrent.futures.ProcessPoolExecutor.submit (its map submits too)."""
    if not _patched(module.ProcessPoolExecutor):
        _wrap_argument(module.ProcessPoolExecutor, "submit", 0, None)


def _unpatch() -> None:
    while _ORIGINALS:
        cls, name, original = _ORIGINALS.pop()
        setattr(cls, name, original)


PATCHES: dict[str, Callable[[ModuleType], None]] = {
    "multiprocessing.pool": _patch_pool,
    "concurrent.futures.process": _patch_executor,
}
