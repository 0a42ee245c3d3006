"""Repository intake under gunicorn while git is slow: a quiz is still answered at once, the repository
hand-ins past the git slots are told 503 with Retry-After naming git, and nothing is half-recorded.

A real gunicorn (one gthread worker with four threads) serves the app; the repositories live on the
loopback git server, whose ref listing (`git-upload-pack`) is held until the test lets it go.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.models import GradingRun, Submission
from tests.conftest import Account, bearer, make_account
from tests.support.catalogs import BASICS_ANSWERS, write_catalog
from tests.support.gitserver import GitServer
from tests.support.reviewed import write_repository_catalog
from tests.support.services import ROOT, free_port, wait_for_port

pytestmark = [pytest.mark.git, pytest.mark.slow]

WAIT_FOR_SLOT_SECONDS = 2.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    data_dir = tmp_path / "var"
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'grader.db'}",
        secret_key="test-secret-key",
        catalog_path=tmp_path / "catalog",
        git_allow_insecure_loopback=True,
        git_clone_timeout_seconds=60,
        intake_git_slots=1,
        intake_git_waiting=1,
        intake_git_wait_seconds=WAIT_FOR_SLOT_SECONDS,
    )


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    write_catalog(settings.catalog_path)
    return write_repository_catalog(settings.catalog_path)


@pytest.fixture
def git_server(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path / "git") as server:
        yield server


@pytest.fixture
def web(tmp_path: Path, settings: Settings, loaded: sessionmaker[Session]) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, **settings.to_env(), "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:grader.entrypoints.gunicorn_conf",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--worker-class",
        "gthread",
        "--threads",
        "4",
        "--timeout",
        "120",
        "grader.entrypoints.wsgi:app",
    ]
    with open(tmp_path / "gunicorn.log", "ab") as log:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def hand_in_repository(base: str, learner: Account, url: str) -> requests.Response:
    return requests.post(
        f"{base}/api/v1/submissions",
        json={"assessment": "reviewed-repo", "git_url": url, "ref": "main"},
        headers=bearer(learner),
        timeout=60,
    )


def wait_until(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_while_git_is_slow_quizzes_are_answered_and_extra_repositories_are_told_to_retry(
    web: str, git_server: GitServer, loaded: sessionmaker[Session]
) -> None:
    learners = [
        make_account(loaded, f"l{n}@example.org", programs=("repo-program", "test-program")) for n in range(6)
    ]
    commit = git_server.commit("work", {"app.py": "x = 1\n", "README.md": "# mine\n"})
    url = git_server.url("work")
    git_server.hang_on = "git-upload-pack"  # the ref listing stalls: `git ls-remote` hangs

    pool = ThreadPoolExecutor(max_workers=4)
    try:
        # Four repository hand-ins at once, as many as the web process has threads.
        started = time.monotonic()
        pending: list[Future[requests.Response]] = [
            pool.submit(hand_in_repository, web, learner, url) for learner in learners[:4]
        ]
        # One holds the git slot, one waits for it; the other two are refused at once.
        first_answered = _first_done(pending, 2, timeout=10)
        assert time.monotonic() - started < WAIT_FOR_SLOT_SECONDS
        for answer in (f.result() for f in first_answered):
            assert answer.status_code == 503, answer.text
            assert int(answer.headers["Retry-After"]) >= 1
            error = answer.json()["error"]
            assert error["code"] == "service_unavailable"
            assert "git" in error["message"] and "retry" in error["message"]
            assert error["details"]["busy"] == "git_intake"
        wait_until(lambda: any("git-upload-pack" in p for p in git_server.requests), 10, "ls-remote")

        # The git slot is taken and a hand-in waits for it: a quiz is answered at once all the same.
        quiz_started = time.monotonic()
        quiz = requests.post(
            f"{web}/api/v1/submissions",
            json={"assessment": "basics", "answers": BASICS_ANSWERS},
            headers=bearer(learners[4]),
            timeout=30,
        )
        quiz_seconds = time.monotonic() - quiz_started
        assert quiz.status_code == 202, quiz.text
        assert quiz_seconds < 1.0, f"the quiz waited {quiz_seconds:.2f} s behind git"

        # The one waiting for a slot gives up after the bounded wait, told to retry.
        waited = [f for f in pending if f not in first_answered]
        [gave_up] = _first_done(waited, 1, timeout=30)
        assert gave_up.result().status_code == 503
        assert "git" in gave_up.result().json()["error"]["message"]
        assert time.monotonic() - started >= WAIT_FOR_SLOT_SECONDS
        [holder] = [f for f in waited if f is not gave_up]
        assert not holder.done()

        # Git answers again: the hand-in holding the slot is accepted, its commit pinned in the receipt.
        git_server.hang_on = ""
        accepted = holder.result(timeout=60)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["receipt"]["commit"] == commit

        # Nothing half-recorded: the refused hand-ins left no submission and no run behind.
        with loaded() as session:
            repositories = session.scalar(
                select(func.count(Submission.id)).where(Submission.kind == "repository")
            )
            runs = session.scalar(select(func.count(GradingRun.id)).where(GradingRun.queue == "sandbox"))
        assert (repositories, runs) == (1, 1)

        # The slot is free again: the next hand-in goes straight through.
        again = hand_in_repository(web, learners[5], url)
        assert again.status_code == 202, again.text
        assert again.json()["receipt"]["commit"] == commit
    finally:
        git_server.hang_on = ""
        pool.shutdown(wait=True)


def _first_done(
    futures: list[Future[requests.Response]], count: int, *, timeout: float
) -> list[Future[requests.Response]]:
    """The first `count` futures to finish, in the order they finished."""
    done: list[Future[requests.Response]] = []
    lock = threading.Lock()
    finished = threading.Event()

    def note(future: Future[requests.Response]) -> None:
        with lock:
            if len(done) < count:
                done.append(future)
            if len(done) >= count:
                finished.set()

    for future in futures:
        future.add_done_callback(note)
    assert finished.wait(timeout), "fewer hand-ins than expected were answered"
    return done[:count]
