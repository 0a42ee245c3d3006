"""What `isolation: process` costs next to in-process pytest, on the sample `http-toolkit` assignment.

In one run, for each sandbox backend, the sample's 12 hidden tests are graded against its reference
solution both ways, as a worker grades them (suites, sandbox, canaries), and against bare pytest on
the host. Prints the suite's wall time (median), the number of calls into the learner's code, and
the cost of one call (its box, interpreter and import), each a median over the runs.

    .venv/bin/python bench/isolation_cost.py [--runs 5] [--backends bwrap,docker]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from grader.catalog.bundle import Bundle  # noqa: E402
from grader.catalog.loader import BUNDLED_FOLDERS_KEY, read_catalog  # noqa: E402
from grader.catalog.schema import Isolation, PytestSuite, RepositoryAssessment  # noqa: E402
from grader.services.graders import expected_tests  # noqa: E402
from grader.services.repository import RepositoryGrading  # noqa: E402
from tests.support.sandboxes import make_runner  # noqa: E402

CATALOG = ROOT / "examples" / "catalog"
SLUG = "http-toolkit"


def with_isolation(assessment: RepositoryAssessment, isolation: Isolation) -> RepositoryAssessment:
    suites = [
        suite.model_copy(update={"isolation": isolation}) if isinstance(suite, PytestSuite) else suite
        for suite in assessment.tests
    ]
    return assessment.model_copy(update={"tests": suites})


def bare_run(folder: Path, scratch: Path) -> float:
    work = scratch / "bare"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(folder / "tests", work / "tests")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(folder / "reference")},
        capture_output=True,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", default="bwrap,docker")
    args = parser.parse_args()
    catalog = read_catalog(CATALOG)
    entry = catalog.assessments[SLUG]
    assert isinstance(entry.definition, RepositoryAssessment) and entry.folder is not None
    bundle = Bundle.from_stored(entry.data.get(BUNDLED_FOLDERS_KEY))
    expected = expected_tests(entry.definition, entry.data)
    reference = entry.folder / entry.definition.reference
    with tempfile.TemporaryDirectory(prefix="isolation-bench-") as tmp:
        bare = statistics.median(bare_run(entry.folder, Path(tmp)) for _ in range(args.runs))
    print(f"isolation cost: {SLUG} (12 hidden tests), reference solution, median of {args.runs} runs")
    print(f"  {'bare pytest on the host':<34} {bare:6.2f} s")
    for backend in args.backends.split(","):
        grading = RepositoryGrading(make_runner(backend))
        for isolation in (Isolation.NONE, Isolation.PROCESS):
            assessment = with_isolation(entry.definition, isolation)
            grading.run(assessment, bundle, reference, expected)  # warm: imports, warm containers
            walls, per_call, calls = [], [], 0
            for _ in range(args.runs):
                started = time.perf_counter()
                report = grading.run(assessment, bundle, reference, expected)
                walls.append(time.perf_counter() - started)
                assert all(t.passed for t in report.tests) and not report.tampered, report.notes
                calls = report.calls
                if report.calls:
                    per_call.append(report.call_seconds / report.calls)
            line = f"  {backend + ', isolation: ' + isolation.value:<34} {statistics.median(walls):6.2f} s"
            if per_call:
                line += f"  {calls} calls, {statistics.median(per_call) * 1000:5.0f} ms per call"
            print(line)


if __name__ == "__main__":
    main()
