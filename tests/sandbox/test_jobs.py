"""Ordinary jobs on both backends, the parity of outcomes between them, clean-up, the CLI and doctor."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from sandbox.bwrap import CGROUP_PARENT, CGROUP_ROOT, BwrapRunner, sweep_orphans
from sandbox.bwrap import runner as bwrap_runner
from sandbox.contract import BoxFile, JobSpec, Limits, Outcome, Runner
from sandbox.docker_backend import LABEL, OWNER_LABEL, DockerRunner
from sandbox.select import DEFAULT_IMAGE, DEFAULT_ROOTFS
from tests.sandbox.conftest import host_processes_with, python, shell

ROOT = Path(__file__).resolve().parents[2]


def test_hello_world(runner: Runner) -> None:
    result = runner.run(JobSpec(command=("echo", "hello, world")))
    assert (result.outcome, result.exit_code, result.signal) == (Outcome.COMPLETED, 0, None)
    assert result.stdout == b"hello, world\n" and result.stderr == b"" and not result.output_truncated
    assert result.wall_seconds > 0 and not result.outcome.retryable


def test_python_files_stdin_and_collect(runner: Runner) -> None:
    result = runner.run(
        JobSpec(
            command=("python3", "main.py"),
            files=(
                BoxFile(
                    "main.py",
                    b"import sys\nopen('out/r.txt','w').write(sys.stdin.read().upper())\nprint('ok')",
                ),
                BoxFile("out/.keep", b""),
                BoxFile("pkg/deep/data.bin", bytes(range(256))),
            ),
            stdin=b"hello",
            collect=("out/r.txt", "pkg/deep/data.bin", "absent.txt"),
        )
    )
    assert (result.outcome, result.exit_code, result.stdout) == (Outcome.COMPLETED, 0, b"ok\n")
    assert result.files == {"out/r.txt": b"HELLO", "pkg/deep/data.bin": bytes(range(256))}
    assert result.missing_files == ("absent.txt",)
    as_json = result.to_json_dict()
    assert as_json["files"]["out/r.txt"] == {"size": 5, "content": "HELLO"}
    assert as_json["outcome"] == "completed" and as_json["stdout_bytes"] == 3
    json.dumps(as_json)


def test_stdin_echo_of_binary_data(runner: Runner) -> None:
    data = os.urandom(200_000)
    result = runner.run(JobSpec(command=("cat",), stdin=data, limits=Limits(output_bytes=300_000)))
    assert result.outcome is Outcome.COMPLETED and result.stdout == data


def test_exit_code_and_own_signal(runner: Runner) -> None:
    assert shell(runner, "exit 3").exit_code == 3
    killed = shell(runner, "kill -TERM $$")
    assert (killed.outcome, killed.exit_code, killed.signal) == (Outcome.CRASHED, 143, 15)
    aborted = python(runner, "import os\nos.abort()")
    assert (aborted.outcome, aborted.signal) == (Outcome.CRASHED, 6)
    assert not aborted.outcome.retryable


def test_file_modes_and_workdir(runner: Runner) -> None:
    result = runner.run(
        JobSpec(
            command=("sh", "-c", "pwd; ./run.sh"),
            files=(BoxFile("run.sh", b"#!/bin/sh\necho ran\n", 0o755),),
        )
    )
    assert result.stdout == b"/box\nran\n"


def test_environment_is_only_what_the_spec_names(runner: Runner) -> None:
    result = runner.run(JobSpec(command=("env",), env={"ANSWER": "42"}))
    names = {line.split("=", 1)[0] for line in result.stdout.decode().splitlines()}
    assert names <= {"ANSWER", "PATH", "HOME", "LANG", "PWD", "HOSTNAME"}
    assert "ANSWER=42" in result.stdout.decode()


def test_missing_command_is_the_jobs_failure_not_ours(runner: Runner) -> None:
    result = runner.run(JobSpec(command=("no-such-program",)))
    assert result.outcome is Outcome.COMPLETED and result.exit_code in (126, 127)


def test_stderr_near_its_limit_and_a_large_returned_file_stay_apart(runner: Runner) -> None:
    script = "head -c 19000 /dev/zero | tr '\\0' e >&2; echo /files: >&2; seq 1 100000 > big"
    result = runner.run(
        JobSpec(command=("sh", "-c", script), collect=("big",), limits=Limits(output_bytes=20_000))
    )
    assert (result.outcome, result.exit_code, result.output_truncated) == (Outcome.COMPLETED, 0, False)
    assert result.stderr == b"e" * 19000 + b"/files:\n"
    assert result.files == {"big": "".join(f"{n}\n" for n in range(1, 100001)).encode()}


@pytest.mark.parametrize(
    "lookalike",
    [
        "bwrap: Can not mount proc on /newroot/proc",
        "/files:",
        "/files:\x1emicrocred-box-up\x1e",
        "microcred box init: PR_SET_DUMPABLE: Operation not permitted\n",
        "0 0.01 0.00\n",
    ],
)
def test_stderr_that_looks_like_our_marks_or_errors_is_still_the_jobs(runner: Runner, lookalike: str) -> None:
    """A learner must not be able to make a failing run look like ours (retryable), nor hide output."""
    for collect in ((), ("out.txt",)):
        job = JobSpec(
            command=("sh", "-c", 'printf %s "$1" >&2; echo real > out.txt; exit 1', "job", lookalike),
            collect=collect,
        )
        result = runner.run(job)
        assert (result.outcome, result.exit_code) == (Outcome.COMPLETED, 1)
        assert result.stderr == lookalike.encode()
        assert result.files == ({"out.txt": b"real\n"} if collect else {})


def test_the_box_has_the_rlimits_of_its_spec(runner: Runner) -> None:
    limits = {"cpu_seconds": 7, "nofile": 100, "file_size_mb": 3}
    result = shell(runner, "ulimit -S -t; ulimit -H -t; ulimit -n; ulimit -f; ulimit -c", **limits)
    assert result.stdout.decode().split() == ["7", "8", "100", str(3 * 1024 * 2), "0"]
    # The box's first process too: a job that can ptrace it must not find it unlimited.
    result = shell(runner, "grep -E '^Max (cpu time|open files|file size|core)' /proc/1/limits", **limits)
    rows = {" ".join(line.split()[:-3]): line.split()[-3:-1] for line in result.stdout.decode().splitlines()}
    assert rows == {
        "Max cpu time": ["7", "8"],
        "Max file size": [str(3 * 1024 * 1024)] * 2,
        "Max core file size": ["0", "0"],
        "Max open files": ["100", "100"],
    }


PARITY_JOBS = {
    "hello": JobSpec(command=("python3", "-c", "print('hi')")),
    "version": JobSpec(
        command=("python3", "-c", "import sys, pytest; print(sys.version_info[:2], pytest.__version__)")
    ),
    "exit-7": JobSpec(command=("sh", "-c", "exit 7")),
    "signal": JobSpec(command=("sh", "-c", "kill -KILL $$")),
    "stdin": JobSpec(command=("cat",), stdin=b"abc"),
    "collect": JobSpec(command=("sh", "-c", "echo 1 > a; ln -s /etc/passwd b"), collect=("a", "b")),
    "timeout": JobSpec(command=("sleep", "30"), limits=Limits(wall_seconds=1)),
    "cpu": JobSpec(command=("python3", "-c", "while True: pass"), limits=Limits(cpu_seconds=1)),
    "memory": JobSpec(
        command=("python3", "-c", "a=[]\nwhile True: a.append(b'x'*10**7)"), limits=Limits(memory_mb=96)
    ),
    "output": JobSpec(command=("sh", "-c", "yes"), limits=Limits(output_bytes=10_000)),
    "readonly": JobSpec(command=("sh", "-c", "touch /usr/x")),
    "disk": JobSpec(
        command=("sh", "-c", "dd if=/dev/zero of=f bs=1M count=20 2>/dev/null"), limits=Limits(disk_mb=4)
    ),
    "fork": JobSpec(
        command=("python3", "-c", "import os\nfor _ in range(200): os.fork()"),
        limits=Limits(pids=16, wall_seconds=5),
    ),
}


@pytest.mark.bwrap
@pytest.mark.docker
def test_both_backends_give_the_same_outcomes(runners: dict[str, Runner]) -> None:
    differences = {}
    for name, job in PARITY_JOBS.items():
        a, b = runners["bwrap"].run(job), runners["docker"].run(job)
        same_code = a.exit_code == b.exit_code or a.outcome is not Outcome.COMPLETED
        same_out = a.stdout == b.stdout or name == "output"
        if a.outcome is not b.outcome or not same_code or not same_out or a.files != b.files:
            differences[name] = (
                (a.outcome, a.exit_code, a.stdout[:50], dict(a.files)),
                (b.outcome, b.exit_code, b.stdout[:50], dict(b.files)),
            )
    assert differences == {}


def _ours(client: docker.DockerClient, owner: str) -> list[str]:
    found = client.api.containers(all=True, filters={"label": f"{OWNER_LABEL}={owner}"})
    return [str(c["Id"]) for c in found]


@pytest.mark.docker
def test_docker_leaves_no_container_behind(sandbox_ready: None) -> None:
    runner = DockerRunner(DEFAULT_IMAGE, warm=1)
    client = docker.from_env()
    for job in (
        JobSpec(command=("true",)),
        JobSpec(command=("sleep", "30"), limits=Limits(wall_seconds=1)),
        JobSpec(command=("sh", "-c", "yes"), limits=Limits(output_bytes=10_000)),
    ):
        runner.run(job)
    runner.close()
    deadline = time.monotonic() + 10
    while _ours(client, runner.owner) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ours(client, runner.owner) == []


@pytest.mark.docker
def test_docker_sweeps_the_boxes_of_a_dead_worker(sandbox_ready: None) -> None:
    client = docker.from_env()
    dead_owner = f"{os.uname().nodename}:999999:deadbeef"  # beyond pid_max's default: never alive
    orphan = client.containers.create(
        DEFAULT_IMAGE, ["sleep", "infinity"], labels={LABEL: "job", OWNER_LABEL: dead_owner}
    )
    try:
        DockerRunner(DEFAULT_IMAGE).sweep_orphans()  # also run when a runner first talks to Docker
        assert _ours(client, dead_owner) == []
    finally:
        with pytest.raises(docker.errors.NotFound):
            orphan.remove(force=True)


def _our_leftovers(pid: int) -> list[str]:
    jobs = [p.name for p in Path("/var/lib/microcred/jobs").glob(f"{pid}-*")]
    groups = [p.name for p in (CGROUP_ROOT / "memory" / CGROUP_PARENT).glob(f"{pid}-*")]
    groups += [p.name for p in (CGROUP_ROOT / "pids" / CGROUP_PARENT).glob(f"{pid}-*")]
    mounts = [line for line in Path("/proc/mounts").read_text().splitlines() if f"/jobs/{pid}-" in line]
    return jobs + groups + mounts


@pytest.mark.bwrap
def test_bwrap_leaves_no_dir_mount_or_cgroup_behind(sandbox_ready: None) -> None:
    before = set(_our_leftovers(os.getpid()))  # idle cgroups other runners of this session keep
    runner = BwrapRunner(DEFAULT_ROOTFS)
    for job in (
        JobSpec(command=("true",), files=(BoxFile("a/b", b"x"),)),
        JobSpec(command=("sleep", "30"), limits=Limits(wall_seconds=1)),
        JobSpec(command=("sh", "-c", "yes"), limits=Limits(output_bytes=10_000)),
    ):
        runner.run(job)
    runner.close()  # the idle cgroups it keeps for reuse go with it
    deadline = time.monotonic() + 10
    while set(_our_leftovers(os.getpid())) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(_our_leftovers(os.getpid())) - before == set()


@pytest.mark.bwrap
def test_a_box_that_cannot_be_set_up_is_a_sandbox_error(sandbox_ready: None, tmp_path: Path) -> None:
    empty_root = tmp_path / "rootfs"  # no /proc to mount on, no /bin/sh: bwrap fails before any job
    empty_root.mkdir(mode=0o755)
    tmp_path.chmod(0o755)
    result = BwrapRunner(empty_root).run(JobSpec(command=("true",)))
    assert result.outcome is Outcome.SANDBOX_ERROR and result.outcome.retryable
    assert result.error is not None and "the box did not start: bwrap:" in result.error


@pytest.mark.bwrap
def test_an_error_after_bwrap_started_never_opens_the_gate(
    sandbox_ready: None, monkeypatch: pytest.MonkeyPatch, marker: str
) -> None:
    """bwrap reads end-of-file on its gate as "go": an error before confinement must kill the box first."""

    def broken(*args: object) -> None:
        time.sleep(0.3)
        raise RuntimeError("lost the worker's nerve")

    monkeypatch.setattr(BwrapRunner, "_confine_and_supervise", broken)
    runner = BwrapRunner(DEFAULT_ROOTFS)
    try:
        result = runner.run(JobSpec(command=("sh", "-c", f"sleep 5 # {marker}")))
    finally:
        runner.close()
    assert result.outcome is Outcome.SANDBOX_ERROR and "lost the worker's nerve" in (result.error or "")
    time.sleep(0.5)
    assert host_processes_with(marker) == []


@pytest.mark.bwrap
def test_the_job_never_starts_unconfined(sandbox_ready: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The box waits at bwrap's gate until it is in its cgroups; if that fails, it dies unopened."""
    jobs_dir = Path("/var/lib/microcred") / f"jobs-test-{os.getpid()}"
    runner = BwrapRunner(DEFAULT_ROOTFS, jobs_dir=jobs_dir)
    seen_while_waiting: list[list[str]] = []

    def failing_join(box_pid: int, groups: object) -> None:
        time.sleep(0.5)  # ample time for an ungated job to have written its file
        seen_while_waiting.append([str(path) for path in jobs_dir.glob("*/box/*")])
        raise OSError("cgroup refused the box")

    monkeypatch.setattr(bwrap_runner, "join_cgroups", failing_join)
    try:
        result = runner.run(JobSpec(command=("sh", "-c", "echo ran > /box/ran; sleep 30")))
    finally:
        runner.close()
        shutil.rmtree(jobs_dir, ignore_errors=True)
    assert result.outcome is Outcome.SANDBOX_ERROR and "cgroup refused the box" in (result.error or "")
    assert seen_while_waiting == [[]]
    assert result.wall_seconds < 5


def _orphaned_boxes() -> list[str]:
    listing = subprocess.run(["ps", "-eo", "pid=,stat=,comm="], capture_output=True, text=True, check=True)
    rows = [line.split() for line in listing.stdout.splitlines()]
    # The box's first process is its init (perl); bwrap's monitor is the other one.
    return [" ".join(row) for row in rows if row[1].startswith("Z") and row[2] in ("bwrap", "perl")]


@pytest.mark.bwrap
def test_jobs_back_to_back_all_run_and_leave_no_zombie(sandbox_ready: None) -> None:
    """A box's init left unreaped would hold a place in the reused pids cgroup until the next job cannot
    fork: bwrap's monitor reaps it, or, when the monitor is killed first, the worker does."""
    runner = BwrapRunner(DEFAULT_ROOTFS)
    before = set(_orphaned_boxes())
    try:
        outcomes = [runner.run(JobSpec(command=("true",), limits=Limits(pids=8))) for _ in range(100)]
    finally:
        runner.close()
    assert [o.error for o in outcomes if o.outcome is not Outcome.COMPLETED] == []
    assert set(_orphaned_boxes()) - before == set()
    assert not _is_subreaper()  # between jobs, orphans of anything else the worker runs go to init


def _is_subreaper() -> bool:
    flag = ctypes.c_int()
    ctypes.CDLL(None, use_errno=True).prctl(37, ctypes.byref(flag), 0, 0, 0)  # PR_GET_CHILD_SUBREAPER
    return bool(flag.value)


@pytest.mark.bwrap
def test_a_reused_cgroup_starts_each_job_afresh(sandbox_ready: None) -> None:
    runner = BwrapRunner(DEFAULT_ROOTFS)
    hog = JobSpec(
        command=("python3", "-c", "a=[]\nwhile True: a.append(b'x'*10**7)"), limits=Limits(memory_mb=96)
    )
    assert runner.run(hog).outcome is Outcome.MEMORY_LIMIT
    calm = runner.run(
        JobSpec(command=("python3", "-c", "x = b'y' * 50_000_000"), limits=Limits(memory_mb=256))
    )
    assert calm.outcome is Outcome.COMPLETED and calm.exit_code == 0  # no stale OOM count, a raised limit
    assert calm.peak_memory_bytes is not None and calm.peak_memory_bytes < 200 * 1024 * 1024
    runner.close()


@pytest.mark.bwrap
def test_bwrap_sweeps_the_leftovers_of_a_dead_worker(sandbox_ready: None) -> None:
    jobs = Path("/var/lib/microcred/jobs")
    stale = jobs / "999999-deadbeef-x" / "box"
    stale.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(stale)], check=True)
    (stale / "left").write_text("x")
    os.symlink("/etc", stale / "link")  # the sweep must delete the link, never follow it
    group = CGROUP_ROOT / "pids" / CGROUP_PARENT / "999999-deadbeef"
    group.mkdir(parents=True)
    assert sweep_orphans(jobs) >= 2
    assert not stale.parent.exists() and not group.exists() and Path("/etc/passwd").exists()
    assert _our_leftovers(999999) == []


@pytest.mark.parametrize(
    "backend",
    [pytest.param("bwrap", marks=pytest.mark.bwrap), pytest.param("docker", marks=pytest.mark.docker)],
)
def test_cli_run_prints_json_and_exit_status(backend: str, sandbox_ready: None, tmp_path: Path) -> None:
    script = tmp_path / "hog.py"
    script.write_text("a=[]\nwhile True: a.append(b'x'*10**7)\n")
    command = [sys.executable, "-m", "sandbox", "run", "--backend", backend, "--memory", "64"]
    result = subprocess.run(
        [*command, "--file", f"{script}:hog.py", "--collect", "hog.py", "--", "python3", "hog.py"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr  # the sandbox did its job; the code failed
    assert json.loads(result.stdout)["outcome"] == "memory_limit"
    bad = subprocess.run(
        [sys.executable, "-m", "sandbox", "run", "--file", "/nonexistent", "--", "true"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert bad.returncode == 2 and "no such file" in bad.stderr and "Traceback" not in bad.stderr
    for args in (["--wall", "0"], ["--memory", "-5"], ["--collect", "../x"], ["--file", f"{script}:/abs"]):
        bad = subprocess.run(
            [sys.executable, "-m", "sandbox", "run", *args, "--", "true"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, (args, bad.stderr)


# The attack suite's jobs as a course team would type them: (CLI options, command, the same job as a spec).
CLI_ATTACKS = [
    (["--wall", "1"], ["sleep", "30"], JobSpec(command=("sleep", "30"), limits=Limits(wall_seconds=1))),
    (
        ["--output", "10000"],
        ["sh", "-c", "yes"],
        JobSpec(command=("sh", "-c", "yes"), limits=Limits(output_bytes=10_000)),
    ),
    (
        ["--cpu", "1"],
        ["python3", "-c", "while True: pass"],
        JobSpec(command=("python3", "-c", "while True: pass"), limits=Limits(cpu_seconds=1)),
    ),
    (
        ["--pids", "16", "--wall", "5"],
        ["python3", "-c", "import os\nfor _ in range(200): os.fork()"],
        JobSpec(
            command=("python3", "-c", "import os\nfor _ in range(200): os.fork()"),
            limits=Limits(pids=16, wall_seconds=5),
        ),
    ),
    ([], ["cat", "/etc/shadow"], JobSpec(command=("cat", "/etc/shadow"))),
    ([], ["unshare", "-U", "true"], JobSpec(command=("unshare", "-U", "true"))),
    (
        ["--wall", "10"],
        ["python3", "-c", "import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)"],
        JobSpec(
            command=("python3", "-c", "import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)"),
            limits=Limits(wall_seconds=10),
        ),
    ),
]


@pytest.mark.parametrize(
    "backend",
    [pytest.param("bwrap", marks=pytest.mark.bwrap), pytest.param("docker", marks=pytest.mark.docker)],
)
def test_cli_runs_the_attack_jobs_with_the_outcomes_of_the_tests(
    backend: str, runners: dict[str, Runner]
) -> None:
    differences = {}
    for options, command, spec in CLI_ATTACKS:
        expected = runners[backend].run(spec)
        printed = subprocess.run(
            [sys.executable, "-m", "sandbox", "run", "--backend", backend, *options, "--", *command],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert printed.returncode == 0, printed.stderr  # whatever the job did, the sandbox did its job
        result = json.loads(printed.stdout)
        if (result["outcome"], result["exit_code"]) != (expected.outcome.value, expected.exit_code):
            differences[" ".join(command)] = (result["outcome"], result["exit_code"], expected)
    assert differences == {}


@pytest.mark.bwrap
@pytest.mark.docker
def test_doctor_reports_both_backends_working(sandbox_ready: None) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "doctor"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0
    assert "[ok ] bwrap" in result.stdout and "[ok ] docker" in result.stdout


def test_doctor_fails_with_the_fix_when_nothing_works(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox",
            "doctor",
            "--image",
            "microcred-absent:none",
            "--rootfs",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 1 and "fix:" in result.stdout and "Traceback" not in result.stderr
