"""The audit log: every change to a score, a pass, a review, an award or a deadline, never edited.

Services write an event in the same transaction as the change it describes, so the log and the
data cannot disagree. An actor is a short text naming who or what acted: `user:3 ada@example.org`
(someone through the web or API), `worker:<host>` (a grading run), `cli:<login>` (a command on the
server), `system` (a consequence, such as an award following a result).
"""

from __future__ import annotations

import functools
import getpass
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, insert, select
from sqlalchemy.orm import Session

from grader.models import Assessment, AuditEvent, Submission, User, table_of

MAX_EVENTS = 1000


class Actions:
    """The actions an event records; one name per kind of change."""

    RESULT_RECORDED = "result.recorded"
    REVIEW_SUBMITTED = "review.submitted"
    REVIEW_EDITED = "review.edited"
    RESULT_SETTLED = "result.settled"
    REGRADE_ASKED = "regrade.asked"
    REGRADE_ANSWERED = "regrade.answered"
    REVIEW_CARRIED_OVER = "review.carried_over"
    REGRADE_REQUESTED = "regrade.requested"
    AWARD_GRANTED = "award.granted"
    AWARD_REVOKED = "award.revoked"
    AWARD_SUSPENDED = "award.suspended"
    AWARD_REINSTATED = "award.reinstated"
    CREDENTIAL_ISSUED = "credential.issued"
    CREDENTIAL_REVOKED = "credential.revoked"
    EXTENSION_GRANTED = "extension.granted"
    RESULTS_PUBLISHED = "results.published"
    SUBMISSION_SUPERSEDED = "submission.superseded"


def user_actor(user: User) -> str:
    return f"user:{user.id} {user.email}"


def cli_actor() -> str:
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "unknown"
    return f"cli:{login}@{socket.gethostname()}"


def record(
    session: Session,
    action: str,
    *,
    actor: str,
    subject: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    reason: str = "",
    learner_id: int | None = None,
    assessment_id: int | None = None,
    submission_id: str | None = None,
    at_once: bool = False,
) -> None:
    """An event, written with the session's next flush (after the rows it names); `at_once`: as one
    prebuilt INSERT now, for a hot path whose named rows are written already (a grading's result),
    where the unit of work would cost more than the statement."""
    values = _event_values(
        action, actor, subject, before, after, reason, learner_id, assessment_id, submission_id
    )
    if at_once:
        session.execute(_event_insert(), values)
    else:
        session.add(AuditEvent(**values))


def _event_values(
    action: str,
    actor: str,
    subject: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    reason: str,
    learner_id: int | None,
    assessment_id: int | None,
    submission_id: str | None,
) -> dict[str, Any]:
    return {
        "actor": actor[:200],
        "action": action,
        "subject": subject[:100],
        "before": dict(before) if before is not None else None,
        "after": dict(after) if after is not None else None,
        "reason": reason[:4000],
        "learner_id": learner_id,
        "assessment_id": assessment_id,
        "submission_id": submission_id,
    }


@functools.cache
def _event_insert() -> Insert:
    return insert(table_of(AuditEvent))


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    subject: str
    learner: str | None
    assessment: str | None
    submission: str | None
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "learner": self.learner,
            "assessment": self.assessment,
            "submission": self.submission,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
        }


def events(
    session: Session,
    *,
    submission_id: str | None = None,
    learner_email: str | None = None,
    assessment_slug: str | None = None,
    assessment_ids: set[int] | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """Events, newest first, narrowed by any of submission, learner and assessment; `assessment_ids`
    keeps only the events of those assessments (None: every event, those of no assessment too)."""
    query = (
        select(AuditEvent, User.email, Assessment.slug)
        .outerjoin(User, User.id == AuditEvent.learner_id)
        .outerjoin(Assessment, Assessment.id == AuditEvent.assessment_id)
        .order_by(AuditEvent.id.desc())
        .limit(max(1, min(limit, MAX_EVENTS)))
    )
    if submission_id is not None:
        query = query.where(AuditEvent.submission_id == submission_id)
    if learner_email is not None:
        query = query.where(User.email == learner_email.strip().lower())
    if assessment_slug is not None:
        query = query.where(Assessment.slug == assessment_slug)
    if assessment_ids is not None:
        query = query.where(AuditEvent.assessment_id.in_(assessment_ids))
    return [
        AuditEntry(
            at=event.created_at,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            learner=email,
            assessment=slug,
            submission=event.submission_id,
            before=event.before,
            after=event.after,
            reason=event.reason,
        )
        for event, email, slug in session.execute(query).all()
    ]


def result_state(score: float, max_score: float, passed: bool | None, outcome: str) -> dict[str, Any]:
    """How a result is described in an event's before and after."""
    return {"score": score, "max_score": max_score, "passed": passed, "outcome": outcome}


def submission_subject(submission: Submission) -> dict[str, Any]:
    return {
        "learner_id": submission.user_id,
        "assessment_id": submission.assessment_id,
        "submission_id": submission.id,
    }
