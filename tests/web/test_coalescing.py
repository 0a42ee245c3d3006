"""A hand-in still waiting when the learner hands in again is replaced: the newer one is graded, once."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.models import AuditEvent, GradingRun, Result, Submission
from grader.services.grading import claim_run
from tests.conftest import Account, bearer, make_account
from tests.support.catalogs import BASICS_ANSWERS, write_catalog
from tests.support.reviewed import hand_in, run_queued, write_repository_catalog


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    write_catalog(settings.catalog_path)
    return write_repository_catalog(settings.catalog_path)


@pytest.fixture
def learner(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "ada@example.org", programs=("repo-program", "test-program"))


def view(client: FlaskClient, account: Account, submission_id: str) -> dict[str, object]:
    response = client.get(f"/api/v1/submissions/{submission_id}", headers=bearer(account))
    assert response.status_code == 200
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def test_a_newer_hand_in_replaces_the_waiting_one_and_only_the_newer_is_graded(
    client: FlaskClient,
    learner: Account,
    loaded: sessionmaker[Session],
    queue: RecordingQueue,
    settings: Settings,
) -> None:
    older = hand_in(client, learner, {"app.py": "x = 1\n", "README.md": "# first\n"})
    newer = hand_in(client, learner, {"app.py": "x = 2\n", "README.md": "# second\n"})
    assert view(client, learner, older)["status"] == "superseded"
    run_queued(queue, loaded, settings)  # both messages are delivered; the older run is skipped
    with loaded() as session:
        results = session.scalars(select(Result)).all()
        assert [r.submission_id for r in results] == [newer]
        replaced = session.get(Submission, older)
        assert replaced is not None and replaced.charged is False  # no attempt spent on it
        run = session.scalars(select(GradingRun).where(GradingRun.submission_id == older)).one()
        assert run.status == "superseded" and newer in (run.last_error or "")
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "submission.superseded")).all()
        assert [e.submission_id for e in events] == [older]
    assert view(client, learner, newer)["status"] == "needs_review"


def test_a_hand_in_already_being_graded_is_graded_as_usual(
    client: FlaskClient,
    learner: Account,
    loaded: sessionmaker[Session],
    queue: RecordingQueue,
    settings: Settings,
) -> None:
    first = hand_in(client, learner)
    with loaded() as session:
        run_id = session.scalars(select(GradingRun.id).where(GradingRun.submission_id == first)).one()
        assert claim_run(session, run_id, worker="busy", lease_seconds=60) is not None
    second = hand_in(client, learner)
    assert view(client, learner, first)["status"] == "grading"
    assert view(client, learner, second)["status"] == "queued"


def test_quiz_attempts_are_never_coalesced(
    client: FlaskClient,
    learner: Account,
    loaded: sessionmaker[Session],
    queue: RecordingQueue,
    settings: Settings,
) -> None:
    body = {"assessment": "basics", "answers": BASICS_ANSWERS}
    ids = [
        client.post("/api/v1/submissions", json=body, headers=bearer(learner)).get_json()["id"]
        for _ in range(2)
    ]
    run_queued(queue, loaded, settings)
    with loaded() as session:
        assert sorted(r.submission_id for r in session.scalars(select(Result))) == sorted(ids)
