"""Ordinary jobs on both backends, and the parity of outcomes between them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.contract import BoxFile, JobSpec, Limits, Outcome, Runner
from tests.support.sandboxes import make_runner

ROOT = Path(__file__).resolve().parents[2]


def test_hello_files_stdin_and_collect(runner: Runner) -> None:
    result = runner.run(
        JobSpec(
            command=("python3", "main.py"),
            files=(
                BoxFile(
                    "main.py",
                    b"import sys\nopen('out/r.txt','w').write(sys.stdin.read().upper())\nprint('ok')",
                ),
                BoxFile("out/.keep", b""),
            ),
            stdin=b"hello",
            collect=("out/r.txt", "absent.txt"),
        )
    )
    assert (result.outcome, result.exit_code, result.stdout) == (Outcome.COMPLETED, 0, b"ok\n")
    assert result.files == {"out/r.txt": b"HELLO"} and result.missing_files == ("absent.txt",)


def test_exit_code_and_own_signal(runner: Runner) -> None:
    assert runner.run(JobSpec(command=("sh", "-c", "exit 3"))).exit_code == 3
    killed = runner.run(JobSpec(command=("sh", "-c", "kill -TERM $$")))
    assert (killed.outcome, killed.exit_code, killed.signal) == (Outcome.COMPLETED, 143, 15)


def test_environment_is_only_what_the_spec_names(runner: Runner) -> None:
    result = runner.run(JobSpec(command=("env",), env={"ANSWER": "42"}))
    names = {line.split("=", 1)[0] for line in result.stdout.decode().splitlines()}
    assert names <= {"ANSWER", "PATH", "HOME", "LANG", "PWD", "HOSTNAME"}
    assert "ANSWER=42" in result.stdout.decode()


PARITY_JOBS = {
    "hello": JobSpec(command=("python3", "-c", "print('hi')")),
    "exit-7": JobSpec(command=("sh", "-c", "exit 7")),
    "stdin": JobSpec(command=("cat",), stdin=b"abc"),
    "timeout": JobSpec(command=("sleep", "30"), limits=Limits(wall_seconds=1)),
    "cpu": JobSpec(command=("python3", "-c", "while True: pass"), limits=Limits(cpu_seconds=1)),
    "memory": JobSpec(
        command=("python3", "-c", "a=[]\nwhile True: a.append(b'x'*10**7)"), limits=Limits(memory_mb=96)
    ),
    "output": JobSpec(command=("sh", "-c", "yes"), limits=Limits(output_bytes=10_000)),
    "readonly": JobSpec(command=("sh", "-c", "touch /usr/x")),
    "fork": JobSpec(
        command=("python3", "-c", "import os\nfor _ in range(200): os.fork()"),
        limits=Limits(pids=16, wall_seconds=5),
    ),
}


def test_both_backends_give_the_same_outcomes(sandbox_ready: None) -> None:
    bwrap, docker = make_runner("bwrap"), make_runner("docker")
    differences = {}
    for name, job in PARITY_JOBS.items():
        a, b = bwrap.run(job), docker.run(job)
        same_code = a.exit_code == b.exit_code or a.outcome is not Outcome.COMPLETED
        if a.outcome is not b.outcome or not same_code or (a.stdout != b.stdout and name != "output"):
            differences[name] = (
                (a.outcome, a.exit_code, a.stdout[:50]),
                (b.outcome, b.exit_code, b.stdout[:50]),
            )
    assert differences == {}


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_cli_run_prints_json_and_exit_status(backend: str, sandbox_ready: None, tmp_path: Path) -> None:
    script = tmp_path / "hog.py"
    script.write_text("a=[]\nwhile True: a.append(b'x'*10**7)\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox",
            "run",
            "--backend",
            backend,
            "--memory",
            "64",
            "--file",
            f"{script}:hog.py",
            "--",
            "python3",
            "hog.py",
        ],
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


def test_doctor_reports_both_backends_working(sandbox_ready: None) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "doctor"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0
    assert "[ok ] bwrap" in result.stdout and "[ok ] docker" in result.stdout
