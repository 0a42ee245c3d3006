"""Hostile jobs against both real backends: each asserts the outcome and that the host is unharmed.

Processes are looked for by a marker unique to the test, never by "anything running as nobody":
other suites and workers may run boxes on this host at the same time.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sandbox import seccomp
from sandbox.contract import JobSpec, Limits, Outcome, Runner
from tests.sandbox.conftest import host_processes_with, python, shell


def wait_until_gone(marker: str, seconds: float = 3.0) -> list[str]:
    """Leftovers by marker, allowing the kernel a moment to finish a SIGKILL."""
    deadline = time.monotonic() + seconds
    while (left := host_processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def test_fork_bomb_is_contained(runner: Runner, marker: str) -> None:
    result = python(
        runner,
        "import os, sys\nwhile True:\n    try: os.fork()\n    except OSError: pass",
        marker,
        wall_seconds=3,
        pids=32,
    )
    assert result.outcome in (Outcome.TIMEOUT, Outcome.COMPLETED)
    assert wait_until_gone(marker) == []
    assert subprocess.run(["true"]).returncode == 0  # the host can still start processes


def test_memory_hog_hits_the_memory_limit(runner: Runner) -> None:
    result = python(
        runner, "chunks = []\nwhile True: chunks.append(b'x' * 10_000_000)", memory_mb=128, wall_seconds=20
    )
    assert result.outcome is Outcome.MEMORY_LIMIT
    assert result.peak_memory_bytes is None or result.peak_memory_bytes <= 140 * 1024 * 1024


def test_cpu_spin_times_out_on_cpu_limit(runner: Runner) -> None:
    result = python(runner, "while True: pass", cpu_seconds=1, wall_seconds=10)
    assert result.outcome is Outcome.TIMEOUT
    assert result.wall_seconds < 5


def test_cpu_spin_in_threads_is_stopped_by_the_wall_clock(runner: Runner, marker: str) -> None:
    code = (
        "import threading\n"
        "def spin():\n"
        "    while True: pass\n"
        "for _ in range(4): threading.Thread(target=spin).start()"
    )
    result = python(runner, code, marker, cpu_seconds=60, wall_seconds=2)
    assert result.outcome is Outcome.TIMEOUT and result.wall_seconds < 5
    assert wait_until_gone(marker) == []


def test_sleep_forever_is_killed_at_the_wall_clock(runner: Runner, marker: str) -> None:
    started = time.monotonic()
    result = python(runner, "import time\ntime.sleep(1000)", marker, wall_seconds=1.5)
    assert result.outcome is Outcome.TIMEOUT
    assert 1.4 <= result.wall_seconds < 4 and time.monotonic() - started < 6
    assert wait_until_gone(marker) == []


def test_daemonised_child_does_not_outlive_the_job(runner: Runner, marker: str) -> None:
    # Double fork plus setsid: the child is re-parented away from the job's main process and keeps
    # no pipe to it, then it would keep running (and could write results) after the job ends.
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        fd = os.open('/dev/null', os.O_RDWR)\n"
        "        for n in (0, 1, 2): os.dup2(fd, n)\n"
        "        time.sleep(300)\n"
        "    os._exit(0)\n"
        "time.sleep(0.3)\n"
        "print('started')\n"
    )
    result = python(runner, code, marker, wall_seconds=10)
    assert result.outcome is Outcome.COMPLETED and result.stdout == b"started\n"
    assert result.wall_seconds < 5  # the job's end is its main process's end, not its daemon's
    assert wait_until_gone(marker) == []


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_gigabyte_of_output_is_truncated_and_worker_memory_stays_flat(runner: Runner) -> None:
    before = _rss_kib()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak.append(_rss_kib())

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = python(
            runner,
            "import sys\nblock = 'x' * 1048576\nfor _ in range(1024): sys.stdout.write(block)",
            output_bytes=100_000,
            wall_seconds=60,
        )
    finally:
        done.set()
        sampler.join()
    assert result.outcome is Outcome.OUTPUT_LIMIT
    assert result.output_truncated and len(result.stdout) == 100_000
    assert max(peak) - before < 64 * 1024  # KiB: the worker never held more than a few chunks


def test_output_on_stderr_is_capped_too(runner: Runner) -> None:
    result = shell(runner, "yes 1>&2", output_bytes=50_000, wall_seconds=20)
    assert result.outcome is Outcome.OUTPUT_LIMIT and len(result.stderr) == 50_000


@pytest.mark.parametrize("target", ["/box/fill", "/tmp/fill", "/dev/shm/fill"])
def test_filling_a_writable_place_stops_at_its_cap(runner: Runner, target: str) -> None:
    result = shell(
        runner,
        f"dd if=/dev/zero of={target} bs=1M count=200; ls -s {target}",
        disk_mb=8,
        file_size_mb=100,
        wall_seconds=20,
    )
    assert result.outcome is Outcome.COMPLETED
    assert b"No space left on device" in result.stderr
    blocks = int(result.stdout.split()[0])
    assert blocks <= 8 * 1024


def test_file_size_limit(runner: Runner) -> None:
    result = shell(runner, "dd if=/dev/zero of=big bs=1M count=5", file_size_mb=2, disk_mb=16)
    assert result.outcome is Outcome.COMPLETED and result.exit_code != 0


@pytest.mark.parametrize("path", ["/usr/evil", "/etc/evil", "/evil", "/root/evil", "/proc/sys/kernel/evil"])
def test_writing_outside_the_work_dir_fails(runner: Runner, path: str) -> None:
    result = shell(runner, f"echo pwned > {path}")
    assert result.exit_code != 0
    assert not Path(path).exists()


def test_host_files_cannot_be_read(runner: Runner) -> None:
    secret = Path("/root") / f"grader-host-secret-{os.getpid()}"
    secret.write_text("TOP-SECRET-HOST-VALUE")
    tmp_secret = Path("/tmp") / f"grader-host-secret-{os.getpid()}"
    tmp_secret.write_text("TOP-SECRET-HOST-VALUE")
    tmp_secret.chmod(0o644)  # even world-readable host files stay out of reach
    shadow_root = next(
        (
            line.split(":")[1]
            for line in Path("/etc/shadow").read_text().splitlines()
            if line.startswith("root:")
        ),
        "",
    )
    try:
        result = shell(
            runner,
            f"cat {secret} {tmp_secret} /etc/shadow /proc/1/environ; ls /var/lib/microcred /root; "
            "grep -r TOP-SECRET / 2>/dev/null | head -1",
            wall_seconds=20,
        )
    finally:
        secret.unlink()
        tmp_secret.unlink()
    seen = result.stdout + result.stderr
    assert b"TOP-SECRET-HOST-VALUE" not in seen
    if len(shadow_root) > 2:  # a real hash, not "*" or "!"
        assert shadow_root.encode() not in seen


def test_another_jobs_files_are_invisible(runner: Runner, marker: str) -> None:
    holder = threading.Thread(
        target=runner.run,
        args=(
            JobSpec(
                command=(
                    "sh",
                    "-c",
                    f"echo x > {marker}; echo x > /tmp/{marker}; echo x > /dev/shm/{marker}; sleep 3",
                ),
                limits=Limits(wall_seconds=10),
            ),
        ),
    )
    holder.start()
    time.sleep(1.5)
    result = shell(runner, f"find / -name '{marker}*' 2>/dev/null; echo done", wall_seconds=20)
    holder.join()
    assert result.stdout == b"done\n"


def test_no_network_to_host_loopback_redis_or_outside(runner: Runner) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    code = (
        "import socket\n"
        f"for host, port in [('127.0.0.1', {port}), ('127.0.0.1', 6379), ('192.0.2.1', 80),"
        " ('1.1.1.1', 53), ('169.254.169.254', 80)]:\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=2); print('CONNECTED', host, port)\n"
        "    except OSError as exc: print('refused', host, port, exc.errno)\n"
    )
    server.settimeout(0.1)
    try:
        result = python(runner, code, wall_seconds=30)
        with pytest.raises(TimeoutError):
            server.accept()  # nothing reached the host's listener
    finally:
        server.close()
    assert b"CONNECTED" not in result.stdout and result.stdout.count(b"refused") == 5


@pytest.mark.parametrize(
    "command",
    [
        "unshare -r true",
        "unshare -U true",
        "mount -t tmpfs none /mnt",
        "chown 0:0 /box",
        "su -c true root </dev/null",
        'python3 -c "import os; os.setuid(0)"',
        "chroot / true",
    ],
)
def test_privilege_tricks_fail(runner: Runner, command: str) -> None:
    result = shell(runner, command)
    assert result.outcome is Outcome.COMPLETED and result.exit_code != 0


def test_runs_as_nobody_with_no_capabilities(runner: Runner) -> None:
    result = shell(runner, "id -u; grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status")
    uid, *caps = result.stdout.decode().splitlines()
    assert uid == "65534"
    assert len(caps) == 5 and all(line.split()[1] == "0000000000000000" for line in caps)


# x86_64 numbers: the box is the same Debian userland on both backends.
KERNEL_SURFACE = {
    "keyctl": (250, 0, -3, 0),
    "bpf": (321, 0, 0, 0),
    "perf_event_open": (298, 0, 0, -1, -1, 0),
    "userfaultfd": (323, 0),
    "unshare_newuser": (272, 0x10000000),
    "clone_newuser": (56, 0x10000000 | 17, 0, 0, 0, 0),
    "io_uring_setup": (425, 1, 0),
    "ptrace_traceme": (101, 0, 0, 0, 0),
    "socket_vsock": (41, 40, 1, 0),  # AF_VSOCK reaches the hypervisor whatever the network namespace
}
SYSCALLS = (
    "import ctypes, json, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "calls = json.loads(sys.argv[1])\n"
    "def call(args):\n"
    "    result = libc.syscall(*(ctypes.c_ulong(a % 2**64) for a in args))\n"
    "    return ctypes.get_errno() if result == -1 else f'allowed: {result}'\n"
    "print(json.dumps({name: call(args) for name, args in calls.items()}))\n"
)


def test_kernel_attack_surface_is_refused(runner: Runner) -> None:
    result = python(runner, SYSCALLS, json.dumps(KERNEL_SURFACE))
    assert result.outcome is Outcome.COMPLETED, result
    assert json.loads(result.stdout) == dict.fromkeys(KERNEL_SURFACE, errno.EPERM)


def _probe_of_every_rule() -> tuple[dict[str, list[int]], dict[str, int]]:
    """A call that each rule of the shared table refuses (arguments that would be harmless if it
    did not), and the errno the table says it gets."""
    calls: dict[str, list[int]] = {}
    expected: dict[str, int] = {}
    for index, rule in enumerate(seccomp.refused_here()):
        number = seccomp.native_syscall(rule.name)
        assert number is not None
        args = [0] * 6
        if rule.name == "ioctl":
            args[0] = 2**64 - 1  # fd -1: EBADF, were the request let through
        if rule.condition is not None:
            position, op, _, value = rule.condition
            args[position] = value if op == "masked_eq" else value + 1
        key = f"{index}:{rule.name}({', '.join(hex(a) for a in args[:3])})"
        calls[key] = [number, *args]
        expected[key] = rule.errno
    return calls, expected


@pytest.mark.bwrap
@pytest.mark.docker
def test_both_backends_refuse_every_call_of_the_shared_table(runners: dict[str, Runner]) -> None:
    calls, expected = _probe_of_every_rule()
    assert len(calls) > 100  # the personality rules alone are 61
    seen = {}
    for name in ("bwrap", "docker"):
        result = python(runners[name], SYSCALLS, json.dumps(calls), wall_seconds=20)
        assert result.outcome is Outcome.COMPLETED, result
        seen[name] = json.loads(result.stdout)
    assert seen["bwrap"] == seen["docker"]
    wrong = {key: got for key, got in seen["bwrap"].items() if got != expected[key]}
    assert wrong == {}


def test_personality_keeps_the_values_docker_allows(runner: Runner) -> None:
    calls = {hex(value): [135, value] for value in seccomp.PERSONALITIES_ALLOWED}
    result = python(runner, SYSCALLS, json.dumps(calls))
    assert all(str(got).startswith("allowed") for got in json.loads(result.stdout).values()), result.stdout


def test_io_uring_and_terminal_injection_are_refused(runner: Runner) -> None:
    # io_uring_setup; TIOCSTI on a terminal of the box's own (Docker's default profile, before
    # Docker 25, allows io_uring: the project's profile does not)
    code = (
        "import ctypes, fcntl, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.syscall(425, 1, 0), ctypes.get_errno())\n"
        "leader, follower = os.openpty()\n"
        "try:\n"
        "    fcntl.ioctl(follower, 0x5412, b'x'); print('injected')\n"
        "except OSError as exc: print('refused', exc.errno)\n"
    )
    result = python(runner, code)
    assert result.stdout.decode().split() == ["-1", str(errno.EPERM), "refused", str(errno.EPERM)]


FOREIGN_ABI = {
    # x32 getpid: the native call number with the x32 bit
    "x32": "ctypes.CDLL(None).syscall(0x40000000 | 39)",
    # i386 getpid through int 0x80, from code of our own: mov eax, 20; int 0x80; ret
    "i386": (
        "import mmap\n"
        "page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
        "page.write(bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3]))\n"
        "ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))()"
    ),
}


@pytest.mark.parametrize("abi", sorted(FOREIGN_ABI))
def test_foreign_abi_calls_kill_the_job_but_threads_and_processes_work(runner: Runner, abi: str) -> None:
    foreign = "\n".join("    " + line for line in FOREIGN_ABI[abi].splitlines())
    code = (
        "import ctypes, subprocess, sys, threading, time\n"
        "thread = threading.Thread(target=print, args=('thread',)); thread.start(); thread.join()\n"
        "print(subprocess.run(['echo', 'child'], capture_output=True, text=True).stdout.strip())\n"
        "sys.stdout.flush()\n"
        "def foreign():\n"
        f"{foreign}\n"
        "# from a thread: an ABI the filter does not know kills the job, not just the thread\n"
        "threading.Thread(target=foreign).start()\n"
        "time.sleep(2)\n"
        "print('survived')\n"
    )
    result = python(runner, code, wall_seconds=10)
    assert result.stdout.decode().split() == ["thread", "child"], result
    assert (result.outcome, result.signal) == (Outcome.CRASHED, signal.SIGSYS)


def test_planted_symlinks_at_collected_paths_are_not_followed(runner: Runner) -> None:
    secret = Path("/root") / f"collect-secret-{os.getpid()}"
    secret.write_text("HOST-FILE-CONTENT")
    try:
        result = runner.run(
            JobSpec(
                command=(
                    "sh",
                    "-c",
                    f"ln -s {secret} report.json; ln -s /etc/passwd out.txt; ln -s /root dir; "
                    "mkfifo pipe; mkdir sub; ln -s ../report.json sub/r.json",
                ),
                collect=("report.json", "out.txt", f"dir/{secret.name}", "pipe", "sub/r.json"),
            )
        )
    finally:
        secret.unlink()
    assert result.outcome is Outcome.COMPLETED
    assert result.files == {}
    assert set(result.missing_files) == {"report.json", "out.txt", f"dir/{secret.name}", "pipe", "sub/r.json"}


def test_a_collected_file_over_its_cap_is_not_returned(runner: Runner) -> None:
    result = runner.run(
        JobSpec(
            command=("sh", "-c", "head -c 5000 /dev/zero > big; echo ok > small"),
            collect=("big", "small"),
            limits=Limits(collect_bytes=1000),
        )
    )
    assert result.files == {"small": b"ok\n"} and result.missing_files == ("big",)


def test_huge_argv_or_environment_is_refused_before_running() -> None:
    with pytest.raises(ValueError, match="command line"):
        JobSpec(command=("echo", "x" * 300_000))
    with pytest.raises(ValueError, match="environment"):
        JobSpec(command=("true",), env={f"V{i}": "x" * 1000 for i in range(100)})


def test_largest_allowed_argv_runs(runner: Runner) -> None:
    result = runner.run(JobSpec(command=("sh", "-c", "echo ${#1}", "sh", "x" * 120_000)))
    assert (result.outcome, result.stdout) == (Outcome.COMPLETED, b"120000\n")


def test_huge_environment_built_inside_the_box_is_the_jobs_problem(runner: Runner) -> None:
    result = python(
        runner, "import os, subprocess\nos.environ['BIG'] = 'x' * 50_000_000\nsubprocess.run(['true'])"
    )
    assert result.outcome in (Outcome.COMPLETED, Outcome.MEMORY_LIMIT) and result.exit_code != 0
