"""A signed credential for the tests that need one: a learner passes `other-program` (the basics quiz is its
one requirement), the award opens the pending credential, and it is signed in-process exactly as the
worker task signs it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.kinds import default_graders
from grader.kinds.base import SubmissionRequest
from grader.models import CredentialAward, GradingRun, User
from grader.services import credentials, submissions
from grader.services.grading import RunOutcome, process_run
from tests.conftest import Account, make_account
from tests.support.catalogs import BASICS_ANSWERS

PROGRAM = "other-program"


def issued_credential(
    sessions: sessionmaker[Session], settings: Settings, account: Account | None = None
) -> str:
    """The id of a signed (active) credential of `other-program`; its holder is `account` or a new one."""
    holder = account or make_account(sessions, "holder@example.org", programs=(PROGRAM,))
    with sessions() as session:
        user = session.get(User, holder.id)
        assert user is not None
        accepted = submissions.submit(
            session,
            RecordingQueue(),
            settings,
            user,
            SubmissionRequest(assessment="basics", answers=BASICS_ANSWERS),
        )
    with sessions() as session:
        run_id = session.scalars(
            select(GradingRun.id).where(GradingRun.submission_id == accepted.submission_id)
        ).one()
    assert process_run(sessions, run_id, default_graders(), worker="w", lease_seconds=60) == RunOutcome.GRADED
    with sessions() as session:
        award = session.scalars(select(CredentialAward).where(CredentialAward.user_id == holder.id)).one()
        live = credentials.live_credential(award)
        assert live is not None
        credential_id = live.id
    with sessions() as session:
        assert credentials.issue(session, credential_id, credentials.issuer_identity(settings))
    return credential_id
