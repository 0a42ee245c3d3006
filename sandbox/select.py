"""Choosing a backend: `docker`, `bwrap` or `auto` (bubblewrap where it works, else Docker).

A backend is only chosen after a probe proves it works on this host; with none working, callers get
`SandboxUnavailable` with the fix. Untrusted code never runs unsandboxed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sandbox.contract import Runner
from sandbox.errors import SandboxUnavailable

DEFAULT_IMAGE = "microcred-python:bookworm"
DEFAULT_ROOTFS = Path("/var/lib/microcred/rootfs/python-bookworm")
BUILD_HINT = "run scripts/build-sandbox-image.sh (debootstrap, then docker import) as root"


@dataclass(frozen=True)
class Check:
    backend: str
    ok: bool
    detail: str
    fix: str = ""


def check_bwrap(rootfs: Path = DEFAULT_ROOTFS) -> Check:
    from sandbox.bwrap import BwrapRunner
    from sandbox.bwrap.mounts import foreign_mounts_fix, foreign_mounts_problem

    if shutil.which("bwrap") is None:
        return Check("bwrap", False, "bwrap is not installed", "apt-get install bubblewrap")
    if not (rootfs / "usr/bin/python3").exists():
        return Check("bwrap", False, f"no grading root filesystem at {rootfs}", BUILD_HINT)
    if not (rootfs / "box").is_dir():
        return Check("bwrap", False, f"{rootfs} has no /box mount point", BUILD_HINT)
    if not (rootfs / "usr/bin/perl").exists():
        return Check("bwrap", False, f"{rootfs} has no perl for the box's init", BUILD_HINT)
    problem = foreign_mounts_problem(rootfs)
    if problem is not None:
        return Check("bwrap", False, problem, foreign_mounts_fix(rootfs))
    from sandbox.seccomp import SeccompUnavailable, box_filter

    try:
        box_filter()
    except SeccompUnavailable as exc:
        return Check("bwrap", False, f"no seccomp filter: {exc}", "apt-get install libseccomp2")
    from sandbox.contract import JobSpec, Limits, Outcome

    result = BwrapRunner(rootfs).run(JobSpec(command=("true",), limits=Limits(wall_seconds=10)))
    if result.outcome is not Outcome.COMPLETED or result.exit_code != 0:
        detail = result.error or result.stderr.decode(errors="replace").strip() or result.outcome.value
        fix = (
            "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; on Ubuntu 24.04 "
            "install the bwrap-userns-restrict AppArmor profile)"
        )
        return Check("bwrap", False, f"a trivial job failed: {detail}", fix)
    return Check("bwrap", True, f"namespaces and seccomp work; root filesystem {rootfs}")


def check_docker(image: str = DEFAULT_IMAGE) -> Check:
    try:
        from sandbox.docker_backend import probe
    except ImportError:
        return Check("docker", False, "the docker Python SDK is missing", "pip install docker")
    problem = probe(image)
    if problem is not None:
        detail, fix = problem
        return Check("docker", False, detail, fix)
    return Check("docker", True, f"daemon answers; image {image}")


def select_runner(
    backend: str = "auto",
    *,
    image: str = DEFAULT_IMAGE,
    rootfs: Path = DEFAULT_ROOTFS,
    docker_warm_pool: int = 2,
) -> Runner:
    """A working runner for `backend`; `SandboxUnavailable` (with the fix) when there is none.
    Docker keeps `docker_warm_pool` started containers ready per image and set of limits."""
    if backend not in {"auto", "docker", "bwrap"}:
        raise SandboxUnavailable(f"unknown sandbox backend {backend!r}", "use auto, docker or bwrap")
    checks: list[Check] = []
    if backend in {"auto", "bwrap"}:
        check = check_bwrap(rootfs)
        if check.ok:
            from sandbox.bwrap import BwrapRunner

            return BwrapRunner(rootfs)
        checks.append(check)
    if backend in {"auto", "docker"}:
        check = check_docker(image)
        if check.ok:
            from sandbox.docker_backend import DockerRunner

            return DockerRunner(image, warm=docker_warm_pool)
        checks.append(check)
    reasons = "; ".join(f"{c.backend}: {c.detail}" for c in checks)
    fixes = "; ".join(f"{c.backend}: {c.fix}" for c in checks if c.fix)
    raise SandboxUnavailable(f"no working sandbox backend ({reasons})", fixes)


def cgroup_note() -> str | None:
    from sandbox.bwrap import cgroup_support

    return cgroup_support()
