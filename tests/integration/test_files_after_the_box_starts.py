"""The hidden tests' box started while the learner's repository is still being fetched, on both backends.

The worker hands `RepositoryGrading.run` the fetch itself: the in-process pytest box starts at once
(its interpreter and pytest load meanwhile) and its harness asks for the learner's files on the job's
channel. Asserted: the grading equals one with the files in the job, the box did start before the fetch
ended, a fetch that fails raises its own error, files later than the wait get a box of their own, and
nothing the learner's code writes on the channel brings it anything but its own files.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from grader.catalog.bundle import Bundle
from grader.catalog.schema import RepositoryAssessment
from grader.errors import RepositoryUnavailable
from grader.services.repository import RepositoryGrading, RepositoryReport
from grader.suites import pytest_suite
from sandbox.contract import JobSpec, Runner, RunResult, Serve
from tests.sandbox.conftest import BACKENDS
from tests.support.sandboxes import make_runner

BLOB = bytes(range(256)) * 3000  # 768 KB of every byte value: a data file must arrive intact
HIDDEN_TESTS = f"""\
import hashlib
import pathlib

import solution


def test_add():
    assert solution.add(2, 3) == 5


def test_nothing_to_read_on_stdin():
    assert solution.READ_AT_IMPORT == b""


def test_the_data_file_arrived_whole():
    data = pathlib.Path(solution.__file__).with_name("data").joinpath("blob.bin").read_bytes()
    assert hashlib.sha256(data).hexdigest() == "{hashlib.sha256(BLOB).hexdigest()}"
"""
# Asks for the files again, as the harness does, and reads stdin: it gets neither.
SOLUTION = """\
import os

os.write(1, b"learner-files\\n")
os.write(1, b"learner-files\\n")
READ_AT_IMPORT = os.read(0, 100)


def add(a, b):
    return a + b
"""
BUNDLE = Bundle({"tests/test_hidden.py": HIDDEN_TESTS.encode()})


def assessment() -> RepositoryAssessment:
    return RepositoryAssessment.model_validate(
        {
            "slug": "adder",
            "kind": "repository",
            "title": "Adder",
            "rubric": "tests-only",
            "learner_files": ["**/*"],
            "limits": {"wall_seconds": 20},
            "tests": [{"kind": "pytest", "id": "hidden", "path": "tests"}],
        }
    )


@dataclass
class Recording:
    """The real runner, keeping each job's spec and when its run began (monotonic seconds)."""

    runner: Runner
    jobs: list[tuple[JobSpec, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.runner.name

    def run(self, spec: JobSpec, *, serve: Serve | None = None) -> RunResult:
        with self._lock:
            self.jobs.append((spec, time.monotonic()))
        return self.runner.run(spec, serve=serve)


def write_tree(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "solution.py").write_text(SOLUTION)
    (folder / "data").mkdir()
    (folder / "data" / "blob.bin").write_bytes(BLOB)
    return folder


def slow_fetch(folder: Path, seconds: float, ended: list[float]) -> Callable[[], Path]:
    def fetch() -> Path:
        time.sleep(seconds)
        tree = write_tree(folder)
        ended.append(time.monotonic())
        return tree

    return fetch


def passed(report: RepositoryReport) -> dict[str, bool]:
    return {t.id.split("::")[1]: t.passed for t in report.tests}


ALL_PASS = {"test_add": True, "test_nothing_to_read_on_stdin": True, "test_the_data_file_arrived_whole": True}


@pytest.fixture(params=BACKENDS, scope="module")
def backend_runner(request: pytest.FixtureRequest, sandbox_ready: None) -> Runner:
    return make_runner(request.param)


def test_the_box_starts_before_the_fetch_ends_and_grades_as_with_the_files_in_the_job(
    backend_runner: Runner, tmp_path: Path
) -> None:
    recording, ended = Recording(backend_runner), []
    early = RepositoryGrading(recording).run(
        assessment(), BUNDLE, slow_fetch(tmp_path / "fetched", 0.5, ended)
    )
    ((spec, began),) = recording.jobs
    assert "--learner-files-on-channel" in spec.command
    assert not any(f.path.startswith("submission/") for f in spec.files)
    assert began < ended[0], "the box waited for the fetch"
    assert passed(early) == ALL_PASS and not early.tampered, early.staff_notes
    given = RepositoryGrading(backend_runner).run(assessment(), BUNDLE, write_tree(tmp_path / "given"))
    assert passed(given) == ALL_PASS
    assert early.files == given.files == {"solution.py", "data/blob.bin"}


def test_a_fetch_that_fails_raises_its_own_error(backend_runner: Runner) -> None:
    def fetch() -> Path:
        time.sleep(0.2)
        raise RepositoryUnavailable(
            "the repository is gone", details={"field": "git_url", "rule": "not_found"}
        )

    recording = Recording(backend_runner)
    with pytest.raises(RepositoryUnavailable, match="the repository is gone"):
        RepositoryGrading(recording).run(assessment(), BUNDLE, fetch)
    assert len(recording.jobs) == 1  # the early box, dropped; no box with files that do not exist


def test_files_later_than_the_wait_get_a_box_of_their_own(
    backend_runner: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pytest_suite, "MAX_PATIENCE_SECONDS", 0.2)
    recording = Recording(backend_runner)
    report = RepositoryGrading(recording).run(assessment(), BUNDLE, slow_fetch(tmp_path / "late", 1.0, []))
    (first, _), (second, _) = recording.jobs
    assert "--learner-files-on-channel" in first.command
    assert "--learner-files-on-channel" not in second.command
    assert {f.path for f in second.files} >= {"submission/solution.py", "submission/data/blob.bin"}
    assert passed(report) == ALL_PASS
