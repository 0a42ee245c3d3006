"""The set-based award check that gates `update_awards`: whenever it says nothing can change, the full
walk over the learner's progress changes nothing either, over random histories, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from grader.models import (
    Assessment,
    AwardStatus,
    CredentialAward,
    GradeOutcome,
    GradingRun,
    Program,
    Requirement,
    Result,
    RunStatus,
    Submission,
    SubmissionStatus,
    utcnow,
)
from grader.services import progress
from tests.conftest import Account, make_account
from tests.support.databases import sqlite_and_postgres  # noqa: F401 - runs each test on both

STATUSES = [
    SubmissionStatus.GRADED,
    SubmissionStatus.NEEDS_REVIEW,
    SubmissionStatus.QUEUED,
    SubmissionStatus.ERROR,
]


def _hand_in(session: Session, rng: random.Random, learner: Account, assessment: Assessment, n: int) -> None:
    version = assessment.versions[-1]
    submission = Submission(
        user_id=learner.id,
        assessment_id=assessment.id,
        assessment_version_id=version.id,
        kind=assessment.kind,
        attempt_number=n,
        status=rng.choice(STATUSES),
        payload={},
        receipt_sha256="0" * 64,
    )
    session.add(submission)
    session.flush()
    for _ in range(rng.randint(0, 2)):
        max_score = rng.choice([0.0, 3.0, 4.0])
        # Scores at, just under and just over the marks: where a float rule could differ from Python's.
        score = rng.choice([0.0, max_score, max_score * 0.75, max_score * 0.5, 2.4, 2.399999])
        run = GradingRun(submission=submission, queue="quiz", status=RunStatus.DONE, reason="submitted")
        session.add(run)
        session.add(
            Result(
                run=run,
                submission_id=submission.id,
                score=min(score, max_score),
                max_score=max_score,
                passed=rng.choice([True, False, None]),
                needs_review=False,
                outcome=GradeOutcome.GRADED,
                feedback={},
                created_at=utcnow() - timedelta(minutes=rng.randint(0, 60)),
            )
        )


def test_when_the_check_says_no_change_the_full_walk_changes_nothing(
    loaded: sessionmaker[Session],
) -> None:
    rng = random.Random(20261203)
    with loaded() as session:
        # A mark on one requirement, so both rules (passed, and a fraction against a mark) are tried.
        timed = session.scalar(select(Assessment).where(Assessment.slug == "timed"))
        assert timed is not None
        session.execute(
            update(Requirement).where(Requirement.assessment_id == timed.id).values(min_score=0.6)
        )
        session.commit()
    decided_without_walking = 0
    for case in range(60):
        learner = make_account(loaded, f"case{case}@example.org", programs=("test-program", "other-program"))
        with loaded() as session:
            assessments = session.scalars(
                select(Assessment).where(Assessment.slug.in_(["basics", "timed"]))
            ).all()
            for assessment in assessments:
                for n in range(rng.randint(0, 3)):
                    _hand_in(session, rng, learner, assessment, n + 1)
            for program in session.scalars(select(Program)).all():
                status = rng.choice([None, AwardStatus.AWARDED, AwardStatus.SUSPENDED, AwardStatus.REVOKED])
                if status is not None:
                    session.add(
                        CredentialAward(
                            user_id=learner.id,
                            program_id=program.id,
                            status=status,
                            evidence=[],
                            revoked_at=utcnow() - timedelta(minutes=30)
                            if status == AwardStatus.REVOKED
                            else None,
                        )
                    )
            session.commit()
            basics = next(a for a in assessments if a.slug == "basics")
            may_change = progress.awards_may_change(session, learner.id, basics.id)
            changed = progress.walk_awards(session, learner.id, basics.id, actor="test")
            session.rollback()
        if not may_change:
            decided_without_walking += 1
            assert changed == [], f"case {case}: the check said no change, the walk changed {changed}"
    # The check must also be worth having: most random histories are decided without the walk.
    assert decided_without_walking >= 15
