"""Fixtures shared by the test modules."""

from collections.abc import Iterator

import pytest

from projects import Project


@pytest.fixture
def project(pytester: pytest.Pytester) -> Iterator[Project]:
    """An empty project in a new git repository."""
    yield Project(pytester)
