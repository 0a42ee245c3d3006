"""Read models for pages and the API: what a learner may see of a submission and its result."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.catalog.schema import QuizAssessment, RepositoryAssessment
from grader.errors import NotFound
from grader.models import GradeOutcome, Result, Role, Submission, User, utcnow
from grader.quiz import answer_in_words, feedback_allows_answers
from grader.services import access, progress
from grader.services.deadlines import deadline_for
from grader.services.grading import latest_result, queue_position
from grader.services.progress import ProgramProgress
from grader.services.repository import Release, visible_tests
from grader.services.submissions import attempts_used, has_open_attempt, parse_definition


def get_submission_for(session: Session, user: User, submission_id: str) -> Submission:
    """A submission its owner (or staff) may see; others get `NotFound`, not a hint it exists."""
    submission = session.get(Submission, submission_id) if len(submission_id) <= 64 else None
    if submission is None:
        raise NotFound("no such submission")
    if submission.user_id != user.id and (
        user.role == Role.LEARNER or not access.may_review(session, user, submission)
    ):
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


def release_for(session: Session, submission: Submission, now: datetime | None = None) -> Release:
    """When the hidden parts of this submission's results open to its learner."""
    definition = parse_definition(submission.assessment_version)
    deadline = deadline_for(session, submission.user_id, submission.assessment_id, definition)
    return Release(
        due=deadline.closes, published=submission.assessment.results_published_at, now=now or utcnow()
    )


def withheld_reason(release: Release) -> str:
    parts = []
    if release.due is not None and release.now < release.due:
        parts.append(f"after the due date ({release.due:%Y-%m-%d %H:%M} UTC)")
    if release.published is None or release.now < release.published:
        parts.append("when staff publish the results")
    return "Some tests are hidden, so the total is held back; it is shown " + (
        " or ".join(parts) if parts else "to staff only"
    )


def result_view(
    session: Session, submission: Submission, result: Result, *, staff: bool = False
) -> dict[str, Any]:
    feedback = dict(result.feedback)
    definition = parse_definition(submission.assessment_version)
    held_back: str | None = None
    if isinstance(definition, RepositoryAssessment):
        feedback.pop("files", None)
        if not staff:
            feedback.pop("staff", None)
            release = release_for(session, submission)
            tests, withheld = visible_tests(feedback.get("tests", []), release, feedback.get("totals", {}))
            feedback["tests"] = tests
            feedback["messages"] = [
                *feedback.get("messages", []),
                *(m["text"] for m in feedback.pop("suite_messages", []) if release.open(m["visibility"])),
            ]
            if withheld:
                held_back = withheld_reason(release)
                hidden_ids = {t["id"] for t in result.feedback.get("tests", [])} - {t["id"] for t in tests}
                # Notes may quote a hidden test's name or code; the rubric and totals show its points.
                feedback["notes"] = [
                    n
                    for n in feedback.get("notes", [])
                    if "could not collect" not in n and not any(i in n for i in hidden_ids)
                ]
                feedback.pop("rubric", None)
                feedback.pop("totals", None)
    if isinstance(definition, QuizAssessment):
        _quiz_feedback(session, submission, result, definition, feedback, staff=staff)
    if result.outcome == GradeOutcome.GRADER_ERROR and not staff:
        feedback = {
            "messages": [
                "The autograder failed on our side, not because of your work. Staff have been told; "
                "this submission does not count as an attempt."
            ]
        }
    elif result.outcome == GradeOutcome.NOT_GRADABLE and not staff:
        # What the autograder said, and nothing the other suites found: an ungradable hand-in costs no
        # attempt, so it must not buy any feedback either.
        feedback = {"messages": list(result.feedback.get("messages", []))}
    hide = held_back is not None
    return {
        "score": None if hide else result.score,
        "max_score": None if hide else result.max_score,
        "fraction": None if hide else round(result.fraction, 4),
        "passed": None if hide else result.passed,
        "needs_review": result.needs_review,
        "outcome": result.outcome,
        "graded_at": result.created_at.isoformat(),
        "held_back": held_back,
        "late_penalty": submission.late_penalty or None,
        "charged": submission.charged,
        "feedback": feedback,
    }


def _quiz_feedback(
    session: Session,
    submission: Submission,
    result: Result,
    quiz: QuizAssessment,
    feedback: dict[str, Any],
    *,
    staff: bool,
) -> None:
    """The feedback policy governs every field: where correct answers stay hidden, so do the
    per-question points and correct/incorrect flags, which would give them away."""
    used = attempts_used(session, submission.user_id, submission.assessment, quiz)
    left = None if quiz.attempts.max is None else max(0, quiz.attempts.max - used)
    if left == 0 and has_open_attempt(session, submission.user_id, submission.assessment_id):
        left = 1  # the last attempt is drawn but not handed in: its answers must not be given away
    solutions = feedback.pop("solutions", {})
    shown = staff or feedback_allows_answers(quiz.feedback, passed=bool(result.passed), attempts_left=left)
    by_id = quiz.questions_by_id()
    questions = [q for q in feedback.get("questions", []) if q.get("id") in by_id]
    if shown:
        for question in questions:
            question.update(solutions.get(question["id"], {}))
            question["answer_text"] = answer_in_words(by_id[question["id"]])
    else:
        questions = [{"id": q["id"], "answered": q.get("answered", False)} for q in questions]
    for question in questions:
        question["prompt"] = by_id[question["id"]].prompt
    feedback["questions"] = questions
    feedback["answers_shown"] = shown


def learner_progress(session: Session, user: User, program_slug: str) -> ProgramProgress:
    """A learner's progress as they may see it: a requirement decided by a result whose total is
    held back shows as held back, and so does the credential while any requirement is."""
    return _hold_back(session, progress.program_progress(session, user, program_slug))


def learner_programs(session: Session, user: User) -> list[ProgramProgress]:
    return [_hold_back(session, p) for p in progress.enrolled_programs(session, user)]


def _hold_back(session: Session, standing: ProgramProgress) -> ProgramProgress:
    requirements = []
    for requirement in standing.requirements:
        result = session.get(Result, requirement.result_id) if requirement.result_id is not None else None
        if result is not None and _withheld(session, result):
            requirement = replace(requirement, status="held_back", best_fraction=None)
        requirements.append(requirement)
    if all(r is s for r, s in zip(requirements, standing.requirements, strict=True)):
        return standing
    return replace(
        standing,
        requirements=tuple(requirements),
        complete=False,
        credential_id=None,
        credential_status=None,
        awarded_at=None,
    )


def _withheld(session: Session, result: Result) -> bool:
    submission = session.get(Submission, result.submission_id)
    assert submission is not None
    if submission.kind != "repository":
        return False
    _, withheld = visible_tests(
        result.feedback.get("tests", []), release_for(session, submission), result.feedback.get("totals", {})
    )
    return withheld


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
        shown = result is not None and result.outcome in (GradeOutcome.GRADED, GradeOutcome.TAMPERED)
        if result is not None and shown and _withheld(session, result):
            shown = False
        rows.append(
            {
                "id": submission.id,
                "assessment": submission.assessment.slug,
                "assessment_title": submission.assessment.title,
                "status": submission.status,
                "created_at": submission.created_at,
                "score": f"{result.score:g}/{result.max_score:g}" if result is not None and shown else None,
                "passed": result.passed if result is not None and shown else None,
            }
        )
    return rows
