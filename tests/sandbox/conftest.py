"""Fixtures for the sandbox suites: every test runs against both real backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.contract import Runner
from tests.support.sandboxes import make_runner, sandbox_ready

__all__ = ["make_runner", "sandbox_ready"]


@pytest.fixture(params=["bwrap", "docker"])
def runner(request: pytest.FixtureRequest, sandbox_ready: None) -> Iterator[Runner]:
    request.applymarker(getattr(pytest.mark, request.param))
    yield make_runner(request.param)
