"""Fair repository queues: one running run per learner, first attempts ahead of resubmissions, and the
queue position the learner is shown counted in that same order.

The order is checked through the API (positions) and with real Celery prefork workers on a real Redis
(start order, overlap), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.broker import CeleryTaskQueue
from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.models import GradingRun
from grader.web import create_app
from tests.conftest import Account, bearer, make_account
from tests.integration.test_operations import wait_for
from tests.support.catalogs import write_catalog
from tests.support.reviewed import hand_in, run_queued, write_repository_catalog
from tests.support.services import RedisServer, WorkerProcess, postgres_database, redis_server

GRADE_SECONDS = 2.0


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    write_catalog(settings.catalog_path)
    return write_repository_catalog(settings.catalog_path)


def learners(loaded: sessionmaker[Session]) -> tuple[Account, Account]:
    return (
        make_account(loaded, "ada@example.org", programs=("repo-program",)),
        make_account(loaded, "bob@example.org", programs=("repo-program",)),
    )


def position(client: FlaskClient, account: Account, submission_id: str) -> object:
    answer = client.get(f"/api/v1/submissions/{submission_id}", headers=bearer(account))
    assert answer.status_code == 200
    return answer.get_json()["queue_position"]


def started_order(loaded: sessionmaker[Session]) -> list[tuple[str, object, object]]:
    with loaded() as session:
        rows = session.execute(
            select(GradingRun.submission_id, GradingRun.started_at, GradingRun.finished_at)
            .where(GradingRun.queue == "sandbox", GradingRun.started_at.is_not(None))
            .order_by(GradingRun.started_at)
        ).all()
    return [(row.submission_id, row.started_at, row.finished_at) for row in rows]


def test_a_first_attempt_waits_ahead_of_a_resubmission_in_position_and_in_the_order_of_grading(
    client: FlaskClient, loaded: sessionmaker[Session], queue: RecordingQueue, settings: Settings
) -> None:
    ada, bob = learners(loaded)
    first = hand_in(client, ada)
    run_queued(queue, loaded, settings)  # Ada's first attempt is graded
    resubmission = hand_in(client, ada, {"app.py": "x = 2\n", "README.md": "# again\n"})
    bobs_first = hand_in(client, bob)
    # Bob handed in later, but his first attempt goes before Ada's second.
    assert position(client, bob, bobs_first) == 1
    assert position(client, ada, resubmission) == 2
    run_queued(queue, loaded, settings)  # Ada's message comes first; the worker takes Bob's run for it
    assert [s for s, _, _ in started_order(loaded)] == [first, bobs_first, resubmission]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield ""
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
def test_real_workers_never_run_two_of_a_learners_runs_at_once_and_start_first_attempts_first(
    tmp_path: Path, settings: Settings, loaded: sessionmaker[Session], redis: RedisServer
) -> None:
    settings = Settings(**{**settings.__dict__, "broker_url": redis.url, "lease_seconds": 10})
    app: Flask = create_app(settings, queue=CeleryTaskQueue(settings))
    client = app.test_client()
    ada, bob = learners(loaded)
    worker = WorkerProcess(
        env={**settings.to_env(), "GRADER_TEST_GRADE_DELAY": str(GRADE_SECONDS)},
        log_path=tmp_path / "worker.log",
        app="tests.support.fair_worker",
        concurrency=2,  # two sandbox slots: a second of Ada's runs would have a free one
    )
    worker.start()
    try:
        first = hand_in(client, ada)
        wait_for(lambda: len(started_order(loaded)) == 1, 20, "Ada's first run to start")
        # While it runs: Ada hands in again (a free slot gets the message), then Bob for the first time.
        resubmission = hand_in(client, ada, {"app.py": "x = 2\n", "README.md": "# again\n"})
        bobs_first = hand_in(client, bob)
        wait_for(lambda: sum(f is not None for _, _, f in started_order(loaded)) == 3, 40, "three results")
    finally:
        worker.stop()
    runs = started_order(loaded)
    assert [s for s, _, _ in runs] == [first, bobs_first, resubmission], worker.log_tail()
    adas = [(s, f) for submission, s, f in runs if submission in (first, resubmission)]
    assert adas[0][1] <= adas[1][0], "Ada had two runs running at once"
