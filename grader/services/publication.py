"""Publishing an assessment's results: tests visible `after_published` open to its learners."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.errors import NotFound
from grader.models import Assessment, utcnow
from grader.services import audit


def publish(session: Session, assessment_slug: str, *, actor: str, now: datetime | None = None) -> datetime:
    """Open the `after_published` tests of every result of the assessment from now on (audited)."""
    assessment = session.scalar(select(Assessment).where(Assessment.slug == assessment_slug))
    if assessment is None:
        raise NotFound(f"no assessment {assessment_slug!r}", details={"field": "assessment"})
    before = assessment.results_published_at
    published = now or utcnow()
    assessment.results_published_at = published
    audit.record(
        session,
        audit.Actions.RESULTS_PUBLISHED,
        actor=actor,
        subject=f"assessment {assessment.slug}",
        before={"published": before.isoformat()} if before else None,
        after={"published": published.isoformat()},
        assessment_id=assessment.id,
    )
    return published
