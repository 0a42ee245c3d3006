"""The physical limit of a repository grading and its naive peers: one suite run three plain ways.

* `chroot`: the grading root filesystem's own interpreter in a plain `chroot` of a private copy of
  that root (the host's Python is another build and another speed), as root, with no isolation;
* `naive_bwrap`: a fresh bubblewrap box per run with the isolation flags of our bwrap backend
  (setpriv to nobody, every namespace, read-only root, size-capped tmpfs /tmp and /dev/shm, a work
  dir bound at /box, no capabilities, the box's seccomp filter, the job's rlimits), started directly
  from here with no service, no box init and no per-job cgroup around it;
* `naive_docker`: a fresh `docker run --rm` per run from the CLI with the limits of our Docker
  backend (no network, read-only root, tmpfs work dir, /tmp and /dev/shm, nobody, no capabilities,
  no-new-privileges, the project's seccomp profile, pids, memory = memory+swap, one CPU, ulimits),
  the files piped in as a tar on stdin, the way our backend places them.

Each run times the whole command (box set-up, interpreter start, the tests, tear-down) and checks
that pytest passed. Nothing here mounts anything below the shared grading root: the chroot runs in a
copy, so the bubblewrap backend's foreign-mount check is never tripped by a benchmark.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.bwrap.launch import BOX_UID, pipe_holding, rlimits
from sandbox.contract import BASE_ENV, WORKDIR, Limits
from sandbox.seccomp import box_filter, docker_profile
from sandbox.select import DEFAULT_IMAGE, DEFAULT_ROOTFS

PYTEST = ("python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests")
RLIMIT_OPTIONS = {"RLIMIT_CPU": "cpu", "RLIMIT_AS": "as", "RLIMIT_FSIZE": "fsize"}
RLIMIT_OPTIONS |= {"RLIMIT_NOFILE": "nofile", "RLIMIT_CORE": "core", "RLIMIT_NPROC": "nproc"}


@dataclass(frozen=True)
class SuiteFiles:
    """The run's files, by path relative to the work dir (`tests/...`, `submission/...`)."""

    files: Mapping[str, bytes]

    @classmethod
    def from_folders(cls, tests: Path, submission: Path) -> SuiteFiles:
        found: dict[str, bytes] = {}
        for prefix, folder in (("tests", tests), ("submission", submission)):
            for path in sorted(folder.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    found[f"{prefix}/{path.relative_to(folder).as_posix()}"] = path.read_bytes()
        return cls(found)

    def write(self, directory: Path, owner: int | None = None) -> None:
        for relative, content in self.files.items():
            path = directory / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        if owner is not None:
            for path in [directory, *directory.rglob("*")]:
                os.chown(path, owner, owner)

    def tar(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for relative, content in self.files.items():
                info = tarfile.TarInfo(relative)
                info.size, info.mode = len(content), 0o644
                archive.addfile(info, io.BytesIO(content))
        return buffer.getvalue()


def job_env(work: str) -> dict[str, str]:
    """The box's environment (BASE_ENV) with the submission importable, as the harness makes it."""
    return {**BASE_ENV, "PYTHONPATH": f"{work}/submission"}


def grading_root(scratch: Path, *, source: Path = DEFAULT_ROOTFS, image: str = DEFAULT_IMAGE) -> Path:
    """A private copy of the grading root filesystem: the bwrap root when this host has one, else
    the Docker image's filesystem (`docker export`). Made once per benchmark run."""
    root = scratch / "chroot-root"
    if (source / "usr/bin/python3").exists():
        subprocess.run(["cp", "-a", "-x", str(source), str(root)], check=True)
        return root
    root.mkdir(parents=True)
    created = subprocess.run(["docker", "create", image, "true"], check=True, capture_output=True, text=True)
    container = created.stdout.strip()
    try:
        exported = subprocess.Popen(["docker", "export", container], stdout=subprocess.PIPE)
        subprocess.run(["tar", "-x", "-C", str(root)], stdin=exported.stdout, check=True)
        if exported.wait() != 0:
            raise RuntimeError(f"docker export of {image} failed")
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
    return root


def _finish(started: float, result: subprocess.CompletedProcess[bytes], what: str) -> float:
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-3000:].decode(errors="replace")
        raise RuntimeError(f"{what}: the tests did not pass (exit {result.returncode}):\n{output}")
    return elapsed


def chroot_run(root: Path, suite: SuiteFiles) -> float:
    """The tests in the root's own /tmp, run by its interpreter under a plain chroot."""
    work = Path(tempfile.mkdtemp(prefix="suite-", dir=root / "tmp"))
    try:
        suite.write(work)
        inside = "/" + work.relative_to(root).as_posix()
        variables = [f"{name}={value}" for name, value in job_env(inside).items()]
        command = ["chroot", str(root), "/usr/bin/env", "-i", "-C", inside, *variables, *PYTEST]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL)
        return _finish(started, result, "chroot")
    finally:
        shutil.rmtree(work, ignore_errors=True)


class NaiveBwrap:
    """A fresh bubblewrap box per run, our backend's flags, nothing around it."""

    def __init__(self, limits: Limits, scratch: Path, rootfs: Path = DEFAULT_ROOTFS) -> None:
        self.limits = limits
        self.scratch = scratch
        self.rootfs = rootfs
        self.seccomp = box_filter()  # what a shell script would keep in a file: made once
        # bwrap runs as nobody, which must reach each box's work dir below the scratch folder.
        scratch.chmod(0o711)

    def command(self, box_dir: Path, seccomp_fd: int) -> list[str]:
        limits = self.limits
        scratch = str(limits.disk_mb * 1024 * 1024)
        argv = ["prlimit"]
        for resource_id, soft, hard in rlimits(limits, cgroup_enforced=False):
            argv.append(f"--{_rlimit_option(resource_id)}={soft}:{hard}")
        argv += ["--", "setpriv", f"--reuid={BOX_UID}", f"--regid={BOX_UID}", "--clear-groups"]
        argv += ["--inh-caps=-all", "--bounding-set=-all"]
        argv += ["bwrap", "--unshare-all", "--unshare-user", "--disable-userns"]
        argv += ["--uid", str(BOX_UID), "--gid", str(BOX_UID), "--die-with-parent", "--new-session"]
        argv += ["--clearenv", "--cap-drop", "ALL", "--ro-bind", str(self.rootfs), "/"]
        argv += ["--proc", "/proc", "--dev", "/dev"]
        argv += ["--size", scratch, "--tmpfs", "/tmp", "--size", scratch, "--tmpfs", "/dev/shm"]
        argv += ["--bind", str(box_dir), WORKDIR, "--chdir", WORKDIR, "--hostname", "box"]
        for name, value in job_env(WORKDIR).items():
            argv += ["--setenv", name, value]
        return [*argv, "--seccomp", str(seccomp_fd), "--", *PYTEST]

    def run(self, suite: SuiteFiles) -> float:
        box_dir = Path(tempfile.mkdtemp(prefix="naive-bwrap-", dir=self.scratch))
        try:
            started = time.perf_counter()
            suite.write(box_dir, owner=BOX_UID)
            seccomp_fd = pipe_holding(self.seccomp)
            try:
                result = subprocess.run(
                    self.command(box_dir, seccomp_fd),
                    capture_output=True,
                    stdin=subprocess.DEVNULL,
                    pass_fds=(seccomp_fd,),
                    timeout=self.limits.wall_seconds,
                )
            finally:
                os.close(seccomp_fd)
            return _finish(started, result, "naive bwrap box")
        finally:
            shutil.rmtree(box_dir, ignore_errors=True)


class NaiveDocker:
    """A fresh `docker run --rm` per run, our Docker backend's limits, nothing around it."""

    def __init__(self, limits: Limits, scratch: Path, image: str = DEFAULT_IMAGE) -> None:
        self.limits = limits
        self.image = image
        self.profile = scratch / "seccomp-profile.json"
        self.profile.write_text(docker_profile())

    def command(self) -> list[str]:
        limits = self.limits
        scratch = f"rw,exec,nosuid,nodev,size={limits.disk_mb}m"
        file_size = limits.file_size_mb * 1024 * 1024
        argv = ["docker", "run", "--rm", "-i", "--network", "none", "--read-only"]
        argv += ["--tmpfs", f"{WORKDIR}:{scratch},mode=0700,uid={BOX_UID},gid={BOX_UID}"]
        argv += ["--tmpfs", f"/tmp:{scratch},mode=1777", "--shm-size", f"{limits.disk_mb}m"]
        argv += ["--user", f"{BOX_UID}:{BOX_UID}", "--workdir", WORKDIR, "--cap-drop", "ALL"]
        argv += ["--security-opt", "no-new-privileges", "--security-opt", f"seccomp={self.profile}"]
        argv += ["--pids-limit", str(limits.pids), "--memory", f"{limits.memory_mb}m"]
        argv += ["--memory-swap", f"{limits.memory_mb}m", "--cpus", "1", "--ipc", "private"]
        argv += ["--ulimit", f"nofile={limits.nofile}:{limits.nofile}"]
        argv += ["--ulimit", f"fsize={file_size}:{file_size}", "--ulimit", "core=0:0"]
        argv += ["--ulimit", f"cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}"]
        argv += ["--log-opt", "max-size=64k"]
        for name, value in job_env(WORKDIR).items():
            argv += ["--env", f"{name}={value}"]
        script = f"tar -x -f - -C {WORKDIR} && exec {' '.join(PYTEST)}"
        return [*argv, self.image, "sh", "-c", script]

    def run(self, suite: SuiteFiles) -> float:
        started = time.perf_counter()
        result = subprocess.run(
            self.command(), input=suite.tar(), capture_output=True, timeout=self.limits.wall_seconds + 30
        )
        return _finish(started, result, "naive docker run")


def _rlimit_option(resource_id: int) -> str:
    import resource

    for name, option in RLIMIT_OPTIONS.items():
        if getattr(resource, name) == resource_id:
            return option
    raise ValueError(f"no prlimit option for resource {resource_id}")


__all__: Sequence[str] = ["NaiveBwrap", "NaiveDocker", "SuiteFiles", "chroot_run", "grading_root"]
