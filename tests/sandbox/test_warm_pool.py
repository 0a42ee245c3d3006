"""Docker's warm pool on the real engine: a job in a warm container is the same job, in the same box.

Each pooled job here is checked to have taken a ready container (the pool's hit count), and the
same isolation checks the suites run on a fresh container run on the pooled path: no network, a
read-only root, not root, no capabilities, the init as pid 1 under the filter. A container serves
one job only; the pool refills itself; a pool of 0 works; a job whose limits the warm containers
do not have gets a fresh one; a worker's containers go at exit and, if it is killed, at the next
runner's start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from sandbox.contract import BoxFile, JobSpec, Limits, Outcome, RunResult, Serve
from sandbox.docker_backend import OWNER_LABEL, BoxShape, DockerRunner
from sandbox.select import DEFAULT_IMAGE
from tests.sandbox import test_attacks, test_box
from tests.sandbox.conftest import shell

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
READY_SECONDS = 60.0  # a loaded CI host makes a container in well under this


class PooledOnly:
    """A Docker runner each of whose jobs is made to run in a container the pool had ready, and
    checked to have done so (a fresh one made on the job's path would prove nothing here)."""

    name = "docker"

    def __init__(self, runner: DockerRunner) -> None:
        self.runner = runner

    def run(self, spec: JobSpec, *, serve: Serve | None = None) -> RunResult:
        shape = BoxShape.of(spec, self.runner.image)
        self.runner.pool.want(shape)
        assert self.runner.pool.wait_ready(shape, count=1, timeout=READY_SECONDS)
        hits = self.runner.pool.stats().hits
        result = self.runner.run(spec, serve=serve)
        assert self.runner.pool.stats().hits == hits + 1, "the job did not take a warm container"
        return result


@pytest.fixture(scope="module")
def pooled_runner(sandbox_ready: None) -> Iterator[DockerRunner]:
    runner = DockerRunner(DEFAULT_IMAGE, warm=2)
    yield runner
    runner.close()


@pytest.fixture
def pooled(pooled_runner: DockerRunner) -> PooledOnly:
    return PooledOnly(pooled_runner)


@pytest.fixture(scope="module")
def fresh(sandbox_ready: None) -> Iterator[DockerRunner]:
    runner = DockerRunner(DEFAULT_IMAGE, warm=0)
    yield runner
    runner.close()


def ours(owner: str) -> list[dict[str, Any]]:
    client = docker.from_env()
    found: list[dict[str, Any]] = client.api.containers(all=True, filters={"label": f"{OWNER_LABEL}={owner}"})
    return found


def wait_until_gone(owner: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while (left := ours(owner)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


PROGRAM = (
    b"import sys\n"
    b"data = sys.stdin.read()\n"
    b"open('out.txt', 'w').write(data.upper())\n"
    b"print('read', len(data)); print('to stderr', file=sys.stderr)\n"
    b"sys.exit(3)\n"
)


def test_a_pooled_job_gives_the_same_result_as_a_fresh_container(
    pooled: PooledOnly, fresh: DockerRunner
) -> None:
    job = JobSpec(
        command=("python3", "main.py"),
        files=(BoxFile("main.py", PROGRAM),),
        stdin=b"hello \x10\x11 world",  # the bytes of Docker's detach keys pass through untouched
        collect=("out.txt", "absent.txt"),
        env={"ONLY": "this"},
    )
    a, b = pooled.run(job), fresh.run(job)
    seen = [
        (r.outcome, r.exit_code, r.stdout, r.stderr, dict(r.files), r.missing_files, r.output_truncated)
        for r in (a, b)
    ]
    assert seen[0] == seen[1]
    assert seen[0] == (
        Outcome.COMPLETED,
        3,
        b"read 14\n",
        b"to stderr\n",
        {"out.txt": b"HELLO \x10\x11 WORLD"},
        ("absent.txt",),
        False,
    )
    assert a.cpu_seconds is not None and a.cpu_seconds < 2  # the job's, not the warm init's idle life


def test_a_pooled_box_is_as_isolated_as_a_fresh_one(pooled: PooledOnly) -> None:
    # The suites' own isolation checks, each on a warm container.
    test_attacks.test_no_network_to_host_loopback_redis_or_outside(pooled)
    for path in ("/usr/evil", "/etc/evil", "/evil", "/root/evil"):
        test_attacks.test_writing_outside_the_work_dir_fails(pooled, path)
    test_attacks.test_runs_as_nobody_with_no_capabilities(pooled)
    for command in ("unshare -r true", "mount -t tmpfs none /mnt", "chown 0:0 /box", "chroot / true"):
        test_attacks.test_privilege_tricks_fail(pooled, command)
    test_attacks.test_kernel_attack_surface_is_refused(pooled)
    test_box.test_no_other_process_of_the_box_can_be_traced_or_read(pooled)
    test_box.test_the_job_cannot_signal_the_box_away(pooled)
    test_box.test_the_box_pid_1_is_the_init_under_the_filter(pooled)


def test_a_pooled_box_keeps_the_limits_of_its_job(pooled: PooledOnly) -> None:
    """The wall clock counts from the job, not from when the warm container was made; memory,
    pids and disk are the container's, made for exactly these limits."""
    started = time.monotonic()
    slept = shell(pooled, "sleep 30", wall_seconds=1)
    assert slept.outcome is Outcome.TIMEOUT and time.monotonic() - started < 10
    hog = pooled.run(
        JobSpec(
            command=("python3", "-c", "x = bytearray(200 * 2**20); print('allocated')"),
            limits=Limits(memory_mb=64),
        )
    )
    assert hog.outcome is Outcome.MEMORY_LIMIT and b"allocated" not in hog.stdout
    fill = shell(pooled, "dd if=/dev/zero of=/box/fill bs=1M count=50 2>&1; ls -s /box/fill", disk_mb=8)
    assert b"No space left on device" in fill.stdout and int(fill.stdout.split()[-2]) <= 8 * 1024


def test_a_container_never_serves_two_jobs(pooled: PooledOnly) -> None:
    leave = "echo secret > /tmp/left; echo secret > /box/left; cat /etc/hostname; (sleep 60 &) ; true"
    first = shell(pooled, leave)
    second = shell(pooled, "ls -A /tmp /box; cat /etc/hostname; grep -l sleep /proc/[0-9]*/comm | wc -l")
    assert first.outcome is Outcome.COMPLETED and second.outcome is Outcome.COMPLETED
    first_host = first.stdout.split()[-1]
    lines = second.stdout.decode().split()
    assert "left" not in lines  # neither /tmp nor /box has what the first job left
    assert lines[-2].encode() != first_host  # another container (its hostname is its id)
    assert lines[-1] == "0"  # and the first job's leftover process is nowhere


def test_the_pool_refills_off_the_jobs_path(pooled_runner: DockerRunner) -> None:
    job = JobSpec(command=("true",), limits=Limits(pids=33))  # a shape of this test's own
    shape = BoxShape.of(job, pooled_runner.image)
    assert pooled_runner.warm_up(job, timeout=READY_SECONDS)
    assert pooled_runner.pool.ready(shape) == 2
    before = pooled_runner.pool.stats()
    for _ in range(2):
        assert pooled_runner.run(job).outcome is Outcome.COMPLETED
    after_jobs = pooled_runner.pool.stats()
    assert after_jobs.hits == before.hits + 2
    assert pooled_runner.pool.wait_ready(shape, timeout=READY_SECONDS)  # back to 2, none used
    refilled = pooled_runner.pool.stats()
    assert refilled.made >= before.made + 2 and refilled.discarded >= before.discarded + 2
    ready_ids = {box.id for box in pooled_runner.pool.boxes(shape)}
    alive = {c["Id"] for c in ours(pooled_runner.owner) if c["State"] == "running"}
    assert ready_ids <= alive


def test_with_the_pool_off_jobs_run_in_fresh_containers(fresh: DockerRunner) -> None:
    result = fresh.run(JobSpec(command=("sh", "-c", "echo hi; cat /etc/hostname")))
    assert result.outcome is Outcome.COMPLETED and result.stdout.startswith(b"hi\n")
    stats = fresh.pool.stats()
    assert stats.hits == 0 and stats.ready == 0 and stats.made == 0
    assert wait_until_gone(fresh.owner) == []  # the used one is removed, none is made ahead


def test_a_job_with_larger_limits_than_the_warm_boxes_gets_a_fresh_one(pooled_runner: DockerRunner) -> None:
    small = JobSpec(command=("true",), limits=Limits(memory_mb=64, pids=34))
    small_shape = BoxShape.of(small, pooled_runner.image)
    assert pooled_runner.warm_up(small, timeout=READY_SECONDS)
    warm_ids = {box.id for box in pooled_runner.pool.boxes(small_shape)}
    before = pooled_runner.pool.stats()
    big = pooled_runner.run(
        JobSpec(
            command=("python3", "-c", "x = bytearray(150 * 2**20); print('allocated')"),
            limits=Limits(memory_mb=256, pids=34),
        )
    )
    # 150 MB fit: the job had its own 256 MB, not the warm boxes' 64 MB
    assert (big.outcome, big.stdout) == (Outcome.COMPLETED, b"allocated\n"), big
    assert pooled_runner.pool.stats().misses == before.misses + 1
    assert {box.id for box in pooled_runner.pool.boxes(small_shape)} == warm_ids  # untouched


WORKER = """
import sys, time
sys.path.insert(0, {root!r})
from sandbox.contract import JobSpec
from sandbox.docker_backend import DockerRunner
runner = DockerRunner({image!r}, warm=2)
assert runner.warm_up(JobSpec(command=("true",)), timeout=60)
print(runner.owner, flush=True)
if sys.argv[1] == "wait":
    time.sleep(600)
"""


def start_worker(mode: str) -> tuple[subprocess.Popen[str], str]:
    code = WORKER.format(root=str(ROOT), image=DEFAULT_IMAGE)
    process = subprocess.Popen([sys.executable, "-c", code, mode], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    owner = process.stdout.readline().strip()
    assert owner, "the worker did not warm its pool"
    return process, owner


def test_a_worker_that_exits_removes_its_warm_containers(sandbox_ready: None) -> None:
    process, owner = start_worker("exit")
    assert process.wait(timeout=120) == 0
    assert ours(owner) == []  # removed before the process ended, not later


def test_the_warm_containers_of_a_killed_worker_go_at_the_next_start(sandbox_ready: None) -> None:
    process, owner = start_worker("wait")
    try:
        assert len(ours(owner)) >= 2
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert len(ours(owner)) >= 2  # nothing ran at its end
    successor = DockerRunner(DEFAULT_IMAGE, warm=0)
    successor.client  # noqa: B018  the first talk to Docker sweeps the dead owners' boxes
    assert ours(owner) == []
    successor.close()
