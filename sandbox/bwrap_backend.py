"""The bubblewrap backend: a box made of Linux namespaces, rlimits and (where allowed) cgroups.

Each job gets a fresh work dir (a size-capped tmpfs when we run as root), a read-only root made of
the grading root filesystem, new user/pid/net/ipc/uts/cgroup namespaces, a cleared environment and
no capabilities. bwrap itself is started as an unprivileged host user (`setpriv`), so even the
user namespace maps the box to nobody, never to root. Memory and process counts are capped by a
per-job cgroup (v1 or v2) where the host lets us create one; CPU time, file size, open files and
address space by rlimits; the wall clock by a timer here that kills the whole process group and
cgroup. bwrap's pid namespace guarantees nothing outlives the job.

The launch runs no Python in the child, so the worker is vforked rather than copied (a fork plus a
preexec hook cost 3-4 ms a job, more in a big worker): bwrap sets up the box, reports the box's
first process on an info fd and waits on a gate fd; we move that process into the job's cgroups,
then open the gate. Only then does the box run anything of the job's, and everything it starts is
counted there. The rlimits are set before all that by util-linux `prlimit`, which bwrap, the box's
init and the job inherit.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import resource
import select
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox.capture import read_no_follow
from sandbox.contract import WORKDIR, JobSpec, Limits, Outcome, RunResult, sandbox_error
from sandbox.seccomp import box_filter

BOX_UID = 65534  # nobody: never an account that owns anything on the host
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "microcred"
DEFAULT_JOBS_DIR = Path("/var/lib/microcred/jobs")
# What the box's sh writes on stderr before it execs the job: a stderr that does not start with
# it is bwrap's own (a set-up failure), and it is cut off before the job's output is returned.
BOX_UP = b"\x1emicrocred-box-up\x1e"
MAX_IDLE_CGROUPS = 4


@dataclass
class Cgroups:
    """The per-job cgroup directories we could create (empty when the host does not allow it)."""

    memory: Path | None = None
    pids: Path | None = None
    unified: Path | None = None
    oom_baseline: int = 0  # OOM kills counted before this job (a reused cgroup keeps its counter)

    @property
    def active(self) -> bool:
        return any((self.memory, self.pids, self.unified))

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in (self.memory, self.pids, self.unified) if d is not None]

    def kill_all(self) -> None:
        for procs in self.procs_files():
            try:
                pids = [int(p) for p in procs.read_text().split()]
            except OSError:
                continue
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _oom_count_v1(self) -> int:
        if self.memory is None:
            return 0
        try:
            for line in (self.memory / "memory.oom_control").read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return 0

    @property
    def reusable(self) -> bool:
        """cgroup v1 groups can be reset and used again: joining a fresh one costs the kernel ~9 ms."""
        return self.memory is not None and self.pids is not None and self.unified is None

    def empty(self) -> bool:
        try:
            return all(not procs.read_text().split() for procs in self.procs_files())
        except OSError:
            return False

    def reset(self, memory_bytes: int, pids: int) -> None:
        """Prepare an empty, reused v1 group for the next job: new limits, fresh peak and OOM count."""
        assert self.memory is not None and self.pids is not None
        limit, swap = self.memory / "memory.limit_in_bytes", self.memory / "memory.memsw.limit_in_bytes"
        # memory.limit may never exceed memory+swap: lower the limit first, or raise memsw first.
        order = [limit, swap] if memory_bytes <= int(limit.read_text()) else [swap, limit]
        for path in order:
            if path.exists():
                path.write_text(str(memory_bytes))
        (self.memory / "memory.max_usage_in_bytes").write_text("0")
        (self.pids / "pids.max").write_text(str(pids))
        self.oom_baseline = self._oom_count_v1()

    def oom_killed(self) -> bool:
        if self.memory is not None and self._oom_count_v1() > self.oom_baseline:
            return True
        if self.unified is not None:
            try:
                for line in (self.unified / "memory.events").read_text().splitlines():
                    if line.startswith("oom_kill ") and int(line.split()[1]) > 0:
                        return True
            except OSError:
                pass
        return False

    def peak_memory(self) -> int | None:
        candidates = []
        if self.memory is not None:
            candidates.append(self.memory / "memory.max_usage_in_bytes")
        if self.unified is not None:
            candidates.append(self.unified / "memory.peak")
        for path in candidates:
            try:
                return int(path.read_text().strip())
            except (OSError, ValueError):
                continue
        return None

    def remove(self, attempts: int = 50) -> bool:
        """Remove the cgroup directories; False if one is still busy after `attempts` tries."""
        gone = True
        for directory in (self.memory, self.pids, self.unified):
            if directory is None:
                continue
            for attempt in range(attempts):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if attempt == attempts - 1:
                        gone = False
                    else:
                        time.sleep(0.02)  # the last process is still being reaped
        return gone


def cgroup_support() -> str | None:
    """None when per-job cgroups work here, else why not (for `doctor`)."""
    if os.geteuid() != 0:
        return "cgroups need the worker to run as root; memory and pids fall back to rlimits"
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        controllers = (CGROUP_ROOT / "cgroup.controllers").read_text().split()
        missing = {"memory", "pids"} - set(controllers)
        return f"cgroup v2 lacks controllers {sorted(missing)}" if missing else None
    if (CGROUP_ROOT / "memory").is_dir() and (CGROUP_ROOT / "pids").is_dir():
        return None
    return "no memory/pids cgroup hierarchy is mounted"


def _make_cgroups(job_id: str, memory_bytes: int, pids: int) -> Cgroups:
    groups = Cgroups()
    if cgroup_support() is not None:
        return groups
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        parent = CGROUP_ROOT / CGROUP_PARENT
        parent.mkdir(exist_ok=True)
        with contextlib.suppress(OSError):
            (parent / "cgroup.subtree_control").write_text("+memory +pids")
        unified = parent / job_id
        unified.mkdir()
        (unified / "memory.max").write_text(str(memory_bytes))
        (unified / "memory.swap.max").write_text("0")
        (unified / "pids.max").write_text(str(pids))
        groups.unified = unified
        return groups
    memory = CGROUP_ROOT / "memory" / CGROUP_PARENT / job_id
    memory.mkdir(parents=True)
    groups.memory = memory
    (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
    swap = memory / "memory.memsw.limit_in_bytes"
    if swap.exists():  # memory+swap equal to memory: no swapping past the limit
        swap.write_text(str(memory_bytes))
    pid_group = CGROUP_ROOT / "pids" / CGROUP_PARENT / job_id
    pid_group.mkdir(parents=True)
    (pid_group / "pids.max").write_text(str(pids))
    groups.pids = pid_group
    return groups


class BwrapRunner:
    """Runs jobs with bubblewrap over a root filesystem shared with the Docker image."""

    name = "bwrap"

    def __init__(self, rootfs: Path, *, jobs_dir: Path = DEFAULT_JOBS_DIR, bwrap: str = "bwrap") -> None:
        self.rootfs = rootfs
        self.jobs_dir = jobs_dir
        self.bwrap = shutil.which(bwrap) or bwrap
        self.setpriv = shutil.which("setpriv")
        self.prlimit = shutil.which("prlimit")
        self._idle_cgroups: list[Cgroups] = []
        self._cgroups_lock = threading.Lock()
        atexit.register(self.close)
        sweep_orphans(jobs_dir)

    def close(self) -> None:
        """Remove the idle cgroups kept for reuse (run at exit)."""
        with self._cgroups_lock:
            idle, self._idle_cgroups = self._idle_cgroups, []
        for groups in idle:
            groups.remove()

    def _acquire_cgroups(self, job_id: str, memory_bytes: int, pids: int) -> Cgroups:
        with self._cgroups_lock:
            groups = self._idle_cgroups.pop() if self._idle_cgroups else None
        if groups is not None:
            try:
                groups.reset(memory_bytes, pids)
                return groups
            except OSError:
                groups.remove()
        return _make_cgroups(job_id, memory_bytes, pids)

    def _release_cgroups(self, groups: Cgroups) -> None:
        """Keep an empty v1 group for the next job; anything else is removed."""
        if groups.reusable and groups.empty():
            with self._cgroups_lock:
                if len(self._idle_cgroups) < MAX_IDLE_CGROUPS:
                    self._idle_cgroups.append(groups)
                    return
        if not groups.remove(attempts=1):
            # The kernel is still reaping the last process: retry off the critical path. Not
            # a daemon thread, so the interpreter waits for it and no cgroup outlives us.
            threading.Thread(target=groups.remove).start()

    def _command(
        self, spec: JobSpec, box_dir: Path, groups: Cgroups, *, info_fd: int, gate_fd: int, seccomp_fd: int
    ) -> list[str]:
        limits = spec.limits
        scratch = str(limits.disk_mb * 1024 * 1024)
        if self.prlimit is None:
            raise RuntimeError("prlimit (util-linux) is needed to set the job's rlimits")
        argv = _rlimits(self.prlimit, limits, cgroup_enforced=groups.active)
        if os.geteuid() == 0:
            if self.setpriv is None:
                raise RuntimeError("setpriv (util-linux) is needed to drop root before bwrap")
            argv += [
                self.setpriv,
                f"--reuid={BOX_UID}",
                f"--regid={BOX_UID}",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
            ]
        argv += [
            self.bwrap,
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--uid",
            str(BOX_UID),
            "--gid",
            str(BOX_UID),
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--cap-drop",
            "ALL",
            "--ro-bind",
            str(self.rootfs),
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
        ]
        for key, value in spec.box_env().items():
            argv += ["--setenv", key, value]
        # The job's command goes through the box's sh, as in the Docker backend, so a missing
        # program is the job's exit 127 rather than bwrap's own execvp error. The sh first marks
        # stderr: a failure before the mark is ours (set-up), anything after it is the job's.
        marker = "".join(f"\\{byte:03o}" for byte in BOX_UP)
        wrapper = f"printf '{marker}' >&2 && exec \"$@\""
        return [*argv, "--", "/bin/sh", "-c", wrapper, "box", *spec.command]

    def run(self, spec: JobSpec) -> RunResult:
        if not self.rootfs.is_dir():
            return sandbox_error(self.name, f"root filesystem {self.rootfs} is missing")
        # Our pid leads the name so that a later runner can tell a dead worker's leftovers from live jobs.
        job_id = f"{os.getpid()}-{uuid.uuid4().hex}"
        started = time.monotonic()
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
                _mount_tmpfs(box_dir, f"size={size},mode=0700")
                mounted = True
            self._place_files(spec, box_dir)
            groups = self._acquire_cgroups(job_id, spec.limits.memory_mb * 1024 * 1024, spec.limits.pids)
            return self._execute(spec, box_dir, groups, started)
        except Exception as exc:  # anything here is our fault, never the job's
            return sandbox_error(self.name, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
        finally:
            groups.kill_all()
            if job_dir is not None:
                if mounted:
                    _LIBC.umount2(str(job_dir / "box").encode(), MNT_DETACH)
                shutil.rmtree(job_dir, ignore_errors=True)  # never follows the box's symlinks
            self._release_cgroups(groups)

    def _place_files(self, spec: JobSpec, box_dir: Path) -> None:
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

    def _execute(self, spec: JobSpec, box_dir: Path, groups: Cgroups, started: float) -> RunResult:
        with _ADOPTION:
            return self._launch(spec, box_dir, groups, started)

    def _launch(self, spec: JobSpec, box_dir: Path, groups: Cgroups, started: float) -> RunResult:
        seccomp_read = _pipe_holding(box_filter())
        info_read, info_write = os.pipe()
        gate_read, gate_write = os.pipe()
        try:
            try:
                command = self._command(
                    spec, box_dir, groups, info_fd=info_write, gate_fd=gate_read, seccomp_fd=seccomp_read
                )
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    env={},
                    pass_fds=(info_write, gate_read, seccomp_read),
                )
            finally:
                os.close(info_write)
                os.close(gate_read)
                os.close(seccomp_read)
            # The gate stays shut until the box is confined. bwrap reads end-of-file on it as "go"
            # too, so it is closed only once the box is gone, whatever happened here.
            try:
                return self._confine_and_supervise(
                    spec, process, box_dir, groups, started, info_read, gate_write
                )
            except BaseException:
                _kill_and_reap(process)  # killing bwrap's monitor takes the waiting box with it
                raise
        finally:
            os.close(info_read)
            os.close(gate_write)

    def _confine_and_supervise(
        self,
        spec: JobSpec,
        process: subprocess.Popen[bytes],
        box_dir: Path,
        groups: Cgroups,
        started: float,
        info_read: int,
        gate_write: int,
    ) -> RunResult:
        limits = spec.limits
        reason: list[Outcome] = []

        def stop(why: Outcome) -> Callable[[], None]:
            def kill() -> None:
                if not reason:
                    reason.append(why)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                groups.kill_all()

            return kill

        box_pidfd: int | None = None
        try:
            try:
                box_pid = _read_box_pid(info_read, started + limits.wall_seconds)
                if box_pid is not None:
                    box_pidfd = os.pidfd_open(box_pid)
                    _join_cgroups(box_pid, groups)
                    os.write(gate_write, b"go")
            except ProcessLookupError:
                pass  # the box died setting itself up; bwrap's stderr, read below, says why
            status, usage, stdout, stderr, truncated = _supervise(
                process,
                spec.stdin,
                (limits.output_bytes, limits.output_bytes + len(BOX_UP)),
                started + limits.wall_seconds,
                stop,
            )
            process.returncode = status  # Popen must not wait for a pid we already reaped
        finally:
            if box_pidfd is not None and process.returncode is None:
                _kill_and_reap(process)  # an error here: the box must not wait for us
            groups.kill_all()  # anything left behind dies now, whatever the pid namespace did
            if box_pidfd is not None:
                _reap_orphaned_box(box_pidfd)
        wall = time.monotonic() - started
        exit_code, sig = _decode(status)
        if reason:
            outcome = reason[0]
        elif groups.oom_killed():
            outcome = Outcome.MEMORY_LIMIT
        elif sig == signal.SIGXCPU:  # RLIMIT_CPU ran out
            outcome = Outcome.TIMEOUT
        else:
            outcome = Outcome.COMPLETED
        if stderr.startswith(BOX_UP):
            stderr = stderr[len(BOX_UP) :]
        elif not reason:
            detail = stderr.decode(errors="replace").strip() or f"bwrap exited with status {status}"
            return sandbox_error(self.name, f"the box did not start: {detail}", wall)
        files: dict[str, bytes] = {}
        missing: list[str] = []
        for relative in spec.collect:
            data = read_no_follow(str(box_dir), relative, limits.collect_bytes)
            if data is None:
                missing.append(relative)
            else:
                files[relative] = data
        return RunResult(
            outcome=outcome,
            exit_code=exit_code,
            signal=sig,
            wall_seconds=wall,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            peak_memory_bytes=groups.peak_memory() or usage.ru_maxrss * 1024,
            stdout=stdout,
            stderr=stderr,
            output_truncated=truncated,
            files=files,
            missing_files=tuple(missing),
            backend=self.name,
        )


class _OrphanAdoption:
    """While a box of this process runs, this process is the reaper of its descendants' orphans.

    bwrap's monitor exits as soon as it knows the job's status, without reaping the box's first
    process (the pid namespace's init). Left to the host's init, that zombie kept its place in the
    job's pids cgroup until reaped, which starved the next job on a reused cgroup, and in a
    container whose init never reaps it would stay forever. The attribute is held only while boxes
    run, so orphans of anything else this process starts still go to init."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._owner = 0  # the attribute is not inherited across fork: count per process

    def _set(self, on: bool) -> None:
        if _LIBC.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(error)}")

    def __enter__(self) -> None:
        with self._lock:
            if self._owner != os.getpid():
                self._owner, self._running = os.getpid(), 0
            if self._running == 0:
                self._set(True)
            self._running += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                self._set(False)


def _kill_and_reap(process: subprocess.Popen[bytes]) -> None:
    """Kill bwrap's monitor (the box dies with it: --die-with-parent) and reap it, if not already."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _reap_orphaned_box(box_pidfd: int) -> None:
    """Reap the box's first process once bwrap's monitor has left it to us (it dies with the monitor)."""
    try:
        if select.select([box_pidfd], [], [], 5.0)[0]:
            os.waitid(os.P_PIDFD, box_pidfd, os.WEXITED | os.WNOHANG)
    except ChildProcessError:
        pass  # reaped by bwrap after all, or we are not its reaper
    finally:
        os.close(box_pidfd)


def _pipe_holding(data: bytes) -> int:
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


def _read_box_pid(info_read: int, deadline: float) -> int | None:
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


def _join_cgroups(box_pid: int, groups: Cgroups) -> None:
    """Move the waiting box into the job's cgroups: everything it starts is counted there."""
    for procs in groups.procs_files():
        procs.write_text(str(box_pid))


def _rlimits(prlimit: str, limits: Limits, *, cgroup_enforced: bool) -> list[str]:
    """util-linux `prlimit` set on itself, then exec'd onward: bwrap, the box's init and the job all
    inherit the job's rlimits (a worker without CAP_SYS_RESOURCE may not set them on another process,
    and rlimits set inside the box would miss its init, which the job can ptrace). The CPU cap keeps a
    second of grace between SIGXCPU and SIGKILL."""
    memory = limits.memory_mb * 1024 * 1024
    # A cgroup enforces memory exactly; the address-space cap is a second line of defence (wider, so
    # the cgroup's verdict wins where both exist).
    address_space = memory * 8 + 1024**3 if cgroup_enforced else memory
    argv = [
        prlimit,
        f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}",
        f"--as={address_space}:{address_space}",
        f"--fsize={limits.file_size_mb * 1024 * 1024}:{limits.file_size_mb * 1024 * 1024}",
        f"--nofile={limits.nofile}:{limits.nofile}",
        "--core=0:0",
    ]
    if not cgroup_enforced:
        argv.append(f"--nproc={limits.pids}:{limits.pids}")
    return argv


_LIBC = ctypes.CDLL(None, use_errno=True)
MS_NOSUID, MS_NODEV, MNT_DETACH = 0x2, 0x4, 0x2
PR_SET_CHILD_SUBREAPER = 36


def _mount_tmpfs(target: Path, options: str) -> None:
    """mount(2) directly: a `mount` subprocess per job costs more than the rest of the set-up."""
    if _LIBC.mount(b"tmpfs", str(target).encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode()) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mounting a tmpfs on {target}: {os.strerror(error)}")


def _owner_alive(name: str) -> bool:
    pid = name.split("-", 1)[0]
    if not pid.isdigit():
        return True  # not one of ours: leave it alone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def sweep_orphans(jobs_dir: Path = DEFAULT_JOBS_DIR) -> int:
    """Remove the job dirs, tmpfs mounts and cgroups of workers that died mid-job (SIGKILL, OOM).

    Returns how many leftovers were removed. Names start with the owner's pid, so live jobs of other
    workers on this host are never touched.
    """
    removed = 0
    with contextlib.suppress(OSError):
        for job_dir in jobs_dir.iterdir():
            if _owner_alive(job_dir.name):
                continue
            _LIBC.umount2(str(job_dir / "box").encode(), MNT_DETACH)
            shutil.rmtree(job_dir, ignore_errors=True)  # never follows the box's symlinks
            removed += 1
    parents = [CGROUP_ROOT / "memory" / CGROUP_PARENT, CGROUP_ROOT / "pids" / CGROUP_PARENT]
    parents.append(CGROUP_ROOT / CGROUP_PARENT)
    for parent in parents:
        with contextlib.suppress(OSError):
            for group in parent.iterdir():
                if not group.is_dir() or _owner_alive(group.name):
                    continue
                stale = Cgroups(memory=group) if "memory" in parent.parts else Cgroups(pids=group)
                stale.kill_all()
                stale.remove()
                removed += 1
    return removed


def _supervise(
    process: subprocess.Popen[bytes],
    stdin: bytes,
    caps: tuple[int, int],
    deadline: float,
    stop: Callable[[Outcome], Callable[[], None]],
) -> tuple[int, resource.struct_rusage, bytes, bytes, bool]:
    """Feed stdin, drain stdout and stderr up to their `caps`, and reap the box, all from this thread
    with one poll loop (no thread per stream or timer: each costs a scheduling round on a busy host).
    Past the deadline or the output cap the box is killed through `stop`."""
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    pidfd = os.pidfd_open(process.pid)
    selector = selectors.DefaultSelector()
    out_fd, err_fd = process.stdout.fileno(), process.stderr.fileno()
    kept: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    outputs: dict[int, bytes] = {}
    sizes = dict.fromkeys(kept, 0)
    limits = {out_fd: caps[0], err_fd: caps[1]}
    truncated = False
    pending = memoryview(stdin)
    stdin_fd = process.stdin.fileno()
    try:
        for fd in kept:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        selector.register(pidfd, selectors.EVENT_READ)
        if pending:
            os.set_blocking(stdin_fd, False)
            selector.register(stdin_fd, selectors.EVENT_WRITE)
        else:
            process.stdin.close()
        reaped: tuple[int, resource.struct_rusage] | None = None
        drain_until = float("inf")
        while kept or reaped is None:
            now = time.monotonic()
            if reaped is None and now >= deadline:
                stop(Outcome.TIMEOUT)()
                deadline = float("inf")
            if now >= drain_until:
                break  # the box is gone; a pipe still open is held by nothing we must wait for
            timeout = min(deadline, drain_until) - now
            for key, _ in selector.select(None if timeout == float("inf") else max(timeout, 0.001)):
                fd = int(key.fd)
                if fd == pidfd:
                    selector.unregister(pidfd)
                    _, status, usage = os.wait4(process.pid, 0)
                    reaped = (status, usage)
                    drain_until = time.monotonic() + 2.0
                elif fd == stdin_fd:
                    try:
                        pending = pending[os.write(fd, pending[:65536]) :]
                    except BlockingIOError:
                        continue
                    except OSError:
                        pending = pending[:0]  # the job closed its input; that is its business
                    if not pending:
                        selector.unregister(fd)
                        process.stdin.close()
                else:
                    try:
                        chunk = os.read(fd, 65536)
                    except BlockingIOError:
                        continue
                    room = limits[fd] - sizes[fd]
                    if chunk and room > 0:
                        kept[fd].append(chunk[:room])
                    sizes[fd] += len(chunk)
                    if not chunk or sizes[fd] > limits[fd]:
                        if chunk:
                            truncated = True
                            stop(Outcome.OUTPUT_LIMIT)()
                        selector.unregister(fd)
                        outputs[fd] = b"".join(kept.pop(fd))
        assert reaped is not None
        for fd, parts in kept.items():
            outputs[fd] = b"".join(parts)
        return reaped[0], reaped[1], outputs[out_fd], outputs[err_fd], truncated
    finally:
        selector.close()
        os.close(pidfd)
        for stream in (process.stdin, process.stdout, process.stderr):
            with contextlib.suppress(OSError):
                stream.close()


def _decode(status: int) -> tuple[int | None, int | None]:
    """Exit code and signal the way Docker reports them: a signal also shows as 128 + its number."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return 128 + sig, sig
    code = os.WEXITSTATUS(status)
    return code, (code - 128 if 128 < code < 128 + 65 else None)


_ADOPTION = _OrphanAdoption()
