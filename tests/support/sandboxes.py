"""The real sandbox backends for tests: dockerd started and the grading image built offline, or a failure."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sandbox.contract import Runner
from sandbox.select import DEFAULT_IMAGE, DEFAULT_ROOTFS, check_bwrap, check_docker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def sandbox_ready() -> None:
    """Start dockerd and build the image if needed; a backend that cannot work fails the suite."""
    for script in ("start-dockerd.sh", "build-sandbox-image.sh"):
        result = subprocess.run([str(ROOT / "scripts" / script)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"scripts/{script} failed:\n{result.stdout}\n{result.stderr}")
    for check in (check_bwrap(DEFAULT_ROOTFS), check_docker(DEFAULT_IMAGE)):
        if not check.ok:
            pytest.fail(f"sandbox backend {check.backend} does not work: {check.detail}; fix: {check.fix}")


def make_runner(name: str) -> Runner:
    if name == "bwrap":
        from sandbox.bwrap import BwrapRunner

        return BwrapRunner(DEFAULT_ROOTFS)
    from sandbox.docker_backend import DockerRunner

    return DockerRunner(DEFAULT_IMAGE)
