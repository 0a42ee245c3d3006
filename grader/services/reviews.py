"""Reviews: a reviewer scores a result's manual criteria, and the result, progress and credential follow.

A review belongs to a task (`review_queue`): saved as a draft any number of times, submitted once by
the holder of the task's claim, edited afterwards only as a new version (the old one is kept and the
change audited). A result is settled from its deciding reviews:

* one review: that review;
* double review: both, averaged, when they agree within the assessment's threshold; otherwise an
  adjudication task is opened and the adjudicator's review decides;
* an answered regrade request that changed a score: the regrade reviewer's new review.

The rubric is re-evaluated with the evidence stored when the tests ran, against the rubric version
that scored the result, so a later rubric edit never changes what a reviewer saw. A reviewer's free
adjustment (with a reason) moves the manual points within the rubric's bounds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from grader.models import (
    AssessmentVersion,
    CommentBankEntry,
    GradeOutcome,
    RegradeRequest,
    Requirement,
    Result,
    ReviewComment,
    ReviewSlot,
    ReviewState,
    ReviewTask,
    Role,
    Rubric,
    Submission,
    SubmissionStatus,
    TaskStatus,
    User,
    utcnow,
)
from grader.models import Review as ReviewRow
from grader.services import access, audit, progress, review_queue
from grader.services.grading import latest_result, review_rows
from grader.services.repository import evidence_from_feedback, rubric_feedback
from grader.verdict import meets, settle
from rubrics import Review, ReviewError, RubricResult, evaluate, rubric_from_dict
from rubrics.model import Rubric as RubricModel

MAX_COMMENT = 10_000
MAX_INLINE_COMMENTS = 200
MAX_REASON = 2000
MIN_REASON = 10


@dataclass(frozen=True)
class InlineComment:
    path: str
    line: int
    body: str


@dataclass(frozen=True)
class ReviewInput:
    """What a reviewer sends: scores (with a comment each), an overall comment, inline comments on
    code lines, and a free adjustment of the manual points with its reason."""

    reviews: tuple[Review, ...] = ()
    comment: str = ""
    inline: tuple[InlineComment, ...] = ()
    adjustment: float = 0.0
    adjustment_reason: str = ""


@dataclass(frozen=True)
class ReviewOutcome:
    submission_id: str
    review_id: int
    score: float | None
    max_score: float | None
    passed: bool | None
    settled: bool  # False while the result waits for another review (double review, adjudication)

    def to_dict(self) -> dict[str, Any]:
        return {
            "submission": self.submission_id,
            "review": self.review_id,
            "score": self.score,
            "max_score": self.max_score,
            "passed": self.passed,
            "settled": self.settled,
        }


# ---------------------------------------------------------------- input


def _text(value: Any, field_name: str, limit: int = MAX_COMMENT) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(
            f"{field_name} must be text of at most {limit} characters", details={"field": field_name}
        )
    return value


def parse_reviews(criteria: Any, *, allow_empty: bool = False) -> list[Review]:
    """Turn the API's list of criterion scores into rubric `Review`s, naming any bad field."""
    if not isinstance(criteria, list) or (not criteria and not allow_empty):
        raise InvalidInput("criteria must be a non-empty list", details={"field": "criteria"})
    reviews = []
    for index, item in enumerate(criteria):
        where = f"criteria[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("criterion"), str):
            raise InvalidInput(f"{where} needs a 'criterion' id", details={"field": where})
        unknown = set(item) - {"criterion", "level", "points", "items", "comment"}
        if unknown:
            raise InvalidInput(f"{where} has unknown field {sorted(unknown)[0]!r}", details={"field": where})
        level, points, items = item.get("level"), item.get("points"), item.get("items", [])
        if level is not None and not isinstance(level, str):
            raise InvalidInput(f"{where}.level must be a level label", details={"field": f"{where}.level"})
        if points is not None and (isinstance(points, bool) or not isinstance(points, int | float)):
            raise InvalidInput(f"{where}.points must be a number", details={"field": f"{where}.points"})
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise InvalidInput(
                f"{where}.items must be a list of item ids", details={"field": f"{where}.items"}
            )
        reviews.append(
            Review(
                criterion_id=item["criterion"],
                level=level,
                points=None if points is None else float(points),
                items=tuple(items),
                comment=_text(item.get("comment"), f"{where}.comment"),
            )
        )
    return reviews


def parse_review_input(data: Mapping[str, Any], *, draft: bool = False) -> ReviewInput:
    """A whole review from the API's JSON (or the review form, turned into the same shape)."""
    unknown = set(data) - {"criteria", "comment", "inline_comments", "adjustment", "adjustment_reason"}
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidInput(f"unknown field {name!r}", details={"field": name})
    inline = data.get("inline_comments", [])
    if not isinstance(inline, list) or len(inline) > MAX_INLINE_COMMENTS:
        raise InvalidInput(
            f"inline_comments must be a list of at most {MAX_INLINE_COMMENTS} comments",
            details={"field": "inline_comments"},
        )
    comments = []
    for index, item in enumerate(inline):
        where = f"inline_comments[{index}]"
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("path"), str)
            or not item["path"]
            or isinstance(item.get("line"), bool)
            or not isinstance(item.get("line"), int)
            or item["line"] < 1
        ):
            raise InvalidInput(f"{where} needs a path and a line number from 1", details={"field": where})
        body = _text(item.get("body"), f"{where}.body").strip()
        if not body:
            raise InvalidInput(f"{where}.body is empty", details={"field": f"{where}.body"})
        comments.append(InlineComment(item["path"][:1000], item["line"], body))
    adjustment = data.get("adjustment", 0)
    if (
        isinstance(adjustment, bool)
        or not isinstance(adjustment, int | float)
        or not math.isfinite(adjustment)
    ):
        raise InvalidInput("adjustment must be a number of points", details={"field": "adjustment"})
    reason = _text(data.get("adjustment_reason"), "adjustment_reason", MAX_REASON).strip()
    if adjustment and not reason:
        raise InvalidInput("say why the points are adjusted", details={"field": "adjustment_reason"})
    return ReviewInput(
        reviews=tuple(parse_reviews(data.get("criteria", []), allow_empty=draft)),
        comment=_text(data.get("comment"), "comment"),
        inline=tuple(comments),
        adjustment=float(adjustment),
        adjustment_reason=reason,
    )


# ---------------------------------------------------------------- the rubric of a result


@dataclass(frozen=True)
class _Scored:
    rubric: RubricModel
    result: RubricResult
    manual_points: float  # weighted, with the adjustment
    manual_max: float
    below_minimum: bool


def _rubric_of(session: Session, result: Result) -> RubricModel:
    if result.rubric_id is None:
        raise Conflict("this submission has no rubric result to review yet")
    row = session.get(Rubric, result.rubric_id)
    assert row is not None
    return rubric_from_dict(row.definition, f"rubric {row.slug} v{row.version}")


def _unscored(rubric: RubricModel, review: Review) -> bool:
    """A draft's note on a criterion not scored yet: a comment without its level or points."""
    criterion = rubric.criterion(review.criterion_id)
    if criterion is None or criterion.auto is not None:
        return False  # left for `evaluate` to refuse, naming the criterion
    return (criterion.scoring == "levels" and review.level is None) or (
        criterion.scoring == "points" and review.points is None
    )


def _score(rubric: RubricModel, result: Result, given: ReviewInput, *, partial: bool = False) -> _Scored:
    reviews = given.reviews
    if partial:
        # A draft keeps what a reviewer wrote about a criterion before they pick its level.
        reviews = tuple(r for r in reviews if not _unscored(rubric, r))
    try:
        scored = evaluate(rubric, evidence_from_feedback(result.feedback), reviews)
    except ReviewError as exc:
        raise InvalidInput(str(exc), details={"field": "criteria"}) from None
    if scored.needs_review and not partial:
        pending = [c.id for c in scored.criteria if c.pending]
        raise InvalidInput(
            f"score every manual criterion: {', '.join(pending)} still open",
            details={"field": "criteria", "pending": pending},
        )
    manual = [c for c in scored.criteria if c.manual]
    manual_max = math.fsum(c.weighted_max for c in manual)
    raw = math.fsum(c.weighted_points for c in manual)
    if not -manual_max <= given.adjustment <= manual_max:
        raise InvalidInput(
            f"the adjustment must lie within ±{manual_max:g} points", details={"field": "adjustment"}
        )
    return _Scored(
        rubric=rubric,
        result=scored,
        manual_points=min(max(raw + given.adjustment, 0.0), manual_max),
        manual_max=manual_max,
        below_minimum=any(c.below_minimum for c in scored.criteria),
    )


def _input_of(row: ReviewRow) -> ReviewInput:
    return ReviewInput(
        reviews=tuple(
            Review(
                criterion_id=item["criterion"],
                level=item.get("level"),
                points=item.get("points"),
                items=tuple(item.get("items", [])),
                comment=item.get("comment", ""),
            )
            for item in row.criteria
        ),
        comment=row.comment,
        inline=tuple(InlineComment(c.path, c.line, c.body) for c in row.comments),
        adjustment=row.adjustment,
        adjustment_reason=row.adjustment_reason,
    )


# ---------------------------------------------------------------- drafts, submit, edit


def _write(row: ReviewRow, given: ReviewInput) -> None:
    row.criteria = review_rows(given.reviews)
    row.comment = given.comment[:MAX_COMMENT]
    row.adjustment = given.adjustment
    row.adjustment_reason = given.adjustment_reason
    row.comments = [ReviewComment(path=c.path, line=c.line, body=c.body) for c in given.inline]
    row.updated_at = utcnow()


def draft_for(session: Session, reviewer: User, task: ReviewTask) -> ReviewRow | None:
    return session.scalar(
        select(ReviewRow).where(
            ReviewRow.task_id == task.id,
            ReviewRow.reviewer_id == reviewer.id,
            ReviewRow.state == ReviewState.DRAFT,
        )
    )


def save_draft(
    session: Session, reviewer: User, task_id: int, given: ReviewInput, *, now: datetime | None = None
) -> ReviewRow:
    """Keep a review in progress; it may leave criteria open, but what it scores must fit the rubric."""
    task = review_queue.held(session, reviewer, task_id, now=now)
    _score(_rubric_of(session, task.result), task.result, given, partial=True)
    row = draft_for(session, reviewer, task)
    if row is None:
        row = ReviewRow(
            result_id=task.result_id,
            reviewer_id=reviewer.id,
            task_id=task.id,
            slot=task.slot,
            state=ReviewState.DRAFT,
        )
        session.add(row)
    _write(row, given)
    session.flush()
    return row


def submit(
    session: Session, reviewer: User, task_id: int, given: ReviewInput, *, now: datetime | None = None
) -> ReviewOutcome:
    """Submit the review of a task this reviewer holds; the result settles when it can."""
    task = review_queue.held(session, reviewer, task_id, now=now)
    result = task.result
    _score(_rubric_of(session, result), result, given)
    row = draft_for(session, reviewer, task) or ReviewRow(
        result_id=result.id, reviewer_id=reviewer.id, task_id=task.id, slot=task.slot
    )
    session.add(row)
    _write(row, given)
    row.state = ReviewState.SUBMITTED
    task.status, task.completed_at = TaskStatus.DONE, now or utcnow()
    session.flush()
    actor = audit.user_actor(reviewer)
    audit.record(
        session,
        audit.Actions.REVIEW_SUBMITTED,
        actor=actor,
        subject=f"review {row.id}",
        after={"slot": task.slot, "criteria": row.criteria, "adjustment": row.adjustment},
        reason=given.adjustment_reason or given.comment[:500],
        **audit.submission_subject(task.submission),
    )
    return _settle(session, task.submission, result, row, actor=actor)


def edit(session: Session, editor: User, review_id: int, given: ReviewInput, *, reason: str) -> ReviewOutcome:
    """A new version of a submitted review, by its author or staff; the earlier one is kept."""
    old = editable_review(session, editor, review_id)
    result = session.get(Result, old.result_id)
    assert result is not None
    submission = session.get(Submission, result.submission_id)
    assert submission is not None
    reason = _text(reason, "reason", MAX_REASON).strip()
    if len(reason) < MIN_REASON:
        raise InvalidInput(
            f"say why the review changes (at least {MIN_REASON} characters)", details={"field": "reason"}
        )
    _score(_rubric_of(session, result), result, given)
    new = ReviewRow(
        result_id=old.result_id,
        reviewer_id=old.reviewer_id,
        task_id=old.task_id,
        slot=old.slot,
        state=ReviewState.SUBMITTED,
        version=old.version + 1,
        supersedes_id=old.id,
    )
    session.add(new)
    _write(new, given)
    old.state = ReviewState.SUPERSEDED
    session.flush()
    actor = audit.user_actor(editor)
    audit.record(
        session,
        audit.Actions.REVIEW_EDITED,
        actor=actor,
        subject=f"review {old.id} -> {new.id}",
        before={"criteria": old.criteria, "adjustment": old.adjustment, "version": old.version},
        after={"criteria": new.criteria, "adjustment": new.adjustment, "version": new.version},
        reason=reason,
        **audit.submission_subject(submission),
    )
    return _settle(session, submission, result, new, actor=actor)


def editable_review(session: Session, editor: User, review_id: int) -> ReviewRow:
    """A submitted review `editor` may change: their own, or any of a program they run.

    A superseded version is not editable (edit its newest version); a review of another program is
    not found, so its existence is not given away.
    """
    row = session.get(ReviewRow, review_id)
    if row is None or row.state not in (ReviewState.SUBMITTED, ReviewState.SUPERSEDED):
        raise NotFound("no such submitted review", details={"field": "review"})
    result = session.get(Result, row.result_id)
    assert result is not None
    submission = session.get(Submission, result.submission_id)
    assert submission is not None
    if editor.role == Role.LEARNER or not (
        editor.id == row.reviewer_id or access.may_review(session, editor, submission)
    ):
        raise NotFound("no such submitted review", details={"field": "review"})
    if editor.id != row.reviewer_id:
        program_ids = access.programs_of_assessment(session, submission.assessment_id)
        staff = access.programs_of(session, editor, staff_only=True)
        if staff is not None and not staff & program_ids:
            raise PermissionDenied("only the review's author or the program's staff may edit it")
    if row.state == ReviewState.SUPERSEDED:
        newer: int | None = row.id
        while (
            following := session.scalar(select(ReviewRow.id).where(ReviewRow.supersedes_id == newer))
        ) is not None:
            newer = following
        raise Conflict(
            "this version was already edited: edit the newest version",
            details={"field": "review", "newest": newer},
        )
    return row


def record_review(
    session: Session, reviewer: User, submission_id: str, reviews: Sequence[Review], comment: str = ""
) -> dict[str, Any]:
    """The one-call review of the API: claim this submission's open review and submit it at once."""
    if reviewer.role not in (Role.REVIEWER, Role.ADMIN):
        raise PermissionDenied("only reviewers may score submissions")
    submission = session.get(Submission, submission_id) if len(submission_id) <= 64 else None
    if submission is None:
        raise NotFound("no such submission")
    access.require_reviewer(session, reviewer, submission)
    result = latest_result(session, submission)
    if result is None or result.rubric_id is None:
        raise Conflict("this submission has no rubric result to review yet")
    if result.outcome in (GradeOutcome.GRADER_ERROR, GradeOutcome.NOT_GRADABLE):
        raise Conflict("this submission's latest run produced no result to review")
    tasks = session.scalars(
        select(ReviewTask)
        .where(
            ReviewTask.result_id == result.id, ReviewTask.status.in_([TaskStatus.OPEN, TaskStatus.CLAIMED])
        )
        .order_by(ReviewTask.id)
    ).all()
    last_error: Exception = Conflict("this submission has no review waiting")
    for task in tasks:
        try:
            review_queue.claim(session, reviewer, task.id)
        except (Conflict, PermissionDenied) as exc:
            last_error = exc
            continue
        return submit(
            session, reviewer, task.id, ReviewInput(reviews=tuple(reviews), comment=comment)
        ).to_dict()
    raise last_error


# ---------------------------------------------------------------- settling a result


def _deciding(session: Session, result: Result) -> list[ReviewRow]:
    return list(
        session.scalars(
            select(ReviewRow)
            .where(ReviewRow.result_id == result.id, ReviewRow.state == ReviewState.SUBMITTED)
            .order_by(ReviewRow.id)
        ).all()
    )


def _settle(
    session: Session, submission: Submission, result: Result, latest: ReviewRow, *, actor: str
) -> ReviewOutcome:
    policy = review_queue.policy_of(submission)
    rubric = _rubric_of(session, result)
    submitted = _deciding(session, result)
    by_slot: dict[str, ReviewRow] = {row.slot: row for row in submitted}  # the newest of each slot wins
    decisive: list[ReviewRow]
    if ReviewSlot.REGRADE in by_slot and by_slot[ReviewSlot.REGRADE].id == max(r.id for r in submitted):
        decisive = [by_slot[ReviewSlot.REGRADE]]
    elif ReviewSlot.ADJUDICATION in by_slot:
        decisive = [by_slot[ReviewSlot.ADJUDICATION]]
    elif policy.double:
        pair = [by_slot.get(ReviewSlot.FIRST), by_slot.get(ReviewSlot.SECOND)]
        if None in pair:
            return ReviewOutcome(submission.id, latest.id, None, None, None, settled=False)
        first, second = (_score(rubric, result, _input_of(row)) for row in pair if row is not None)
        apart = (
            abs(first.manual_points - second.manual_points) / first.manual_max if first.manual_max else 0.0
        )
        if apart > policy.disagreement + 1e-9 or first.below_minimum != second.below_minimum:
            _open_adjudication(session, result, submission)
            return ReviewOutcome(submission.id, latest.id, None, None, None, settled=False)
        decisive = [row for row in pair if row is not None]
    else:
        decisive = [by_slot.get(ReviewSlot.FIRST) or latest]
    scored = [_score(rubric, result, _input_of(row)) for row in decisive]
    automatic = math.fsum(c.weighted_points for c in scored[0].result.criteria if not c.manual)
    manual = math.fsum(s.manual_points for s in scored) / len(scored)
    max_score = scored[0].result.max_score
    total = round(min(automatic + manual, max_score), 4)
    passed = not any(s.below_minimum for s in scored) and meets(
        total / max_score if max_score else 0.0, rubric.pass_mark
    )
    verdict = settle(
        total,
        max_score,
        passed,
        pass_mark=rubric.pass_mark,
        tampered=bool(result.feedback.get("tampered")),
        late_penalty=submission.late_penalty,
    )
    before = audit.result_state(result.score, result.max_score, result.passed, result.outcome)
    feedback = dict(result.feedback)
    feedback["rubric"] = {**feedback.get("rubric", {}), **_rubric_feedback(scored)}
    feedback["review"] = _review_feedback(decisive, scored)
    feedback["review_comment"] = "\n\n".join(row.comment for row in decisive if row.comment)
    result.feedback = feedback
    result.score, result.max_score, result.passed = verdict.score, verdict.max_score, verdict.passed
    result.needs_review = False
    submission.status = SubmissionStatus.GRADED
    session.flush()
    audit.record(
        session,
        audit.Actions.RESULT_SETTLED,
        actor=actor,
        subject=f"result {result.id}",
        before=before,
        after=audit.result_state(result.score, result.max_score, result.passed, result.outcome),
        reason=f"decided by {' and '.join(row.slot for row in decisive)} review",
        **audit.submission_subject(submission),
    )
    progress.update_awards(session, submission.user_id, submission.assessment_id, actor=actor)
    session.flush()
    return ReviewOutcome(
        submission.id, latest.id, result.score, result.max_score, result.passed, settled=True
    )


def _open_adjudication(session: Session, result: Result, submission: Submission) -> None:
    exists = session.scalar(
        select(ReviewTask.id).where(
            ReviewTask.result_id == result.id, ReviewTask.slot == ReviewSlot.ADJUDICATION
        )
    )
    if exists is None:
        session.add(
            ReviewTask(result_id=result.id, submission_id=submission.id, slot=ReviewSlot.ADJUDICATION)
        )
        session.flush()


def _rubric_feedback(scored: list[_Scored]) -> dict[str, Any]:
    """The rubric part of the feedback; with two agreeing reviews, each criterion's mean points."""
    base = rubric_feedback(scored[0].result)
    if len(scored) == 1:
        return base
    for index, criterion in enumerate(base["criteria"]):
        if not criterion["manual"]:
            continue
        each = [s.result.criteria[index] for s in scored]
        criterion["points"] = round(math.fsum(c.points for c in each) / len(each), 4)
        criterion["level"] = " / ".join(c.level or "" for c in each) or None
        criterion["explanation"] = "mean of two reviews: " + "; ".join(c.explanation for c in each)
    return base


def _review_feedback(decisive: list[ReviewRow], scored: list[_Scored]) -> dict[str, Any]:
    """What the learner is shown of the reviews (names are added at read time, unless blind)."""
    return {
        "reviews": [
            {
                "id": row.id,
                "reviewer_id": row.reviewer_id,
                "slot": row.slot,
                "comment": row.comment,
                "criteria_comments": {
                    item["criterion"]: item.get("comment", "") for item in row.criteria if item.get("comment")
                },
                "inline": [{"path": c.path, "line": c.line, "body": c.body} for c in row.comments],
                "adjustment": row.adjustment,
                "adjustment_reason": row.adjustment_reason,
            }
            for row in decisive
        ],
        "manual_points": round(math.fsum(s.manual_points for s in scored) / len(scored), 4),
        "manual_max": scored[0].manual_max,
    }


# ---------------------------------------------------------------- regrade requests


def request_regrade(
    session: Session,
    learner: User,
    submission_id: str,
    criterion_id: str,
    reason: str,
    *,
    now: datetime | None = None,
) -> RegradeRequest:
    """A learner asks for one reviewed criterion to be looked at again, within the window."""
    now = now or utcnow()
    submission = session.get(Submission, submission_id) if len(submission_id) <= 64 else None
    if submission is None or submission.user_id != learner.id:
        raise NotFound("no such submission")
    result = latest_result(session, submission)
    reviewed = _deciding(session, result) if result is not None else []
    if result is None or not reviewed or result.needs_review:
        raise Conflict("only a reviewed result can be regraded", details={"field": "submission"})
    policy = review_queue.policy_of(submission)
    closes = max(r.created_at for r in reviewed) + timedelta(days=policy.regrade_window_days)
    if now > closes:
        raise Conflict(
            f"regrade requests closed on {closes:%Y-%m-%d %H:%M} UTC", details={"field": "submission"}
        )
    rubric = _rubric_of(session, result)
    criterion = rubric.criterion(criterion_id)
    if criterion is None or criterion.auto is not None:
        raise InvalidInput("choose one of the criteria a reviewer scored", details={"field": "criterion"})
    reason = _text(reason, "reason", MAX_REASON).strip()
    if len(reason) < MIN_REASON:
        raise InvalidInput(f"say why, in at least {MIN_REASON} characters", details={"field": "reason"})
    pending = session.scalar(
        select(RegradeRequest.id).where(
            RegradeRequest.result_id == result.id,
            RegradeRequest.criterion_id == criterion_id,
            RegradeRequest.status == "open",
        )
    )
    if pending is not None:
        raise Conflict("a regrade of this criterion is already waiting", details={"field": "criterion"})
    request = RegradeRequest(
        submission_id=submission.id,
        result_id=result.id,
        criterion_id=criterion_id,
        reason=reason,
        requested_by=learner.id,
    )
    session.add(request)
    session.flush()
    first = reviewed[0]
    session.add(
        ReviewTask(
            result_id=result.id,
            submission_id=submission.id,
            slot=ReviewSlot.REGRADE,
            excluded_reviewer_id=first.reviewer_id,
            regrade_request_id=request.id,
        )
    )
    audit.record(
        session,
        audit.Actions.REGRADE_ASKED,
        actor=audit.user_actor(learner),
        subject=f"regrade request {request.id}",
        after={"criterion": criterion_id},
        reason=reason,
        **audit.submission_subject(submission),
    )
    session.flush()
    return request


def answer_regrade(
    session: Session,
    reviewer: User,
    task_id: int,
    reply: str,
    given: ReviewInput | None = None,
    *,
    now: datetime | None = None,
) -> RegradeRequest:
    """Answer a regrade request held by this reviewer: a reply, and a new review if a score changes."""
    task = review_queue.held(session, reviewer, task_id, now=now)
    if task.slot != ReviewSlot.REGRADE or task.regrade_request_id is None:
        raise InvalidInput("this task is not a regrade request", details={"field": "task"})
    request = session.get(RegradeRequest, task.regrade_request_id)
    assert request is not None
    reply = _text(reply, "reply", MAX_REASON).strip()
    if not reply:
        raise InvalidInput("reply to the learner's reason", details={"field": "reply"})
    before = _deciding(session, task.result)
    changed = (
        given is not None
        and bool(before)
        and _scores(review_rows(given.reviews)) != _scores(before[-1].criteria)
    )
    if changed and given is not None:
        submit(session, reviewer, task_id, given, now=now)
    else:
        task.status, task.completed_at = TaskStatus.DONE, now or utcnow()
    request.status, request.reply, request.answered_by = "answered", reply, reviewer.id
    request.answered_at, request.changed = now or utcnow(), changed
    audit.record(
        session,
        audit.Actions.REGRADE_ANSWERED,
        actor=audit.user_actor(reviewer),
        subject=f"regrade request {request.id}",
        after={"changed": changed, "criterion": request.criterion_id},
        reason=reply,
        **audit.submission_subject(task.submission),
    )
    session.flush()
    return request


def _scores(criteria: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Any, Any, tuple[str, ...]]]:
    """A review's scores per criterion, without its comments: what a regrade may change."""
    return {
        item["criterion"]: (item.get("level"), item.get("points"), tuple(sorted(item.get("items", []))))
        for item in criteria
    }


def regrade_requests_of(session: Session, submission_id: str) -> list[RegradeRequest]:
    return list(
        session.scalars(
            select(RegradeRequest)
            .where(RegradeRequest.submission_id == submission_id)
            .order_by(RegradeRequest.id)
        ).all()
    )


# ---------------------------------------------------------------- the comment bank


@dataclass(frozen=True)
class BankEntry:
    id: int
    criterion_id: str | None
    text: str
    uses: int
    extra: Mapping[str, Any] = field(default_factory=dict)


def comment_bank(
    session: Session, rubric_slug: str, search: str = "", criterion_id: str | None = None
) -> list[BankEntry]:
    query = select(CommentBankEntry).where(CommentBankEntry.rubric_slug == rubric_slug)
    if criterion_id:
        query = query.where(
            (CommentBankEntry.criterion_id == criterion_id) | CommentBankEntry.criterion_id.is_(None)
        )
    if search:
        query = query.where(CommentBankEntry.text.ilike(f"%{search[:200]}%"))
    rows = session.scalars(query.order_by(CommentBankEntry.uses.desc(), CommentBankEntry.id).limit(200)).all()
    return [BankEntry(r.id, r.criterion_id, r.text, r.uses) for r in rows]


def add_to_bank(
    session: Session, reviewer: User, rubric_slug: str, text: str, criterion_id: str | None = None
) -> CommentBankEntry:
    require_bank_access(session, reviewer, rubric_slug)
    text = _text(text, "text", MAX_REASON).strip()
    if not text:
        raise InvalidInput("the comment is empty", details={"field": "text"})
    if criterion_id is not None and criterion_id not in bank_criteria(session, rubric_slug):
        raise InvalidInput(
            "choose one of the rubric's manual criteria, or none", details={"field": "criterion"}
        )
    entry = CommentBankEntry(
        rubric_slug=rubric_slug, criterion_id=criterion_id, text=text, created_by=reviewer.id
    )
    session.add(entry)
    session.flush()
    return entry


def edit_bank_entry(session: Session, reviewer: User, entry_id: int, text: str) -> CommentBankEntry:
    entry = bank_entry(session, reviewer, entry_id)
    text = _text(text, "text", MAX_REASON).strip()
    if not text:
        raise InvalidInput("the comment is empty", details={"field": "text"})
    entry.text, entry.updated_at = text, utcnow()
    session.flush()
    return entry


def use_bank_entry(session: Session, entry_id: int, user: User | None = None) -> str:
    """Count one use of a bank comment (inserted into a review); its text."""
    if user is not None:
        entry = bank_entry(session, user, entry_id)
    else:
        found = session.get(CommentBankEntry, entry_id)
        if found is None:
            raise NotFound("no such comment", details={"field": "entry"})
        entry = found
    entry.uses += 1
    session.flush()
    return entry.text


def bank_criteria(session: Session, rubric_slug: str) -> dict[str, str]:
    """The manual criteria (id: title) of the rubric's newest version, to file a bank comment under."""
    row = session.scalar(
        select(Rubric).where(Rubric.slug == rubric_slug).order_by(Rubric.version.desc()).limit(1)
    )
    if row is None:
        return {}
    rubric = rubric_from_dict(row.definition, f"rubric {row.slug} v{row.version}")
    return {c.id: c.title for c in rubric.criteria if c.auto is None}


def require_bank_access(session: Session, user: User, rubric_slug: str) -> None:
    """Reviewers keep the comment bank of the rubrics their programs use; admins of every rubric."""
    if user.role == Role.LEARNER:
        raise PermissionDenied("only reviewers keep a comment bank")
    exists = session.scalar(select(Rubric.id).where(Rubric.slug == rubric_slug).limit(1))
    if exists is None:
        raise NotFound(f"no rubric {rubric_slug[:100]!r}", details={"field": "rubric"})
    programs = access.programs_of(session, user)
    if programs is None:
        return
    used_by = set(
        session.scalars(
            select(Requirement.program_id)
            .join(AssessmentVersion, AssessmentVersion.assessment_id == Requirement.assessment_id)
            .join(Rubric, Rubric.id == AssessmentVersion.rubric_id)
            .where(Rubric.slug == rubric_slug)
        )
    )
    if not programs & used_by:
        raise PermissionDenied("you do not review a program that uses this rubric")


def bank_entry(session: Session, user: User, entry_id: int) -> CommentBankEntry:
    entry = session.get(CommentBankEntry, entry_id)
    if entry is None:
        raise NotFound("no such comment", details={"field": "entry"})
    require_bank_access(session, user, entry.rubric_slug)
    return entry


# ---------------------------------------------------------------- what the review pages show


def rubric_of(session: Session, result: Result) -> RubricModel:
    """The rubric version that scored `result`: the one its review is scored against."""
    return _rubric_of(session, result)


def rubric_slug_of(session: Session, result: Result) -> str | None:
    row = session.get(Rubric, result.rubric_id) if result.rubric_id is not None else None
    return row.slug if row is not None else None


def input_of(row: ReviewRow) -> ReviewInput:
    """A stored review (or draft) as the input that would write it again."""
    return _input_of(row)


@dataclass(frozen=True)
class CriterionPreview:
    id: str
    title: str
    manual: bool
    pending: bool
    level: str | None
    points: float  # weighted: what the criterion adds to the total
    max_points: float
    below_minimum: bool


@dataclass(frozen=True)
class Preview:
    """The score a review would give, before any late penalty: what the page shows as the preview."""

    criteria: tuple[CriterionPreview, ...]
    automatic: float
    manual: float  # with the adjustment, within the manual criteria's bounds
    manual_max: float
    total: float
    max_score: float
    pass_mark: float
    pending: tuple[str, ...]
    below_minimum: bool

    @property
    def passes(self) -> bool | None:
        if self.pending:
            return None
        return not self.below_minimum and meets(
            self.total / self.max_score if self.max_score else 0.0, self.pass_mark
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "criteria": [
                {
                    "criterion": c.id,
                    "points": None if c.pending else c.points,
                    "max_points": c.max_points,
                    "level": c.level,
                    "manual": c.manual,
                }
                for c in self.criteria
            ],
            "automatic": self.automatic,
            "manual": self.manual,
            "manual_max": self.manual_max,
            "total": self.total,
            "max_score": self.max_score,
            "pending": list(self.pending),
            "passes": self.passes,
        }


def preview(session: Session, result: Result, given: ReviewInput) -> Preview:
    """Score `given` against the result's rubric without recording anything; open criteria count 0."""
    scored = _score(_rubric_of(session, result), result, given, partial=True)
    automatic = math.fsum(c.weighted_points for c in scored.result.criteria if not c.manual)
    max_score = scored.result.max_score
    return Preview(
        criteria=tuple(
            CriterionPreview(
                c.id,
                c.title,
                c.manual,
                c.pending,
                c.level,
                c.weighted_points,
                c.weighted_max,
                c.below_minimum,
            )
            for c in scored.result.criteria
        ),
        automatic=round(automatic, 4),
        manual=round(scored.manual_points, 4),
        manual_max=scored.manual_max,
        total=round(min(automatic + scored.manual_points, max_score), 4),
        max_score=max_score,
        pass_mark=scored.rubric.pass_mark,
        pending=tuple(c.id for c in scored.result.criteria if c.pending),
        below_minimum=scored.below_minimum,
    )


@dataclass(frozen=True)
class ShownReview:
    """A submitted review as another reviewer may see it (an adjudicator, a regrade's reviewer)."""

    id: int
    slot: str
    version: int
    reviewer: str
    submitted_at: datetime
    input: ReviewInput
    manual_points: float
    manual_max: float


@dataclass(frozen=True)
class TaskContext:
    """What the page of a task shows beside the evidence.

    `shown` keeps double review independent: the first and second reviewers see no other review;
    an adjudicator sees both; a regrade's reviewer sees the reviews that stand. `prefill` is what the
    form starts with: the reviewer's draft, or for a regrade the scores that stand (so that leaving
    them as they are changes nothing).
    """

    task: ReviewTask
    shown: tuple[ShownReview, ...]
    request: RegradeRequest | None
    draft: ReviewRow | None
    prefill: ReviewInput


def task_context(session: Session, reviewer: User, task: ReviewTask) -> TaskContext:
    result = task.result
    rubric = _rubric_of(session, result)
    submitted = _deciding(session, result)
    shown_rows: list[ReviewRow] = []
    if task.slot == ReviewSlot.ADJUDICATION:
        shown_rows = [r for r in submitted if r.slot in (ReviewSlot.FIRST, ReviewSlot.SECOND)]
    elif task.slot == ReviewSlot.REGRADE:
        shown_rows = list(submitted)
    shown = []
    for row in shown_rows:
        given = _input_of(row)
        scored = _score(rubric, result, given, partial=True)
        shown.append(
            ShownReview(
                id=row.id,
                slot=row.slot,
                version=row.version,
                reviewer=row.reviewer.name,
                submitted_at=row.updated_at,
                input=given,
                manual_points=scored.manual_points,
                manual_max=scored.manual_max,
            )
        )
    request = (
        session.get(RegradeRequest, task.regrade_request_id) if task.regrade_request_id is not None else None
    )
    draft = draft_for(session, reviewer, task)
    if draft is not None:
        prefill = _input_of(draft)
    elif task.slot == ReviewSlot.REGRADE and submitted:
        standing = _input_of(submitted[-1])
        prefill = ReviewInput(
            reviews=tuple(
                Review(r.criterion_id, level=r.level, points=r.points, items=r.items)
                for r in standing.reviews
            )
        )
    else:
        prefill = ReviewInput()
    return TaskContext(task=task, shown=tuple(shown), request=request, draft=draft, prefill=prefill)


@dataclass(frozen=True)
class SubmittedReview:
    id: int
    version: int
    slot: str
    assessment_title: str
    attempt_number: int
    learner: str | None  # None under blind review
    submitted_at: datetime
    score: float | None  # the result's score now
    max_score: float | None
    passed: bool | None


def recent_reviews(session: Session, reviewer: User, limit: int = 10) -> list[SubmittedReview]:
    """The newest reviews `reviewer` submitted (each at its newest version), for editing."""
    rows = session.execute(
        select(ReviewRow, Result, Submission)
        .join(Result, Result.id == ReviewRow.result_id)
        .join(Submission, Submission.id == Result.submission_id)
        .where(ReviewRow.reviewer_id == reviewer.id, ReviewRow.state == ReviewState.SUBMITTED)
        .order_by(ReviewRow.updated_at.desc(), ReviewRow.id.desc())
        .limit(limit)
    ).all()
    return [
        SubmittedReview(
            id=row.id,
            version=row.version,
            slot=row.slot,
            assessment_title=submission.assessment.title,
            attempt_number=submission.attempt_number,
            learner=None
            if review_queue.hides_learner(session, reviewer, submission)
            else submission.user.name,
            submitted_at=row.updated_at,
            score=None if result.needs_review else result.score,
            max_score=None if result.needs_review else result.max_score,
            passed=None if result.needs_review else result.passed,
        )
        for row, result, submission in rows
    ]


def review_context(session: Session, row: ReviewRow) -> tuple[Result, Submission, RubricModel]:
    result = session.get(Result, row.result_id)
    assert result is not None
    submission = session.get(Submission, result.submission_id)
    assert submission is not None
    return result, submission, _rubric_of(session, result)
