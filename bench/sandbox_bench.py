"""Sandbox overhead bench: a trivial job on each backend against the same command run directly, in one run.

The direct run starts the grading root filesystem's own interpreter under `chroot` (no namespaces,
no limits), so every backend and the baseline run the very same python3 and the difference is what
the box adds: namespaces or a container, cgroups, tmpfs, placing a file, collecting the result,
cleaning up. Docker is measured three ways, each the median of N jobs minus the direct run:

- `docker (pool)`: through the warm pool as a worker meets it, a ready container per job (the pool
  is given the time to refill between jobs, untimed: a real job takes longer than a refill, ~0.4 s);
- `docker (pool, b2b)`: through the warm pool, jobs back to back with no pause, so the pool drains
  when jobs come faster than the daemon makes containers (the hit count is printed);
- `docker (no pool)`: GRADER_DOCKER_WARM_POOL=0, a container made for each job on its path.

    .venv/bin/python bench/sandbox_bench.py [--runs 30] [--pool 2]

Targets: bubblewrap adds < 20 ms, Docker through the pool < 50 ms, Docker without it < 400 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sandbox.bwrap import BwrapRunner  # noqa: E402
from sandbox.contract import BoxFile, JobSpec, Outcome, Runner  # noqa: E402
from sandbox.docker_backend import BoxShape, DockerRunner  # noqa: E402
from sandbox.select import DEFAULT_IMAGE, DEFAULT_ROOTFS  # noqa: E402

PROGRAM = b"print(sum(range(1000)))\n"
JOBS = {
    "true": (("true",), JobSpec(command=("true",))),
    "python": (
        ("python3", "-c", PROGRAM.decode()),
        JobSpec(command=("python3", "main.py"), files=(BoxFile("main.py", PROGRAM),), collect=("main.py",)),
    ),
}
TARGETS_MS = {"bwrap": 20.0, "docker (pool)": 50.0, "docker (pool, b2b)": None, "docker (no pool)": 400.0}
REFILL_SECONDS = 60.0


def timed(action: Callable[[], None], runs: int, between: Callable[[], None] = lambda: None) -> list[float]:
    action()  # warm caches (page cache, image layers, the pool's first containers) before measuring
    samples = []
    for _ in range(runs):
        between()  # untimed
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def direct(argv: tuple[str, ...]) -> Callable[[], None]:
    def action() -> None:
        subprocess.run(["chroot", str(DEFAULT_ROOTFS), *argv], check=True, stdout=subprocess.DEVNULL)

    return action


def boxed(runner: Runner, job: JobSpec) -> Callable[[], None]:
    def action() -> None:
        result = runner.run(job)
        assert result.outcome is Outcome.COMPLETED and result.exit_code == 0, result

    return action


def refilled(runner: DockerRunner, job: JobSpec) -> Callable[[], None]:
    shape = BoxShape.of(job, runner.image)

    def wait() -> None:
        if not runner.pool.wait_ready(shape, timeout=REFILL_SECONDS):
            raise SystemExit("the warm pool did not refill within a minute")

    return wait


def main() -> int:
    parser = argparse.ArgumentParser(description="Sandbox overhead over a direct run, per backend.")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--pool", type=int, default=2, help="warm containers per shape (GRADER_DOCKER_WARM_POOL)"
    )
    args = parser.parse_args()
    pooled = DockerRunner(DEFAULT_IMAGE, warm=args.pool)
    back_to_back = DockerRunner(DEFAULT_IMAGE, warm=args.pool)
    runners: dict[str, Runner] = {
        "bwrap": BwrapRunner(DEFAULT_ROOTFS),
        "docker (pool)": pooled,
        "docker (pool, b2b)": back_to_back,
        "docker (no pool)": DockerRunner(DEFAULT_IMAGE, warm=0),
    }
    print(
        f"sandbox overhead, median (p95) of {args.runs} runs; direct = chroot into {DEFAULT_ROOTFS}; "
        f"warm pool {args.pool} per shape; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    header = (
        f"{'job':<7} {'backend':<19} {'total ms':>9} {'p95 ms':>8} {'direct ms':>10} {'adds ms':>8} "
        f"{'ratio':>7}  {'pool hits':>9}  target"
    )
    print(header)
    print("-" * len(header))
    missed = 0
    for job_name, (argv, job) in JOBS.items():
        base = statistics.median(timed(direct(argv), args.runs))
        for name, runner in runners.items():
            between = refilled(pooled, job) if runner is pooled else (lambda: None)
            hits_before = runner.pool.stats().hits if isinstance(runner, DockerRunner) else 0
            samples = sorted(timed(boxed(runner, job), args.runs, between))
            hits = (
                f"{runner.pool.stats().hits - hits_before}/{args.runs + 1}"
                if isinstance(runner, DockerRunner)
                else "-"
            )
            median = statistics.median(samples)
            p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
            adds = (median - base) * 1000
            target = TARGETS_MS[name]
            ok = target is None or adds < target
            missed += not ok
            verdict = (
                "(none: shows the drain)"
                if target is None
                else f"{'ok' if ok else 'MISSED'} (< {target:.0f} ms)"
            )
            print(
                f"{job_name:<7} {name:<19} {median * 1000:9.1f} {p95 * 1000:8.1f} {base * 1000:10.1f} "
                f"{adds:8.1f} {median / base:6.1f}x  {hits:>9}  {verdict}"
            )
    for runner in runners.values():
        if isinstance(runner, DockerRunner):
            runner.close()
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
