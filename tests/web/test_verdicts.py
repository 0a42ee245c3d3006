"""Verdicts a learner cannot game and staff can account for: quizzes that are no oracle, due dates with
late windows and extensions, regrades that keep the reviewers' work, and the audit log."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.models import CredentialAward, QuizAttempt, Review, utcnow
from grader.services.regrade import regrade
from tests.conftest import Account, bearer, make_account
from tests.support.catalogs import (
    BASICS_ANSWERS,
    BASICS_QUIZ,
    OTHER_PROGRAM,
    PROGRAM,
    TIMED_QUIZ,
    write_catalog,
)
from tests.support.grading import drain
from tests.support.reviewed import REVIEWED_RUBRIC, reload, run_queued, write_repository_catalog

ROOT = Path(__file__).resolve().parents[2]


def start(client: FlaskClient, account: Account, slug: str = "timed"):  # type: ignore[no-untyped-def]
    return client.post(f"/api/v1/assessments/{slug}/attempts", headers=bearer(account))


def submit(client: FlaskClient, account: Account, body: Mapping[str, Any]):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/submissions", json=body, headers=bearer(account))


def view(client: FlaskClient, account: Account, submission_id: str) -> dict[str, Any]:
    return client.get(f"/api/v1/submissions/{submission_id}", headers=bearer(account)).get_json()


# ---------------------------------------------------------------- quizzes that are no oracle


def test_attempts_left_to_expire_still_count_and_show_no_more_of_the_pool(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    seen: set[str] = set()
    for _ in range(2):  # the timed quiz allows 2 attempts
        attempt = start(client, learner)
        assert attempt.status_code == 201
        seen |= {q["id"] for q in attempt.get_json()["questions"]}
        with loaded() as session:  # the learner walks away; the attempt's time runs out
            row = session.get(QuizAttempt, attempt.get_json()["id"])
            assert row is not None
            row.deadline_at = utcnow() - timedelta(minutes=5)
            session.commit()
    third = start(client, learner)
    assert third.status_code == 409
    assert third.get_json()["error"]["code"] == "attempts_exhausted"
    assert third.get_json()["error"]["details"] == {"attempts_used": 2, "max_attempts": 2}
    assert len(seen) <= 4  # two draws of two questions, nothing more


def test_the_last_attempt_drawn_but_not_handed_in_keeps_the_answers_hidden(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    first = start(client, learner).get_json()  # timed: two attempts, answers after the last one
    wrong = {q["id"]: q["id"] == "t1" for q in first["questions"]}  # every answer wrong
    accepted = submit(
        client, learner, {"assessment": "timed", "attempt": first["id"], "answers": wrong}
    ).get_json()
    drain(queue, loaded)
    with loaded() as session:  # the cooldown has passed
        row = session.get(QuizAttempt, first["id"])
        assert row is not None
        row.started_at = row.submitted_at = utcnow() - timedelta(minutes=10)
        session.commit()
    from grader.models import Submission

    with loaded() as session:
        submitted = session.get(Submission, accepted["id"])
        assert submitted is not None
        submitted.created_at = utcnow() - timedelta(minutes=10)
        session.commit()
    assert start(client, learner).status_code == 201  # the last attempt, still open
    assert view(client, learner, accepted["id"])["result"]["feedback"]["answers_shown"] is False


def test_reopening_an_open_attempt_does_not_use_another(client: FlaskClient, learner: Account) -> None:
    first = start(client, learner).get_json()
    again = start(client, learner).get_json()
    assert again["id"] == first["id"] and again["questions"] == first["questions"]


def test_starting_attempts_is_rate_limited(
    loaded: sessionmaker[Session], settings: Settings, queue: RecordingQueue
) -> None:
    from grader.web import create_app

    client = create_app(settings.with_overrides(quiz_starts_per_hour=1), queue=queue).test_client()
    account = make_account(loaded, "eve@example.org", programs=("test-program",))
    first = start(client, account, "basics")
    assert first.status_code == 201
    with loaded() as session:
        row = session.get(QuizAttempt, first.get_json()["id"])
        assert row is not None
        row.deadline_at = utcnow() - timedelta(minutes=5)
        row.submitted_at = utcnow()
        session.commit()
    limited = start(client, account, "basics")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert "attempts an hour may start" in limited.get_json()["error"]["message"]


def test_hidden_answers_hide_the_per_question_verdicts_too(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    wrong = {**BASICS_ANSWERS, "status-created": "a", "port": 80, "header": "x"}
    accepted = submit(client, learner, {"assessment": "basics", "answers": wrong}).get_json()
    drain(queue, loaded)
    result = view(client, learner, accepted["id"])["result"]
    assert result["passed"] is False and result["feedback"]["answers_shown"] is False
    for question in result["feedback"]["questions"]:
        # the learner's own answer in words, and nothing that tells whether it was right
        assert set(question) == {"id", "answered", "prompt", "type", "your_answer"}, question
    assert any("Which status code" in q["prompt"] for q in result["feedback"]["questions"])


def test_shown_answers_are_in_words(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    accepted = submit(client, learner, {"assessment": "basics", "answers": BASICS_ANSWERS}).get_json()
    drain(queue, loaded)
    questions = {q["id"]: q for q in view(client, learner, accepted["id"])["result"]["feedback"]["questions"]}
    assert questions["status-created"]["answer_text"] == "201 Created"
    assert questions["safe-methods"]["answer_text"] == "GET; HEAD"


# ---------------------------------------------------------------- due dates, late work, extensions


def dated(due: str, late: str = "") -> str:
    return BASICS_QUIZ.replace("shuffle: false", f"shuffle: false\ndue: {due}{late}")


@pytest.fixture
def catalog_dir(settings: Settings, request: pytest.FixtureRequest) -> Path:
    basics = getattr(request, "param", BASICS_QUIZ)
    return write_catalog(
        settings.catalog_path,
        {
            "assessments/basics.yaml": basics,
            "assessments/timed.yaml": TIMED_QUIZ,
            "programs/test-program.yaml": PROGRAM,
            "programs/other-program.yaml": OTHER_PROGRAM,
        },
    )


PAST = (utcnow() - timedelta(hours=25)).strftime("%Y-%m-%dT%H:%M:%SZ")  # unquoted YAML: a datetime


@pytest.mark.parametrize("catalog_dir", [dated(PAST)], indirect=True)
def test_past_the_due_date_is_409_with_the_date(client: FlaskClient, learner: Account) -> None:
    refused = submit(client, learner, {"assessment": "basics", "answers": BASICS_ANSWERS})
    assert refused.status_code == 409
    error = refused.get_json()["error"]
    assert error["code"] == "past_due" and error["details"]["due"].startswith(PAST[:16])
    assert "extension" in error["message"]


@pytest.mark.parametrize(
    "catalog_dir", [dated(PAST, "\nlate: {days: 3, penalty_per_day: 0.1, max_penalty: 0.15}")], indirect=True
)
def test_inside_the_late_window_work_is_accepted_at_a_capped_penalty(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    accepted = submit(client, learner, {"assessment": "basics", "answers": BASICS_ANSWERS})
    assert accepted.status_code == 202
    drain(queue, loaded)
    result = view(client, learner, accepted.get_json()["id"])["result"]
    # Two started days late at 10% a day would be 20%; the cap is 15%.
    assert result["late_penalty"] == pytest.approx(0.15)
    assert result["score"] == pytest.approx(5 * 0.85) and result["passed"] is True
    assert result["feedback"]["late"]["score_before"] == 5


@pytest.mark.parametrize("catalog_dir", [dated(PAST)], indirect=True)
def test_an_extension_granted_by_staff_reopens_the_assessment_for_that_learner_only(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    staff = make_account(loaded, "staff@example.org", role="admin")
    other = make_account(loaded, "bob@example.org", programs=("test-program",))
    until = (utcnow() + timedelta(days=2)).isoformat()
    body = {"learner": learner.email, "due": until, "reason": "illness"}
    assert (
        client.post("/api/v1/assessments/basics/extensions", json=body, headers=bearer(learner)).status_code
        == 403
    )
    granted = client.post("/api/v1/assessments/basics/extensions", json=body, headers=bearer(staff))
    assert granted.status_code == 201, granted.get_json()
    assert submit(client, learner, {"assessment": "basics", "answers": BASICS_ANSWERS}).status_code == 202
    assert submit(client, other, {"assessment": "basics", "answers": BASICS_ANSWERS}).status_code == 409
    events = client.get("/api/v1/audit?learner=ada@example.org", headers=bearer(staff)).get_json()["events"]
    grant = next(e for e in events if e["action"] == "extension.granted")
    assert grant["reason"] == "illness" and grant["actor"].startswith("user:") and grant["after"]["due"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"learner": "ada@example.org", "due": "tomorrow"}, "due"),
        ({"learner": "ada@example.org", "due": "2030-01-01T00:00:00"}, "due"),
        ({"learner": "nobody@example.org", "due": "2030-01-01T00:00:00Z"}, "learner"),
        ({"due": "2030-01-01T00:00:00Z"}, "learner"),
        ({"learner": "ada@example.org", "due": "2030-01-01T00:00:00Z", "colour": "red"}, "colour"),
    ],
)
def test_bad_extension_requests_name_the_field(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session], body: dict[str, Any], field: str
) -> None:
    staff = make_account(loaded, "staff@example.org", role="admin")
    response = client.post("/api/v1/assessments/basics/extensions", json=body, headers=bearer(staff))
    assert response.status_code in (400, 404)
    assert response.get_json()["error"]["details"]["field"] == field


def test_extensions_from_the_command_line(
    tmp_path: Path, settings: Settings, learner: Account, loaded: sessionmaker[Session]
) -> None:
    env = {**settings.to_env(), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    until = (utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    granted = subprocess.run(
        [sys.executable, "-m", "grader.entrypoints.cli", "extensions", "grant", "--email", learner.email,
         "--assessment", "basics", "--until", until, "--reason", "family"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert granted.returncode == 0, granted.stderr
    assert f"until {until[:10]}" in granted.stdout
    audit = subprocess.run(
        [sys.executable, "-m", "grader.entrypoints.cli", "audit", "--learner", learner.email],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert audit.returncode == 0 and "extension.granted" in audit.stdout and "why: family" in audit.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "grader.entrypoints.cli", "extensions", "grant", "--email", learner.email,
         "--assessment", "basics", "--days", "2"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert (
        refused.returncode == 1 and "has no due date" in refused.stderr and "Traceback" not in refused.stderr
    )


# ---------------------------------------------------------------- regrades that keep the reviewers' work


def test_a_regrade_keeps_the_review_and_the_credential_and_a_changed_rubric_waits_for_a_reviewer(
    client: FlaskClient, settings: Settings, loaded: sessionmaker[Session], queue: RecordingQueue
) -> None:
    root = write_repository_catalog(settings.catalog_path)
    reload(loaded, root)
    dev = make_account(loaded, "dev@example.org", programs=("repo-program",))
    reviewer = make_account(loaded, "rev@example.org", role="reviewer", reviews=("repo-program",))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("app.py", "x = 1\n")
        bundle.writestr("README.md", "# App\n")
    accepted = client.post(
        "/api/v1/submissions",
        data={"assessment": "reviewed-repo", "archive": (io.BytesIO(archive.getvalue()), "app.zip")},
        headers=bearer(dev),
        content_type="multipart/form-data",
    ).get_json()
    run_queued(queue, loaded)
    review = {"criteria": [{"criterion": "design", "level": "strong"}], "comment": "Clear modules."}
    reviewed = client.post(
        f"/api/v1/submissions/{accepted['id']}/reviews", json=review, headers=bearer(reviewer)
    )
    outcome = reviewed.get_json()
    assert (outcome["score"], outcome["max_score"], outcome["passed"], outcome["settled"]) == (
        100,
        100,
        True,
        True,
    )

    def standing() -> tuple[str, str | None, Any]:
        progress = client.get("/api/v1/programs/repo-program/progress", headers=bearer(dev)).get_json()
        result = view(client, dev, accepted["id"])["result"]
        return progress["credential"]["status"], progress["requirements"][0]["status"], result["passed"]

    assert standing() == ("awarded", "passed", True)

    # A regrade with nothing changed: the review carries over; nothing is revoked, nothing waits.
    with loaded() as session:
        regrade(session, queue, "reviewed-repo", actor="cli:test", reason="fixed a flaky test")
    run_queued(queue, loaded)
    assert standing() == ("awarded", "passed", True)
    with loaded() as session:
        reviews = session.scalars(select(Review).order_by(Review.id)).all()
        assert [r.carried_from_id for r in reviews] == [None, reviews[0].id]

    # The manual part changed (a level is worth less): the submission waits for a reviewer; the
    # requirement still stands on the earlier final result, but the credential is suspended until the
    # reviewer has scored it again, then reinstated.
    reload(loaded, write_repository_catalog(root, REVIEWED_RUBRIC.replace("points: 34", "points: 30")))
    with loaded() as session:
        regrade(session, queue, "reviewed-repo", actor="cli:test")
    run_queued(queue, loaded)
    pending = view(client, dev, accepted["id"])
    assert pending["status"] == "needs_review" and pending["result"]["passed"] is None
    assert standing()[0:2] == ("suspended", "passed")
    client.post(f"/api/v1/submissions/{accepted['id']}/reviews", json=review, headers=bearer(reviewer))
    assert standing() == ("awarded", "passed", True)

    staff = make_account(loaded, "staff@example.org", role="admin")
    events = client.get(f"/api/v1/audit?submission={accepted['id']}", headers=bearer(staff)).get_json()[
        "events"
    ]
    actions = [e["action"] for e in reversed(events)]
    assert actions == [
        "result.recorded",
        "review.submitted",
        "result.settled",
        "regrade.requested",
        "review.carried_over",
        "result.recorded",
        "regrade.requested",
        "result.recorded",
        "review.submitted",
        "result.settled",
    ]
    carried_result = events[-6]
    assert carried_result["before"]["score"] == 100 and carried_result["after"]["passed"] is True
    assert client.get("/api/v1/audit", headers=bearer(dev)).status_code == 403


def test_a_final_result_that_fails_revokes_the_award_in_the_audit_log(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    catalog_dir: Path,
) -> None:
    four_of_five = {**BASICS_ANSWERS, "header": "wrong"}  # 0.8: passes 0.75, not 0.9
    submit(client, learner, {"assessment": "basics", "answers": four_of_five})
    attempt = start(client, learner).get_json()
    right = {q["id"]: q["id"] != "t1" for q in attempt["questions"]}  # t1 is false, the others true
    submit(client, learner, {"assessment": "timed", "attempt": attempt["id"], "answers": right})
    drain(queue, loaded)
    with loaded() as session:
        assert session.scalars(select(CredentialAward)).one().status == "awarded"
    (catalog_dir / "assessments/basics.yaml").write_text(
        BASICS_QUIZ.replace("pass_mark: 0.75", "pass_mark: 0.9")
    )
    reload(loaded, catalog_dir)
    with loaded() as session:
        regrade(session, queue, "basics", actor="cli:test")
    drain(queue, loaded)
    staff = make_account(loaded, "staff@example.org", role="admin")
    events = client.get("/api/v1/audit?learner=ada@example.org", headers=bearer(staff)).get_json()["events"]
    suspended = next(e for e in events if e["action"] == "award.suspended")
    assert suspended["after"]["status"] == "suspended" and "basics" in suspended["reason"]
    assert any(e["action"] == "award.granted" for e in events)
