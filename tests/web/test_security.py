"""Security in the pages: same-site redirects after login, sessions that end, lockouts, the account
page and the token API, the 401 challenge, security headers and cookies, CSRF on every form."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.db import session_scope
from grader.errors import AuthenticationRequired, RateLimited
from grader.interfaces import RecordingQueue
from grader.models import ApiToken, AuditEvent, User, utcnow
from grader.services import accounts
from grader.web import auth
from tests.conftest import PASSWORD, Account, bearer, make_account
from tests.web.test_pages import csrf_token, log_in

NEW_PASSWORD = "a brand new passphrase"


def _post_login(
    client: FlaskClient, email: str, password: str, *, query: str = "", address: str | None = None
) -> tuple[int, str, dict[str, str]]:
    environ = {"REMOTE_ADDR": address} if address else {}
    page = client.get("/login", environ_base=environ)
    response = client.post(
        f"/login{query}",
        data={"email": email, "password": password, "csrf_token": csrf_token(page.get_data(as_text=True))},
        environ_base=environ,
    )
    return response.status_code, response.get_data(as_text=True), dict(response.headers)


def _session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None, "no session cookie"
    return cookie.value


def _logged_in(client: FlaskClient) -> bool:
    response = client.get("/account")
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/login")
        return False
    assert response.status_code == 200
    return True


def _user(sessions: sessionmaker[Session], account: Account) -> User:
    with session_scope(sessions) as session:
        user = session.get(User, account.id)
        assert user is not None
        session.expunge(user)
        return user


def _actions(sessions: sessionmaker[Session], user_id: int) -> list[str]:
    with session_scope(sessions) as session:
        return list(
            session.scalars(
                select(AuditEvent.action).where(AuditEvent.learner_id == user_id).order_by(AuditEvent.id)
            )
        )


@pytest.fixture
def other(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "grace@example.org", programs=("test-program",))


# ---------------------------------------------------------------- 1. redirects after login stay on this site

HOSTILE_NEXT = [
    "//evil.example/phish",
    "///evil.example",
    "/%2F%2Fevil.example",  # what ?next=/%252F%252Fevil.example gives
    "/%2f/evil.example",
    "/\t/evil.example/phish",  # what ?next=/%09/evil.example/phish gives
    "/%09/evil.example/phish",
    "/\n/x",
    "/\r\n/x",
    "/%0a/x",
    "/\x00/evil.example",
    "/\\evil.example",
    "/\\\\evil.example",
    "\\\\evil.example",
    "/%5C%5Cevil.example",
    "https://evil.example",
    "HTTPS://evil.example/",
    "http:evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    " //evil.example",
    "evil.example",
    "/.%2e/",
    "/../etc",
    "/./",
    "/\uff0f/evil.example",  # fullwidth solidus: NFKC makes it a slash
    "/\uff3c/evil.example",  # fullwidth reverse solidus
    "/\u2215evil.example",  # division slash
    "/\u2044evil.example",  # fraction slash
    "/%E2%88%95evil.example",
    "/\u3000/evil.example",
    "/" + "a" * 3000,
    "",
]


SAME_SITE_NEXT = [
    "/",
    "/programs/x?y=1",
    "/programs/test-program",
    "/submissions/abc#result",
    "/review?program=a&mine=1",
    "/account",
    "/programs/caf\u00e9",
]


def test_hostile_next_falls_back_to_the_home_page(app: Flask) -> None:
    with app.test_request_context("/login"):
        kept = [target for target in HOSTILE_NEXT if auth.safe_next(target) != "/"]
        assert kept == []
        assert auth.safe_next(None) == "/"


def test_same_site_paths_are_kept(app: Flask) -> None:
    with app.test_request_context("/login"):
        assert [auth.safe_next(target) for target in SAME_SITE_NEXT] == SAME_SITE_NEXT


def test_login_never_redirects_off_site(client: FlaskClient, learner: Account) -> None:
    for query in (
        "?next=/%09/evil.example/phish",
        "?next=//evil.example/steal",
        "?next=/%5Cevil.example",
        "?next=/%252F%252Fevil.example",
        "?next=https%3A%2F%2Fevil.example",
        "?next=/%EF%BC%8F/evil.example",
    ):
        status, _, headers = _post_login(client, learner.email, PASSWORD, query=query)
        assert (status, headers["Location"]) == (302, "/"), query
        assert _logged_in(client)


def test_a_newline_in_next_is_no_server_error(client: FlaskClient, learner: Account) -> None:
    status, _, headers = _post_login(client, learner.email, PASSWORD, query="?next=/%0a/x")
    assert status == 302 and headers["Location"] == "/"
    status, _, headers = _post_login(client, learner.email, PASSWORD, query="?next=/%0d%0aSet-Cookie:%20x=1")
    assert status == 302 and headers["Location"] == "/" and "x=1" not in headers.get("Set-Cookie", "")


def test_login_goes_back_to_the_page_asked_for(client: FlaskClient, learner: Account) -> None:
    asked = client.get("/programs/test-program?tab=1")
    assert asked.status_code == 302
    login_url = asked.headers["Location"]
    page = client.get(login_url).get_data(as_text=True)
    response = client.post(
        login_url, data={"email": learner.email, "password": PASSWORD, "csrf_token": csrf_token(page)}
    )
    assert response.headers["Location"] == "/programs/test-program?tab=1"
    _, _, headers = _post_login(client, learner.email, PASSWORD, query="?next=/programs/x%3Fy%3D1")
    assert headers["Location"] == "/programs/x?y=1"


# ---------------------------------------------------------------- 2. sessions that end


def test_a_cookie_captured_before_logout_is_dead_after_it(client: FlaskClient, learner: Account) -> None:
    log_in(client, learner)
    captured = _session_cookie(client)
    assert client.get("/programs/test-program").status_code == 200
    page = client.get("/account").get_data(as_text=True)
    logged_out = client.post("/logout", data={"csrf_token": csrf_token(page)})
    assert logged_out.status_code == 303 and logged_out.headers["Location"] == "/login"
    assert "You are logged out" in client.get("/login").get_data(as_text=True)

    client.set_cookie("session", captured)
    reused = client.get("/programs/test-program")
    assert reused.status_code == 302 and reused.headers["Location"].startswith("/login")
    assert client.get("/api/v1/me", headers=bearer(learner)).status_code == 200  # tokens are not sessions


def test_logout_ends_the_session_on_other_devices_too(app: Flask, learner: Account) -> None:
    laptop, phone = app.test_client(), app.test_client()
    log_in(laptop, learner)
    log_in(phone, learner)
    laptop.post("/logout", data={"csrf_token": csrf_token(laptop.get("/account").get_data(as_text=True))})
    assert not _logged_in(phone)


def test_the_session_is_rotated_at_login(client: FlaskClient, learner: Account) -> None:
    client.get("/login")
    with client.session_transaction() as before:
        before["planted"] = "by someone who set this cookie"
    planted = _session_cookie(client)
    log_in(client, learner)
    assert _session_cookie(client) != planted
    with client.session_transaction() as after:
        assert "planted" not in after and after["generation"] == 0
    client.set_cookie("session", planted)
    assert not _logged_in(client)


def test_a_login_older_than_its_lifetime_ends(client: FlaskClient, learner: Account, app: Flask) -> None:
    assert app.permanent_session_lifetime == timedelta(hours=12)
    log_in(client, learner)
    with client.session_transaction() as current:
        current["logged_in_at"] -= 13 * 3600
    assert not _logged_in(client)


def test_changing_the_password_ends_every_other_session(
    app: Flask, learner: Account, loaded: sessionmaker[Session]
) -> None:
    here, elsewhere = app.test_client(), app.test_client()
    log_in(here, learner)
    log_in(elsewhere, learner)
    captured = _session_cookie(here)
    page = here.get("/account").get_data(as_text=True)
    changed = here.post(
        "/account/password",
        data={
            "csrf_token": csrf_token(page),
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD,
        },
    )
    assert changed.status_code == 303 and changed.headers["Location"] == "/account"
    assert "Your password is changed" in here.get("/account").get_data(as_text=True)
    assert _logged_in(here)
    assert not _logged_in(elsewhere)
    stale = app.test_client()
    stale.set_cookie("session", captured)
    assert not _logged_in(stale)

    fresh = app.test_client()
    status, body, _ = _post_login(fresh, learner.email, PASSWORD)
    assert status == 200 and "wrong email or password" in body
    assert _post_login(fresh, learner.email, NEW_PASSWORD)[0] == 302
    assert accounts.AccountActions.PASSWORD_CHANGED in _actions(loaded, learner.id)


def test_a_deactivated_account_loses_its_sessions_and_tokens(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    log_in(client, learner)
    with session_scope(loaded) as session:
        user = session.get(User, learner.id)
        assert user is not None
        accounts.set_active(session, user, False, actor="user:1 admin@example.org", reason="left the course")
    assert not _logged_in(client)
    assert client.get("/api/v1/me", headers=bearer(learner)).status_code == 401
    status, body, _ = _post_login(client, learner.email, PASSWORD)
    assert status == 200 and "wrong email or password" in body
    assert accounts.AccountActions.DEACTIVATED in _actions(loaded, learner.id)


def test_log_out_everywhere(app: Flask, learner: Account, loaded: sessionmaker[Session]) -> None:
    here, elsewhere = app.test_client(), app.test_client()
    log_in(here, learner)
    log_in(elsewhere, learner)
    page = here.get("/account").get_data(as_text=True)
    assert "Log out everywhere" in page
    response = here.post("/account/logout-everywhere", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert "logged out on every device" in here.get("/login").get_data(as_text=True)
    assert not _logged_in(here) and not _logged_in(elsewhere)
    assert _user(loaded, learner).session_generation == 1
    assert accounts.AccountActions.SESSIONS_ENDED in _actions(loaded, learner.id)


def test_no_remember_me_cookie(client: FlaskClient, learner: Account) -> None:
    page = client.get("/login")
    response = client.post(
        "/login",
        data={
            "email": learner.email,
            "password": PASSWORD,
            "remember": "y",
            "csrf_token": csrf_token(page.get_data(as_text=True)),
        },
    )
    cookies = response.headers.getlist("Set-Cookie")
    assert cookies and all(cookie.startswith("session=") for cookie in cookies)
    assert client.get_cookie("remember_token") is None


# ---------------------------------------------------------------- 3. lockout and rate limit


def test_five_wrong_passwords_lock_the_account(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    for _ in range(accounts.FAILURE_LIMIT):
        status, body, _ = _post_login(client, learner.email, "not the password")
        assert status == 200 and "wrong email or password" in body
    status, body, headers = _post_login(client, learner.email, PASSWORD)  # even the right one
    assert status == 429
    assert 0 < int(headers["Retry-After"]) <= 15 * 60
    assert "too many failed logins for this account: try again in 15 minutes" in body
    assert f'value="{learner.email}"' in body  # what was typed stays
    assert not _logged_in(client)
    user = _user(loaded, learner)
    assert user.failed_logins == accounts.FAILURE_LIMIT and accounts.lock_remaining(user) > 14 * 60
    assert accounts.AccountActions.LOCKED in _actions(loaded, learner.id)

    with session_scope(loaded) as session:  # fifteen minutes later
        row = session.get(User, learner.id)
        assert row is not None and row.locked_until is not None
        row.locked_until = utcnow() - timedelta(seconds=1)
    assert _post_login(client, learner.email, PASSWORD)[0] == 302
    user = _user(loaded, learner)
    assert user.failed_logins == 0 and user.locked_until is None


def test_a_lockout_tells_nothing_about_whether_the_email_exists(
    client: FlaskClient, learner: Account
) -> None:
    answers = {}
    for email in (learner.email, "nobody@example.org"):
        replies = [
            _post_login(client, email, "not the password")[:2] for _ in range(accounts.FAILURE_LIMIT + 1)
        ]
        answers[email] = [
            (status, re.search(r'role="alert">([^<]*)<', body).group(1)) for status, body in replies
        ]  # type: ignore[union-attr]
    assert answers[learner.email] == answers["nobody@example.org"]
    assert answers[learner.email][-1] == (
        429,
        "too many failed logins for this account: try again in 15 minutes",
    )


def test_a_success_starts_the_count_again(client: FlaskClient, learner: Account) -> None:
    for _ in range(accounts.FAILURE_LIMIT - 1):
        _post_login(client, learner.email, "not the password")
    assert _post_login(client, learner.email, PASSWORD)[0] == 302
    for _ in range(accounts.FAILURE_LIMIT - 1):
        _post_login(client, learner.email, "not the password")
    assert _post_login(client, learner.email, PASSWORD)[0] == 302


def test_failures_count_within_fifteen_minutes(loaded: sessionmaker[Session], learner: Account) -> None:
    start = utcnow()
    with session_scope(loaded) as session:
        for minute in range(accounts.FAILURE_LIMIT - 1):
            with pytest.raises(AuthenticationRequired):
                accounts.authenticate(session, learner.email, "wrong", now=start + timedelta(minutes=minute))
        # The first failure is more than fifteen minutes old: a new window, no lockout.
        later = start + timedelta(minutes=16)
        with pytest.raises(AuthenticationRequired):
            accounts.authenticate(session, learner.email, "wrong", now=later)
        assert accounts.authenticate(session, learner.email, PASSWORD, now=later).id == learner.id


def test_one_address_cannot_try_many_accounts(client: FlaskClient, learner: Account) -> None:
    attacker = "203.0.113.7"
    for attempt in range(accounts.CLIENT_FAILURE_LIMIT):
        # Four tries per email, below each account's own limit: only the address limit can stop this.
        status, _, _ = _post_login(client, f"guess{attempt // 4}@example.org", "password1", address=attacker)
        assert status == 200
    status, body, headers = _post_login(client, learner.email, PASSWORD, address=attacker)
    assert status == 429 and int(headers["Retry-After"]) > 0
    assert "too many failed logins from your address" in body
    assert _post_login(client, learner.email, PASSWORD, address="198.51.100.2")[0] == 302


def test_the_throttle_forgets_after_the_lockout() -> None:
    throttle = accounts.LoginThrottle(client_limit=3)
    now = utcnow()
    for second in range(3):
        throttle.client_failed("10.0.0.1", now + timedelta(seconds=second))
    assert throttle.client_locked_for("10.0.0.1", now + timedelta(seconds=3)) > 14 * 60
    assert throttle.client_locked_for("10.0.0.2", now) == 0
    assert throttle.client_locked_for("10.0.0.1", now + timedelta(minutes=16)) == 0


def test_the_throttle_stays_bounded() -> None:
    throttle = accounts.LoginThrottle(max_entries=100)
    now = utcnow()
    for number in range(1000):
        throttle.client_failed(f"10.0.{number // 256}.{number % 256}", now)
    assert len(throttle._clients) <= 100


def test_a_wrong_current_password_counts_as_a_failed_login(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    log_in(client, learner)
    for _ in range(accounts.FAILURE_LIMIT):
        page = client.get("/account").get_data(as_text=True)
        response = client.post(
            "/account/password",
            data={
                "csrf_token": csrf_token(page),
                "current_password": "a guessed password",
                "new_password": NEW_PASSWORD,
                "new_password_again": NEW_PASSWORD,
            },
        )
        assert response.status_code == 400
    page = client.get("/account").get_data(as_text=True)
    locked = client.post(
        "/account/password",
        data={
            "csrf_token": csrf_token(page),
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD,
        },
    )
    assert locked.status_code == 429 and "Retry-After" in locked.headers
    assert "too many wrong passwords" in locked.get_data(as_text=True)
    with session_scope(loaded) as session, pytest.raises(RateLimited):
        accounts.authenticate(session, learner.email, PASSWORD)


# ---------------------------------------------------------------- 4. the account page


def test_the_account_page_shows_who_and_the_tokens(client: FlaskClient, learner: Account) -> None:
    log_in(client, learner)
    response = client.get("/account")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert "ada@example.org" in html and ">ada<" in html and ">learner<" in html
    assert learner.token[:10] in html and learner.token not in html
    for header in ("Name", "Starts with", "Created", "Last used", "Status", "Action"):
        assert f'<th scope="col">{header}</th>' in html
    assert 'class="table-scroll"' in html  # the table scrolls in its box at 375 px, not the page
    for field in ("name", "current_password", "new_password", "new_password_again"):
        assert f'<label for="{field}">' in html and f'id="{field}"' in html
    assert "<script" not in html and " style=" not in html
    assert "account.css" in html


def test_a_token_made_on_the_page_is_shown_once_and_works(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    log_in(client, learner)
    page = client.get("/account").get_data(as_text=True)
    created = client.post("/account/tokens", data={"csrf_token": csrf_token(page), "name": "laptop scripts"})
    html = created.get_data(as_text=True)
    assert created.status_code == 201 and created.headers["Cache-Control"] == "no-store"
    assert "shown this once and never again" in html
    match = re.search(r'id="new-token-secret"[^>]*value="(gr_[A-Za-z0-9_-]+)"', html)
    assert match
    secret = match.group(1)
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.get_json()["email"] == learner.email
    again = client.get("/account").get_data(as_text=True)
    assert secret not in again and "laptop scripts" in again and secret[:10] in again
    with session_scope(loaded) as session:
        stored = session.scalars(select(ApiToken.token_hash).where(ApiToken.user_id == learner.id)).all()
        assert secret not in stored and len(stored) == 2


def test_a_token_name_is_checked_and_kept(client: FlaskClient, learner: Account) -> None:
    log_in(client, learner)
    page = client.get("/account").get_data(as_text=True)
    empty = client.post("/account/tokens", data={"csrf_token": csrf_token(page), "name": "  "})
    assert empty.status_code == 400 and "give the token a name" in empty.get_data(as_text=True)
    long_name = "x" * 150
    too_long = client.post("/account/tokens", data={"csrf_token": csrf_token(page), "name": long_name})
    html = too_long.get_data(as_text=True)
    assert too_long.status_code == 400
    assert "the token name may have at most 100 characters" in html and f'value="{long_name}"' in html
    assert 'aria-invalid="true"' in html


def test_what_a_user_typed_is_shown_as_text(client: FlaskClient, learner: Account) -> None:
    log_in(client, learner)
    page = client.get("/account").get_data(as_text=True)
    client.post("/account/tokens", data={"csrf_token": csrf_token(page), "name": "<script>alert(1)</script>"})
    html = client.get("/account").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_revoking_a_token_on_the_page(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    log_in(client, learner)
    page = client.get("/account").get_data(as_text=True)
    with session_scope(loaded) as session:
        token_id = session.scalar(select(ApiToken.id).where(ApiToken.user_id == learner.id))
    assert f"/account/tokens/{token_id}/revoke" in page
    response = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 303 and response.headers["Location"] == "/account"
    html = client.get("/account").get_data(as_text=True)
    assert "is revoked" in html and "revoked " in html
    assert f"/account/tokens/{token_id}/revoke" not in html
    assert client.get("/api/v1/me", headers=bearer(learner)).status_code == 401
    assert accounts.AccountActions.TOKEN_REVOKED in _actions(loaded, learner.id)


def test_nobody_revokes_anyone_elses_token(
    client: FlaskClient, learner: Account, other: Account, loaded: sessionmaker[Session]
) -> None:
    log_in(client, learner)
    page = client.get("/account").get_data(as_text=True)
    with session_scope(loaded) as session:
        theirs = session.scalar(select(ApiToken.id).where(ApiToken.user_id == other.id))
    response = client.post(f"/account/tokens/{theirs}/revoke", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 404
    assert client.get("/api/v1/me", headers=bearer(other)).status_code == 200


def test_password_errors_name_the_field(client: FlaskClient, learner: Account) -> None:
    log_in(client, learner)
    for current, new, again, message in [
        ("wrong password!", NEW_PASSWORD, NEW_PASSWORD, "the current password is not right"),
        (PASSWORD, "short", "short", "the new password needs 10 to 1000 characters"),
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "!", "the two new passwords are not the same"),
        (PASSWORD, PASSWORD, PASSWORD, "the new password must differ from the current one"),
        ("", NEW_PASSWORD, NEW_PASSWORD, "enter your current password"),
    ]:
        page = client.get("/account").get_data(as_text=True)
        response = client.post(
            "/account/password",
            data={
                "csrf_token": csrf_token(page),
                "current_password": current,
                "new_password": new,
                "new_password_again": again,
            },
        )
        html = response.get_data(as_text=True)
        assert response.status_code == 400 and message in html, message
        assert re.search(r'class="field-error" id="[a-z_]+-error">[^<]*' + re.escape(message), html)
        assert _logged_in(client)
    assert _post_login(client.application.test_client(), learner.email, PASSWORD)[0] == 302


def test_the_account_page_needs_a_login(client: FlaskClient) -> None:
    response = client.get("/account")
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=/account"


# ---------------------------------------------------------------- 4. the token API


def test_the_token_api(client: FlaskClient, learner: Account, other: Account) -> None:
    listed = client.get("/api/v1/tokens", headers=bearer(learner))
    assert listed.status_code == 200
    tokens = listed.get_json()["tokens"]
    assert [token["name"] for token in tokens] == ["api"] and tokens[0]["prefix"] == learner.token[:10]
    assert (
        "secret" not in tokens[0]
        and "token_hash" not in tokens[0]
        and learner.token not in listed.get_data(as_text=True)
    )

    created = client.post("/api/v1/tokens", json={"name": "ci"}, headers=bearer(learner))
    assert created.status_code == 201
    body = created.get_json()
    assert body["name"] == "ci" and body["secret"].startswith("gr_") and body["revoked_at"] is None
    assert created.headers["Location"] == f"/api/v1/tokens/{body['id']}"
    new = {"Authorization": f"Bearer {body['secret']}"}
    shown = client.get(created.headers["Location"], headers=new)
    assert shown.status_code == 200 and "secret" not in shown.get_json()
    assert client.get(created.headers["Location"], headers=bearer(other)).status_code == 404

    assert client.delete(f"/api/v1/tokens/{body['id']}", headers=bearer(other)).status_code == 404
    assert client.get("/api/v1/me", headers=new).status_code == 200
    assert client.delete(f"/api/v1/tokens/{body['id']}", headers=bearer(learner)).status_code == 204
    assert client.delete(f"/api/v1/tokens/{body['id']}", headers=bearer(learner)).status_code == 204
    assert client.get("/api/v1/me", headers=new).status_code == 401
    after = client.get("/api/v1/tokens", headers=bearer(learner)).get_json()["tokens"]
    assert [(token["name"], token["revoked_at"] is None) for token in after] == [("api", True), ("ci", False)]
    assert client.delete("/api/v1/tokens/999999", headers=bearer(learner)).status_code == 404
    assert client.delete("/api/v1/tokens/abc", headers=bearer(learner)).status_code == 404


def test_a_token_records_its_use_at_most_once_a_minute(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    def last_used() -> object:
        listed = client.get("/api/v1/tokens", headers=bearer(learner)).get_json()["tokens"]
        return listed[0]["last_used_at"]

    first = last_used()
    assert first is not None  # the listing's own request used the token
    assert last_used() == first  # a second read within the minute writes nothing
    with session_scope(loaded) as session:
        token = session.scalar(select(ApiToken).where(ApiToken.user_id == learner.id))
        assert token is not None
        token.last_used_at = utcnow() - accounts.TOKEN_USE_RESOLUTION - timedelta(seconds=1)
    assert last_used() != first  # older than the minute: this request stamps it again


def test_token_api_input_names_the_field(client: FlaskClient, learner: Account) -> None:
    cases: list[tuple[dict[str, object], str]] = [
        ({"data": "name=ci"}, "body"),
        ({"json": ["ci"]}, "body"),
        ({"json": {}}, "name"),
        ({"json": {"name": ""}}, "name"),
        ({"json": {"name": 7}}, "name"),
        ({"json": {"name": "x" * 101}}, "name"),
    ]
    for kwargs, field in cases:
        response = client.post("/api/v1/tokens", headers=bearer(learner), **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 400, kwargs
        error = response.get_json()["error"]
        assert error["code"] == "invalid_input" and error["details"]["field"] == field and error["message"]
    assert [
        token["name"] for token in client.get("/api/v1/tokens", headers=bearer(learner)).get_json()["tokens"]
    ] == ["api"]


def test_active_tokens_are_capped(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    with session_scope(loaded) as session:
        for number in range(accounts.MAX_ACTIVE_TOKENS - 1):
            accounts.create_token(session, learner.id, f"token {number}")
    response = client.post("/api/v1/tokens", json={"name": "one more"}, headers=bearer(learner))
    assert response.status_code == 409 and response.get_json()["error"]["details"]["field"] == "name"
    with session_scope(loaded) as session:
        assert session.scalar(select(func.count(ApiToken.id)).where(ApiToken.user_id == learner.id)) == 25


def test_the_token_api_needs_a_token(client: FlaskClient) -> None:
    assert client.get("/api/v1/tokens").status_code == 401
    assert client.post("/api/v1/tokens", json={"name": "x"}).status_code == 401
    assert client.delete("/api/v1/tokens/1").status_code == 401


# ---------------------------------------------------------------- 5. the 401 challenge


def test_every_api_401_says_how_to_authenticate(client: FlaskClient, learner: Account) -> None:
    for path in ("/api/v1/me", "/api/v1/tokens"):
        missing = client.get(path)
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == 'Bearer realm="grader"'
        assert missing.get_json()["error"]["code"] == "authentication_required"
        bad = client.get(path, headers={"Authorization": "Bearer gr_not-a-real-token"})
        assert bad.status_code == 401
        assert bad.headers["WWW-Authenticate"].startswith('Bearer realm="grader", error="invalid_token"')
        basic = client.get(path, headers={"Authorization": "Basic YWRhOnB3"})
        assert basic.status_code == 401 and 'error="invalid_request"' in basic.headers["WWW-Authenticate"]
    assert "WWW-Authenticate" not in client.get("/api/v1/me", headers=bearer(learner)).headers


# ---------------------------------------------------------------- 6. headers and cookies


def _assert_security_headers(headers: dict[str, str]) -> None:
    policy = headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["X-Frame-Options"] == "DENY"


def test_every_page_and_api_response_has_the_security_headers(client: FlaskClient, learner: Account) -> None:
    anonymous = [
        client.get("/login"),
        client.get("/account"),
        client.get("/no-such-page"),
        client.get("/api/v1/me"),
    ]
    log_in(client, learner)
    pages = [client.get("/"), client.get("/account"), client.get("/programs/test-program")]
    api = [
        client.get("/api/v1/me", headers=bearer(learner)),
        client.get("/api/v1/tokens", headers=bearer(learner)),
        client.get("/api/v1/no-such-thing", headers=bearer(learner)),
    ]
    static = client.get("/static/account.css")
    for response in [*anonymous, *pages, *api, static]:
        _assert_security_headers(dict(response.headers))
        assert "Strict-Transport-Security" not in response.headers  # not in development
    for response in [*anonymous, *pages, *api]:
        assert response.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in pages[0].headers["Content-Security-Policy"]
    assert api[0].headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_a_view_policy_of_its_own_still_forbids_framing(app: Flask) -> None:
    @app.get("/test-download")
    def _download() -> tuple[str, int, dict[str, str]]:
        return "x", 200, {"Content-Security-Policy": "sandbox; default-src 'none'"}

    policy = app.test_client().get("/test-download").headers["Content-Security-Policy"]
    assert policy == "sandbox; default-src 'none'; frame-ancestors 'none'"


def test_the_session_cookie_in_development(client: FlaskClient, learner: Account) -> None:
    cookie = client.get("/login").headers["Set-Cookie"]
    assert cookie.startswith("session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie
    assert "Expires" not in cookie  # gone when the browser closes; the server limits it to 12 hours


def test_production_adds_hsts_and_secure_host_cookies(
    settings: Settings, loaded: sessionmaker[Session], queue: RecordingQueue, tmp_path: Path
) -> None:
    from grader.web import create_app

    app = create_app(replace(settings, env="production", secret_key="a" * 64), queue=queue)
    client = app.test_client()
    response = client.get("/login", base_url="https://grader.example")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    _assert_security_headers(dict(response.headers))
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-session=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie
    assert "Strict-Transport-Security" in client.get("/api/v1/me", base_url="https://grader.example").headers
    assert app.config["PERMANENT_SESSION_LIFETIME"] == timedelta(hours=12)


# ---------------------------------------------------------------- 7. CSRF on the forms


def test_cross_site_posts_without_a_token_are_refused(
    client: FlaskClient, learner: Account, loaded: sessionmaker[Session]
) -> None:
    assert client.post("/login", data={"email": learner.email, "password": PASSWORD}).status_code == 400
    log_in(client, learner)
    with session_scope(loaded) as session:
        token_id = session.scalar(select(ApiToken.id).where(ApiToken.user_id == learner.id))
    forged = {
        "/logout": {},
        "/account/tokens": {"name": "planted"},
        f"/account/tokens/{token_id}/revoke": {},
        "/account/password": {
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password_again": NEW_PASSWORD,
        },
        "/account/logout-everywhere": {},
    }
    for path, data in forged.items():
        for token in (None, "forged-token"):
            sent = {**data, "csrf_token": token} if token else data
            response = client.post(path, data=sent, headers={"Origin": "https://evil.example"})
            assert response.status_code == 400, path
            assert "CSRF" in response.get_data(as_text=True)
    # Nothing happened: still logged in, the same password, the token alive, none planted.
    assert _logged_in(client)
    assert client.get("/api/v1/me", headers=bearer(learner)).status_code == 200
    with session_scope(loaded) as session:
        names = session.scalars(select(ApiToken.name).where(ApiToken.user_id == learner.id)).all()
        assert list(names) == ["api"]
    assert _post_login(client.application.test_client(), learner.email, PASSWORD)[0] == 302
