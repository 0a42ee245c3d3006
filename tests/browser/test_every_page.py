"""Every main page in Chromium, as the people who use it reach it: the learner's (login, home, program,
quiz attempt and result, repository hand-in, the result waiting, graded and needing review, account),
the reviewer's (queue, task with the file viewer and the diff, comment bank, edit after submit) and the
staff's (workspace, accounts, an account, a program's enrolments and its CSV preview, gradebook,
catalog, queues, regrade preview, agreement).

Each passes `check_page`: no serious or critical axe-core violation, no sideways scrolling at 1280 px
or 375 px, a screenshot at each width in test-artifacts/screenshots/. Then the forms again with
JavaScript off: the quiz is handed in (through the server's own "no answer yet" step), a review draft
is saved and submitted, a repository is handed in, and a staff form is posted. axe-core cannot run
without JavaScript, so those pages are held to the layout half of the checks.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.models import GradingRun, Review, ReviewSlot, ReviewState, ReviewTask, RunStatus, Submission, User
from grader.services import review_queue, reviews
from rubrics import Review as CriterionReview
from tests.browser.conftest import SCREENSHOTS, WIDTHS, LiveApp, check_page, log_in
from tests.conftest import Account, make_account
from tests.support.catalogs import write_catalog
from tests.support.reviewed import REVIEWED_REPO, hand_in, run_queued, write_repository_catalog

SELF_CHECK = {
    "checked_at": "2026-11-30T09:15:00+00:00",
    "backend": "bwrap",
    "reference_passed": 1,
    "starter_failed": 1,
}
APP = "LIMIT = 10\n\n\ndef answer():\n    return 42\n"
EARLIER_APP = "LIMIT = 10\n\n\ndef answer():\n    return 41\n"


@pytest.fixture
def policy() -> str:
    """The repository assessment's review policy (a test may ask for double review)."""
    return ""


@pytest.fixture
def catalog_dir(settings: Settings, policy: str) -> Path:
    """The two quiz programs and the reviewed repository program, with a recorded self-check."""
    root = write_catalog(settings.catalog_path)
    write_repository_catalog(root)
    (root / "assessments/reviewed-repo/assessment.yaml").write_text(REVIEWED_REPO + policy)
    expected = {
        "format": 2,
        "suites": {"hidden": [{"id": "tests/test_it.py::test_it", "max_points": 1}]},
        "self_check": SELF_CHECK,
    }
    (root / "assessments/reviewed-repo/expected_tests.json").write_text(json.dumps(expected))
    return root


@pytest.fixture
def learner(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "ada.lovelace@example.org", programs=("test-program", "repo-program"))


@pytest.fixture
def reviewer(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "rui.reviewer@example.org", role="reviewer", reviews=("repo-program",))


@pytest.fixture
def admin(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "root@example.org", role="admin")


@pytest.fixture
def open_page(browser: Browser, live: LiveApp) -> Iterator[Callable[..., Page]]:
    """Pages in contexts of their own (one login each), with or without JavaScript; closed after the test."""
    contexts = []

    def opened(account: Account | None = None, *, javascript: bool = True) -> Page:
        context = browser.new_context(
            viewport={"width": WIDTHS[0], "height": 900}, java_script_enabled=javascript
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        if account is not None:
            log_in(page, live, account)
            expect(page.get_by_role("button", name="Log out")).to_be_visible()
        return page

    yield opened
    for context in contexts:
        context.close()


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def check_layout(page: Page, name: str) -> None:
    """The layout half of `check_page`, for pages with JavaScript off (axe-core needs JavaScript)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        overflow: Any = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{name} scrolls sideways by {overflow} px at {width} px"
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def answer_the_basics_quiz(page: Page, *, all_of_it: bool = True) -> None:
    page.get_by_label("201 Created").check()
    page.get_by_label("GET", exact=True).check()
    page.get_by_label("HEAD", exact=True).check()
    page.get_by_label("Your answer to question 4").fill("443")
    if all_of_it:
        page.locator("#q-idempotent-put").get_by_label("True").check()
        page.get_by_label("Your answer to question 5").fill("Content-Type")


def choose_archive(page: Page, files: dict[str, str]) -> None:
    page.get_by_label(re.compile(r"^Archive \(")).set_input_files(
        {"name": "work.zip", "mimeType": "application/zip", "buffer": zipped(files)}
    )


def user(loaded: sessionmaker[Session], account: Account) -> User:
    with loaded() as session:
        found = session.get(User, account.id)
        assert found is not None
        session.expunge(found)
        return found


def review_oldest(loaded: sessionmaker[Session], who: User, level: str, comment: str = "") -> None:
    """A reviewer claims the oldest open task and submits a review of it (for pages that follow one)."""
    with loaded() as session:
        (item, *_) = review_queue.queue(session, who).items
        review_queue.claim(session, who, item.task_id)
        given = reviews.ReviewInput(reviews=(CriterionReview("design", level=level, comment=comment),))
        reviews.submit(session, who, item.task_id, given)
        session.commit()


# ---------------------------------------------------------------- the learner


def test_every_learner_page_from_login_to_a_result_waiting_for_review(
    open_page: Callable[..., Page],
    live: LiveApp,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    page = open_page()
    page.goto(f"{live.url}/login")
    check_page(page, "login")
    log_in(page, live, learner)
    expect(page.get_by_role("heading", name="Your programs")).to_be_visible()
    check_page(page, "learner-home")

    page.get_by_role("link", name="Test program").click()
    expect(page.get_by_role("heading", name="Test program", level=1)).to_be_visible()
    check_page(page, "learner-program")
    page.get_by_role("button", name=re.compile(r"^Take the quiz\W+HTTP basics$")).click()
    expect(page.get_by_role("heading", name="HTTP basics")).to_be_visible()
    check_page(page, "learner-quiz-attempt")
    answer_the_basics_quiz(page)
    page.get_by_role("button", name="Hand in answers").click()
    expect(page.get_by_role("heading", name="Grading")).to_be_visible()
    check_page(page, "learner-result-queued")
    run_queued(queue, loaded, settings)
    # The waiting page asks for its status by itself and shows the result when it is there.
    expect(page.get_by_role("heading", name="Passed")).to_be_visible(timeout=15_000)
    expect(page.get_by_text("Your answer")).to_have_count(5)
    check_page(page, "learner-quiz-result")

    page.goto(f"{live.url}/programs/repo-program")
    page.get_by_role("link", name="Hand in Reviewed repository").click()
    expect(page.get_by_role("heading", name="Hand in your work")).to_be_visible()
    check_page(page, "learner-repository-hand-in")
    choose_archive(page, {"app.py": APP, "README.md": "# App\n"})
    page.get_by_role("button", name="Hand in for grading").click()
    expect(page.get_by_role("heading", name="Grading")).to_be_visible()
    run_queued(queue, loaded, settings)
    expect(page.get_by_role("heading", name="Waiting for a reviewer")).to_be_visible(timeout=15_000)
    expect(page.get_by_role("cell", name="README.md")).to_be_visible()  # the files received
    check_page(page, "learner-result-needs-review")

    page.get_by_role("link", name="Account").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    check_page(page, "learner-account")

    missing = page.goto(f"{live.url}/submissions/no-such-submission")
    assert missing is not None and missing.status == 404
    check_page(page, "error-not-found")


# ---------------------------------------------------------------- the reviewer


def test_every_reviewer_page_and_the_result_the_learner_then_reads(
    open_page: Callable[..., Page],
    live: LiveApp,
    client: FlaskClient,
    learner: Account,
    reviewer: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    hand_in(client, learner, {"app.py": EARLIER_APP, "README.md": "# App\n"})
    run_queued(queue, loaded, settings)  # graded first: a hand-in still waiting would be replaced
    hand_in(client, learner, {"app.py": APP, "README.md": "# App\n", "notes.txt": "Read me first.\n"})
    run_queued(queue, loaded, settings)
    page = open_page(reviewer)
    page.get_by_role("link", name="Review", exact=True).click()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page.get_by_role("button", name="Claim")).to_have_count(2)
    check_page(page, "reviewer-queue")

    page.get_by_role("row", name=re.compile("attempt 2")).get_by_role("button", name="Claim").click()
    expect(page.get_by_role("heading", name=re.compile("Reviewed repository"))).to_be_visible()
    page.get_by_text("app.py · changed").click()  # the diff to attempt 1, opened
    expect(page.get_by_text("+    return 42")).to_be_visible()
    check_page(page, "reviewer-task")
    page.get_by_role("navigation", name="Files of the submission").get_by_role("link", name="app.py").click()
    expect(page.get_by_role("region", name="The code of app.py")).to_contain_text("return 42")
    check_page(page, "reviewer-task-file")

    page.get_by_role("link", name="Edit the bank").click()
    expect(page.get_by_role("heading", name=re.compile("Comment bank"))).to_be_visible()
    page.get_by_label("Comment (Markdown)").fill("Name the *constant* after what it limits.")
    page.get_by_role("button", name="Add to the bank").click()
    expect(page.get_by_label("Text of comment 1")).to_have_value("Name the *constant* after what it limits.")
    check_page(page, "reviewer-comment-bank")

    page.get_by_role("link", name="Back to the review").click()
    page.get_by_label("strong").check()
    page.get_by_label("Comment on Design").fill("Clear **modules**.")
    page.get_by_role("button", name="Submit", exact=True).click()
    expect(page.get_by_role("heading", name="Reviews you submitted")).to_be_visible()
    page.get_by_role("link", name="Edit as a new version").click()
    expect(page.get_by_label("strong")).to_be_checked()
    check_page(page, "reviewer-edit")

    reader = open_page(learner)
    reader.goto(f"{live.url}/programs/repo-program")
    reader.get_by_role("link", name="Latest result of Reviewed repository").click()
    expect(reader.get_by_role("heading", name="Passed")).to_be_visible()
    expect(reader.get_by_role("row", name=re.compile("Design strong"))).to_contain_text("Clear modules.")
    expect(reader.get_by_label("Why should “Design” be looked at again?")).to_be_visible()
    check_page(reader, "learner-result-reviewed")


# ---------------------------------------------------------------- staff


CSV = "email,name\r\nnew.learner@example.org,New Learner\r\nnot an email,Broken Row\r\n"


def test_every_staff_page(
    open_page: Callable[..., Page],
    live: LiveApp,
    client: FlaskClient,
    learner: Account,
    reviewer: Account,
    admin: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    hand_in(client, learner)
    run_queued(queue, loaded, settings)
    review_oldest(loaded, user(loaded, reviewer), "strong")
    failed = hand_in(client, learner)
    queue.sent.clear()
    with loaded() as session:  # a run that went wrong, for the queue page's retry list
        run = session.scalars(select(GradingRun).where(GradingRun.submission_id == failed)).one()
        run.status, run.last_error, run.tries = RunStatus.ERROR, "sandbox unavailable", 3
        submission = session.get(Submission, failed)
        assert submission is not None
        submission.status = "error"
        session.commit()

    page = open_page(admin)
    page.get_by_role("link", name="Staff", exact=True).click()
    expect(page.get_by_role("heading", name="Staff workspace")).to_be_visible()
    check_page(page, "staff-home")
    page.get_by_role("navigation", name="Staff workspace").get_by_role("link", name="Accounts").click()
    expect(page.get_by_role("heading", name="Accounts and roles")).to_be_visible()
    check_page(page, "staff-accounts")
    page.get_by_role("link", name=learner.email).click()
    expect(page.get_by_role("heading", name="ada.lovelace")).to_be_visible()
    check_page(page, "staff-account")

    page.goto(f"{live.url}/staff/programs/repo-program")  # a program's page opens on its learners
    expect(page.get_by_role("heading", name="Repository program")).to_be_visible()
    expect(page.get_by_role("region", name="Enrolled learners", exact=True)).to_contain_text(learner.email)
    check_page(page, "staff-enrolments")
    page.get_by_label(re.compile("^CSV file")).set_input_files(
        {"name": "learners.csv", "mimeType": "text/csv", "buffer": CSV.encode()}
    )
    page.get_by_role("button", name="Preview the import").click()
    expect(page.get_by_text("Nothing has been written yet")).to_be_visible()
    check_page(page, "staff-import-preview")

    page.goto(f"{live.url}/staff/programs/repo-program/gradebook")
    expect(page.get_by_role("heading", name="Gradebook: Repository program")).to_be_visible()
    check_page(page, "staff-gradebook")
    page.get_by_role("link", name="Catalog").click()
    expect(page.get_by_role("heading", name="Catalog status")).to_be_visible()
    check_page(page, "staff-catalog")
    page.get_by_role("link", name="Queues").click()
    expect(page.get_by_text("sandbox unavailable")).to_be_visible()
    check_page(page, "staff-queues")
    page.get_by_label("Assessment", exact=True).select_option("reviewed-repo")
    page.get_by_role("button", name="Preview the regrade").click()
    expect(page.get_by_role("heading", name="Regrade Reviewed repository")).to_be_visible()
    check_page(page, "staff-regrade-preview")


@pytest.mark.parametrize("policy", ["review: {double: true, disagreement: 1}\n"])
def test_the_agreement_page_with_double_reviews_to_compare(
    open_page: Callable[..., Page],
    live: LiveApp,
    client: FlaskClient,
    reviewer: Account,
    admin: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    for name in ("ada", "bob"):
        hand_in(client, make_account(loaded, f"{name}@example.org", programs=("repo-program",)))
    run_queued(queue, loaded, settings)
    first, second = (
        user(loaded, reviewer),
        user(loaded, make_account(loaded, "sam@example.org", role="reviewer", reviews=("repo-program",))),
    )
    with loaded() as session:
        for task in session.scalars(select(ReviewTask).order_by(ReviewTask.id)).all():
            who, level = (first, "strong") if task.slot == ReviewSlot.FIRST else (second, "weak")
            review_queue.claim(session, who, task.id)
            given = reviews.ReviewInput(reviews=(CriterionReview("design", level=level),))
            reviews.submit(session, who, task.id, given)
        session.commit()
    page = open_page(admin)
    page.goto(f"{live.url}/staff")
    page.get_by_role("link", name="Agreement", exact=True).click()
    expect(page.get_by_text("2 results reviewed twice")).to_be_visible()
    expect(page.get_by_role("region", name="Agreement per reviewer")).to_contain_text("sam@example.org")
    check_page(page, "staff-agreement")


# ---------------------------------------------------------------- with JavaScript off


def test_with_javascript_off_a_quiz_and_a_repository_are_handed_in_and_a_token_made(
    open_page: Callable[..., Page],
    live: LiveApp,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    page = open_page(learner, javascript=False)
    page.goto(f"{live.url}/programs/test-program")
    page.get_by_role("button", name=re.compile(r"^Take the quiz\W+HTTP basics$")).click()
    answer_the_basics_quiz(page, all_of_it=False)
    page.get_by_role("button", name="Hand in answers").click()
    # No script asks first, so the server does: the answers given are kept.
    expect(page.get_by_role("heading", name="2 questions have no answer yet")).to_be_visible()
    expect(page.get_by_label("Your answer to question 4")).to_have_value("443")
    check_layout(page, "nojs-quiz-confirm")
    page.get_by_role("button", name="Hand in anyway").click()
    expect(page.get_by_role("heading", name="Grading")).to_be_visible()
    run_queued(queue, loaded, settings)
    page.get_by_role("link", name="Check again").click()  # no script polls: the learner reloads
    expect(page.get_by_role("heading", name="Not passed yet")).to_be_visible()
    expect(page.get_by_text("Your answer")).to_have_count(5)
    check_layout(page, "nojs-quiz-result")

    page.goto(f"{live.url}/assessments/reviewed-repo/submit")
    choose_archive(page, {"app.py": APP, "README.md": "# App\n"})
    page.get_by_role("button", name="Hand in for grading").click()
    expect(page.get_by_role("heading", name="Grading")).to_be_visible()
    run_queued(queue, loaded, settings)
    page.get_by_role("link", name="Check again").click()
    expect(page.get_by_role("heading", name="Waiting for a reviewer")).to_be_visible()
    check_layout(page, "nojs-result-needs-review")

    page.goto(f"{live.url}/account")
    page.get_by_label("Name").fill("laptop scripts")
    page.get_by_role("button", name="Create the token").click()
    expect(page.get_by_text("Your new token “laptop scripts”")).to_be_visible()
    expect(page.get_by_label(re.compile(r"^The token.s secret$"))).to_have_value(re.compile(r"^gr_"))


def test_with_javascript_off_a_review_is_drafted_and_submitted_and_a_regrade_asked(
    open_page: Callable[..., Page],
    live: LiveApp,
    client: FlaskClient,
    learner: Account,
    reviewer: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    hand_in(client, learner, {"app.py": APP, "README.md": "# App\n"})
    run_queued(queue, loaded, settings)
    page = open_page(reviewer, javascript=False)
    page.goto(f"{live.url}/review")
    page.get_by_role("button", name="Claim").click()
    page.get_by_role("navigation", name="Files of the submission").get_by_role("link", name="app.py").click()
    page.get_by_label("weak").check()
    page.get_by_label("Comment on Design").fill("Split the *modules*.")
    page.get_by_label(re.compile(r"^Line number")).fill("1")
    page.get_by_label("Comment (Markdown)").fill("Say what this **limits**.")
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("Draft saved.")).to_be_visible()
    # The server's preview of what was saved stands in for the live one.
    expect(page.locator("#preview-total")).to_have_text("70")
    expect(page.get_by_label("weak")).to_be_checked()
    expect(page.get_by_label("Comment on Design")).to_have_value("Split the *modules*.")
    expect(page.locator("#L1")).to_have_class(re.compile("has-note"))
    check_layout(page, "nojs-review-draft")
    page.get_by_label("strong").check()
    page.get_by_role("button", name="Submit", exact=True).click()
    expect(page.get_by_text(re.compile("Review submitted: 100 of 100 points, passed"))).to_be_visible()
    with loaded() as session:
        submitted = session.scalars(select(Review).where(Review.state == ReviewState.SUBMITTED)).one()
        assert submitted.criteria[0]["level"] == "strong"
        assert [(c.path, c.line) for c in submitted.comments] == [("app.py", 1)]

    # The learner, without JavaScript either, reads the comment beside its line and asks for a regrade.
    reader = open_page(learner, javascript=False)
    reader.goto(f"{live.url}/programs/repo-program")
    reader.get_by_role("link", name="Latest result of Reviewed repository").click()
    expect(reader.get_by_role("heading", name="app.py, line 1")).to_be_visible()
    expect(reader.get_by_text("Say what this limits.")).to_be_visible()
    reader.get_by_label("Why should “Design” be looked at again?").fill("The modules are split by concern.")
    reader.get_by_role("button", name="Ask for a regrade of Design").click()
    expect(reader.get_by_text("Your regrade request was sent to a reviewer")).to_be_visible()
    expect(reader.locator("#regrades")).to_contain_text("The modules are split by concern.")
    check_layout(reader, "nojs-result-regrade-asked")


def test_with_javascript_off_staff_enrol_a_learner_and_import_a_csv(
    open_page: Callable[..., Page], live: LiveApp, admin: Account, loaded: sessionmaker[Session]
) -> None:
    page = open_page(admin, javascript=False)
    page.goto(f"{live.url}/staff/programs/repo-program/enrolments")
    page.get_by_label("Email address", exact=True).fill("grace@example.org")
    page.get_by_label(re.compile(r"^Name")).fill("Grace Hopper")
    page.get_by_role("button", name="Enrol", exact=True).click()
    expect(page.get_by_text("shown only on this page, this once")).to_be_visible()
    check_layout(page, "nojs-staff-enrolled")

    page.goto(f"{live.url}/staff/programs/repo-program/enrolments")
    page.get_by_label(re.compile("^CSV file")).set_input_files(
        {"name": "learners.csv", "mimeType": "text/csv", "buffer": CSV.encode()}
    )
    page.get_by_role("button", name="Preview the import").click()
    expect(page.get_by_role("row", name=re.compile("not an email"))).to_contain_text("Error")
    page.get_by_role("button", name="Import 1 learner").click()
    expect(page.get_by_text("1 learner enrolled from the file")).to_be_visible()
    page.goto(f"{live.url}/staff/programs/repo-program/enrolments")
    learners = page.get_by_role("region", name="Enrolled learners", exact=True)
    expect(learners).to_contain_text("grace@example.org")
    expect(learners).to_contain_text("new.learner@example.org")
    expect(learners).not_to_contain_text("not an email")
