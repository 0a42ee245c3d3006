"""How a job ends, what CPU it used, and what it can reach of the box, on both real backends.

Crashes are told from exits by the real wait status the box's init reports; CPU time is the job's
(every process of it), not the sandbox's; and no process a job can reach matters to the verdict or
the box: the box's init can be neither traced nor read.
"""

from __future__ import annotations

import errno
import json
import signal

import pytest

from sandbox.bwrap import BwrapRunner
from sandbox.bwrap.cgroups import CgroupPool, Cgroups
from sandbox.contract import JobSpec, Limits, Outcome, Runner, signal_name
from sandbox.select import DEFAULT_ROOTFS
from tests.sandbox.conftest import python, shell


def test_a_segfault_is_a_crash_with_its_signal(runner: Runner) -> None:
    result = python(runner, "import ctypes; ctypes.string_at(0)")
    assert (result.outcome, result.signal, result.exit_code) == (Outcome.CRASHED, signal.SIGSEGV, 139)
    assert not result.outcome.retryable and result.signal is not None
    assert signal_name(result.signal) == "SIGSEGV (segmentation fault)"


def test_exit_139_is_an_exit_not_a_crash(runner: Runner) -> None:
    """The init reports the real wait status on both backends, so a shell's `exit 139` is no segfault."""
    result = shell(runner, "exit 139")
    assert (result.outcome, result.exit_code, result.signal) == (Outcome.COMPLETED, 139, None)


def test_a_sigkill_the_job_sends_itself_is_a_crash(runner: Runner) -> None:
    result = python(runner, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert (result.outcome, result.signal) == (Outcome.CRASHED, signal.SIGKILL)


def test_cpu_limit_is_a_timeout_even_when_the_job_ignores_sigxcpu(runner: Runner) -> None:
    code = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True: pass"
    result = python(runner, code, cpu_seconds=1, wall_seconds=10)
    assert (result.outcome, result.signal) == (Outcome.TIMEOUT, signal.SIGKILL)  # the hard limit's kill
    assert result.cpu_seconds is not None and result.cpu_seconds >= 1


BURN = (
    "import os, sys, time\n"
    "def burn(seconds):\n"
    "    start = time.process_time()\n"
    "    while time.process_time() - start < seconds: pass\n"
    "    return time.process_time()\n"
)


def test_cpu_seconds_are_the_jobs_own(runner: Runner) -> None:
    result = python(runner, BURN + "print(burn(1.0))", wall_seconds=20)
    measured = float(result.stdout)
    assert result.outcome is Outcome.COMPLETED and result.cpu_seconds is not None
    assert 0.7 * measured <= result.cpu_seconds <= 1.6 * measured, (result.cpu_seconds, measured)


def test_cpu_seconds_count_every_process_of_the_job(runner: Runner) -> None:
    code = BURN + (
        "child = os.fork()\n"
        "if child == 0:\n"
        "    print(burn(0.6), flush=True); os._exit(0)\n"
        "mine = burn(0.6)\n"
        "os.waitpid(child, 0)\n"
        "print(mine)\n"
    )
    result = python(runner, code, wall_seconds=20)
    measured = sum(float(line) for line in result.stdout.split())
    assert result.outcome is Outcome.COMPLETED and result.cpu_seconds is not None
    assert 0.7 * measured <= result.cpu_seconds <= 1.6 * measured, (result.cpu_seconds, measured)


# From inside the job: every process it can see in /proc that is not itself or its own descendant is
# attacked three ways. Each must fail, so nothing but the job's own processes can be read or written.
REACH_OTHERS = """
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)

class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]

def parent_of(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])

def mine(pid):
    while pid > 1:
        if pid == os.getpid():
            return True
        pid = parent_of(pid)
    return False

def attack(pid):
    found = {}
    found["ptrace"] = ctypes.get_errno() if libc.ptrace(16, pid, 0, 0) == -1 else "attached"
    try:
        with open(f"/proc/{pid}/mem", "rb"):
            found["mem"] = "opened"
    except OSError as exc:
        found["mem"] = exc.errno
    buffer = ctypes.create_string_buffer(64)
    local, remote = IoVec(ctypes.addressof(buffer), 64), IoVec(0x400000, 64)
    got = libc.syscall(310, pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
    found["process_vm_readv"] = ctypes.get_errno() if got == -1 else "read"
    return found

others = [int(p) for p in os.listdir("/proc") if p.isdigit() and not mine(int(p))]
print(json.dumps({pid: attack(pid) for pid in others}))
"""


def test_no_other_process_of_the_box_can_be_traced_or_read(runner: Runner) -> None:
    result = python(runner, REACH_OTHERS)
    assert result.outcome is Outcome.COMPLETED, result
    seen = json.loads(result.stdout)
    assert "1" in seen  # the box's pid 1, on both backends the box's init, is visible
    refused = {errno.EPERM, errno.EACCES, errno.ESRCH}
    assert {pid: how for pid, how in seen.items() if not set(how.values()) <= refused} == {}


def test_the_job_cannot_signal_the_box_away(runner: Runner) -> None:
    """pid 1 survives the job's kill -9 1 (on both backends the box's init is its pid namespace's
    init, which ignores signals from inside)."""
    result = shell(runner, "kill -9 1; sleep 0.2; echo alive; cat /proc/1/status | grep -c Name")
    assert (result.outcome, result.stdout) == (Outcome.COMPLETED, b"alive\n1\n")


def test_the_box_pid_1_is_the_init_under_the_filter(runner: Runner) -> None:
    result = shell(runner, "grep -E '^(Seccomp|NoNewPrivs):' /proc/1/status; cat /proc/1/comm")
    assert result.stdout.decode().split() == ["NoNewPrivs:", "1", "Seccomp:", "2", "perl"]


@pytest.mark.bwrap
def test_without_cgroups_cpu_seconds_come_from_the_reaped_box(
    sandbox_ready: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the host allows no cgroups, the rusage of what the worker reaped still counts every
    process of the job: bwrap's monitor reaps the init, which reaped the job and its children."""
    monkeypatch.setattr(CgroupPool, "acquire", lambda self, job_id, memory, pids: Cgroups())
    runner = BwrapRunner(DEFAULT_ROOTFS)
    code = BURN + (
        "child = os.fork()\n"
        "if child == 0:\n"
        "    print(burn(0.5), flush=True); os._exit(0)\n"
        "mine = burn(0.5)\n"
        "os.waitpid(child, 0)\n"
        "print(mine)\n"
    )
    try:
        result = runner.run(
            JobSpec(command=("python3", "-c", code), limits=Limits(pids=4096, wall_seconds=20))
        )
    finally:
        runner.close()
    measured = sum(float(line) for line in result.stdout.split())
    assert result.outcome is Outcome.COMPLETED and result.cpu_seconds is not None, result
    assert 0.7 * measured <= result.cpu_seconds <= 1.6 * measured, (result.cpu_seconds, measured)
