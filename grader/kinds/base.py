"""The `Kind` protocol: what intake, grading and the result pages need to know about a kind of work.

A kind is one of the things a learner hands in (a quiz, a repository, a portfolio). Everything that
differs between kinds goes through this protocol, so the services that take, grade and show work never
test which class a definition is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import BindParameter, Select, func, select
from sqlalchemy.orm import Session

from grader.catalog.schema import AssessmentDefinition, ReviewPolicy
from grader.config import Settings
from grader.errors import RateLimited
from grader.models import AssessmentVersion, GradeOutcome, QuizAttempt, Result, Submission, User
from rubrics import Review

# A row id in a query: a value, or a bound parameter of a statement built once and run many times.
IdParam = int | BindParameter[int]


@dataclass(frozen=True)
class CarriedReview:
    """A reviewer's scores on an earlier result of the same submission, for a regrade to reuse."""

    review_id: int
    reviewer_id: int
    reviews: tuple[Review, ...]
    comment: str


@dataclass(frozen=True)
class GradingJob:
    """Everything a kind's grader needs, detached from the database session."""

    run_id: str
    submission_id: str
    user_id: int
    assessment_id: int
    kind: str
    definition: AssessmentDefinition
    raw_definition: Mapping[str, Any]
    payload: Mapping[str, Any]
    rubric_definition: Mapping[str, Any] | None
    rubric_id: int | None
    assessment_version_id: int
    attempt_number: int
    commit_sha: str | None = None
    late_penalty: float = 0.0
    # Set when this run regrades a reviewed submission whose manual criteria did not change.
    carried_review: CarriedReview | None = None
    # Why the run exists: "submitted" (the first grading of a hand-in), "regrade", "retry", ...
    run_reason: str = "submitted"


@dataclass(frozen=True)
class Grade:
    """A kind grader's verdict; `passed` is None while manual criteria await a reviewer, or when the
    run produced no verdict (the autograder failed, or found the work ungradable)."""

    score: float
    max_score: float
    passed: bool | None
    feedback: Mapping[str, Any]
    needs_review: bool = False
    outcome: GradeOutcome = GradeOutcome.GRADED


class KindGrader(Protocol):
    """Turns a job into a grade: the part of a kind a worker runs."""

    def grade(self, job: GradingJob) -> Grade:
        """Grade one job; raise `ServiceUnavailable` only for faults on our side."""
        ...


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
    draft_id: str | None = None  # a portfolio draft to freeze and hand in


@dataclass(frozen=True)
class Intake:
    """A request accepted by its kind: the payload to store, and the version it is graded against
    (a quiz attempt keeps the version it was drawn from), with the quiz attempt it hands in."""

    payload: dict[str, Any]
    version: AssessmentVersion
    attempt: QuizAttempt | None = None
    # The attempt was drawn for this hand-in (not in the session): intake writes its row, not a flush.
    attempt_is_new: bool = False
    # Called with the new submission in the intake's transaction (a portfolio draft is frozen by it).
    on_recorded: Callable[[Submission], None] | None = None


@dataclass(frozen=True)
class ShapedFeedback:
    """What a viewer may read of a result's feedback, and why its total is held back (or None)."""

    feedback: dict[str, Any]
    held_back: str | None = None


@dataclass(frozen=True)
class WrittenAnswer:
    """A learner's answer in words beside the question it answers (a quiz's open-text questions)."""

    question_id: str
    prompt: str
    answer: str


@dataclass(frozen=True)
class SlotMaterial:
    """One declared part of a portfolio beside what was handed in for it, as the payload stores it
    (`entries`: the manifest's files, links or statements of this slot, in hand-in order)."""

    id: str
    kind: str  # file | link | statement
    title: str
    description: str
    prompt: str
    required: bool
    criteria: tuple[str, ...]  # the rubric criteria it is evidence for
    entries: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class ReviewMaterial:
    """What a reviewer reads of a hand-in beyond its files and test results, unredacted: the viewer
    takes the learner's identity out under blind review."""

    answers: tuple[WrittenAnswer, ...] = ()
    slots: tuple[SlotMaterial, ...] = ()


class Kind(Protocol):
    """One kind of work, from intake to the result page."""

    name: str
    # The broker queue its grading runs go to.
    queue: str
    # Hand-ins this long after the deadline still count as on time (a quiz answer travels).
    deadline_grace: timedelta

    def accept(
        self,
        session: Session,
        settings: Settings,
        user: User,
        version: AssessmentVersion,
        definition: AssessmentDefinition,
        request: SubmissionRequest,
        now: datetime,
    ) -> Intake:
        """Validate what the learner sent and turn it into the payload to store (`InvalidInput` else)."""
        ...

    def counted_before_intake(self, request: SubmissionRequest) -> bool:
        """Whether this hand-in's attempt was already counted (a drawn quiz attempt is counted at start)."""
        ...

    def attempts_used(self, session: Session, user_id: int, assessment_id: int) -> int:
        """Attempts that count against the assessment's limit."""
        ...

    def attempts_counted(self, user_id: IdParam, assessment_id: IdParam) -> Select[int]:
        """The count `attempts_used` reads, as a query intake folds into its one read (with bound
        parameters, so that intake builds it once)."""
        ...

    def open_attempt(self, session: Session, user_id: int, version_id: int, now: datetime) -> str | None:
        """An attempt the learner started and may still hand in (a drawn quiz), else None."""
        ...

    def check_start(
        self, session: Session, settings: Settings, user: User, assessment_id: int, slug: str, now: datetime
    ) -> None:
        """Limits on starting an attempt beyond those on handing in (`RateLimited`)."""
        ...

    def grader(self, settings: Settings | None) -> KindGrader | None:
        """The grader a worker runs for this kind; None when it needs settings it was not given."""
        ...

    def grades_inline(self, definition: AssessmentDefinition) -> bool:
        """Whether its grading is quick and safe enough to run inside the intake request."""
        ...

    def coalesces(self) -> bool:
        """Whether a newer hand-in replaces the learner's hand-in still waiting in the queue."""
        ...

    def summary(self, version: AssessmentVersion, definition: AssessmentDefinition) -> dict[str, Any]:
        """What a learner reads before handing in, beyond title, description and attempts."""
        ...

    def review_policy(self, definition: AssessmentDefinition) -> ReviewPolicy:
        """How reviewers score its manual criteria (blind, double review)."""
        ...

    def shape_feedback(
        self,
        session: Session,
        submission: Submission,
        result: Result,
        definition: AssessmentDefinition,
        feedback: dict[str, Any],
        *,
        staff: bool,
    ) -> ShapedFeedback:
        """Cut a copy of the stored feedback down to what the viewer may see."""
        ...

    def withheld(self, session: Session, submission: Submission, result: Result) -> bool:
        """Whether the result's total is held back from its learner for now."""
        ...

    def review_material(self, definition: AssessmentDefinition, payload: Mapping[str, Any]) -> ReviewMaterial:
        """What the reviewer's viewer shows of this hand-in beyond its files and tests."""
        ...


def hourly_limit(count: int, oldest: datetime | None, limit: int, now: datetime, message: str) -> None:
    """`RateLimited` once `count` events of the last hour meet `limit`, with the wait until the
    `oldest` of them leaves the hour."""
    if count >= limit and oldest is not None:
        wait = max(1, int((oldest + timedelta(hours=1) - now).total_seconds() + 0.999))
        raise RateLimited(message, retry_after=wait)


def charged_attempts(user_id: IdParam, assessment_id: IdParam) -> Select[int]:
    """Hand-ins that count against the limit: all but those whose grading was not charged (the
    autograder failed on our side, or found the work ungradable)."""
    return select(func.count(Submission.id)).where(
        Submission.user_id == user_id, Submission.assessment_id == assessment_id, Submission.charged
    )


class HandedInWhole:
    """The parts of `Kind` shared by work handed in whole (a repository, a portfolio): nothing is drawn
    before the hand-in, so each hand-in is one attempt, charged unless its grading was not."""

    def counted_before_intake(self, request: SubmissionRequest) -> bool:
        return False

    def attempts_used(self, session: Session, user_id: int, assessment_id: int) -> int:
        return session.scalar(self.attempts_counted(user_id, assessment_id)) or 0

    def attempts_counted(self, user_id: IdParam, assessment_id: IdParam) -> Select[int]:
        return charged_attempts(user_id, assessment_id)

    def open_attempt(self, session: Session, user_id: int, version_id: int, now: datetime) -> str | None:
        return None

    def grades_inline(self, definition: AssessmentDefinition) -> bool:
        return False  # a sandbox run or an artifact check: always a worker's job

    def coalesces(self) -> bool:
        # The whole work again: the newer hand-in says all the older one did, so grading the older one
        # (minutes of a sandbox slot at a deadline) would be wasted.
        return True

    def check_start(
        self, session: Session, settings: Settings, user: User, assessment_id: int, slug: str, now: datetime
    ) -> None:
        return None
