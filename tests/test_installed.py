"""A project installed non-editable (`pip install .`, a wheel, a tox environment).

Every test installs a real project with pip (no index, no build isolation: fast and
offline), records with real pytest runs that import the installed copy, changes the
repository and checks the plan against the tests that really fail.
"""

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from sample import plan, upload, write
from stored_maps import rewrite_only_map

from selector.installed import OutsideInstall, find_copies
from selector.mapdb import MapData, read_map
from selector.store import LocalStore

from projects import git

SRC_LAYOUT = {
    ".gitignore": "/build/\n*.egg-info/\n/dist/\n.selector/\n",
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "shapes"
        version = "1.0"

        [tool.setuptools.packages.find]
        where = ["src"]

        [tool.setuptools.package-data]
        shapes = ["*.json"]
    """,
    "src/shapes/__init__.py": "from shapes.area import square\n",
    "src/shapes/area.py": """
        def square(side):
            return side * side


        def rectangle(width, height):
            return width * height
    """,
    "src/shapes/shapes.json": '{"sides": 4}\n',
    "tests/test_area.py": """
        import json
        import subprocess
        import sys
        from importlib import resources

        import shapes
        from shapes.area import rectangle


        def test_square():
            assert shapes.square(3) == 9


        def test_rectangle():
            assert rectangle(2, 3) == 6


        def test_sides():
            data = resources.files("shapes").joinpath("shapes.json").read_text()
            assert json.loads(data)["sides"] == 4


        def test_rectangle_in_a_child():
            code = "from shapes.area import rectangle; assert rectangle(2, 3) == 6"
            subprocess.run([sys.executable, "-c", code], check=True)
    """,
}

# A namespace package (no acme/__init__.py) in the flat layout: the package folder at the root.
FLAT_NAMESPACE = {
    ".gitignore": "/build/\n*.egg-info/\n/.tox/\n.selector/\n",
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "acme-tools"
        version = "1.0"

        [tool.setuptools.packages.find]
        include = ["acme*"]
        namespaces = true
    """,
    "acme/tools/__init__.py": "",
    "acme/tools/text.py": """
        def shout(text):
            return text.upper() + "!"


        def whisper(text):
            return text.lower()
    """,
    "tests/test_text.py": """
        from acme.tools.text import shout, whisper


        def test_shout():
            assert shout("hi") == "HI!"


        def test_whisper():
            assert whisper("HI") == "hi"
    """,
}


def pip(*args: str) -> None:
    """Run pip offline; the project builds with the setuptools of this environment."""
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
    completed = subprocess.run(
        [*command, "--no-build-isolation", *args], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr


def pytest_run(
    root: Path, *args: str, python: str = sys.executable, site: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """pytest in `root` with `site` first on the path, and not the checkout (`-P`).

    `python -m` would put the working folder, the checkout, first on sys.path.
    """
    env = {**os.environ, "PYTHONPATH": str(site)} if site is not None else dict(os.environ)
    return subprocess.run(
        [python, "-P", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def new_project(root: Path, files: dict[str, str]) -> None:
    root.mkdir()
    write(root, files)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "project")


def fragment(root: Path) -> MapData:
    (found,) = (root / ".selector" / "fragments").glob("*.sqlite")
    return read_map(found)


def change(root: Path, path: str, old: str, new: str) -> None:
    """Commit a change of `path` on the branch `feature`."""
    git(root, "checkout", "-q", "-B", "feature", "main")
    target = root / path
    text = target.read_text()
    assert old in text
    target.write_text(text.replace(old, new, 1))
    git(root, "commit", "-q", "-a", "-m", "change")


def failed(run: subprocess.CompletedProcess[str]) -> set[str]:
    return set(re.findall(r"^FAILED (\S+)", run.stdout, re.MULTILINE))


def test_a_wheel_installed_from_the_src_layout_records_the_repository_files(
    tmp_path: Path,
) -> None:
    root, site = tmp_path / "project", tmp_path / "site"
    new_project(root, SRC_LAYOUT)
    wheel_options = [
        "--no-index",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        str(tmp_path / "dist"),
    ]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", *wheel_options, str(root)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    pip("--target", str(site), str(wheel))

    recorded = pytest_run(root, "--selector-record", site=site)

    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert "repository files ran from installed copies" in recorded.stdout
    data = fragment(root)
    assert set(data.files) == {
        "src/shapes/__init__.py",
        "src/shapes/area.py",
        "src/shapes/shapes.json",
        "tests/test_area.py",
    }
    assert "src/shapes/shapes.json" in data.contexts["test", "tests/test_area.py::test_sides"].reads
    assert data.meta.outside == ()
    upload(root)

    change(root, "src/shapes/area.py", "width * height", "width + height")
    document = plan(root, "--base", "main", "--no-working-tree")

    assert not document["run_all"], document["reasons"]
    assert document["selected"] == [
        "tests/test_area.py::test_rectangle",
        "tests/test_area.py::test_rectangle_in_a_child",
    ]
    change(root, "src/shapes/shapes.json", "4", "5")
    assert plan(root, "--base", "main", "--no-working-tree")["selected"] == [
        "tests/test_area.py::test_sides"
    ]


def test_a_flat_namespace_package_in_a_tox_like_environment_inside_the_repository(
    tmp_path: Path,
) -> None:
    """The environment is the interpreter's own prefix under the root, as tox makes it."""
    root = tmp_path / "project"
    new_project(root, FLAT_NAMESPACE)
    environment = root / ".tox" / "py"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(environment)], check=True)
    python = str(environment / "bin" / "python")
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # pytest and selector come from this environment, as tox would install them.
    ours = sysconfig.get_path("purelib")
    (site / "outer.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    pip("--target", str(site), "--upgrade", str(root))

    recorded = pytest_run(root, "--selector-record", python=python)

    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    data = fragment(root)
    assert set(data.files) == {
        "acme/tools/__init__.py",
        "acme/tools/text.py",
        "tests/test_text.py",
    }
    upload(root)

    change(root, "acme/tools/text.py", "text.lower()", "text.lower() + '.'")
    selected = plan(root, "--base", "main", "--no-working-tree")["selected"]
    pip("--target", str(site), "--upgrade", str(root))
    broken = failed(pytest_run(root, python=python))

    assert broken == {"tests/test_text.py::test_whisper"}
    assert selected == ["tests/test_text.py::test_whisper"]


def test_a_stale_install_runs_every_test_for_changes_to_its_package(tmp_path: Path) -> None:
    root, site = tmp_path / "project", tmp_path / "site"
    new_project(root, SRC_LAYOUT)
    pip("--target", str(site), str(root))
    change(root, "src/shapes/area.py", "side * side", "side**2")  # not installed
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--ff-only", "feature")

    recorded = pytest_run(root, "--selector-record", site=site)

    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert f"the tests imported shapes from {site.resolve()}, an installed copy" in recorded.stdout
    assert "pip install -e ." in recorded.stdout
    outside = fragment(root).meta.outside
    assert [(item.distribution, item.sources) for item in outside] == [("shapes", ("src/shapes/",))]
    uploaded = subprocess.run(
        [sys.executable, "-m", "selector.cli", "upload-map"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert uploaded.returncode == 0, uploaded.stderr
    assert "warning: the tests imported shapes from" in uploaded.stderr
    stats = subprocess.run(
        [sys.executable, "-m", "selector.cli", "stats"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert (
        f"imported from a stale installed copy: shapes at {site.resolve()}: changes to "
        "src/shapes/ run every test"
    ) in stats.stdout

    change(root, "src/shapes/area.py", "width * height", "width + height")
    document = plan(root, "--base", "main", "--no-working-tree")
    assert document["run_all"]
    assert "the recorded run imported shapes from an installed copy at" in document["reasons"][0]
    change(root, "tests/test_area.py", "== 6", "== 6.0")
    assert not plan(root, "--base", "main", "--no-working-tree")["run_all"]


def test_a_planned_run_that_imports_a_stale_install_warns(tmp_path: Path) -> None:
    root, site = tmp_path / "project", tmp_path / "site"
    new_project(root, SRC_LAYOUT)
    pip("--target", str(site), str(root))
    assert pytest_run(root, "--selector-record", site=site).returncode == 0
    upload(root)
    change(root, "src/shapes/area.py", "width * height", "width + height")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan(root, "--base", "main", "--no-working-tree")))

    planned = pytest_run(root, f"--selector-plan={plan_file}", site=site)

    assert planned.returncode == 0, planned.stdout  # the old code passes: hence the warning
    assert (
        f"selector: WARNING: the tests imported shapes from {site.resolve()}, an installed "
        "copy that differs from the working tree (src/shapes/): they tested the old code"
    ) in planned.stdout.replace("\n", "")
    pip("--target", str(site), "--upgrade", str(root))
    fresh = pytest_run(root, f"--selector-plan={plan_file}", site=site)
    assert failed(fresh) == {
        "tests/test_area.py::test_rectangle",
        "tests/test_area.py::test_rectangle_in_a_child",
    }
    assert "WARNING" not in fresh.stdout


def test_a_stale_install_that_only_a_child_process_imports_is_reported(tmp_path: Path) -> None:
    root, site = tmp_path / "project", tmp_path / "site"
    test_file = """
        import subprocess
        import sys


        def test_rectangle_in_a_child():
            code = "from shapes.area import rectangle; assert rectangle(2, 3) == 6"
            subprocess.run([sys.executable, "-c", code], check=True)
    """
    new_project(root, {**SRC_LAYOUT, "tests/test_area.py": test_file})
    pip("--target", str(site), str(root))
    change(root, "src/shapes/area.py", "side * side", "side**2")  # not installed
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--ff-only", "feature")

    recorded = pytest_run(root, "--selector-record", site=site)

    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    assert "recorded 1 child processes" in recorded.stdout
    assert f"the tests imported shapes from {site.resolve()}, an installed copy" in recorded.stdout
    assert [item.distribution for item in fragment(root).meta.outside] == ["shapes"]


# -- which distributions are the repository's (installed by hand: dist-info and RECORD) ---

REPOSITORY = {"src/shapes/__init__.py": "", "src/shapes/area.py": "def square(side):\n    pass\n"}


def fake_install(
    site: Path, name: str, files: dict[str, str], direct_url: str | None = None
) -> None:
    """What pip leaves in site-packages: the files, and a dist-info folder that lists them."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps({"url": direct_url, "dir_info": {}}))
    write(site, files)
    listed = [*files, f"{info.name}/METADATA", f"{info.name}/RECORD"]
    (info / "RECORD").write_text("".join(f"{path},,\n" for path in listed))


def copies_of(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, **install: Any) -> Any:
    root, site = tmp_path / "project", tmp_path / "site"
    write(root, REPOSITORY)
    fake_install(site, name, **install)
    monkeypatch.syspath_prepend(str(site))
    table = find_copies(root, list(REPOSITORY))
    inside = str(site.resolve())
    copies = {path.removeprefix(inside): repo for path, repo in table.copies.items()}
    stale = {path.removeprefix(inside): item.distribution for path, item in table.stale.items()}
    return copies, stale


def test_a_distribution_with_a_file_equal_to_the_repository_s_is_the_repository_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"shapes/__init__.py": "", "shapes/area.py": REPOSITORY["src/shapes/area.py"]}
    assert copies_of(tmp_path, monkeypatch, "shapes", files=files) == (
        {"/shapes/__init__.py": "src/shapes/__init__.py", "/shapes/area.py": "src/shapes/area.py"},
        {},
    )


def test_a_third_party_distribution_with_the_same_paths_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only an empty __init__.py is equal: that proves nothing."""
    files = {"shapes/__init__.py": "", "shapes/area.py": "AREA = 1\n"}
    assert copies_of(tmp_path, monkeypatch, "other-shapes", files=files) == ({}, {})


def test_a_distribution_named_as_the_project_is_stale_where_it_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installed from another checkout, or from an index: its name says whose it is."""
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "pyproject.toml").write_text('[project]\nname = "Shapes"\n')
    files = {"shapes/__init__.py": "", "shapes/area.py": "AREA = 1\n"}
    assert copies_of(tmp_path, monkeypatch, "shapes", files=files) == (
        {"/shapes/__init__.py": "src/shapes/__init__.py"},
        {"/shapes/area.py": "shapes"},
    )


def test_a_distribution_that_pip_installed_from_the_repository_is_stale_where_it_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"shapes/area.py": "AREA = 1\n"}
    url = (tmp_path / "project" / "dist" / "x-1.0.whl").as_uri()
    assert copies_of(tmp_path, monkeypatch, "x", files=files, direct_url=url) == (
        {},
        {"/shapes/area.py": "x"},
    )


def test_a_distribution_installed_from_another_folder_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"shapes/area.py": "AREA = 1\n"}
    url = (tmp_path / "elsewhere").as_uri()
    assert copies_of(tmp_path, monkeypatch, "x", files=files, direct_url=url) == ({}, {})


def test_a_map_carried_forward_keeps_the_stale_installs_of_its_base(tmp_path: Path) -> None:
    """The carried tests' lines were recorded as blind to the stale copy as before."""
    root, site = tmp_path / "project", tmp_path / "site"
    new_project(root, SRC_LAYOUT)
    pip("--target", str(site), str(root))
    assert pytest_run(root, "--selector-record", site=site).returncode == 0
    upload(root)
    stale = [{"distribution": "shapes", "location": "/old", "sources": ["src/shapes/"]}]
    rewrite_only_map(
        root / ".selector" / "maps",
        f"INSERT INTO meta (key, value) VALUES ('installed_outside', '{json.dumps(stale)}')",
    )
    for fragment_file in (root / ".selector" / "fragments").glob("*.sqlite"):
        fragment_file.unlink()
    change(root, "tests/test_area.py", "== 9", "== 9.0")
    git(root, "checkout", "-q", "main")
    git(root, "merge", "-q", "--ff-only", "feature")
    assert pytest_run(root, "--selector-record", "-k", "square", site=site).returncode == 0

    upload(root)

    store = LocalStore(root / ".selector" / "maps")
    head = git(root, "rev-parse", "HEAD")
    (stored,) = store.maps(commit=head)
    carried = read_map(store.fetch(head, stored.variant))
    assert len(carried.tests) == 4
    assert carried.meta.outside == (OutsideInstall("shapes", "/old", ("src/shapes/",)),)
