"""The quiz hot path's SQL budget: statements from hand-in to result, counted on the real app and the
worker's own code, for a learner with history (the award check must not walk it). A query added to
the path shows here as a number, with the statements listed; `bench/quiz_statements.py` prints the
same counts and `bench/quiz_throughput.py` what they cost under load."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.kinds import default_graders
from grader.services.grading import process_run
from tests.conftest import Account, bearer
from tests.support.catalogs import BASICS_ANSWERS
from tests.support.databases import sqlite_and_postgres  # noqa: F401 - runs each test on both
from tests.support.statements import StatementLog

# The targets: 12 queued. Inline grading writes the hand-in, its run, result and audit row in
# the intake's one transaction (7 statements with the token and the intake read) plus the award check;
# the quiz's feedback rule reads the learner's attempts to answer with the result.
QUEUED_BUDGET = 12
INLINE_BUDGET = 10
STATUS_GET_BUDGET = 4


@pytest.fixture
def statements() -> Iterator[StatementLog]:
    log = StatementLog()
    log.attach()
    yield log
    log.detach()


def _hand_in(client: FlaskClient, learner: Account) -> dict[str, object]:
    response = client.post(
        "/api/v1/submissions",
        json={"assessment": "basics", "answers": BASICS_ANSWERS},
        headers=bearer(learner),
    )
    assert response.status_code in (201, 202), response.get_json()
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def _listing(report: dict[str, tuple[int, int, list[str]]]) -> str:
    return "\n".join(f"{name}: {n}\n  " + "\n  ".join(sql) for name, (n, _, sql) in report.items())


def test_a_queued_quiz_costs_at_most_twelve_statements_from_hand_in_to_result(
    client: FlaskClient,
    learner: Account,
    loaded: sessionmaker[Session],
    settings: Settings,
    queue: RecordingQueue,
    statements: StatementLog,
) -> None:
    graders = default_graders(settings)
    _hand_in(client, learner)  # history: an earlier graded attempt
    process_run(loaded, queue.sent.pop()[0], graders, worker="test", lease_seconds=60)
    report: dict[str, tuple[int, int, list[str]]] = {}
    with statements.step("POST", report):
        body = _hand_in(client, learner)
    ((run_id, _),) = queue.sent
    with statements.step("worker", report):
        process_run(loaded, run_id, graders, worker="test", lease_seconds=60)
    with statements.step("GET", report):
        view = client.get(f"/api/v1/submissions/{body['id']}", headers=bearer(learner)).get_json()
    assert view["status"] == "graded" and view["result"]["passed"] is True
    assert report["POST"][0] + report["worker"][0] <= QUEUED_BUDGET, _listing(report)
    assert report["GET"][0] <= STATUS_GET_BUDGET, _listing(report)


def test_an_inline_quiz_costs_at_most_its_budget_and_answers_with_the_result(
    settings: Settings,
    loaded: sessionmaker[Session],
    learner: Account,
    queue: RecordingQueue,
    statements: StatementLog,
) -> None:
    from grader.web import create_app

    client = create_app(settings.with_overrides(quiz_grading="inline"), queue=queue).test_client()
    _hand_in(client, learner)
    report: dict[str, tuple[int, int, list[str]]] = {}
    with statements.step("POST", report):
        body = _hand_in(client, learner)
    submission = body["submission"]
    assert isinstance(submission, dict) and submission["result"]["passed"] is True
    assert queue.sent == []
    assert report["POST"][0] <= INLINE_BUDGET, _listing(report)
    # One commit writes hand-in, run and result; the other ends the read of the answer's view.
    assert report["POST"][1] <= 2, _listing(report)
