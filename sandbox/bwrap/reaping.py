"""Reaping of the bubblewrap backend: the box's init when bwrap's monitor leaves it, and the sweep of
the job dirs, mounts and cgroups a dead worker left behind.

bwrap's monitor reaps the box's init when the init ends by itself. When we kill the monitor (wall
clock, output cap), the init dies with it (`--die-with-parent`) and is orphaned; left to the host's
init, that zombie kept its place in the job's pids cgroup until reaped, which starved the next job
on a reused cgroup, and in a container whose init never reaps it would stay forever. So while a box
runs, the worker is the child subreaper of its descendants and reaps that process itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import select
import shutil
import signal
import subprocess
import threading
from pathlib import Path

from sandbox.bwrap.cgroups import Cgroups, stale_parents

LIBC = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 0x2
PR_SET_CHILD_SUBREAPER = 36
DEFAULT_JOBS_DIR = Path("/var/lib/microcred/jobs")


class OrphanAdoption:
    """While a box of this process runs, this process is the reaper of its descendants' orphans.

    The attribute is held only while boxes run (counted, so nested and concurrent jobs share it),
    so orphans of anything else this process starts still go to init."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._owner = 0  # the attribute is not inherited across fork: count per process

    def _set(self, on: bool) -> None:
        if LIBC.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
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


ADOPTION = OrphanAdoption()


def kill_and_reap(process: subprocess.Popen[bytes]) -> None:
    """Kill bwrap's monitor (the box dies with it: --die-with-parent) and reap it, if not already."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def reap_orphaned_box(box_pidfd: int, box_pid: int) -> resource.struct_rusage | None:
    """Reap the box's init if bwrap's monitor left it to us (it dies with the monitor); its rusage
    then counts the job's processes it reaped. None when the monitor reaped it after all."""
    try:
        if select.select([box_pidfd], [], [], 5.0)[0]:
            # The pidfd pins nothing, but the pid cannot be reused before its zombie is reaped.
            pid, _, usage = os.wait4(box_pid, os.WNOHANG)
            return usage if pid == box_pid else None
    except ChildProcessError:
        pass  # reaped by bwrap after all, or we are not its reaper
    finally:
        os.close(box_pidfd)
    return None


def owner_alive(name: str) -> bool:
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


def unmount(path: Path) -> None:
    LIBC.umount2(str(path).encode(), MNT_DETACH)


def _stale_group(controller: str, group: Path) -> Cgroups:
    if controller == "memory":
        return Cgroups(memory=group)
    if controller == "pids":
        return Cgroups(pids=group)
    if controller == "cpuacct":
        return Cgroups(cpuacct=group)
    return Cgroups(unified=group)


def sweep_orphans(jobs_dir: Path = DEFAULT_JOBS_DIR) -> int:
    """Remove the job dirs, tmpfs mounts and cgroups of workers that died mid-job (SIGKILL, OOM).

    Returns how many leftovers were removed. Names start with the owner's pid, so live jobs of other
    workers on this host are never touched.
    """
    removed = 0
    with contextlib.suppress(OSError):
        for job_dir in jobs_dir.iterdir():
            if owner_alive(job_dir.name):
                continue
            unmount(job_dir / "box")
            shutil.rmtree(job_dir, ignore_errors=True)  # never follows the box's symlinks
            removed += 1
    for controller, parent in stale_parents():
        with contextlib.suppress(OSError):
            for group in parent.iterdir():
                if not group.is_dir() or owner_alive(group.name):
                    continue
                stale = _stale_group(controller, group)
                stale.kill_all()
                stale.remove()
                removed += 1
    return removed
