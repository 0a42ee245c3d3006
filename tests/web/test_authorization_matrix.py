"""The authorisation matrix: every route of the app, as each kind of user, answers with the status of its
cell in `tests/web/authz_matrix.py`.

One world is seeded once per module (a learner's reviewed, waiting and failed hand-ins, their quiz result,
a regrade request, a comment bank entry, and one account of each kind); each cell runs against a copy of
that world's database, so what a cell changes (a claim, a logout, a revoked token) never reaches another.
Every user logs in once, through the login form, and each cell sends that user's session cookie and the
CSRF token of their session, or their API token: no check is switched off for the test.
"""

from __future__ import annotations

import io
import re
import sqlite3
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from grader.catalog.loader import read_catalog
from grader.config import Settings
from grader.db import make_engine, make_session_factory, session_scope
from grader.interfaces import RecordingQueue
from grader.migrate import upgrade
from grader.models import ApiToken, CredentialAward, Program, ReviewSlot, ReviewTask, User
from grader.models import Review as ReviewRow
from grader.services import credentials, portfolios, review_queue, reviews, staff
from grader.services.catalog import load_catalog
from grader.services.grading import claim_run, release_run
from grader.services.reviews import ReviewInput
from grader.storage import file_store
from grader.web import create_app
from grader.web.context import EXTENSION, WebContext
from rubrics import Review
from tests.conftest import PASSWORD, Account, bearer, make_account
from tests.support.catalogs import write_catalog
from tests.support.portfolio import PROGRAM_SLUG, REFLECTION, png, write_portfolio_catalog
from tests.support.reviewed import REVIEWED_REPO, hand_in, run_queued, write_repository_catalog
from tests.web.authz_matrix import LOGGED_OUT, LOGIN, ROUTES, Route

# The repository assessment of tests/support/reviewed.py with room for the three hand-ins of the world
# and one more, and a rubric with two manual criteria: one reviewed and asked to be regraded, the other
# still free for a cell's own regrade request.
MATRIX_REPO = REVIEWED_REPO + "attempts: {max: 5, cooldown_seconds: 0}\n"
MATRIX_RUBRIC = """\
id: reviewed
title: Tests and review
pass_mark: 0.7
criteria:
  - {id: tests, title: Tests, auto: {kind: test_points}, max_points: 60}
  - id: design
    title: Design
    manual: true
    levels: [{label: weak, points: 4}, {label: strong, points: 17}]
  - id: style
    title: Style
    manual: true
    levels: [{label: weak, points: 4}, {label: strong, points: 17}]
  - {id: docs, title: Documentation, auto: {kind: files_present, files: [README.md]}, max_points: 6}
"""
STRONG = (Review("design", level="strong", comment="Clear."), Review("style", level="strong"))


@dataclass
class Visitor:
    """How one kind of user comes: a session cookie and its CSRF token for pages, a token for the API."""

    cookie: str
    csrf: str
    account: Account | None


@dataclass
class World:
    """The seeded world: the app, its database as a template for each cell, and who comes to it."""

    app: Flask
    template: sqlite3.Connection
    cell: Path  # the database file each cell gets as a fresh copy of the template
    engine: Engine  # the app's engine on `cell`, kept across cells for its compiled statements
    visitors: dict[str, Visitor]
    ids: dict[str, str]


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def _visit(app: Flask, account: Account | None) -> Visitor:
    """Log in through the form, as a browser does; the CSRF token is read from a page of the session."""
    client = app.test_client()
    login_page = client.get("/login")
    if account is None:
        token = _csrf(login_page.get_data(as_text=True))
    else:
        response = client.post(
            "/login",
            data={
                "email": account.email,
                "password": PASSWORD,
                "csrf_token": _csrf(login_page.get_data(True)),
            },
        )
        assert response.status_code == 302, response.get_data(as_text=True)
        token = _csrf(client.get("/account").get_data(as_text=True))
    cookie = client.get_cookie("session")
    assert cookie is not None
    return Visitor(cookie=cookie.value, csrf=token, account=account)


def _quiz_result(
    client: FlaskClient, learner: Account, queue: RecordingQueue, sessions: sessionmaker[Session]
) -> tuple[str, str]:
    started = client.post("/api/v1/assessments/timed/attempts", json={}, headers=bearer(learner))
    assert started.status_code == 201, started.get_json()
    attempt = started.get_json()
    answers = {q["id"]: True for q in attempt["questions"]}
    submitted = client.post(
        "/api/v1/submissions",
        json={"assessment": "timed", "attempt": attempt["id"], "answers": answers},
        headers=bearer(learner),
    )
    assert submitted.status_code == 202, submitted.get_json()
    run_queued(queue, sessions)
    return str(attempt["id"]), str(submitted.get_json()["id"])


def _task_of(session: Session, submission_id: str, slot: str = ReviewSlot.FIRST) -> ReviewTask:
    task = session.scalar(
        select(ReviewTask).where(ReviewTask.submission_id == submission_id, ReviewTask.slot == slot)
    )
    assert task is not None
    return task


def _credential_of(session: Session, learner: User, slug: str) -> str:
    """The credential the learner earned in the program (pending until the caller signs it)."""
    award = session.scalars(
        select(CredentialAward)
        .join(Program)
        .where(CredentialAward.user_id == learner.id, Program.slug == slug)
    ).one()
    credential = credentials.live_credential(award)
    assert credential is not None
    return credential.id


def _seed(tmp: Path) -> World:
    settings = Settings(
        data_dir=tmp / "var",
        secret_key="test-secret-key",
        catalog_path=tmp / "catalog",
        submissions_per_hour=100,
    )
    root = write_catalog(settings.catalog_path)
    write_repository_catalog(root, rubric=MATRIX_RUBRIC)
    (root / "assessments/reviewed-repo/assessment.yaml").write_text(MATRIX_REPO)
    write_portfolio_catalog(root)
    engine = make_engine(settings)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with session_scope(sessions) as session:
        load_catalog(session, read_catalog(root))
    both = ("repo-program", "test-program", PROGRAM_SLUG)
    accounts: dict[str, Account | None] = {
        "anonymous": None,
        "learner": make_account(sessions, "ada@example.org", programs=both),
        "other_learner": make_account(sessions, "bob@example.org", programs=both),
        "outside_reviewer": make_account(
            sessions, "olga@example.org", "reviewer", reviews=("other-program",)
        ),
        "reviewer": make_account(sessions, "rui@example.org", "reviewer", reviews=("repo-program",)),
        "staff": make_account(sessions, "stella@example.org", "reviewer", runs=("repo-program",)),
        "admin": make_account(sessions, "root@example.org", "admin"),
        # Not a column of the matrix: staff of another program, for the checks that tell staff apart.
        "outside_staff": make_account(sessions, "otto@example.org", "reviewer", runs=("test-program",)),
    }
    ada, rui, stella = accounts["learner"], accounts["reviewer"], accounts["staff"]
    assert ada is not None and rui is not None and stella is not None
    with session_scope(sessions) as session:
        # An event of no assessment in the audit log: for admins' eyes only.
        admin = session.scalar(select(User).where(User.role == "admin"))
        assert admin is not None
        staff.create_account(
            session, admin, email="carol@example.org", name="Carol", role="reviewer", password=PASSWORD
        )

    queue = RecordingQueue()
    app = create_app(settings, queue=queue)
    client = app.test_client()
    attempt, quiz = _quiz_result(client, ada, queue, sessions)

    reviewed = hand_in(client, ada)
    run_queued(queue, sessions, settings)
    with session_scope(sessions) as session:
        reviewer = session.get(User, rui.id)
        assert reviewer is not None
        first = review_queue.claim(session, reviewer, _task_of(session, reviewed).id)
        outcome = reviews.submit(session, reviewer, first.id, ReviewInput(reviews=STRONG))
        assert outcome.settled
        review_id = session.scalar(select(ReviewRow.id).where(ReviewRow.task_id == first.id))
        entry = reviews.add_to_bank(session, reviewer, "reviewed", "Name the steps.", "design").id

    waiting = hand_in(client, ada)
    run_queued(queue, sessions, settings)
    with session_scope(sessions) as session:
        reviewer = session.get(User, rui.id)
        assert reviewer is not None
        task = review_queue.claim(session, reviewer, _task_of(session, waiting).id).id

    asked = client.post(
        f"/api/v1/submissions/{reviewed}/regrade-requests",
        json={"criterion": "design", "reason": "The design section explains each step."},
        headers=bearer(ada),
    )
    assert asked.status_code == 201, asked.get_json()
    with session_scope(sessions) as session:
        holder = session.get(User, stella.id)
        assert holder is not None
        regrade_task = review_queue.claim(
            session, holder, _task_of(session, reviewed, ReviewSlot.REGRADE).id
        ).id

    hand_in(client, ada)  # its grading run ends in error: the staff's retry
    run_id, _ = queue.sent.pop(0)
    with session_scope(sessions) as session:
        claim = claim_run(session, run_id, worker="test", lease_seconds=30)
        assert claim is not None
        release_run(session, claim, "the worker was lost", max_tries=1)

    with session_scope(sessions) as session:
        token = session.scalar(select(ApiToken.id).where(ApiToken.user_id == ada.id))
        # Ada's portfolio draft, every required slot filled; its file is the item the routes name.
        learner = session.get(User, ada.id)
        assert learner is not None
        shot = portfolios.add_file(
            session, file_store(settings), learner, "showcase", "screenshot", "shot.png", png()
        )
        portfolios.set_link(session, learner, "showcase", "repo", "https://github.com/ada/service")
        portfolios.set_statement(session, learner, "showcase", "reflection", REFLECTION)
        portfolio_item = shot.id
        credential = _credential_of(session, learner, "repo-program")
    with session_scope(sessions) as session:
        assert credentials.issue(session, credential, credentials.issuer_identity(settings))
    ids = {
        "attempt": attempt,
        "quiz": quiz,
        "reviewed": reviewed,
        "waiting": waiting,
        "failed_run": run_id,
        "task": str(task),
        "regrade_task": str(regrade_task),
        "review": str(review_id),
        "entry": str(entry),
        "token": str(token),
        "portfolio_item": str(portfolio_item),
        "credential": credential,
        "learner_id": str(ada.id),
        "learner_email": ada.email,
        "reviewer_id": str(rui.id),
        "reviewer_email": rui.email,
        "outsider_email": "olga@example.org",
    }
    visitors = {who: _visit(app, account) for who, account in accounts.items()}
    engine.dispose()
    context: WebContext = app.extensions[EXTENSION]
    context.sessions.kw["bind"].dispose()
    # From here on the app reads and writes the cell's copy; the template is only ever copied.
    cell = tmp / "cell.db"
    cell_engine = make_engine(replace(settings, database_url=f"sqlite:///{cell}"))
    context.sessions = make_session_factory(cell_engine)
    template = sqlite3.connect(settings.data_dir / "grader.db")
    return World(app, template, cell, cell_engine, visitors, ids)


# Every cell copies a database, writes to it and deletes it: on a disk each of these waits for fsync, in
# memory it does not (the matrix takes about 20 s instead of 70 s on the 2-core development machine).
IN_MEMORY = Path("/dev/shm")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with tempfile.TemporaryDirectory(
        prefix="authz-", dir=IN_MEMORY if IN_MEMORY.is_dir() else tmp_path_factory.getbasetemp()
    ) as folder:
        seeded = _seed(Path(folder))
        yield seeded
        seeded.engine.dispose()
        seeded.template.close()


def _archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("app.py", "x = 1\n")
        bundle.writestr("README.md", "# App\n")
    return buffer.getvalue()


def _fill(value: Any, ids: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return value.format_map(ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def _request(world: World, route: Route, who: str, client: FlaskClient) -> TestResponse:
    visitor = world.visitors[who]
    headers: dict[str, str] = {}
    kwargs: dict[str, Any] = {}
    data: dict[str, Any] = dict(_fill(route.form or {}, world.ids))
    if route.is_api:
        if visitor.account is not None:
            headers = bearer(visitor.account)
        if route.json is not None:
            kwargs["json"] = _fill(route.json, world.ids)
    else:
        client.set_cookie("session", visitor.cookie)
        if route.method != "GET":
            data["csrf_token"] = visitor.csrf
    for name, (content, filename) in route.files.items():
        data[name] = (io.BytesIO(content or _archive()), filename)
    if route.files:
        kwargs["content_type"] = "multipart/form-data"
    if data:
        kwargs["data"] = data
    return client.open(route.path(world.ids), method=route.method, headers=headers, **kwargs)


def run_cell(world: World, route: Route, who: str) -> TestResponse:
    """One request against a fresh copy of the world's database."""
    world.engine.dispose()  # no connection outlives a cell (the engine's compiled statements do)
    for previous in world.cell.parent.glob(f"{world.cell.name}*"):  # the file, its WAL and shared memory
        previous.unlink()
    target = sqlite3.connect(world.cell)
    world.template.backup(target)
    target.close()
    if route.setup is not None:
        context: WebContext = world.app.extensions[EXTENSION]
        with session_scope(context.sessions) as session:
            route.setup(session, world.ids)
    with world.app.test_client() as client:
        return _request(world, route, who, client)


def _to_login(response: TestResponse) -> bool:
    return urlsplit(response.headers.get("Location", "")).path == "/login"


def _mismatch(route: Route, expected: str, response: TestResponse) -> str | None:
    """Why the response is not the cell's answer; None when it is."""
    status = response.status_code
    if expected == LOGIN:
        return None if status == 302 and _to_login(response) else f"{status}, not a redirect to the login"
    if expected == LOGGED_OUT:
        return None if status == 303 and _to_login(response) else f"{status}, not logged out to the login"
    if status != int(expected):
        body = response.get_json(silent=True) if response.is_json else None
        detail = body["error"]["message"] if isinstance(body, dict) and "error" in body else ""
        return f"{status} {detail}".strip()
    if status in (301, 302, 303) and _to_login(response):
        return f"{status} to the login form"
    if route.is_api and status >= 400:
        body = response.get_json(silent=True) or {}
        if set(body.get("error", {})) != {"code", "message", "details"}:
            return f"{status} without the error envelope"
    if (
        route.is_api
        and status == 401
        and not response.headers.get("WWW-Authenticate", "").startswith("Bearer")
    ):
        return "401 without WWW-Authenticate: Bearer"
    return None


def _declared(app: Flask) -> Counter[tuple[str, str]]:
    return Counter(
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    )


def test_the_table_has_one_row_for_each_route_and_method_of_the_app(world: World) -> None:
    table = Counter((route.method, route.rule) for route in ROUTES)
    app = _declared(world.app)
    assert not sorted(set(app) - set(table)), f"routes without a row: {sorted(set(app) - set(table))}"
    assert not sorted(set(table) - set(app)), f"rows without a route: {sorted(set(table) - set(app))}"
    assert [key for key, count in table.items() if count > 1] == []


@pytest.mark.parametrize("route", ROUTES, ids=[f"{r.method} {r.rule}" for r in ROUTES])
def test_each_kind_of_user_gets_the_status_of_its_cell(world: World, route: Route) -> None:
    wrong = {}
    for who, expected in route.cells.items():
        problem = _mismatch(route, expected, run_cell(world, route, who))
        if problem is not None:
            wrong[who] = f"expected {expected}, got {problem}"
    assert not wrong, f"{route.method} {route.rule}\n" + "\n".join(
        f"  {w}: {why}" for w, why in wrong.items()
    )


def test_staff_read_the_audit_log_of_the_programs_they_run_and_no_other(world: World) -> None:
    audit_log = Route("GET", "/api/v1/audit", "")

    def assessments(who: str) -> set[str | None]:
        response = run_cell(world, audit_log, who)
        assert response.status_code == 200
        return {event["assessment"] for event in response.get_json()["events"]}

    assert assessments("staff") == {"reviewed-repo"}
    assert assessments("outside_staff") == {"timed"}  # Ada's quiz result, in test-program
    assert {"reviewed-repo", "timed", None} <= assessments("admin")  # None: account and catalog events


def test_staff_of_another_program_may_not_move_due_dates_or_publish_there(world: World) -> None:
    extension = Route(
        "POST",
        "/api/v1/assessments/<slug>/extensions",
        "",
        at={"slug": "reviewed-repo"},
        json={"learner": "{learner_email}", "due": "2031-01-01T00:00:00Z"},
    )
    publish = Route("POST", "/api/v1/assessments/<slug>/publish", "", at={"slug": "reviewed-repo"})
    for route in (extension, publish):
        refused = run_cell(world, route, "outside_staff")
        assert refused.status_code == 403, refused.get_json()
        assert "reviewed-repo" in refused.get_json()["error"]["message"]
    unknown = Route("POST", "/api/v1/assessments/<slug>/publish", "", at={"slug": "no-such-assessment"})
    assert run_cell(world, unknown, "outside_staff").status_code == 404
