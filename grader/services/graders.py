"""Kind graders: turn a `GradingJob` into a `Grade`. The verdict's rules are `grader.verdict`'s."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from grader.catalog.bundle import Bundle, ExpectedTests
from grader.catalog.loader import BUNDLED_FOLDERS_KEY, EXPECTED_TESTS_KEY
from grader.catalog.schema import PytestSuite, QuizAssessment, RepositoryAssessment
from grader.config import Settings
from grader.errors import RepositoryUnavailable, SandboxUnavailable
from grader.models import GradeOutcome
from grader.quiz import correct_answer, score_quiz
from grader.services.evidence import capture_tree
from grader.services.grading import Grade, GradingJob, KindGrader
from grader.services.images import setup_image
from grader.services.repository import RepositoryGrading, report_feedback, rubric_feedback, score
from grader.services.workspace import materialise
from grader.storage import file_store
from grader.verdict import settle
from rubrics import ReviewError
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
        verdict = settle(
            scored.score,
            scored.max_score,
            scored.passed,
            pass_mark=quiz.pass_mark,
            late_penalty=job.late_penalty,
        )
        feedback: dict[str, Any] = {
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
        if verdict.late_penalty:
            feedback["late"] = {"penalty": verdict.late_penalty, "score_before": verdict.score_before_penalty}
        return Grade(
            score=verdict.score, max_score=verdict.max_score, passed=verdict.passed, feedback=feedback
        )


def _question_ids(job: GradingJob) -> list[str]:
    ids = job.payload.get("question_ids")
    if isinstance(ids, list):
        return [str(i) for i in ids]
    raise ValueError("quiz payload without question ids")


def expected_tests(
    assessment: RepositoryAssessment, raw_definition: Mapping[str, Any]
) -> ExpectedTests | None:
    stored = raw_definition.get(EXPECTED_TESTS_KEY)
    if stored is None:
        return None
    folders = {s.id: s.path for s in assessment.tests if isinstance(s, PytestSuite)}
    return ExpectedTests.from_file_data(stored, folders)


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
        bundle = Bundle.from_stored(job.raw_definition.get(BUNDLED_FOLDERS_KEY))
        image = setup_image(assessment, bundle, self.settings.sandbox_image)
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
                    outcome=GradeOutcome.REPOSITORY_UNAVAILABLE,
                )
            grading = RepositoryGrading(self.runner, image=image.reference if image else None)
            report = grading.run(assessment, bundle, tree, expected_tests(assessment, job.raw_definition))
            evidence = capture_tree(file_store(self.settings), tree)
        feedback: dict[str, Any] = {**report_feedback(report), "commit": job.commit_sha, "evidence": evidence}
        if report.grader_error is not None:
            # The course team's autograder broke: staff see why; the learner is charged nothing.
            feedback["staff"] = {**feedback["staff"], "grader_error": report.grader_error}
            return Grade(0.0, 0.0, None, feedback, outcome=GradeOutcome.GRADER_ERROR)
        if report.not_gradable is not None:
            feedback["messages"] = [report.not_gradable]
            return Grade(0.0, 0.0, None, feedback, outcome=GradeOutcome.NOT_GRADABLE)
        carried = job.carried_review.reviews if job.carried_review is not None else ()
        try:
            verdict, rubric_result = score(
                report, job.rubric_definition, carried, late_penalty=job.late_penalty
            )
        except ReviewError:
            # The earlier review does not fit the new rubric after all: a reviewer scores it again.
            verdict, rubric_result = score(report, job.rubric_definition, late_penalty=job.late_penalty)
        feedback["rubric"] = rubric_feedback(rubric_result)
        if verdict.late_penalty:
            feedback["late"] = {"penalty": verdict.late_penalty, "score_before": verdict.score_before_penalty}
        return Grade(
            score=verdict.score,
            max_score=verdict.max_score,
            passed=verdict.passed,
            needs_review=verdict.needs_review,
            feedback=feedback,
            outcome=GradeOutcome.TAMPERED if report.tampered else GradeOutcome.GRADED,
        )


def default_graders(settings: Settings | None = None) -> dict[str, KindGrader]:
    graders: dict[str, KindGrader] = {"quiz": QuizGrader()}
    if settings is not None:
        graders["repository"] = RepositoryGrader(settings)
    return graders
