"""Grading runs: claim under a lease, grade, record the result once, and recover lost runs.

The lifecycle of a `GradingRun` is `queued -> running -> done | error`. A worker claims a run with a
conditional UPDATE (only one claimant can win), renews its lease while it works, and writes the result
in a transaction that succeeds only while it still holds the lease. So a message delivered twice
grades once, and a worker that died is replaced by the reconciler once its lease has expired.
Learner faults (wrong answers, failing tests, timeouts) are results; only infrastructure faults
(`ServiceUnavailable`) put a run back in the queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, joinedload, sessionmaker

from grader import logs, metrics
from grader.db import session_scope
from grader.errors import ServiceUnavailable
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
    utcnow,
)
from grader.models import Review as ReviewRow
from grader.services import audit, progress, review_queue
from grader.services.catalog import parse_definition
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


def claim_run(
    session: Session, run_id: str, *, worker: str, lease_seconds: int, now: datetime | None = None
) -> Claim | None:
    """Take a run that is queued (or running under an expired lease); None when someone else has it."""
    now = now or utcnow()
    lease_id = new_id()
    claimed = session.execute(
        update(GradingRun)
        .where(
            GradingRun.id == run_id,
            or_(
                GradingRun.status == RunStatus.QUEUED,
                and_(GradingRun.status == RunStatus.RUNNING, GradingRun.lease_expires_at < now),
            ),
        )
        .values(
            status=RunStatus.RUNNING,
            lease_id=lease_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            tries=GradingRun.tries + 1,
            started_at=now,
            worker=worker[:200],
        )
        # What the claim needs comes back with it: no read after the write.
        .returning(GradingRun.submission_id, GradingRun.tries)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if claimed is None:
        session.rollback()
        return None
    session.execute(
        update(Submission)
        .where(Submission.id == claimed.submission_id)
        .values(status=SubmissionStatus.GRADING)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return Claim(run_id=run_id, lease_id=lease_id, tries=claimed.tries)


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
    rubric = version.rubric
    carried = None
    if rubric is not None and run.reason == "regrade":
        carried = _review_to_carry(session, submission, rubric.definition)
    return GradingJob(
        run_id=run.id,
        submission_id=submission.id,
        user_id=submission.user_id,
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


def finish_run(
    session: Session,
    claim: Claim,
    grade: Grade,
    *,
    rubric_id: int | None,
    assessment_version_id: int | None = None,
    carried_review: CarriedReview | None = None,
) -> bool:
    """Record the result if `claim` still holds the lease; progress, awards and the audit log follow
    in the same commit."""
    done = session.execute(
        update(GradingRun)
        .where(
            GradingRun.id == claim.run_id,
            GradingRun.lease_id == claim.lease_id,
            GradingRun.status == RunStatus.RUNNING,
        )
        .values(status=RunStatus.DONE, finished_at=utcnow(), lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        return False
    run = _run_with_its_submission(session, claim.run_id)
    assert run is not None
    submission = run.submission
    before = latest_result(session, submission)
    result = Result(
        run_id=run.id,
        submission_id=run.submission_id,
        score=grade.score,
        max_score=grade.max_score,
        passed=grade.passed,
        needs_review=grade.needs_review,
        outcome=grade.outcome,
        feedback=dict(grade.feedback),
        rubric_id=rubric_id,
        assessment_version_id=assessment_version_id,
    )
    session.add(result)
    session.flush()
    subject = audit.submission_subject(submission)
    worker = f"worker:{run.worker or 'unknown'}"
    if carried_review is not None and not grade.needs_review and grade.outcome is GradeOutcome.GRADED:
        session.add(
            ReviewRow(
                result_id=result.id,
                reviewer_id=carried_review.reviewer_id,
                criteria=review_rows(carried_review.reviews),
                comment=carried_review.comment,
                carried_from_id=carried_review.review_id,
            )
        )
        audit.record(
            session,
            audit.Actions.REVIEW_CARRIED_OVER,
            actor=worker,
            subject=f"review {carried_review.review_id}",
            reason="regrade: the manual criteria of the rubric did not change",
            **subject,
        )
    if grade.needs_review:
        submission.status = SubmissionStatus.NEEDS_REVIEW
        review_queue.open_tasks(session, result, submission)
    elif grade.outcome in (GradeOutcome.GRADER_ERROR,):
        submission.status = SubmissionStatus.ERROR
    else:
        submission.status = SubmissionStatus.GRADED
    submission.charged = grade.outcome.charges_attempt
    audit.record(
        session,
        audit.Actions.RESULT_RECORDED,
        actor=worker,
        subject=f"result {result.id}",
        before=None
        if before is None
        else audit.result_state(before.score, before.max_score, before.passed, before.outcome),
        after=audit.result_state(grade.score, grade.max_score, grade.passed, grade.outcome),
        reason=run.reason,
        **subject,
    )
    session.flush()
    progress.update_awards(session, submission.user_id, submission.assessment_id, actor="system")
    session.commit()
    metrics.run_finished(
        kind=submission.kind,
        queue=run.queue,
        grade=grade,
        requested_at=run.requested_at,
        started_at=run.started_at,
    )
    return True


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
) -> RunOutcome:
    """Claim, grade and record one run: the whole job of a worker task."""
    with session_scope(factory) as session:
        claim = claim_run(session, run_id, worker=worker, lease_seconds=lease_seconds)
        if claim is None:
            return RunOutcome.SKIPPED
        job = load_job(session, run_id)
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
        recorded = finish_run(
            session,
            claim,
            grade,
            rubric_id=job.rubric_id,
            assessment_version_id=job.assessment_version_id,
            carried_review=job.carried_review,
        )
        if not recorded:
            log.warning("run %s lost its lease before its result was written; dropped", run_id)
            return RunOutcome.LOST_LEASE
    return RunOutcome.GRADED


def grade_inline(
    session: Session, run_id: str, grader: KindGrader, *, lease_seconds: int, max_tries: int
) -> bool:
    """Grade a committed run in this process: a closed-form quiz inside its intake request.

    The run is claimed as a worker claims it, so the guarantees stay the workers': if this process dies
    mid-grade the lease runs out and the reconciler sends the run to them; a fault gives the run back
    to the queue. True when the result is written.
    """
    claim = claim_run(session, run_id, worker="inline", lease_seconds=lease_seconds)
    if claim is None:
        return False
    job = load_job(session, run_id)
    try:
        grade = grader.grade(job)
    except Exception as exc:
        log.warning("inline grading of run %s failed; it goes to the workers", run_id, exc_info=True)
        release_run(session, claim, f"internal error grading inline: {exc!r}", max_tries=max_tries)
        return False
    return finish_run(
        session,
        claim,
        grade,
        rubric_id=job.rubric_id,
        assessment_version_id=job.assessment_version_id,
        carried_review=job.carried_review,
    )


def give_up(run: GradingRun, reason: str) -> None:
    run.status = RunStatus.ERROR
    run.lease_id = None
    run.lease_expires_at = None
    run.finished_at = utcnow()
    run.last_error = reason
    run.submission.status = SubmissionStatus.ERROR


def latest_result(session: Session, submission: Submission) -> Result | None:
    return session.scalar(
        select(Result).where(Result.submission_id == submission.id).order_by(Result.id.desc()).limit(1)
    )
