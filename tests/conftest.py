"""Fixtures shared by the test modules."""

import os
from collections.abc import Iterator

import pytest

from projects import Project

# The pytest runs these tests start (hundreds of them) do not need hypothesis's plugin,
# whose import is most of a bare pytest start-up.
os.environ["PYTEST_ADDOPTS"] = " ".join(
    filter(None, [os.environ.get("PYTEST_ADDOPTS"), "-p no:hypothesispytest"])
)


@pytest.fixture
def project(pytester: pytest.Pytester) -> Iterator[Project]:
    """An empty project in a new git repository."""
    yield Project(pytester)
