"""Python child processes record for the test that started them, by real pytest runs.

Each project is a real repository whose tests start real processes: a CLI through
subprocess, multiprocessing and concurrent.futures pools, a server run by a session
fixture, a shell script starting Python that starts Python, children killed with SIGKILL
or leaving through os._exit. The default collector of the running Python records them
(coverage's tracer on 3.11, sys.monitoring on 3.12+); where the two behave differently
(a child killed before coverage wrote its lines) both are run where both exist.
"""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sample import plan_after_change

from selector.journal import JournalWriter, read_journal
from selector.mapdb import INCOMPLETE, MapData

from projects import Project

COLLECTORS = ["coverage", "monitoring"] if sys.version_info >= (3, 12) else ["coverage"]


def depends(project: Project, data: MapData, nodeid: str, path: str, text: str) -> bool:
    """Whether the recorded test depends on the line of `path` containing `text`."""
    return project.line_of(path, text) in data.test_lines(nodeid).get(path, set())


def incomplete(data: MapData, nodeid: str) -> bool:
    """Whether the map says the test's child process data may lack lines."""
    return INCOMPLETE in data.closure(("test", nodeid))


CLI = {
    "mytool/__init__.py": "",
    "mytool/__main__.py": """
        import sys

        from mytool.cli import main

        sys.exit(main(sys.argv[1:]))
    """,
    "mytool/cli.py": """
        from mytool import text


        def main(arguments):
            print(text.shout(" ".join(arguments)))
            return 0
    """,
    "mytool/text.py": """
        def shout(words):
            return words.upper() + "!"


        def whisper(words):
            return words.lower()
    """,
}


def test_a_cli_run_through_subprocess_is_the_tests(project: Project) -> None:
    project.write(
        {
            **CLI,
            "tests/test_cli.py": """
                import subprocess
                import sys


                def test_cli():
                    run = subprocess.run(
                        [sys.executable, "-m", "mytool", "hi"], capture_output=True, text=True
                    )
                    assert run.stdout == "HI!\\n", run.stderr


                def test_whisper():
                    from mytool.text import whisper

                    assert whisper("A") == "a"


                def test_plain():
                    pass
            """,
        }
    )
    project.commit()
    result = project.record()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["selector: recorded 1 child processes"])
    data = project.fragment()
    cli = "tests/test_cli.py::test_cli"
    assert depends(project, data, cli, "mytool/text.py", 'return words.upper() + "!"')
    assert depends(project, data, cli, "mytool/__main__.py", "sys.exit(main(sys.argv[1:]))")
    assert not depends(project, data, cli, "mytool/text.py", "return words.lower()")
    assert not depends(project, data, "tests/test_cli.py::test_plain", "mytool/text.py", "upper")
    assert not any(kind == "child" for kind, _name in data.contexts)  # folded into the test
    assert not incomplete(data, cli)
    selected = plan_after_change(project.path, "mytool/text.py", '+ "!"', '+ "!!"')
    assert selected == {cli}


POOL_TASKS = {
    "work/__init__.py": "",
    "work/tasks.py": """
        FACTOR = 10


        def setup_worker():
            global FACTOR
            FACTOR = int("10")


        def square(number):
            return number * number


        def scale(number):
            return number * FACTOR


        def negate(number):
            return -number
    """,
}

POOL_TESTS = """
    from work import tasks


    def test_map(pool):
        assert list(pool.map(tasks.square, [1, 2, 3])) == [1, 4, 9]


    def test_submit(pool):
        assert submit(pool, tasks.scale, 2) == 20


    def test_unused(pool):
        assert pool is not None


    def test_without_pool():
        assert tasks.negate(1) == -1
"""


@pytest.mark.parametrize(
    ("pool", "submit"),
    [
        (
            "multiprocessing.get_context('fork').Pool(2, initializer=tasks.setup_worker)",
            "pool.apply(function, (argument,))",
        ),
        (
            "multiprocessing.get_context('spawn').Pool(2, initializer=tasks.setup_worker)",
            "pool.apply_async(function, (argument,)).get()",
        ),
        (
            "ProcessPoolExecutor(2, multiprocessing.get_context('spawn'), "
            "initializer=tasks.setup_worker)",
            "pool.submit(function, argument).result()",
        ),
        (
            "ProcessPoolExecutor(2, multiprocessing.get_context('forkserver'), "
            "initializer=tasks.setup_worker)",
            "pool.submit(function, argument).result()",
        ),
    ],
    ids=["pool-fork", "pool-spawn", "executor-spawn", "executor-forkserver"],
)
def test_pool_tasks_belong_to_the_tests_that_submit_them(
    project: Project, pool: str, submit: str
) -> None:
    project.write(
        {
            **POOL_TASKS,
            "tests/conftest.py": f"""
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                import pytest

                from work import tasks


                @pytest.fixture(scope="session")
                def pool():
                    workers = {pool}
                    yield workers
                    if hasattr(workers, "join"):  # a Pool: let its workers exit and write
                        workers.close()
                        workers.join()
                    else:
                        workers.shutdown()
            """,
            "tests/test_pool.py": textwrap.dedent(POOL_TESTS)
            + f"\n\ndef submit(pool, function, argument):\n    return {submit}\n",
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=4)
    data = project.fragment()
    mapping, submitting = "tests/test_pool.py::test_map", "tests/test_pool.py::test_submit"
    assert depends(project, data, mapping, "work/tasks.py", "return number * number")
    assert not depends(project, data, mapping, "work/tasks.py", "return number * FACTOR")
    assert depends(project, data, submitting, "work/tasks.py", "return number * FACTOR")
    assert not depends(project, data, submitting, "work/tasks.py", "return number * number")
    for nodeid in (mapping, submitting, "tests/test_pool.py::test_unused"):
        assert depends(project, data, nodeid, "work/tasks.py", "FACTOR = 10"), nodeid
    unrelated = "tests/test_pool.py::test_without_pool"
    assert not depends(project, data, unrelated, "work/tasks.py", "return number * number")
    # The forkserver outlives the test that started it, and forks every worker: their
    # start-up belongs to every test after that one (safe, but less precise).
    forkserver = "forkserver" in pool
    start_up = depends(project, data, unrelated, "work/tasks.py", 'FACTOR = int("10")')
    assert start_up == forkserver
    assert not any(incomplete(data, nodeid) for nodeid in data.tests)


def test_a_terminated_fork_pool_ends_and_leaves_complete_or_incomplete_data(
    project: Project,
) -> None:
    """`with Pool() as pool` terminates its workers with SIGTERM. A fork of the pytest
    process has no SIGTERM handler (with one, the pool's owner sometimes waited forever):
    what a killed worker had not written marks its tests incomplete, never lost unseen."""
    project.write(
        {
            **POOL_TASKS,
            "tests/conftest.py": """
                import multiprocessing

                import pytest

                from work import tasks


                @pytest.fixture(scope="session")
                def pool():
                    with multiprocessing.get_context("fork").Pool(2) as workers:
                        yield workers
            """,
            "tests/test_pool.py": textwrap.dedent(POOL_TESTS)
            + "\n\ndef submit(pool, function, argument):\n"
            + "    return pool.apply(function, (argument,))\n",
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=4)
    data = project.fragment()
    for nodeid, text in [
        ("tests/test_pool.py::test_map", "return number * number"),
        ("tests/test_pool.py::test_submit", "return number * FACTOR"),
    ]:
        assert depends(project, data, nodeid, "work/tasks.py", text) or incomplete(data, nodeid)


def test_a_pool_kept_by_the_code_under_test_serves_later_tests(project: Project) -> None:
    project.write(
        {
            **POOL_TASKS,
            "work/pool.py": """
                import multiprocessing

                from work import tasks

                _POOL = None


                def run(function, numbers):
                    global _POOL
                    if _POOL is None:
                        context = multiprocessing.get_context("spawn")
                        _POOL = context.Pool(1, initializer=tasks.setup_worker)
                    return _POOL.map(function, numbers)
            """,
            "tests/test_kept.py": """
                from work import pool, tasks


                def test_before():
                    pass


                def test_first():
                    assert pool.run(tasks.square, [2]) == [4]


                def test_second():
                    assert pool.run(tasks.negate, [2]) == [-2]
            """,
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=3)
    data = project.fragment()
    first, second = "tests/test_kept.py::test_first", "tests/test_kept.py::test_second"
    assert depends(project, data, first, "work/tasks.py", "return number * number")
    assert depends(project, data, second, "work/tasks.py", "return -number")
    assert not depends(project, data, first, "work/tasks.py", "return -number")
    # the worker's start-up served both
    assert depends(project, data, second, "work/tasks.py", 'FACTOR = int("10")')
    before = "tests/test_kept.py::test_before"
    assert not depends(project, data, before, "work/tasks.py", 'FACTOR = int("10")')


SERVER = {
    "app/__init__.py": "",
    "app/handlers.py": """
        def answer(path):
            if path == "/time":
                return "noon"
            return "unknown " + path


        def never():
            return "never called"
    """,
    "app/server.py": """
        import sys
        from http.server import BaseHTTPRequestHandler, HTTPServer
        from pathlib import Path

        from app import handlers


        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = handlers.answer(self.path).encode()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass


        def serve(port_file):
            server = HTTPServer(("127.0.0.1", 0), Handler)
            Path(port_file).write_text(str(server.server_address[1]))
            server.serve_forever()


        if __name__ == "__main__":
            serve(sys.argv[1])
    """,
    "tests/conftest.py": """
        import subprocess
        import sys
        import time
        import urllib.request

        import pytest


        @pytest.fixture(scope="session")
        def server(tmp_path_factory):
            port_file = tmp_path_factory.mktemp("server") / "port"
            process = subprocess.Popen([sys.executable, "-m", "app.server", str(port_file)])
            deadline = time.monotonic() + 60
            while not port_file.exists() or not port_file.read_text():
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            base = f"http://127.0.0.1:{port_file.read_text()}"
            yield lambda path: urllib.request.urlopen(base + path).read().decode()
            process.terminate()
            process.wait()
    """,
    "tests/test_server.py": """
        def test_time(server):
            assert server("/time") == "noon"


        def test_other(server):
            assert server("/other") == "unknown /other"


        def test_again(server):
            assert server("/time") == "noon"


        def test_offline():
            pass


        def test_offline_too():
            pass
    """,
}


def test_a_server_of_a_session_fixture_serves_every_test_using_it(project: Project) -> None:
    project.write(SERVER)
    project.commit()
    project.record().assert_outcomes(passed=5)
    data = project.fragment()
    users = {f"tests/test_server.py::{name}" for name in ("test_time", "test_other", "test_again")}
    for nodeid in users:
        assert depends(project, data, nodeid, "app/handlers.py", 'return "noon"'), nodeid
        assert depends(project, data, nodeid, "app/server.py", "server.serve_forever()")
        assert not incomplete(data, nodeid)
    offline = "tests/test_server.py::test_offline"
    assert not depends(project, data, offline, "app/handlers.py", 'return "noon"')
    assert plan_after_change(project.path, "app/handlers.py", '"noon"', '"midday"') == users


def test_grandchildren_started_by_a_shell_script_record_for_the_test(project: Project) -> None:
    project.write(
        {
            "chain/__init__.py": "",
            "chain/middle.py": """
                import subprocess
                import sys

                code = "from chain import leaf; leaf.run()"
                subprocess.run([sys.executable, "-c", code], check=True)
            """,
            "chain/leaf.py": """
                def run():
                    print("leaf ran")


                def unused():
                    print("never")
            """,
            "scripts/run.sh": 'exec "$1" -m chain.middle\n',
            "tests/test_chain.py": """
                import subprocess
                import sys


                def test_script():
                    run = subprocess.run(
                        ["sh", "scripts/run.sh", sys.executable], capture_output=True, text=True
                    )
                    assert run.stdout == "leaf ran\\n", run.stderr


                def test_plain():
                    pass
            """,
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=2)
    data = project.fragment()
    script = "tests/test_chain.py::test_script"
    assert depends(project, data, script, "chain/leaf.py", 'print("leaf ran")')
    assert depends(project, data, script, "chain/middle.py", "subprocess.run(")
    assert not depends(project, data, script, "chain/leaf.py", 'print("never")')
    assert not depends(
        project, data, "tests/test_chain.py::test_plain", "chain/leaf.py", "leaf ran"
    )


ENDINGS = {
    "ending/__init__.py": "",
    "ending/work.py": """
        import os
        import sys
        import time
        from pathlib import Path


        def prepare():
            return "prepared"


        def after_kill():
            return "never reached"


        def main(how, ready):
            prepare()
            if how == "exit":
                os._exit(0)
            Path(ready).write_text("ready")
            time.sleep(600)
            after_kill()


        if __name__ == "__main__":
            main(*sys.argv[1:])
    """,
    "tests/test_endings.py": """
        import signal
        import subprocess
        import sys
        import time


        def test_os_exit():
            subprocess.run([sys.executable, "-m", "ending.work", "exit", "-"], check=True)


        def test_sigkill(tmp_path):
            ready = tmp_path / "ready"
            command = [sys.executable, "-m", "ending.work", "kill", str(ready)]
            process = subprocess.Popen(command)
            deadline = time.monotonic() + 60
            while not ready.exists():
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            process.send_signal(signal.SIGKILL)
            assert process.wait() == -signal.SIGKILL


        def test_plain():
            pass
    """,
}


@pytest.mark.parametrize("collector", COLLECTORS)
def test_children_ending_without_clean_up(project: Project, collector: str) -> None:
    """os._exit still records; SIGKILL records with sys.monitoring, or marks incomplete."""
    project.write(ENDINGS)
    project.commit()
    project.record(f"--selector-collector={collector}").assert_outcomes(passed=3)
    data = project.fragment()
    exited, killed = "tests/test_endings.py::test_os_exit", "tests/test_endings.py::test_sigkill"
    assert depends(project, data, exited, "ending/work.py", 'return "prepared"')
    assert not incomplete(data, exited)
    assert not depends(project, data, killed, "ending/work.py", 'return "never reached"')
    if collector == "monitoring":
        assert depends(project, data, killed, "ending/work.py", 'return "prepared"')
        assert not incomplete(data, killed)
    else:
        assert incomplete(data, killed)
    assert not incomplete(data, "tests/test_endings.py::test_plain")


def test_a_test_with_incomplete_child_data_is_selected_by_every_change(project: Project) -> None:
    project.write({**ENDINGS, "docs/notes.md": "notes\n"})
    project.commit()
    result = project.record("--selector-collector=coverage")
    result.stdout.fnmatch_lines(["selector: 1 child processes did not record all they ran*"])
    selected = plan_after_change(project.path, "docs/notes.md", "notes", "more notes")
    assert selected == {"tests/test_endings.py::test_sigkill"}


def test_children_that_cannot_record_make_their_test_incomplete(project: Project) -> None:
    project.write(
        {
            **CLI,
            "tests/test_environments.py": """
                import os
                import subprocess
                import sys


                def run(*options, env=None):
                    command = [sys.executable, *options, "-m", "mytool", "hi"]
                    return subprocess.run(command, capture_output=True, text=True, env=env)


                def test_isolated():
                    assert run("-I").returncode in (0, 1)


                def test_own_environment():
                    assert run(env={"PATH": os.environ["PATH"]}).stdout == "HI!\\n"


                def test_plain():
                    assert run().stdout == "HI!\\n"
            """,
        }
    )
    project.commit()
    project.record().stdout.fnmatch_lines(["*test_isolated*ignores PYTHONPATH or sitecustomize*"])
    data = project.fragment()
    assert incomplete(data, "tests/test_environments.py::test_isolated")
    for name in ("test_own_environment", "test_plain"):
        nodeid = f"tests/test_environments.py::{name}"
        assert not incomplete(data, nodeid)
        assert depends(project, data, nodeid, "mytool/text.py", 'return words.upper() + "!"')


def test_a_process_left_running_belongs_to_the_tests_it_outlives(project: Project) -> None:
    project.write(
        {
            "daemon/__init__.py": "",
            "daemon/serve.py": """
                import sys


                def double(number):
                    return 2 * number


                for line in sys.stdin:
                    print(double(int(line)), flush=True)
            """,
            "tests/test_daemon.py": """
                import subprocess
                import sys

                PROCESS = []


                def test_before():
                    pass


                def test_start():
                    command = [sys.executable, "-m", "daemon.serve"]
                    PROCESS.append(
                        subprocess.Popen(
                            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
                        )
                    )


                def test_use():
                    process = PROCESS[0]
                    process.stdin.write("21\\n")
                    process.stdin.flush()
                    assert process.stdout.readline() == "42\\n"


                def test_stop():
                    PROCESS[0].stdin.close()
                    PROCESS[0].wait()


                def test_after():
                    pass
            """,
        }
    )
    project.commit()
    project.record().assert_outcomes(passed=5)
    data = project.fragment()
    for name in ("test_start", "test_use", "test_stop"):
        nodeid = f"tests/test_daemon.py::{name}"
        assert depends(project, data, nodeid, "daemon/serve.py", "return 2 * number"), nodeid
    for name in ("test_before", "test_after"):
        nodeid = f"tests/test_daemon.py::{name}"
        assert not depends(project, data, nodeid, "daemon/serve.py", "return 2 * number")


def test_without_recording_children_see_nothing_of_selector(project: Project) -> None:
    project.write(
        {
            "tests/test_clean.py": """
                import os
                import subprocess
                import sys

                CHECK = (
                    "import os, sys; "
                    "print(sorted(name for name in sys.modules if name.startswith('selector'))); "
                    "print(sorted(name for name in os.environ if name.startswith('SELECTOR')))"
                )


                def test_child():
                    run = subprocess.run(
                        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True
                    )
                    assert run.stdout == "[]\\n[]\\n"
                    assert "_bootstrap" not in os.environ.get("PYTHONPATH", "")
            """,
        }
    )
    project.commit()
    project.pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("started", "ended", "complete"),
    [(False, False, True), (True, False, False), (True, True, True)],
    ids=["killed-while-setting-up", "killed-while-running", "ended"],
)
def test_a_journal_lacks_lines_only_if_its_child_ran_its_own_code(
    tmp_path: Path, started: bool, ended: bool, complete: bool
) -> None:
    # coverage's tracer keeps lines in memory: a child killed after it started running its
    # own code (a pool worker's initializer, a task) loses them; one killed while selector
    # still set it up (a pool terminated right after forking it) had nothing to lose.
    writer = JournalWriter.create(str(tmp_path), "token", "test:t.py::t", write_through=False)
    if started:
        writer.started()
    if ended:
        writer.end()
    journal = read_journal(writer.path)
    assert journal is not None
    assert journal.complete is complete


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("signum", ["SIGTERM", "flush"])
def test_a_signal_handler_that_cannot_write_the_journal_changes_nothing_else(signum: str) -> None:
    """SIGTERM still kills the child (a pool worker that survived `Pool.terminate()` hung its
    pool's owner), and a flush request raises nothing into the code it interrupts."""
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from selector import child, journal

        def unwritable(timeout=-1):
            raise RuntimeError("the journal cannot be written")

        child._finish = unwritable
        child._handle_signals()
        signum = signal.SIGTERM if {signum!r} == "SIGTERM" else journal.flush_signal()
        os.kill(os.getpid(), signum)
        time.sleep(0.1)
        print("went on")
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    if signum == "SIGTERM":
        assert completed.returncode == -signal.SIGTERM, completed
    else:
        assert (completed.returncode, completed.stdout) == (0, "went on\n"), completed
