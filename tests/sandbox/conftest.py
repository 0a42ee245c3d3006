"""Fixtures for the sandbox suites: both real backends, with the grading image built offline.

A backend that cannot work here fails the suite with the fix; nothing is skipped, so CI cannot pass
without having attacked both boxes. One runner per backend lives for the whole session, as it does
in a worker (the Docker runner keeps warm containers), and is closed at the end.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.contract import JobSpec, Limits, Runner, RunResult
from sandbox.docker_backend import DockerRunner
from tests.support.sandboxes import make_runner, sandbox_ready

__all__ = ["make_runner", "sandbox_ready"]

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = [pytest.param("bwrap", marks=pytest.mark.bwrap), pytest.param("docker", marks=pytest.mark.docker)]


@pytest.fixture(scope="session")
def runners(sandbox_ready: None) -> Iterator[dict[str, Runner]]:
    made = {"bwrap": make_runner("bwrap"), "docker": make_runner("docker")}
    yield made
    docker_runner = made["docker"]
    assert isinstance(docker_runner, DockerRunner)
    docker_runner.close()


@pytest.fixture(params=BACKENDS)
def runner(request: pytest.FixtureRequest, runners: dict[str, Runner]) -> Runner:
    return runners[request.param]


@pytest.fixture
def marker() -> str:
    """A string unique to this test, put in a job's argv so its processes can be found on the host
    whatever else (other suites, other workers) runs as nobody at the same time."""
    return f"mcmark{uuid.uuid4().hex[:12]}"


def host_processes_with(marker: str) -> list[str]:
    """Host processes whose command line carries `marker` (zombies are dead, only unreaped)."""
    result = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True, check=True)
    return [line for line in result.stdout.splitlines() if marker in line and " Z" not in line]


def shell(runner: Runner, script: str, **limits: Any) -> RunResult:
    return runner.run(JobSpec(command=("sh", "-c", script), limits=Limits(**limits)))


def python(runner: Runner, code: str, *args: str, **limits: Any) -> RunResult:
    return runner.run(JobSpec(command=("python3", "-c", code, *args), limits=Limits(**limits)))
