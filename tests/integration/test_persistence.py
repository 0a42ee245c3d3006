"""Claims, leases, results, reconciliation and awards on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.kinds import default_graders
from grader.kinds.base import SubmissionRequest
from grader.models import CredentialAward, GradingRun, Result, Submission, User, utcnow
from grader.services import submissions
from grader.services.grading import (
    Grade,
    RunOutcome,
    claim_run,
    finish_run,
    load_job,
    process_run,
)
from grader.services.reconciler import reconcile
from tests.conftest import Account
from tests.support.catalogs import BASICS_ANSWERS
from tests.support.databases import sqlite_and_postgres  # noqa: F401 - runs each test on both


def _submit(
    sessions: sessionmaker[Session], settings: Settings, account: Account, queue: RecordingQueue
) -> str:
    with sessions() as session:
        user = session.get(User, account.id)
        assert user is not None
        accepted = submissions.submit(
            session,
            queue,
            settings,
            user,
            SubmissionRequest(assessment="basics", answers=BASICS_ANSWERS),
        )
    with sessions() as session:
        run = session.scalars(
            select(GradingRun).where(GradingRun.submission_id == accepted.submission_id)
        ).one()
        return run.id


def _results(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(Result.id))) or 0


def test_only_one_of_two_claims_wins(
    loaded: sessionmaker[Session], settings: Settings, learner: Account
) -> None:
    run_id = _submit(loaded, settings, learner, RecordingQueue())
    with loaded() as first, loaded() as second:
        won = claim_run(first, run_id, worker="a", lease_seconds=60)
        lost = claim_run(second, run_id, worker="b", lease_seconds=60)
    assert won is not None and won.tries == 1
    assert lost is None


def test_a_run_delivered_twice_is_graded_once(
    loaded: sessionmaker[Session], settings: Settings, learner: Account
) -> None:
    run_id = _submit(loaded, settings, learner, RecordingQueue())
    first = process_run(loaded, run_id, default_graders(), worker="a", lease_seconds=60)
    second = process_run(loaded, run_id, default_graders(), worker="b", lease_seconds=60)
    assert (first, second) == (RunOutcome.GRADED, RunOutcome.SKIPPED)
    assert _results(loaded) == 1
    with loaded() as session:
        submission = session.scalars(select(Submission)).one()
        assert submission.status == "graded"


def test_a_worker_that_lost_its_lease_cannot_write(
    loaded: sessionmaker[Session], settings: Settings, learner: Account
) -> None:
    run_id = _submit(loaded, settings, learner, RecordingQueue())
    with loaded() as session:
        stale = claim_run(
            session, run_id, worker="slow", lease_seconds=60, now=utcnow() - timedelta(minutes=5)
        )
    assert stale is not None
    # The lease has expired, so another worker may take the run over...
    with loaded() as session:
        fresh = claim_run(session, run_id, worker="fast", lease_seconds=60)
    assert fresh is not None and fresh.tries == 2
    grade = Grade(score=1, max_score=1, passed=True, feedback={})
    with loaded() as session:
        job = load_job(session, run_id)
    with loaded() as session:
        assert finish_run(session, stale, job, grade) is False
    with loaded() as session:
        assert finish_run(session, fresh, job, grade) is True
    assert _results(loaded) == 1


def test_reconciler_requeues_lost_runs_and_gives_up_after_max_tries(
    loaded: sessionmaker[Session], settings: Settings, learner: Account
) -> None:
    queue = RecordingQueue()
    run_id = _submit(loaded, settings, learner, queue)
    queue.sent.clear()
    long_ago = utcnow() - timedelta(hours=1)
    for attempt in (1, 2):
        with loaded() as session:
            assert (
                claim_run(session, run_id, worker=f"w{attempt}", lease_seconds=60, now=long_ago) is not None
            )
        with loaded() as session:
            report = reconcile(session, queue, lease_seconds=60, max_tries=2)
        if attempt == 1:
            assert report.requeued == (run_id,) and queue.sent == [(run_id, "quiz")]
        else:
            assert report.failed == (run_id,)
    with loaded() as session:
        run = session.get(GradingRun, run_id)
        assert run is not None and run.status == "error" and run.tries == 2
        assert "gave up after 2 tries" in (run.last_error or "")
        assert run.submission.status == "error"


def test_reconciler_sends_runs_the_broker_never_got(
    loaded: sessionmaker[Session], settings: Settings, learner: Account
) -> None:
    class DownQueue(RecordingQueue):
        def enqueue_grading(self, run_id: str, queue: str) -> None:
            raise ConnectionError("down")

    run_id = _submit(loaded, settings, learner, DownQueue())
    queue = RecordingQueue()
    with loaded() as session:
        report = reconcile(session, queue, lease_seconds=60, max_tries=3)
    assert report.requeued == (run_id,) and queue.sent == [(run_id, "quiz")]
    assert process_run(loaded, run_id, default_graders(), worker="w", lease_seconds=60) == RunOutcome.GRADED


def test_award_is_recorded_once_and_suspended_when_a_pass_is_withdrawn(
    loaded: sessionmaker[Session], settings: Settings
) -> None:
    from tests.conftest import make_account

    account = make_account(loaded, "solo@example.org", programs=("other-program",))
    run_id = _submit(loaded, settings, account, RecordingQueue())
    assert process_run(loaded, run_id, default_graders(), worker="w", lease_seconds=60) == RunOutcome.GRADED
    with loaded() as session:
        award = session.scalars(select(CredentialAward)).one()
        assert award.status == "awarded" and award.evidence[0]["assessment"] == "basics"
        # A regrade that fails the only passing submission puts the credential on hold (not withdrawn:
        # passing again lifts it; only staff revoke).
        result = session.scalars(select(Result)).one()
        result.passed = False
        from grader.services.progress import update_awards

        update_awards(
            session, account.id, session.get(Submission, result.submission_id).assessment_id, actor="test"
        )  # type: ignore[union-attr]
        session.commit()
        assert session.scalars(select(CredentialAward)).one().status == "suspended"


def test_the_migrations_build_exactly_the_models(sessions: sessionmaker[Session]) -> None:
    """An empty autogenerate diff: a model change without its migration fails here, on both databases."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from grader.models import Base

    bind = sessions.kw["bind"]
    with bind.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
