"""A run's suites in boxes side by side, on both backends: the io cases do not wait for the hidden tests'
box, every outcome still lands in the assessment's order, and one suite at a time stays possible."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from grader.catalog.bundle import Bundle
from grader.catalog.schema import RepositoryAssessment
from grader.config import Settings
from grader.errors import InvalidInput
from grader.services.repository import RepositoryGrading
from sandbox.contract import JobSpec, Runner, RunResult, Serve
from tests.sandbox.conftest import BACKENDS
from tests.support.sandboxes import make_runner

# The hidden tests hold their box for a second, long enough that a box started after theirs ended is
# plainly "after", whatever the machine's load.
HIDDEN_TESTS = """\
import time

from solution import double


def test_double_of_two():
    time.sleep(1.0)
    assert double(2) == 4


def test_double_of_zero():
    assert double(0) == 0
"""
SOLUTION = "def double(x):\n    return 2 * x\n"
ECHO = "import sys\nprint(2 * int(sys.stdin.read()))\n"


def mixed_assessment() -> RepositoryAssessment:
    return RepositoryAssessment.model_validate(
        {
            "slug": "doubling",
            "kind": "repository",
            "title": "Doubling",
            "rubric": "tests-only",
            "learner_files": ["**/*"],
            "limits": {"wall_seconds": 20},
            "tests": [
                {"kind": "pytest", "id": "hidden", "path": "tests"},
                {
                    "kind": "io",
                    "id": "doubles-21",
                    "command": ["python3", "echo.py"],
                    "stdin": "21",
                    "expected": "42",
                },
                {
                    "kind": "io",
                    "id": "doubles-5",
                    "command": ["python3", "echo.py"],
                    "stdin": "5",
                    "expected": "11",
                },
            ],
        }
    )


@dataclass
class Recording:
    """The real runner, with when each of its boxes ran (monotonic seconds)."""

    runner: Runner
    spans: list[tuple[tuple[str, ...], float, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.runner.name

    def run(self, spec: JobSpec, *, serve: Serve | None = None) -> RunResult:
        started = time.monotonic()
        result = self.runner.run(spec, serve=serve)
        with self._lock:
            self.spans.append((spec.command, started, time.monotonic()))
        return result

    def io_spans(self) -> list[tuple[float, float]]:
        return [(start, end) for command, start, end in self.spans if command[-1] == "echo.py"]

    def hidden_span(self) -> tuple[float, float]:
        (span,) = [(start, end) for command, start, end in self.spans if command[-1] != "echo.py"]
        return span


@pytest.fixture(params=BACKENDS, scope="module")
def backend_runner(request: pytest.FixtureRequest, sandbox_ready: None) -> Runner:
    return make_runner(request.param)


def grade(runner: Runner, tmp_path: Path, suites_at_once: int) -> tuple[Recording, dict[str, bool], int]:
    tree = tmp_path / "learner"
    tree.mkdir()
    (tree / "solution.py").write_text(SOLUTION)
    (tree / "echo.py").write_text(ECHO)
    recording = Recording(runner)
    report = RepositoryGrading(recording, suites_at_once=suites_at_once).run(
        mixed_assessment(), Bundle({"tests/test_hidden.py": HIDDEN_TESTS.encode()}), tree
    )
    assert [t.id for t in report.tests if t.suite != "hidden"] == ["doubles-21", "doubles-5"]
    assert report.tests[0].suite == "hidden"  # the assessment's order, whichever box ended first
    hidden_passed = sum(t.passed for t in report.tests if t.suite == "hidden")
    return recording, {t.id: t.passed for t in report.tests}, hidden_passed


def test_io_cases_run_beside_the_hidden_tests_and_keep_their_order(
    backend_runner: Runner, tmp_path: Path
) -> None:
    recording, passed, hidden_passed = grade(backend_runner, tmp_path, suites_at_once=2)
    assert passed["doubles-21"] is True
    assert passed["doubles-5"] is False  # 2 * 5 is not 11: a side-by-side box is still judged
    assert hidden_passed == 2
    _, hidden_end = recording.hidden_span()
    first_io_start = min(start for start, _ in recording.io_spans())
    assert first_io_start < hidden_end, "an io case waited for the hidden tests' box to end"


def test_one_suite_at_a_time_when_set_so(backend_runner: Runner, tmp_path: Path) -> None:
    recording, passed, hidden_passed = grade(backend_runner, tmp_path, suites_at_once=1)
    assert (passed["doubles-21"], hidden_passed) == (True, 2)
    _, hidden_end = recording.hidden_span()
    assert all(start >= hidden_end for start, _ in recording.io_spans())


@pytest.mark.parametrize("value", ["0", "9"])
def test_boxes_at_once_outside_one_to_eight_is_refused_naming_the_setting(value: str) -> None:
    with pytest.raises(InvalidInput, match="GRADER_SANDBOX_SUITES_AT_ONCE must be between 1") as refused:
        Settings.from_env({"GRADER_SANDBOX_SUITES_AT_ONCE": value})
    assert refused.value.details["field"] == "GRADER_SANDBOX_SUITES_AT_ONCE"
