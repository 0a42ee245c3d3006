"""Grading images with a course team's setup step (Gradescope's setup.sh), built once, never per submission.

`build_setup_image` makes image `reference` from `base_reference`: the setup files are placed in
/autograder/source, `setup_command` runs there as root (no network unless `network=True`, for a
setup that installs from a production registry), and the result is kept under `reference`.
Docker: a container of the base image, committed (and removed). bubblewrap: a copy of the base
root filesystem under the folder `rootfs_dirname(reference)` names, next to the base.

The layout at grading time: /autograder is a link to /box/autograder (the job's tmpfs), so the
grader's files given to a job as `autograder/source/...` are at /autograder/source as Gradescope
expects. What the setup left in /autograder/source is kept in the image at
/opt/microcred/autograder-source, and the box's init links each of its entries into the job's
/box/autograder/source unless the job brought a file of that name: the job sees the course team's
grader files and what the setup built next to them (read-only). What the setup installed elsewhere
(pip packages, /usr/local/bin) is simply part of the image.

Idempotent: an existing image of that reference is kept ("exists"). A failing setup returns
ok=False with its log and leaves no image behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sandbox.contract import BoxFile, rootfs_dirname
from sandbox.select import DEFAULT_ROOTFS

BuildStatus = Literal["built", "exists", "failed"]


@dataclass(frozen=True)
class BuildResult:
    backend: str
    reference: str
    status: BuildStatus
    log: str = ""  # the setup's output (its last megabyte) or why it could not run

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def build_setup_image(
    backend: str,
    base_reference: str,
    reference: str,
    files: Mapping[str, bytes],
    setup_command: Sequence[str],
    *,
    timeout: float,
    network: bool = False,
    rootfs_parent: Path = DEFAULT_ROOTFS.parent,
) -> BuildResult:
    """Build `reference` on `backend` ("docker" or "bwrap"); ValueError for arguments that make no sense.

    `files` are relative to /autograder/source (written executable, as a course team's scripts in
    a zip usually are); `rootfs_parent` is where bubblewrap keeps its root filesystems."""
    if backend not in {"docker", "bwrap"}:
        raise ValueError(f"unknown sandbox backend {backend!r}: use docker or bwrap")
    base_dir, target_dir = rootfs_dirname(base_reference), rootfs_dirname(reference)
    for relative in files:
        BoxFile(relative, b"")  # relative, inside the folder
    if not setup_command or not timeout > 0:
        raise ValueError("a setup needs a command and a positive timeout")
    if backend == "docker":
        from sandbox.docker_backend import DockerRunner

        runner = DockerRunner(base_reference, warm=0)
        try:
            status, log = runner.build_image(
                base_reference, reference, files, setup_command, timeout=timeout, network=network
            )
        finally:
            runner.close()
        return BuildResult(backend, reference, _status(status), log)
    from sandbox.bwrap.build import build_rootfs

    status, log = build_rootfs(
        rootfs_parent / base_dir,
        rootfs_parent / target_dir,
        reference,
        files,
        setup_command,
        timeout=timeout,
        network=network,
    )
    return BuildResult(backend, reference, _status(status), log)


def _status(status: str) -> BuildStatus:
    if status == "built":
        return "built"
    return "exists" if status == "exists" else "failed"
