"""Launching a bubblewrap box: the work dir, the files in it, the rlimits and bwrap's command line.

The launch runs no Python in the child, so the worker is vforked rather than copied (a fork plus a
preexec hook cost 3-4 ms a job, more in a big worker): util-linux `setpriv` drops root to the box
user and execs `bwrap`, which builds the box, reports the box's first process (the box's init) on
an info fd and waits on a gate fd until the runner has put that process in the job's cgroups. The
init sets the job's rlimits on itself before it starts the job, which inherits them (lowering
one's own limits needs no capability, and an exec of util-linux `prlimit` for it cost ~1 ms).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import time
from pathlib import Path

from sandbox.boxinit import init_argv
from sandbox.bwrap.reaping import LIBC
from sandbox.contract import WORKDIR, JobSpec, Limits

BOX_UID = 65534  # nobody: never an account that owns anything on the host
MS_NOSUID, MS_NODEV = 0x2, 0x4


def bwrap_command(
    spec: JobSpec,
    *,
    tools: tuple[str, str | None],
    rootfs: Path,
    box_dir: Path,
    cgroup_enforced: bool,
    info_fd: int,
    gate_fd: int,
    seccomp_fd: int,
    status_fd: int,
) -> list[str]:
    """setpriv (when root) and bwrap, then the box's init, which sets the rlimits and runs the job."""
    bwrap, setpriv = tools
    limits = spec.limits
    scratch = str(limits.disk_mb * 1024 * 1024)
    argv: list[str] = []
    if os.geteuid() == 0:
        if setpriv is None:
            raise RuntimeError("setpriv (util-linux) is needed to drop root before bwrap")
        argv += [
            setpriv,
            f"--reuid={BOX_UID}",
            f"--regid={BOX_UID}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ]
    argv += [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--uid",
        str(BOX_UID),
        "--gid",
        str(BOX_UID),
        # The box's pid 1 is our init (under the seccomp filter, not dumpable), not bwrap's own
        # reaper, which runs outside the filter and which the job, as the same user, could ptrace.
        "--as-pid-1",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        str(rootfs),
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        scratch,
        "--tmpfs",
        "/tmp",
        "--size",
        scratch,
        "--tmpfs",
        "/dev/shm",
        "--bind",
        str(box_dir),
        WORKDIR,
        "--chdir",
        WORKDIR,
        "--hostname",
        "box",
        "--info-fd",
        str(info_fd),
        "--block-fd",
        str(gate_fd),
        "--seccomp",
        str(seccomp_fd),
        "--",
    ]
    box_rlimits = rlimits(limits, cgroup_enforced=cgroup_enforced)
    return argv + init_argv(spec.command, spec.box_env(), rlimits=box_rlimits, status_fd=status_fd)


def rlimits(limits: Limits, *, cgroup_enforced: bool) -> list[tuple[int, int, int]]:
    """The job's rlimits as (resource, soft, hard). The CPU cap keeps a second of grace between
    SIGXCPU and SIGKILL."""
    memory = limits.memory_mb * 1024 * 1024
    # A cgroup enforces memory exactly; the address-space cap is a second line of defence (wider, so
    # the cgroup's verdict wins where both exist).
    address_space = memory * 8 + 1024**3 if cgroup_enforced else memory
    file_size = limits.file_size_mb * 1024 * 1024
    chosen = [
        (resource.RLIMIT_CPU, limits.cpu_seconds, limits.cpu_seconds + 1),
        (resource.RLIMIT_AS, address_space, address_space),
        (resource.RLIMIT_FSIZE, file_size, file_size),
        (resource.RLIMIT_NOFILE, limits.nofile, limits.nofile),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    if not cgroup_enforced:
        chosen.append((resource.RLIMIT_NPROC, limits.pids, limits.pids))
    return chosen


def mount_tmpfs(target: Path, options: str) -> None:
    """mount(2) directly: a `mount` subprocess per job costs more than the rest of the set-up."""
    if LIBC.mount(b"tmpfs", str(target).encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode()) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mounting a tmpfs on {target}: {os.strerror(error)}")


def place_files(spec: JobSpec, box_dir: Path) -> None:
    """Write the job's files into its fresh work dir, never following a path component."""
    owner = BOX_UID if os.geteuid() == 0 else -1
    root_fd = os.open(box_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for box_file in spec.files:
            parts = box_file.path.split("/")
            fd = os.dup(root_fd)
            try:
                for part in parts[:-1]:
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                        if owner >= 0:
                            os.chown(part, owner, owner, dir_fd=fd, follow_symlinks=False)
                    except FileExistsError:
                        pass
                    next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                    os.close(fd)
                    fd = next_fd
                file_fd = os.open(
                    parts[-1],
                    os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                    box_file.mode,
                    dir_fd=fd,
                )
                try:
                    os.write(file_fd, box_file.content)
                    os.fchmod(file_fd, box_file.mode)
                    if owner >= 0:
                        os.fchown(file_fd, owner, owner)
                finally:
                    os.close(file_fd)
            finally:
                os.close(fd)
        if owner >= 0:
            os.chown(box_dir, owner, owner)
    finally:
        os.close(root_fd)


def pipe_holding(data: bytes) -> int:
    """The read end of a pipe that holds `data` and then ends (small enough for the pipe's buffer)."""
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, data)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return read_end


def read_box_pid(info_read: int, deadline: float) -> int | None:
    """The host pid of the box's first process, from bwrap's info fd; None if bwrap gave up first."""
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("bwrap did not set up the box before the job's wall-clock limit")
        readable, _, _ = select.select([info_read], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(info_read, 4096)
        if not chunk:
            return None  # bwrap exited; its stderr says why
        data += chunk
        try:
            return int(json.loads(data)["child-pid"])
        except ValueError:
            continue  # the document is not complete yet
