"""The reconciler at load, on real Redis and real Celery worker processes, SQLite and PostgreSQL.

It sends again only what the broker lost (not the runs a worker prefetched, not those waiting in the
queue), and only the tries a submission may have caused count toward its error limit: a worker
killed under its runs puts none of them in error, a submission that crashes its grading process
every time ends in error with the reason in words.
"""

from __future__ import annotations

import base64
import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis as redis_client
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.broker import CeleryTaskQueue
from grader.config import Settings
from grader.models import GradingRun, Result, RunStatus, Submission
from grader.services.reconciler import RESTART_MARGIN, ReconcileReport, reconcile
from tests.conftest import Account, bearer, make_account
from tests.support.catalogs import BASICS_ANSWERS
from tests.support.databases import sqlite_and_postgres  # noqa: F401 - runs each test on both
from tests.support.metrics import value
from tests.support.services import RedisServer, WorkerProcess, redis_server
from tests.support.worker_stack import broker_settings, worker_factory

pytestmark = [pytest.mark.redis, pytest.mark.slow]
LEASE_SECONDS = 3
MAX_TRIES = 3
FAULTY_WORKER = "tests.support.faulty_worker"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis: RedisServer) -> Settings:
    return broker_settings(
        tmp_path, database_url, redis, lease_seconds=LEASE_SECONDS, max_run_tries=MAX_TRIES
    )


@pytest.fixture
def queue(settings: Settings) -> CeleryTaskQueue:  # type: ignore[override]
    return CeleryTaskQueue(settings)


@pytest.fixture
def make_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    with worker_factory(settings, tmp_path, app=FAULTY_WORKER) as make:
        yield make


class Learners:
    """Hands in the basics quiz, each time as a new learner (a learner has only three attempts)."""

    def __init__(self, client: FlaskClient, sessions: sessionmaker[Session]) -> None:
        self.client, self.sessions, self.count = client, sessions, 0

    def new(self) -> Account:
        self.count += 1
        return make_account(self.sessions, f"learner{self.count}@example.org", programs=("test-program",))

    def submit(self, account: Account | None = None) -> str:
        response = self.client.post(
            "/api/v1/submissions",
            json={"assessment": "basics", "answers": BASICS_ANSWERS},
            headers=bearer(account or self.new()),
        )
        assert response.status_code == 202, response.get_json()
        return str(response.get_json()["id"])


@pytest.fixture
def learners(client: FlaskClient, loaded: sessionmaker[Session]) -> Learners:
    return Learners(client, loaded)


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


def runs_of(sessions: sessionmaker[Session], submission_ids: list[str]) -> dict[str, GradingRun]:
    """The one run of each submission, by submission id (detached: read after the session closes)."""
    with sessions() as session:
        runs = session.scalars(select(GradingRun).where(GradingRun.submission_id.in_(submission_ids))).all()
        session.expunge_all()
    assert len(runs) == len(submission_ids)
    return {run.submission_id: run for run in runs}


def results_per_submission(sessions: sessionmaker[Session], submission_ids: list[str]) -> dict[str, int]:
    with sessions() as session:
        results = session.scalars(select(Result).where(Result.submission_id.in_(submission_ids))).all()
    return {sid: sum(1 for r in results if r.submission_id == sid) for sid in submission_ids}


def reconcile_now(sessions: sessionmaker[Session], queue: CeleryTaskQueue, **options: int) -> ReconcileReport:
    with sessions() as session:
        return reconcile(
            session,
            queue,
            lease_seconds=options.get("lease_seconds", LEASE_SECONDS),
            max_tries=MAX_TRIES,
        )


def all_graded_once(sessions: sessionmaker[Session], submission_ids: list[str]) -> bool:
    runs = runs_of(sessions, submission_ids)
    return all(run.status == RunStatus.DONE for run in runs.values())


def test_a_backlog_prefetched_by_a_slow_worker_is_not_sent_again(
    learners: Learners,
    loaded: sessionmaker[Session],
    queue: CeleryTaskQueue,
    make_worker: Callable[..., WorkerProcess],
) -> None:
    make_worker(GRADER_TEST_GRADE_DELAY="2", GRADER_TEST_PREFETCH="4").start()
    submitted = [learners.submit() for _ in range(5)]
    # One is being graded; the worker holds the other four, unacknowledged: the queue's list is empty,
    # which is what made the reconciler think their messages were lost.
    wait_for(
        lambda: (
            queue.pending_count("quiz") == 0
            and sum(run.status == RunStatus.QUEUED for run in runs_of(loaded, submitted).values()) >= 3
        ),
        30,
        "the worker to prefetch the backlog",
    )
    report = reconcile_now(loaded, queue, lease_seconds=0)  # as if each had waited a lease already
    assert report.requeued == ()
    assert queue.pending_count("quiz") == 0
    wait_for(lambda: all_graded_once(loaded, submitted), 60, "the backlog to be graded")
    assert results_per_submission(loaded, submitted) == {sid: 1 for sid in submitted}
    assert {run.tries for run in runs_of(loaded, submitted).values()} == {1}


def _run_id_in(message: bytes) -> str:
    """The run id a Celery message in Redis carries: protocol 2, its body `[args, kwargs, embed]`."""
    body = json.loads(message)["body"]
    return str(json.loads(base64.b64decode(body))[0][0])


def test_after_a_redis_restart_only_the_lost_runs_are_sent_again(
    learners: Learners,
    loaded: sessionmaker[Session],
    redis: RedisServer,
    queue: CeleryTaskQueue,
    make_worker: Callable[..., WorkerProcess],
) -> None:
    make_worker(GRADER_TEST_GRADE_DELAY="4", GRADER_TEST_PREFETCH="2").start()
    before = [learners.submit() for _ in range(5)]
    # One being graded, one prefetched by the worker, three waiting in the list.
    wait_for(lambda: queue.pending_count("quiz") == 3, 30, "the worker to take its two")
    broker = redis_client.Redis.from_url(redis.url)
    taken = {_run_id_in(json.dumps(json.loads(raw)[0]).encode()) for raw in broker.hvals("unacked")}
    prefetched = {
        run.id for run in runs_of(loaded, before).values() if run.status == RunStatus.QUEUED
    } & taken
    assert len(prefetched) == 1
    worker_name = next(run.worker for run in runs_of(loaded, before).values() if run.worker)
    redis.stop(signal.SIGKILL)  # a crash: the append-only file keeps the list and the unacked messages
    while_down = [learners.submit() for _ in range(2)]  # their sends fail: only the database has them
    redis.start()
    # The broker loses one waiting message too (kombu pushes on the left and pops on the right).
    popped = redis_client.Redis.from_url(redis.url).lpop("quiz")
    assert isinstance(popped, bytes)
    # The reconciler passes every half minute; by then the worker has reconnected and answers.
    wait_for(lambda: bool(queue.live_workers([worker_name])), 30, "the worker to reconnect")

    runs = runs_of(loaded, before + while_down)
    # A worker that loses its broker drops what it had prefetched, and Redis gives such a message
    # back only after the visibility timeout (an hour): lost as well. The three others wait.
    lost = {runs[sid].id for sid in while_down} | {_run_id_in(popped)} | prefetched
    report = reconcile_now(loaded, queue, lease_seconds=0)  # as if each had waited a lease already
    assert sorted(report.requeued) == sorted(lost)
    again = reconcile_now(loaded, queue, lease_seconds=0)
    assert again.requeued == ()  # what was sent is in the broker now

    wait_for(lambda: all_graded_once(loaded, before + while_down), 90, "every run to be graded")
    assert results_per_submission(loaded, before + while_down) == {sid: 1 for sid in before + while_down}


def test_a_worker_killed_under_two_runs_three_times_puts_neither_in_error(
    learners: Learners,
    loaded: sessionmaker[Session],
    settings: Settings,
    queue: CeleryTaskQueue,
    make_worker: Callable[..., WorkerProcess],
) -> None:
    submitted = [learners.submit(), learners.submit()]

    def tick() -> None:
        reconcile_now(loaded, queue)

    for kill in range(1, MAX_TRIES + 1):
        doomed = make_worker(concurrency=2, GRADER_TEST_GRADE_DELAY="60")
        doomed.start()

        def both_grading(tries: int = kill) -> bool:
            runs = runs_of(loaded, submitted).values()
            return all(run.status == RunStatus.RUNNING and run.tries == tries for run in runs)

        wait_for(both_grading, 60, f"both runs to be claimed for the {kill}. time", tick=tick)
        doomed.kill()  # SIGKILL to the whole worker, main process and both pool processes
        for run in runs_of(loaded, submitted).values():
            assert run.status == RunStatus.RUNNING  # until its lease runs out
    make_worker(concurrency=2, GRADER_TEST_GRADE_DELAY="0.2").start()
    wait_for(lambda: all_graded_once(loaded, submitted), 60, "both runs to be graded", tick=tick)

    time.sleep(1)  # a stray duplicate would write its second result now
    assert results_per_submission(loaded, submitted) == {sid: 1 for sid in submitted}
    for run in runs_of(loaded, submitted).values():
        assert run.tries == MAX_TRIES + 1 and run.strikes == 0
    with loaded() as session:
        statuses = session.scalars(select(Submission.status).where(Submission.id.in_(submitted))).all()
    assert set(statuses) == {"graded"}


def test_a_submission_that_crashes_its_grading_process_each_time_ends_in_error_saying_why(
    learners: Learners,
    loaded: sessionmaker[Session],
    settings: Settings,
    queue: CeleryTaskQueue,
    make_worker: Callable[..., WorkerProcess],
) -> None:
    crasher = learners.new()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / f"crash-learner-{crasher.id}").touch()
    worker = make_worker(GRADER_TEST_GRADE_DELAY="0.2")
    worker.start()
    # The worker has been up a while: a claim this soon after its start could have been its restart.
    time.sleep(RESTART_MARGIN.total_seconds() + 1)
    crashing = learners.submit(crasher)

    def tick() -> None:
        reconcile_now(loaded, queue)

    wait_for(
        lambda: runs_of(loaded, [crashing])[crashing].status == RunStatus.ERROR,
        90,
        "the run to end in error",
        tick=tick,
    )
    run = runs_of(loaded, [crashing])[crashing]
    assert run.strikes == MAX_TRIES and run.tries == MAX_TRIES
    reason = run.last_error or ""
    assert f"gave up after {MAX_TRIES} tries that the submission may have caused" in reason
    assert "died while that worker kept running" in reason
    # The worker lived through it all and grades the next learner's submission.
    assert worker.process is not None and worker.process.poll() is None
    sound = learners.submit()
    wait_for(lambda: all_graded_once(loaded, [sound]), 30, "a sound submission to be graded", tick=tick)
    with loaded() as session:
        assert session.get(Submission, crashing).status == "error"  # type: ignore[union-attr]

    # Staff see it in the queue health with the reason and can retry it; the metric counts it.
    staff = make_account(loaded, "staff@example.org", role="reviewer", runs=("test-program",))
    health = learners.client.get("/api/v1/staff/queues", headers=bearer(staff)).get_json()
    shown = [e for e in health["errors"] if e["run"] == run.id]
    assert len(shown) == 1 and "died while that worker kept running" in shown[0]["last_error"]
    scraped = learners.client.get("/metrics").get_data(as_text=True)
    assert value(scraped, "grader_runs_in_error", queue="quiz") == 1
    retried = learners.client.post(f"/api/v1/staff/runs/{run.id}/retry", json={}, headers=bearer(staff))
    assert retried.status_code == 202, retried.get_json()
    # Once whatever crashed it is fixed, the retry (a new run, with no strikes) grades it.
    (settings.data_dir / f"crash-learner-{crasher.id}").unlink()
    wait_for(
        lambda: (
            learners.client.get(f"/api/v1/submissions/{crashing}", headers=bearer(crasher)).get_json()[
                "status"
            ]
            == "graded"
        ),
        60,
        "the retried run to be graded",
        tick=tick,
    )
