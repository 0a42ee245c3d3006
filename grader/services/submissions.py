"""Intake: accept a learner's work, record it with a receipt, and queue it for grading.

The submission and its first grading run are committed in one transaction; only then is the run id
sent to the broker. A broker fault after the commit loses nothing: the run stays `queued` and the
reconciler sends it again. Everything the learner sends is validated here, before anything is stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from grader.catalog.bundle import Bundle
from grader.catalog.loader import BUNDLED_FOLDERS_KEY, EXPECTED_TESTS_KEY
from grader.catalog.schema import AssessmentDefinition, QuizAssessment, RepositoryAssessment
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
    TimeLimitExceeded,
)
from grader.interfaces import TaskQueue
from grader.models import (
    Assessment,
    AssessmentKind,
    AssessmentVersion,
    Enrollment,
    GradingRun,
    QuizAttempt,
    Requirement,
    Role,
    RunStatus,
    Submission,
    User,
    utcnow,
)
from grader.quiz import draw_questions, present_questions, validate_answers
from grader.services.catalog import current_version
from grader.services.deadlines import deadline_for, late_penalty
from grader.services.workspace import accept_archive, accept_git

log = logging.getLogger(__name__)

QUEUE_FOR_KIND = {
    AssessmentKind.QUIZ: "quiz",
    AssessmentKind.REPOSITORY: "sandbox",
    AssessmentKind.PORTFOLIO: "checks",
}
# A quiz answer sent in the last moment still travels over the network; forgive that much.
QUIZ_DEADLINE_GRACE = timedelta(seconds=30)
MAX_IDEMPOTENCY_KEY = 200

STORED_EXTRAS = frozenset({BUNDLED_FOLDERS_KEY, EXPECTED_TESTS_KEY})
_definition_adapter: TypeAdapter[AssessmentDefinition] = TypeAdapter(AssessmentDefinition)


def parse_definition(version: AssessmentVersion) -> AssessmentDefinition:
    """The typed definition of a stored assessment version (validated when the catalog loaded)."""
    data = {k: v for k, v in version.definition.items() if k not in STORED_EXTRAS}
    return _definition_adapter.validate_python(data)


@dataclass(frozen=True)
class SubmissionRequest:
    """What a learner sent, already decoded from the form or JSON by the web layer."""

    assessment: str
    answers: Any = None
    attempt_id: str | None = None
    idempotency_key: str | None = None
    git_url: Any = None
    ref: Any = None
    archive: bytes | None = None
    archive_name: str = "upload"


@dataclass(frozen=True)
class Accepted:
    submission_id: str
    receipt_sha256: str
    created: bool  # False when an Idempotency-Key matched an earlier submission
    commit: str | None = None  # the pinned commit of a git submission


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
    quiz = parse_definition(version)
    if not isinstance(quiz, QuizAssessment):
        raise InvalidInput(f"{assessment_slug!r} is not a quiz", details={"field": "assessment"})
    _check_enrolled(session, user, version.assessment)
    late_penalty(quiz, deadline_for(session, user.id, version.assessment_id, quiz), now)
    # Re-opening returns the same draw: asking again must not let a learner fish for easier questions.
    open_attempt = _reopenable_attempt(session, user.id, version.id, now)
    if open_attempt is not None:
        attempt = open_attempt
    else:
        # Every drawn attempt counts, submitted or not: letting attempts expire must not be a free
        # look at the question pool.
        _check_attempt_policy(session, settings, user, version.assessment, quiz, now)
        _check_rate(session, settings, user, version.assessment, quiz, now)
        _check_start_rate(session, settings, user, version.assessment, now)
        attempt = _draw_attempt(session, user, version, quiz, now)
    return quiz_attempt_view(attempt, quiz)


def _reopenable_attempt(session: Session, user_id: int, version_id: int, now: datetime) -> QuizAttempt | None:
    """The learner's newest attempt at this version that is not handed in and still in time."""
    attempt = session.scalar(
        select(QuizAttempt)
        .where(
            QuizAttempt.user_id == user_id,
            QuizAttempt.assessment_version_id == version_id,
            QuizAttempt.submitted_at.is_(None),
        )
        .order_by(QuizAttempt.started_at.desc())
        .limit(1)
    )
    if attempt is not None and (
        attempt.deadline_at is None or attempt.deadline_at + QUIZ_DEADLINE_GRACE > now
    ):
        return attempt
    return None


def _check_start_rate(
    session: Session, settings: Settings, user: User, assessment: Assessment, now: datetime
) -> None:
    hour_ago = now - timedelta(hours=1)
    recent = session.scalars(
        select(QuizAttempt.started_at)
        .join(AssessmentVersion, AssessmentVersion.id == QuizAttempt.assessment_version_id)
        .where(
            QuizAttempt.user_id == user.id,
            AssessmentVersion.assessment_id == assessment.id,
            QuizAttempt.started_at > hour_ago,
        )
        .order_by(QuizAttempt.started_at)
    ).all()
    limit = settings.quiz_starts_per_hour
    _hourly_limit(recent, limit, now, f"at most {limit} attempts an hour may start at {assessment.slug!r}")


def _hourly_limit(recent: Sequence[datetime], limit: int, now: datetime, message: str) -> None:
    """`RateLimited`, with the wait until the oldest of `recent` leaves the hour, once `limit` is met."""
    if len(recent) >= limit:
        wait = max(1, int((recent[0] + timedelta(hours=1) - now).total_seconds() + 0.999))
        raise RateLimited(message, retry_after=wait)


def _draw_attempt(
    session: Session, user: User, version: AssessmentVersion, quiz: QuizAssessment, now: datetime
) -> QuizAttempt:
    """A new attempt: questions drawn from a fresh seed, the deadline set by the time limit."""
    seed = secrets.randbits(31)
    attempt = QuizAttempt(
        user_id=user.id,
        assessment_version_id=version.id,
        seed=seed,
        question_ids=draw_questions(quiz, seed),
        started_at=now,
        deadline_at=now + timedelta(minutes=quiz.time_limit_minutes) if quiz.time_limit_minutes else None,
    )
    session.add(attempt)
    session.flush()
    return attempt


def quiz_attempt_view(attempt: QuizAttempt, quiz: QuizAssessment) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "assessment": quiz.slug,
        "title": quiz.title,
        "started_at": attempt.started_at.isoformat(),
        "deadline": attempt.deadline_at.isoformat() if attempt.deadline_at else None,
        "pass_mark": quiz.pass_mark,
        "questions": present_questions(quiz, attempt.question_ids, attempt.seed),
    }


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
    penalty = late_penalty(
        definition, deadline, now - QUIZ_DEADLINE_GRACE if definition.kind == "quiz" else now
    )
    drawn_before = isinstance(definition, QuizAssessment) and request.attempt_id is not None
    if not drawn_before:  # a drawn quiz attempt was counted when it was started
        _check_attempt_policy(session, settings, user, assessment, definition, now)
    _check_rate(session, settings, user, assessment, definition, now)
    _check_admission(session, settings, QUEUE_FOR_KIND[AssessmentKind(assessment.kind)])

    attempt: QuizAttempt | None = None
    if isinstance(definition, QuizAssessment):
        payload, version, attempt = _quiz_payload(session, user, version, definition, request, now)
    elif isinstance(definition, RepositoryAssessment):
        payload = _repository_payload(settings, request)
    else:
        raise InvalidInput(
            f"submissions of kind {assessment.kind!r} are not accepted yet",
            details={"field": "assessment"},
        )

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
    run_queue = QUEUE_FOR_KIND[AssessmentKind(assessment.kind)]
    run = GradingRun(submission=submission, queue=run_queue, requested_at=now)
    if attempt is not None:
        attempt.submitted_at = now
    session.add_all([submission, run])
    try:
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
    send_run(session, queue, run)
    return Accepted(submission.id, receipt, created=True, commit=submission.commit_sha)


def _repository_payload(settings: Settings, request: SubmissionRequest) -> dict[str, Any]:
    if request.answers is not None or request.attempt_id is not None:
        raise InvalidInput(
            "a repository assessment takes git_url or archive, not answers", details={"field": "answers"}
        )
    if (request.git_url is None) == (request.archive is None):
        raise InvalidInput("send exactly one of git_url or archive", details={"field": "git_url"})
    if request.git_url is not None:
        return accept_git(settings, request.git_url, request.ref)
    assert request.archive is not None
    if request.ref is not None:
        raise InvalidInput("ref only goes with git_url", details={"field": "ref"})
    with tempfile.TemporaryDirectory(prefix="intake-") as scratch:
        return accept_archive(settings, request.archive, request.archive_name, Path(scratch) / "tree")


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
    now = now or utcnow()
    deadlines = session.scalars(
        select(QuizAttempt.deadline_at)
        .join(AssessmentVersion, AssessmentVersion.id == QuizAttempt.assessment_version_id)
        .where(
            QuizAttempt.user_id == user_id,
            AssessmentVersion.assessment_id == assessment_id,
            QuizAttempt.submitted_at.is_(None),
        )
    ).all()
    return any(deadline is None or deadline + QUIZ_DEADLINE_GRACE > now for deadline in deadlines)


def attempts_used(
    session: Session, user_id: int, assessment: Assessment, definition: AssessmentDefinition
) -> int:
    """Attempts that count against the limit: every quiz attempt drawn, submitted or not; every other
    submission unless its grading was not charged (the autograder failed or found it ungradable)."""
    if isinstance(definition, QuizAssessment):
        return (
            session.scalar(
                select(func.count(QuizAttempt.id))
                .join(AssessmentVersion, AssessmentVersion.id == QuizAttempt.assessment_version_id)
                .where(QuizAttempt.user_id == user_id, AssessmentVersion.assessment_id == assessment.id)
            )
            or 0
        )
    return (
        session.scalar(
            select(func.count(Submission.id)).where(
                Submission.user_id == user_id, Submission.assessment_id == assessment.id, Submission.charged
            )
        )
        or 0
    )


def _check_attempt_policy(
    session: Session,
    settings: Settings,
    user: User,
    assessment: Assessment,
    definition: AssessmentDefinition,
    now: datetime,
) -> None:
    policy = definition.attempts
    count = attempts_used(session, user.id, assessment, definition)
    if policy.max is not None and count >= policy.max:
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
    last = session.scalar(
        select(func.max(Submission.created_at)).where(
            Submission.user_id == user.id, Submission.assessment_id == assessment.id
        )
    )
    policy = definition.attempts
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
    _hourly_limit(recent, hourly, now, f"at most {hourly} submissions an hour for {assessment.slug!r}")


def _check_admission(session: Session, settings: Settings, queue: str) -> None:
    waiting = (
        session.scalar(
            select(func.count(GradingRun.id)).where(
                GradingRun.queue == queue, GradingRun.status == RunStatus.QUEUED
            )
        )
        or 0
    )
    if waiting >= settings.queue_admission_limit:
        raise ServiceUnavailable(
            "grading is at capacity right now; please retry in a minute",
            details={"queue": queue, "waiting": waiting, "retry_after": 60},
        )


def _quiz_payload(
    session: Session,
    user: User,
    version: AssessmentVersion,
    quiz: QuizAssessment,
    request: SubmissionRequest,
    now: datetime,
) -> tuple[dict[str, Any], AssessmentVersion, QuizAttempt]:
    if request.attempt_id is not None:
        if not isinstance(request.attempt_id, str):
            raise InvalidInput("attempt must be an attempt id", details={"field": "attempt"})
        attempt = session.get(QuizAttempt, request.attempt_id)
        if attempt is None or attempt.user_id != user.id:
            raise NotFound("no such quiz attempt", details={"field": "attempt"})
        if attempt.assessment_version.assessment_id != version.assessment_id:
            raise InvalidInput("that attempt belongs to another assessment", details={"field": "attempt"})
        if attempt.submitted_at is not None:
            raise Conflict("this attempt was already submitted", details={"field": "attempt"})
        if attempt.deadline_at is not None and now > attempt.deadline_at + QUIZ_DEADLINE_GRACE:
            raise TimeLimitExceeded(
                "the time limit of this attempt has passed",
                details={"field": "attempt", "deadline": attempt.deadline_at.isoformat()},
            )
        # An attempt is graded against the version it was drawn from, even if the quiz changed since.
        version = attempt.assessment_version
        quiz_for_attempt = parse_definition(version)
        assert isinstance(quiz_for_attempt, QuizAssessment)
        quiz = quiz_for_attempt
    else:
        if quiz.time_limit_minutes is not None or any(p.draw is not None for p in quiz.pools):
            raise InvalidInput(
                "this quiz draws its questions per attempt: start an attempt first "
                f"(POST /api/v1/assessments/{quiz.slug}/attempts) and send its id as 'attempt'",
                details={"field": "attempt"},
            )
        attempt = _draw_attempt(session, user, version, quiz, now)
    answers = validate_answers(quiz, attempt.question_ids, request.answers)
    payload = {
        "attempt": attempt.id,
        "question_ids": list(attempt.question_ids),
        "answers": answers,
    }
    return payload, version, attempt


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
    quiz = parse_definition(attempt.assessment_version)
    assert isinstance(quiz, QuizAssessment)
    view = quiz_attempt_view(attempt, quiz)
    view["submitted"] = attempt.submitted_at is not None
    view["submission_id"] = (
        session.scalar(select(Submission.id).where(Submission.quiz_attempt_id == attempt.id))
        if attempt.submitted_at is not None
        else None
    )
    view["expired"] = (
        attempt.submitted_at is None
        and attempt.deadline_at is not None
        and now > attempt.deadline_at + QUIZ_DEADLINE_GRACE
    )
    view["description"] = quiz.description
    view["time_limit_minutes"] = quiz.time_limit_minutes
    return view


def check_attempt_answers(session: Session, user: User, attempt_id: str, answers: Any) -> None:
    """`InvalidInput` naming the first answer that would be refused, before anything is handed in
    (a page asks about unanswered questions only once the answers given are valid)."""
    attempt = session.get(QuizAttempt, attempt_id) if len(attempt_id) <= 64 else None
    if attempt is None or attempt.user_id != user.id:
        raise NotFound("no such quiz attempt", details={"field": "attempt"})
    quiz = parse_definition(attempt.assessment_version)
    assert isinstance(quiz, QuizAssessment)
    validate_answers(quiz, attempt.question_ids, answers)


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
    if isinstance(definition, RepositoryAssessment):
        summary["limits"] = definition.limits.model_dump()
        summary["submissions_per_hour"] = definition.submissions_per_hour
        summary["has_starter"] = bool(starter_files(version))
    return summary


def starter_files(version: AssessmentVersion) -> dict[str, bytes]:
    """A repository assessment's starter code (its `starter` folder in the stored bundle), by path."""
    definition = parse_definition(version)
    if not isinstance(definition, RepositoryAssessment):
        return {}
    return Bundle.from_stored(version.definition.get(BUNDLED_FOLDERS_KEY)).under(definition.starter)


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
    reopen = (
        _reopenable_attempt(session, user.id, version.id, now)
        if isinstance(definition, QuizAssessment)
        else None
    )
    blocked: GraderError | None = None
    deadline = deadline_for(session, user.id, assessment.id, definition)
    penalty = 0.0
    try:
        _check_enrolled(session, user, assessment)
        penalty = late_penalty(definition, deadline, now)
        if reopen is None:
            _check_attempt_policy(session, settings, user, assessment, definition, now)
            _check_rate(session, settings, user, assessment, definition, now)
            if isinstance(definition, QuizAssessment):
                _check_start_rate(session, settings, user, assessment, now)
    except (PermissionDenied, Conflict, RateLimited) as exc:
        blocked = exc
    ready_at = now + timedelta(seconds=blocked.retry_after) if isinstance(blocked, RateLimited) else None
    return Availability(
        attempts_used=used,
        max_attempts=definition.attempts.max,
        cooldown_seconds=definition.attempts.cooldown_seconds,
        open_attempt_id=reopen.id if reopen is not None else None,
        blocked=blocked,
        ready_at=ready_at,
        due=deadline.due,
        closes=deadline.closes,
        late_penalty=penalty,
    )
