"""Admission control per queue: a bound on waiting runs, 503 with Retry-After, open again as runs drain."""

from __future__ import annotations

from dataclasses import replace

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from tests.conftest import bearer, make_account
from tests.support.catalogs import BASICS_ANSWERS
from tests.support.reviewed import run_queued


def test_the_queue_admits_up_to_its_bound_then_answers_503_until_a_run_is_graded(
    settings: Settings, loaded: sessionmaker[Session]
) -> None:
    from grader.web import create_app

    queue = RecordingQueue()
    bounded = replace(settings, queue_admission_limit=2)
    client: FlaskClient = create_app(bounded, queue=queue).test_client()
    learners = [make_account(loaded, f"l{n}@example.org", programs=("test-program",)) for n in range(3)]
    body = {"assessment": "basics", "answers": BASICS_ANSWERS}

    def hand_in(n: int) -> int:
        return client.post("/api/v1/submissions", json=body, headers=bearer(learners[n])).status_code

    assert [hand_in(0), hand_in(1)] == [202, 202]
    refused = client.post("/api/v1/submissions", json=body, headers=bearer(learners[2]))
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "60"
    assert refused.get_json()["error"]["details"]["queue"] == "quiz"
    run_queued(queue, loaded, bounded)
    assert hand_in(2) == 202
