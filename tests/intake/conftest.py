"""Fixtures for intake tests: a real git smart-HTTP server on loopback and the policy that may reach it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.intake.git import GitPolicy
from tests.support.gitserver import GitServer


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    """A started `GitServer` (tests/support/gitserver.py) serving bare repositories under tmp_path."""
    with GitServer(tmp_path / "git-server") as server:
        yield server


@pytest.fixture
def loopback_git_policy() -> GitPolicy:
    """The default policy plus `allow_insecure_loopback`, with a short time limit so failures are quick."""
    return GitPolicy(allow_insecure_loopback=True, clone_timeout_seconds=20)
