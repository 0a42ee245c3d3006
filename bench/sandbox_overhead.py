"""Sandbox overhead: a trivial job on each backend against the same command run directly, in one run.

The direct run starts the grading root filesystem's own interpreter (chroot, no namespaces), so the
difference is what the box adds: namespaces, cgroups, tmpfs, file placement, collection, cleanup.

    .venv/bin/python bench/sandbox_overhead.py [--runs 30]
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

from sandbox.bwrap_backend import BwrapRunner  # noqa: E402
from sandbox.contract import BoxFile, JobSpec, Outcome  # noqa: E402
from sandbox.docker_backend import DockerRunner  # noqa: E402
from sandbox.select import DEFAULT_IMAGE, DEFAULT_ROOTFS  # noqa: E402

PROGRAM = b"print(sum(range(1000)))\n"
JOB = JobSpec(command=("python3", "main.py"), files=(BoxFile("main.py", PROGRAM),))


def timed(action: Callable[[], None], runs: int, pause: float = 0.0) -> list[float]:
    action()  # warm caches (page cache, image layers) before measuring
    samples = []
    for _ in range(runs):
        time.sleep(pause)
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


def direct() -> None:
    subprocess.run(
        ["chroot", str(DEFAULT_ROOTFS), "python3", "-c", PROGRAM.decode()],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def boxed(runner: BwrapRunner | DockerRunner) -> Callable[[], None]:
    def action() -> None:
        result = runner.run(JOB)
        assert result.outcome is Outcome.COMPLETED and result.stdout == b"499500\n", result

    return action


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    base = statistics.median(timed(direct, args.runs))
    print(f"sandbox overhead: trivial python job, median of {args.runs} runs")
    print(f"  {'direct (chroot)':<18} {base * 1000:8.1f} ms")
    backends = (
        ("bwrap", BwrapRunner(DEFAULT_ROOTFS), 0.0),
        ("docker (cold)", DockerRunner(DEFAULT_IMAGE, warm=0), 0.0),
        # A warm container is refilled in the background; the pause lets it start, as idle time
        # between submissions does on a real grading host. The pause is not counted.
        ("docker (warm)", DockerRunner(DEFAULT_IMAGE, warm=1), 0.8),
    )
    for name, runner, pause in backends:
        samples = timed(boxed(runner), args.runs, pause)
        median = statistics.median(samples)
        p95 = sorted(samples)[int(len(samples) * 0.95) - 1]
        print(
            f"  {name:<18} {median * 1000:8.1f} ms  (p95 {p95 * 1000:.1f} ms)  "
            f"adds {(median - base) * 1000:6.1f} ms  ratio {median / base:5.2f}x"
        )


if __name__ == "__main__":
    main()
