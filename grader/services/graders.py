"""Kind graders: turn a `GradingJob` into a `Grade`. The quiz grader lives here; others plug in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from grader.catalog.schema import QuizAssessment
from grader.quiz import correct_answer, score_quiz
from grader.services.grading import Grade, GradingJob, KindGrader


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


def default_graders() -> dict[str, KindGrader]:
    return {"quiz": QuizGrader()}
