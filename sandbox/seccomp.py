"""The bubblewrap box's seccomp filter: the system calls a graded job never needs and an escape often does.

Docker applies its default profile to every container; this is the bubblewrap side of that parity,
after the filter Flatpak puts on its bwrap sandboxes. Refused with EPERM: new namespaces and mounts
(also through `clone` flags and the new mount API), the kernel keyring, BPF, perf events,
userfaultfd, io_uring, kernel modules, kexec, swap, accounting, reboot, the clock, raw port I/O,
handle-based opens, and the TIOCSTI/TIOCLINUX ioctls that push keystrokes into a terminal. `clone3`
is refused with ENOSYS, because its flags sit in memory a filter cannot read: libc then falls back
to `clone`, whose flags are checked. System calls of a foreign ABI (32-bit, x32) kill the job.

The program is compiled once per process by libseccomp (through pyseccomp, the only module that
imports it) and handed to bwrap as BPF on a pipe for each job.
"""

from __future__ import annotations

import errno
import functools
import os

# Each is refused outright; a name this architecture lacks is skipped.
REFUSED = (
    # namespaces, mounts, root changes (the box has no capabilities, so these fail anyway: defence in depth)
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    # kernel attack surface a test suite has no use for
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "acct",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "quotactl",
    "quotactl_fd",
    "lookup_dcookie",
    "uselib",
    "vhangup",
    "name_to_handle_at",
    "open_by_handle_at",
    "iopl",
    "ioperm",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
)
NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
TERMINAL_INJECTION_IOCTLS = (0x5412, 0x541C)  # TIOCSTI, TIOCLINUX


class SeccompUnavailable(RuntimeError):
    """libseccomp is not installed, so no filter can be compiled."""


@functools.cache
def box_filter() -> bytes:
    """The BPF program bwrap loads with `--seccomp FD` before it execs the job."""
    try:
        import pyseccomp
    except (ImportError, OSError, RuntimeError) as exc:  # pyseccomp raises when libseccomp is missing
        raise SeccompUnavailable(f"libseccomp cannot be loaded ({exc}); install libseccomp2") from exc

    refuse = pyseccomp.ERRNO(errno.EPERM)
    rules = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
    # libseccomp kills only the calling thread by default; the whole job goes instead.
    rules.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.KILL_PROCESS)
    for name in REFUSED:
        if pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) < 0:
            continue  # not a system call on this architecture
        rules.add_rule(refuse, name)
    for flag in NAMESPACE_FLAGS:
        rules.add_rule(refuse, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    rules.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    for request in TERMINAL_INJECTION_IOCTLS:
        # The request is an int: compare the low 32 bits only, as the kernel does.
        rules.add_rule(refuse, "ioctl", pyseccomp.Arg(1, pyseccomp.MASKED_EQ, 0xFFFFFFFF, request))
    program_fd = os.memfd_create("microcred-seccomp")
    try:
        rules.export_bpf(_FileNumber(program_fd))
        size = os.lseek(program_fd, 0, os.SEEK_END)
        return os.pread(program_fd, size, 0)
    finally:
        os.close(program_fd)


class _FileNumber:
    """What `export_bpf` needs of a file: its descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd
