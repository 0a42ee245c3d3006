"""Reviews: a reviewer scores the manual rubric criteria, and the result and progress follow.

The rubric is re-evaluated with the evidence stored when the tests ran plus the reviewer's scores,
against the rubric version that scored the result, so a later rubric edit never changes what this
reviewer saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from grader.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from grader.models import GradeOutcome, Role, Rubric, Submission, SubmissionStatus, User
from grader.models import Review as ReviewRow
from grader.services import audit, progress
from grader.services.grading import latest_result, review_rows
from grader.services.repository import evidence_from_feedback, rubric_feedback
from grader.verdict import settle
from rubrics import Review, ReviewError, evaluate, rubric_from_dict

MAX_COMMENT = 10_000


def parse_reviews(criteria: Any) -> list[Review]:
    """Turn the API's list of criterion scores into rubric `Review`s, naming any bad field."""
    if not isinstance(criteria, list) or not criteria:
        raise InvalidInput("criteria must be a non-empty list", details={"field": "criteria"})
    reviews = []
    for index, item in enumerate(criteria):
        field = f"criteria[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("criterion"), str):
            raise InvalidInput(f"{field} needs a 'criterion' id", details={"field": field})
        unknown = set(item) - {"criterion", "level", "points", "items", "comment"}
        if unknown:
            raise InvalidInput(f"{field} has unknown field {sorted(unknown)[0]!r}", details={"field": field})
        level, points, items, comment = (
            item.get("level"),
            item.get("points"),
            item.get("items", []),
            item.get("comment", ""),
        )
        if level is not None and not isinstance(level, str):
            raise InvalidInput(f"{field}.level must be a level label", details={"field": f"{field}.level"})
        if points is not None and (isinstance(points, bool) or not isinstance(points, int | float)):
            raise InvalidInput(f"{field}.points must be a number", details={"field": f"{field}.points"})
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise InvalidInput(
                f"{field}.items must be a list of item ids", details={"field": f"{field}.items"}
            )
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
            raise InvalidInput(f"{field}.comment must be text", details={"field": f"{field}.comment"})
        reviews.append(
            Review(
                criterion_id=item["criterion"],
                level=level,
                points=None if points is None else float(points),
                items=tuple(items),
                comment=comment,
            )
        )
    return reviews


def record_review(
    session: Session, reviewer: User, submission_id: str, reviews: Sequence[Review], comment: str = ""
) -> dict[str, Any]:
    if reviewer.role not in (Role.REVIEWER, Role.ADMIN):
        raise PermissionDenied("only reviewers may score submissions")
    submission = session.get(Submission, submission_id) if len(submission_id) <= 64 else None
    if submission is None:
        raise NotFound("no such submission")
    result = latest_result(session, submission)
    if result is None or result.rubric_id is None:
        raise Conflict("this submission has no rubric result to review yet")
    if result.outcome in (GradeOutcome.GRADER_ERROR, GradeOutcome.NOT_GRADABLE):
        raise Conflict("this submission's latest run produced no result to review")
    rubric_row = session.get(Rubric, result.rubric_id)
    assert rubric_row is not None
    rubric = rubric_from_dict(rubric_row.definition, f"rubric {rubric_row.slug} v{rubric_row.version}")
    feedback = dict(result.feedback)
    try:
        scored = evaluate(rubric, evidence_from_feedback(feedback), reviews)
    except ReviewError as exc:
        raise InvalidInput(str(exc), details={"field": "criteria"}) from None
    if scored.needs_review:
        pending = [c.id for c in scored.criteria if c.pending]
        raise InvalidInput(
            f"score every manual criterion: {', '.join(pending)} still open",
            details={"field": "criteria", "pending": pending},
        )
    verdict = settle(
        scored.score,
        scored.max_score,
        scored.passed,
        pass_mark=scored.pass_mark,
        tampered=bool(feedback.get("tampered")),
        late_penalty=submission.late_penalty,
    )
    before = audit.result_state(result.score, result.max_score, result.passed, result.outcome)
    result.score, result.max_score, result.passed = verdict.score, verdict.max_score, verdict.passed
    result.needs_review = False
    feedback["rubric"] = {**feedback.get("rubric", {}), **rubric_feedback(scored)}
    feedback["review_comment"] = comment[:MAX_COMMENT]
    result.feedback = feedback
    submission.status = SubmissionStatus.GRADED
    session.add(
        ReviewRow(
            result_id=result.id,
            reviewer_id=reviewer.id,
            criteria=review_rows(tuple(reviews)),
            comment=comment[:MAX_COMMENT],
        )
    )
    actor = audit.user_actor(reviewer)
    audit.record(
        session,
        audit.Actions.REVIEW_SUBMITTED,
        actor=actor,
        subject=f"result {result.id}",
        before=before,
        after={
            **audit.result_state(result.score, result.max_score, result.passed, result.outcome),
            "criteria": review_rows(tuple(reviews)),
        },
        reason=comment[:500],
        **audit.submission_subject(submission),
    )
    session.flush()
    progress.update_awards(session, submission.user_id, submission.assessment_id, actor=actor)
    session.commit()
    return {
        "submission": submission.id,
        "score": result.score,
        "max_score": result.max_score,
        "passed": result.passed,
    }
