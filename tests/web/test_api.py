"""The learner's JSON API: the happy path, and a clear answer for every kind of bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grader.interfaces import RecordingQueue
from grader.models import GradingRun, QuizAttempt, Submission
from tests.conftest import Account, bearer, make_account
from tests.support.catalogs import BASICS_ANSWERS
from tests.support.grading import drain


def submit(client: FlaskClient, account: Account, body: object, **headers: str):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/submissions", json=body, headers={**bearer(account), **headers})


def error_of(response) -> dict:  # type: ignore[no-untyped-def]
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_quiz_submission_is_accepted_queued_and_graded(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    response = submit(client, learner, {"assessment": "basics", "answers": BASICS_ANSWERS})
    assert response.status_code == 202
    body = response.get_json()
    assert response.headers["Location"] == body["status_url"]
    assert len(body["receipt"]["sha256"]) == 64
    assert queue.sent == [(queue.sent[0][0], "quiz")]

    pending = client.get(body["status_url"], headers=bearer(learner)).get_json()
    assert pending["status"] == "queued" and pending["queue_position"] == 1 and pending["result"] is None

    drain(queue, loaded)
    view = client.get(body["status_url"], headers=bearer(learner)).get_json()
    assert view["status"] == "graded"
    assert view["receipt"]["sha256"] == body["receipt"]["sha256"]
    result = view["result"]
    assert (result["score"], result["max_score"], result["passed"]) == (5.0, 5.0, True)
    # Passed, and the policy is after_passing: correct answers and explanations are shown.
    created = next(q for q in result["feedback"]["questions"] if q["id"] == "status-created")
    assert created["answer"] == "b" and "201" in created["explanation"]

    progress = client.get("/api/v1/programs/test-program/progress", headers=bearer(learner)).get_json()
    statuses = {r["assessment"]: r["status"] for r in progress["requirements"]}
    assert statuses == {"basics": "passed", "timed": "not_attempted"}
    assert progress["complete"] is False and progress["credential"] is None


def test_partial_credit_and_hidden_answers_when_failed(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    answers = {"status-created": "a", "safe-methods": ["get", "post"], "port": 443.0}
    body = submit(client, learner, {"assessment": "basics", "answers": answers}).get_json()
    drain(queue, loaded)
    result = client.get(body["status_url"], headers=bearer(learner)).get_json()["result"]
    by_id = {q["id"]: q for q in result["feedback"]["questions"]}
    assert result["score"] == 1.0 and result["passed"] is False
    assert result["feedback"]["answers_shown"] is False
    # Failed, and the policy is after_passing: nothing that tells right from wrong per question.
    # The learner's own answer, in words, is theirs to see whatever the policy hides.
    assert by_id["header"] == {
        "id": "header",
        "answered": False,
        "prompt": by_id["header"]["prompt"],
        "type": "short_text",
        "your_answer": None,
    }
    assert all(set(q) == {"id", "answered", "prompt", "type", "your_answer"} for q in by_id.values())
    assert by_id["port"]["your_answer"] == "443" and by_id["safe-methods"]["your_answer"] == "GET; POST"
    # Staff see how each question scored: right_minus_wrong gives one right and one wrong pick of two
    # right answers 0 points.
    staff = make_account(loaded, "staff@example.org", role="reviewer", reviews=("test-program",))
    scored = client.get(body["status_url"], headers=bearer(staff)).get_json()["result"]["feedback"]
    staff_view = {q["id"]: q for q in scored["questions"]}
    assert staff_view["safe-methods"]["points"] == 0 and staff_view["port"]["correct"] is True


def test_idempotency_key_returns_the_first_submission(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    payload = {"assessment": "basics", "answers": BASICS_ANSWERS}
    first = submit(client, learner, payload, **{"Idempotency-Key": "retry-1"}).get_json()
    second = submit(client, learner, payload, **{"Idempotency-Key": "retry-1"}).get_json()
    assert second["id"] == first["id"] and second["replayed"] is True
    assert count(loaded, Submission) == 1 and len(queue.sent) == 1


def test_unknown_assessment_is_404(client: FlaskClient, learner: Account) -> None:
    response = submit(client, learner, {"assessment": "no-such-quiz", "answers": {}})
    assert response.status_code == 404
    assert error_of(response)["details"]["field"] == "assessment"


@pytest.mark.parametrize(
    ("answers", "field"),
    [
        ({"status-created": 2}, "answers.status-created"),
        ({"safe-methods": "get"}, "answers.safe-methods"),
        ({"safe-methods": ["get", "get"]}, "answers.safe-methods"),
        ({"idempotent-put": "yes"}, "answers.idempotent-put"),
        ({"port": True}, "answers.port"),
        ({"port": "443"}, "answers.port"),
        ({"header": "x" * 501}, "answers.header"),
        ({"what-is-this": "a"}, "answers.what-is-this"),
        (["b"], "answers"),
    ],
)
def test_malformed_answers_name_the_field(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session], answers: object, field: str
) -> None:
    response = submit(client, learner, {"assessment": "basics", "answers": answers})
    assert response.status_code == 400
    assert error_of(response)["details"]["field"] == field
    assert count(loaded, Submission) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"answers": {}}, "assessment"),
        ({"assessment": 7, "answers": {}}, "assessment"),
        ({"assessment": "basics", "answers": {}, "extra": 1}, "extra"),
        ({"assessment": "basics", "attempt": ["x"], "answers": {}}, "attempt"),
    ],
)
def test_malformed_envelope_names_the_field(
    client: FlaskClient, learner: Account, body: dict, field: str
) -> None:
    response = submit(client, learner, body)
    assert response.status_code == 400
    assert error_of(response)["details"]["field"] == field


def test_body_that_is_not_json_is_400(client: FlaskClient, learner: Account) -> None:
    response = client.post(
        "/api/v1/submissions",
        data="assessment=basics",
        headers=bearer(learner),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400 and error_of(response)["details"]["field"] == "body"
    broken = client.post(
        "/api/v1/submissions", data="{not json", headers=bearer(learner), content_type="application/json"
    )
    assert broken.status_code == 400 and error_of(broken)["details"]["field"] == "body"


def test_payload_over_the_limit_is_413(client: FlaskClient, learner: Account, loaded) -> None:  # type: ignore[no-untyped-def]
    huge = {"assessment": "basics", "answers": {"header": "x" * (3 * 1024 * 1024)}}
    response = submit(client, learner, huge)
    assert response.status_code == 413
    assert error_of(response)["details"]["field"] == "body"
    assert count(loaded, Submission) == 0


def test_not_enrolled_is_403(client: FlaskClient, loaded: sessionmaker[Session]) -> None:
    outsider = make_account(loaded, "eve@example.org", programs=("other-program",))
    response = submit(client, outsider, {"assessment": "timed", "answers": {}})
    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer "}, {"Authorization": "Bearer gr_forged"}, {"Authorization": "Basic abc"}],
)
def test_missing_or_bad_token_is_401(client: FlaskClient, loaded, headers: dict) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        "/api/v1/submissions", json={"assessment": "basics", "answers": {}}, headers=headers
    )
    assert response.status_code == 401
    assert error_of(response)["code"] == "authentication_required"
    assert count(loaded, Submission) == 0


def test_attempts_exhausted_is_409(client: FlaskClient, learner: Account) -> None:
    for _ in range(3):
        assert submit(client, learner, {"assessment": "basics", "answers": {}}).status_code == 202
    response = submit(client, learner, {"assessment": "basics", "answers": {}})
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "attempts_exhausted" and error["details"]["max_attempts"] == 3


def start(client: FlaskClient, account: Account, slug: str = "timed") -> dict:
    response = client.post(f"/api/v1/assessments/{slug}/attempts", json={}, headers=bearer(account))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_drawn_pool_rejects_questions_outside_the_attempt(client: FlaskClient, learner: Account) -> None:
    attempt = start(client, learner)
    drawn = [q["id"] for q in attempt["questions"]]
    assert len(drawn) == 2 and attempt["deadline"] is not None
    assert all("answer" not in q for q in attempt["questions"])
    # Asking again returns the same draw, so a learner cannot fish for easier questions.
    assert [q["id"] for q in start(client, learner)["questions"]] == drawn
    outside = ({"t1", "t2", "t3"} - set(drawn)).pop()
    response = submit(
        client, learner, {"assessment": "timed", "attempt": attempt["id"], "answers": {outside: True}}
    )
    assert response.status_code == 400
    assert error_of(response)["details"]["field"] == f"answers.{outside}"


def test_pool_quiz_without_attempt_is_400(client: FlaskClient, learner: Account) -> None:
    response = submit(client, learner, {"assessment": "timed", "answers": {}})
    assert response.status_code == 400 and error_of(response)["details"]["field"] == "attempt"


def test_cooldown_is_429_with_retry_after(client: FlaskClient, learner: Account) -> None:
    attempt = start(client, learner)
    assert (
        submit(client, learner, {"assessment": "timed", "attempt": attempt["id"], "answers": {}}).status_code
        == 202
    )
    response = client.post("/api/v1/assessments/timed/attempts", json={}, headers=bearer(learner))
    assert response.status_code == 429
    assert 55 <= int(response.headers["Retry-After"]) <= 60
    assert error_of(response)["details"]["retry_after"] == int(response.headers["Retry-After"])


def test_submitting_after_the_time_limit_is_409(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    attempt = start(client, learner)
    with loaded() as session, session.begin():
        row = session.get(QuizAttempt, attempt["id"])
        assert row is not None and row.deadline_at is not None
        row.deadline_at = row.deadline_at - timedelta(minutes=10)
    response = submit(client, learner, {"assessment": "timed", "attempt": attempt["id"], "answers": {}})
    assert response.status_code == 409
    assert error_of(response)["code"] == "time_limit_exceeded"
    assert count(loaded, Submission) == 0


def test_an_attempt_cannot_be_submitted_twice(client: FlaskClient, learner: Account) -> None:
    attempt = start(client, learner)
    body = {"assessment": "timed", "attempt": attempt["id"], "answers": {}}
    assert submit(client, learner, body).status_code == 202
    assert submit(client, learner, body).status_code in (409, 429)


def test_someone_elses_submission_is_404(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    body = submit(client, learner, {"assessment": "basics", "answers": {}}).get_json()
    other = make_account(loaded, "bob@example.org", programs=("test-program",))
    assert client.get(body["status_url"], headers=bearer(other)).status_code == 404


def test_broker_down_still_accepts_and_keeps_the_run(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(run_id: str, name: str) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(queue, "enqueue_grading", refuse)
    response = submit(client, learner, {"assessment": "basics", "answers": BASICS_ANSWERS})
    assert response.status_code == 202
    with loaded() as session:
        run = session.scalars(select(GradingRun)).one()
        assert run.status == "queued" and run.enqueued_at is None


def test_completing_every_requirement_awards_the_credential(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    submit(client, learner, {"assessment": "basics", "answers": BASICS_ANSWERS})
    attempt = start(client, learner)
    truths = {"t1": False, "t2": True, "t3": True}
    answers = {q["id"]: truths[q["id"]] for q in attempt["questions"]}
    submit(client, learner, {"assessment": "timed", "attempt": attempt["id"], "answers": answers})
    drain(queue, loaded)
    progress = client.get("/api/v1/programs/test-program/progress", headers=bearer(learner)).get_json()
    assert progress["complete"] is True
    assert progress["credential"]["status"] == "awarded"
