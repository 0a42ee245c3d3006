"""Grading runs: claim under a lease, grade, record the result once, and recover lost runs.

The lifecycle of a `GradingRun` is `queued -> running -> done | error`. A worker claims a run with a
conditional UPDATE (only one claimant can win), renews its lease while it works, and writes the result
in a transaction that succeeds only while it still holds the lease. So a message delivered twice
grades once, and a worker that died is replaced by the reconciler once its lease has expired.
Learner faults (wrong answers, failing tests, timeouts) are results; only infrastructure faults
(`ServiceUnavailable`) put a run back in the queue.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Insert, String, and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session, joinedload, sessionmaker

from grader import logs, metrics
from grader.catalog.schema import AssessmentDefinition
from grader.db import session_scope
from grader.errors import ServiceUnavailable
from grader.kinds import kind_named
from grader.kinds.base import CarriedReview, Grade, GradingJob, KindGrader
from grader.models import (
    AssessmentVersion,
    GradeOutcome,
    GradingRun,
    Result,
    Rubric,
    RunStatus,
    Submission,
    SubmissionStatus,
    new_id,
    table_of,
    utcnow,
)
from grader.models import Review as ReviewRow
from grader.services import audit, progress, review_queue
from grader.services.catalog import database_key, parse_definition
from rubrics import Review, rubric_from_dict

log = logging.getLogger(__name__)


class RunOutcome(StrEnum):
    GRADED = "graded"
    SKIPPED = "skipped"  # already claimed or finished: a duplicate delivery
    LOST_LEASE = "lost_lease"
    REQUEUED = "requeued"


@dataclass(frozen=True)
class Claim:
    run_id: str
    lease_id: str
    tries: int
    # What the result's write and its metrics need, returned by the claim itself.
    submission_id: str = ""
    queue: str = ""
    reason: str = ""
    worker: str = ""
    requested_at: datetime | None = None
    started_at: datetime | None = None
    assessment_version_id: int | None = None  # the version a regrade pins; else the submission's


def claim_run(
    session: Session,
    run_id: str,
    *,
    worker: str,
    lease_seconds: int,
    now: datetime | None = None,
    commit: bool = True,
) -> Claim | None:
    """Take a run that is queued (or running under an expired lease); None when someone else has it.

    With `commit=False` the caller commits, after reading the job in the same transaction.
    """
    now = now or utcnow()
    lease_id = new_id()
    worker = worker[:200]
    claimed = session.execute(
        _claim_statement(),
        {
            "run_id": run_id,
            "now": now,
            "lease_id": lease_id,
            "lease_until": now + timedelta(seconds=lease_seconds),
            "worker": worker,
        },
    ).one_or_none()
    if claimed is None:
        session.rollback()
        return None
    if commit:
        session.commit()
    return Claim(
        run_id=run_id,
        lease_id=lease_id,
        tries=claimed.tries,
        submission_id=claimed.submission_id,
        queue=claimed.queue,
        reason=claimed.reason,
        worker=worker,
        requested_at=claimed.requested_at,
        started_at=now,
        assessment_version_id=claimed.assessment_version_id,
    )


@functools.cache
def _claim_statement() -> Any:
    """The claim, built once per process (building it costs more than running it). Parameters: run_id,
    now, lease_id, lease_until, worker."""
    now = bindparam("now", type_=DateTime)
    runs = table_of(GradingRun).c
    # On the table, not the mapped class: an ORM-enabled UPDATE costs a compile state per execution.
    return (
        update(table_of(GradingRun))
        .where(
            runs.id == bindparam("run_id", type_=String),
            or_(
                runs.status == RunStatus.QUEUED,
                and_(runs.status == RunStatus.RUNNING, runs.lease_expires_at < now),
            ),
        )
        .values(
            status=RunStatus.RUNNING,
            lease_id=bindparam("lease_id", type_=String),
            lease_expires_at=bindparam("lease_until", type_=DateTime),
            tries=runs.tries + 1,
            started_at=now,
            worker=bindparam("worker", type_=String),
        )
        # What the claim needs comes back with it: no read after the write.
        .returning(
            runs.submission_id,
            runs.tries,
            runs.queue,
            runs.reason,
            runs.requested_at,
            runs.assessment_version_id,
        )
    )


def mark_grading(session: Session, submission_id: str) -> None:
    """Show the learner that their submission is being graded (a run of some length has started)."""
    session.execute(
        update(Submission)
        .where(Submission.id == submission_id)
        .values(status=SubmissionStatus.GRADING)
        .execution_options(synchronize_session=False)
    )


def renew_lease(session: Session, claim: Claim, lease_seconds: int) -> bool:
    """Heartbeat: extend the lease; False when the lease was lost (the reconciler took the run)."""
    renewed = session.execute(
        update(GradingRun)
        .where(
            GradingRun.id == claim.run_id,
            GradingRun.lease_id == claim.lease_id,
            GradingRun.status == RunStatus.RUNNING,
        )
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(renewed.rowcount == 1)  # type: ignore[attr-defined]


def _run_with_its_submission(session: Session, run_id: str) -> GradingRun | None:
    """A run, its submission and the versions and rubrics both point at, in one query."""
    return session.scalar(
        select(GradingRun)
        .where(GradingRun.id == run_id)
        .options(
            joinedload(GradingRun.assessment_version).joinedload(AssessmentVersion.rubric),
            joinedload(GradingRun.submission)
            .joinedload(Submission.assessment_version)
            .joinedload(AssessmentVersion.rubric),
        )
        .execution_options(populate_existing=True)
    )


def load_job(session: Session, run_id: str) -> GradingJob:
    run = _run_with_its_submission(session, run_id)
    assert run is not None
    submission = run.submission
    version = run.assessment_version or submission.assessment_version
    carried = None
    if version.rubric is not None and run.reason == "regrade":
        carried = _review_to_carry(session, submission, version.rubric.definition)
    return job_for(run.id, run.reason, submission, version, carried)


def job_after_claim(session: Session, claim: Claim) -> GradingJob:
    """The job of a run just claimed: one lean read of its submission; the version's parts (immutable)
    come from a per-process cache."""
    row = session.execute(_job_statement(), {"submission_id": claim.submission_id}).one()
    parts = version_parts(session, claim.assessment_version_id or row.assessment_version_id)
    carried = None
    if parts.rubric_definition is not None and claim.reason == "regrade":
        submission = session.get(Submission, claim.submission_id)
        assert submission is not None
        carried = _review_to_carry(session, submission, parts.rubric_definition)
    return GradingJob(
        run_id=claim.run_id,
        submission_id=claim.submission_id,
        user_id=row.user_id,
        assessment_id=row.assessment_id,
        kind=row.kind,
        definition=parts.definition,
        raw_definition=parts.raw_definition,
        payload=row.payload,
        rubric_definition=parts.rubric_definition,
        rubric_id=parts.rubric_id,
        assessment_version_id=parts.version_id,
        attempt_number=row.attempt_number,
        commit_sha=row.commit_sha,
        late_penalty=row.late_penalty,
        carried_review=carried,
        run_reason=claim.reason,
    )


@functools.cache
def _job_statement() -> Any:
    return select(
        Submission.user_id,
        Submission.assessment_id,
        Submission.assessment_version_id,
        Submission.kind,
        Submission.payload,
        Submission.attempt_number,
        Submission.commit_sha,
        Submission.late_penalty,
    ).where(Submission.id == bindparam("submission_id", type_=String))


@dataclass(frozen=True)
class VersionParts:
    """What grading needs of an assessment version; a version never changes, so a process keeps it."""

    version_id: int
    definition: AssessmentDefinition
    raw_definition: Mapping[str, Any]
    rubric_definition: Mapping[str, Any] | None
    rubric_id: int | None


_VERSION_PARTS_LIMIT = 512
# Keyed by the database too: ids repeat across the databases one process may open (tests, tools).
_version_parts: dict[tuple[str, int], VersionParts] = {}


def version_parts(session: Session, version_id: int) -> VersionParts:
    key = (database_key(session), version_id)
    parts = _version_parts.get(key)
    if parts is None:
        version = session.scalar(
            select(AssessmentVersion)
            .where(AssessmentVersion.id == version_id)
            .options(joinedload(AssessmentVersion.rubric))
        )
        assert version is not None, f"no assessment version {version_id}"
        rubric = version.rubric
        parts = VersionParts(
            version_id=version.id,
            definition=parse_definition(version),
            raw_definition=version.definition,
            rubric_definition=rubric.definition if rubric else None,
            rubric_id=rubric.id if rubric else None,
        )
        if len(_version_parts) >= _VERSION_PARTS_LIMIT:
            _version_parts.clear()
        _version_parts[key] = parts
    return parts


def job_for(
    run_id: str,
    reason: str,
    submission: Submission,
    version: AssessmentVersion,
    carried: CarriedReview | None = None,
) -> GradingJob:
    """The grading job of a run of `submission` against `version`."""
    rubric = version.rubric
    return GradingJob(
        run_id=run_id,
        submission_id=submission.id,
        user_id=submission.user_id,
        assessment_id=submission.assessment_id,
        kind=submission.kind,
        definition=parse_definition(version),
        raw_definition=version.definition,
        payload=submission.payload,
        rubric_definition=rubric.definition if rubric else None,
        rubric_id=rubric.id if rubric else None,
        assessment_version_id=version.id,
        attempt_number=submission.attempt_number,
        commit_sha=submission.commit_sha,
        late_penalty=submission.late_penalty,
        carried_review=carried,
        run_reason=reason,
    )


def _review_to_carry(
    session: Session, submission: Submission, rubric_definition: Mapping[str, Any]
) -> CarriedReview | None:
    """The latest review of this submission, if the manual part of the rubric it scored is the
    manual part of `rubric_definition` (same criteria, levels, items and points)."""
    latest = session.execute(
        select(ReviewRow, Result.rubric_id)
        .join(Result, Result.id == ReviewRow.result_id)
        .where(Result.submission_id == submission.id)
        .order_by(ReviewRow.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        return None
    review, rubric_id = latest
    scored = session.get(Rubric, rubric_id) if rubric_id is not None else None
    if scored is None or manual_part(scored.definition) != manual_part(rubric_definition):
        return None
    return CarriedReview(
        review_id=review.id,
        reviewer_id=review.reviewer_id,
        reviews=tuple(
            Review(
                criterion_id=item["criterion"],
                level=item.get("level"),
                points=item.get("points"),
                items=tuple(item.get("items", [])),
                comment=item.get("comment", ""),
            )
            for item in review.criteria
        ),
        comment=review.comment,
    )


def manual_part(rubric_definition: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What of a rubric a reviewer scores: its manual criteria as parsed (so formatting, titles of
    other criteria and descriptions do not count, but every level, item and point does)."""
    rubric = rubric_from_dict(dict(rubric_definition), "rubric")
    return [
        {
            "id": c.id,
            "scoring": c.scoring,
            "levels": [(lv.label, lv.points) for lv in c.levels],
            "items": [(item.id, item.points) for item in c.items],
            "max": c.top_points,
            "weight": c.weight,
            "minimum_level": c.minimum_level,
            "minimum_points": c.minimum_points,
            "mode": c.mode,
            "floor": c.floor,
            "ceiling": c.ceiling,
        }
        for c in rubric.criteria
        if c.auto is None
    ]


def finish_run(session: Session, claim: Claim, job: GradingJob, grade: Grade) -> bool:
    """Record the result if `claim` still holds the lease; progress, awards and the audit log follow
    in the same commit."""
    runs = table_of(GradingRun).c
    done = session.execute(
        update(table_of(GradingRun))
        .where(runs.id == claim.run_id, runs.lease_id == claim.lease_id, runs.status == RunStatus.RUNNING)
        .values(status=RunStatus.DONE, finished_at=utcnow(), lease_expires_at=None)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        return False
    # A hand-in's first run has no result before it; only regrades and retries replace one.
    before = None if job.run_reason == "submitted" else latest_result_of(session, job.submission_id)
    result_id = session.execute(result_insert(), result_values(job, grade)).scalar_one()
    status = status_after(grade)
    if grade.needs_review:
        result, submission = session.get(Result, result_id), session.get(Submission, job.submission_id)
        assert result is not None and submission is not None
        review_queue.open_tasks(session, result, submission)
    submissions = table_of(Submission).c
    session.execute(
        update(table_of(Submission))
        .where(submissions.id == job.submission_id)
        .values(status=status, charged=grade.outcome.charges_attempt)
    )
    record_result(session, job, grade, result_id, before=before, worker=claim.worker)
    session.commit()
    metrics.run_finished(
        kind=job.kind,
        queue=claim.queue,
        grade=grade,
        requested_at=claim.requested_at,
        started_at=claim.started_at,
    )
    return True


def result_values(job: GradingJob, grade: Grade) -> dict[str, Any]:
    """The columns of the result `grade` makes for `job`'s run."""
    return {
        "run_id": job.run_id,
        "submission_id": job.submission_id,
        "score": grade.score,
        "max_score": grade.max_score,
        "passed": grade.passed,
        "needs_review": grade.needs_review,
        "outcome": grade.outcome,
        "feedback": dict(grade.feedback),
        "rubric_id": job.rubric_id,
        "assessment_version_id": job.assessment_version_id,
    }


@functools.cache
def result_insert() -> Insert:
    """A worker's result as one Core INSERT … RETURNING id, built once per process: the ORM's unit of
    work costs more than the statement."""
    results = table_of(Result)
    return insert(results).returning(results.c.id)


def status_after(grade: Grade) -> SubmissionStatus:
    """The submission's status once `grade` is its latest result."""
    if grade.needs_review:
        return SubmissionStatus.NEEDS_REVIEW
    if grade.outcome is GradeOutcome.GRADER_ERROR:
        return SubmissionStatus.ERROR
    return SubmissionStatus.GRADED


def record_result(
    session: Session, job: GradingJob, grade: Grade, result_id: int, *, before: Result | None, worker: str
) -> None:
    """What follows a result that was just written (flushed): a carried-over review, the audit
    log, and the learner's awards."""
    subject: dict[str, Any] = {
        "learner_id": job.user_id,
        "assessment_id": job.assessment_id,
        "submission_id": job.submission_id,
    }
    actor = f"worker:{worker or 'unknown'}"
    carried_review = job.carried_review
    if carried_review is not None and not grade.needs_review and grade.outcome is GradeOutcome.GRADED:
        session.add(
            ReviewRow(
                result_id=result_id,
                reviewer_id=carried_review.reviewer_id,
                criteria=review_rows(carried_review.reviews),
                comment=carried_review.comment,
                carried_from_id=carried_review.review_id,
            )
        )
        audit.record(
            session,
            audit.Actions.REVIEW_CARRIED_OVER,
            actor=actor,
            subject=f"review {carried_review.review_id}",
            reason="regrade: the manual criteria of the rubric did not change",
            **subject,
        )
    audit.record(
        session,
        audit.Actions.RESULT_RECORDED,
        actor=actor,
        subject=f"result {result_id}",
        before=None
        if before is None
        else audit.result_state(before.score, before.max_score, before.passed, before.outcome),
        after=audit.result_state(grade.score, grade.max_score, grade.passed, grade.outcome),
        reason=job.run_reason,
        **subject,
        at_once=True,
    )
    session.flush()
    progress.update_awards(session, job.user_id, job.assessment_id, actor="system")


def review_rows(reviews: tuple[Review, ...]) -> list[dict[str, Any]]:
    """Reviews as stored in a `Review` row's `criteria`."""
    return [
        {
            "criterion": r.criterion_id,
            "level": r.level,
            "points": r.points,
            "items": list(r.items),
            "comment": r.comment,
        }
        for r in reviews
    ]


# However a run's tries are counted, it is delivered at most this many times `max_tries`: none loops.
DELIVERY_LIMIT_FACTOR = 3


def delivery_limit(max_tries: int) -> int:
    return DELIVERY_LIMIT_FACTOR * max_tries


def release_run(
    session: Session, claim: Claim, error: str, *, max_tries: int, submission_may_cause: bool = True
) -> None:
    """Give a run back to the queue after a fault on our side, or mark it error.

    A fault the submission may have caused (grading it raised) is a strike, and `max_tries` strikes
    end in error; one it cannot cause (a service that is down) only counts as a delivery, up to the
    delivery limit.
    """
    run = session.get(GradingRun, claim.run_id)
    if run is None or run.lease_id != claim.lease_id:
        session.rollback()
        return
    if submission_may_cause:
        run.strikes += 1
    if run.strikes >= max_tries:
        give_up(run, f"gave up after {run.strikes} tries that the submission may have caused: {error}"[:4000])
        log.error("grading run %s marked error: %s", run.id, error)
    elif claim.tries >= delivery_limit(max_tries):
        give_up(run, f"gave up after {claim.tries} deliveries, the most a run gets: {error}"[:4000])
        log.error("grading run %s marked error after %d deliveries: %s", run.id, claim.tries, error)
    else:
        run.status = RunStatus.QUEUED
        run.lease_id = None
        run.lease_expires_at = None
        counted = (
            f"counted against the submission: {run.strikes} of {max_tries}"
            if submission_may_cause
            else "not counted against the submission"
        )
        run.last_error = f"{error} ({counted})"[:4000]
        run.enqueued_at = None  # the reconciler sends it again
    session.commit()


@dataclass
class Heartbeat:
    """Renews a claim's lease in the background while a long grading job runs."""

    factory: sessionmaker[Session]
    claim: Claim
    lease_seconds: int
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.claim.run_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _beat(self) -> None:
        interval = max(0.5, self.lease_seconds / 3)
        while not self._stop.wait(interval):
            try:
                with session_scope(self.factory) as session:
                    if not renew_lease(session, self.claim, self.lease_seconds):
                        self.lost.set()
                        return
            except Exception:  # a missed beat is survivable; the next one may get through
                log.warning("lease renewal for run %s failed", self.claim.run_id, exc_info=True)


def process_run(
    factory: sessionmaker[Session],
    run_id: str,
    graders: Mapping[str, KindGrader],
    *,
    worker: str,
    lease_seconds: int,
    max_tries: int = 3,
    announce: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Claim, grade and record one run: the whole job of a worker task. `announce` is told the
    submission id once its result is committed (the long polls waiting on it wake up)."""
    with session_scope(factory) as session:
        claim = claim_run(session, run_id, worker=worker, lease_seconds=lease_seconds, commit=False)
        # ---- fairness (grader.services.scheduling): in a repository or portfolio queue the message is a
        # token and the best eligible run is claimed instead; a quiz's claim comes back untouched.
        # Imported here: scheduling builds on this module.
        from grader.services import scheduling

        claim = scheduling.claim_fairly(session, run_id, claim, worker=worker, lease_seconds=lease_seconds)
        if claim is None:
            return RunOutcome.SKIPPED
        run_id = claim.run_id
        # ---- end of fairness
        job = job_after_claim(session, claim)
        if not kind_named(job.kind).grades_inline(job.definition):
            # A closed-form quiz is graded within the millisecond: "grading" would be a write no one sees.
            mark_grading(session, job.submission_id)
        session.commit()
    # Every line logged while grading names both (a worker clears them when its task ends).
    logs.bind(submission_id=job.submission_id, run_id=run_id)
    # The session is closed while grading: a sandbox run must not hold a database connection.
    grader = graders.get(job.kind)
    try:
        if grader is None:
            raise ServiceUnavailable(f"this worker has no grader for {job.kind!r} submissions")
        with Heartbeat(factory, claim, lease_seconds):
            grade = grader.grade(job)
    except ServiceUnavailable as exc:
        with session_scope(factory) as session:
            release_run(
                session, claim, f"{exc.code}: {exc.message}", max_tries=max_tries, submission_may_cause=False
            )
        raise
    except Exception as exc:
        # A bug on our side, not the learner's fault: keep the run recoverable and say why.
        with session_scope(factory) as session:
            release_run(session, claim, f"internal error: {exc!r}", max_tries=max_tries)
        raise
    with session_scope(factory) as session:
        recorded = finish_run(session, claim, job, grade)
        if not recorded:
            log.warning("run %s lost its lease before its result was written; dropped", run_id)
            return RunOutcome.LOST_LEASE
    if announce is not None:
        announce(job.submission_id)
    # ---- fairness: this learner's next run may have been passed over while this one ran; take the
    # queue's next run now (the finished run's message serves again as a token).
    with session_scope(factory) as session:
        follow_on = scheduling.learner_has_waiting(session, claim)
    if follow_on:
        return process_run(
            factory,
            run_id,
            graders,
            worker=worker,
            lease_seconds=lease_seconds,
            max_tries=max_tries,
            announce=announce,
        )
    # ---- end of fairness
    return RunOutcome.GRADED


def give_up(run: GradingRun, reason: str) -> None:
    run.status = RunStatus.ERROR
    run.lease_id = None
    run.lease_expires_at = None
    run.finished_at = utcnow()
    run.last_error = reason
    run.submission.status = SubmissionStatus.ERROR


def latest_result(session: Session, submission: Submission) -> Result | None:
    return latest_result_of(session, submission.id)


def latest_result_of(session: Session, submission_id: str) -> Result | None:
    return session.scalar(
        select(Result).where(Result.submission_id == submission_id).order_by(Result.id.desc()).limit(1)
    )
