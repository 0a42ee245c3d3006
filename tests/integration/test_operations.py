"""Operations on the real processes: a Celery prefork worker on a real Redis serving its metrics and
logging each grading's lines with their ids, `grader worker-ready` as a container's healthcheck runs it,
and gunicorn with two workers whose counts add up in one scrape and whose JSON lines hold no secret.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.broker import CeleryTaskQueue
from grader.config import Settings
from grader.models import CredentialAward, GradingRun, IssuedCredential
from tests.conftest import PASSWORD, Account, bearer, make_account
from tests.support.catalogs import BASICS_ANSWERS
from tests.support.metrics import count, scrape, value
from tests.support.services import ROOT, RedisServer, WorkerProcess, free_port, redis_server, wait_for_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, redis: RedisServer) -> Settings:
    data_dir = tmp_path / "var"
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'grader.db'}",
        broker_url=redis.url,
        secret_key="test-secret-key",
        catalog_path=tmp_path / "catalog",
        lease_seconds=5,
    )


@pytest.fixture
def queue(settings: Settings) -> CeleryTaskQueue:  # type: ignore[override]
    return CeleryTaskQueue(settings)


@pytest.fixture
def make_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def make(**env: str) -> WorkerProcess:
        worker = WorkerProcess(env={**settings.to_env(), **env}, log_path=tmp_path / "worker.log")
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The log's JSON lines (Celery prints its banner to stdout as text, before any of them)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def signed_credential(sessions: sessionmaker[Session], account: Account) -> IssuedCredential | None:
    with sessions() as session:
        return session.scalars(
            select(IssuedCredential)
            .join(CredentialAward)
            .where(CredentialAward.user_id == account.id, IssuedCredential.status == "active")
        ).one_or_none()


def test_a_real_worker_serves_the_named_series_and_logs_every_line_of_a_grading_with_its_ids(
    client: FlaskClient,
    loaded: sessionmaker[Session],
    make_worker: Callable[..., WorkerProcess],
) -> None:
    port = free_port()
    worker = make_worker(GRADER_WORKER_METRICS_PORT=str(port), GRADER_LOG_FORMAT="json")
    worker.start()
    web_before = client.get("/metrics").get_data(as_text=True)
    holder = make_account(loaded, "holder@example.org", programs=("other-program",))
    response = client.post(
        "/api/v1/submissions",
        json={"assessment": "basics", "answers": BASICS_ANSWERS},
        headers=bearer(holder),
    )
    assert response.status_code == 202
    submission_id = response.get_json()["id"]
    # Passing the program's one quiz earns its credential: the worker signs it next.
    wait_for(lambda: signed_credential(loaded, holder) is not None, 60, "the graded quiz and its credential")

    served = scrape(f"http://127.0.0.1:{port}/metrics")
    assert count(served, "grader_submissions_graded_total", kind="quiz", outcome="passed") == 1
    assert count(served, "grader_run_wait_seconds_count", queue="quiz") == 1
    assert count(served, "grader_run_duration_seconds_count", queue="quiz") == 1
    assert count(served, "grader_run_wait_seconds_bucket", queue="quiz", le="+Inf") == 1
    assert count(served, "grader_credentials_total", action="issued") == 1
    # The web app's side: the intake it took, and the queue as the database has it now.
    web = client.get("/metrics").get_data(as_text=True)
    assert count(web, "grader_submissions_received_total", kind="quiz") == (
        count(web_before, "grader_submissions_received_total", kind="quiz") + 1
    )
    assert value(web, "grader_queue_depth", queue="quiz") == 0
    assert value(web, "grader_runs_running", queue="quiz") == 0

    with loaded() as session:
        run_id = session.scalars(select(GradingRun.id).where(GradingRun.submission_id == submission_id)).one()
        credential = session.scalars(
            select(IssuedCredential.id).join(CredentialAward).where(CredentialAward.user_id == holder.id)
        ).one()
    lines = json_lines(worker.log_path)
    grading = [line for line in lines if line.get("run_id") == run_id]
    assert grading, "no line of the grading carries its run id"
    assert all(line.get("submission_id") == submission_id for line in grading)
    messages = " | ".join(line["message"] for line in grading)
    assert f"run {run_id}: graded" in messages  # the task's own line
    assert re.search(r"Task grader\.grade_run\[[^\]]+\] succeeded", messages)  # and Celery's
    signing = [line for line in lines if line.get("credential_id") == credential]
    assert any("succeeded" in line["message"] for line in signing)
    # A line of another task never carries this grading's ids.
    assert not any(line.get("run_id") == run_id for line in signing)


def test_worker_ready_answers_for_the_worker_on_this_host_and_says_why_not(
    loaded: sessionmaker[Session],
    settings: Settings,
    redis: RedisServer,
    make_worker: Callable[..., WorkerProcess],
) -> None:
    env = {**os.environ, **settings.to_env(), "PYTHONPATH": str(ROOT)}

    def worker_ready() -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "grader.entrypoints.cli", "worker-ready", "--timeout", "1"]
        return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)

    alone = worker_ready()
    assert alone.returncode == 1
    assert "did not answer a ping within 1 s" in alone.stderr and "Traceback" not in alone.stderr

    make_worker().start()
    ready = worker_ready()
    assert ready.returncode == 0, ready.stderr
    assert re.search(r"ready: test-\w+@\S+ answered; database reachable, broker reachable", ready.stdout)

    redis.stop()
    down = worker_ready()
    assert down.returncode == 1
    assert "not ready: broker: the broker refused the connection (ConnectionError)" in down.stderr
    assert "Traceback" not in down.stderr


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    assert match is not None
    return match.group(1)


def test_gunicorn_workers_add_up_in_one_scrape_and_their_json_lines_hold_no_secret(
    tmp_path: Path, loaded: sessionmaker[Session], settings: Settings
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **settings.to_env(), "GRADER_LOG_FORMAT": "json", "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = tmp_path / "gunicorn.log"
    learners = [
        make_account(loaded, f"learner{i}@example.org", programs=("test-program",)) for i in range(16)
    ]
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:grader.entrypoints.gunicorn_conf",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--worker-class",
        "gthread",
        "--threads",
        "2",
        "--access-logfile",
        "-",
        "grader.entrypoints.wsgi:app",
    ]
    with open(log_path, "ab") as log:
        gunicorn = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    folder = Path("/tmp") / f"grader-metrics-web-{gunicorn.pid}"
    try:
        wait_for_port(port, timeout=30)
        wait_for(lambda: requests.get(f"{base}/readyz", timeout=5).status_code == 200, 30, "/readyz")

        def served_by() -> set[int]:
            return {
                line["process"]
                for line in json_lines(log_path)
                if line["logger"] == "gunicorn.access" and '"POST /api/v1/submissions' in line["message"]
            }

        handed_in = 0
        for learner in learners:
            answer = requests.post(
                f"{base}/api/v1/submissions",
                json={"assessment": "basics", "answers": BASICS_ANSWERS},
                headers={**bearer(learner), "Connection": "close"},
                timeout=10,
            )
            assert answer.status_code == 202, answer.text
            handed_in += 1
            if handed_in >= 6 and len(served_by()) == 2:
                break
        assert len(served_by()) == 2, "one gunicorn worker took every submission: nothing to add up"
        for _ in range(4):  # whichever worker answers the scrape, it shows both workers' counts
            text = requests.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=10).text
            assert count(text, "grader_submissions_received_total", kind="quiz") == handed_in
            assert value(text, "grader_queue_depth", queue="quiz") == handed_in
        assert folder.is_dir() and any(folder.glob("counter_*.db"))

        # A learner's day, with the mistakes clients make: the token in the URL, a password in a query.
        ada = learners[0]
        browser = requests.Session()
        token = csrf_token(browser.get(f"{base}/login", timeout=10).text)
        logged_in = browser.post(
            f"{base}/login",
            data={"email": ada.email, "password": PASSWORD, "csrf_token": token},
            allow_redirects=False,
            timeout=10,
        )
        assert logged_in.status_code == 302
        wrong = browser.post(
            f"{base}/login",
            data={"email": ada.email, "password": PASSWORD + "!", "csrf_token": token},
            allow_redirects=False,
            timeout=10,
        )
        assert wrong.status_code != 302
        assert requests.get(f"{base}/api/v1/me?access_token={ada.token}", headers=bearer(ada), timeout=10).ok
        assert requests.get(f"{base}/login?password={PASSWORD}", timeout=10).ok
        assert (
            requests.get(f"{base}/api/v1/me", headers={"Authorization": "Bearer gr_notatoken"}).status_code
            == 401
        )
    finally:
        os.killpg(gunicorn.pid, signal.SIGTERM)
        gunicorn.wait(timeout=30)

    written = log_path.read_text()
    for secret in (ada.token, PASSWORD, PASSWORD.replace(" ", "+"), PASSWORD.replace(" ", "%20")):
        assert secret not in written, f"{secret!r} is in gunicorn's log"
    lines = json_lines(log_path)
    assert len(lines) == len(written.splitlines()), "a line of gunicorn's log is not JSON"
    access = [line["message"] for line in lines if line["logger"] == "gunicorn.access"]
    assert any("GET /api/v1/me?access_token=[redacted]" in line for line in access)
    assert any("GET /login?password=[redacted]" in line for line in access)
    assert not folder.exists(), "gunicorn left its metrics folder behind"


def test_the_reconcilers_loop_serves_what_it_resent(
    client: FlaskClient,
    learner: Account,
    loaded: sessionmaker[Session],
    settings: Settings,
    redis: RedisServer,
    tmp_path: Path,
) -> None:
    response = client.post(
        "/api/v1/submissions",
        json={"assessment": "basics", "answers": BASICS_ANSWERS},
        headers=bearer(learner),
    )
    assert response.status_code == 202
    with loaded() as session:
        run = session.scalars(
            select(GradingRun).where(GradingRun.submission_id == response.get_json()["id"])
        ).one()
        run.enqueued_at = None
        session.commit()
    # The broker loses it (the reconciler sends again only what the broker no longer holds).
    import redis as redis_client

    assert redis_client.Redis.from_url(redis.url).delete("quiz") == 1
    port = free_port()
    env = {
        **os.environ,
        **settings.to_env(),
        "GRADER_WORKER_METRICS_PORT": str(port),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(tmp_path / "reconciler.log", "ab") as log:
        reconciler = subprocess.Popen(
            [sys.executable, "-m", "grader.entrypoints.cli", "reconcile", "--every", "0.5"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, timeout=30)

        def resent() -> bool:
            text = scrape(f"http://127.0.0.1:{port}/metrics")
            return count(text, "grader_reconciler_actions_total", action="resent") >= 1

        wait_for(resent, 30, "the reconciler to resend the lost run")
    finally:
        os.killpg(reconciler.pid, signal.SIGTERM)
        reconciler.wait(timeout=30)
    with loaded() as session:
        assert session.get(GradingRun, run.id).enqueued_at is not None  # type: ignore[union-attr]
