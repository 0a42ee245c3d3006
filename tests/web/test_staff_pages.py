"""The staff workspace, as staff use it: accounts and roles, enrolment (one by one and by CSV with a
preview), token revocation, catalog status with the autograders' self-check, queue health with
retries, regrades with a preview, and the gradebook; each page and API route narrowed to the
programs the user runs."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.models import (
    ApiToken,
    AuditEvent,
    Enrollment,
    GradingRun,
    ProgramStaff,
    RunStatus,
    Submission,
    User,
)
from tests.conftest import PASSWORD, Account, bearer, make_account
from tests.support.catalogs import write_catalog
from tests.support.reviewed import hand_in, run_queued, write_repository_catalog
from tests.web.test_pages import csrf_token, log_in

SELF_CHECK = {
    "checked_at": "2026-11-30T09:15:00+00:00",
    "backend": "bwrap",
    "reference_passed": 1,
    "starter_failed": 1,
}


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    """The quiz programs and the reviewed repository program, side by side."""
    root = write_catalog(settings.catalog_path)
    write_repository_catalog(root)
    expected = {
        "format": 2,
        "suites": {"hidden": [{"id": "tests/test_it.py::test_it", "max_points": 1}]},
        "self_check": SELF_CHECK,
    }
    (root / "assessments/reviewed-repo/expected_tests.json").write_text(json.dumps(expected))
    return root


@pytest.fixture
def admin(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "root@example.org", role="admin")


@pytest.fixture
def runner(loaded: sessionmaker[Session]) -> Account:
    """Staff of the repository program only."""
    return make_account(loaded, "runner@example.org", role="reviewer", runs=("repo-program",))


def page(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True)[:2000])
    return response.get_data(as_text=True)


def post_form(client: FlaskClient, url: str, data: dict[str, object], *, page_url: str) -> tuple[int, str]:
    token = csrf_token(page(client, page_url))
    response = client.post(url, data={**data, "csrf_token": token})
    return response.status_code, response.get_data(as_text=True)


def text_of(html: str) -> str:
    """The page as a person reads it: tags gone, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def user_row(loaded: sessionmaker[Session], email: str) -> User:
    with loaded() as session:
        user = session.scalar(select(User).where(User.email == email))
        assert user is not None
        session.expunge(user)
        return user


def actions(loaded: sessionmaker[Session]) -> list[str]:
    with loaded() as session:
        return [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]


# ---------------------------------------------------------------- who may enter


def test_the_workspace_is_for_staff_only(client: FlaskClient, loaded: sessionmaker[Session]) -> None:
    assert client.get("/staff").status_code == 302
    learner = make_account(loaded, "ada@example.org", programs=("test-program",))
    reviewer = make_account(loaded, "rev@example.org", role="reviewer", reviews=("repo-program",))
    for account in (learner, reviewer):
        log_in(client, account)
        refused = client.get("/staff/queues")
        assert refused.status_code == 403 and "only staff" in refused.get_data(as_text=True).lower()
        api = client.get("/api/v1/staff/queues", headers=bearer(account))
        assert api.status_code == 403 and api.get_json()["error"]["code"] == "forbidden"
        client.post("/logout", data={"csrf_token": csrf_token(page(client, "/"))})
    assert client.get("/api/v1/staff/queues").status_code == 401


def test_staff_see_only_the_programs_they_run(client: FlaskClient, runner: Account, admin: Account) -> None:
    log_in(client, runner)
    home = text_of(page(client, "/staff"))
    assert "Repository program" in home and "Test program" not in home
    assert "Accounts and roles" not in home
    assert client.get("/staff/programs/test-program/enrolments").status_code == 403
    assert client.get("/staff/programs/test-program/gradebook").status_code == 403
    assert client.get("/staff/accounts").status_code == 403
    assert client.get("/api/v1/staff/users", headers=bearer(runner)).status_code == 403
    catalog = text_of(page(client, "/staff/catalog"))
    assert "Reviewed repository" in catalog and "HTTP basics" not in catalog
    log_in(client, admin)
    home = text_of(page(client, "/staff"))
    assert {"Repository program", "Test program", "Other program"} <= set(re.findall(r"\w+ program", home))


# ---------------------------------------------------------------- accounts and roles


def test_an_admin_creates_searches_and_changes_accounts(
    client: FlaskClient, admin: Account, loaded: sessionmaker[Session]
) -> None:
    log_in(client, admin)
    status, html = post_form(
        client,
        "/staff/accounts",
        {"email": "not-an-email", "name": "Grace <b>H</b>", "role": "reviewer", "password": "long enough pw"},
        page_url="/staff/accounts",
    )
    assert status == 400
    assert "The email address: that is not a valid email address" in text_of(html)
    assert 'value="not-an-email"' in html and "Grace &lt;b&gt;H&lt;/b&gt;" in html  # kept, escaped
    assert "long enough pw" not in html  # never the password
    status, html = post_form(
        client,
        "/staff/accounts",
        {"email": "grace@example.org", "name": "Grace", "role": "reviewer", "password": "short"},
        page_url="/staff/accounts",
    )
    assert status == 400 and "The password: the password needs at least 10 characters" in text_of(html)
    token = csrf_token(page(client, "/staff/accounts"))
    created = client.post(
        "/staff/accounts",
        data={
            "email": "Grace@Example.org",
            "name": "Grace",
            "role": "reviewer",
            "password": "long enough pw",
            "csrf_token": token,
        },
    )
    assert created.status_code == 302
    grace = user_row(loaded, "grace@example.org")
    assert grace.role == "reviewer"
    found = text_of(page(client, "/staff/accounts?q=grac&role=reviewer"))
    assert "grace@example.org" in found and "root@example.org" not in found and "1 account found" in found
    assert "grace@example.org" not in text_of(page(client, "/staff/accounts?q=grac&role=learner"))

    # A reviewer made staff of a program, then a learner again: the program role goes with it.
    status, _ = post_form(
        client,
        f"/staff/accounts/{grace.id}/programs",
        {"program": "test-program", "role": "staff"},
        page_url=f"/staff/accounts/{grace.id}",
    )
    assert status == 302
    assert "Test program staff Remove" in text_of(page(client, f"/staff/accounts/{grace.id}"))
    status, _ = post_form(
        client,
        f"/staff/accounts/{grace.id}/role",
        {"role": "learner"},
        page_url=f"/staff/accounts/{grace.id}",
    )
    assert status == 302 and user_row(loaded, "grace@example.org").role == "learner"
    with loaded() as session:
        assert (
            session.scalar(select(func.count(ProgramStaff.id)).where(ProgramStaff.user_id == grace.id)) == 0
        )
    assert {"user.created", "program_staff.added", "user.role_changed"} <= set(actions(loaded))

    # An admin cannot demote or deactivate themselves.
    me = user_row(loaded, admin.email)
    status, html = post_form(client, f"/staff/accounts/{me.id}/role", {"role": "learner"}, page_url="/staff")
    assert status == 409 and "ask another admin" in html


def test_deactivating_an_account_ends_its_sessions_and_tokens(
    client: FlaskClient, admin: Account, loaded: sessionmaker[Session], app: object
) -> None:
    from flask import Flask

    assert isinstance(app, Flask)
    ada = make_account(loaded, "ada@example.org", programs=("test-program",))
    ada_browser = app.test_client()
    log_in(ada_browser, ada)
    before = user_row(loaded, ada.email).session_generation
    log_in(client, admin)
    status, _ = post_form(client, f"/staff/accounts/{ada.id}/active", {"active": "0"}, page_url="/staff")
    assert status == 302
    after = user_row(loaded, ada.email)
    assert not after.active and after.session_generation == before + 1
    assert ada_browser.get("/").status_code == 302  # logged out
    assert client.get("/api/v1/me", headers=bearer(ada)).status_code == 401
    assert "account.deactivated" in actions(loaded)
    page_text = text_of(page(client, f"/staff/accounts/{ada.id}"))
    assert "deactivated" in page_text and "Reactivate the account" in page_text


def test_accounts_through_the_api(client: FlaskClient, admin: Account, loaded: sessionmaker[Session]) -> None:
    bad = client.post("/api/v1/staff/users", json={"email": "x@example.org"}, headers=bearer(admin))
    assert bad.status_code == 400 and bad.get_json()["error"]["details"]["field"] == "role"
    unknown = client.post("/api/v1/staff/users", json={"emial": "x"}, headers=bearer(admin))
    assert unknown.get_json()["error"]["details"]["field"] == "emial"
    created = client.post(
        "/api/v1/staff/users",
        json={"email": "lin@example.org", "name": "Lin", "role": "reviewer", "password": "long enough pw"},
        headers=bearer(admin),
    )
    assert created.status_code == 201 and created.headers["Location"].endswith(
        f"/users/{created.get_json()['id']}"
    )
    again = client.post(
        "/api/v1/staff/users",
        json={"email": "lin@example.org", "name": "Lin", "role": "reviewer", "password": "long enough pw"},
        headers=bearer(admin),
    )
    assert again.status_code == 409
    lin = created.get_json()["id"]
    listed = client.get("/api/v1/staff/users?q=lin", headers=bearer(admin)).get_json()
    assert [u["email"] for u in listed["users"]] == ["lin@example.org"] and listed["total"] == 1
    patched = client.patch(
        f"/api/v1/staff/users/{lin}", json={"role": "admin", "active": False}, headers=bearer(admin)
    )
    assert patched.status_code == 200 and patched.get_json()["role"] == "admin"
    assert patched.get_json()["active"] is False
    wrong = client.patch(f"/api/v1/staff/users/{lin}", json={"active": "no"}, headers=bearer(admin))
    assert wrong.status_code == 400 and wrong.get_json()["error"]["details"]["field"] == "active"
    assert (
        client.patch("/api/v1/staff/users/99999", json={"role": "admin"}, headers=bearer(admin)).status_code
        == 404
    )


# ---------------------------------------------------------------- the program's team


def test_staff_add_and_remove_reviewers_of_their_program(
    client: FlaskClient, runner: Account, loaded: sessionmaker[Session]
) -> None:
    make_account(loaded, "rev@example.org", role="reviewer")
    make_account(loaded, "ada@example.org", programs=("repo-program",))
    log_in(client, runner)
    url = "/staff/programs/repo-program/enrolments"
    status, html = post_form(
        client,
        "/staff/programs/repo-program/team",
        {"email": "ada@example.org", "role": "reviewer"},
        page_url=url,
    )
    assert status == 409 and "is a learner account" in html and 'value="ada@example.org"' in html
    status, _ = post_form(
        client,
        "/staff/programs/repo-program/team",
        {"email": "rev@example.org", "role": "reviewer"},
        page_url=url,
    )
    assert status == 302
    team = text_of(page(client, url))
    assert "rev@example.org rev reviewer" in team
    rev = user_row(loaded, "rev@example.org")
    status, _ = post_form(client, f"/staff/programs/repo-program/team/{rev.id}/remove", {}, page_url=url)
    assert status == 302 and "rev@example.org" not in text_of(page(client, url))
    # The API does the same; another program's team is not theirs to change.
    added = client.post(
        "/api/v1/staff/programs/repo-program/staff",
        json={"email": "rev@example.org", "role": "staff"},
        headers=bearer(runner),
    )
    assert added.status_code == 200 and added.get_json()["role"] == "staff"
    other = client.post(
        "/api/v1/staff/programs/test-program/staff",
        json={"email": "rev@example.org", "role": "staff"},
        headers=bearer(runner),
    )
    assert other.status_code == 403
    assert (
        client.delete(
            f"/api/v1/staff/programs/repo-program/staff/{rev.id}", headers=bearer(runner)
        ).status_code
        == 204
    )
    assert actions(loaded).count("program_staff.removed") == 2


# ---------------------------------------------------------------- enrolment


def test_enrolling_one_learner_makes_the_account_and_shows_its_password_once(
    client: FlaskClient, runner: Account, loaded: sessionmaker[Session], app: object
) -> None:
    from flask import Flask

    assert isinstance(app, Flask)
    log_in(client, runner)
    url = "/staff/programs/repo-program/enrolments"
    token = csrf_token(page(client, url))
    response = client.post(
        "/staff/programs/repo-program/enrolments",
        data={"email": "New@Example.org", "name": "New Learner", "csrf_token": token},
    )
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    password = re.search(r'<code class="secret">([^<]+)</code>', html)
    assert password and "shown only on this page, this once" in text_of(html)
    learner_browser = app.test_client()
    login_page = learner_browser.get("/login").get_data(as_text=True)
    logged_in = learner_browser.post(
        "/login",
        data={
            "email": "new@example.org",
            "password": password.group(1),
            "csrf_token": csrf_token(login_page),
        },
    )
    assert logged_in.status_code == 302
    assert "Repository program" in learner_browser.get("/").get_data(as_text=True)
    # Again: a conflict, on the same page, the email kept.
    status, html = post_form(
        client, "/staff/programs/repo-program/enrolments", {"email": "new@example.org"}, page_url=url
    )
    assert status == 409 and "already enrolled" in html and 'value="new@example.org"' in html
    assert "new@example.org" in text_of(page(client, url))
    assert {"user.created", "enrolment.created"} <= set(actions(loaded))


CSV = (
    "email,name,password\r\n"
    "ok@example.org,Okay Learner,\r\n"
    "with-pass@example.org,Has Password,a-good-password\r\n"
    "not an email,Bad Email,\r\n"
    "OK@example.org,Twice,\r\n"
    "ada@example.org,Already In,\r\n"
    "bob@example.org,Not Yet,ignored-password\r\n"
    "short@example.org,Short,abc\r\n"
    "rev@example.org,A Reviewer,\r\n"
    "\r\n"
    '=cmd@example.org,=HYPERLINK("x"),\r\n'
)


def test_a_csv_import_is_previewed_row_by_row_and_only_the_confirm_writes(
    client: FlaskClient, runner: Account, loaded: sessionmaker[Session]
) -> None:
    make_account(loaded, "ada@example.org", programs=("repo-program",))
    make_account(loaded, "bob@example.org")
    make_account(loaded, "rev@example.org", role="reviewer")
    log_in(client, runner)
    url = "/staff/programs/repo-program/enrolments"
    token = csrf_token(page(client, url))
    preview = client.post(
        "/staff/programs/repo-program/enrolments/import",
        data={"file": (io.BytesIO(CSV.encode()), "learners.csv"), "csrf_token": token},
        content_type="multipart/form-data",
    )
    assert preview.status_code == 200 and preview.headers["Cache-Control"] == "no-store"
    html = preview.get_data(as_text=True)
    words = text_of(html)
    assert "Nothing has been written yet" in words
    for line, expected in [
        ("2 ok@example.org", "new account with a generated password, shown once, then enrolled"),
        ("3 with-pass@example.org", "new account with the password in the file, then enrolled"),
        ("4 not an email", "Error: not a valid email address"),
        ("5 ok@example.org", "Error: duplicate in the file: the same email is on line 2"),
        ("6 ada@example.org", "Skipped: already enrolled: nothing changes"),
        ("7 bob@example.org", "existing account enrolled; the password in the file is ignored"),
        ("8 short@example.org", "Error: the password needs at least 10 characters"),
        (
            "9 rev@example.org",
            "Error: rev@example.org is a reviewer account: only learner accounts are enrolled",
        ),
    ]:
        assert re.search(re.escape(line) + r" .{0,40}" + re.escape(expected), words), (line, expected)
    assert "a-good-password" not in words  # passwords are never shown back
    with loaded() as session:
        assert session.scalar(select(func.count(User.id)).where(User.email == "ok@example.org")) == 0
    # The confirm step carries the same file back; a changed file is refused.
    carried = re.search(r'name="file" value="([^"]+)"', html)
    digest = re.search(r'name="digest" value="([0-9a-f]{64})"', html)
    assert carried and digest
    forged = client.post(
        "/staff/programs/repo-program/enrolments/import/confirm",
        data={"file": carried.group(1), "digest": "0" * 64, "csrf_token": csrf_token(html)},
    )
    assert forged.status_code == 409 and "not the file that was previewed" in forged.get_data(as_text=True)
    done = client.post(
        "/staff/programs/repo-program/enrolments/import/confirm",
        data={"file": carried.group(1), "digest": digest.group(1), "csrf_token": csrf_token(html)},
    )
    assert done.status_code == 200 and done.headers["Cache-Control"] == "no-store"
    done_text = text_of(done.get_data(as_text=True))
    assert "4 learners enrolled from the file" in done_text
    assert re.search(r"ok@example.org Okay Learner new [A-Za-z0-9_-]{16}", done_text)
    assert "with-pass@example.org Has Password new from the file" in done_text
    with loaded() as session:
        enrolled = set(
            session.scalars(
                select(User.email)
                .join(Enrollment, Enrollment.user_id == User.id)
                .where(Enrollment.program_id.isnot(None))
            )
        )
    assert {"ok@example.org", "with-pass@example.org", "bob@example.org", "ada@example.org"} <= enrolled
    assert "short@example.org" not in enrolled and "rev@example.org" not in enrolled
    # The formula-looking row was created as text (and will be exported as text).
    assert "=cmd@example.org" in enrolled


def test_the_import_refuses_files_over_the_limits_in_human_units(
    client: FlaskClient, runner: Account
) -> None:
    log_in(client, runner)
    url = "/staff/programs/repo-program/enrolments"
    assert "up to 128 KB and 500 learners" in text_of(page(client, url))
    big = "email,name\r\n" + "".join(f"l{i:06d}@example.org,Learner {i}\r\n" for i in range(5000))
    token = csrf_token(page(client, url))
    response = client.post(
        "/staff/programs/repo-program/enrolments/import",
        data={"file": (io.BytesIO(big.encode()), "big.csv"), "csrf_token": token},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert "The file: the file is larger than 128 KB" in text_of(response.get_data(as_text=True))
    many = "email,name\r\n" + "".join(f"l{i}@x.org,L\r\n" for i in range(501))
    response = client.post(
        "/staff/programs/repo-program/enrolments/import",
        data={"file": (io.BytesIO(many.encode()), "many.csv"), "csrf_token": token},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413 and "more than 500 learners" in response.get_data(as_text=True)
    headerless = client.post(
        "/staff/programs/repo-program/enrolments/import",
        data={"file": (io.BytesIO(b"ada@example.org,Ada\r\n"), "x.csv"), "csrf_token": token},
        content_type="multipart/form-data",
    )
    assert headerless.status_code == 400 and "the header email,name" in headerless.get_data(as_text=True)


def test_enrolment_through_the_api(
    client: FlaskClient, runner: Account, loaded: sessionmaker[Session]
) -> None:
    one = client.post(
        "/api/v1/staff/programs/repo-program/enrolments",
        json={"email": "api@example.org", "name": "Api"},
        headers=bearer(runner),
    )
    assert one.status_code == 201 and one.get_json()["created"] and len(one.get_json()["password"]) >= 10
    body = "email,name\nfresh@example.org,Fresh\napi@example.org,Again\n"
    headers = {**bearer(runner), "Content-Type": "text/csv"}
    dry = client.post("/api/v1/staff/programs/repo-program/enrolments?dry_run=1", data=body, headers=headers)
    assert dry.status_code == 200
    preview = dry.get_json()
    assert preview["counts"] == {"create": 1, "enrol": 0, "skip": 1, "error": 0}
    assert [r["action"] for r in preview["rows"]] == ["create", "skip"]
    with loaded() as session:
        assert session.scalar(select(User.id).where(User.email == "fresh@example.org")) is None
    changed = client.post(
        f"/api/v1/staff/programs/repo-program/enrolments?digest={preview['digest']}",
        data=body + "x@example.org,X\n",
        headers=headers,
    )
    assert changed.status_code == 409
    applied = client.post(
        f"/api/v1/staff/programs/repo-program/enrolments?digest={preview['digest']}",
        data=body,
        headers=headers,
    )
    assert applied.status_code == 200
    assert [e["email"] for e in applied.get_json()["enrolled"]] == ["fresh@example.org"]
    elsewhere = client.post(
        "/api/v1/staff/programs/test-program/enrolments",
        json={"email": "z@example.org"},
        headers=bearer(runner),
    )
    assert elsewhere.status_code == 403


def test_staff_revoke_the_tokens_of_their_own_learners_only(
    client: FlaskClient, runner: Account, loaded: sessionmaker[Session]
) -> None:
    ada = make_account(loaded, "ada@example.org", programs=("repo-program",))
    outsider = make_account(loaded, "out@example.org", programs=("test-program",))
    log_in(client, runner)
    url = "/staff/programs/repo-program/enrolments"
    assert client.get("/api/v1/me", headers=bearer(ada)).status_code == 200
    status, _ = post_form(
        client, f"/staff/programs/repo-program/learners/{ada.id}/tokens/revoke", {}, page_url=url
    )
    assert status == 302
    assert client.get("/api/v1/me", headers=bearer(ada)).status_code == 401
    assert "token.revoked" in actions(loaded)
    refused = client.delete(f"/api/v1/staff/users/{outsider.id}/tokens", headers=bearer(runner))
    assert refused.status_code == 404
    assert client.get("/api/v1/me", headers=bearer(outsider)).status_code == 200
    with loaded() as session:
        assert (
            session.scalar(
                select(func.count(ApiToken.id)).where(
                    ApiToken.user_id == ada.id, ApiToken.revoked_at.is_(None)
                )
            )
            == 0
        )


# ---------------------------------------------------------------- catalog status


def test_catalog_status_shows_versions_and_the_recorded_self_check(
    client: FlaskClient, runner: Account, admin: Account, settings: Settings
) -> None:
    log_in(client, runner)
    html = page(client, "/staff/catalog")
    words = text_of(html)
    assert "Reviewed repository" in words and "v1, loaded" in words
    assert (
        "passed on bwrap, recorded 2026-11-30 09:15 UTC: the reference passed 1 test, the starter failed 1; "
        "1 test pinned"
    ) in words
    assert f"grader catalog load {settings.catalog_path}" in words
    assert "Load the catalog" not in words and "Only an admin can load" in words
    token = csrf_token(html)
    assert client.post("/staff/catalog/load", data={"csrf_token": token}).status_code == 403
    api = client.get("/api/v1/staff/catalog", headers=bearer(runner)).get_json()
    (repo,) = api["assessments"]
    assert repo["self_check"] == SELF_CHECK and repo["pinned_tests"] == 1 and repo["current_version"] == 1

    # An admin loads a changed catalog: a new version; a broken one: its problems as file:line.
    rubric = settings.catalog_path / "rubrics/reviewed.yaml"
    rubric.write_text(rubric.read_text().replace("title: Tests and review", "title: Tests and a review"))
    log_in(client, admin)
    status, html = post_form(client, "/staff/catalog/load", {}, page_url="/staff/catalog")
    assert status == 200 and "assessment reviewed-repo v2" in text_of(html)
    assert "v2, loaded" in text_of(page(client, "/staff/catalog"))
    (settings.catalog_path / "programs/broken.yaml").write_text("slug: broken\ntitle: 3\n")
    status, html = post_form(client, "/staff/catalog/load", {}, page_url="/staff/catalog")
    assert status == 422 and "programs/broken.yaml:" in html
    broken = client.post("/api/v1/staff/catalog/load", headers=bearer(admin))
    assert broken.status_code == 422 and broken.get_json()["error"]["details"]["problems"]


def test_the_self_check_is_recorded_once_per_outcome(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from grader.catalog.bundle import ExpectedTest, ExpectedTests, SelfCheck
    from grader.catalog.schema import RepositoryAssessment
    from grader.services.trial import _record

    assessment = RepositoryAssessment.model_validate(
        {
            "slug": "adder",
            "kind": "repository",
            "title": "A",
            "rubric": "reviewed",
            "tests": [{"kind": "pytest", "id": "hidden", "path": "tests"}],
        }
    )
    path = tmp_path / "expected_tests.json"
    tests = {"hidden": (ExpectedTest("tests/test_a.py::test_a", 1.0),)}
    first = ExpectedTests(tests, self_check=SelfCheck(datetime(2026, 1, 1, tzinfo=UTC), "bwrap", 1, 1))
    _record(path, first, assessment)
    written = path.read_text()
    assert json.loads(written)["self_check"]["checked_at"] == "2026-01-01T00:00:00+00:00"
    # The same findings later: the file (part of the assessment's content) stays as it was.
    _record(
        path,
        ExpectedTests(tests, self_check=SelfCheck(datetime(2026, 2, 1, tzinfo=UTC), "bwrap", 1, 1)),
        assessment,
    )
    assert path.read_text() == written
    # Another backend is another outcome: recorded.
    _record(
        path,
        ExpectedTests(tests, self_check=SelfCheck(datetime(2026, 2, 1, tzinfo=UTC), "docker", 1, 1)),
        assessment,
    )
    assert json.loads(path.read_text())["self_check"]["backend"] == "docker"


# ---------------------------------------------------------------- queue health, retries, regrades


def _fail_last_run(loaded: sessionmaker[Session], submission_id: str, error: str) -> str:
    with loaded() as session:
        run = session.scalars(
            select(GradingRun)
            .where(GradingRun.submission_id == submission_id)
            .order_by(GradingRun.requested_at.desc())
        ).first()
        assert run is not None
        run.status, run.last_error, run.tries = RunStatus.ERROR, error, 3
        submission = session.get(Submission, submission_id)
        assert submission is not None
        submission.status = "error"
        session.commit()
        return run.id


def test_queue_health_shows_waiting_runs_errors_and_reviews_and_retries_a_run(
    client: FlaskClient, runner: Account, loaded: sessionmaker[Session], queue: RecordingQueue
) -> None:
    ada = make_account(loaded, "ada@example.org", programs=("repo-program",))
    graded = hand_in(client, ada)
    run_queued(queue, loaded)  # waits for a review now
    waiting = hand_in(client, ada)  # stays queued
    # Another learner's: a newer hand-in of Ada's would replace her waiting one.
    bob = make_account(loaded, "bob@example.org", programs=("repo-program",))
    failed = hand_in(client, bob)
    queue.sent.clear()
    run_id = _fail_last_run(loaded, failed, "sandbox unavailable: <docker> is not running")
    log_in(client, runner)
    html = page(client, "/staff/queues")
    words = text_of(html)
    assert re.search(r"sandbox 1 0 \d{4}-\d\d-\d\d", words)  # one waiting, none running
    assert "The oldest run waiting has waited less than a minute in the sandbox queue" in words
    assert "sandbox unavailable: &lt;docker&gt; is not running" in html  # escaped
    assert "bob@example.org" in words and "after 3 tries" in words
    assert re.search(r"Reviewed repository 1 0 less than a minute", words)
    api = client.get("/api/v1/staff/queues", headers=bearer(runner)).get_json()
    assert [e["run"] for e in api["errors"]] == [run_id]
    assert {q["queue"]: q["queued"] for q in api["queues"]}["sandbox"] == 1
    assert api["reviews_waiting"][0]["open"] == 1

    status, _ = post_form(
        client, f"/staff/runs/{run_id}/retry", {"reason": "docker is back"}, page_url="/staff/queues"
    )
    assert status == 302
    assert len(queue.sent) == 1
    with loaded() as session:
        runs = session.scalars(select(GradingRun).where(GradingRun.submission_id == failed)).all()
        assert sorted(r.reason for r in runs) == ["retry", "submitted"]
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "run.retried")).one()
        assert event.reason == "docker is back" and event.submission_id == failed
    again = client.post(f"/api/v1/staff/runs/{run_id}/retry", headers=bearer(runner))
    assert again.status_code == 409
    # Staff of another program do not see this program's runs.
    other = make_account(loaded, "other@example.org", role="reviewer", runs=("test-program",))
    assert client.post(f"/api/v1/staff/runs/{run_id}/retry", headers=bearer(other)).status_code == 404
    assert client.get("/api/v1/staff/queues", headers=bearer(other)).get_json()["errors"] == []
    assert graded and waiting


def test_a_regrade_is_previewed_then_run_with_a_reason(
    client: FlaskClient, runner: Account, loaded: sessionmaker[Session], queue: RecordingQueue
) -> None:
    ada = make_account(loaded, "ada@example.org", programs=("repo-program",))
    bob = make_account(loaded, "bob@example.org", programs=("repo-program",))
    hand_in(client, ada)
    hand_in(client, ada)
    hand_in(client, bob)
    run_queued(queue, loaded)
    busy = hand_in(client, bob)  # queued: a regrade skips it
    queue.sent.clear()
    log_in(client, runner)
    url = "/staff/assessments/reviewed-repo/regrade"
    words = text_of(page(client, url))
    assert "It grades 3 submissions again against version 1, of 4 in all" in words
    assert "1 is busy (waiting for or in grading) and will be skipped" in words and busy[:12] in words
    latest = text_of(page(client, url + "?only_latest=1"))
    assert "It grades 1 submission again against version 1 (each learner's newest), of 2 in all" in latest
    status, html = post_form(client, url, {"reason": "the hidden tests were fixed"}, page_url=url)
    assert status == 400 and "The confirmation: confirm the regrade" in text_of(html)
    assert "the hidden tests were fixed" in html  # the reason is kept
    status, html = post_form(client, url, {"reason": "short", "confirm": "yes"}, page_url=url)
    assert status == 400 and "The reason: say why in the reason, in at least 10 characters" in text_of(html)
    status, html = post_form(
        client, url, {"reason": "the hidden tests were fixed", "confirm": "yes"}, page_url=url
    )
    assert status == 200 and "3 submissions queued for grading against version 1; 1 skipped" in text_of(html)
    assert len(queue.sent) == 3
    assert actions(loaded).count("regrade.requested") == 3 and "assessment.regraded" in actions(loaded)
    api = client.get("/api/v1/staff/assessments/reviewed-repo/regrade", headers=bearer(runner)).get_json()
    assert api["submissions"] == 4 and len(api["busy"]) == 4  # everything is queued now
    refused = client.post(
        "/api/v1/staff/assessments/reviewed-repo/regrade",
        json={"reason": "the hidden tests were fixed"},
        headers=bearer(runner),
    )
    assert refused.status_code == 400 and refused.get_json()["error"]["details"]["field"] == "confirm"
    other = make_account(loaded, "other@example.org", role="reviewer", runs=("test-program",))
    assert (
        client.get("/api/v1/staff/assessments/reviewed-repo/regrade", headers=bearer(other)).status_code
        == 403
    )


# ---------------------------------------------------------------- the gradebook


def test_the_gradebook_shows_each_learners_requirements_and_exports_csv(
    client: FlaskClient, runner: Account, loaded: sessionmaker[Session], queue: RecordingQueue
) -> None:
    from grader.services import review_queue, reviews
    from rubrics import Review

    ada = make_account(loaded, "ada@example.org", programs=("repo-program",))
    make_account(loaded, "bob@example.org", programs=("repo-program",))
    with loaded() as session:
        mallory = User(email="mal@example.org", name='=HYPERLINK("http://x")', password_hash="x")
        session.add(mallory)
        session.flush()
        session.add(
            Enrollment(
                user_id=mallory.id,
                program_id=session.scalar(select(Enrollment.program_id).where(Enrollment.user_id == ada.id)),
            )
        )
        session.commit()
    hand_in(client, ada)
    run_queued(queue, loaded)
    log_in(client, runner)
    words = text_of(page(client, "/staff/programs/repo-program/gradebook"))
    assert "3 of 3 enrolled learners shown" in words
    assert re.search(r"ada ada@example.org pending 0 of 1 not yet", words)
    assert re.search(r"bob bob@example.org not attempted 0 of 1 not yet", words)
    reviewer = user_row(loaded, runner.email)
    with loaded() as session:
        (task,) = review_queue.queue(session, reviewer).items
        review_queue.claim(session, reviewer, task.task_id)
        reviews.submit(
            session, reviewer, task.task_id, reviews.ReviewInput(reviews=(Review("design", level="strong"),))
        )
        session.commit()
    words = text_of(page(client, "/staff/programs/repo-program/gradebook"))
    assert re.search(r"ada ada@example.org passed 100% 1 of 1 awarded", words)
    only = text_of(page(client, "/staff/programs/repo-program/gradebook?status=not_attempted"))
    assert "bob@example.org" in only and "ada@example.org" not in only and "2 of 3 enrolled" in only
    bad = client.get("/staff/programs/repo-program/gradebook?status=great")
    assert bad.status_code == 400 and "The status: filter by one of the statuses" in text_of(
        bad.get_data(as_text=True)
    )
    csv_response = client.get("/staff/programs/repo-program/gradebook?format=csv")
    assert csv_response.status_code == 200 and csv_response.mimetype == "text/csv"
    assert csv_response.headers["Content-Disposition"] == 'attachment; filename="gradebook-repo-program.csv"'
    lines = csv_response.get_data(as_text=True).splitlines()
    assert lines[0] == "email,name,reviewed-repo status,reviewed-repo best,requirements passed,credential"
    assert "ada@example.org,ada,passed,1.00,1 of 1,awarded" in lines
    assert any(line.startswith("mal@example.org,\"'=HYPERLINK(") for line in lines)  # never a formula
    api = client.get(
        "/api/v1/staff/programs/repo-program/gradebook?status=passed", headers=bearer(runner)
    ).get_json()
    assert [r["learner"]["email"] for r in api["rows"]] == ["ada@example.org"]
    assert api["rows"][0]["requirements"][0] == {
        "assessment": "reviewed-repo",
        "status": "passed",
        "held_back_from_learner": False,
        "best_fraction": 1.0,
        "submission": api["rows"][0]["requirements"][0]["submission"],
    }
    assert (
        client.get(
            "/api/v1/staff/programs/repo-program/gradebook?format=xml", headers=bearer(runner)
        ).status_code
        == 400
    )
    assert PASSWORD
