"""Intake: accept a learner's work, record it with a receipt, and queue it for grading.

The submission and its first grading run are committed in one transaction; only then is the run id
sent to the broker. A broker fault after the commit loses nothing: the run stays `queued` and the
reconciler sends it again. Everything the learner sends is validated here, before anything is stored;
what differs by kind (a quiz's answers, a repository's tree) is validated by its `grader.kinds` module.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from grader import metrics
from grader.catalog.schema import AssessmentDefinition
from grader.config import Settings
from grader.errors import (
    AttemptsExhausted,
    Conflict,
    GraderError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
)
from grader.interfaces import TaskQueue
from grader.kinds import kind_of
from grader.kinds import quiz as quizzes
from grader.kinds.base import SubmissionRequest, hourly_limit
from grader.models import (
    Assessment,
    Enrollment,
    GradingRun,
    QuizAttempt,
    Requirement,
    Role,
    RunStatus,
    Submission,
    SubmissionStatus,
    User,
    utcnow,
)
from grader.quiz import validate_answers
from grader.services import audit, grading
from grader.services.catalog import current_version, parse_definition
from grader.services.deadlines import deadline_for, late_penalty

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True)
class Accepted:
    submission_id: str
    receipt_sha256: str
    created: bool  # False when an Idempotency-Key matched an earlier submission
    commit: str | None = None  # the pinned commit of a git submission
    graded: bool = False  # graded inside the request (GRADER_QUIZ_GRADING=inline): the result exists


def start_quiz_attempt(
    session: Session,
    settings: Settings,
    user: User,
    assessment_slug: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Draw a quiz attempt (or return the learner's open one) with its questions and deadline."""
    now = now or utcnow()
    version = current_version(session, assessment_slug)
    quiz = quizzes.quiz_of(version)
    _check_enrolled(session, user, version.assessment)
    late_penalty(quiz, deadline_for(session, user.id, version.assessment_id, quiz), now)
    # Re-opening returns the same draw: asking again must not let a learner fish for easier questions.
    attempt = quizzes.reopenable_attempt(session, user.id, version.id, now)
    if attempt is None:
        _check_attempt_policy(session, settings, user, version.assessment, quiz, now)
        _check_rate(session, settings, user, version.assessment, quiz, now)
        quizzes.KIND.check_start(session, settings, user, version.assessment_id, assessment_slug, now)
        attempt = quizzes.draw_attempt(session, user, version, quiz, now)
    return quizzes.attempt_view(attempt, quiz)


@metrics.counts_refusals
def submit(
    session: Session,
    queue: TaskQueue,
    settings: Settings,
    user: User,
    request: SubmissionRequest,
    now: datetime | None = None,
) -> Accepted:
    """Validate, store and queue one submission; see the module docstring for the guarantees."""
    now = now or utcnow()
    key = _idempotency_key(request.idempotency_key)
    if key is None and isinstance(request.draft_id, str) and len(request.draft_id) <= 64:
        # Handing in the same draft twice (a double click, a retry) answers with the first hand-in.
        key = f"draft:{request.draft_id}"
    if key is not None:
        earlier = session.scalar(
            select(Submission).where(Submission.user_id == user.id, Submission.idempotency_key == key)
        )
        if earlier is not None:
            return Accepted(earlier.id, earlier.receipt_sha256, created=False, commit=earlier.commit_sha)
    version = current_version(session, request.assessment)
    assessment = version.assessment
    definition = parse_definition(version)
    _check_enrolled(session, user, assessment)
    deadline = deadline_for(session, user.id, assessment.id, definition)
    kind = kind_of(definition)
    penalty = late_penalty(definition, deadline, now - kind.deadline_grace)
    if not kind.counted_before_intake(request):
        _check_attempt_policy(session, settings, user, assessment, definition, now)
    _check_rate(session, settings, user, assessment, definition, now)
    _check_admission(session, settings, kind.queue)

    intake = kind.accept(session, settings, user, version, definition, request, now)
    payload, version, attempt = intake.payload, intake.version, intake.attempt

    previous = (
        session.scalar(
            select(func.count(Submission.id)).where(
                Submission.user_id == user.id, Submission.assessment_id == assessment.id
            )
        )
        or 0
    )
    receipt = receipt_hash(assessment.slug, version.version, payload)
    submission = Submission(
        user_id=user.id,
        assessment_id=assessment.id,
        assessment_version_id=version.id,
        kind=assessment.kind,
        attempt_number=previous + 1,
        payload=payload,
        receipt_sha256=receipt,
        idempotency_key=key,
        quiz_attempt_id=attempt.id if attempt else None,
        git_url=payload.get("git_url"),
        commit_sha=payload.get("commit"),
        created_at=now,
        late_penalty=penalty,
        due_at=deadline.due,
    )
    # Marked sent in the intake's own commit (no second commit on the hot path); a send that fails
    # clears it, and a process that dies before sending leaves it to the reconciler, which resends a
    # run whose queue on the broker is empty.
    run = GradingRun(submission=submission, queue=kind.queue, requested_at=now, enqueued_at=now)
    if attempt is not None:
        attempt.submitted_at = now
    session.add_all([submission, run])
    try:
        if intake.on_recorded is not None:
            session.flush()  # the submission's row first: what the kind writes may point at it
            intake.on_recorded(submission)
        if kind.coalesces():
            _supersede_waiting(session, submission, now)
        session.commit()
    except IntegrityError:
        # Two retries raced with the same Idempotency-Key: the other one won; answer with it.
        session.rollback()
        earlier = session.scalar(
            select(Submission).where(Submission.user_id == user.id, Submission.idempotency_key == key)
        )
        if earlier is None:
            raise
        return Accepted(earlier.id, earlier.receipt_sha256, created=False)
    metrics.submission_received(assessment.kind)
    if settings.quiz_grading == "inline" and kind.grades_inline(definition):
        grader = kind.grader(settings)
        if grader is not None and grading.grade_inline(
            session, run.id, grader, lease_seconds=settings.lease_seconds, max_tries=settings.max_run_tries
        ):
            return Accepted(submission.id, receipt, created=True, graded=True)
        # Not graded here (a fault gave the run back to the queue): the workers take it, sent now.
        session.refresh(run)
        run.enqueued_at = utcnow()
        session.commit()
    try:
        queue.enqueue_grading(run.id, run.queue)
    except Exception:  # any broker fault: the committed run row is the durable record
        log.warning("could not enqueue run %s; the reconciler will retry", run.id, exc_info=True)
        run.enqueued_at = None
        session.commit()
    return Accepted(submission.id, receipt, created=True, commit=submission.commit_sha)


def _supersede_waiting(session: Session, newer: Submission, now: datetime) -> None:
    """The learner's earlier hand-ins of this assessment still waiting unstarted are replaced by `newer`.

    Conditional on the run still being queued, so a run a worker has just claimed is graded as usual;
    a replaced hand-in charges no attempt and is never graded.
    """
    session.flush()
    replaced = (
        session.execute(
            update(GradingRun)
            .where(
                GradingRun.status == RunStatus.QUEUED,
                GradingRun.reason == "submitted",
                GradingRun.submission_id.in_(
                    select(Submission.id).where(
                        Submission.user_id == newer.user_id,
                        Submission.assessment_id == newer.assessment_id,
                        Submission.id != newer.id,
                    )
                ),
            )
            .values(
                status=RunStatus.SUPERSEDED,
                finished_at=now,
                last_error=f"superseded by submission {newer.id}",
            )
            .returning(GradingRun.submission_id)
            .execution_options(synchronize_session=False)
        )
        .scalars()
        .all()
    )
    if not replaced:
        return
    session.execute(
        update(Submission)
        .where(Submission.id.in_(replaced))
        .values(status=SubmissionStatus.SUPERSEDED, charged=False)
        .execution_options(synchronize_session=False)
    )
    for submission_id in replaced:
        audit.record(
            session,
            audit.Actions.SUBMISSION_SUPERSEDED,
            actor=f"user:{newer.user_id}",
            subject=f"submission {submission_id}",
            after={"status": SubmissionStatus.SUPERSEDED, "by": newer.id},
            reason="a newer hand-in arrived while this one was still waiting to be graded",
            learner_id=newer.user_id,
            assessment_id=newer.assessment_id,
            submission_id=submission_id,
        )


def send_run(session: Session, queue: TaskQueue, run: GradingRun) -> bool:
    """Hand a committed run to the broker; on a broker fault leave it for the reconciler."""
    try:
        queue.enqueue_grading(run.id, run.queue)
    except Exception:  # any broker fault: the committed run row is the durable record
        log.warning("could not enqueue run %s; the reconciler will retry", run.id, exc_info=True)
        return False
    run.enqueued_at = utcnow()
    session.commit()
    return True


def receipt_hash(assessment_slug: str, version: int, payload: Mapping[str, Any]) -> str:
    canonical = json.dumps(
        {"assessment": assessment_slug, "version": version, "payload": payload},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _idempotency_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} printable characters",
            details={"field": "Idempotency-Key"},
        )
    return key


def _check_enrolled(session: Session, user: User, assessment: Assessment) -> None:
    if user.role == Role.ADMIN:
        return
    enrolled = session.scalar(
        select(Enrollment.id)
        .join(Requirement, Requirement.program_id == Enrollment.program_id)
        .where(Enrollment.user_id == user.id, Requirement.assessment_id == assessment.id)
        .limit(1)
    )
    if enrolled is None:
        raise PermissionDenied(
            f"you are not enrolled in a program that includes {assessment.slug!r}",
            details={"field": "assessment"},
        )


def has_open_attempt(session: Session, user_id: int, assessment_id: int, now: datetime | None = None) -> bool:
    """Whether the learner holds a drawn quiz attempt they may still hand in."""
    return quizzes.has_open_attempt(session, user_id, assessment_id, now or utcnow())


def attempts_used(
    session: Session, user_id: int, assessment: Assessment, definition: AssessmentDefinition
) -> int:
    """Attempts that count against the limit, as the assessment's kind counts them."""
    return kind_of(definition).attempts_used(session, user_id, assessment.id)


def _check_attempt_policy(
    session: Session,
    settings: Settings,
    user: User,
    assessment: Assessment,
    definition: AssessmentDefinition,
    now: datetime,
) -> None:
    policy = definition.attempts
    if policy.max is None:
        return  # unlimited: nothing to count
    count = attempts_used(session, user.id, assessment, definition)
    if count >= policy.max:
        raise AttemptsExhausted(
            f"all {policy.max} attempts at {assessment.slug!r} are used",
            details={"attempts_used": count, "max_attempts": policy.max},
        )


def _check_rate(
    session: Session,
    settings: Settings,
    user: User,
    assessment: Assessment,
    definition: AssessmentDefinition,
    now: datetime,
) -> None:
    """Cooldown and hourly rate: every hand-in counts here, charged or not (they pace the load)."""
    policy = definition.attempts
    last = (
        session.scalar(
            select(func.max(Submission.created_at)).where(
                Submission.user_id == user.id, Submission.assessment_id == assessment.id
            )
        )
        if policy.cooldown_seconds
        else None
    )
    if last is not None and policy.cooldown_seconds:
        ready_at = last + timedelta(seconds=policy.cooldown_seconds)
        if ready_at > now:
            wait = max(1, int((ready_at - now).total_seconds() + 0.999))
            raise RateLimited(
                f"please wait {wait} s before the next attempt",
                retry_after=wait,
                details={"ready_at": ready_at.isoformat()},
            )
    hourly = getattr(definition, "submissions_per_hour", None) or settings.submissions_per_hour
    hour_ago = now - timedelta(hours=1)
    recent = session.scalars(
        select(Submission.created_at)
        .where(
            Submission.user_id == user.id,
            Submission.assessment_id == assessment.id,
            Submission.created_at > hour_ago,
        )
        .order_by(Submission.created_at)
    ).all()
    hourly_limit(recent, hourly, now, f"at most {hourly} submissions an hour for {assessment.slug!r}")


def _check_admission(session: Session, settings: Settings, queue: str) -> None:
    limit = settings.queue_admission_limit
    # Is there a limit-th waiting run? One step along the queue's index, however long the queue is.
    full = session.scalar(
        select(GradingRun.id)
        .where(GradingRun.queue == queue, GradingRun.status == RunStatus.QUEUED)
        .order_by(GradingRun.requested_at)
        .offset(max(limit - 1, 0))
        .limit(1)
    )
    if full is not None:
        raise ServiceUnavailable(
            "grading is at capacity right now; please retry in a minute",
            details={"queue": queue, "waiting": limit, "retry_after": 60},
        )


# ---------------------------------------------------------------- presentation: what the learner's pages show
#
# Read-only helpers for the pages and the API. They reuse the intake checks above, never restate
# them, so a page can say in advance what a hand-in would be told.


def open_attempt_view(
    session: Session, user: User, attempt_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """The questions of one of the learner's own quiz attempts, for the quiz page."""
    now = now or utcnow()
    attempt = session.get(QuizAttempt, attempt_id) if len(attempt_id) <= 64 else None
    if attempt is None or attempt.user_id != user.id:
        raise NotFound("no such quiz attempt")
    quiz = quizzes.quiz_of(attempt.assessment_version)
    view = quizzes.attempt_view(attempt, quiz)
    view["submitted"] = attempt.submitted_at is not None
    view["submission_id"] = (
        session.scalar(select(Submission.id).where(Submission.quiz_attempt_id == attempt.id))
        if attempt.submitted_at is not None
        else None
    )
    view["expired"] = quizzes.expired(attempt, now)
    view["description"] = quiz.description
    view["time_limit_minutes"] = quiz.time_limit_minutes
    return view


def check_attempt_answers(session: Session, user: User, attempt_id: str, answers: Any) -> None:
    """`InvalidInput` naming the first answer that would be refused, before anything is handed in
    (a page asks about unanswered questions only once the answers given are valid)."""
    attempt = session.get(QuizAttempt, attempt_id) if len(attempt_id) <= 64 else None
    if attempt is None or attempt.user_id != user.id:
        raise NotFound("no such quiz attempt", details={"field": "attempt"})
    validate_answers(quizzes.quiz_of(attempt.assessment_version), attempt.question_ids, answers)


def assessment_summary(session: Session, slug: str) -> dict[str, Any]:
    """What a learner reads before handing in: title, kind, description, limits and attempts."""
    version = current_version(session, slug)
    definition = parse_definition(version)
    summary: dict[str, Any] = {
        "slug": definition.slug,
        "kind": definition.kind,
        "title": definition.title,
        "description": definition.description,
        "due": definition.due,
        "max_attempts": definition.attempts.max,
        "cooldown_seconds": definition.attempts.cooldown_seconds,
    }
    summary.update(kind_of(definition).summary(version, definition))
    return summary


def check_enrolled(session: Session, user: User, slug: str) -> None:
    """`PermissionDenied` unless the user may hand in to this assessment (the intake rule)."""
    _check_enrolled(session, user, current_version(session, slug).assessment)


@dataclass(frozen=True)
class Availability:
    """Whether a learner may start (or hand in to) an assessment now, and why not."""

    attempts_used: int
    max_attempts: int | None
    cooldown_seconds: int
    open_attempt_id: str | None  # a drawn quiz attempt still in time: continue it
    blocked: GraderError | None  # what starting now would be told (attempts, due date, cooldown, rate)
    ready_at: datetime | None  # when a cooldown or rate limit ends; None when waiting will not help
    due: datetime | None = None  # this learner's due date (with an extension)
    closes: datetime | None = None  # when hand-ins stop being accepted (the end of a late window)
    late_penalty: float = 0.0  # what a hand-in now would lose, inside a late window

    @property
    def attempts_left(self) -> int | None:
        return None if self.max_attempts is None else max(0, self.max_attempts - self.attempts_used)

    @property
    def can_start(self) -> bool:
        return self.open_attempt_id is not None or self.blocked is None


def availability(
    session: Session, settings: Settings, user: User, slug: str, now: datetime | None = None
) -> Availability:
    """The checks `start_quiz_attempt` (for a quiz) or `submit` (otherwise) would make now, without
    drawing or storing anything. Queue admission is left out: it changes by the second."""
    now = now or utcnow()
    version = current_version(session, slug)
    assessment = version.assessment
    definition = parse_definition(version)
    used = attempts_used(session, user.id, assessment, definition)
    kind = kind_of(definition)
    reopen = kind.open_attempt(session, user.id, version.id, now)
    blocked: GraderError | None = None
    deadline = deadline_for(session, user.id, assessment.id, definition)
    penalty = 0.0
    try:
        _check_enrolled(session, user, assessment)
        penalty = late_penalty(definition, deadline, now)
        if reopen is None:
            _check_attempt_policy(session, settings, user, assessment, definition, now)
            _check_rate(session, settings, user, assessment, definition, now)
            kind.check_start(session, settings, user, assessment.id, slug, now)
    except (PermissionDenied, Conflict, RateLimited) as exc:
        blocked = exc
    ready_at = now + timedelta(seconds=blocked.retry_after) if isinstance(blocked, RateLimited) else None
    return Availability(
        attempts_used=used,
        max_attempts=definition.attempts.max,
        cooldown_seconds=definition.attempts.cooldown_seconds,
        open_attempt_id=reopen,
        blocked=blocked,
        ready_at=ready_at,
        due=deadline.due,
        closes=deadline.closes,
        late_penalty=penalty,
    )
