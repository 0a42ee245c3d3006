"""Pytest fixtures for a real git smart-HTTP server on loopback (see `tests.support.gitserver`).

Use them from any suite with `pytest_plugins = ["tests.support.git_fixtures"]` in the root conftest, or
by importing the fixture names into a conftest. Tests that use them should carry `@pytest.mark.git`.

- `git_server`: a started `GitServer` serving bare repositories under the test's tmp_path; stopped after
  the test (hanging requests are released).
- `loopback_git_policy`: `GitPolicy(allow_insecure_loopback=True, clone_timeout_seconds=20)`, the only
  kind of policy that may reach the server. Production code never builds one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.intake.git import GitPolicy
from tests.support.gitserver import GitServer


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    """A started `GitServer` serving bare repositories under tmp_path."""
    with GitServer(tmp_path / "git-server") as server:
        yield server


@pytest.fixture
def loopback_git_policy() -> GitPolicy:
    """The default policy plus `allow_insecure_loopback`, with a short time limit so failures are quick."""
    return GitPolicy(allow_insecure_loopback=True, clone_timeout_seconds=20)
