"""Script payloads in every field a learner (or a reviewer) controls, read in Chromium on every page that
shows them: the learner's name, quiz open-text answers, a git URL and ref, API token names, file names
and contents of a handed-in repository (archive and git, commit message included), reviewer comments
and inline comments (Markdown), adjustment reasons, regrade reasons and replies, comment bank entries,
and names in an enrolment CSV.

The browser contexts bypass the Content-Security-Policy, so what is checked is the escaping itself and
not the CSP behind it: an injected `<script>` or `onerror` would run here. Each payload, if it ran,
would open a dialog and set `window.__pwned`; on each page the test asserts that no dialog opened, the
marker is unset, no element carries an event handler attribute or a `javascript:` URL, no payload
element (script, svg, img) exists, and the payload is there to read as text (or as the value of the
field it was typed into). The payloads are also long unbroken words, so each page is checked for
sideways scrolling at 375 px, and a few are given the whole `check_page` (axe-core and screenshots).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.models import ReviewTask, TaskStatus, User
from grader.services import review_queue, reviews
from grader.services.reviews import InlineComment, ReviewInput
from rubrics import Review as CriterionReview
from tests.browser.conftest import WIDTHS, LiveApp, check_page, log_in
from tests.browser.test_every_page import user, zipped
from tests.conftest import Account, make_account
from tests.support.catalogs import write_catalog
from tests.support.gitserver import GitServer
from tests.support.reviewed import hand_in, run_queued, write_repository_catalog


def ran(field: str) -> str:
    """What a payload does if it ever runs: a dialog, and a marker the page can be asked about."""
    return f"alert('{field}');window.__pwned='{field}'"


NAME = f'Mallory "><svg onload="{ran("name")}"><script>{ran("name")}</script>'
ANSWER = f'"><svg onload="{ran("answer")}"> <script>{ran("answer")}</script>'
GIT_URL = f'https://example.org/x.git"><svg onload="{ran("url")}">'
REF = f'main"><img src=x onerror="{ran("ref")}">'
TOKEN_NAME = f'"><img src=x onerror="{ran("token")}">'
# File names cannot hold a slash, so no closing tags here.
FILE_NAME = f'"><img src=x onerror="{ran("file")}">.py'
OTHER_FILE_NAME = f"<svg onload={ran('file2')}>.txt"
CONTENT_LINES = (
    f"# <script>{ran('content')}</script>",
    f"BANNER = '</textarea><img src=x onerror=\"{ran('content2')}\">'",
    "",
)
CONTENT = "\n".join(CONTENT_LINES)
CHANGED_LINE = f'print("\\"><svg onload={ran("diff")}>")'
# Markdown: a javascript: link, raw HTML with handlers, a textarea breakout and a script.
CRITERION_COMMENT = (
    f'</textarea><img src=x onerror="{ran("criterion")}"> [click me](javascript:{ran("criterion-link")})'
)
OVERALL_COMMENT = (
    f'<a href="javascript:{ran("overall")}">raw link</a> <b onmouseover="{ran("overall2")}">x</b>'
)
INLINE_COMMENT = f"<script>{ran('inline')}</script> **see** [this](javascript:{ran('inline-link')})"
ADJUSTMENT_REASON = f'"><svg onload="{ran("adjustment")}">'
BANK_TEXT = f'</textarea><svg onload="{ran("bank")}"> [bank](javascript:{ran("bank-link")})'
REGRADE_REASON = f'</textarea><img src=x onerror="{ran("regrade")}"> please look at the design again'
REPLY = f"<script>{ran('reply')}</script> [reply](javascript:{ran('reply-link')})"
COMMIT_MESSAGE = f'Add "><svg onload="{ran("commit")}"> <script>{ran("commit")}</script>'
CSV_NAME = f'<img src=x onerror="{ran("csv")}">'

# Anything on the page that a payload would have made active.
ACTIVE_MARKUP = """() => {
  const found = [];
  const urls = ["href", "src", "action", "formaction", "xlink:href", "data", "poster"];
  for (const element of document.querySelectorAll("*")) {
    for (const attribute of element.attributes) {
      const name = attribute.name.toLowerCase();
      const value = attribute.value.replace(/[\\s\\u0000-\\u001f]+/g, "").toLowerCase();
      if (name.startsWith("on")) found.push(element.localName + " [" + name + "]");
      if (urls.includes(name) && value.startsWith("javascript:")) found.push(element.localName + " " + name);
    }
    if (element.localName === "script" && !element.src && element.type !== "application/json") {
      found.push("an inline script");
    }
    const embedded = ["svg", "img", "iframe", "object", "embed"];
    if (embedded.includes(element.localName)) found.push(element.localName);
  }
  return found;
}"""


@dataclass
class Watched:
    """A page and the dialogs any script on it opened."""

    page: Page
    dialogs: list[str] = field(default_factory=list)

    def inert(self, *texts: str, values: dict[str, str] | None = None) -> None:
        """Nothing ran or can run; each text is there to read and each field holds what was typed."""
        page = self.page
        page.wait_for_load_state("load")  # an <img onerror> or <svg onload> has fired by now
        assert self.dialogs == [], f"a payload opened a dialog on {page.url}: {self.dialogs}"
        marker: Any = page.evaluate("() => window.__pwned === undefined ? null : String(window.__pwned)")
        assert marker is None, f"the payload of {marker!r} ran on {page.url}"
        active: Any = page.evaluate(ACTIVE_MARKUP)
        assert active == [], f"active markup on {page.url}: {active}"
        # The payloads are long unbroken words too: they wrap instead of widening the page.
        page.set_viewport_size({"width": WIDTHS[-1], "height": 900})
        overflow: Any = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        page.set_viewport_size({"width": WIDTHS[0], "height": 900})
        assert overflow <= 1, f"{page.url} scrolls sideways by {overflow} px at {WIDTHS[-1]} px"
        for text in texts:
            expect(page.get_by_text(text, exact=False).first).to_be_visible()
        for label, value in (values or {}).items():
            expect(page.get_by_label(label)).to_have_value(value)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        secret_key="test-secret-key",
        catalog_path=tmp_path / "catalog",
        submissions_per_hour=100,
        git_allow_insecure_loopback=True,  # the test's git server is on loopback
    )


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    root = write_catalog(settings.catalog_path)
    return write_repository_catalog(root)


@pytest.fixture
def learner(loaded: sessionmaker[Session]) -> Account:
    account = make_account(loaded, "mallory@example.org", programs=("test-program", "repo-program"))
    with loaded() as session:
        session.execute(update(User).where(User.id == account.id).values(name=NAME))
        session.commit()
    return account


@pytest.fixture
def reviewer(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "rui@example.org", role="reviewer", reviews=("repo-program",))


@pytest.fixture
def watch(browser: Browser, live: LiveApp) -> Iterator[Callable[[Account], Watched]]:
    """A logged-in page whose context ignores the CSP, with every dialog recorded (and dismissed)."""
    contexts = []

    def opened(account: Account) -> Watched:
        context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900}, bypass_csp=True)
        contexts.append(context)
        watched = Watched(context.new_page())
        watched.page.set_default_timeout(10_000)

        def record(dialog: Any) -> None:
            watched.dialogs.append(dialog.message)
            dialog.dismiss()

        watched.page.on("dialog", record)
        log_in(watched.page, live, account)
        return watched

    yield opened
    for context in contexts:
        context.close()


def open_details(page: Page) -> None:
    """Opens every collapsed <details>, so what is inside can be seen."""
    page.evaluate("() => document.querySelectorAll('details').forEach((d) => { d.open = true; })")


def one_line(text: str) -> str:
    """How a text reads on the page: runs of whitespace as one space."""
    return re.sub(r"\s+", " ", text).strip()


# ---------------------------------------------------------------- the learner's own fields


def test_what_a_learner_types_is_shown_back_as_text(
    watch: Callable[[Account], Watched],
    live: LiveApp,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    mallory = watch(learner)
    page = mallory.page
    mallory.inert(NAME)  # the name in the header of every page

    page.goto(f"{live.url}/programs/test-program")
    page.get_by_role("button", name=re.compile(r"^Take the quiz\W+HTTP basics$")).click()
    page.get_by_label("201 Created").check()
    page.get_by_label("GET", exact=True).check()
    page.locator("#q-idempotent-put").get_by_label("True").check()
    page.get_by_label("Your answer to question 4").fill("four hundred")
    page.get_by_label("Your answer to question 5").fill(ANSWER)
    page.get_by_role("button", name="Hand in answers").click()
    # Refused (the port is not a number): the answers come back in their fields, attributes intact.
    expect(page.get_by_role("alert")).to_contain_text("must be a number")
    mallory.inert(values={"Your answer to question 5": ANSWER, "Your answer to question 4": "four hundred"})
    page.get_by_label("Your answer to question 4").fill("443")
    page.get_by_role("button", name="Hand in answers").click()
    run_queued(queue, loaded, settings)
    expect(page.get_by_role("heading", name="Not passed yet")).to_be_visible(timeout=15_000)
    mallory.inert(ANSWER)  # "Your answer", beside the question

    page.goto(f"{live.url}/assessments/reviewed-repo/submit")
    page.get_by_label("HTTPS URL of the repository").fill(GIT_URL)
    page.get_by_label("Branch, tag or commit (optional)").fill(REF)
    page.get_by_role("button", name="Hand in for grading").click()
    expect(page.get_by_role("alert")).to_contain_text("Problem with the git URL")
    mallory.inert(values={"HTTPS URL of the repository": GIT_URL, "Branch, tag or commit (optional)": REF})

    page.goto(f"{live.url}/account")
    page.get_by_label("Name").fill(TOKEN_NAME)
    page.get_by_role("button", name="Create the token").click()
    expect(page.get_by_text("Copy it now")).to_be_visible()
    mallory.inert(f"Your new token “{TOKEN_NAME}”")
    expect(page.get_by_role("cell", name=TOKEN_NAME, exact=True)).to_be_visible()
    expect(page.get_by_role("button", name=f"Revoke the token {TOKEN_NAME}")).to_be_visible()


# ---------------------------------------------------------------- a repository, as the reviewer reads it


def handed_in_twice(
    page: Page, live: LiveApp, queue: RecordingQueue, loaded: sessionmaker[Session], settings: Settings
) -> None:
    """Two archives through the hand-in page; the second changes the hostile file (for a diff)."""
    first = {"app.py": "LIMIT = 1\n", "README.md": "# App\n", FILE_NAME: CONTENT, OTHER_FILE_NAME: "notes\n"}
    second = {**first, FILE_NAME: CONTENT + CHANGED_LINE + "\n"}
    for files in (first, second):
        page.goto(f"{live.url}/assessments/reviewed-repo/submit")
        page.get_by_label(re.compile(r"^Archive \(")).set_input_files(
            {"name": "work.zip", "mimeType": "application/zip", "buffer": zipped(files)}
        )
        page.get_by_role("button", name="Hand in for grading").click()
        expect(page.get_by_role("heading", name="Grading")).to_be_visible()
        run_queued(queue, loaded, settings)
        # The page long-polls its status and reloads once graded: let it, before navigating away.
        expect(page.get_by_role("heading", name="Waiting for a reviewer")).to_be_visible(timeout=15_000)


def test_a_reviewer_reads_hostile_files_and_writes_hostile_comments_as_text(
    watch: Callable[[Account], Watched],
    live: LiveApp,
    learner: Account,
    reviewer: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    handed_in_twice(watch(learner).page, live, queue, loaded, settings)
    rui = watch(reviewer)
    page = rui.page
    page.goto(f"{live.url}/review")
    rui.inert(NAME)  # the learner's name in the queue
    page.get_by_role("row", name=re.compile("attempt 2")).get_by_role("button", name="Claim").click()
    expect(page.get_by_role("heading", name=re.compile("Reviewed repository"))).to_be_visible()
    open_details(page)  # the diffs to attempt 1
    files = page.get_by_role("navigation", name="Files of the submission")
    expect(files.get_by_role("link", name=FILE_NAME, exact=True)).to_be_visible()
    expect(files.get_by_role("link", name=OTHER_FILE_NAME, exact=True)).to_be_visible()
    rui.inert(NAME, "+" + CHANGED_LINE)
    check_page(page, "xss-reviewer-task")

    files.get_by_role("link", name=FILE_NAME, exact=True).click()
    code = page.get_by_role("region", name=f"The code of {FILE_NAME}")
    for number, line in enumerate((*CONTENT_LINES[:2], CHANGED_LINE), start=1):
        expect(code.locator(f"#L{number}")).to_have_text(f"{number}{line}")
    rui.inert(FILE_NAME)

    page.get_by_label("weak").check()
    page.get_by_label("Comment on Design").fill(CRITERION_COMMENT)
    page.get_by_label("Overall comment").fill(OVERALL_COMMENT)
    page.get_by_label("Adjustment in points").fill("-1")
    page.get_by_label("Reason for the adjustment").fill(ADJUSTMENT_REASON)
    page.get_by_label(re.compile(r"^Line number")).fill("2")
    page.get_by_label("Comment (Markdown)").fill(INLINE_COMMENT)
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("Draft saved.")).to_be_visible()
    page.get_by_label("New comment for the bank").fill(BANK_TEXT)
    page.get_by_role("button", name="Add to the bank").click()
    expect(page.get_by_text("Added to the comment bank.")).to_be_visible()
    open_details(page)  # "How the learner will read your comments"
    # The Markdown as rendered: the raw HTML and the javascript: links stay words.
    rui.inert(
        one_line(CRITERION_COMMENT),
        one_line(OVERALL_COMMENT),
        "see [this](javascript:",
        "[bank](javascript:",
        values={
            "Comment on Design": CRITERION_COMMENT,
            "Overall comment": OVERALL_COMMENT,
            "Reason for the adjustment": ADJUSTMENT_REASON,
        },
    )
    expect(page.locator("#L2 + .note")).to_contain_text(f"<script>{ran('inline')}</script> see")
    expect(page.locator(".inline-item textarea")).to_have_value(INLINE_COMMENT)

    # The bank entry goes into the overall comment by script (JavaScript is on here), as text.
    page.get_by_label("Insert into").select_option(label="the overall comment")
    page.get_by_role("button", name="Insert", exact=True).click()
    overall = OVERALL_COMMENT + "\n\n" + BANK_TEXT
    expect(page.get_by_label("Overall comment")).to_have_value(overall)
    rui.inert()
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("Draft saved.")).to_be_visible()
    rui.inert(values={"Overall comment": overall})

    page.get_by_role("link", name="Edit the bank").click()
    rui.inert("[bank](javascript:", values={"Text of comment 1": BANK_TEXT})
    page.get_by_role("link", name="Back to the review").click()
    page.get_by_role("button", name="Submit", exact=True).click()
    expect(page.get_by_role("heading", name="Reviews you submitted")).to_be_visible()
    rui.inert(NAME)
    page.get_by_role("link", name="Edit as a new version").click()  # the submitted review, back in its fields
    rui.inert(values={"Comment on Design": CRITERION_COMMENT, "Overall comment": overall})


# ---------------------------------------------------------------- the review, as the learner reads it


def review_with_hostile_comments(loaded: sessionmaker[Session], reviewer: Account) -> None:
    who = user(loaded, reviewer)
    given = ReviewInput(
        reviews=(CriterionReview("design", level="weak", comment=CRITERION_COMMENT),),
        comment=OVERALL_COMMENT,
        inline=(InlineComment(FILE_NAME, 2, INLINE_COMMENT),),
        adjustment=-1,
        adjustment_reason=ADJUSTMENT_REASON,
    )
    with loaded() as session:
        (item, *_) = review_queue.queue(session, who).items
        review_queue.claim(session, who, item.task_id)
        reviews.submit(session, who, item.task_id, given)
        session.commit()


def test_the_learner_reads_the_review_and_asks_for_a_regrade_and_a_second_reviewer_answers_as_text(
    watch: Callable[[Account], Watched],
    live: LiveApp,
    client: FlaskClient,
    learner: Account,
    reviewer: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    submission = hand_in(client, learner, {"app.py": "LIMIT = 1\n", "README.md": "# A\n", FILE_NAME: CONTENT})
    run_queued(queue, loaded, settings)
    review_with_hostile_comments(loaded, reviewer)
    mallory = watch(learner)
    page = mallory.page
    page.goto(f"{live.url}/submissions/{submission}")
    expect(page.get_by_role("heading", name="Not passed yet")).to_be_visible()
    mallory.inert(
        NAME,
        one_line(CRITERION_COMMENT),
        one_line(OVERALL_COMMENT),
        ADJUSTMENT_REASON,
        "see [this](javascript:",
        CONTENT_LINES[0],  # the lines around the inline comment
        CONTENT_LINES[1],
    )
    expect(page.get_by_role("heading", name=f"{FILE_NAME}, line 2")).to_be_visible()
    expect(page.get_by_role("cell", name=FILE_NAME, exact=True)).to_be_visible()  # the files received
    check_page(page, "xss-learner-result")

    # Refused as too long (a crafted request need not keep to the field's maxlength): kept, intact.
    reason = page.get_by_label("Why should “Design” be looked at again?")
    reason.evaluate("(field) => field.removeAttribute('maxlength')")
    too_long = REGRADE_REASON + " and again" * 200
    reason.fill(too_long)
    page.get_by_role("button", name="Ask for a regrade of Design").click()
    expect(page.get_by_text("Problem with the reason").first).to_be_visible()
    mallory.inert(values={"Why should “Design” be looked at again?": too_long})
    page.get_by_label("Why should “Design” be looked at again?").fill(REGRADE_REASON)
    page.get_by_role("button", name="Ask for a regrade of Design").click()
    expect(page.get_by_text("waiting for an answer").first).to_be_visible()
    mallory.inert(REGRADE_REASON)

    sam = watch(make_account(loaded, "sam@example.org", role="reviewer", reviews=("repo-program",)))
    with loaded() as session:
        regrade = session.scalars(select(ReviewTask).where(ReviewTask.status == TaskStatus.OPEN)).one()
    sam.page.goto(f"{live.url}/review")
    sam.inert(NAME)
    sam.page.locator(f"#task-{regrade.id}").get_by_role("button", name="Claim").click()
    expect(sam.page.get_by_role("heading", name="The learner asks for a regrade")).to_be_visible()
    # The first review, shown beside the form, is Markdown too.
    sam.inert(REGRADE_REASON, one_line(CRITERION_COMMENT))
    sam.page.get_by_label("Your reply to the learner").fill(REPLY)
    sam.page.get_by_role("button", name="Send the reply").click()
    expect(sam.page.get_by_role("heading", name="Review queue")).to_be_visible()
    sam.inert()

    page.goto(f"{live.url}/submissions/{submission}")
    expect(page.get_by_text("the score stays as it was")).to_be_visible()
    mallory.inert(REGRADE_REASON, f"<script>{ran('reply')}</script> [reply](javascript:")


# ---------------------------------------------------------------- git: file names and the commit message


def test_a_git_hand_in_with_a_hostile_commit_message_and_file_name(
    watch: Callable[[Account], Watched],
    live: LiveApp,
    learner: Account,
    reviewer: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
) -> None:
    with GitServer(tmp_path / "git") as server:
        commit = server.commit(
            "work",
            {"app.py": "LIMIT = 1\n", "README.md": "# A\n", FILE_NAME: CONTENT},
            message=COMMIT_MESSAGE,
        )
        mallory = watch(learner)
        page = mallory.page
        page.goto(f"{live.url}/assessments/reviewed-repo/submit")
        page.get_by_label("HTTPS URL of the repository").fill(server.url("work"))
        page.get_by_role("button", name="Hand in for grading").click()
        expect(page.get_by_role("heading", name="Grading")).to_be_visible()
        run_queued(queue, loaded, settings)  # the worker clones the pinned commit again
    # No page shows a commit message today, only the commit graded; the message is planted anyway,
    # so a page that starts to show it (or its author) is held to the same checks.
    expect(page.get_by_role("heading", name="Waiting for a reviewer")).to_be_visible(timeout=15_000)
    mallory.inert(commit)  # the receipt names the commit graded
    expect(page.get_by_role("cell", name=FILE_NAME, exact=True)).to_be_visible()

    rui = watch(reviewer)
    rui.page.goto(f"{live.url}/review")
    rui.page.get_by_role("button", name="Claim").click()
    expect(rui.page.get_by_role("heading", name=re.compile("Reviewed repository"))).to_be_visible()
    rui.inert(commit, FILE_NAME)


# ---------------------------------------------------------------- staff pages


def test_staff_pages_show_learner_names_and_a_hostile_csv_as_text(
    watch: Callable[[Account], Watched],
    live: LiveApp,
    client: FlaskClient,
    learner: Account,
    queue: RecordingQueue,
    loaded: sessionmaker[Session],
    settings: Settings,
) -> None:
    hand_in(client, learner)
    run_queued(queue, loaded, settings)
    admin = watch(make_account(loaded, "root@example.org", role="admin"))
    page = admin.page
    page.goto(f"{live.url}/staff/accounts")
    admin.inert(NAME)
    page.get_by_role("link", name=learner.email).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(NAME)
    admin.inert(NAME)
    page.goto(f"{live.url}/staff/programs/repo-program/gradebook")
    admin.inert(NAME)

    page.goto(f"{live.url}/staff/programs/repo-program/enrolments")
    admin.inert(NAME)
    quoted = '"' + CSV_NAME.replace('"', '""') + '"'
    csv = f"email,name\r\nnew@example.org,{quoted}\r\n{quoted},x\r\n"  # a hostile name, a hostile email
    page.get_by_label(re.compile("^CSV file")).set_input_files(
        {"name": "learners.csv", "mimeType": "text/csv", "buffer": csv.encode()}
    )
    page.get_by_role("button", name="Preview the import").click()
    expect(page.get_by_text("Nothing has been written yet")).to_be_visible()
    admin.inert(CSV_NAME)
    expect(page.get_by_role("row", name=re.compile("not a valid email"))).to_contain_text("Error")
    check_page(page, "xss-staff-import-preview")
    page.get_by_role("button", name="Import 1 learner").click()
    expect(page.get_by_text("1 learner enrolled from the file")).to_be_visible()
    admin.inert(CSV_NAME)
    page.goto(f"{live.url}/staff/programs/repo-program/enrolments")
    admin.inert(NAME, CSV_NAME)
