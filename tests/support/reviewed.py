"""A repository assessment with a reviewed rubric, graded without a sandbox, for review workflow tests.

`FixedTestsGrader` applies the real verdict logic (rubric, carried reviews, late penalty) to fixed test
results: the sandbox is tested on its own (tests/sandbox, tests/integration), these tests are about
what reviewers and learners do with the result.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog.loader import read_catalog
from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.kinds.base import Grade, GradingJob, KindGrader
from grader.kinds.quiz import QuizGrader
from grader.services.catalog import load_catalog
from grader.services.evidence import capture_tree
from grader.services.grading import process_run
from grader.services.repository import RepositoryReport, TestOutcome, report_feedback, rubric_feedback, score
from grader.services.workspace import materialise
from grader.storage import file_store
from tests.conftest import Account, bearer
from tests.support.catalogs import write_catalog

REVIEWED_REPO = """\
slug: reviewed-repo
kind: repository
title: Reviewed repository
rubric: reviewed
tests:
  - {kind: pytest, id: hidden, path: tests}
"""
REVIEWED_RUBRIC = """\
id: reviewed
title: Tests and review
pass_mark: 0.7
criteria:
  - {id: tests, title: Tests, auto: {kind: test_points}, max_points: 60}
  - id: design
    title: Design
    manual: true
    levels: [{label: weak, points: 4}, {label: strong, points: 34}]
  - {id: docs, title: Documentation, auto: {kind: files_present, files: [README.md]}, max_points: 6}
"""
REPO_PROGRAM = """\
slug: repo-program
title: Repository program
description: One reviewed repository.
credential: {name: Reviewed, description: A reviewed repository., criteria: Pass the review.}
requirements:
  - assessment: reviewed-repo
"""
EXPECTED = '{"format": 2, "suites": {"hidden": [{"id": "tests/test_it.py::test_it", "max_points": 1}]}}'


class FixedTestsGrader:
    """The repository grader's verdict logic on fixed test results (the sandbox is tested on its own):
    the one hidden test passes; the rubric, carried reviews and late penalty apply as in production.
    Given settings, the learner's files are materialised and kept as the evidence bundle, as a worker does."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    def grade(self, job: GradingJob) -> Grade:
        report = RepositoryReport(
            tests=(TestOutcome("tests/test_it.py::test_it", "hidden", True, 1.0, 1.0, "", "visible"),),
            tampered=False,
            notes=(),
            files=frozenset({"README.md", "app.py"}),
        )
        carried = job.carried_review.reviews if job.carried_review else ()
        assert job.rubric_definition is not None
        verdict, result = score(report, job.rubric_definition, carried)
        feedback: dict[str, Any] = {**report_feedback(report), "rubric": rubric_feedback(result)}
        if self.settings is not None:
            with tempfile.TemporaryDirectory() as scratch:
                tree = materialise(self.settings, job.payload, Path(scratch) / "tree")
                feedback["evidence"] = capture_tree(file_store(self.settings), tree)
        return Grade(verdict.score, verdict.max_score, verdict.passed, feedback, verdict.needs_review)


def write_repository_catalog(root: Path, rubric: str = REVIEWED_RUBRIC) -> Path:
    folder = "assessments/reviewed-repo"
    return write_catalog(
        root,
        {
            f"{folder}/assessment.yaml": REVIEWED_REPO,
            f"{folder}/tests/test_it.py": "def test_it():\n    assert True\n",
            f"{folder}/reference/app.py": "x = 1\n",
            f"{folder}/starter/app.py": "x = 0\n",
            f"{folder}/expected_tests.json": EXPECTED,
            "rubrics/reviewed.yaml": rubric,
            "programs/repo-program.yaml": REPO_PROGRAM,
        },
    )


def run_queued(
    queue: RecordingQueue, loaded: sessionmaker[Session], settings: Settings | None = None
) -> None:
    graders: dict[str, KindGrader] = {"quiz": QuizGrader(), "repository": FixedTestsGrader(settings)}
    while queue.sent:
        run_id, _ = queue.sent.pop(0)
        process_run(loaded, run_id, graders, worker="test", lease_seconds=30)


def reload(loaded: sessionmaker[Session], root: Path) -> None:
    with loaded() as session:
        load_catalog(session, read_catalog(root))
        session.commit()


def hand_in(client: FlaskClient, account: Account, files: dict[str, str] | None = None) -> str:
    """The learner hands in an archive; the submission's id."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for name, text in (files or {"app.py": "x = 1\n", "README.md": "# App\n"}).items():
            bundle.writestr(name, text)
    response = client.post(
        "/api/v1/submissions",
        data={"assessment": "reviewed-repo", "archive": (io.BytesIO(archive.getvalue()), "app.zip")},
        headers=bearer(account),
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["id"])
