"""Kind graders: turn a `GradingJob` into a `Grade`. The quiz grader lives here; others plug in."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from grader.catalog.loader import BUNDLED_FOLDERS_KEY, EXPECTED_TESTS_KEY
from grader.catalog.schema import QuizAssessment, RepositoryAssessment
from grader.config import Settings
from grader.errors import RepositoryUnavailable, SandboxUnavailable
from grader.quiz import correct_answer, score_quiz
from grader.services.grading import Grade, GradingJob, KindGrader
from grader.services.repository import RepositoryGrading, report_feedback, score
from grader.services.workspace import materialise
from sandbox.contract import Runner
from sandbox.errors import SandboxUnavailable as SandboxBackendMissing
from sandbox.select import select_runner


class QuizGrader:
    """Scores quiz answers at once; keeps the correct answers aside for the feedback policy."""

    def grade(self, job: GradingJob) -> Grade:
        quiz = job.definition
        assert isinstance(quiz, QuizAssessment)
        attempt_questions = _question_ids(job)
        answers: Mapping[str, Any] = job.payload.get("answers", {})
        scored = score_quiz(quiz, attempt_questions, answers)
        by_id = quiz.questions_by_id()
        feedback = {
            "questions": [
                {
                    "id": q.question_id,
                    "points": q.points,
                    "max_points": q.max_points,
                    "answered": q.answered,
                    "correct": q.correct,
                }
                for q in scored.questions
            ],
            # Revealed or not at read time, by the quiz's feedback policy.
            "solutions": {
                qid: {"answer": correct_answer(by_id[qid]), "explanation": by_id[qid].explanation}
                for qid in attempt_questions
            },
            "pass_mark": quiz.pass_mark,
        }
        return Grade(score=scored.score, max_score=scored.max_score, passed=scored.passed, feedback=feedback)


def _question_ids(job: GradingJob) -> list[str]:
    ids = job.payload.get("question_ids")
    if isinstance(ids, list):
        return [str(i) for i in ids]
    raise ValueError("quiz payload without question ids")


class RepositoryGrader:
    """Materialises the learner's tree, runs the suites in the sandbox, then applies the rubric."""

    def __init__(self, settings: Settings, runner: Runner | None = None) -> None:
        self.settings = settings
        self._runner = runner

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            try:
                self._runner = select_runner(
                    self.settings.sandbox_backend,
                    image=self.settings.sandbox_image,
                    rootfs=self.settings.sandbox_rootfs,
                )
            except SandboxBackendMissing as exc:
                raise SandboxUnavailable(
                    f"no sandbox backend works on this worker: {exc}. {exc.fix}"
                ) from None
        return self._runner

    def grade(self, job: GradingJob) -> Grade:
        assessment = job.definition
        assert isinstance(assessment, RepositoryAssessment)
        if job.rubric_definition is None:
            raise ValueError(f"repository assessment {assessment.slug} has no rubric")
        bundle = job.raw_definition.get(BUNDLED_FOLDERS_KEY, {})
        expected = job.raw_definition.get(EXPECTED_TESTS_KEY)
        with tempfile.TemporaryDirectory(prefix="grade-") as scratch:
            try:
                tree = materialise(self.settings, job.payload, Path(scratch) / "tree")
            except RepositoryUnavailable as exc:
                # The learner's repository vanished or broke after intake: their fault, and final.
                return Grade(
                    score=0.0,
                    max_score=0.0,
                    passed=False,
                    feedback={"tests": [], "notes": [exc.message], "tampered": False},
                    outcome="repository_unavailable",
                )
            report = RepositoryGrading(self.runner).run(assessment, bundle, tree, expected)
        scored = score(report, job.rubric_definition)
        feedback = {**report_feedback(report), "rubric": scored["rubric"], "commit": job.commit_sha}
        return Grade(
            score=scored["score"],
            max_score=scored["max_score"],
            passed=scored["passed"],
            needs_review=scored["needs_review"],
            feedback=feedback,
            outcome="tampered" if report.tampered else "graded",
        )


def default_graders(settings: Settings | None = None) -> dict[str, KindGrader]:
    graders: dict[str, KindGrader] = {"quiz": QuizGrader()}
    if settings is not None:
        graders["repository"] = RepositoryGrader(settings)
    return graders
