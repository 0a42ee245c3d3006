"""Database models: the source of truth for accounts, catalog versions, submissions and grading runs.

Celery and Redis only ever carry a `GradingRun.id`; everything needed to grade, to recover a lost
message or to explain a result lives in these tables. SQLAlchemy only: no Flask, no Celery.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


def table_of(model: type[Base]) -> Table:
    """A mapped class's table, for Core statements on the hot path (an ORM-enabled statement pays for
    a compile state on every execution)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Role(StrEnum):
    LEARNER = "learner"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class AssessmentKind(StrEnum):
    QUIZ = "quiz"
    REPOSITORY = "repository"
    PORTFOLIO = "portfolio"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    SUPERSEDED = "superseded"  # never started: the learner handed in newer work first


class SubmissionStatus(StrEnum):
    QUEUED = "queued"
    GRADING = "grading"
    GRADED = "graded"
    NEEDS_REVIEW = "needs_review"
    ERROR = "error"
    # Still waiting when the learner handed in newer work: that one is graded instead, this one never is.
    SUPERSEDED = "superseded"


class GradeOutcome(StrEnum):
    """How a grading run ended; the closed set a `Result.outcome` takes."""

    GRADED = "graded"
    TAMPERED = "tampered"  # the verdict could not be trusted: it fails, with no review
    REPOSITORY_UNAVAILABLE = "repository_unavailable"  # the learner's repository vanished after intake
    GRADER_ERROR = "grader_error"  # the course team's autograder failed; staff see why
    NOT_GRADABLE = "not_gradable"  # the autograder refused the submission (PrairieLearn `gradable: false`)

    @property
    def charges_attempt(self) -> bool:
        """Whether the submission counts against the learner's attempts."""
        return self not in (GradeOutcome.GRADER_ERROR, GradeOutcome.NOT_GRADABLE)


class AwardStatus(StrEnum):
    AWARDED = "awarded"
    # A requirement it rests on no longer passes, or is back with a reviewer: on hold, not withdrawn.
    SUSPENDED = "suspended"
    REVOKED = "revoked"  # by staff, with a reason; only new work earns the program again


class CredentialStatus(StrEnum):
    PENDING = "pending"  # the award is recorded; the worker has not signed the document yet
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class ReviewSlot(StrEnum):
    """Which review of a result a task asks for."""

    FIRST = "first"
    SECOND = "second"  # double review: independent of the first
    ADJUDICATION = "adjudication"  # the two disagreed beyond the threshold; this one decides
    REGRADE = "regrade"  # a learner asked; never the reviewer who scored the criterion first


class TaskStatus(StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    DONE = "done"
    CANCELLED = "cancelled"  # a newer result took its place


class ReviewState(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    SUPERSEDED = "superseded"  # edited after submit: a newer version replaced it


class StaffRole(StrEnum):
    REVIEWER = "reviewer"  # reviews the program's submissions
    STAFF = "staff"  # runs the program: enrolment, assignment, regrades, gradebook


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default=Role.LEARNER)
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Bumped by logging out everywhere or changing the password: every older session cookie stops working.
    session_generation: Mapped[int] = mapped_column(Integer, default=0)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    # Only a SHA-256 of the token is kept: a leaked database does not leak working tokens.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship()


class Rubric(Base):
    """One version of a rubric; results point at the exact version that scored them."""

    __tablename__ = "rubric_versions"
    __table_args__ = (UniqueConstraint("slug", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Assessment(Base):
    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    # Tests with `after_published` visibility open to learners from this moment (`grader publish`).
    results_published_at: Mapped[datetime | None] = mapped_column(default=None)

    versions: Mapped[list[AssessmentVersion]] = relationship(
        back_populates="assessment", order_by="AssessmentVersion.version"
    )


class AssessmentVersion(Base):
    """The full definition of an assessment as loaded; a content change makes a new row."""

    __tablename__ = "assessment_versions"
    __table_args__ = (UniqueConstraint("assessment_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    rubric_id: Mapped[int | None] = mapped_column(ForeignKey("rubric_versions.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    assessment: Mapped[Assessment] = relationship(back_populates="versions")
    rubric: Mapped[Rubric | None] = relationship()


class Program(Base):
    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))

    requirements: Mapped[list[Requirement]] = relationship(
        back_populates="program", order_by="Requirement.position", cascade="all, delete-orphan"
    )


class Requirement(Base):
    __tablename__ = "requirements"
    __table_args__ = (UniqueConstraint("program_id", "assessment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    # Fraction of the maximum score needed; None means the assessment's own pass mark decides.
    min_score: Mapped[float | None] = mapped_column(Float, default=None)

    program: Mapped[Program] = relationship(back_populates="requirements")
    assessment: Mapped[Assessment] = relationship()


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (UniqueConstraint("user_id", "program_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    program: Mapped[Program] = relationship()


class QuizAttempt(Base):
    """A drawn quiz: which questions, in which order (from `seed`), and until when."""

    __tablename__ = "quiz_attempts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    assessment_version_id: Mapped[int] = mapped_column(ForeignKey("assessment_versions.id"))
    seed: Mapped[int] = mapped_column(Integer)
    question_ids: Mapped[list[Any]] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    deadline_at: Mapped[datetime | None] = mapped_column(default=None)
    submitted_at: Mapped[datetime | None] = mapped_column(default=None)

    assessment_version: Mapped[AssessmentVersion] = relationship()


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key"),
        Index("ix_submissions_user_assessment", "user_id", "assessment_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"))
    assessment_version_id: Mapped[int] = mapped_column(ForeignKey("assessment_versions.id"))
    kind: Mapped[str] = mapped_column(String(20))
    attempt_number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=SubmissionStatus.QUEUED)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # SHA-256 of the canonical payload: the learner's receipt of exactly what we received.
    receipt_sha256: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    quiz_attempt_id: Mapped[str | None] = mapped_column(ForeignKey("quiz_attempts.id"), default=None)
    git_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    commit_sha: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # False once the autograder could not grade it (its fault, or ungradable): no attempt is charged.
    charged: Mapped[bool] = mapped_column(Boolean, default=True)
    # Work handed in inside a late window: the fraction taken off its score, fixed at intake.
    late_penalty: Mapped[float] = mapped_column(Float, default=0.0)
    due_at: Mapped[datetime | None] = mapped_column(default=None)  # the learner's due date then

    user: Mapped[User] = relationship()
    assessment: Mapped[Assessment] = relationship()
    assessment_version: Mapped[AssessmentVersion] = relationship()
    runs: Mapped[list[GradingRun]] = relationship(
        back_populates="submission", order_by="GradingRun.requested_at"
    )


class GradingRun(Base):
    """One attempt to grade a submission: claimed under a lease, finished by the lease holder only."""

    __tablename__ = "grading_runs"
    __table_args__ = (
        Index("ix_grading_runs_status_queue", "status", "queue"),
        # Queue position and admission read a range of this index, in order, never the whole table.
        Index("ix_grading_runs_waiting", "queue", "status", "requested_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    queue: Mapped[str] = mapped_column(String(20))
    # The assessment version this run grades against: the submission's own, or the current one for a
    # regrade after the course team fixed its tests.
    assessment_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("assessment_versions.id"), default=None
    )
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.QUEUED)
    reason: Mapped[str] = mapped_column(String(20), default="submitted")
    tries: Mapped[int] = mapped_column(Integer, default=0)
    # The tries the submission itself may have caused (its grading process died while its worker
    # lived, or grading it raised an internal error): these, not `tries`, count toward the error limit.
    strikes: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    lease_id: Mapped[str | None] = mapped_column(String(32), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    worker: Mapped[str | None] = mapped_column(String(200), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    submission: Mapped[Submission] = relationship(back_populates="runs")
    assessment_version: Mapped[AssessmentVersion | None] = relationship()
    result: Mapped[Result | None] = relationship(back_populates="run", uselist=False)


class Result(Base):
    __tablename__ = "results"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("grading_runs.id"), unique=True)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    max_score: Mapped[float] = mapped_column(Float)
    # None while a reviewer still has to score manual criteria.
    passed: Mapped[bool | None] = mapped_column(Boolean, default=None)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str] = mapped_column(String(30), default="graded")
    feedback: Mapped[dict[str, Any]] = mapped_column(JSON)
    rubric_id: Mapped[int | None] = mapped_column(ForeignKey("rubric_versions.id"), default=None)
    assessment_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("assessment_versions.id"), default=None
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    run: Mapped[GradingRun] = relationship(back_populates="result")

    @property
    def fraction(self) -> float:
        return self.score / self.max_score if self.max_score else 0.0


class ReviewTask(Base):
    """One review a result needs, claimed by one reviewer at a time (a conditional UPDATE wins it)."""

    __tablename__ = "review_tasks"
    __table_args__ = (Index("ix_review_tasks_status", "status", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id", ondelete="CASCADE"))
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    slot: Mapped[str] = mapped_column(String(20), default=ReviewSlot.FIRST)
    status: Mapped[str] = mapped_column(String(20), default=TaskStatus.OPEN)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)  # None: assigned, never expires
    assigned_by: Mapped[str | None] = mapped_column(String(200), default=None)
    # Reviewers who may not take this task (a regrade goes to someone other than the first reviewer).
    excluded_reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    regrade_request_id: Mapped[int | None] = mapped_column(ForeignKey("regrade_requests.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)

    submission: Mapped[Submission] = relationship()
    result: Mapped[Result] = relationship()


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id", ondelete="CASCADE"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    criteria: Mapped[list[Any]] = mapped_column(JSON)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A regrade whose manual criteria did not change carries the review over to the new result.
    carried_from_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id"), default=None)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("review_tasks.id"), default=None)
    slot: Mapped[str] = mapped_column(String(20), default=ReviewSlot.FIRST)
    state: Mapped[str] = mapped_column(String(20), default=ReviewState.SUBMITTED)
    version: Mapped[int] = mapped_column(Integer, default=1)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id"), default=None)
    # A free adjustment of the manual points, with the reviewer's reason (shown to the learner).
    adjustment: Mapped[float] = mapped_column(Float, default=0.0)
    adjustment_reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    reviewer: Mapped[User] = relationship(foreign_keys=[reviewer_id])
    comments: Mapped[list[ReviewComment]] = relationship(
        back_populates="review", cascade="all, delete-orphan", order_by="ReviewComment.id"
    )


class ReviewComment(Base):
    """An inline comment on one line of one of the learner's files."""

    __tablename__ = "review_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("reviews.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1000))
    line: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)  # Markdown, rendered sanitised
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    review: Mapped[Review] = relationship(back_populates="comments")


class CommentBankEntry(Base):
    """A reusable comment of a rubric (optionally of one criterion), with how often it was used."""

    __tablename__ = "comment_bank"
    __table_args__ = (Index("ix_comment_bank_rubric", "rubric_slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rubric_slug: Mapped[str] = mapped_column(String(100))
    criterion_id: Mapped[str | None] = mapped_column(String(100), default=None)
    text: Mapped[str] = mapped_column(Text)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RegradeRequest(Base):
    """A learner asks for one criterion to be looked at again, with a reason."""

    __tablename__ = "regrade_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[str] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id", ondelete="CASCADE"))
    criterion_id: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | answered
    answered_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), default=None)
    reply: Mapped[str] = mapped_column(Text, default="")
    answered_at: Mapped[datetime | None] = mapped_column(default=None)
    changed: Mapped[bool] = mapped_column(Boolean, default=False)


class ProgramStaff(Base):
    """Who reviews or runs a program; admins do both everywhere."""

    __tablename__ = "program_staff"
    __table_args__ = (UniqueConstraint("user_id", "program_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20), default=StaffRole.REVIEWER)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    program: Mapped[Program] = relationship()


class Extension(Base):
    """A learner's own due date for one assessment, granted by staff."""

    __tablename__ = "extensions"
    __table_args__ = (UniqueConstraint("user_id", "assessment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id", ondelete="CASCADE"))
    due_at: Mapped[datetime] = mapped_column()
    reason: Mapped[str] = mapped_column(Text, default="")
    granted_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """One change to a score, a pass, a review, an award or a deadline: who or what, when, before,
    after and why. Rows are only ever added."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_submission", "submission_id"),
        Index("ix_audit_events_learner", "learner_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50))
    learner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    assessment_id: Mapped[int | None] = mapped_column(ForeignKey("assessments.id"), default=None)
    submission_id: Mapped[str | None] = mapped_column(String(32), default=None)
    subject: Mapped[str] = mapped_column(String(100))  # e.g. "result 12", "award 3f2a..."
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    reason: Mapped[str] = mapped_column(Text, default="")


class CredentialAward(Base):
    """A learner earned a program's credential; signing the document comes on top of this row."""

    __tablename__ = "credential_awards"
    __table_args__ = (UniqueConstraint("user_id", "program_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    status: Mapped[str] = mapped_column(String(20), default=AwardStatus.AWARDED)
    evidence: Mapped[list[Any]] = mapped_column(JSON)
    awarded_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revocation_reason: Mapped[str] = mapped_column(Text, default="")

    program: Mapped[Program] = relationship()
    user: Mapped[User] = relationship()
    credentials: Mapped[list[IssuedCredential]] = relationship(
        back_populates="award", order_by="IssuedCredential.created_at"
    )


class IssuedCredential(Base):
    """The signed Open Badges 3.0 document of one award, in both proof formats.

    The row is written in the transaction that grants the award, so an award has its credential exactly
    once however often the signing task runs; the task fills `document` and `jwt` only while the row is
    pending. Re-earning after a revocation makes a new row, never an edited one. `status_index` is the
    credential's bit in the issuer's revocation and suspension status lists, drawn at random (a verifier
    fetching the list learns nothing of which credential it is checking).
    """

    __tablename__ = "issued_credentials"
    __table_args__ = (
        Index(
            "uq_issued_credentials_live_award",
            "award_id",
            unique=True,
            sqlite_where=text("status != 'revoked'"),
            postgresql_where=text("status != 'revoked'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    award_id: Mapped[str] = mapped_column(ForeignKey("credential_awards.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default=CredentialStatus.PENDING)
    status_index: Mapped[int] = mapped_column(Integer, unique=True)
    recipient_salt: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    jwt: Mapped[str | None] = mapped_column(Text, default=None)
    # Requirement slugs the learner chose to keep off the public page (the signed document keeps them).
    hidden_results: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    issued_at: Mapped[datetime | None] = mapped_column(default=None)
    suspended_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revocation_reason: Mapped[str] = mapped_column(Text, default="")

    award: Mapped[CredentialAward] = relationship(back_populates="credentials")

    @property
    def urn(self) -> str:
        return f"urn:uuid:{self.id}"


class PortfolioDraft(Base):
    """A learner's portfolio while they fill it in: kept between visits, frozen by the submit.

    A submitted draft points at its submission and takes no more changes; the next attempt starts a
    new draft. At most one open draft per learner and assessment (the service locks the learner's
    row to keep it so, since "unique where open" is not portable across databases).
    """

    __tablename__ = "portfolio_drafts"
    __table_args__ = (Index("ix_portfolio_drafts_user_assessment", "user_id", "assessment_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    submission_id: Mapped[str | None] = mapped_column(
        ForeignKey("submissions.id", ondelete="SET NULL"), default=None
    )

    items: Mapped[list[DraftItem]] = relationship(
        back_populates="draft", order_by="DraftItem.id", cascade="all, delete-orphan"
    )


class DraftItem(Base):
    """One thing in a draft: a stored file (by its SHA-256 in the file store), a link or a statement."""

    __tablename__ = "portfolio_draft_items"
    __table_args__ = (Index("ix_portfolio_draft_items_draft", "draft_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[str] = mapped_column(ForeignKey("portfolio_drafts.id", ondelete="CASCADE"))
    slot: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))  # file | link | statement
    name: Mapped[str] = mapped_column(String(255), default="")  # the file's name as uploaded (checked)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    size: Mapped[int] = mapped_column(Integer, default=0)
    media_type: Mapped[str] = mapped_column(String(20), default="")  # detected from the content
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # pages, dimensions, host
    text: Mapped[str] = mapped_column(Text, default="")  # a link's address or a statement's words
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    draft: Mapped[PortfolioDraft] = relationship(back_populates="items")
