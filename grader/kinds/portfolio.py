"""Portfolios: declared artifacts (files, links, statements), checked automatically on the `checks`
queue and scored by reviewers. Intake is not open yet: a hand-in is refused with a clear answer."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from grader.catalog.schema import AssessmentDefinition, PortfolioAssessment, ReviewPolicy
from grader.config import Settings
from grader.errors import InvalidInput
from grader.kinds.base import Intake, KindGrader, ShapedFeedback, SubmissionRequest, charged_attempts
from grader.models import AssessmentVersion, Result, Submission, User


def portfolio_of(definition: AssessmentDefinition) -> PortfolioAssessment:
    if not isinstance(definition, PortfolioAssessment):
        raise TypeError(f"expected a portfolio assessment, got a {definition.kind}")
    return definition


class PortfolioKind:
    name = "portfolio"
    queue = "checks"
    deadline_grace = timedelta(0)

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
        raise InvalidInput("portfolio hand-ins are not accepted yet", details={"field": "assessment"})

    def counted_before_intake(self, request: SubmissionRequest) -> bool:
        return False

    def attempts_used(self, session: Session, user_id: int, assessment_id: int) -> int:
        return charged_attempts(session, user_id, assessment_id)

    def open_attempt(self, session: Session, user_id: int, version_id: int, now: datetime) -> str | None:
        return None

    def check_start(
        self, session: Session, settings: Settings, user: User, assessment_id: int, slug: str, now: datetime
    ) -> None:
        return None

    def grader(self, settings: Settings | None) -> KindGrader | None:
        return None

    def summary(self, version: AssessmentVersion, definition: AssessmentDefinition) -> dict[str, Any]:
        return {}

    def review_policy(self, definition: AssessmentDefinition) -> ReviewPolicy:
        return portfolio_of(definition).review

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
        if not staff:
            feedback.pop("staff", None)
        return ShapedFeedback(feedback)

    def withheld(self, session: Session, submission: Submission, result: Result) -> bool:
        return False


KIND = PortfolioKind()
