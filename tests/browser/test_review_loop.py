"""The review loop in real Chromium, every human step in the browser: a learner hands in the sample
repository through the page, a reviewer finds it in the queue, reads the code, leaves an inline comment
and scores the manual criteria with the keyboard only; the learner sees the pass, the comments beside
the rubric and beside the line, and the program's progress, and asks for a regrade a second reviewer
answers. Then double review: two reviewers apart, a disagreement, an adjudicator who decides.

Grading between the steps is the real service run in-process on the real sandbox (bubblewrap), as a
worker would run it; the live app's queue only records what it sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.services.grading import RunOutcome
from tests.browser.conftest import LiveApp, check_page
from tests.browser.support import (
    PROGRAM,
    People,
    copy_sample_catalog,
    current_criterion,
    grade_queued,
    hand_in_sample,
    keys_ready,
    level_points,
    pick_level_by_key,
    press,
    preview_automatic,
    preview_total,
    sample_archive,
    sample_rubric,
    submit_and_next_by_key,
    toggle_item_by_key,
    words,
)
from tests.conftest import Account, make_account

TITLE = "A JSON todo API as a WSGI application"
COMMENTED_LINE = 17  # `BODY_LIMIT = 16_384` in the sample's todo_app.py
COMMENTED_TEXT = "BODY_LIMIT = 16_384"
DOUBLE = "review: {double: true, disagreement: 0.2}\n"


@pytest.fixture
def policy() -> str:
    return ""


@pytest.fixture
def settings(tmp_path: Path, database_url: str, sandbox_ready: None) -> Settings:
    return Settings(
        data_dir=tmp_path / "var",
        database_url=database_url,
        secret_key="test-secret-key",
        catalog_path=tmp_path / "catalog",
        submissions_per_hour=100,
        sandbox_backend="bwrap",
    )


@pytest.fixture
def catalog_dir(settings: Settings, policy: str) -> Path:
    return copy_sample_catalog(settings.catalog_path, policy)


@pytest.fixture
def people(browser: Browser, live: LiveApp) -> Iterator[People]:
    crowd = People(browser, live)
    yield crowd
    crowd.close()
    assert not crowd.errors, "script or console errors in the pages:\n" + "\n".join(crowd.errors)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    return sample_archive(tmp_path)


def learner_account(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "zelda.quigley@example.org", programs=(PROGRAM,))


def reviewer_account(loaded: sessionmaker[Session], name: str, *, staff: bool = False) -> Account:
    email = f"{name}@example.org"
    if staff:
        return make_account(loaded, email, role="reviewer", runs=(PROGRAM,))
    return make_account(loaded, email, role="reviewer", reviews=(PROGRAM,))


def graded_in_the_background(live: LiveApp, loaded: sessionmaker[Session], learner: Page) -> None:
    """The worker's part, then the learner's open page notices by itself that grading is done."""
    assert grade_queued(live, loaded) == [RunOutcome.GRADED]
    expect(learner.get_by_role("heading", name="Waiting for a reviewer")).to_be_visible(timeout=15_000)


def flash(page: Page) -> str:
    return words(page.locator("p.flash[role=status]").first)


# ---------------------------------------------------------------- the whole loop


def test_the_whole_review_loop_from_hand_in_to_an_answered_regrade(
    people: People, live: LiveApp, loaded: sessionmaker[Session], archive: Path
) -> None:
    rubric = sample_rubric()
    learner = learner_account(loaded)
    rui = reviewer_account(loaded, "rui.okafor")
    sam = reviewer_account(loaded, "sam.lindqvist")

    # The learner hands in the sample repository as an archive through the hand-in page.
    zelda = people.log_in(learner)
    result_url = hand_in_sample(zelda, live, archive)
    expect(zelda.locator("#live-status")).to_contain_text("Waiting to be graded")
    graded_in_the_background(live, loaded, zelda)

    # A reviewer finds it in the queue and claims it.
    reviewer = people.log_in(rui)
    reviewer.get_by_role("navigation", name="Main").get_by_role("link", name="Review").click()
    expect(reviewer.get_by_role("heading", name="Review queue")).to_be_visible()
    row = reviewer.locator("table.tasks tbody tr", has_text="zelda.quigley")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(TITLE)
    expect(row).to_contain_text("nobody")
    check_page(reviewer, "review-queue")
    row.get_by_role("button", name="Claim").click()

    # The task page: the tests that ran, the automatic criteria, and the code to read.
    expect(reviewer.get_by_role("heading", name=re.compile(TITLE))).to_be_visible()
    tests_heading = words(reviewer.locator("#tests-heading"))
    ran = re.search(r"(\d+) of (\d+) passed", tests_heading)
    assert ran is not None and ran.group(1) == ran.group(2) and int(ran.group(2)) > 1, tests_heading
    files = reviewer.get_by_role("navigation", name="Files of the submission")
    expect(files.get_by_role("link")).to_have_text(["README.md", "todo_app.py"])
    files.get_by_role("link", name="todo_app.py").click()
    expect(reviewer.get_by_role("heading", name="todo_app.py")).to_be_visible()
    code = reviewer.get_by_role("region", name="The code of todo_app.py")
    expect(code.locator(f"#L{COMMENTED_LINE}")).to_contain_text(COMMENTED_TEXT)
    expect(code.locator(".k").first).to_be_visible()  # highlighted: keywords have their own class
    check_page(reviewer, "review-task")

    # An inline comment on path:line, opened from the line number.
    code.get_by_role("link", name=f"Line {COMMENTED_LINE}", exact=True).click()
    body = reviewer.get_by_label("Comment (Markdown)")
    expect(body).to_be_focused()
    expect(reviewer.get_by_label(re.compile(r"^Line number"))).to_have_value(str(COMMENTED_LINE))
    inline_text = "The body limit is **named once**: good."
    reviewer.keyboard.type(inline_text)
    reviewer.get_by_role("button", name="Add the comment").click()
    expect(reviewer.locator("p.flash", has_text="Draft saved.")).to_be_visible()
    note = reviewer.locator(f"#L{COMMENTED_LINE} + .note")
    expect(note).to_contain_text("The body limit is named once: good.")
    expect(note.locator("strong")).to_have_text("named once")  # Markdown rendered
    expect(reviewer.locator("#inline-heading")).to_have_text("Inline comments (1)")
    keys_ready(reviewer)

    # The keys: `?` lists them; Esc hides the list again.
    press(reviewer, "?")
    keys = reviewer.locator("#keys")
    expect(keys).to_have_class(re.compile(r"\bshown\b"))
    expect(keys).to_be_in_viewport()
    expect(keys).to_contain_text("submit and open the next submission")
    expect(keys).to_contain_text("go to the next / previous criterion")
    press(reviewer, "Escape")
    expect(keys).not_to_have_class(re.compile(r"\bshown\b"))

    # Scoring with the keyboard only: j to the next criterion, a number for its level, c to comment.
    automatic = preview_automatic(reviewer)
    auto_max = sum(c.max_points or 0 for c in rubric.criteria if c.auto is not None)
    assert automatic == auto_max  # the sample passes every test and has both files
    expect(reviewer.locator("#preview-verdict")).to_have_text("3 criteria still open.")
    start = preview_total(reviewer)
    picks = {"readability": ("proficient", 3), "design": ("proficient", 3), "robustness": ("developing", 2)}
    for criterion_id, (label, number) in picks.items():
        before = preview_total(reviewer)
        press(reviewer, "j")
        pick_level_by_key(reviewer, criterion_id, number)
        expect(reviewer.locator("#preview-total")).to_have_text(
            f"{before + level_points(rubric, criterion_id, label):g}"
        )
        expect(reviewer.locator(f'output[data-points-for="{criterion_id}"]')).to_have_text(
            f"{level_points(rubric, criterion_id, label):g}"
        )
        if criterion_id == "readability":
            press(reviewer, "c")
            expect(reviewer.locator("#c-readability-comment")).to_be_focused()
            reviewer.keyboard.type("Short functions, each with one job.")
            press(reviewer, "Escape")  # out of the text box: the keys work again
            expect(current_criterion(reviewer)).to_be_focused()
    scored = sum(level_points(rubric, cid, label) for cid, (label, _) in picks.items())
    assert preview_total(reviewer) == start + scored

    # The deductions: an item ticks and unticks by its number; none ticked keeps the full points.
    press(reviewer, "j")
    debug_output = toggle_item_by_key(reviewer, "deductions", 2)
    expect(debug_output).to_be_checked()
    expect(reviewer.locator("#preview-total")).to_have_text(f"{start + scored - 1:g}")
    toggle_item_by_key(reviewer, "deductions", 2)
    expect(debug_output).not_to_be_checked()
    expect(reviewer.locator("#preview-total")).to_have_text(f"{start + scored:g}")
    press(reviewer, "c", "Tab")  # the deductions' comment, then on to the overall comment
    expect(reviewer.locator("#comment")).to_be_focused()
    overall = "A clean route table; read the body with its declared length everywhere."
    reviewer.keyboard.type(overall)
    press(reviewer, "Escape")
    expect(reviewer.locator("#preview-verdict")).to_contain_text("This would pass")

    # Submit and next, by key: the page asks first, and no other submission waits.
    assert submit_and_next_by_key(reviewer) == "Submit this review and open the next submission?"
    total = automatic + scored + (next(c for c in rubric.criteria if c.id == "deductions").max_points or 0)
    expect(reviewer.get_by_role("heading", name="Review queue")).to_be_visible()
    assert flash(reviewer) == (
        f"Review submitted: {total:g} of {rubric.max_score:g} points, passed. "
        "No other submission is waiting for you."
    )

    # The learner: the pass, the rubric with the levels chosen, the comments, the line, the progress.
    zelda.goto(result_url)
    expect(zelda.locator("#result-title")).to_have_text(re.compile(r"Passed$"))
    expect(zelda.locator(".result .score")).to_contain_text(f"{total:g} / {rubric.max_score:g}")
    readability = zelda.locator("#criterion-readability td")
    expect(readability.nth(0)).to_have_text("proficient")
    expect(readability.nth(2)).to_have_text("reviewer rui.okafor")
    expect(readability.nth(3)).to_contain_text("Short functions, each with one job.")
    expect(zelda.locator("#criterion-robustness td").nth(0)).to_have_text("developing")
    expect(zelda.locator("#criterion-tests td").nth(2)).to_have_text("automatic")
    expect(zelda.locator("article.review-note")).to_contain_text(overall)
    inline = zelda.locator("article.inline-note")
    expect(inline.get_by_role("heading")).to_have_text(f"todo_app.py, line {COMMENTED_LINE}")
    commented = inline.locator(".line.commented")
    expect(commented).to_have_count(1)
    expect(commented.locator(".ln")).to_have_text(str(COMMENTED_LINE))
    expect(commented).to_contain_text(COMMENTED_TEXT)
    expect(inline.locator(".comment")).to_have_text("The body limit is named once: good.")
    check_page(zelda, "result")

    zelda.get_by_role("navigation", name="Main").get_by_role("link", name="My work").click()
    expect(
        zelda.get_by_role("progressbar", name="Requirements of Python Web Developer passed")
    ).to_have_attribute("value", "1")
    zelda.get_by_role("link", name="Python Web Developer").click()
    expect(zelda.get_by_text("1 of 5 requirements passed.")).to_be_visible()
    todo = zelda.locator("tbody tr", has_text=TITLE)
    expect(todo.locator(".badge")).to_have_text("passed")
    check_page(zelda, "program")

    # A regrade of one criterion, with a reason.
    zelda.goto(result_url)
    reason = "I cap the body at 16 KB and read exactly Content-Length bytes: see read_todo."
    zelda.get_by_label("Why should “Robustness and safety” be looked at again?").fill(reason)
    zelda.get_by_role("button", name="Ask for a regrade of Robustness and safety").click()
    expect(zelda.locator("p.flash", has_text="Your regrade request was sent to a reviewer")).to_be_visible()
    asked = zelda.locator("article.regrade-request")
    expect(asked).to_contain_text("waiting for an answer")
    expect(asked).to_contain_text(reason)

    # It goes to a reviewer other than the first: rui gets nothing from "Next submission".
    reviewer.goto(f"{live.url}/review")
    reviewer.get_by_role("button", name="Next submission").click()
    expect(reviewer.locator("p.flash")).to_contain_text("No submission is waiting for a review you may take")

    second = people.log_in(sam)
    second.goto(f"{live.url}/review")
    row = second.locator("table.tasks tbody tr", has_text="Regrade request")
    expect(row).to_contain_text("zelda.quigley")
    row.get_by_role("button", name="Claim").click()
    request = second.get_by_role("region", name="The learner asks for a regrade")
    expect(request).to_contain_text("Criterion: Robustness and safety")
    expect(request.locator("blockquote")).to_have_text(reason)
    standing = second.get_by_role("region", name="The reviews that stand")
    expect(standing).to_contain_text("rui.okafor")
    expect(second.locator('input[name="c-robustness-level"][value="developing"]')).to_be_checked()
    check_page(second, "regrade")
    keys_ready(second)

    before = preview_total(second)
    press(second, "j", "j", "j")
    pick_level_by_key(second, "robustness", 3)
    raised = level_points(rubric, "robustness", "proficient") - level_points(
        rubric, "robustness", "developing"
    )
    expect(second.locator("#preview-total")).to_have_text(f"{before + raised:g}")
    reply = "Agreed: the body is read with its declared length and capped."
    second.get_by_label("Your reply to the learner").fill(reply)
    second.get_by_role("button", name="Send the reply", exact=True).click()
    assert flash(second) == "Reply sent to the learner, and the new scores settle the result."

    # The learner sees the answer and the change.
    zelda.goto(result_url)
    answered = zelda.locator("article.regrade-request")
    expect(answered).to_contain_text("answered")
    expect(answered).to_contain_text("the score was changed.")
    expect(answered.locator(".comment")).to_have_text(reply)
    expect(zelda.locator(".result .score")).to_contain_text(f"{total + raised:g} / {rubric.max_score:g}")
    expect(zelda.locator("#criterion-robustness td").nth(0)).to_have_text("proficient")
    check_page(zelda, "result-after-regrade")


# ---------------------------------------------------------------- double review


@pytest.mark.parametrize("policy", [DOUBLE], ids=["double-review"])
def test_two_reviews_that_disagree_go_to_an_adjudicator_who_decides(
    people: People, live: LiveApp, loaded: sessionmaker[Session], archive: Path
) -> None:
    rubric = sample_rubric()
    learner = learner_account(loaded)
    amy, ben = reviewer_account(loaded, "amy.first"), reviewer_account(loaded, "ben.second")
    judge = reviewer_account(loaded, "judy.staff", staff=True)

    zelda = people.log_in(learner)
    result_url = hand_in_sample(zelda, live, archive)
    graded_in_the_background(live, loaded, zelda)

    # The first reviewer takes the oldest task and scores every level high.
    first = people.log_in(amy)
    first.goto(f"{live.url}/review")
    first.get_by_role("button", name="Next submission").click()
    expect(first.locator(".task-head .badge")).to_have_text("Review")
    keys_ready(first)
    for criterion_id in ("readability", "design", "robustness"):
        press(first, "j")
        pick_level_by_key(first, criterion_id, 4)
    press(first, "c")
    first.keyboard.type("Amy: robust against every bad input.")
    press(first, "Escape")
    submit_and_next_by_key(first)
    assert flash(first) == (
        "Review submitted. The result waits for another review before it is settled. "
        "No other submission is waiting for you."
    )

    # The second reviewer: independent, never shown the first review.
    second = people.log_in(ben)
    second.goto(f"{live.url}/review")
    expect(second.locator("table.tasks tbody tr")).to_have_count(1)
    second.get_by_role("button", name="Next submission").click()
    expect(second.locator(".task-head .badge")).to_have_text("Second review (independent)")
    keys_ready(second)
    page_text = words(second.locator("main"))
    assert "amy" not in page_text.lower() and "robust against every bad input" not in page_text
    expect(second.get_by_role("region", name="The reviews that stand")).to_have_count(0)
    expect(second.locator("fieldset.criterion input[type=radio][data-points]:checked")).to_have_count(0)
    for criterion_id in ("readability", "design", "robustness"):
        press(second, "j")
        pick_level_by_key(second, criterion_id, 1)
    press(second, "c")
    second.keyboard.type("Ben: a bad Content-Length crashes it.")
    press(second, "Escape")
    submit_and_next_by_key(second)
    assert flash(second).startswith("Review submitted. The result waits for another review")

    # Apart by more than the threshold: the learner still waits, and an adjudication is queued.
    zelda.goto(result_url)
    expect(zelda.locator("#result-title")).to_have_text("Waiting for a reviewer")

    adjudicator = people.log_in(judge)
    adjudicator.goto(f"{live.url}/review")
    row = adjudicator.locator("table.tasks tbody tr", has_text="Adjudication")
    expect(row).to_have_count(1)
    row.get_by_role("button", name="Claim").click()
    both = adjudicator.get_by_role("region", name="The two reviews disagree: you decide")
    table = both.get_by_role("table")
    expect(table.locator("thead th")).to_have_count(3)
    expect(table.locator("thead")).to_contain_text("First review by amy.first")
    expect(table.locator("thead")).to_contain_text("Second review by ben.second")
    design = table.locator("tbody tr", has=adjudicator.get_by_role("rowheader", name="Design"))
    expect(design.locator("td").nth(0)).to_contain_text("exemplary")
    expect(design.locator("td").nth(1)).to_contain_text("insufficient")
    expect(table).to_contain_text("Amy: robust against every bad input.")
    expect(table).to_contain_text("Ben: a bad Content-Length crashes it.")
    check_page(adjudicator, "adjudication")
    keys_ready(adjudicator)

    decision = {
        "readability": ("proficient", 3),
        "design": ("developing", 2),
        "robustness": ("proficient", 3),
    }
    for criterion_id, (_, number) in decision.items():
        press(adjudicator, "j")
        pick_level_by_key(adjudicator, criterion_id, number)
    automatic = preview_automatic(adjudicator)
    deductions = next(c for c in rubric.criteria if c.id == "deductions").max_points or 0
    total = automatic + deductions + sum(level_points(rubric, c, label) for c, (label, _) in decision.items())
    submit_and_next_by_key(adjudicator)
    assert flash(adjudicator).startswith(
        f"Review submitted: {total:g} of {rubric.max_score:g} points, passed."
    )

    # The learner's result is the adjudicator's decision.
    zelda.goto(result_url)
    expect(zelda.locator("#result-title")).to_have_text(re.compile(r"Passed$"))
    expect(zelda.locator(".result .score")).to_contain_text(f"{total:g} / {rubric.max_score:g}")
    for criterion_id, (label, _) in decision.items():
        expect(zelda.locator(f"#criterion-{criterion_id} td").nth(0)).to_have_text(label)
    zelda.goto(f"{live.url}/programs/{PROGRAM}")
    expect(zelda.locator("tbody tr", has_text=TITLE).locator(".badge")).to_have_text("passed")
