"""The bubblewrap backend: a box made of Linux namespaces, rlimits, cgroups and a seccomp filter.

Each job gets a fresh work dir (a size-capped tmpfs when we run as root), a read-only root made of
the grading root filesystem (refused when a foreign mount sits below it), new user/pid/net/ipc/
uts/cgroup namespaces, a cleared environment and no capabilities. bwrap itself is started as an
unprivileged host user (`setpriv`), so even the user namespace maps the box to nobody, never to
root. Memory, process counts and CPU accounting are per-job cgroups (v1 or v2) where the host lets
us create them; CPU time, file size, open files and address space are rlimits; the wall clock is a
poll loop here that kills the whole box. The box's pid 1 is the box's init (sandbox.boxinit),
whose end takes every process of the box with it.

Modules: `cgroups` (per-job groups), `launch` (work dir, files, rlimits, bwrap's command line),
`supervise` (the poll loop), `reaping` (orphan adoption, the sweep of dead workers' leftovers),
`mounts` (foreign mounts below a root), `runner` (`BwrapRunner`), `build` (setup images).
"""

from sandbox.bwrap.cgroups import CGROUP_PARENT, CGROUP_ROOT, cgroup_support
from sandbox.bwrap.reaping import DEFAULT_JOBS_DIR, sweep_orphans
from sandbox.bwrap.runner import BwrapRunner

__all__ = [
    "CGROUP_PARENT",
    "CGROUP_ROOT",
    "DEFAULT_JOBS_DIR",
    "BwrapRunner",
    "cgroup_support",
    "sweep_orphans",
]
