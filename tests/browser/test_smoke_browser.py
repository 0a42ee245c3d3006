"""The browser harness itself: Chromium starts, serves the login page and a learner's home."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.browser.conftest import LiveApp, check_page, log_in
from tests.conftest import Account


def test_a_learner_logs_in_and_sees_their_programs(page: Page, live: LiveApp, learner: Account) -> None:
    page.goto(f"{live.url}/login")
    check_page(page, "login")
    log_in(page, live, learner)
    assert "Test program" in page.content()
    check_page(page, "home")
