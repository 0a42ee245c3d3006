"""Read models for pages and the API: what a learner may see of a submission and its result."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from grader.catalog.schema import QuizAssessment, RepositoryAssessment
from grader.errors import NotFound
from grader.models import Result, Role, Submission, User, utcnow
from grader.quiz import feedback_allows_answers
from grader.services.grading import latest_result, queue_position
from grader.services.repository import visible_tests
from grader.services.submissions import parse_definition


def get_submission_for(session: Session, user: User, submission_id: str) -> Submission:
    """A submission its owner (or staff) may see; others get `NotFound`, not a hint it exists."""
    submission = session.get(Submission, submission_id) if len(submission_id) <= 64 else None
    if submission is None or (submission.user_id != user.id and user.role == Role.LEARNER):
        raise NotFound("no such submission")
    return submission


def submission_view(session: Session, user: User, submission_id: str) -> dict[str, Any]:
    submission = get_submission_for(session, user, submission_id)
    # The result first, then the status: a worker commits both at once, and reading them the other way
    # round can show a result beside the status it had before that commit.
    result = latest_result(session, submission)
    session.refresh(submission)
    runs = submission.runs
    current_run = runs[-1] if runs else None
    view: dict[str, Any] = {
        "id": submission.id,
        "assessment": submission.assessment.slug,
        "assessment_title": submission.assessment.title,
        "assessment_version": submission.assessment_version.version,
        "kind": submission.kind,
        "status": submission.status,
        "attempt_number": submission.attempt_number,
        "created_at": submission.created_at.isoformat(),
        "receipt": {"sha256": submission.receipt_sha256, "commit": submission.commit_sha},
        "queue_position": queue_position(session, current_run) if current_run else None,
        "result": None,
    }
    if result is not None:
        view["result"] = result_view(session, submission, result, staff=user.role != Role.LEARNER)
    return view


def result_view(
    session: Session, submission: Submission, result: Result, *, staff: bool = False
) -> dict[str, Any]:
    feedback = dict(result.feedback)
    definition = parse_definition(submission.assessment_version)
    if isinstance(definition, RepositoryAssessment):
        feedback.pop("files", None)
        if not staff:
            feedback["tests"] = visible_tests(feedback.get("tests", []), definition.due, utcnow())
            if any(t.get("hidden") for t in feedback["tests"]):
                # Collection errors quote the hidden tests' code; learners get the count, not the text.
                feedback["notes"] = [n for n in feedback.get("notes", []) if "could not collect" not in n]
    if isinstance(definition, QuizAssessment):
        used = (
            session.scalar(
                select(func.count(Submission.id)).where(
                    Submission.user_id == submission.user_id,
                    Submission.assessment_id == submission.assessment_id,
                )
            )
            or 0
        )
        left = None if definition.attempts.max is None else max(0, definition.attempts.max - used)
        solutions = feedback.pop("solutions", {})
        if feedback_allows_answers(definition.feedback, passed=bool(result.passed), attempts_left=left):
            for question in feedback.get("questions", []):
                question.update(solutions.get(question["id"], {}))
            feedback["answers_shown"] = True
        else:
            feedback["answers_shown"] = False
    return {
        "score": result.score,
        "max_score": result.max_score,
        "fraction": round(result.fraction, 4),
        "passed": result.passed,
        "needs_review": result.needs_review,
        "outcome": result.outcome,
        "graded_at": result.created_at.isoformat(),
        "feedback": feedback,
    }


def learner_submissions(session: Session, user: User, limit: int = 50) -> list[dict[str, Any]]:
    submissions = session.scalars(
        select(Submission)
        .where(Submission.user_id == user.id)
        .order_by(Submission.created_at.desc())
        .limit(limit)
    ).all()
    rows = []
    for submission in submissions:
        result = latest_result(session, submission)
        rows.append(
            {
                "id": submission.id,
                "assessment": submission.assessment.slug,
                "assessment_title": submission.assessment.title,
                "status": submission.status,
                "created_at": submission.created_at,
                "score": None if result is None else f"{result.score:g}/{result.max_score:g}",
                "passed": None if result is None else result.passed,
            }
        )
    return rows
