"""Tasks in the review queue that the viewer may never claim: a regrade of a submission they scored, and
the other slot of a double review they wrote. The page shows why instead of a Claim button, the counts
per assessment leave such tasks out, and the API says `claimable` and why not, per task."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.models import ReviewSlot, ReviewTask, TaskStatus, User
from grader.services import review_queue, reviews
from grader.services.reviews import ReviewInput
from rubrics import Review
from tests.conftest import Account, bearer, make_account
from tests.support.reviewed import REVIEWED_REPO, hand_in, run_queued, write_repository_catalog
from tests.web.test_pages import csrf_token, log_in

SCORED_NOTE = "You scored this submission: a regrade goes to another reviewer."
WROTE_FIRST_NOTE = "You wrote the first review: the second must be independent."
DOUBLE = "review: {double: true, disagreement: 0.2}\n"


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


def reviewer(loaded: sessionmaker[Session], name: str, *, staff: bool = False) -> Account:
    programs = {"runs": ("repo-program",)} if staff else {"reviews": ("repo-program",)}
    return make_account(loaded, f"{name}@example.org", role="reviewer", **programs)


def graded(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> str:
    submission_id = hand_in(client, learner)
    run_queued(queue, loaded)
    return submission_id


def task_in(loaded: sessionmaker[Session], submission_id: str, slot: ReviewSlot) -> int:
    with loaded() as session:
        return int(
            session.scalars(
                select(ReviewTask.id).where(
                    ReviewTask.submission_id == submission_id,
                    ReviewTask.slot == slot,
                    ReviewTask.status.in_([TaskStatus.OPEN, TaskStatus.CLAIMED]),
                )
            ).one()
        )


def score_as(loaded: sessionmaker[Session], account: Account, task_id: int, level: str = "weak") -> None:
    """The reviewer claims the task and submits a review of it, as the services do for the pages."""
    with loaded() as session:
        user = session.get(User, account.id)
        assert user is not None
        review_queue.claim(session, user, task_id)
        reviews.submit(session, user, task_id, ReviewInput(reviews=(Review("design", level=level),)))
        session.commit()


def ask_regrade(loaded: sessionmaker[Session], learner: Account, submission_id: str) -> int:
    with loaded() as session:
        user = session.get(User, learner.id)
        assert user is not None
        reviews.request_regrade(session, user, submission_id, "design", "The modules are split by concern.")
        session.commit()
    return task_in(loaded, submission_id, ReviewSlot.REGRADE)


def row_of(page: str, task_id: int) -> str:
    """The queue's row for one task, as words (tags out, whitespace folded), with its buttons marked."""
    match = re.search(rf'<tr id="task-{task_id}".*?</tr>', page, re.S)
    assert match, f"task {task_id} is not in the queue"
    html = match.group(0).replace("</button>", " [/button]")
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def counts_of(page: str) -> str:
    match = re.search(r'<table class="counts">.*?</table>', page, re.S)
    assert match, "the page has no counts per assessment"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match.group(0)))


def claim_status(client: FlaskClient, task_id: int) -> int:
    token = csrf_token(client.get("/review").get_data(as_text=True))
    return client.post(f"/review/tasks/{task_id}/claim", data={"csrf_token": token}).status_code


def test_the_reviewer_who_scored_a_submission_is_told_its_regrade_is_not_theirs_and_another_claims_it(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    submission_id = graded(client, learner, queue, loaded)
    rui, sam = reviewer(loaded, "rui"), reviewer(loaded, "sam")
    score_as(loaded, rui, task_in(loaded, submission_id, ReviewSlot.FIRST))
    regrade = ask_regrade(loaded, learner, submission_id)

    log_in(client, rui)
    row = row_of(client.get("/review").get_data(as_text=True), regrade)
    assert SCORED_NOTE in row and "Claim [/button]" not in row
    assert claim_status(client, regrade) == 403  # the note tells the truth: the claim is refused

    log_in(client, sam)
    row = row_of(client.get("/review").get_data(as_text=True), regrade)
    assert "Claim [/button]" in row and SCORED_NOTE not in row
    assert claim_status(client, regrade) == 302


@pytest.mark.parametrize("policy", [DOUBLE])
def test_the_first_reviewer_of_a_double_review_is_told_the_second_is_not_theirs_and_another_claims_it(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    submission_id = graded(client, learner, queue, loaded)
    rui, sam = reviewer(loaded, "rui"), reviewer(loaded, "sam")
    first = task_in(loaded, submission_id, ReviewSlot.FIRST)
    second = task_in(loaded, submission_id, ReviewSlot.SECOND)

    log_in(client, rui)
    assert claim_status(client, first) == 302
    held = row_of(client.get("/review").get_data(as_text=True), second)
    assert "You hold the first review: the second must be independent." in held
    assert "Claim [/button]" not in held

    score_as(loaded, rui, first, level="strong")
    row = row_of(client.get("/review").get_data(as_text=True), second)
    assert WROTE_FIRST_NOTE in row and "Claim [/button]" not in row
    assert claim_status(client, second) == 403

    log_in(client, sam)
    row = row_of(client.get("/review").get_data(as_text=True), second)
    assert "Claim [/button]" in row and WROTE_FIRST_NOTE not in row
    assert claim_status(client, second) == 302


@pytest.mark.parametrize("policy", [DOUBLE])
def test_the_counts_per_assessment_are_of_the_tasks_the_viewer_can_take(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    zelda = graded(client, learner, queue, loaded)
    graded(client, make_account(loaded, "bob@example.org", programs=("repo-program",)), queue, loaded)
    rui, sam = reviewer(loaded, "rui"), reviewer(loaded, "sam")
    score_as(loaded, rui, task_in(loaded, zelda, ReviewSlot.FIRST))
    # Waiting now: zelda's second slot (not rui's to take) and both slots of bob's.
    log_in(client, rui)
    assert "Reviewed repository 2 you can take" in counts_of(client.get("/review").get_data(as_text=True))
    log_in(client, sam)
    assert "Reviewed repository 3 you can take" in counts_of(client.get("/review").get_data(as_text=True))

    with loaded() as session:
        for account, expected in ((rui, 2), (sam, 3)):
            user = session.get(User, account.id)
            assert user is not None
            view = review_queue.queue(session, user)
            assert view.counts == (("reviewed-repo", "Reviewed repository", expected),)
            assert len(view.items) == 3  # every waiting task is listed; only the count leaves some out
            assert sum(item.claimable for item in view.items) == expected


def test_a_staff_member_who_scored_the_submission_still_assigns_its_regrade(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    submission_id = graded(client, learner, queue, loaded)
    lead = reviewer(loaded, "lead", staff=True)
    reviewer(loaded, "sam")
    score_as(loaded, lead, task_in(loaded, submission_id, ReviewSlot.FIRST))
    regrade = ask_regrade(loaded, learner, submission_id)

    log_in(client, lead)
    row = row_of(client.get("/review").get_data(as_text=True), regrade)
    assert SCORED_NOTE in row and "Claim [/button]" not in row and "Assign [/button]" in row


def test_the_api_queue_says_per_task_whether_the_caller_can_claim_it_and_why_not(
    client: FlaskClient, learner: Account, queue: RecordingQueue, loaded: sessionmaker[Session]
) -> None:
    submission_id = graded(client, learner, queue, loaded)
    rui, sam = reviewer(loaded, "rui"), reviewer(loaded, "sam")
    score_as(loaded, rui, task_in(loaded, submission_id, ReviewSlot.FIRST))
    regrade = ask_regrade(loaded, learner, submission_id)

    mine = client.get("/api/v1/review/queue", headers=bearer(rui)).get_json()
    (item,) = mine["items"]
    assert (item["task"], item["claimable"], item["not_claimable_because"]) == (
        regrade,
        False,
        "you scored this submission: a regrade goes to another reviewer",
    )
    assert mine["counts"] == [{"assessment": "reviewed-repo", "title": "Reviewed repository", "waiting": 0}]
    refused = client.post(f"/api/v1/review/tasks/{regrade}/claim", headers=bearer(rui))
    assert refused.status_code == 403

    theirs = client.get("/api/v1/review/queue", headers=bearer(sam)).get_json()
    (item,) = theirs["items"]
    assert (item["task"], item["claimable"], item["not_claimable_because"]) == (regrade, True, None)
    assert theirs["counts"][0]["waiting"] == 1
    assert client.post(f"/api/v1/review/tasks/{regrade}/claim", headers=bearer(sam)).status_code == 200
