"""`BwrapRunner`: one job, from a fresh work dir to its verdict, on the bubblewrap backend.

The runner checks the root filesystem (present, no foreign mount below it), makes the job's work
dir (a size-capped tmpfs when we run as root) and cgroups, launches the box (sandbox.bwrap.launch),
confines it before it may start, supervises it (sandbox.bwrap.supervise), reaps it
(sandbox.bwrap.reaping), and hands what it saw to `decide_outcome`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from sandbox.boxinit import parse_status_pipe
from sandbox.bwrap.cgroups import CgroupPool, Cgroups, join_cgroups
from sandbox.bwrap.launch import bwrap_command, mount_tmpfs, pipe_holding, place_files, read_box_pid
from sandbox.bwrap.mounts import MOUNTS, foreign_mounts_problem
from sandbox.bwrap.reaping import (
    ADOPTION,
    DEFAULT_JOBS_DIR,
    kill_and_reap,
    reap_orphaned_box,
    sweep_orphans,
    unmount,
)
from sandbox.bwrap.supervise import supervise
from sandbox.capture import read_no_follow
from sandbox.contract import (
    JobSpec,
    Observation,
    Outcome,
    RunResult,
    Serve,
    decide_outcome,
    rootfs_dirname,
    sandbox_error,
)
from sandbox.seccomp import box_filter

IMAGE_STAMP = ".microcred-image"  # in a root filesystem built for a reference: that reference
BUILD_HINT = (
    "build it with scripts/build-sandbox-image.sh (ROOTFS=... IMAGE=...) or, for a setup step, "
    "sandbox.images.build_setup_image"
)


class BwrapRunner:
    """Runs jobs with bubblewrap over a root filesystem shared with the Docker image."""

    name = "bwrap"

    def __init__(self, rootfs: Path, *, jobs_dir: Path = DEFAULT_JOBS_DIR, bwrap: str = "bwrap") -> None:
        self.rootfs = rootfs
        self.jobs_dir = jobs_dir
        self.bwrap = shutil.which(bwrap) or bwrap
        self.setpriv = shutil.which("setpriv")
        self._cgroups = CgroupPool()
        atexit.register(self.close)
        sweep_orphans(jobs_dir)

    def close(self) -> None:
        """Remove the idle cgroups kept for reuse (run at exit)."""
        self._cgroups.close()

    def rootfs_for(self, image: str | None) -> Path:
        """The root filesystem of `image`: a folder next to the default one (see rootfs_dirname)."""
        return self.rootfs if image is None else self.rootfs.parent / rootfs_dirname(image)

    def rootfs_problem(self, image: str | None = None) -> str | None:
        """Why a box cannot run on `image`'s root filesystem, or None."""
        rootfs = self.rootfs_for(image)
        if not rootfs.is_dir():
            if image is None:
                return f"root filesystem {rootfs} is missing"
            return f"image {image} has no root filesystem at {rootfs}: {BUILD_HINT}"
        if image is not None:
            with contextlib.suppress(FileNotFoundError):
                built_for = (rootfs / IMAGE_STAMP).read_text().strip()
                if built_for != image:
                    return f"root filesystem {rootfs} was built for image {built_for}, not {image}"
        return foreign_mounts_problem(rootfs)

    def run(self, spec: JobSpec, *, serve: Serve | None = None) -> RunResult:
        started = time.monotonic()
        problem = self.rootfs_problem(spec.image)
        if problem is not None:
            return sandbox_error(self.name, problem)
        # Our pid leads the name so that a later runner can tell a dead worker's leftovers from live jobs.
        job_id = f"{os.getpid()}-{uuid.uuid4().hex}"
        job_dir: Path | None = None
        mounted = False
        groups = Cgroups()
        try:
            self.jobs_dir.mkdir(parents=True, exist_ok=True, mode=0o711)
            job_dir = Path(tempfile.mkdtemp(prefix=f"{job_id}-", dir=self.jobs_dir))
            # The box user may pass through (to reach its bind source) but not list the jobs.
            job_dir.chmod(0o711)
            box_dir = job_dir / "box"
            box_dir.mkdir(mode=0o700)
            if os.geteuid() == 0:
                size = spec.limits.disk_mb * 1024 * 1024
                MOUNTS.own_change(lambda: mount_tmpfs(box_dir, f"size={size},mode=0700"))
                mounted = True
            place_files(spec, box_dir)
            groups = self._cgroups.acquire(job_id, spec.limits.memory_mb * 1024 * 1024, spec.limits.pids)
            with ADOPTION:
                return self._launch(spec, box_dir, groups, started, serve)
        except Exception as exc:  # anything here is our fault, never the job's
            return sandbox_error(self.name, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
        finally:
            groups.kill_all()
            if job_dir is not None:
                if mounted:
                    box_mount = job_dir / "box"
                    MOUNTS.own_change(lambda: unmount(box_mount))
                shutil.rmtree(job_dir, ignore_errors=True)  # never follows the box's symlinks
            self._cgroups.release(groups)

    def _launch(
        self, spec: JobSpec, box_dir: Path, groups: Cgroups, started: float, serve: Serve | None
    ) -> RunResult:
        seccomp_read = pipe_holding(box_filter())
        info_read, info_write = os.pipe()
        gate_read, gate_write = os.pipe()
        status_read, status_write = os.pipe()
        try:
            try:
                command = bwrap_command(
                    spec,
                    tools=(self.bwrap, self.setpriv),
                    rootfs=self.rootfs_for(spec.image),
                    box_dir=box_dir,
                    cgroup_enforced=groups.active,
                    info_fd=info_write,
                    gate_fd=gate_read,
                    seccomp_fd=seccomp_read,
                    status_fd=status_write,
                )
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    env={},
                    pass_fds=(info_write, gate_read, seccomp_read, status_write),
                )
            finally:
                for fd in (info_write, gate_read, seccomp_read, status_write):
                    os.close(fd)
            # The gate stays shut until the box is confined. bwrap reads end-of-file on it as "go"
            # too, so it is closed only once the box is gone, whatever happened here.
            try:
                return self._confine_and_supervise(
                    spec, process, box_dir, groups, started, (info_read, gate_write, status_read), serve
                )
            except BaseException:
                kill_and_reap(process)  # killing bwrap's monitor takes the waiting box with it
                raise
        finally:
            for fd in (info_read, gate_write, status_read):
                os.close(fd)

    def _confine_and_supervise(
        self,
        spec: JobSpec,
        process: subprocess.Popen[bytes],
        box_dir: Path,
        groups: Cgroups,
        started: float,
        fds: tuple[int, int, int],
        serve: Serve | None,
    ) -> RunResult:
        info_read, gate_write, status_read = fds
        limits = spec.limits
        reason: list[Outcome] = []

        def stop(why: Outcome) -> None:
            if not reason:
                reason.append(why)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            groups.kill_all()

        box_pid: int | None = None
        box_pidfd: int | None = None
        orphan_usage: resource.struct_rusage | None = None
        try:
            try:
                box_pid = read_box_pid(info_read, started + limits.wall_seconds)
                if box_pid is not None:
                    box_pidfd = os.pidfd_open(box_pid)
                    join_cgroups(box_pid, groups)
                    os.write(gate_write, b"go")
            except (ProcessLookupError, BrokenPipeError):
                pass  # the box died setting itself up (gone, or its gate closed); bwrap's stderr says why
            seen = supervise(
                process,
                stdin=spec.stdin,
                caps=(limits.output_bytes, limits.output_bytes),
                deadline=started + limits.wall_seconds,
                stop=stop,
                serve=serve,
            )
            process.returncode = seen.status  # Popen must not wait for a pid we already reaped
        finally:
            if box_pidfd is not None and process.returncode is None:
                kill_and_reap(process)  # an error here: the box must not wait for us
            # Anything left behind dies now, whatever the pid namespace did. Groups found empty
            # once the box's init is gone stay empty: nothing is left to join them.
            settled = groups.kill_all()
            if box_pidfd is not None and box_pid is not None:
                orphan_usage = reap_orphaned_box(box_pidfd, box_pid)
                groups.settled = settled or groups.kill_all()
        wall = time.monotonic() - started
        if seen.serve_error is not None:
            return sandbox_error(self.name, str(seen.serve_error), wall)
        report = parse_status_pipe(_read_available(status_read))
        cpu = groups.cpu_seconds()
        if cpu is None:
            cpu = _cpu(seen.usage) + (_cpu(orphan_usage) if orphan_usage is not None else 0.0)
        verdict = decide_outcome(
            Observation(
                box_started=report.started,
                killed_for=reason[0] if reason else None,
                oom_killed=groups.oom_killed(),
                wait_status=report.wait_status,
                exit_code=_exit_code(seen.status),
                cpu_seconds=cpu,
                cpu_limit=limits.cpu_seconds,
                setup_detail=seen.stderr.decode(errors="replace"),
            )
        )
        if verdict.outcome is Outcome.SANDBOX_ERROR:
            return sandbox_error(self.name, verdict.error or "the box failed", wall)
        files: dict[str, bytes] = {}
        missing: list[str] = []
        for relative in spec.collect:
            data = read_no_follow(str(box_dir), relative, limits.collect_bytes)
            if data is None:
                missing.append(relative)
            else:
                files[relative] = data
        return RunResult(
            outcome=verdict.outcome,
            exit_code=verdict.exit_code,
            signal=verdict.signal,
            wall_seconds=wall,
            cpu_seconds=cpu,
            peak_memory_bytes=groups.peak_memory() or seen.usage.ru_maxrss * 1024,
            stdout=seen.stdout,
            stderr=seen.stderr,
            output_truncated=seen.truncated,
            files=files,
            missing_files=tuple(missing),
            backend=self.name,
        )


def _cpu(usage: resource.struct_rusage) -> float:
    return float(usage.ru_utime + usage.ru_stime)


def _exit_code(status: int) -> int | None:
    """bwrap's monitor's own status as an exit code: it passes the init's on, 128 + n for signal n."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else None


def _read_available(fd: int) -> bytes:
    """What the box's init wrote on its status pipe (it is done writing: the box is gone)."""
    os.set_blocking(fd, False)
    parts = []
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 4096):
            parts.append(chunk)
    return b"".join(parts)
