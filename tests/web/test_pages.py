"""Learner pages: log in with CSRF protection, take a quiz in the form, follow it to its result."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from grader.interfaces import RecordingQueue
from tests.conftest import PASSWORD, Account, make_account
from tests.support.grading import drain


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    assert match, "page has no CSRF token"
    return match.group(1)


def log_in(client: FlaskClient, account: Account) -> None:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": account.email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_pages_need_a_login(client: FlaskClient) -> None:
    response = client.get("/programs/test-program")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def test_wrong_password_is_refused_without_saying_which_part(client: FlaskClient, learner: Account) -> None:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    page = client.post(
        "/login", data={"email": learner.email, "password": "nope-nope-nope", "csrf_token": token}
    )
    assert page.status_code == 200 and "wrong email or password" in page.get_data(as_text=True)


def test_forms_without_csrf_token_are_rejected(client: FlaskClient, learner: Account) -> None:
    response = client.post("/login", data={"email": learner.email, "password": PASSWORD})
    assert response.status_code == 400 and "Location" not in response.headers
    log_in(client, learner)
    forged = client.post("/assessments/basics/attempts", data={})
    assert forged.status_code == 400
    assert "CSRF" in forged.get_data(as_text=True)


def test_open_redirect_after_login_is_refused(client: FlaskClient, learner: Account) -> None:
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login?next=//evil.example/steal",
        data={"email": learner.email, "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_take_a_quiz_in_the_browser_form(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    log_in(client, learner)
    program = client.get("/programs/test-program").get_data(as_text=True)
    assert "HTTP basics" in program and "not attempted" in program
    started = client.post("/assessments/basics/attempts", data={"csrf_token": csrf_token(program)})
    attempt_url = started.headers["Location"]
    form = client.get(attempt_url).get_data(as_text=True)
    assert "Which status code answers a successful POST" in form
    answers = {
        "csrf_token": csrf_token(form),
        "q_status-created": "b",
        "q_safe-methods": ["get", "head"],
        "q_idempotent-put": "true",
        "q_port": "443",
        "q_header": "Content-Type",
    }
    submitted = client.post(attempt_url, data=answers)
    assert submitted.status_code == 302
    status_page = client.get(submitted.headers["Location"]).get_data(as_text=True)
    # No self-reloading page (an accessibility failure): a status, a "Check again" link,
    # and polling by script.
    assert "Waiting to be graded" in status_page and 'http-equiv="refresh"' not in status_page
    assert "Check again" in status_page and "status.json" in status_page
    drain(queue, loaded)
    result_page = client.get(submitted.headers["Location"]).get_data(as_text=True)
    assert "Passed" in result_page and "5 / 5" in result_page.replace(".0", "")
    # Questions and correct answers in words, not ids.
    assert "Which status code answers a successful POST" in result_page and "201 Created" in result_page
    assert "<code>status-created</code>" not in result_page


def test_a_failed_quiz_page_does_not_tell_right_from_wrong_when_answers_are_hidden(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    log_in(client, learner)
    program = client.get("/programs/test-program").get_data(as_text=True)
    attempt_url = client.post(
        "/assessments/basics/attempts", data={"csrf_token": csrf_token(program)}
    ).headers["Location"]
    form = client.get(attempt_url).get_data(as_text=True)
    submitted = client.post(
        attempt_url,
        data={"csrf_token": csrf_token(form), "q_status-created": "a", "confirm_unanswered": "1"},
    )
    drain(queue, loaded)
    page = client.get(submitted.headers["Location"]).get_data(as_text=True)
    assert "Not passed yet" in page and "Which status code answers a successful POST" in page
    assert "not correct" not in page and ">correct<" not in page and "201 Created" not in page


def test_bad_form_input_shows_the_field_and_keeps_the_page(client: FlaskClient, learner: Account) -> None:
    log_in(client, learner)
    program = client.get("/programs/test-program").get_data(as_text=True)
    attempt_url = client.post(
        "/assessments/basics/attempts", data={"csrf_token": csrf_token(program)}
    ).headers["Location"]
    form = client.get(attempt_url).get_data(as_text=True)
    page = client.post(attempt_url, data={"csrf_token": csrf_token(form), "q_port": "four hundred"})
    # Refused with its real status; the question is named by its text, never by its id.
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert "Default port of HTTPS?" in html and "must be a number" in html
    assert "answers.port" not in html and 'value="four hundred"' in html


def test_learner_supplied_text_is_escaped(client: FlaskClient, loaded: sessionmaker[Session]) -> None:
    from grader.db import session_scope
    from grader.models import User

    account = make_account(loaded, "mallory@example.org", programs=("test-program",))
    with session_scope(loaded) as session:
        user = session.get(User, account.id)
        assert user is not None
        user.name = "<script>alert(1)</script>"
    log_in(client, account)
    html = client.get("/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_unknown_page_is_a_friendly_404(client: FlaskClient, learner: Account) -> None:
    log_in(client, learner)
    response = client.get("/programs/nope")
    assert response.status_code == 404
    assert "Not found" in response.get_data(as_text=True) and "Traceback" not in response.get_data(
        as_text=True
    )
