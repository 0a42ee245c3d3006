"""Intake: accept a learner's work, record it with a receipt, and queue it for grading.

The submission and its first grading run are committed in one transaction; only then is the run id
sent to the broker. A broker fault after the commit loses nothing: the run stays `queued` and the
reconciler sends it again. Everything the learner sends is validated here, before anything is stored;
what differs by kind (a quiz's answers, a repository's tree) is validated by its `grader.kinds` module.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import DateTime, Insert, Integer, Select, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager

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
from grader.kinds import kind_named, kind_of
from grader.kinds import quiz as quizzes
from grader.kinds.base import IdParam, Kind, SubmissionRequest, hourly_limit
from grader.models import (
    Assessment,
    AssessmentVersion,
    Enrollment,
    Extension,
    GradingRun,
    QuizAttempt,
    Requirement,
    Result,
    Role,
    RunStatus,
    Submission,
    SubmissionStatus,
    User,
    new_id,
    table_of,
    utcnow,
)
from grader.quiz import validate_answers
from grader.services import audit, grading, review_queue
from grader.services.catalog import (
    assessment_ref,
    current_version,
    forget_assessment_refs,
    parse_definition,
)
from grader.services.deadlines import deadline_from, late_penalty

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True)
class Accepted:
    submission_id: str
    receipt_sha256: str
    created: bool  # False when an Idempotency-Key matched an earlier submission
    commit: str | None = None  # the pinned commit of a git submission
    # Graded inside the request (GRADER_QUIZ_GRADING=inline): the hand-in and its result as written
    # (objects outside the session, for the response's view)
    graded: tuple[Submission, Result] | None = None


@dataclass(frozen=True)
class _Standing:
    """What intake's checks read about a learner and an assessment, fetched in one statement."""

    version: AssessmentVersion
    enrolled: bool
    extension_due: datetime | None
    handed_in: int
    last_handed_in_at: datetime | None
    in_last_hour: int
    oldest_in_last_hour: datetime | None
    attempts_used: int
    queue_full: bool


def _standing(
    session: Session, settings: Settings, user: User, assessment_slug: str, now: datetime
) -> _Standing:
    """The current version and everything the intake checks need, in one read (on the hot path)."""
    for _ in range(2):  # a cached ref that no longer names the assessment is looked up again, once
        ref = assessment_ref(session, assessment_slug)
        params = {"user_id": user.id, "assessment_id": ref.id, "hour_ago": now - timedelta(hours=1)}
        statement = _standing_statement(ref.kind, settings.queue_admission_limit)
        row = session.execute(statement, params).one_or_none()
        if row is not None and (row[0].assessment.slug, row[0].assessment.kind) == (
            assessment_slug,
            ref.kind,
        ):
            version, is_enrolled, due, handed_in, last_at, hour_count, hour_oldest, used, waiting = row
            return _Standing(
                version=version,
                enrolled=bool(is_enrolled),
                extension_due=due,
                handed_in=handed_in or 0,
                last_handed_in_at=last_at,
                in_last_hour=hour_count or 0,
                oldest_in_last_hour=hour_oldest,
                attempts_used=used or 0,
                queue_full=waiting is not None,
            )
        forget_assessment_refs()
    raise NotFound(f"no assessment {assessment_slug!r}", details={"field": "assessment"})


@functools.cache
def _standing_statement(kind_name: str, admission_limit: int) -> Select[Any]:
    """The intake read for one kind, built once per process: building a statement of nine subqueries
    costs more CPU than PostgreSQL takes to run it. Parameters: user_id, assessment_id, hour_ago."""
    kind = kind_named(kind_name)
    user_id = bindparam("user_id", type_=Integer)
    assessment_id = bindparam("assessment_id", type_=Integer)
    of_learner = (Submission.user_id == user_id, Submission.assessment_id == assessment_id)
    in_last_hour = (*of_learner, Submission.created_at > bindparam("hour_ago", type_=DateTime))
    # Is there a limit-th waiting run? One step along the queue's index, however long the queue is.
    limit_th_waiting = (
        select(GradingRun.id)
        .where(GradingRun.queue == kind.queue, GradingRun.status == RunStatus.QUEUED)
        .order_by(GradingRun.requested_at)
        .offset(max(admission_limit - 1, 0))
        .limit(1)
    )
    return (
        select(
            AssessmentVersion,
            _enrollment(user_id, assessment_id).exists(),
            select(Extension.due_at)
            .where(Extension.user_id == user_id, Extension.assessment_id == assessment_id)
            .scalar_subquery(),
            select(func.count(Submission.id)).where(*of_learner).scalar_subquery(),
            select(func.max(Submission.created_at)).where(*of_learner).scalar_subquery(),
            select(func.count(Submission.id)).where(*in_last_hour).scalar_subquery(),
            select(func.min(Submission.created_at)).where(*in_last_hour).scalar_subquery(),
            kind.attempts_counted(user_id, assessment_id).scalar_subquery(),
            limit_th_waiting.scalar_subquery(),
        )
        .join(Assessment, Assessment.id == AssessmentVersion.assessment_id)
        .where(Assessment.id == assessment_id, AssessmentVersion.version == Assessment.current_version)
        .options(contains_eager(AssessmentVersion.assessment))
    )


def start_quiz_attempt(
    session: Session,
    settings: Settings,
    user: User,
    assessment_slug: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Draw a quiz attempt (or return the learner's open one) with its questions and deadline."""
    now = now or utcnow()
    standing = _standing(session, settings, user, assessment_slug, now)
    version = standing.version
    quiz = quizzes.quiz_of(version)
    _check_enrolled(user, version.assessment, standing)
    late_penalty(quiz, deadline_from(standing.extension_due, quiz), now)
    # Re-opening returns the same draw: asking again must not let a learner fish for easier questions.
    attempt = quizzes.reopenable_attempt(session, user.id, version.id, now)
    if attempt is None:
        _check_attempt_policy(version.assessment, quiz, standing)
        _check_rate(settings, version.assessment, quiz, standing, now)
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
        earlier = _earlier_hand_in(session, user.id, key)
        if earlier is not None:
            return earlier
    standing = _standing(session, settings, user, request.assessment, now)
    version = standing.version
    assessment = version.assessment
    definition = parse_definition(version)
    _check_enrolled(user, assessment, standing)
    deadline = deadline_from(standing.extension_due, definition)
    kind = kind_of(definition)
    penalty = late_penalty(definition, deadline, now - kind.deadline_grace)
    if not kind.counted_before_intake(request):
        _check_attempt_policy(assessment, definition, standing)
    _check_rate(settings, assessment, definition, standing, now)
    if standing.queue_full:
        raise ServiceUnavailable(
            "grading is at capacity right now; please retry in a minute",
            details={"queue": kind.queue, "waiting": settings.queue_admission_limit, "retry_after": 60},
        )

    intake = kind.accept(session, settings, user, version, definition, request, now)
    payload, version, attempt = intake.payload, intake.version, intake.attempt
    new_attempt = attempt if intake.attempt_is_new else None

    previous = standing.handed_in
    receipt = receipt_hash(assessment.slug, version.version, payload)
    submission_row: dict[str, Any] = {
        "id": new_id(),
        "user_id": user.id,
        "assessment_id": assessment.id,
        "assessment_version_id": version.id,
        "kind": assessment.kind,
        "attempt_number": previous + 1,
        "payload": payload,
        "receipt_sha256": receipt,
        "idempotency_key": key,
        "quiz_attempt_id": attempt.id if attempt else None,
        "git_url": payload.get("git_url"),
        "commit_sha": payload.get("commit"),
        "created_at": now,
        "late_penalty": penalty,
        "due_at": deadline.due,
    }
    # Marked sent in the intake's own commit (no second commit on the hot path); a send that fails
    # clears it, and a process that dies before sending leaves it to the reconciler, which resends a
    # run whose queue on the broker is empty.
    run_row: dict[str, Any] = {
        "id": new_id(),
        "submission_id": submission_row["id"],
        "queue": kind.queue,
        "requested_at": now,
        "enqueued_at": now,
    }
    if attempt is not None:
        attempt.submitted_at = now
    # Nothing later in the request reads the hand-in as objects: plain rows, written with Core.
    plain = intake.on_recorded is None and not kind.coalesces()
    if plain and settings.quiz_grading == "inline" and kind.grades_inline(definition):
        graded = _grade_inline(
            session, settings, kind, assessment, version, submission_row, run_row, new_attempt, now
        )
        if graded is not None:
            return graded
    if plain:
        return _record_and_send(
            session, queue, assessment.kind, submission_row, run_row, new_attempt, key, user.id
        )
    if new_attempt is not None:
        session.add(new_attempt)
    submission = Submission(**submission_row, assessment=assessment, assessment_version=version)
    run = GradingRun(**run_row, submission=submission)
    session.add_all([submission, run])
    try:
        if intake.on_recorded is not None:
            session.flush()  # the submission's row first: what the kind writes may point at it
            intake.on_recorded(submission)
        if kind.coalesces():
            _supersede_waiting(session, submission, now)
        session.commit()
    except IntegrityError:
        session.rollback()
        raced = _earlier_hand_in(session, user.id, key)
        if raced is None:
            raise
        return raced
    metrics.submission_received(assessment.kind)
    _send_committed(session, queue, run.id, run.queue)
    return Accepted(submission.id, receipt, created=True, commit=submission.commit_sha)


def _record_and_send(
    session: Session,
    queue: TaskQueue,
    kind: str,
    submission_row: dict[str, Any],
    run_row: dict[str, Any],
    new_attempt: QuizAttempt | None,
    key: str | None,
    user_id: int,
) -> Accepted:
    """The hand-in and its run as two Core inserts, then the run to the broker: the path of a hand-in
    that nothing else in the request reads as objects (no inline grading, no coalescing, no files)."""
    try:
        _write_attempt(session, new_attempt)
        session.execute(_insert_statement(Submission), submission_row)
        session.execute(_insert_statement(GradingRun), run_row)
        session.commit()
    except IntegrityError:
        session.rollback()
        raced = _earlier_hand_in(session, user_id, key)
        if raced is None:
            raise
        return raced
    metrics.submission_received(kind)
    _send_committed(session, queue, run_row["id"], run_row["queue"])
    commit = submission_row["commit_sha"]
    return Accepted(submission_row["id"], submission_row["receipt_sha256"], created=True, commit=commit)


def _send_committed(session: Session, queue: TaskQueue, run_id: str, queue_name: str) -> None:
    """Hand a run committed as sent to the broker; on a broker fault, record it as not sent."""
    try:
        queue.enqueue_grading(run_id, queue_name)
    except Exception:  # any broker fault: the committed run row is the durable record
        log.warning("could not enqueue run %s; the reconciler will retry", run_id, exc_info=True)
        runs = table_of(GradingRun)
        session.execute(update(runs).where(runs.c.id == run_id).values(enqueued_at=None))
        session.commit()


def _write_attempt(session: Session, new_attempt: QuizAttempt | None) -> None:
    """The handed-in quiz attempt's row before the hand-in's, which points at it: an attempt drawn for
    this hand-in as one insert; an attempt drawn earlier (its `submitted_at`) with the flush."""
    if new_attempt is None:
        session.flush()
        return
    session.execute(
        _insert_statement(QuizAttempt),
        {column.key: getattr(new_attempt, column.key) for column in table_of(QuizAttempt).columns},
    )


@functools.cache
def _insert_statement(model: type[Submission] | type[GradingRun] | type[QuizAttempt]) -> Insert:
    """A row of `model` as one Core INSERT, built once per process: the ORM's unit of work costs more."""
    return insert(table_of(model))


def _earlier_hand_in(session: Session, user_id: int, key: str | None) -> Accepted | None:
    """The answer to a hand-in with the same Idempotency-Key as an earlier one (a retry, or the winner
    of two retries that raced), or None."""
    earlier = session.scalar(
        select(Submission).where(Submission.user_id == user_id, Submission.idempotency_key == key)
    )
    if earlier is None:
        return None
    return Accepted(earlier.id, earlier.receipt_sha256, created=False, commit=earlier.commit_sha)


def _grade_inline(
    session: Session,
    settings: Settings,
    kind: Kind,
    assessment: Assessment,
    version: AssessmentVersion,
    submission_row: dict[str, Any],
    run_row: dict[str, Any],
    new_attempt: QuizAttempt | None,
    now: datetime,
) -> Accepted | None:
    """Grade a closed-form quiz inside its intake transaction: hand-in, run and result commit together.

    Nothing is written before the grade exists, so a process that dies here leaves nothing behind (the
    learner's request fails and they hand in again). A grader fault is not the learner's: the hand-in
    is then accepted all the same and its run goes to the workers, with the fault on record (None).
    A retry that raced this one (the same Idempotency-Key) is answered with the hand-in that won.
    """
    grader = kind.grader(settings)
    if grader is None:
        return None
    # Not added to the session: the rows go in as Core inserts, and these objects are what the
    # response's view reads, with no query back.
    submission = Submission(**submission_row, assessment=assessment, assessment_version=version)
    job = grading.job_for(run_row["id"], "submitted", submission, version)
    try:
        grade = grader.grade(job)
    except Exception as exc:
        log.warning("inline grading of run %s failed; it goes to the workers", run_row["id"], exc_info=True)
        run_row["last_error"] = f"internal error grading inline: {exc!r}"[:4000]
        return None
    submission.status = submission_row["status"] = grading.status_after(grade)
    submission.charged = submission_row["charged"] = grade.outcome.charges_attempt
    run_row.update(
        status=RunStatus.DONE, worker="inline", tries=1, started_at=now, finished_at=now, enqueued_at=None
    )
    result_values = {**grading.result_values(job, grade), "created_at": now}
    try:
        _write_attempt(session, new_attempt)
        session.execute(_insert_statement(Submission), submission_row)
        session.execute(_insert_statement(GradingRun), run_row)
        result = Result(**result_values, id=session.scalar(grading.result_insert(), result_values))
        if grade.needs_review:
            review_queue.open_tasks(session, result, submission)
        grading.record_result(session, job, grade, result.id, before=None, worker="inline")
        session.commit()
    except IntegrityError:
        session.rollback()
        raced = _earlier_hand_in(session, submission.user_id, submission.idempotency_key)
        if raced is None:
            raise
        return raced
    metrics.submission_received(assessment.kind)
    metrics.run_finished(kind=job.kind, queue=run_row["queue"], grade=grade, requested_at=now, started_at=now)
    return Accepted(
        submission.id,
        submission.receipt_sha256,
        created=True,
        graded=(submission, result),
    )


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


def _check_enrolled(user: User, assessment: Assessment, standing: _Standing) -> None:
    if user.role == Role.ADMIN or standing.enrolled:
        return
    _refuse_not_enrolled(assessment)


def _refuse_not_enrolled(assessment: Assessment) -> NoReturn:
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
    assessment: Assessment, definition: AssessmentDefinition, standing: _Standing
) -> None:
    policy = definition.attempts
    if policy.max is not None and standing.attempts_used >= policy.max:
        raise AttemptsExhausted(
            f"all {policy.max} attempts at {assessment.slug!r} are used",
            details={"attempts_used": standing.attempts_used, "max_attempts": policy.max},
        )


def _check_rate(
    settings: Settings,
    assessment: Assessment,
    definition: AssessmentDefinition,
    standing: _Standing,
    now: datetime,
) -> None:
    """Cooldown and hourly rate: every hand-in counts here, charged or not (they pace the load)."""
    policy = definition.attempts
    last = standing.last_handed_in_at
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
    hourly_limit(
        standing.in_last_hour,
        standing.oldest_in_last_hour,
        hourly,
        now,
        f"at most {hourly} submissions an hour for {assessment.slug!r}",
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
    assessment = current_version(session, slug).assessment
    if user.role == Role.ADMIN or _enrolled(session, user.id, assessment.id):
        return
    _refuse_not_enrolled(assessment)


def _enrolled(session: Session, user_id: int, assessment_id: int) -> bool:
    return session.scalar(_enrollment(user_id, assessment_id).exists().select()) or False


def _enrollment(user_id: IdParam, assessment_id: IdParam) -> Select[int]:
    """The learner's enrolments in programs that include the assessment."""
    return (
        select(Enrollment.id)
        .join(Requirement, Requirement.program_id == Enrollment.program_id)
        .where(Enrollment.user_id == user_id, Requirement.assessment_id == assessment_id)
    )


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
    standing = _standing(session, settings, user, slug, now)
    version = standing.version
    assessment = version.assessment
    definition = parse_definition(version)
    used = standing.attempts_used
    kind = kind_of(definition)
    reopen = kind.open_attempt(session, user.id, version.id, now)
    blocked: GraderError | None = None
    deadline = deadline_from(standing.extension_due, definition)
    penalty = 0.0
    try:
        _check_enrolled(user, assessment, standing)
        penalty = late_penalty(definition, deadline, now)
        if reopen is None:
            _check_attempt_policy(assessment, definition, standing)
            _check_rate(settings, assessment, definition, standing, now)
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
