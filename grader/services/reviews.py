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
    CommentBankEntry,
    GradeOutcome,
    RegradeRequest,
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


def _score(rubric: RubricModel, result: Result, given: ReviewInput, *, partial: bool = False) -> _Scored:
    try:
        scored = evaluate(rubric, evidence_from_feedback(result.feedback), given.reviews)
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
    old = session.get(ReviewRow, review_id)
    if old is None or old.state != ReviewState.SUBMITTED:
        raise NotFound("no such submitted review", details={"field": "review"})
    result = session.get(Result, old.result_id)
    assert result is not None
    submission = session.get(Submission, result.submission_id)
    assert submission is not None
    if editor.id != old.reviewer_id:
        program_ids = access.programs_of_assessment(session, submission.assessment_id)
        staff = access.programs_of(session, editor, staff_only=True)
        if staff is not None and not staff & program_ids:
            raise PermissionDenied("only the review's author or the program's staff may edit it")
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
    if reviewer.role == Role.LEARNER:
        raise PermissionDenied("only reviewers keep a comment bank")
    text = _text(text, "text", MAX_REASON).strip()
    if not text:
        raise InvalidInput("the comment is empty", details={"field": "text"})
    entry = CommentBankEntry(
        rubric_slug=rubric_slug, criterion_id=criterion_id, text=text, created_by=reviewer.id
    )
    session.add(entry)
    session.flush()
    return entry


def edit_bank_entry(session: Session, reviewer: User, entry_id: int, text: str) -> CommentBankEntry:
    entry = session.get(CommentBankEntry, entry_id)
    if entry is None:
        raise NotFound("no such comment", details={"field": "entry"})
    if reviewer.role == Role.LEARNER:
        raise PermissionDenied("only reviewers keep a comment bank")
    text = _text(text, "text", MAX_REASON).strip()
    if not text:
        raise InvalidInput("the comment is empty", details={"field": "text"})
    entry.text, entry.updated_at = text, utcnow()
    session.flush()
    return entry


def use_bank_entry(session: Session, entry_id: int) -> str:
    entry = session.get(CommentBankEntry, entry_id)
    if entry is None:
        raise NotFound("no such comment", details={"field": "entry"})
    entry.uses += 1
    session.flush()
    return entry.text
