"""The reviewer pages, driven as a reviewer would: the queue, claims, the task page, the rubric form,
editing after submit, the comment bank, double review and regrade requests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.models import CommentBankEntry, RegradeRequest, Review, ReviewSlot, ReviewTask, TaskStatus, User
from grader.services import reviews
from tests.conftest import Account, bearer, make_account
from tests.support.reviewed import REVIEWED_REPO, hand_in, run_queued, write_repository_catalog
from tests.web.test_pages import csrf_token, log_in

XSS_NAME = '"><img src=x onerror=alert(1)>.py'
XSS_TEXT = '# <script>alert("owned")</script>\nprint("\\"><img src=x onerror=alert(2)>")\n'


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
    if staff:
        return make_account(loaded, f"{name}@example.org", role="reviewer", runs=("repo-program",))
    return make_account(loaded, f"{name}@example.org", role="reviewer", reviews=("repo-program",))


def graded(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
    files: dict[str, str] | None = None,
) -> str:
    submission_id = hand_in(client, learner, files)
    run_queued(queue, loaded, settings)
    return submission_id


def tasks(loaded: sessionmaker[Session]) -> list[ReviewTask]:
    with loaded() as session:
        return list(session.scalars(select(ReviewTask).order_by(ReviewTask.id)).all())


def token_of(client: FlaskClient) -> str:
    return csrf_token(client.get("/review").get_data(as_text=True))


def claim(client: FlaskClient, task_id: int) -> None:
    response = client.post(f"/review/tasks/{task_id}/claim", data={"csrf_token": token_of(client)})
    assert response.status_code == 302 and response.headers["Location"] == f"/review/tasks/{task_id}"


def text(html: str) -> str:
    """The page as words: tags out, whitespace folded (what a reader would see, roughly)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def result_of(client: FlaskClient, learner: Account, submission_id: str) -> dict:  # type: ignore[type-arg]
    response = client.get(f"/api/v1/submissions/{submission_id}", headers=bearer(learner))
    result: dict = response.get_json()["result"]  # type: ignore[type-arg]
    return result


# ---------------------------------------------------------------- the queue


def test_learners_may_not_open_the_review_pages(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    graded(client, learner, queue, loaded, settings)
    (task,) = tasks(loaded)
    log_in(client, learner)
    assert client.get("/review").status_code == 403
    assert client.get(f"/review/tasks/{task.id}").status_code == 403
    home = client.get("/").get_data(as_text=True)
    response = client.post(f"/review/tasks/{task.id}/claim", data={"csrf_token": csrf_token(home)})
    assert response.status_code == 403
    assert tasks(loaded)[0].status == TaskStatus.OPEN


def test_the_queue_lists_the_oldest_first_with_counts_waiting_times_and_filters(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    graded(client, learner, queue, loaded, settings)
    bob = make_account(loaded, "bob.bellweather@example.org", programs=("repo-program",))
    graded(client, bob, queue, loaded, settings)
    rui = reviewer(loaded, "rui")
    log_in(client, rui)
    page = client.get("/review")
    assert page.status_code == 200
    words = text(page.get_data(as_text=True))
    assert "Reviewed repository 2" in words  # the count per assessment
    assert words.index("zelda.quigley") < words.index("bob.bellweather")  # oldest first
    assert "less than a minute" in words and words.count("nobody Claim") == 2
    assert page.get_data(as_text=True).count(">Claim</button>") == 2
    assert ">Assign</button>" not in page.get_data(as_text=True)  # a reviewer is not staff

    first, _ = tasks(loaded)
    claim(client, first.id)
    mine = text(client.get("/review?mine=1").get_data(as_text=True))
    assert "zelda.quigley" in mine and "bob.bellweather" not in mine and "Release" in mine
    free = text(client.get("/review?unassigned=1").get_data(as_text=True))
    assert "bob.bellweather" in free and "zelda.quigley" not in free
    assert "No submission matches" in text(client.get("/review?assessment=other").get_data(as_text=True))
    assert "No submission matches" in text(
        client.get("/review?waiting_since=2000-01-01T00:00").get_data(as_text=True)
    )
    assert "zelda.quigley" in text(
        client.get("/review?slot=first&program=repo-program").get_data(as_text=True)
    )

    refused = client.get("/review?waiting_since=yesterday&mine=1")
    assert refused.status_code == 400
    body = refused.get_data(as_text=True)
    assert "Waiting since must be a date and time" in body
    assert 'name="mine" value="1" checked' in body  # the filters typed are kept
    assert client.get("/review?program=no-such-program").status_code == 404


def test_of_two_reviewers_one_claims_and_the_other_is_told_who_holds_it(
    client: FlaskClient,
    app: object,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    graded(client, learner, queue, loaded, settings)
    (task,) = tasks(loaded)
    rui, sam = reviewer(loaded, "rui"), reviewer(loaded, "sam")
    other = client.application.test_client()
    log_in(client, rui)
    log_in(other, sam)
    sams_token = token_of(other)  # sam loaded the queue while the task was free
    claim(client, task.id)

    lost = other.post(f"/review/tasks/{task.id}/claim", data={"csrf_token": sams_token})
    assert lost.status_code == 409
    assert "rui is reviewing this submission" in text(lost.get_data(as_text=True))
    page = other.get(f"/review/tasks/{task.id}")
    assert page.status_code == 409 and "rui is reviewing this submission until" in text(
        page.get_data(as_text=True)
    )
    assert "Claim it and start" not in page.get_data(as_text=True)
    drafted = other.post(
        f"/review/tasks/{task.id}/draft", data={"csrf_token": sams_token, "comment": "My notes"}
    )
    assert drafted.status_code == 409 and "My notes" in drafted.get_data(
        as_text=True
    )  # what sam typed is shown

    released = client.post(f"/review/tasks/{task.id}/release", data={"csrf_token": token_of(client)})
    assert released.status_code == 302
    free = other.get(f"/review/tasks/{task.id}")
    assert free.status_code == 409 and "Claim it and start" in free.get_data(as_text=True)


def test_next_submission_claims_the_oldest_free_one_and_says_when_there_is_none(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    graded(client, learner, queue, loaded, settings)
    graded(
        client, make_account(loaded, "bob@example.org", programs=("repo-program",)), queue, loaded, settings
    )
    first, second = tasks(loaded)
    log_in(client, reviewer(loaded, "rui"))
    response = client.post("/review/next", data={"csrf_token": token_of(client)})
    assert response.headers["Location"] == f"/review/tasks/{first.id}"
    response = client.post("/review/next", data={"csrf_token": token_of(client)})
    assert response.headers["Location"] == f"/review/tasks/{second.id}"
    response = client.post("/review/next", data={"csrf_token": token_of(client)}, follow_redirects=True)
    assert "No submission is waiting" in text(response.get_data(as_text=True))


def test_staff_assign_a_review_to_a_reviewer_of_the_program(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    graded(client, learner, queue, loaded, settings)
    (task,) = tasks(loaded)
    rui = reviewer(loaded, "rui")
    log_in(client, reviewer(loaded, "stella", staff=True))
    page = client.get("/review").get_data(as_text=True)
    assert f'<label for="assign-{task.id}"' in page and f'<option value="{rui.id}">rui</option>' in page
    response = client.post(
        f"/review/tasks/{task.id}/assign", data={"csrf_token": csrf_token(page), "reviewer": str(rui.id)}
    )
    assert response.status_code == 302
    (held,) = tasks(loaded)
    assert (held.status, held.reviewer_id, held.expires_at) == (TaskStatus.CLAIMED, rui.id, None)
    assert (
        client.post(f"/review/tasks/{task.id}/assign", data={"csrf_token": csrf_token(page)}).status_code
        == 400
    )


# ---------------------------------------------------------------- the task page


def test_the_task_page_shows_the_evidence_highlighted_and_every_learner_text_escaped(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    files = {
        "app.py": "def answer():\n    return 42\n",
        XSS_NAME: XSS_TEXT,
        "README.md": "# App\n",
        "logo.png": "\x89PNG\x00\x01binary",
    }
    graded(client, learner, queue, loaded, settings, {"app.py": "def answer():\n    return 41\n"})
    graded(client, learner, queue, loaded, settings, files)
    rui = reviewer(loaded, "rui")
    log_in(client, rui)
    task = tasks(loaded)[-1]
    claim(client, task.id)

    page = client.get(f"/review/tasks/{task.id}?file=app.py")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<span class="k">def</span>' in html and '<span class="mi">42</span>' in html  # Pygments classes
    assert 'id="L2"' in html and 'href="#L2"' in html  # line anchors
    assert "style=" not in html  # the CSP allows no inline style
    assert "tests/test_it.py::test_it" in html  # the hidden test, for staff eyes
    assert "Documentation" in html and "1 of 1 required files present" in html  # scored automatically
    assert "Changes since attempt 1" in html and "-    return 41" in html and "+    return 42" in html
    assert "<kbd>j / k</kbd>" in html and 'id="rubric-data"' in html and "review.js" in html

    # The planted file: its name in the tree, its content in the viewer; never active markup.
    hostile = client.get(f"/review/tasks/{task.id}", query_string={"file": XSS_NAME}).get_data(as_text=True)
    assert "<img src=x" not in hostile and "<script>alert" not in hostile
    assert "&lt;img src=x onerror=alert(1)&gt;.py" in hostile
    assert "&lt;script&gt;" in hostile

    binary = client.get(f"/review/tasks/{task.id}?file=logo.png").get_data(as_text=True)
    assert "A binary file of" in text(binary) and "/download?path=logo.png" in binary
    download = client.get(f"/review/tasks/{task.id}/download?path=logo.png")
    assert download.status_code == 200 and download.data == "\x89PNG\x00\x01binary".encode()
    assert download.headers["Content-Disposition"].startswith('attachment; filename="logo.png"')
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Security-Policy"].startswith("sandbox; default-src 'none'")
    assert download.mimetype == "application/octet-stream"
    hostile_download = client.get(f"/review/tasks/{task.id}/download", query_string={"path": XSS_NAME})
    plain_name = re.search(r'filename="([^"]*)"', hostile_download.headers["Content-Disposition"])
    assert plain_name and re.fullmatch(r"[A-Za-z0-9._-]+", plain_name.group(1))
    assert client.get(f"/review/tasks/{task.id}/download?path=nope.txt").status_code == 404
    assert client.get(f"/review/tasks/{task.id}?file=nope.txt").status_code == 404


@pytest.mark.parametrize("policy", ["review: {blind: true}\n"])
def test_blind_review_shows_the_learner_nowhere_and_staff_see_them(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    files = {
        "zelda/app.py": "# written by Zelda Quigley <zelda.quigley@example.org>\nx = 1\n",
        "README.md": "# App by zelda\n",
    }
    graded(client, learner, queue, loaded, settings, files)
    (task,) = tasks(loaded)
    log_in(client, reviewer(loaded, "rui"))
    pages = [client.get("/review").get_data(as_text=True)]
    claim(client, task.id)
    pages.append(client.get(f"/review/tasks/{task.id}").get_data(as_text=True))
    pages.append(
        client.get(f"/review/tasks/{task.id}", query_string={"file": "[learner]/app.py"}).get_data(
            as_text=True
        )
    )
    token = csrf_token(pages[-1])
    client.post(
        f"/review/tasks/{task.id}/draft",
        data={
            "csrf_token": token,
            "new_inline_path": "[learner]/app.py",
            "new_inline_line": "1",
            "new_inline_body": "Good header.",
        },
    )
    pages.append(
        client.get(f"/review/tasks/{task.id}", query_string={"file": "[learner]/app.py"}).get_data(
            as_text=True
        )
    )
    for html in pages:
        assert "zelda" not in html.lower() and "quigley" not in html.lower()
    assert "hidden (blind review)" in pages[1] and "[learner]/app.py" in pages[1]
    assert "Good header." in pages[-1]
    with loaded() as session:  # kept against the graded path, so the learner finds it beside their file
        draft = session.scalars(select(Review)).one()
        assert [(c.path, c.line) for c in draft.comments] == [("zelda/app.py", 1)]

    client.post("/logout", data={"csrf_token": token})
    log_in(client, reviewer(loaded, "stella", staff=True))
    assert "zelda.quigley" in client.get("/review").get_data(as_text=True)  # staff see who it is


def test_a_draft_comes_back_with_its_comments_rendered_and_a_refused_form_keeps_what_was_typed(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    graded(client, learner, queue, loaded, settings)
    (task,) = tasks(loaded)
    log_in(client, reviewer(loaded, "rui"))
    claim(client, task.id)
    token = csrf_token(client.get(f"/review/tasks/{task.id}").get_data(as_text=True))
    saved = client.post(
        f"/review/tasks/{task.id}/draft",
        data={
            "csrf_token": token,
            "file": "app.py",
            "c-design-comment": "Clear *modules*. <script>alert(1)</script>",
            "comment": "Overall fine.",
            "new_inline_path": "app.py",
            "new_inline_line": "1",
            "new_inline_body": "Name this **constant**.",
        },
    )
    assert (
        saved.status_code == 302
        and saved.headers["Location"] == f"/review/tasks/{task.id}?file=app.py#rubric"
    )
    html = client.get(f"/review/tasks/{task.id}?file=app.py").get_data(as_text=True)
    assert "Draft saved." in html
    assert 'name="c-design-level" value="" checked' in html  # the level is still open...
    assert "Clear *modules*. &lt;script&gt;alert(1)&lt;/script&gt;</textarea>" in html  # ...the comment kept
    assert "Clear <em>modules</em>." in html and "<script>alert(1)" not in html  # rendered, sanitised
    assert "Name this <strong>constant</strong>." in html  # the inline comment beside line 1
    assert 'class="line has-note" id="L1"' in html

    picked = client.post(
        f"/review/tasks/{task.id}/draft",
        data={
            "csrf_token": token,
            "c-design-level": "strong",
            "c-design-comment": "Clear.",
            "inline-0-path": "app.py",
            "inline-0-line": "1",
            "inline-0-body": "Name this **constant**.",
        },
    )
    assert picked.status_code == 302
    html = client.get(f"/review/tasks/{task.id}").get_data(as_text=True)
    assert 'value="strong" data-points="34.0" checked' in html
    assert '<output id="preview-total">100</output> of 100 points' in html  # the server's preview
    assert "This would pass." in html

    refused = client.post(
        f"/review/tasks/{task.id}/draft",
        data={
            "csrf_token": token,
            "c-design-level": "weak",
            "comment": "Typed, not lost.",
            "adjustment": "lots",
        },
    )
    assert refused.status_code == 400
    html = refused.get_data(as_text=True)
    assert "The adjustment must be a number of points" in html
    assert "Typed, not lost.</textarea>" in html and 'value="weak" data-points="4.0" checked' in html
    assert 'id="adjustment" name="adjustment" value="lots"' in html
    no_reason = client.post(
        f"/review/tasks/{task.id}/draft",
        data={"csrf_token": token, "c-design-level": "weak", "adjustment": "-2"},
    )
    assert no_reason.status_code == 400 and "Say why the points are adjusted" in no_reason.get_data(
        as_text=True
    )
    too_far = client.post(
        f"/review/tasks/{task.id}/draft",
        data={"csrf_token": token, "adjustment": "-50", "adjustment_reason": "a lot wrong"},
    )
    assert too_far.status_code == 400 and "The adjustment must lie within ±34 points" in too_far.get_data(
        as_text=True
    )
    with loaded() as session:  # the refused forms changed nothing
        draft = session.scalars(select(Review)).one()
        assert draft.criteria[0]["level"] == "strong" and draft.adjustment == 0


def test_submit_settles_the_result_the_learner_sees_and_submit_and_next_opens_the_next(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    submission_id = graded(client, learner, queue, loaded, settings)
    graded(
        client, make_account(loaded, "bob@example.org", programs=("repo-program",)), queue, loaded, settings
    )
    assert result_of(client, learner, submission_id)["needs_review"] is True
    first, second = tasks(loaded)
    log_in(client, reviewer(loaded, "rui"))
    claim(client, first.id)
    token = csrf_token(client.get(f"/review/tasks/{first.id}").get_data(as_text=True))
    open_criterion = client.post(
        f"/review/tasks/{first.id}/submit", data={"csrf_token": token, "comment": "Done"}
    )
    assert open_criterion.status_code == 400
    assert "Score every criterion before you submit: Design is still open" in open_criterion.get_data(
        as_text=True
    )

    done = client.post(
        f"/review/tasks/{first.id}/submit",
        data={
            "csrf_token": token,
            "c-design-level": "strong",
            "adjustment": "-4",
            "adjustment_reason": "no tests",
            "then": "next",
        },
    )
    assert done.status_code == 302 and done.headers["Location"] == f"/review/tasks/{second.id}"
    html = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Review submitted: 96 of 100 points, passed. Here is the next one." in html
    seen = result_of(client, learner, submission_id)
    assert (seen["score"], seen["passed"], seen["needs_review"]) == (96, True, False)
    assert client.get(f"/review/tasks/{first.id}").status_code == 409  # submitted: no longer a task to score


def test_a_submitted_review_is_edited_as_a_new_version_with_a_reason(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    submission_id = graded(client, learner, queue, loaded, settings)
    (task,) = tasks(loaded)
    log_in(client, reviewer(loaded, "rui"))
    claim(client, task.id)
    token = csrf_token(client.get(f"/review/tasks/{task.id}").get_data(as_text=True))
    client.post(f"/review/tasks/{task.id}/submit", data={"csrf_token": token, "c-design-level": "strong"})
    queue_page = client.get("/review").get_data(as_text=True)
    with loaded() as session:
        review_id = session.scalars(select(Review.id)).one()
    assert f"/review/reviews/{review_id}/edit" in queue_page and "Edit as a new version" in queue_page

    form = client.get(f"/review/reviews/{review_id}/edit")
    assert form.status_code == 200 and 'value="strong" data-points="34.0" checked' in form.get_data(
        as_text=True
    )
    short = client.post(
        f"/review/reviews/{review_id}/edit",
        data={"csrf_token": token, "c-design-level": "weak", "reason": "oops", "comment": "kept"},
    )
    assert short.status_code == 400
    assert "Say why the review changes, in at least 10 characters" in short.get_data(as_text=True)
    assert 'value="weak" data-points="4.0" checked' in short.get_data(as_text=True)
    saved = client.post(
        f"/review/reviews/{review_id}/edit",
        data={"csrf_token": token, "c-design-level": "weak", "reason": "misread the module layout"},
    )
    assert saved.status_code == 302
    assert result_of(client, learner, submission_id)["score"] == 70
    again = client.get(f"/review/reviews/{review_id}/edit")  # the old version is not edited twice
    assert again.status_code == 409 and "Edit the newest version" in again.get_data(as_text=True)
    log_in(client, reviewer(loaded, "sam"))  # another reviewer, not staff
    assert client.get(f"/review/reviews/{review_id + 1}/edit").status_code == 403


def test_the_comment_bank_adds_inserts_counts_searches_and_edits(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    graded(client, learner, queue, loaded, settings)
    (task,) = tasks(loaded)
    log_in(client, reviewer(loaded, "rui"))
    claim(client, task.id)
    token = csrf_token(client.get(f"/review/tasks/{task.id}").get_data(as_text=True))
    added = client.post(
        f"/review/tasks/{task.id}/draft",
        data={
            "csrf_token": token,
            "comment": "Kept too.",
            "bank_text": "Split the *module*.",
            "bank_criterion": "design",
            "bank_add": "1",
        },
    )
    assert added.status_code == 302
    with loaded() as session:
        entry = session.scalars(select(CommentBankEntry)).one()
        assert (entry.text, entry.criterion_id, entry.uses) == ("Split the *module*.", "design", 0)
    inserted = client.post(
        f"/review/tasks/{task.id}/draft",
        data={
            "csrf_token": token,
            "comment": "Kept too.",
            "c-design-comment": "Good.",
            "bank_target": "design",
            "insert": str(entry.id),
        },
    )
    assert inserted.status_code == 302
    html = client.get(f"/review/tasks/{task.id}").get_data(as_text=True)
    assert "Good.\n\nSplit the *module*.</textarea>" in html and "used 1 time" in html
    assert "Kept too.</textarea>" in html
    assert "No comment matches" in client.get(f"/review/tasks/{task.id}?bank_q=zzz").get_data(as_text=True)

    bank = client.get("/review/comment-bank/reviewed?q=module")
    assert bank.status_code == 200 and "Split the *module*." in bank.get_data(as_text=True)
    edited = client.post(
        f"/review/comment-bank/entries/{entry.id}", data={"csrf_token": token, "text": "Split it by concern."}
    )
    assert edited.status_code == 302
    empty = client.post(f"/review/comment-bank/entries/{entry.id}", data={"csrf_token": token, "text": " "})
    assert empty.status_code == 400 and "The comment is empty" in empty.get_data(as_text=True)
    used = client.post(
        f"/review/comment-bank/entries/{entry.id}/use",
        data={"csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert used.get_json() == {"id": entry.id, "text": "Split it by concern.", "uses": 2}
    assert client.get("/review/comment-bank/no-such-rubric").status_code == 404


DOUBLE = "review: {double: true, disagreement: 0.2}\n"


@pytest.mark.parametrize("policy", [DOUBLE])
def test_double_review_keeps_the_second_reviewer_apart_and_the_adjudicator_sees_both(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    submission_id = graded(client, learner, queue, loaded, settings)
    first, second = tasks(loaded)
    for name, task, level in (("rui", first, "strong"), ("sam", second, "weak")):
        log_in(client, reviewer(loaded, name))
        claim(client, task.id)
        page = client.get(f"/review/tasks/{task.id}").get_data(as_text=True)
        if name == "sam":
            assert "Second review (independent)" in page
            assert "rui" not in text(page) and "Comment by rui" not in page  # never the first review
        client.post(
            f"/review/tasks/{task.id}/submit",
            data={
                "csrf_token": csrf_token(page),
                "c-design-level": level,
                "c-design-comment": f"Comment by {name}",
            },
        )
    assert result_of(client, learner, submission_id)["needs_review"] is True  # 34 and 4 of 34: apart
    log_in(client, reviewer(loaded, "judge"))
    queue_page = client.get("/review").get_data(as_text=True)
    assert "Adjudication" in queue_page
    adjudication = tasks(loaded)[-1]
    assert adjudication.slot == ReviewSlot.ADJUDICATION
    claim(client, adjudication.id)
    page = client.get(f"/review/tasks/{adjudication.id}").get_data(as_text=True)
    assert "The two reviews disagree: you decide" in page
    assert "Comment by rui" in page and "Comment by sam" in page
    client.post(
        f"/review/tasks/{adjudication.id}/submit",
        data={"csrf_token": csrf_token(page), "c-design-level": "weak"},
    )
    assert result_of(client, learner, submission_id)["score"] == 70


def test_a_regrade_request_is_answered_on_its_page_by_another_reviewer(
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    submission_id = graded(client, learner, queue, loaded, settings)
    (task,) = tasks(loaded)
    log_in(client, reviewer(loaded, "rui"))
    claim(client, task.id)
    token = csrf_token(client.get(f"/review/tasks/{task.id}").get_data(as_text=True))
    client.post(f"/review/tasks/{task.id}/submit", data={"csrf_token": token, "c-design-level": "weak"})
    with loaded() as session:
        zelda = session.get(User, learner.id)
        assert zelda is not None
        reviews.request_regrade(
            session, zelda, submission_id, "design", 'The modules are split. "><img src=x onerror=alert(3)>'
        )
        session.commit()
    regrade = tasks(loaded)[-1]
    assert client.post(f"/review/tasks/{regrade.id}/claim", data={"csrf_token": token}).status_code == 403

    log_in(client, reviewer(loaded, "sam"))
    claim(client, regrade.id)
    page = client.get(f"/review/tasks/{regrade.id}").get_data(as_text=True)
    assert "The learner asks for a regrade" in page and "Regrade request" in page
    assert "The modules are split. &#34;&gt;&lt;img src=x onerror=alert(3)&gt;" in page
    assert "<img src=x" not in page
    assert 'value="weak" data-points="4.0" checked' in page  # starts from the scores that stand
    token = csrf_token(page)
    no_reply = client.post(
        f"/review/tasks/{regrade.id}/regrade-answer", data={"csrf_token": token, "c-design-level": "weak"}
    )
    assert no_reply.status_code == 400 and "Write the reply" in no_reply.get_data(as_text=True)
    answered = client.post(
        f"/review/tasks/{regrade.id}/regrade-answer",
        data={"csrf_token": token, "c-design-level": "strong", "reply": "Agreed: the split is clear."},
    )
    assert answered.status_code == 302
    with loaded() as session:
        request = session.scalars(select(RegradeRequest)).one()
        assert (request.status, request.changed, request.reply) == (
            "answered",
            True,
            "Agreed: the split is clear.",
        )
    assert result_of(client, learner, submission_id)["score"] == 100
