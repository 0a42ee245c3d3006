"""GRADER_QUIZ_GRADING=inline: a closed-form quiz graded inside its intake request, the result in the 201;
the queue mode unchanged; a fault while grading inline hands the run to the workers, losing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog.loader import read_catalog
from grader.config import Settings
from grader.errors import InvalidInput
from grader.interfaces import RecordingQueue
from grader.kinds import KINDS
from grader.kinds.quiz import QuizGrader
from grader.models import GradingRun, Result
from grader.services.reconciler import reconcile
from tests.conftest import Account, bearer
from tests.support.catalogs import BASICS_ANSWERS


@pytest.fixture
def inline_client(settings: Settings, loaded: sessionmaker[Session], queue: RecordingQueue) -> FlaskClient:
    from grader.web import create_app

    app = create_app(settings.with_overrides(quiz_grading="inline"), queue=queue)
    app.config["TESTING"] = True
    return app.test_client()


def hand_in(client: FlaskClient, learner: Account) -> tuple[int, dict[str, object]]:
    body = {"assessment": "basics", "answers": BASICS_ANSWERS}
    response = client.post("/api/v1/submissions", json=body, headers=bearer(learner))
    return response.status_code, response.get_json()


def test_inline_answers_201_with_the_graded_result_and_sends_nothing_to_the_workers(
    inline_client: FlaskClient, learner: Account, queue: RecordingQueue
) -> None:
    status, body = hand_in(inline_client, learner)
    assert status == 201, body
    submission = body["submission"]
    assert isinstance(submission, dict)
    assert submission["status"] == "graded" and submission["result"]["passed"] is True
    assert queue.sent == []
    progress = inline_client.get("/api/v1/programs/test-program/progress", headers=bearer(learner))
    basics = next(r for r in progress.get_json()["requirements"] if r["assessment"] == "basics")
    assert basics["status"] == "passed"


def test_the_201_shows_the_result_exactly_as_reading_it_back_does(
    inline_client: FlaskClient, learner: Account
) -> None:
    status, body = hand_in(inline_client, learner)
    assert status == 201, body
    read_back = inline_client.get(str(body["status_url"]), headers=bearer(learner)).get_json()
    assert body["submission"] == read_back


def test_a_repeated_inline_hand_in_is_answered_with_the_first_and_graded_once(
    inline_client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    answer = {"assessment": "basics", "answers": BASICS_ANSWERS}
    headers = {**bearer(learner), "Idempotency-Key": "hand-in-1"}
    first = inline_client.post("/api/v1/submissions", json=answer, headers=headers)
    again = inline_client.post("/api/v1/submissions", json=answer, headers=headers)
    assert first.status_code == 201 and again.get_json()["replayed"] is True
    assert again.get_json()["id"] == first.get_json()["id"]
    with loaded() as session:
        assert session.scalar(select(func.count()).select_from(Result)) == 1


def test_queue_mode_answers_202_and_leaves_grading_to_the_workers(
    client: FlaskClient, learner: Account, queue: RecordingQueue
) -> None:
    status, body = hand_in(client, learner)
    assert status == 202 and "submission" not in body
    assert [q for _, q in queue.sent] == ["quiz"]


def test_a_fault_while_grading_inline_hands_the_run_to_the_workers(
    inline_client: FlaskClient,
    learner: Account,
    loaded: sessionmaker[Session],
    queue: RecordingQueue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: QuizGrader, job: object) -> None:
        raise RuntimeError("a bug in the grader")

    monkeypatch.setattr(QuizGrader, "grade", broken)
    status, body = hand_in(inline_client, learner)
    assert status == 202, body  # accepted all the same: the receipt stands
    with loaded() as session:
        run = session.scalars(select(GradingRun)).one()
        assert run.status == "queued" and "grading inline" in (run.last_error or "")
        reconcile(session, queue, lease_seconds=60, max_tries=3)
    assert [run_id for run_id, _ in queue.sent] == [run.id]  # a worker grades it


def test_only_closed_form_quizzes_are_graded_inline() -> None:
    catalog = read_catalog(Path(__file__).resolve().parents[2] / "examples" / "catalog")
    for entry in catalog.assessments.values():
        kind = KINDS[entry.definition.kind]
        assert kind.grades_inline(entry.definition) is (entry.definition.kind == "quiz")


def test_an_unknown_quiz_grading_mode_is_refused_naming_the_setting() -> None:
    with pytest.raises(InvalidInput, match="GRADER_QUIZ_GRADING must be queue or inline"):
        Settings.from_env({"GRADER_QUIZ_GRADING": "eager"})
