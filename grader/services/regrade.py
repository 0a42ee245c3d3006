"""Regrading: run existing submissions again (after a course team fixed its tests or rubric).

Each regrade is a new `GradingRun` against the assessment's current version; earlier runs and their
results stay in the history. A reviewer's scores carry over to the new result when the manual part of
the rubric did not change (`grading.load_job`); when it did, the submission waits for review, and its
earlier final result keeps standing until the new one is final (`progress`), so a credential is never
revoked by an intermediate state. Every regrade request is in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from grader.interfaces import TaskQueue
from grader.models import GradingRun, RunStatus, Submission, SubmissionStatus
from grader.services import audit
from grader.services.catalog import current_version
from grader.services.submissions import send_run


@dataclass(frozen=True)
class RegradeReport:
    queued: tuple[str, ...]  # run ids
    skipped_busy: int  # submissions already waiting for or in grading


def regrade(
    session: Session,
    queue: TaskQueue,
    assessment_slug: str,
    *,
    actor: str,
    only_latest: bool = False,
    reason: str = "",
) -> RegradeReport:
    version = current_version(session, assessment_slug)
    query = select(Submission).where(Submission.assessment_id == version.assessment_id)
    if only_latest:
        newest = (
            select(Submission.user_id, func.max(Submission.created_at).label("newest"))
            .where(Submission.assessment_id == version.assessment_id)
            .group_by(Submission.user_id)
            .subquery()
        )
        query = query.join(
            newest, (Submission.user_id == newest.c.user_id) & (Submission.created_at == newest.c.newest)
        )
    runs: list[GradingRun] = []
    busy = 0
    for submission in session.scalars(query.order_by(Submission.created_at)).all():
        in_flight = session.scalar(
            select(func.count(GradingRun.id)).where(
                GradingRun.submission_id == submission.id,
                GradingRun.status.in_([RunStatus.QUEUED, RunStatus.RUNNING]),
            )
        )
        if in_flight:
            busy += 1
            continue
        run = GradingRun(
            submission=submission,
            queue=submission.runs[0].queue if submission.runs else "quiz",
            reason="regrade",
            assessment_version_id=version.id,
        )
        submission.status = SubmissionStatus.QUEUED
        session.add(run)
        runs.append(run)
        audit.record(
            session,
            audit.Actions.REGRADE_REQUESTED,
            actor=actor,
            subject=f"submission {submission.id}",
            after={"assessment_version": version.version},
            reason=reason,
            **audit.submission_subject(submission),
        )
    session.commit()
    for run in runs:
        send_run(session, queue, run)
    return RegradeReport(queued=tuple(r.id for r in runs), skipped_busy=busy)
