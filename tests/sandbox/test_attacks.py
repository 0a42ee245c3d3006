"""Hostile jobs against both real backends: each asserts the outcome and that the host is unharmed."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sandbox.contract import JobSpec, Limits, Outcome, Runner


def box_processes() -> list[str]:
    """Processes of the box user (nobody) still running on the host (zombies are dead, only unreaped)."""
    result = subprocess.run(["ps", "-u", "65534", "-o", "pid=,stat=,args="], capture_output=True, text=True)
    return [line for line in result.stdout.splitlines() if line.strip() and " Z" not in line]


def run(runner: Runner, *command: str, **limits: float) -> object:
    return runner.run(JobSpec(command=command, limits=Limits(**limits)))  # type: ignore[arg-type]


def python(runner: Runner, code: str, **limits: float):  # type: ignore[no-untyped-def]
    return runner.run(JobSpec(command=("python3", "-c", code), limits=Limits(**limits)))  # type: ignore[arg-type]


def test_fork_bomb_is_contained(runner: Runner) -> None:
    result = python(
        runner,
        "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass",
        wall_seconds=3,
        pids=32,
    )
    assert result.outcome in (Outcome.TIMEOUT, Outcome.COMPLETED)
    assert box_processes() == []
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


def test_sleep_forever_is_killed_at_the_wall_clock(runner: Runner) -> None:
    started = time.monotonic()
    result = run(runner, "sleep", "1000", wall_seconds=1.5)
    assert result.outcome is Outcome.TIMEOUT  # type: ignore[attr-defined]
    assert time.monotonic() - started < 6
    assert box_processes() == []


def test_daemonised_child_does_not_outlive_the_job(runner: Runner) -> None:
    result = run(runner, "sh", "-c", "(setsid sleep 300 >/dev/null 2>&1 &) ; echo started", wall_seconds=10)
    assert result.outcome is Outcome.COMPLETED and result.stdout == b"started\n"  # type: ignore[attr-defined]
    assert result.wall_seconds < 5  # type: ignore[attr-defined]
    time.sleep(0.3)
    assert box_processes() == []


def test_a_gigabyte_of_output_is_truncated_and_worker_memory_stays_flat(runner: Runner) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = python(
        runner,
        "import sys\nblock = 'x' * 1048576\nfor _ in range(1024): sys.stdout.write(block)",
        output_bytes=100_000,
        wall_seconds=30,
    )
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert result.outcome is Outcome.OUTPUT_LIMIT
    assert result.output_truncated and len(result.stdout) == 100_000
    assert (after - before) < 64 * 1024  # KiB: the worker never held the gigabyte


@pytest.mark.parametrize("target", ["/box/fill", "/tmp/fill", "/dev/shm/fill"])
def test_filling_a_writable_place_stops_at_its_cap(runner: Runner, target: str) -> None:
    result = run(
        runner,
        "sh",
        "-c",
        f"dd if=/dev/zero of={target} bs=1M count=200; ls -s {target}",
        disk_mb=8,
        file_size_mb=100,
        wall_seconds=20,
    )
    assert result.outcome is Outcome.COMPLETED  # type: ignore[attr-defined]
    assert b"No space left on device" in result.stderr  # type: ignore[attr-defined]
    blocks = int(result.stdout.split()[0])  # type: ignore[attr-defined]
    assert blocks <= 8 * 1024


def test_file_size_limit(runner: Runner) -> None:
    result = run(runner, "sh", "-c", "dd if=/dev/zero of=big bs=1M count=5", file_size_mb=2, disk_mb=16)
    assert result.exit_code != 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/usr/evil", "/etc/evil", "/evil", "/root/evil"])
def test_writing_outside_the_work_dir_fails(runner: Runner, path: str) -> None:
    result = run(runner, "sh", "-c", f"echo pwned > {path}")
    assert result.exit_code != 0  # type: ignore[attr-defined]
    assert not Path(path).exists()


def test_host_files_cannot_be_read(runner: Runner, tmp_path: Path) -> None:
    secret = Path("/root") / f"grader-host-secret-{os.getpid()}"
    secret.write_text("TOP-SECRET-HOST-VALUE")
    try:
        result = run(
            runner,
            "sh",
            "-c",
            f"cat {secret} /etc/shadow /proc/1/environ; ls /var/lib/microcred; "
            "grep -r TOP-SECRET / 2>/dev/null | head -1",
        )
    finally:
        secret.unlink()
    assert b"TOP-SECRET-HOST-VALUE" not in result.stdout + result.stderr  # type: ignore[attr-defined]
    assert b"GRADER_" not in result.stdout  # type: ignore[attr-defined]


def test_another_jobs_files_are_invisible(runner: Runner) -> None:
    marker = f"other-job-{os.getpid()}"
    holder = threading.Thread(
        target=runner.run,
        args=(
            JobSpec(
                command=("sh", "-c", f"echo x > {marker}; echo x > /tmp/{marker}; sleep 3"),
                limits=Limits(wall_seconds=10),
            ),
        ),
    )
    holder.start()
    time.sleep(1.5)
    result = run(runner, "sh", "-c", f"find / -name '{marker}*' 2>/dev/null; echo done")
    holder.join()
    assert result.stdout == b"done\n"  # type: ignore[attr-defined]


def test_no_network_to_host_loopback_redis_or_outside(runner: Runner) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    code = (
        "import socket\n"
        f"for host, port in [('127.0.0.1', {port}), ('127.0.0.1', 6379), ('192.0.2.1', 80)]:\n"
        "    try:\n"
        "        socket.create_connection((host, port), timeout=2); print('CONNECTED', host, port)\n"
        "    except OSError as exc: print('refused', host, port, exc.errno)\n"
    )
    try:
        result = python(runner, code, wall_seconds=20)
    finally:
        server.close()
    assert b"CONNECTED" not in result.stdout and result.stdout.count(b"refused") == 3


@pytest.mark.parametrize(
    "command",
    [
        "unshare -r true",
        "mount -t tmpfs none /mnt",
        "chown 0:0 /box",
        "su -c true root </dev/null",
        'python3 -c "import os; os.setuid(0)"',
    ],
)
def test_privilege_tricks_fail(runner: Runner, command: str) -> None:
    result = run(runner, "sh", "-c", command)
    assert result.exit_code != 0  # type: ignore[attr-defined]


def test_runs_as_nobody_with_no_capabilities(runner: Runner) -> None:
    result = run(
        runner, "sh", "-c", "id -u; grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status"
    )
    uid, caps, _ = result.stdout.decode().splitlines()  # type: ignore[attr-defined]
    assert uid == "65534" and caps.split()[1] == "0000000000000000"


def test_planted_symlink_at_a_collected_path_is_not_followed(runner: Runner) -> None:
    secret = Path("/root") / f"collect-secret-{os.getpid()}"
    secret.write_text("HOST-FILE-CONTENT")
    try:
        result = runner.run(
            JobSpec(
                command=("sh", "-c", f"ln -s {secret} report.json; ln -s /etc/passwd out.txt"),
                collect=("report.json", "out.txt"),
            )
        )
    finally:
        secret.unlink()
    assert result.files == {} and set(result.missing_files) == {"report.json", "out.txt"}


def test_huge_argv_or_environment_is_refused_before_running() -> None:
    with pytest.raises(ValueError, match="command line"):
        JobSpec(command=("echo", "x" * 300_000))
    with pytest.raises(ValueError, match="environment"):
        JobSpec(command=("true",), env={f"V{i}": "x" * 1000 for i in range(100)})


def test_huge_environment_built_inside_the_box_is_the_jobs_problem(runner: Runner) -> None:
    result = python(
        runner, "import os, subprocess\nos.environ['BIG'] = 'x' * 50_000_000\nsubprocess.run(['true'])"
    )
    assert result.outcome in (Outcome.COMPLETED, Outcome.MEMORY_LIMIT) and result.exit_code != 0
