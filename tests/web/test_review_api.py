"""The reviewers' JSON API: each route's answer, and its status code for each kind of bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.models import RegradeRequest, ReviewTask, User
from grader.services import reviews
from tests.conftest import Account, bearer, make_account
from tests.support.reviewed import REVIEWED_REPO, hand_in, run_queued, write_repository_catalog

STRONG = {"criteria": [{"criterion": "design", "level": "strong", "comment": "Clear."}]}


@pytest.fixture
def policy() -> str:
    return ""


@pytest.fixture
def catalog_dir(settings: Settings, policy: str) -> Path:
    root = write_repository_catalog(settings.catalog_path)
    if policy:
        (root / "assessments/reviewed-repo/assessment.yaml").write_text(REVIEWED_REPO + policy)
    return root


@pytest.fixture
def learner(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "zelda.quigley@example.org", programs=("repo-program",))


@pytest.fixture
def submission(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> str:
    files = {"zelda/app.py": "# by zelda.quigley@example.org\nx = 1\n", "README.md": "# App\n"}
    submission_id = hand_in(client, learner, files)
    run_queued(queue, loaded, settings)
    return submission_id


@pytest.fixture
def task_id(submission: str, loaded: sessionmaker[Session]) -> int:
    with loaded() as session:
        return int(session.scalars(select(ReviewTask.id).order_by(ReviewTask.id)).first() or 0)


def reviewer(
    loaded: sessionmaker[Session], name: str, *, staff: bool = False, program: bool = True
) -> Account:
    kwargs: dict[str, Any] = {}
    if program:
        kwargs = {"runs": ("repo-program",)} if staff else {"reviews": ("repo-program",)}
    return make_account(loaded, f"{name}@example.org", role="reviewer", **kwargs)


def error_of(response: Any) -> tuple[int, str, Any]:
    body = response.get_json()
    return response.status_code, body["error"]["code"], body["error"]["details"].get("field")


def test_the_queue_and_its_filters(
    client: FlaskClient, learner: Account, task_id: int, loaded: sessionmaker[Session]
) -> None:
    rui = reviewer(loaded, "rui")
    assert client.get("/api/v1/review/queue").status_code == 401
    assert error_of(client.get("/api/v1/review/queue", headers=bearer(learner)))[:2] == (403, "forbidden")
    body = client.get("/api/v1/review/queue", headers=bearer(rui)).get_json()
    (item,) = body["items"]
    assert (item["task"], item["assessment"], item["slot"], item["learner"], item["holder"]) == (
        task_id,
        "reviewed-repo",
        "first",
        "zelda.quigley",
        None,
    )
    assert item["waiting_seconds"] >= 0 and body["counts"] == [
        {"assessment": "reviewed-repo", "title": "Reviewed repository", "waiting": 1}
    ]
    empty = client.get("/api/v1/review/queue?waiting_since=2000-01-01T00:00:00Z", headers=bearer(rui))
    assert empty.get_json()["items"] == []
    assert client.get("/api/v1/review/queue?mine=1", headers=bearer(rui)).get_json()["items"] == []
    assert error_of(client.get("/api/v1/review/queue?waiting_since=soon", headers=bearer(rui))) == (
        400,
        "invalid_input",
        "waiting_since",
    )
    assert error_of(client.get("/api/v1/review/queue?waiting_since=2000-01-01T00:00", headers=bearer(rui)))[
        2
    ] == ("waiting_since")
    assert error_of(client.get("/api/v1/review/queue?slot=third", headers=bearer(rui))) == (
        400,
        "invalid_input",
        "slot",
    )
    assert error_of(client.get("/api/v1/review/queue?program=nope", headers=bearer(rui))) == (
        404,
        "not_found",
        "program",
    )
    outsider = reviewer(loaded, "out", program=False)
    assert client.get("/api/v1/review/queue", headers=bearer(outsider)).get_json()["items"] == []


def test_claims_next_release_and_assignment(
    client: FlaskClient, task_id: int, loaded: sessionmaker[Session]
) -> None:
    rui, sam = reviewer(loaded, "rui"), reviewer(loaded, "sam")
    outsider = reviewer(loaded, "out", program=False)
    staff = reviewer(loaded, "stella", staff=True)
    assert error_of(client.post(f"/api/v1/review/tasks/{task_id}/claim", headers=bearer(outsider)))[:2] == (
        403,
        "forbidden",
    )
    assert error_of(client.post("/api/v1/review/tasks/999/claim", headers=bearer(rui))) == (
        404,
        "not_found",
        "task",
    )

    taken = client.post("/api/v1/review/next", headers=bearer(rui)).get_json()["task"]
    assert (taken["id"], taken["status"], taken["reviewer"]) == (task_id, "claimed", rui.id)
    assert client.post("/api/v1/review/next", headers=bearer(sam)).get_json()["task"] is None
    lost = client.post(f"/api/v1/review/tasks/{task_id}/claim", headers=bearer(sam))
    assert error_of(lost) == (409, "conflict", "task")
    assert lost.get_json()["error"]["details"]["holder"] == "rui"
    assert error_of(client.post(f"/api/v1/review/tasks/{task_id}/release", headers=bearer(sam))) == (
        409,
        "conflict",
        "task",
    )
    released = client.post(f"/api/v1/review/tasks/{task_id}/release", headers=bearer(rui)).get_json()["task"]
    assert (released["status"], released["reviewer"]) == ("open", None)

    url = f"/api/v1/review/tasks/{task_id}/assign"
    assert error_of(client.post(url, json={"reviewer": sam.email}, headers=bearer(rui)))[:2] == (
        403,
        "forbidden",
    )
    assert error_of(client.post(url, data="x", headers=bearer(staff))) == (400, "invalid_input", "body")
    assert error_of(client.post(url, json={"reviewer": 3}, headers=bearer(staff))) == (
        400,
        "invalid_input",
        "reviewer",
    )
    assert error_of(client.post(url, json={"reviewer": "ghost@example.org"}, headers=bearer(staff))) == (
        404,
        "not_found",
        "reviewer",
    )
    assigned = client.post(url, json={"reviewer": sam.email}, headers=bearer(staff)).get_json()["task"]
    assert (assigned["reviewer"], assigned["assigned"], assigned["claim_expires"]) == (sam.id, True, None)


@pytest.mark.parametrize("policy", ["review: {blind: true}\n"])
def test_the_task_its_files_and_blind_review(
    client: FlaskClient, task_id: int, loaded: sessionmaker[Session], settings: Settings
) -> None:
    rui, sam = reviewer(loaded, "rui"), reviewer(loaded, "sam")
    assert error_of(client.get(f"/api/v1/review/tasks/{task_id}", headers=bearer(rui))) == (
        409,
        "conflict",
        "task",
    )
    client.post(f"/api/v1/review/tasks/{task_id}/claim", headers=bearer(rui))
    response = client.get(f"/api/v1/review/tasks/{task_id}", headers=bearer(rui))
    assert response.status_code == 200
    assert "zelda" not in response.get_data(as_text=True).lower()
    body = response.get_json()
    assert body["bundle"]["learner"] is None and body["bundle"]["blind"] is True
    assert {f["path"] for f in body["bundle"]["files"]} == {"[learner]/app.py", "README.md"}
    assert [c["id"] for c in body["rubric"]["criteria"] if c["manual"]] == ["design"]
    assert body["draft"] is None and body["preview"]["total"] == 66 and body["comment_bank"] == "reviewed"
    assert error_of(client.get(f"/api/v1/review/tasks/{task_id}", headers=bearer(sam))) == (
        409,
        "conflict",
        "task",
    )

    files = f"/api/v1/review/tasks/{task_id}/files"
    one = client.get(files, query_string={"path": "[learner]/app.py"}, headers=bearer(rui)).get_json()
    assert one["content"] == "# by [learner]\nx = 1\n" and one["shown"] is True
    assert error_of(client.get(files, headers=bearer(rui))) == (400, "invalid_input", "path")
    assert error_of(client.get(files + "?path=nope.py", headers=bearer(rui))) == (404, "not_found", "path")


def test_drafts_submit_and_new_versions(
    client: FlaskClient, learner: Account, submission: str, task_id: int, loaded: sessionmaker[Session]
) -> None:
    rui = reviewer(loaded, "rui")
    client.post(f"/api/v1/review/tasks/{task_id}/claim", headers=bearer(rui))
    draft_url = f"/api/v1/review/tasks/{task_id}/draft"
    assert error_of(client.put(draft_url, data="{}", headers=bearer(rui))) == (400, "invalid_input", "body")
    assert error_of(client.put(draft_url, json=[1], headers=bearer(rui))) == (400, "invalid_input", "body")
    assert error_of(client.put(draft_url, json={"score": 3}, headers=bearer(rui))) == (
        400,
        "invalid_input",
        "score",
    )
    bad_level = {"criteria": [{"criterion": "design", "level": 3}]}
    assert error_of(client.put(draft_url, json=bad_level, headers=bearer(rui)))[2] == "criteria[0].level"
    unknown_level = {"criteria": [{"criterion": "design", "level": "great"}]}
    assert error_of(client.put(draft_url, json=unknown_level, headers=bearer(rui))) == (
        400,
        "invalid_input",
        "criteria",
    )
    bad_inline = {"inline_comments": [{"path": "app.py", "line": 0, "body": "x"}]}
    assert error_of(client.put(draft_url, json=bad_inline, headers=bearer(rui)))[2] == "inline_comments[0]"
    elsewhere = {"inline_comments": [{"path": "other.py", "line": 1, "body": "x"}]}
    assert (
        error_of(client.put(draft_url, json=elsewhere, headers=bearer(rui)))[2] == "inline_comments[0].path"
    )
    no_reason = {"adjustment": -2}
    assert error_of(client.put(draft_url, json=no_reason, headers=bearer(rui)))[2] == "adjustment_reason"

    partial = {"comment": "so far", "inline_comments": [{"path": "zelda/app.py", "line": 1, "body": "Hm."}]}
    saved = client.put(draft_url, json=partial, headers=bearer(rui))
    assert saved.status_code == 200
    assert (
        saved.get_json()["preview"]["pending"] == ["design"]
        and saved.get_json()["draft"]["comment"] == "so far"
    )
    again = client.get(f"/api/v1/review/tasks/{task_id}", headers=bearer(rui)).get_json()
    assert again["draft"]["inline_comments"] == [{"path": "zelda/app.py", "line": 1, "body": "Hm."}]

    submit_url = f"/api/v1/review/tasks/{task_id}/review"
    incomplete = client.post(submit_url, json={"comment": "done"}, headers=bearer(rui))
    assert error_of(incomplete) == (400, "invalid_input", "criteria")
    unscored = client.post(submit_url, json={"criteria": [{"criterion": "design"}]}, headers=bearer(rui))
    assert error_of(unscored) == (400, "invalid_input", "criteria")
    assert "needs a level" in unscored.get_json()["error"]["message"]
    submitted = client.post(submit_url, json=STRONG, headers=bearer(rui))
    assert submitted.status_code == 201
    outcome = submitted.get_json()
    assert (outcome["score"], outcome["passed"], outcome["settled"]) == (100, True, True)
    assert error_of(client.post(submit_url, json=STRONG, headers=bearer(rui)))[:2] == (409, "conflict")
    learner_view = client.get(f"/api/v1/submissions/{submission}", headers=bearer(learner)).get_json()
    assert learner_view["result"]["score"] == 100

    versions = f"/api/v1/review/reviews/{outcome['review']}/versions"
    weak = {"criteria": [{"criterion": "design", "level": "weak"}]}
    assert error_of(client.post(versions, json=weak, headers=bearer(rui))) == (400, "invalid_input", "reason")
    assert (
        error_of(client.post(versions, json={**weak, "reason": "short"}, headers=bearer(rui)))[2] == "reason"
    )
    assert error_of(client.post("/api/v1/review/reviews/999/versions", json=weak, headers=bearer(rui))) == (
        404,
        "not_found",
        "review",
    )
    sam = reviewer(loaded, "sam")
    assert (
        error_of(client.post(versions, json={**weak, "reason": "misread the layout"}, headers=bearer(sam)))[0]
        == 403
    )
    edited = client.post(versions, json={**weak, "reason": "misread the layout"}, headers=bearer(rui))
    assert (
        edited.status_code == 201 and edited.get_json()["score"] == 70 and edited.get_json()["version"] == 2
    )
    assert (
        error_of(client.post(versions, json={**weak, "reason": "misread the layout"}, headers=bearer(rui)))[0]
        == 409
    )


def test_a_regrade_answer_needs_a_regrade_task_and_a_reply(
    client: FlaskClient, learner: Account, submission: str, task_id: int, loaded: sessionmaker[Session]
) -> None:
    rui, sam = reviewer(loaded, "rui"), reviewer(loaded, "sam")
    client.post(f"/api/v1/review/tasks/{task_id}/claim", headers=bearer(rui))
    answer = f"/api/v1/review/tasks/{task_id}/regrade-answer"
    assert error_of(client.post(answer, json={"reply": "fine"}, headers=bearer(rui))) == (
        400,
        "invalid_input",
        "task",
    )
    client.post(
        f"/api/v1/review/tasks/{task_id}/review",
        json={"criteria": [{"criterion": "design", "level": "weak"}]},
        headers=bearer(rui),
    )
    with loaded() as session:
        zelda = session.get(User, learner.id)
        assert zelda is not None
        request = reviews.request_regrade(
            session, zelda, submission, "design", "The modules are split by concern."
        )
        regrade_task = session.scalars(
            select(ReviewTask).where(ReviewTask.regrade_request_id == request.id)
        ).one()
        session.commit()
    client.post(f"/api/v1/review/tasks/{regrade_task.id}/claim", headers=bearer(sam))
    answer = f"/api/v1/review/tasks/{regrade_task.id}/regrade-answer"
    assert error_of(client.post(answer, json={}, headers=bearer(sam))) == (400, "invalid_input", "reply")
    assert error_of(client.post(answer, json={"reply": 5}, headers=bearer(sam)))[2] == "reply"
    task = client.get(f"/api/v1/review/tasks/{regrade_task.id}", headers=bearer(sam)).get_json()
    assert task["regrade_request"]["reason"] == "The modules are split by concern."
    assert [r["slot"] for r in task["reviews"]] == ["first"]  # the review that stands, to weigh the request
    answered = client.post(answer, json={"reply": "Agreed.", **STRONG}, headers=bearer(sam))
    assert answered.status_code == 200 and answered.get_json()["changed"] is True
    with loaded() as session:
        assert session.scalars(select(RegradeRequest.status)).one() == "answered"
    assert (
        client.get(f"/api/v1/submissions/{submission}", headers=bearer(learner)).get_json()["result"]["score"]
        == 100
    )


def test_the_comment_bank(
    client: FlaskClient, learner: Account, task_id: int, loaded: sessionmaker[Session]
) -> None:
    rui = reviewer(loaded, "rui")
    outsider = reviewer(loaded, "out", program=False)
    bank = "/api/v1/review/comment-bank/reviewed"
    assert error_of(client.get(bank, headers=bearer(learner)))[0] == 403
    assert error_of(client.get(bank, headers=bearer(outsider)))[0] == 403
    assert error_of(client.get("/api/v1/review/comment-bank/nope", headers=bearer(rui))) == (
        404,
        "not_found",
        "rubric",
    )
    assert error_of(client.post(bank, json={}, headers=bearer(rui))) == (400, "invalid_input", "text")
    assert error_of(client.post(bank, json={"text": "  "}, headers=bearer(rui))) == (
        400,
        "invalid_input",
        "text",
    )
    wrong = {"text": "Good.", "criterion": "tests"}  # an automatic criterion: nothing to comment on
    assert error_of(client.post(bank, json=wrong, headers=bearer(rui))) == (400, "invalid_input", "criterion")
    added = client.post(
        bank, json={"text": "Name the constants.", "criterion": "design"}, headers=bearer(rui)
    )
    assert added.status_code == 201
    entry = added.get_json()
    assert (entry["text"], entry["criterion"], entry["uses"]) == ("Name the constants.", "design", 0)
    entries = f"/api/v1/review/comment-bank/entries/{entry['id']}"
    assert client.post(entries + "/use", headers=bearer(rui)).get_json()["uses"] == 1
    assert error_of(client.put(entries, json={"text": ""}, headers=bearer(rui))) == (
        400,
        "invalid_input",
        "text",
    )
    assert error_of(
        client.put("/api/v1/review/comment-bank/entries/999", json={"text": "x"}, headers=bearer(rui))
    ) == (
        404,
        "not_found",
        "entry",
    )
    assert client.put(entries, json={"text": "Name each constant."}, headers=bearer(rui)).status_code == 200
    found = client.get(bank + "?q=constant", headers=bearer(rui)).get_json()["entries"]
    assert [(e["text"], e["uses"]) for e in found] == [("Name each constant.", 1)]
    assert client.get(bank + "?q=zzz", headers=bearer(rui)).get_json()["entries"] == []
