"""The box's system-call rules: one table, compiled for bubblewrap and written out for Docker.

`RULES` names the calls a graded job never needs and an escape often does; both backends refuse
exactly these, so a job meets the same kernel on either. Refused with EPERM: new namespaces and
mounts (also through `clone` flags and the new mount API), the kernel keyring, BPF, perf events,
userfaultfd, io_uring, kernel modules, kexec, swap, accounting, reboot, the clock, raw port I/O,
handle-based opens, vsock sockets (they reach the hypervisor whatever the network namespace), the
TIOCSTI/TIOCLINUX ioctls that push keystrokes into a terminal, and every
process-inspection call (ptrace, process_vm_readv/writev, kcmp, pidfd_getfd, process_madvise): a
job must not read or write any other process's memory, the box's init included. Also refused, as
Docker's default profile refuses them to a container without capabilities: NUMA memory policy,
host and domain names, fanotify, obsolete module and sysctl calls, and `personality` beyond the
values Docker allows (so no ASLR switch-off). `clone3` is refused with ENOSYS, because its flags sit
in memory a filter cannot read: libc then falls back to `clone`, whose flags are checked. System
calls of a foreign ABI (32-bit, x32) kill the whole job.

The default action is allow (a deny-list), on both backends; docs/sandbox.md says why. bubblewrap
gets the table as BPF, compiled once per process by libseccomp (through pyseccomp, imported only
here) and handed to bwrap on a pipe. Docker gets it as an OCI seccomp profile (`docker_profile`)
passed inline; because runc kills only the calling thread on a foreign ABI, the Docker box's init
also loads `arch_guard`, a filter of its own that kills the whole job for those calls.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import platform
from dataclasses import dataclass
from typing import Any

# Each is refused outright; a name this architecture (or libseccomp) lacks is skipped.
REFUSED = (
    # namespaces, mounts, root changes (the box has no capabilities, so these fail anyway: defence in depth)
    "unshare",
    "setns",
    "mount",
    "umount",
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
    "listmount",
    "statmount",
    # other processes: a job reads and writes no memory but its own
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "process_madvise",
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
    "fanotify_init",
    "memfd_secret",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "nfsservctl",
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
    "stime",
    "clock_settime",
    "clock_adjtime",
    "sethostname",
    "setdomainname",
    "_sysctl",
    "sysfs",
    "ustat",
    "get_mempolicy",
    "set_mempolicy",
    "set_mempolicy_home_node",
    "mbind",
    "migrate_pages",
    "move_pages",
    "vm86",
    "vm86old",
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
# vsock reaches the hypervisor and its guest services: no network namespace stops it.
AF_VSOCK = 40
# Docker's default profile lets personality() set only these (the last one only queries).
PERSONALITIES_ALLOWED = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
NATIVE_ARCHES = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}


@dataclass(frozen=True)
class Rule:
    """Refuse `name` with `errno`, when `condition` holds: (argument index, op, mask or value, value).

    op "masked_eq": (arg & mask) == value; op "gt": arg > value (unsigned, 64 bits)."""

    name: str
    errno: int = errno.EPERM
    condition: tuple[int, str, int, int] | None = None


def _personality_rules() -> list[Rule]:
    """personality(p) refused unless p is one of PERSONALITIES_ALLOWED. Rules are OR'd and a rule
    compares an argument once, so the complement is spelled out bit by bit: any bit above 31; a
    bit outside {3, 17} with bit 31 clear; bit 31 with any lower bit clear (so only 0xffffffff)."""
    allowed_low = 0
    for value in PERSONALITIES_ALLOWED:
        if value != 0xFFFFFFFF:
            allowed_low |= value
    top = 1 << 31
    rules = [Rule("personality", condition=(0, "gt", 0, 0xFFFFFFFF))]
    rules += [
        Rule("personality", condition=(0, "masked_eq", (1 << bit) | top, 1 << bit))
        for bit in range(31)
        if not allowed_low & (1 << bit)
    ]
    rules += [Rule("personality", condition=(0, "masked_eq", top | (1 << bit), top)) for bit in range(31)]
    return rules


RULES: tuple[Rule, ...] = (
    *(Rule(name) for name in REFUSED),
    *(Rule("clone", condition=(0, "masked_eq", flag, flag)) for flag in NAMESPACE_FLAGS),
    Rule("clone3", errno=errno.ENOSYS),
    # The request is an int: compare the low 32 bits only, as the kernel does.
    *(
        Rule("ioctl", condition=(1, "masked_eq", 0xFFFFFFFF, request))
        for request in TERMINAL_INJECTION_IOCTLS
    ),
    Rule("socket", condition=(0, "masked_eq", 0xFFFFFFFF, AF_VSOCK)),
    *_personality_rules(),
)


class SeccompUnavailable(RuntimeError):
    """libseccomp is not installed, so no filter can be compiled."""


def _pyseccomp() -> Any:
    try:
        import pyseccomp
    except (ImportError, OSError, RuntimeError) as exc:  # pyseccomp raises when libseccomp is missing
        raise SeccompUnavailable(f"libseccomp cannot be loaded ({exc}); install libseccomp2") from exc
    return pyseccomp


@functools.cache
def native_syscall(name: str) -> int | None:
    """The number of system call `name` on this machine, None if it has no such call."""
    lib = _pyseccomp()
    number = int(lib.resolve_syscall(lib.Arch.NATIVE, name))
    return number if number >= 0 else None


def refused_here() -> tuple[Rule, ...]:
    """The rules whose system call exists on this machine (the others cannot be made)."""
    return tuple(rule for rule in RULES if native_syscall(rule.name) is not None)


@functools.cache
def box_filter() -> bytes:
    """The BPF program bwrap loads with `--seccomp FD` before it execs the box's init."""
    lib = _pyseccomp()
    program = lib.SyscallFilter(defaction=lib.ALLOW)
    # libseccomp kills only the calling thread by default; the whole job goes instead.
    program.set_attr(lib.Attr.ACT_BADARCH, lib.KILL_PROCESS)
    for rule in refused_here():
        if rule.condition is None:
            program.add_rule(lib.ERRNO(rule.errno), rule.name)
            continue
        index, op, first, second = rule.condition
        if op == "masked_eq":
            argument = lib.Arg(index, lib.MASKED_EQ, first, second)
        else:
            argument = lib.Arg(index, lib.GT, second)
        program.add_rule(lib.ERRNO(rule.errno), rule.name, argument)
    return _export(program)


@functools.cache
def arch_guard() -> bytes:
    """A BPF program that allows every native call and kills the process for any other ABI."""
    lib = _pyseccomp()
    program = lib.SyscallFilter(defaction=lib.ALLOW)
    program.set_attr(lib.Attr.ACT_BADARCH, lib.KILL_PROCESS)
    return _export(program)


@functools.cache
def docker_profile() -> str:
    """`RULES` as an OCI seccomp profile, for `security_opt=["seccomp=<this>"]`.

    Only the native architecture is listed: runc then treats every other ABI as a bad
    architecture (and kills the calling thread; the box's init adds `arch_guard` for the process)."""
    arch = NATIVE_ARCHES.get(platform.machine())
    if arch is None:
        raise SeccompUnavailable(f"no seccomp profile for the {platform.machine()} architecture")
    syscalls: list[dict[str, Any]] = []
    for rule in refused_here():
        entry: dict[str, Any] = {"names": [rule.name], "action": "SCMP_ACT_ERRNO", "errnoRet": rule.errno}
        if rule.condition is not None:
            index, op, first, second = rule.condition
            if op == "masked_eq":
                # OCI's masked-equal: `value` is the mask, `valueTwo` what the masked argument equals.
                entry["args"] = [
                    {"index": index, "value": first, "valueTwo": second, "op": "SCMP_CMP_MASKED_EQ"}
                ]
            else:
                entry["args"] = [{"index": index, "value": second, "valueTwo": 0, "op": "SCMP_CMP_GT"}]
        syscalls.append(entry)
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": [arch], "syscalls": syscalls}
    return json.dumps(profile, separators=(",", ":"))


def _export(program: Any) -> bytes:
    program_fd = os.memfd_create("microcred-seccomp")
    try:
        program.export_bpf(_FileNumber(program_fd))
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
