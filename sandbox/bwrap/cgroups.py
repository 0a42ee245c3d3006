"""Per-job cgroups of the bubblewrap backend: memory, pids and CPU accounting, v1 or v2.

A job's box joins its groups while it waits at bwrap's gate, so everything it starts is counted
and capped there: memory (= memory + swap), process count, and the CPU time of all its processes.
cgroup v1 groups are kept and reset for the next job (joining a fresh one costs the kernel ~9 ms);
v2 groups are made per job. Where the host allows no cgroups, memory and pids fall back to rlimits
and CPU time to the rusage of the box's reaped processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "microcred"
MAX_IDLE_CGROUPS = 4


@dataclass
class Cgroups:
    """The per-job cgroup directories we could create (empty when the host does not allow it)."""

    memory: Path | None = None
    pids: Path | None = None
    cpuacct: Path | None = None  # v1 only; v2 counts CPU in the unified group's cpu.stat
    unified: Path | None = None
    oom_baseline: int = 0  # OOM kills counted before this job (a reused cgroup keeps its counter)
    settled: bool = False  # found empty once the box was gone: nothing can join it any more

    def directories(self) -> list[Path]:
        return [d for d in (self.memory, self.pids, self.cpuacct, self.unified) if d is not None]

    @property
    def active(self) -> bool:
        """Memory and process counts are enforced here (CPU accounting alone does not count)."""
        return any((self.memory, self.pids, self.unified))

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.directories()]

    def kill_all(self) -> bool:
        """SIGKILL every process in the groups; True when there was none (each read costs ~0.1 ms)."""
        if self.settled:
            return True
        found = False
        for procs in self.procs_files():
            try:
                pids = [int(p) for p in procs.read_text().split()]
            except OSError:
                continue
            for pid in pids:
                found = True
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return not found

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
        if self.settled:
            return True
        try:
            return all(not procs.read_text().split() for procs in self.procs_files())
        except OSError:
            return False

    def reset(self, memory_bytes: int, pids: int) -> None:
        """Prepare an empty, reused v1 group for the next job: new limits, fresh peak, OOM count and CPU."""
        assert self.memory is not None and self.pids is not None
        limit, swap = self.memory / "memory.limit_in_bytes", self.memory / "memory.memsw.limit_in_bytes"
        # memory.limit may never exceed memory+swap: lower the limit first, or raise memsw first.
        order = [limit, swap] if memory_bytes <= int(limit.read_text()) else [swap, limit]
        for path in order:
            if path.exists():
                path.write_text(str(memory_bytes))
        (self.memory / "memory.max_usage_in_bytes").write_text("0")
        (self.pids / "pids.max").write_text(str(pids))
        if self.cpuacct is not None:
            (self.cpuacct / "cpuacct.usage").write_text("0")
        self.oom_baseline = self._oom_count_v1()
        self.settled = False

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

    def cpu_seconds(self) -> float | None:
        """CPU time of every process that ran in the group since the job joined it."""
        try:
            if self.cpuacct is not None:
                return int((self.cpuacct / "cpuacct.usage").read_text()) / 1e9
            if self.unified is not None:
                for line in (self.unified / "cpu.stat").read_text().splitlines():
                    if line.startswith("usage_usec "):
                        return int(line.split()[1]) / 1e6
        except (OSError, ValueError):
            pass
        return None

    def remove(self, attempts: int = 50) -> bool:
        """Remove the cgroup directories; False if one is still busy after `attempts` tries."""
        gone = True
        for directory in self.directories():
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


def _cpuacct_root() -> Path | None:
    """The v1 hierarchy that has the cpuacct controller (mounted alone, or as cpu,cpuacct)."""
    for name in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
        if (CGROUP_ROOT / name / "cpuacct.usage").exists():
            return CGROUP_ROOT / name
    return None


def make_cgroups(job_id: str, memory_bytes: int, pids: int) -> Cgroups:
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
    cpuacct_root = _cpuacct_root()
    if cpuacct_root is not None:
        cpu_group = cpuacct_root / CGROUP_PARENT / job_id
        cpu_group.mkdir(parents=True)
        groups.cpuacct = cpu_group
    return groups


def join_cgroups(box_pid: int, groups: Cgroups) -> None:
    """Move the waiting box into the job's cgroups: everything it starts is counted there."""
    for procs in groups.procs_files():
        procs.write_text(str(box_pid))


def stale_parents() -> list[tuple[str, Path]]:
    """(controller, parent dir) of every hierarchy our job groups live in, for the orphan sweep."""
    parents = [
        ("memory", CGROUP_ROOT / "memory" / CGROUP_PARENT),
        ("pids", CGROUP_ROOT / "pids" / CGROUP_PARENT),
    ]
    cpuacct_root = _cpuacct_root()
    if cpuacct_root is not None:
        parents.append(("cpuacct", cpuacct_root / CGROUP_PARENT))
    parents.append(("unified", CGROUP_ROOT / CGROUP_PARENT))
    return parents


class CgroupPool:
    """The idle v1 groups one runner keeps for its next jobs."""

    def __init__(self) -> None:
        self._idle: list[Cgroups] = []
        self._lock = threading.Lock()

    def acquire(self, job_id: str, memory_bytes: int, pids: int) -> Cgroups:
        with self._lock:
            groups = self._idle.pop() if self._idle else None
        if groups is not None:
            try:
                groups.reset(memory_bytes, pids)
                return groups
            except OSError:
                groups.remove()
        return make_cgroups(job_id, memory_bytes, pids)

    def release(self, groups: Cgroups) -> None:
        """Keep an empty v1 group for the next job; anything else is removed."""
        if groups.reusable and groups.empty():
            with self._lock:
                if len(self._idle) < MAX_IDLE_CGROUPS:
                    self._idle.append(groups)
                    return
        if not groups.remove(attempts=1):
            # The kernel is still reaping the last process: retry off the critical path. Not
            # a daemon thread, so the interpreter waits for it and no cgroup outlives us.
            threading.Thread(target=groups.remove).start()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for groups in idle:
            groups.remove()
