"""Real Redis, real Celery worker processes: grading end to end, crashes, duplicates, lost messages."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from grader.broker import CeleryTaskQueue
from grader.config import Settings
from grader.models import AuditEvent, CredentialAward, GradingRun, IssuedCredential, Result, utcnow
from grader.services.reconciler import reconcile
from tests.conftest import Account, bearer, make_account
from tests.support.catalogs import BASICS_ANSWERS
from tests.support.databases import sqlite_and_postgres  # noqa: F401 - runs each test on both
from tests.support.services import RedisServer, WorkerProcess, redis_server
from tests.support.statements import StatementLog
from tests.support.worker_stack import broker_settings, worker_factory

pytestmark = [pytest.mark.redis, pytest.mark.slow]
LEASE_SECONDS = 3


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis: RedisServer) -> Settings:
    return broker_settings(
        tmp_path,
        database_url,
        redis,
        lease_seconds=LEASE_SECONDS,
    )


@pytest.fixture
def queue(settings: Settings) -> CeleryTaskQueue:  # type: ignore[override]
    return CeleryTaskQueue(settings)


@pytest.fixture
def make_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    with worker_factory(settings, tmp_path) as make:
        yield make


def submit(client: FlaskClient, account: Account) -> str:
    response = client.post(
        "/api/v1/submissions",
        json={"assessment": "basics", "answers": BASICS_ANSWERS},
        headers=bearer(account),
    )
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["id"])


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, tick: Callable[[], None] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if tick is not None:
            tick()
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def results_for(sessions: sessionmaker[Session], submission_id: str) -> list[Result]:
    with sessions() as session:
        return list(session.scalars(select(Result).where(Result.submission_id == submission_id)))


def the_run(sessions: sessionmaker[Session], submission_id: str) -> GradingRun:
    with sessions() as session:
        return session.scalars(select(GradingRun).where(GradingRun.submission_id == submission_id)).one()


def hand_in_preferring(client: FlaskClient, account: Account, prefer: str) -> TestResponse:
    return client.post(
        "/api/v1/submissions",
        json={"assessment": "basics", "answers": BASICS_ANSWERS},
        headers={**bearer(account), "Prefer": prefer},
    )


def test_a_hand_in_that_prefers_to_wait_answers_with_its_result_in_one_request(
    client: FlaskClient,
    learner: Account,
    loaded: sessionmaker[Session],
    make_worker: Callable[..., WorkerProcess],
) -> None:
    make_worker().start()  # a few seconds to be up: well inside the wait
    response = hand_in_preferring(client, learner, "respond-async, wait=20")
    assert response.status_code == 201, response.get_json()
    assert response.headers["Preference-Applied"] == "wait=20"
    view = response.get_json()["submission"]
    assert view["status"] == "graded" and view["result"]["passed"] is True
    assert len(results_for(loaded, view["id"])) == 1


def test_a_hand_in_that_prefers_to_wait_is_answered_202_when_the_wait_ends_first(
    client: FlaskClient, learner: Account
) -> None:
    started = time.monotonic()
    response = hand_in_preferring(client, learner, "wait=0.5")
    assert response.status_code == 202 and "submission" not in response.get_json()
    assert response.headers["Preference-Applied"] == "wait=0.5"
    assert time.monotonic() - started >= 0.5  # no worker runs: it was held the whole wait


def test_a_real_worker_grades_a_quiz_end_to_end(
    client: FlaskClient,
    learner: Account,
    loaded: sessionmaker[Session],
    make_worker: Callable[..., WorkerProcess],
) -> None:
    make_worker().start()
    submission_id = submit(client, learner)
    wait_for(lambda: bool(results_for(loaded, submission_id)), 30, "the result")
    view = client.get(f"/api/v1/submissions/{submission_id}", headers=bearer(learner)).get_json()
    assert view["status"] == "graded" and view["result"]["passed"] is True
    assert the_run(loaded, submission_id).tries == 1


def test_sigkilled_worker_run_completes_exactly_once(
    client: FlaskClient,
    learner: Account,
    loaded: sessionmaker[Session],
    settings: Settings,
    queue: CeleryTaskQueue,
    make_worker: Callable[..., WorkerProcess],
) -> None:
    doomed = make_worker("tests.support.slow_worker", GRADER_TEST_GRADE_DELAY="30")
    doomed.start()
    submission_id = submit(client, learner)
    run_id = the_run(loaded, submission_id).id
    marker = settings.data_dir / f"grading-{run_id}"
    wait_for(marker.exists, 30, "the worker to start grading")
    doomed.kill()  # SIGKILL to the whole worker: main process and pool child
    assert the_run(loaded, submission_id).status == "running"
    assert results_for(loaded, submission_id) == []

    make_worker("tests.support.slow_worker", GRADER_TEST_GRADE_DELAY="0.5").start()

    def reconcile_once() -> None:
        with loaded() as session:
            reconcile(session, queue, lease_seconds=settings.lease_seconds, max_tries=3)

    wait_for(lambda: bool(results_for(loaded, submission_id)), 60, "the run to complete", tick=reconcile_once)
    time.sleep(2)  # give any stray duplicate a chance to (wrongly) write a second result
    assert len(results_for(loaded, submission_id)) == 1
    run = the_run(loaded, submission_id)
    assert run.status == "done" and run.tries == 2


def test_the_same_run_delivered_twice_gives_one_result(
    client: FlaskClient,
    learner: Account,
    loaded: sessionmaker[Session],
    queue: CeleryTaskQueue,
    make_worker: Callable[..., WorkerProcess],
) -> None:
    submission_id = submit(client, learner)  # sent once by intake, no worker yet
    run_id = the_run(loaded, submission_id).id
    queue.enqueue_grading(run_id, "quiz")  # and once more, as a redelivery would
    assert queue.pending_count("quiz") == 2
    make_worker().start()
    wait_for(lambda: queue.pending_count("quiz") == 0, 30, "both messages to be consumed")
    wait_for(lambda: the_run(loaded, submission_id).status == "done", 30, "the run to finish")
    time.sleep(1)
    assert len(results_for(loaded, submission_id)) == 1
    assert the_run(loaded, submission_id).tries == 1


def test_redis_restart_keeps_queued_work_and_reconciler_recovers_lost_messages(
    client: FlaskClient,
    learner: Account,
    loaded: sessionmaker[Session],
    settings: Settings,
    redis: RedisServer,
    queue: CeleryTaskQueue,
    make_worker: Callable[..., WorkerProcess],
) -> None:
    import signal

    import redis as redis_client

    kept = submit(client, learner)
    redis.stop(signal.SIGKILL)  # a crash: only the append-only file survives
    redis.start()
    assert queue.pending_count("quiz") == 1

    lost = submit(client, learner)
    # A broker that lost a message (kombu pushes on the left and pops on the right).
    assert redis_client.Redis.from_url(redis.url).lpop("quiz") is not None
    assert queue.pending_count("quiz") == 1

    make_worker().start()
    wait_for(lambda: bool(results_for(loaded, kept)), 30, "the kept run")
    assert results_for(loaded, lost) == []

    def reconcile_once() -> None:
        with loaded() as session:
            # A lease's worth of time has not passed in this test: pretend it has.
            reconcile(session, queue, lease_seconds=0, max_tries=3)

    wait_for(lambda: bool(results_for(loaded, lost)), 30, "the lost run", tick=reconcile_once)
    with loaded() as session:
        assert session.scalar(select(func.count(Result.id))) == 2


def the_credential_of(sessions: sessionmaker[Session], account: Account) -> IssuedCredential | None:
    with sessions() as session:
        credential = session.scalars(
            select(IssuedCredential).join(CredentialAward).where(CredentialAward.user_id == account.id)
        ).one_or_none()
        if credential is not None:
            session.expunge(credential)
        return credential


def test_a_real_worker_signs_the_credential_a_grade_earns_once_even_when_told_twice(
    client: FlaskClient,
    loaded: sessionmaker[Session],
    settings: Settings,
    queue: CeleryTaskQueue,
    make_worker: Callable[..., WorkerProcess],
) -> None:
    holder = make_account(loaded, "holder@example.org", programs=("other-program",))
    make_worker().start()
    submit(client, holder)

    def signed() -> bool:
        credential = the_credential_of(loaded, holder)
        return credential is not None and credential.status == "active"

    wait_for(signed, 60, "the worker to sign the credential")
    credential = the_credential_of(loaded, holder)
    assert credential is not None and credential.jwt is not None
    queue.enqueue_issue(credential.id)  # a duplicate delivery
    queue.enqueue_issue(credential.id)
    time.sleep(3)
    again = the_credential_of(loaded, holder)
    assert again is not None and again.document == credential.document
    with loaded() as session:
        issued_events = session.scalar(
            select(func.count(AuditEvent.id)).where(AuditEvent.action == "credential.issued")
        )
    assert issued_events == 1
    progress = client.get("/api/v1/programs/other-program/progress", headers=bearer(holder)).get_json()
    assert progress["credential"]["url"].endswith(f"/credentials/{credential.id}")


def test_a_worker_killed_while_signing_leaves_the_credential_to_the_next_one(
    client: FlaskClient,
    loaded: sessionmaker[Session],
    settings: Settings,
    queue: CeleryTaskQueue,
    make_worker: Callable[..., WorkerProcess],
) -> None:
    holder = make_account(loaded, "holder@example.org", programs=("other-program",))
    doomed = make_worker("tests.support.slow_signing_worker", GRADER_TEST_SIGN_DELAY="60")
    doomed.start()
    submit(client, holder)
    wait_for(lambda: the_credential_of(loaded, holder) is not None, 60, "the award")
    credential = the_credential_of(loaded, holder)
    assert credential is not None
    wait_for((settings.data_dir / f"signing-{credential.id}").exists, 60, "the worker to start signing")
    doomed.kill()
    pending = the_credential_of(loaded, holder)
    assert pending is not None and pending.status == "pending" and pending.document is None

    make_worker().start()

    def reconcile_later() -> None:
        with loaded() as session:
            reconcile(
                session, queue, lease_seconds=LEASE_SECONDS, max_tries=3, now=utcnow() + timedelta(minutes=2)
            )

    wait_for(
        lambda: (c := the_credential_of(loaded, holder)) is not None and c.status == "active",
        60,
        "the credential to be signed by the second worker",
        tick=reconcile_later,
    )
    with loaded() as session:
        assert session.scalar(select(func.count(IssuedCredential.id))) == 1


def test_a_long_poll_answers_when_the_result_is_written_not_when_it_times_out(
    client: FlaskClient,
    learner: Account,
    loaded: sessionmaker[Session],
    make_worker: Callable[..., WorkerProcess],
) -> None:
    make_worker("tests.support.slow_worker", GRADER_TEST_GRADE_DELAY="2").start()
    submission_id = submit(client, learner)
    started = time.monotonic()
    looks = StatementLog()
    looks.attach()
    try:
        view = client.get(f"/api/v1/submissions/{submission_id}?wait=30", headers=bearer(learner)).get_json()
    finally:
        looks.detach()
    waited = time.monotonic() - started
    assert view["status"] == "graded" and view["result"]["passed"] is True
    assert waited < 25, f"answered after {waited:.1f} s: at the timeout, not at the result"
    # The worker's announcement on Redis woke the request: it looked at the database a few times,
    # not every fraction of a second while the grading took its two seconds.
    status_looks = [sql for sql in looks.statements if sql.startswith("SELECT submissions.status FROM")]
    assert len(status_looks) <= 3, status_looks
    # Once graded, a long poll does not wait at all.
    again = client.get(f"/api/v1/submissions/{submission_id}?wait=30", headers=bearer(learner))
    assert again.status_code == 200 and again.get_json()["status"] == "graded"
