"""The GitHub Action, run for real on this machine: action.yml's steps, in order, with bash.

A small runner plays GitHub's part. It runs every `run:` step of the composite action the
way the runner does (`bash --noprofile --norc -eo pipefail`, fresh $GITHUB_OUTPUT,
$GITHUB_STEP_SUMMARY and $GITHUB_ENV files per step, the runner's environment variables),
evaluates the `${{ }}` expressions of `env:`, `with:`, `if:` and `working-directory:` with
an evaluator of the small subset the action uses (anything else fails the test), and stands
in for the two `uses:` steps only: actions/cache/restore and actions/cache/save, played by a
folder that keeps the cache service's rules. Everything else is real: pip installs the
action's own checkout, selector plans from real maps of a real project in real git
repositories, and the shards run pytest through the test job's script in our workflow.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from selector.github import (
    LINE_LIMIT,
    CacheKeys,
    commit_of_key,
    format_outputs,
    matrix,
    step_summary,
)
from selector.mapdb import read_map
from selector.plugin import FRAGMENT_DIR
from selector.store import LocalStore

from projects import GIT_ENV, SPLIT_SUITE, git

ROOT = Path(__file__).resolve().parent.parent
ACTION_FILE = ROOT / "action.yml"
WORKFLOW_FILE = ROOT / ".github" / "workflows" / "ci.yml"
VARIANT = f"py{sys.version_info[0]}.{sys.version_info[1]}"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(?:/[\w./-]+)?@[0-9a-f]{40}$")


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


ACTION = _load(ACTION_FILE)
WORKFLOW = _load(WORKFLOW_FILE)

# -- the expressions the action uses ---------------------------------------------------

Value = str | bool | None


class ExpressionError(Exception):
    """An expression outside the subset the evaluator knows: fail, never guess."""


_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||!|\(|\))"
    r"|(?P<path>[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*))"
)
_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}")


def _truthy(value: Value) -> bool:
    return bool(value)


def _text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value or ""


def _equal(left: Value, right: Value) -> bool:
    """GitHub's `==` for the cases the action has: strings ignore case, null is ''."""
    if isinstance(left, bool) or isinstance(right, bool):
        if type(left) is not type(right):
            raise ExpressionError(f"comparing {left!r} with {right!r} needs number coercion")
        return left == right
    return (left or "").casefold() == (right or "").casefold()


class Expressions:
    """Evaluates literals, context paths, `!`, `==`, `!=`, `&&`, `||` and parentheses.

    `steps.<id>.outputs.<name>` of a declared step that did not set it is null, as on
    GitHub; every other unknown name, and any function call, is an error.
    """

    def __init__(self, contexts: Mapping[str, Any], step_ids: frozenset[str] = frozenset()):
        self._contexts = contexts
        self._step_ids = step_ids
        self._tokens: list[tuple[str, str]] = []
        self._at = 0

    def value(self, source: str) -> Value:
        """The value of one expression (the text between `${{` and `}}`)."""
        self._tokens, self._at = self._scan(source.strip()), 0
        result = self._or()
        if self._at != len(self._tokens):
            raise ExpressionError(f"unexpected {self._tokens[self._at][1]!r} in {source!r}")
        return result

    def render(self, text: str) -> str:
        """A string with `${{ }}` parts replaced by their values."""
        return _TEMPLATE.sub(lambda match: _text(self.value(match[1])), text)

    def condition(self, text: str | bool) -> bool:
        """An `if:`, with or without `${{ }}` around it."""
        if isinstance(text, bool):
            return text
        inner = text.strip()
        if inner.startswith("${{") and inner.endswith("}}"):
            inner = inner[3:-2]
        return _truthy(self.value(inner))

    @staticmethod
    def _scan(source: str) -> list[tuple[str, str]]:
        tokens, position = [], 0
        while position < len(source):
            match = _TOKEN.match(source, position)
            if match is None or match.lastgroup is None:
                raise ExpressionError(f"cannot read {source[position:]!r}")
            tokens.append((match.lastgroup, match[match.lastgroup]))
            position = match.end()
        return tokens

    def _take(self, text: str) -> bool:
        if self._at < len(self._tokens) and self._tokens[self._at] == ("op", text):
            self._at += 1
            return True
        return False

    def _or(self) -> Value:
        left = self._and()
        while self._take("||"):
            right = self._and()
            left = left if _truthy(left) else right
        return left

    def _and(self) -> Value:
        left = self._not()
        while self._take("&&"):
            right = self._not()
            left = right if _truthy(left) else left
        return left

    def _not(self) -> Value:
        if self._take("!"):
            return not _truthy(self._not())
        return self._compare()

    def _compare(self) -> Value:
        left = self._primary()
        if self._take("=="):
            return _equal(left, self._primary())
        if self._take("!="):
            return not _equal(left, self._primary())
        return left

    def _primary(self) -> Value:
        if self._at >= len(self._tokens):
            raise ExpressionError("the expression ends too early")
        kind, text = self._tokens[self._at]
        self._at += 1
        if (kind, text) == ("op", "("):
            inner = self._or()
            if not self._take(")"):
                raise ExpressionError("missing ')'")
            return inner
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind != "path":
            raise ExpressionError(f"unexpected {text!r}")
        if self._at < len(self._tokens) and self._tokens[self._at] == ("op", "("):
            raise ExpressionError(f"function {text}() is outside the supported subset")
        literals: dict[str, Value] = {"true": True, "false": False, "null": None}
        return literals[text] if text in literals else self._lookup(text)

    def _lookup(self, path: str) -> Value:
        name, *rest = path.split(".")
        if name == "steps":
            if len(rest) != 3 or rest[1] != "outputs" or rest[0] not in self._step_ids:
                raise ExpressionError(f"{path} names no output of a declared step")
            found: Value = self._contexts["steps"].get(rest[0], {}).get(rest[2])
            return found
        if name not in self._contexts:
            raise ExpressionError(f"unknown context in {path}")
        node: Any = self._contexts[name]
        for part in rest:
            if not isinstance(node, Mapping) or part not in node:
                raise ExpressionError(f"{path} is not set")
            node = node[part]
        if isinstance(node, int) and not isinstance(node, bool):
            return str(node)
        if not isinstance(node, str | bool | None):
            raise ExpressionError(f"{path} is not a string, boolean or null")
        return node


def test_the_evaluator_knows_the_subset_and_rejects_the_rest() -> None:
    steps = {"keys": {"cache": "true"}}
    contexts = {"inputs": {"mode": "Plan"}, "steps": steps, "github": {"event_name": "push"}}
    evaluate = Expressions(contexts, frozenset({"keys", "restore"}))
    assert evaluate.condition("inputs.mode == 'plan'")
    assert evaluate.condition("${{ steps.keys.outputs.cache == 'true' && !false }}")
    assert evaluate.value("steps.restore.outputs.cache-matched-key") is None
    assert evaluate.condition("steps.keys.outputs.skip != 'true'")
    assert evaluate.render("a-${{ github.event_name == 'push' }}-${{ 'it''s' }}") == "a-true-it's"
    assert evaluate.value("'' || inputs.mode") == "Plan"
    for unsupported in (
        "always()",
        "inputs.other",
        "steps.nothing.outputs.x",
        "vars.X",
        "1 == 1",
        "inputs.mode ==",
        "true == 'true'",
    ):
        with pytest.raises(ExpressionError):
            evaluate.value(unsupported)


# -- the runner's files ------------------------------------------------------------------


def read_environment_file(path: Path) -> dict[str, str]:
    """Parse $GITHUB_OUTPUT / $GITHUB_ENV as the runner does: `name=value` or a heredoc."""
    values: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").split("\n") if path.exists() else []
    index = 0
    while index < len(lines):
        line, index = lines[index], index + 1
        if not line:
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            values[line[:equals]] = line[equals + 1 :]
            continue
        if heredoc <= 0:
            raise ValueError(f"not an output line: {line!r}")
        name, delimiter, body = line[:heredoc], line[heredoc + 2 :], []
        while True:
            if index >= len(lines):
                raise ValueError(f"{name}: the delimiter {delimiter!r} never comes")
            line, index = lines[index], index + 1
            if line == delimiter:
                break
            body.append(line)
        values[name] = "\n".join(body)
    return values


def test_outputs_round_trip_through_the_runners_parser(tmp_path: Path) -> None:
    crafted = "x\nforged=1\nghadelimiter_0\n"
    values = {"matrix": "[1,2]", "plan-file": "/tmp/a b/plan.json", "note": crafted}
    written = tmp_path / "output"
    written.write_text(format_outputs(values))
    assert read_environment_file(written) == values
    assert "matrix=[1,2]\n" in written.read_text()


# -- the Actions cache -----------------------------------------------------------------


@dataclass
class _Entry:
    """One saved cache entry: its key, paths ("version"), branch scope and content."""

    key: str
    version: str
    scope: str
    folder: Path


class ActionsCache:
    """The cache service as actions/cache sees it, in a folder.

    Entries are immutable. A restore looks, per scope (the run's ref, then its pull
    request's base branch, then the default branch), for the exact key, then for the
    newest entry whose key starts with the key, then with each restore key in turn; only
    entries saved with the same paths (the cache "version") match.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.entries: list[_Entry] = []

    def restore(
        self, given: Mapping[str, str], workspace: Path, scopes: list[str]
    ) -> dict[str, str]:
        _known(given, {"path", "key", "restore-keys"})
        paths = _lines(given["path"])
        key = given["key"]
        wanted = [(key, True), (key, False)] + [(p, False) for p in _lines(given["restore-keys"])]
        outputs = {"cache-primary-key": key}
        for scope, (prefix, exact) in ((s, w) for s in scopes for w in wanted):
            found = [
                entry
                for entry in self.entries
                if entry.scope == scope
                and entry.version == "\n".join(paths)
                and (entry.key == prefix if exact else entry.key.startswith(prefix))
            ]
            if found:
                entry = found[-1]  # the newest
                for number, path in enumerate(paths):
                    shutil.copytree(entry.folder / str(number), workspace / path)
                return {
                    **outputs,
                    "cache-hit": str(entry.key == key).lower(),
                    "cache-matched-key": entry.key,
                }
        return outputs

    def save(self, given: Mapping[str, str], workspace: Path, scope: str) -> str:
        _known(given, {"path", "key"})
        paths, key = _lines(given["path"]), given["key"]
        if any(entry.key == key and entry.scope == scope for entry in self.entries):
            return f"::warning::Failed to save: cache entry with key {key} already exists"
        if not all((workspace / path).exists() for path in paths):
            return "::warning::Path Validation Error: no cache is being saved"
        folder = self.folder / str(len(self.entries))
        for number, path in enumerate(paths):
            shutil.copytree(workspace / path, folder / str(number))
        self.entries.append(_Entry(key, "\n".join(paths), scope, folder))
        return f"Cache saved with key: {key}"

    def keys(self) -> list[str]:
        """Every saved key, oldest first."""
        return [entry.key for entry in self.entries]


def _known(given: Mapping[str, str], inputs: set[str]) -> None:
    """Inputs this stand-in does not implement would be silently ignored: refuse them."""
    assert set(given) <= inputs, f"the stand-in does not implement {set(given) - inputs}"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


# -- a runner for the action and the workflow's test step --------------------------------


@dataclass(frozen=True)
class Event:
    """What triggered the workflow run."""

    name: str
    ref: str
    sha: str
    base_ref: str = ""
    default_branch: str = "main"

    def payload(self) -> dict[str, Any]:
        return {"repository": {"default_branch": self.default_branch, "full_name": "o/p"}}


@dataclass
class ActionRun:
    """The outcome of one use of the action."""

    outputs: dict[str, str]
    summary: str
    log: str
    ran: list[str] = field(default_factory=list)


class StepFailed(Exception):
    """A `run:` step exited non-zero: the action fails."""


@dataclass(frozen=True)
class Tools:
    """What one runner machine has: an interpreter, the action's checkout, $RUNNER_TEMP."""

    bin: Path
    action: Path
    temp: Path
    home: Path


class Job:
    """One job on a runner: its workspace (a checkout), its event, the shared cache."""

    def __init__(self, tools: Tools, cache: ActionsCache, workspace: Path, event: Event) -> None:
        self.tools, self.cache, self.workspace, self.event = tools, cache, workspace, event
        self.job_env: dict[str, str] = {}
        self.event_file = tools.temp / f"event-{workspace.name}.json"
        self.event_file.write_text(json.dumps(event.payload()))

    @property
    def github(self) -> dict[str, Any]:
        return {
            "event_name": self.event.name,
            "ref": self.event.ref,
            "sha": self.event.sha,
            "base_ref": self.event.base_ref,
            "workspace": os.fspath(self.workspace),
            "action_path": os.fspath(self.tools.action),
            "event": self.event.payload(),
        }

    def environment(self) -> dict[str, str]:
        """The variables the runner sets, plus an offline pip that builds without isolation."""
        return {
            "PATH": f"{self.tools.bin}{os.pathsep}{os.environ['PATH']}",
            "HOME": os.fspath(self.tools.home),
            "LANG": "C.UTF-8",
            **GIT_ENV,
            "GIT_CONFIG_GLOBAL": os.devnull,
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": self.event.name,
            "GITHUB_EVENT_PATH": os.fspath(self.event_file),
            "GITHUB_REF": self.event.ref,
            "GITHUB_REF_NAME": self.event.ref.rpartition("/")[2],
            "GITHUB_SHA": self.event.sha,
            "GITHUB_BASE_REF": self.event.base_ref,
            "GITHUB_HEAD_REF": "",
            "GITHUB_REPOSITORY": "o/p",
            "GITHUB_WORKSPACE": os.fspath(self.workspace),
            "RUNNER_OS": "Linux",
            "RUNNER_TEMP": os.fspath(self.tools.temp),
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_NO_INDEX": "1",
            "PIP_NO_BUILD_ISOLATION": "0",  # pip's spelling of --no-build-isolation
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            # Observers of this test, not part of the workflow: which tests ran, and no
            # hypothesis plugin start-up in each pytest run.
            "PYTEST_ADDOPTS": "-rA -p no:hypothesispytest",
            **self.job_env,
        }

    def bash(self, script: str, env: Mapping[str, str], cwd: Path) -> tuple[str, Path, Path]:
        """Run one `run:` script as the runner runs `shell: bash`; (log, outputs, summary)."""
        if "${{" in script:
            raise AssertionError(f"an expression inside run: would be shell code:\n{script}")
        files = {
            name: self.tools.temp / f"{name}-{os.urandom(4).hex()}" for name in ("o", "s", "e")
        }
        for path in files.values():
            path.touch()
        script_file = self.tools.temp / f"step-{os.urandom(4).hex()}.sh"
        script_file.write_text(script)
        variables = {
            **self.environment(),
            **env,
            "GITHUB_OUTPUT": os.fspath(files["o"]),
            "GITHUB_STEP_SUMMARY": os.fspath(files["s"]),
            "GITHUB_ENV": os.fspath(files["e"]),
        }
        completed = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", os.fspath(script_file)],
            cwd=cwd,
            env=variables,
            capture_output=True,
            text=True,
            check=False,
        )
        log = completed.stdout + completed.stderr
        if completed.returncode != 0:
            raise StepFailed(f"exit {completed.returncode}:\n{log}")
        self.job_env.update(read_environment_file(files["e"]))
        return log, files["o"], files["s"]

    def run_action(self, **given: str) -> ActionRun:
        """Use the action with these inputs: its steps in order, as the runner does."""
        declared = ACTION["inputs"]
        unknown = set(given) - set(declared)
        assert not unknown, f"inputs the action does not declare: {unknown}"
        inputs = {
            name: given.get(name, str(spec.get("default", ""))) for name, spec in declared.items()
        }
        steps_outputs: dict[str, dict[str, str]] = {}
        step_ids = frozenset(step["id"] for step in ACTION["runs"]["steps"] if "id" in step)
        contexts = {
            "inputs": inputs,
            "steps": steps_outputs,
            "github": self.github,
        }
        evaluate = Expressions(contexts, step_ids)
        run = ActionRun({}, "", "")
        for step in ACTION["runs"]["steps"]:
            if "if" in step and not evaluate.condition(step["if"]):
                continue
            run.ran.append(step["name"])
            outputs: dict[str, str]
            if "uses" in step:
                outputs, log = self._uses(step, evaluate)
            else:
                assert step.get("shell") == "bash", step["name"]
                env = {name: evaluate.render(str(value)) for name, value in step["env"].items()}
                env["GITHUB_ACTION_PATH"] = os.fspath(self.tools.action)
                where = self.workspace / evaluate.render(step.get("working-directory", "."))
                log, output_file, summary_file = self.bash(step["run"], env, where)
                outputs = read_environment_file(output_file)
                run.summary += summary_file.read_text()
            run.log += log
            if "id" in step:
                steps_outputs[step["id"]] = outputs
        run.outputs = {
            name: evaluate.render(spec["value"]) for name, spec in ACTION["outputs"].items()
        }
        return run

    def _uses(self, step: Mapping[str, Any], evaluate: Expressions) -> tuple[dict[str, str], str]:
        """The stand-ins for the pinned actions the action uses: the cache, and nothing else."""
        uses, given = step["uses"], {k: evaluate.render(str(v)) for k, v in step["with"].items()}
        action = uses.partition("@")[0]
        if action == "actions/cache/restore":
            scopes = [self.event.ref, f"refs/heads/{self.event.default_branch}"]
            if self.event.base_ref:
                scopes.insert(1, f"refs/heads/{self.event.base_ref}")
            outputs = self.cache.restore(given, self.workspace, scopes)
            return outputs, f"restore: {outputs}\n"
        if action == "actions/cache/save":
            return {}, self.cache.save(given, self.workspace, self.event.ref) + "\n"
        raise AssertionError(f"no stand-in for {uses}")

    def run_shard(self, shard: int, plan_file: str) -> tuple[list[str], str]:
        """The workflow's test job: the plan artifact (if any), then its shard script.

        Returns the node IDs that passed, as pytest's `-rA` summary lists them, and the log.
        """
        assert WORKFLOW["defaults"]["run"]["shell"] == "bash"
        steps = WORKFLOW["jobs"]["test"]["steps"]
        if plan_file:  # actions/download-artifact of the plan job's artifact
            (download,) = [s for s in steps if s.get("with", {}).get("name") == "selector-plan"]
            folder = self.workspace / download["with"]["path"]
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(plan_file, folder / Path(plan_file).name)
        (step,) = [s for s in steps if s.get("name") == "Run the shard"]
        evaluate = Expressions({"matrix": {"shard": shard}, "github": self.github})
        env = {name: evaluate.render(str(value)) for name, value in step["env"].items()}
        log, _outputs, _summary = self.bash(step["run"], env, self.workspace)
        return re.findall(r"^PASSED (\S+)", log, flags=re.MULTILINE), log

    def fragments(self) -> list[Path]:
        """What the test job uploads as its fragments artifact: what the recorder wrote."""
        steps = WORKFLOW["jobs"]["test"]["steps"]
        (upload,) = [s for s in steps if "fragments" in s.get("with", {}).get("name", "")]
        assert Path(upload["with"]["path"]) == FRAGMENT_DIR
        return sorted((self.workspace / FRAGMENT_DIR).glob("*.sqlite"))


class Hosting:
    """The project "on GitHub": a bare origin, a developer's clone, and the Actions cache."""

    def __init__(self, root: Path, tools: Tools) -> None:
        self.root, self.tools = root, tools
        self.origin = root / "origin.git"
        git(root, "init", "-q", "--bare", "-b", "main", os.fspath(self.origin))
        self.dev = root / "dev"
        git(root, "clone", "-q", os.fspath(self.origin), os.fspath(self.dev))
        self.cache = ActionsCache(root / "cache")

    def commit(self, files: Mapping[str, str], branch: str = "main") -> str:
        """Write, commit and push to `branch`; the new commit."""
        git(self.dev, "checkout", "-q", "-B", branch)
        for name, content in files.items():
            (self.dev / name).write_text(textwrap.dedent(content).lstrip("\n"))
        git(self.dev, "add", "-A")
        git(self.dev, "commit", "-q", "-m", f"change {branch}")
        git(self.dev, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        return git(self.dev, "rev-parse", "HEAD")

    def open_pull_request(self, branch: str) -> str:
        """GitHub's test merge commit of `branch` into main, as refs/pull/1/merge."""
        git(self.dev, "checkout", "-q", "--detach", "origin/main")
        git(self.dev, "fetch", "-q", "origin")
        git(self.dev, "merge", "-q", "--no-ff", "-m", "Merge", f"origin/{branch}")
        git(self.dev, "push", "-q", "origin", "HEAD:refs/pull/1/merge")
        return git(self.dev, "rev-parse", "HEAD")

    def job(self, name: str, event: Event, depth: int | None = None) -> Job:
        """A new job whose workspace is checked out as actions/checkout does it."""
        workspace = self.root / "jobs" / name
        url = f"file://{self.origin}"
        if depth is not None:
            git(
                self.root,
                "clone",
                "-q",
                f"--depth={depth}",
                "-b",
                "main",
                url,
                os.fspath(workspace),
            )
        else:
            git(self.root, "clone", "-q", url, os.fspath(workspace))
        if event.ref.startswith("refs/pull/"):
            git(workspace, "fetch", "-q", "origin", f"+{event.ref}:refs/remotes/pull/merge")
            git(workspace, "checkout", "-q", "--detach", "refs/remotes/pull/merge")
        assert git(workspace, "rev-parse", "HEAD") == event.sha
        return Job(self.tools, self.cache, workspace, event)


# -- the project and the scenario --------------------------------------------------------

PROJECT = {".gitignore": "__pycache__/\n", **SPLIT_SUITE}
CHANGED_FUNCTION = {"app.py": PROJECT["app.py"].replace("x + 1", "1 + x")}
USED = {f"test_used_{i}.py::test_used[{x}]" for i in range(4) for x in (1, 2, 3)}
PLAIN = {f"test_used_{i}.py::test_plain_{i}" for i in range(4)} | {"test_other.py::test_other"}
EVERY_TEST = USED | PLAIN


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Tools:
    """A runner machine: an interpreter with the project's dependencies but not selector.

    The interpreter is a virtualenv that sees this environment's packages through a .pth
    file (so nothing is downloaded), while selector itself comes only from the action's
    install step. Its jobs share $RUNNER_TEMP, as the steps of one job do, so the install
    runs once.
    """
    root = tmp_path_factory.mktemp("runner")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root / "venv"], check=True)
    purelib = subprocess.run(
        [
            root / "venv" / "bin" / "python",
            "-c",
            "import sysconfig as s; print(s.get_path('purelib'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    here = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(purelib) / "environment.pth").write_text("".join(f"{path}\n" for path in here))
    # This environment's editable install of selector is a .pth file, which only a site
    # folder runs: the new interpreter cannot import selector until the action installs it.
    probe = [os.fspath(root / "venv" / "bin" / "python"), "-c", "import selector"]
    assert subprocess.run(probe, cwd=root, capture_output=True, check=False).returncode
    action = root / "action"
    action.mkdir()
    for name in ("action.yml", "pyproject.toml", "README.md"):
        shutil.copyfile(ROOT / name, action / name)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "selector", action / "selector", ignore=ignore)
    (root / "temp").mkdir()
    (root / "home").mkdir()
    return Tools(root / "venv" / "bin", action, root / "temp", root / "home")


def test_the_action_plans_runs_shards_and_uploads(tools: Tools, tmp_path: Path) -> None:
    hub = Hosting(tmp_path, tools)
    _first_push(hub)
    merge = _pull_request(hub)
    _merged_push(hub, merge)
    quiet = _quiet_push(hub, merge)
    _fallbacks(hub, quiet)


def _first_push(hub: Hosting) -> None:
    """No map in the cache yet: everything runs, in one shard; its recording is uploaded."""
    first = hub.commit(PROJECT)
    push = Event("push", "refs/heads/main", first)
    plan = hub.job("plan-1", push).run_action(shards="3")
    assert (plan.outputs["run-all"], plan.outputs["matrix"]) == ("true", "[1]")
    assert f"no {VARIANT} map" in plan.summary
    assert "Installing collected packages: selector-ci" in plan.log  # the real install
    shard = hub.job("test-1", push)
    assert set(shard.run_shard(1, plan.outputs["plan-file"])[0]) == EVERY_TEST
    upload = hub.job("upload-1", push)
    _download_fragments([shard], upload)
    assert "Save the map" in upload.run_action(mode="upload").ran
    assert hub.cache.keys() == [CacheKeys(VARIANT, first).key]


def _pull_request(hub: Hosting) -> str:
    """A pull request that changes one function: only its tests, in 3 shards; no upload."""
    first = hub.cache.keys()[0].rpartition(":")[2]
    hub.commit(CHANGED_FUNCTION, branch="feature")
    merge = hub.open_pull_request("feature")
    pull_request = Event("pull_request", "refs/pull/1/merge", merge, base_ref="main")
    plan_job, upload_job = hub.job("plan-pr", pull_request), hub.job("upload-pr", pull_request)
    with ThreadPoolExecutor() as jobs:  # independent jobs run side by side, as on GitHub
        planned = jobs.submit(plan_job.run_action, shards="3")
        uploaded = jobs.submit(upload_job.run_action, mode="upload")
    plan, skipped = planned.result(), uploaded.result()
    assert plan.outputs["run-all"] == "false", plan.summary
    assert plan.outputs["matrix"] == "[1,2,3]"
    assert (plan.outputs["selected-count"], plan.outputs["total-count"]) == ("12", "17")
    assert plan.outputs["map-commit"] == first
    assert "12 of 17 recorded tests selected" in plan.summary
    assert "app.py:2 in used" in plan.summary
    assert "is already installed" in plan.log
    assert f"using the restored {VARIANT} map of {first[:12]}" in plan.log
    assert json.loads(Path(plan.outputs["plan-file"]).read_text())["base"] == "origin/main"
    assert "only from pushes to the default branch" in skipped.log
    assert skipped.ran == ["Install selector", "Cache keys"]
    assert len(hub.cache.keys()) == 1
    return merge


def _merged_push(hub: Hosting, merge: str) -> None:
    """The merge on main: 3 recording shards run every selected test exactly once, and the
    upload carries the tests they did not run forward from the restored map."""
    git(hub.dev, "push", "-q", "origin", f"{merge}:refs/heads/main")
    push = Event("push", "refs/heads/main", merge)
    plan = hub.job("plan-2", push).run_action(shards="3")
    assert plan.outputs["matrix"] == "[1,2,3]"
    shards = [hub.job(f"test-2-{k}", push) for k in (1, 2, 3)]
    with ThreadPoolExecutor() as jobs:
        runs = jobs.map(Job.run_shard, shards, (1, 2, 3), [plan.outputs["plan-file"]] * 3)
        ran = [passed for passed, _log in runs]
    assert all(ran), ran
    counts = Counter(nodeid for shard in ran for nodeid in shard)
    assert set(counts) == USED
    assert set(counts.values()) == {1}, counts
    upload = hub.job("upload-2", push)
    _download_fragments(shards, upload)
    upload.run_action(mode="upload")
    assert hub.cache.keys()[-1] == CacheKeys(VARIANT, merge).key
    saved = LocalStore(hub.cache.entries[-1].folder / "0")
    assert [stored.commit for stored in saved.maps()] == [merge]  # the new map alone
    assert set(read_map(saved.fetch(merge, VARIANT)).tests) == EVERY_TEST


def _quiet_push(hub: Hosting, merge: str) -> str:
    """A push to main whose change selects no test: its one shard runs nothing yet records
    what it collected, the upload stores the map of the commit with every test carried
    forward, and a pull request on top of it plans from that map. Returns the commit."""
    commented = CHANGED_FUNCTION["app.py"].replace("(x):", "(x):  # a comment")
    quiet = hub.commit({"app.py": commented})
    push = Event("push", "refs/heads/main", quiet)
    plan = hub.job("plan-3", push).run_action(shards="3")
    assert (plan.outputs["matrix"], plan.outputs["selected-count"]) == ("[1]", "0")
    shard = hub.job("test-3", push)
    passed, log = shard.run_shard(1, plan.outputs["plan-file"])
    assert passed == []
    assert "selector: shard 1/1: nothing to run in this shard" in log
    upload = hub.job("upload-3", push)
    _download_fragments([shard], upload)
    uploaded = upload.run_action(mode="upload")
    assert f"17 tests (0 re-run, 17 carried forward from {merge[:12]}, 0 no longer" in (
        uploaded.log
    )
    assert hub.cache.keys()[-1] == CacheKeys(VARIANT, quiet).key
    saved = LocalStore(hub.cache.entries[-1].folder / "0")
    assert set(read_map(saved.fetch(quiet, VARIANT)).tests) == EVERY_TEST

    hub.commit({"app.py": commented.replace("x * 2", "2 * x")}, branch="other")
    merged = hub.open_pull_request("other")
    pull_request = Event("pull_request", "refs/pull/1/merge", merged, base_ref="main")
    plan = hub.job("plan-pr-2", pull_request).run_action(shards="3")
    assert plan.outputs["map-commit"] == quiet
    assert (plan.outputs["selected-count"], plan.outputs["total-count"]) == ("5", "17")
    return quiet


def _fallbacks(hub: Hosting, merge: str) -> None:
    """What degrades to running everything: a shallow clone without the map's commit, a
    test job without a plan file, and a plan that fails."""
    latest = hub.commit({"notes.txt": "a file no test reads\n"})
    push = Event("push", "refs/heads/main", latest)
    shallow, no_plan = hub.job("shallow", push, depth=1), hub.job("no-plan", push, depth=1)
    broken = hub.job("broken", push)
    (broken.workspace / "pyproject.toml").write_text("[tool.selector]\nno_such_key = 1\n")
    with ThreadPoolExecutor() as jobs:
        shallow_plan = jobs.submit(shallow.run_action, shards="3")
        no_plan_shard = jobs.submit(no_plan.run_shard, 1, "")
        broken_plan = jobs.submit(broken.run_action, shards="3")

    plan = shallow_plan.result()
    assert (plan.outputs["run-all"], plan.outputs["matrix"]) == ("true", "[1]")
    assert f"git fetch --depth=1 origin {merge}" in plan.summary

    passed, log = no_plan_shard.result()
    assert set(passed) == EVERY_TEST
    assert "::warning title=selector::no plan: shard 1 runs every test" in log

    plan = broken_plan.result()
    assert (plan.outputs["run-all"], plan.outputs["matrix"]) == ("true", "[1]")
    assert plan.outputs["plan-file"] == ""
    assert "::warning title=selector::selector plan failed" in plan.log
    assert "planning failed, every test runs" in plan.summary


def _download_fragments(shards: list[Job], upload: Job) -> None:
    """actions/download-artifact with a pattern and merge-multiple: one folder of all."""
    (download,) = [
        s for s in WORKFLOW["jobs"]["upload-map"]["steps"] if "pattern" in s.get("with", {})
    ]
    assert download["with"]["merge-multiple"] is True
    folder = upload.workspace / download["with"]["path"]
    folder.mkdir(parents=True)
    for job in shards:
        for fragment in job.fragments():
            shutil.copyfile(fragment, folder / fragment.name)


# -- the action's and the workflows' text ----------------------------------------------


def _steps(document: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    if "runs" in document:
        yield from document["runs"]["steps"]
    for job in document.get("jobs", {}).values():
        yield from job["steps"]


def test_actions_are_pinned_and_expressions_never_reach_a_shell() -> None:
    for path in (ACTION_FILE, *sorted(WORKFLOW_FILE.parent.glob("*.yml"))):
        steps = list(_steps(_load(path)))
        assert steps, path
        for step in steps:
            uses = step.get("uses", "./")
            assert uses == "./" or PINNED.match(uses), f"{path}: {uses} is not pinned by SHA"
            assert "${{" not in step.get("run", ""), f"{path}: an expression in run:"
        pinned = re.findall(r"uses: (\S+@[0-9a-f]{40})(.*)", path.read_text())
        assert all(re.fullmatch(r" # v\d+\.\d+\.\d+", comment) for _, comment in pinned), pinned


# -- selector.github -----------------------------------------------------------------------


def test_cache_keys_name_their_commit_and_no_other_variant() -> None:
    commit = "a" * 40
    keys = CacheKeys("py3.1", commit)
    assert (keys.key, keys.restore_key) == (f"selector-map:py3.1:{commit}", "selector-map:py3.1:")
    assert commit_of_key(keys.key, "py3.1") == commit
    assert not CacheKeys("py3.11", commit).key.startswith(keys.restore_key)
    assert commit_of_key(CacheKeys("py3.11", commit).key, "py3.1") is None
    assert commit_of_key("selector-map:py3.1:HEAD", "py3.1") is None


def test_the_matrix_is_never_empty() -> None:
    assert matrix({"shards": []}) == [1]
    assert matrix({"shards": [{}, {}, {}]}) == [1, 2, 3]


def _plan(**changes: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "run_all": False,
        "reasons": [],
        "selected": ["test_a.py::test_x"],
        "tests": {"test_a.py::test_x": {"reasons": ["a.py:3 in f"], "recorded_tests": 2}},
        "selected_count": 2,
        "total_count": 40,
        "estimated_duration": 1.5,
        "estimated_saved": 64.0,
        "uncovered_changes": [],
        "shards": [{"index": 1, "duration": 1.5, "units": []}],
        "map_commit": "b" * 40,
        "variant": "py3.12",
    }
    plan.update(changes)
    return plan


def _outside_fences(summary: str) -> list[str]:
    """The summary's lines that GitHub renders as Markdown (not inside a fenced block)."""
    outside, fence = [], ""
    for line in summary.split("\n"):
        if fence:
            fence = "" if line == fence else fence
        elif line.startswith("```"):
            fence = line.removesuffix("text")
        else:
            outside.append(line)
    assert not fence, "a fence is left open"
    return outside


def test_the_summary_says_what_runs_and_why() -> None:
    summary = step_summary(_plan(uncovered_changes=["a.py:9 in g"]))
    assert summary.startswith("### selector: 2 of 40 recorded tests selected (5%)")
    assert "| Estimated test time | 1.5s, 1m04s saved |" in summary
    assert "     2  a.py:3 in f" in summary
    assert "a.py:9 in g" in summary
    everything = step_summary(_plan(run_all=True, reasons=["the map's commit is gone"]))
    assert everything.startswith("### selector: every test runs (40 recorded)")
    assert "- the map's commit is gone" in everything


def test_the_summary_renders_no_text_of_the_repository_and_stays_small() -> None:
    hostile = [
        "x.py:1 in f ``````` [click](https://example.com) <img src=x onerror=alert(1)>",
        "y.py:2 in g\n### forged heading\r| forged | row |",
        "z" * 10_000,
    ]
    tests = {
        f"t.py::test_{n}": {"reasons": [f"{hostile[n % 3]} {n}"], "recorded_tests": 1}
        for n in range(500)
    }
    uncovered = [f"{hostile[n % 3]} {n}" for n in range(500)]
    for plan in (
        _plan(tests=tests, uncovered_changes=uncovered),
        _plan(run_all=True, reasons=[f"{hostile[n % 3]} {n}" for n in range(500)]),
    ):
        summary = step_summary(plan)
        assert len(summary.encode()) < 100 * 1024  # GitHub's limit per step is 1 MiB
        for line in _outside_fences(summary):
            assert not re.search(r"https?:|www\.|<|\[|forged", line), line
        assert max(len(line) for line in summary.split("\n")) <= LINE_LIMIT + 10
        assert "more" in summary
