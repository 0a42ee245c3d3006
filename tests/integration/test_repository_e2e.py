"""Repository assignments end to end: API -> real Redis -> real worker -> real sandbox -> result,
with repositories served by a real git server on loopback, archives uploaded as multipart, and a
reviewer's scores completing the rubric."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from grader.broker import CeleryTaskQueue
from grader.config import Settings
from tests.conftest import Account, bearer, make_account
from tests.support.gitserver import GitServer
from tests.support.services import RedisServer, WorkerProcess, redis_server

pytestmark = [pytest.mark.redis, pytest.mark.git, pytest.mark.bwrap, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SUBMISSIONS = ROOT / "examples" / "submissions"


def tree(name: str) -> dict[str, str]:
    folder = SUBMISSIONS / name
    return {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, redis: RedisServer, sandbox_ready: None) -> Settings:
    data_dir = tmp_path / "var"
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'grader.db'}",
        broker_url=redis.url,
        secret_key="test-secret-key",
        catalog_path=ROOT / "examples" / "catalog",
        git_allow_insecure_loopback=True,
        git_clone_timeout_seconds=20,
        sandbox_backend="bwrap",
    )


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    return settings.catalog_path


@pytest.fixture
def queue(settings: Settings) -> CeleryTaskQueue:  # type: ignore[override]
    return CeleryTaskQueue(settings)


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(
        env=settings.to_env(),
        log_path=tmp_path / "worker.log",
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture
def git(tmp_path: Path) -> Iterator[GitServer]:
    with GitServer(tmp_path / "git") as server:
        yield server


@pytest.fixture
def developer(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "dev@example.org", programs=("python-web-developer",))


def wait_for_result(client: FlaskClient, account: Account, submission_id: str, worker: WorkerProcess) -> dict:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        view = client.get(f"/api/v1/submissions/{submission_id}", headers=bearer(account)).get_json()
        if view["result"] is not None:
            return view
        assert view["status"] != "error", worker.log_tail()
        time.sleep(0.2)
    raise AssertionError(f"no result after 90 s\n{worker.log_tail()}")


def submit_git(client: FlaskClient, account: Account, url: str, ref: str | None = None):  # type: ignore[no-untyped-def]
    body = {"assessment": "wsgi-todo-api", "git_url": url, **({"ref": ref} if ref else {})}
    return client.post("/api/v1/submissions", json=body, headers=bearer(account))


def test_passing_repository_by_git_url_then_review_completes_it(
    client: FlaskClient,
    developer: Account,
    loaded: sessionmaker[Session],
    git: GitServer,
    worker: WorkerProcess,
) -> None:
    commit = git.commit("todo", tree("wsgi-todo-api-passing"))
    response = submit_git(client, developer, git.url("todo"), "main")
    assert response.status_code == 202, response.get_json()
    accepted = response.get_json()
    assert accepted["receipt"]["commit"] == commit
    git.commit("todo", {"todo_app.py": "broken = True\n"})  # the branch moves on; the pinned commit is graded

    view = wait_for_result(client, developer, accepted["id"], worker)
    assert view["receipt"]["commit"] == commit and view["status"] == "needs_review"
    result = view["result"]
    tests = result["feedback"]["tests"]
    assert tests and all(t["passed"] for t in tests)
    hidden = [t for t in tests if t.get("hidden")]
    assert len(hidden) == 22 and all("message" not in t for t in hidden)
    smoke = next(t for t in tests if t["id"] == "smoke-crud")
    assert "201" in smoke["detail"]["expected"]
    criteria = {c["id"]: c for c in result["feedback"]["rubric"]["criteria"]}
    assert criteria["tests"]["points"] == 60 and criteria["readability"]["pending"] is True
    assert result["passed"] is None and result["needs_review"] is True

    reviewer = make_account(loaded, "rev@example.org", role="reviewer", reviews=("python-web-developer",))
    levels = {"readability": "proficient", "design": "proficient", "robustness": "developing"}
    review = {
        "criteria": [{"criterion": k, "level": v} for k, v in levels.items()]
        + [{"criterion": "deductions", "items": []}],
        "comment": "Clean routing table.",
    }
    denied = client.post(
        f"/api/v1/submissions/{accepted['id']}/reviews", json=review, headers=bearer(developer)
    )
    assert denied.status_code == 403
    reviewed = client.post(
        f"/api/v1/submissions/{accepted['id']}/reviews", json=review, headers=bearer(reviewer)
    )
    assert reviewed.status_code == 200, reviewed.get_json()
    assert reviewed.get_json()["passed"] is True
    progress = client.get(
        "/api/v1/programs/python-web-developer/progress", headers=bearer(developer)
    ).get_json()
    assert {r["assessment"]: r["status"] for r in progress["requirements"]}["wsgi-todo-api"] == "passed"


def test_failing_repository_gets_per_test_feedback(
    client: FlaskClient, developer: Account, git: GitServer, worker: WorkerProcess
) -> None:
    git.commit("todo", tree("wsgi-todo-api-failing"))
    accepted = submit_git(client, developer, git.url("todo")).get_json()
    result = wait_for_result(client, developer, accepted["id"], worker)["result"]
    failed = sorted(t["id"].split("::")[1] for t in result["feedback"]["tests"] if not t["passed"])
    assert failed == [
        "test_create_returns_201_with_location",
        "test_delete_removes_todo_and_ids_are_not_reused",
        "test_pagination_rejects_bad_parameters[limit-above-100]",
    ]
    assert result["passed"] in (None, False)


def test_archive_upload_is_graded(client: FlaskClient, developer: Account, worker: WorkerProcess) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in tree("wsgi-todo-api-passing").items():
            archive.writestr(f"todo-main/{name}", text)  # GitHub-style top folder
    response = client.post(
        "/api/v1/submissions",
        data={"assessment": "wsgi-todo-api", "archive": (io.BytesIO(buffer.getvalue()), "todo.zip")},
        headers=bearer(developer),
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    result = wait_for_result(client, developer, response.get_json()["id"], worker)["result"]
    assert all(t["passed"] for t in result["feedback"]["tests"])


@pytest.mark.parametrize(
    ("make_body", "status", "code", "field"),
    [
        (lambda url: {"git_url": "file:///etc/passwd"}, 400, "invalid_git_url", "git_url"),
        (lambda url: {"git_url": "ext::sh -c touch% /tmp/pwned"}, 400, "invalid_git_url", "git_url"),
        (
            lambda url: {"git_url": url.replace("todo.git", "missing.git")},
            422,
            "repository_unavailable",
            "git_url",
        ),
        (lambda url: {"git_url": url, "ref": "no-such-branch"}, 422, "repository_unavailable", "ref"),
        (lambda url: {"git_url": url, "ref": "--upload-pack=touch"}, 400, None, "ref"),
        (lambda url: {"git_url": url, "answers": {}}, 400, "invalid_input", "answers"),
        (lambda url: {}, 400, "invalid_input", "git_url"),
    ],
)
def test_bad_repository_submissions_get_clear_errors(
    client: FlaskClient,
    developer: Account,
    git: GitServer,
    make_body: Callable[[str], dict],
    status: int,
    code: str | None,
    field: str,
) -> None:
    git.commit("todo", {"todo_app.py": "x = 1\n"})
    body = {"assessment": "wsgi-todo-api", **make_body(git.url("todo"))}
    response = client.post("/api/v1/submissions", json=body, headers=bearer(developer))
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["details"].get("field") == field
    if code:
        assert error["code"] == code


def test_unsafe_archive_is_refused(client: FlaskClient, developer: Account) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../escape.py", "print('out')")
    response = client.post(
        "/api/v1/submissions",
        data={"assessment": "wsgi-todo-api", "archive": (io.BytesIO(buffer.getvalue()), "evil.zip")},
        headers=bearer(developer),
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "unsafe_archive"


def test_the_hand_in_page_explains_a_rejected_url(client: FlaskClient, developer: Account) -> None:
    from tests.web.test_pages import csrf_token, log_in

    log_in(client, developer)
    program = client.get("/programs/python-web-developer").get_data(as_text=True)
    assert "/assessments/wsgi-todo-api/submit" in program
    form = client.get("/assessments/wsgi-todo-api/submit").get_data(as_text=True)
    assert "A JSON todo API as a WSGI application" in form
    page = client.post(
        "/assessments/wsgi-todo-api/submit",
        data={"csrf_token": csrf_token(form), "git_url": "https://user:secret@127.0.0.1/x.git"},
    )
    assert page.status_code == 400  # the refusal with its real status, the form shown again
    alert = page.get_data(as_text=True).split('role="alert" id="form-error">')[1].split("</p>")[0]
    assert "Problem with the git URL" in alert and "secret" not in alert


def test_repository_submissions_are_rate_limited_per_learner(
    client: FlaskClient, developer: Account, git: GitServer
) -> None:
    git.commit("todo", tree("wsgi-todo-api-failing"))
    statuses = [submit_git(client, developer, git.url("todo")).status_code for _ in range(5)]
    assert statuses == [202, 202, 202, 202, 429]  # the sample assessment allows 4 an hour
    limited = submit_git(client, developer, git.url("todo"))
    assert (
        limited.get_json()["error"]["code"] == "rate_limited" and int(limited.headers["Retry-After"]) > 3000
    )
