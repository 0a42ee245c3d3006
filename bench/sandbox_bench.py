"""Sandbox overhead bench: a trivial job on each backend against the same command run directly, in one run.

The direct run starts the grading root filesystem's own interpreter under `chroot` (no namespaces,
no limits), so every backend and the baseline run the very same python3 and the difference is what
the box adds: namespaces or a container, cgroups, tmpfs, placing a file, collecting the result,
cleaning up. Docker is measured as a worker runs it (one warm container kept ready) and cold (a
container created for the job on the critical path).

    .venv/bin/python bench/sandbox_bench.py [--runs 30]

Targets: bubblewrap adds < 20 ms, Docker < 400 ms.
"""

from __future__ import annotations

import argparse
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
from sandbox.docker_backend import DockerRunner  # noqa: E402
from sandbox.select import DEFAULT_IMAGE, DEFAULT_ROOTFS  # noqa: E402

PROGRAM = b"print(sum(range(1000)))\n"
JOBS = {
    "true": (("true",), JobSpec(command=("true",))),
    "python": (
        ("python3", "-c", PROGRAM.decode()),
        JobSpec(command=("python3", "main.py"), files=(BoxFile("main.py", PROGRAM),), collect=("main.py",)),
    ),
}
TARGETS_MS = {"bwrap": 20.0, "docker (warm)": 400.0, "docker (cold)": 400.0}


def timed(action: Callable[[], None], runs: int) -> list[float]:
    action()  # warm caches (page cache, image layers, the warm container) before measuring
    samples = []
    for _ in range(runs):
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


def main() -> int:
    parser = argparse.ArgumentParser(description="Sandbox overhead over a direct run, per backend.")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    runners: dict[str, Runner] = {
        "bwrap": BwrapRunner(DEFAULT_ROOTFS),
        "docker (warm)": DockerRunner(DEFAULT_IMAGE, warm=1),
        "docker (cold)": DockerRunner(DEFAULT_IMAGE, warm=0),
    }
    print(f"sandbox overhead, median (p95) of {args.runs} runs; direct = chroot into {DEFAULT_ROOTFS}")
    header = (
        f"{'job':<7} {'backend':<14} {'total ms':>9} {'p95 ms':>8} {'direct ms':>10} {'adds ms':>8} "
        f"{'ratio':>7}  target"
    )
    print(header)
    print("-" * len(header))
    missed = 0
    for job_name, (argv, job) in JOBS.items():
        base = statistics.median(timed(direct(argv), args.runs))
        for name, runner in runners.items():
            samples = sorted(timed(boxed(runner, job), args.runs))
            median = statistics.median(samples)
            p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
            adds = (median - base) * 1000
            ok = adds < TARGETS_MS[name]
            missed += not ok
            print(
                f"{job_name:<7} {name:<14} {median * 1000:9.1f} {p95 * 1000:8.1f} {base * 1000:10.1f} "
                f"{adds:8.1f} {median / base:6.1f}x  {'ok' if ok else 'MISSED'} (< {TARGETS_MS[name]:.0f} ms)"
            )
    for runner in runners.values():
        if isinstance(runner, DockerRunner):
            runner.close()
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
