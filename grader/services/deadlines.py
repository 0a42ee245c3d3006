"""Due dates, late windows and per-learner extensions.

An assessment's `due` closes hand-ins, unless it declares a `late` window: then work is accepted for
that many days more, at the penalty the window states, fixed on the submission at intake. A learner
with an extension has a due date of their own, and the late window follows it. Feedback hidden until
"after the due date" opens when no more work is accepted from that learner: at the end of their late
window, if there is one (otherwise a learner could read the hidden tests' output, then hand in late).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.catalog.schema import AssessmentDefinition
from grader.errors import InvalidInput, NotFound, PastDue, PermissionDenied
from grader.models import Assessment, Extension, Role, User
from grader.services import audit

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Deadline:
    """One learner's deadline on one assessment."""

    due: datetime | None
    late_until: datetime | None  # end of the late window; None without one
    extended: bool

    @property
    def closes(self) -> datetime | None:
        """When this learner's hand-ins stop being accepted."""
        return self.late_until or self.due


def deadline_for(
    session: Session, user_id: int, assessment_id: int, definition: AssessmentDefinition
) -> Deadline:
    extension = session.scalar(
        select(Extension.due_at).where(Extension.user_id == user_id, Extension.assessment_id == assessment_id)
    )
    return deadline_from(extension, definition)


def deadline_from(extension: datetime | None, definition: AssessmentDefinition) -> Deadline:
    """The learner's deadline from their extension's due date, if they have one, and the definition."""
    due = extension or definition.due
    late_until = due + timedelta(days=definition.late.days) if due and definition.late else None
    return Deadline(due=due, late_until=late_until, extended=extension is not None)


def late_penalty(definition: AssessmentDefinition, deadline: Deadline, now: datetime) -> float:
    """The penalty of a hand-in now, or `PastDue` when this learner's deadline has closed."""
    if deadline.due is None or now <= deadline.due:
        return 0.0
    if definition.late is not None and deadline.late_until is not None and now <= deadline.late_until:
        days_late = math.ceil((now - deadline.due) / DAY)
        return definition.late.penalty_for(days_late)
    details = {"field": "assessment", "due": deadline.due.isoformat()}
    if deadline.late_until is not None:
        details["late_until"] = deadline.late_until.isoformat()
    closed = deadline.closes or deadline.due
    raise PastDue(
        f"{definition.title} closed on {closed:%Y-%m-%d at %H:%M} UTC; ask your course team for an extension",
        details=details,
    )


def grant_extension(
    session: Session,
    *,
    actor: str,
    learner_email: str,
    assessment_slug: str,
    due: datetime,
    reason: str = "",
) -> Extension:
    """Give one learner a due date of their own (replacing an earlier extension), audited."""
    if due.tzinfo is None:
        raise InvalidInput(
            "the new due date needs a time zone, e.g. 2026-12-31T23:59:00Z", details={"field": "due"}
        )
    learner = session.scalar(select(User).where(User.email == learner_email.strip().lower()))
    if learner is None or learner.role != Role.LEARNER:
        raise NotFound(f"no learner {learner_email!r}", details={"field": "learner"})
    assessment = session.scalar(select(Assessment).where(Assessment.slug == assessment_slug))
    if assessment is None:
        raise NotFound(f"no assessment {assessment_slug!r}", details={"field": "assessment"})
    extension = session.scalar(
        select(Extension).where(Extension.user_id == learner.id, Extension.assessment_id == assessment.id)
    )
    before = None if extension is None else {"due": extension.due_at.isoformat()}
    if extension is None:
        extension = Extension(user_id=learner.id, assessment_id=assessment.id, due_at=due, granted_by=actor)
        session.add(extension)
    extension.due_at, extension.reason, extension.granted_by = due, reason[:2000], actor[:200]
    session.flush()
    audit.record(
        session,
        audit.Actions.EXTENSION_GRANTED,
        actor=actor,
        subject=f"extension {extension.id}",
        before=before,
        after={"due": due.isoformat()},
        reason=reason,
        learner_id=learner.id,
        assessment_id=assessment.id,
    )
    return extension


def require_staff(user: User) -> None:
    if user.role not in (Role.REVIEWER, Role.ADMIN):
        raise PermissionDenied("only course staff may do this")
