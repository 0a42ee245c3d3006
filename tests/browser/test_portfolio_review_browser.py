"""A portfolio's review in real Chromium: the reviewer claims it from the queue, the page shows every slot
with its pictures decoded by the browser (this service's PNG renditions, under the app's CSP), passes axe
at 1280 px and 375 px, and the manual criteria are scored and submitted with JavaScript off."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.services import renditions
from tests.browser.conftest import WIDTHS, LiveApp, check_page, log_in
from tests.conftest import Account, bearer, make_account
from tests.support.portfolio_review import PUBLIC_DEMO, hand_in_and_grade, write_portfolio_catalog


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    return write_portfolio_catalog(settings.catalog_path)


def test_a_reviewer_reads_a_portfolio_and_scores_it_without_javascript(
    sandbox_ready: None, browser: Browser, live: LiveApp, loaded: sessionmaker[Session], settings: Settings
) -> None:
    ada: Account = make_account(loaded, "ada.lovelace@example.org", programs=("showcase-program",))
    rui = make_account(loaded, "rui@example.org", role="reviewer", reviews=("showcase-program",))
    renditions.clear_cache()
    submission_id = hand_in_and_grade(loaded, settings, live.queue, ada, "showcase", demo=PUBLIC_DEMO)

    # With JavaScript on: every picture (the photo and the PDF's three pages) decoded by the browser,
    # and the page passes axe at both widths.
    looking = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
    page = looking.new_page()
    page.set_default_timeout(15_000)
    log_in(page, live, rui)
    page.goto(f"{live.url}/review")
    page.get_by_role("button", name="Claim").click()
    expect(page.get_by_role("heading", name="The portfolio")).to_be_visible()
    task_url = page.url
    pictures = page.locator("img.picture")
    expect(pictures).to_have_count(4)
    for index in range(4):
        pictures.nth(index).scroll_into_view_if_needed()
        expect(pictures.nth(index)).to_have_js_property("complete", True)
        assert pictures.nth(index).evaluate("img => img.naturalWidth") > 0
    expect(page.get_by_role("img", name="Page 2 of Lovelace report.pdf")).to_be_visible()
    expect(page.get_by_role("link", name="https://github.com/ada-lovelace/engine")).to_have_attribute(
        "rel", "noopener noreferrer nofollow"
    )
    check_page(page, "review-portfolio-task")
    looking.close()

    # With JavaScript off: the rubric form alone scores the manual criteria and submits them.
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900}, java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(15_000)
    log_in(page, live, rui)
    page.goto(task_url)
    page.locator("#c-design").get_by_role("radio", name=re.compile(r"^shown ")).check()
    page.locator("#c-writing").get_by_role("radio", name=re.compile(r"^clear ")).check()
    page.get_by_role("button", name="Submit", exact=True).click()
    expect(page.get_by_text("Review submitted: 10 of 10 points, passed.")).to_be_visible()
    # The learner's own view of the outcome, through the API.
    answer = context.request.get(f"{live.url}/api/v1/submissions/{submission_id}", headers=bearer(ada))
    assert answer.json()["result"]["passed"] is True
    context.close()
