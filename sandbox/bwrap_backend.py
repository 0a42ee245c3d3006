"""The bubblewrap backend's old import path, kept so that importers outside this package keep working.

The backend lives in the `sandbox.bwrap` package (cgroups, launch, supervise, reaping, mounts,
runner); import from there.
"""

from sandbox.bwrap import (
    CGROUP_PARENT,
    CGROUP_ROOT,
    DEFAULT_JOBS_DIR,
    BwrapRunner,
    cgroup_support,
    sweep_orphans,
)

__all__ = [
    "CGROUP_PARENT",
    "CGROUP_ROOT",
    "DEFAULT_JOBS_DIR",
    "BwrapRunner",
    "cgroup_support",
    "sweep_orphans",
]
