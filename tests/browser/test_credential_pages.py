"""The credential pages in Chromium: a learner with JavaScript off, on a 375 px screen, finds their
credential from the menu, opens its public page, keeps a result off it and sees it gone; the program's
staff revoke it on the same screen and the public page says so with the reason. Each page is checked with
axe-core and for sideways scrolling at 1280 px and 375 px (long hashes and DIDs must wrap)."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.browser.conftest import SCREENSHOTS, LiveApp, check_page
from tests.conftest import PASSWORD, Account, make_account
from tests.support.issued_credentials import PROGRAM, issued_credential

REASON = "The quiz was taken by someone else."


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def person(
    browser: Browser,
    contexts: list[BrowserContext],
    live: LiveApp,
    account: Account,
    *,
    javascript: bool,
    width: int,
) -> Page:
    """A browser of their own, logged in through the form."""
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": width, "height": 900})
    contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{live.url}/login")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    return page


def no_sideways_scroll(page: Page, name: str) -> None:
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{name} scrolls sideways by {overflow} px"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def holder(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "ada.lovelace.with.a.long.address@example.org", programs=(PROGRAM,))


@pytest.fixture
def staff(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "stella@example.org", "reviewer", runs=(PROGRAM,))


def test_a_learner_without_javascript_shares_and_trims_their_credential_on_a_phone(
    browser: Browser,
    contexts: list[BrowserContext],
    live: LiveApp,
    loaded: sessionmaker[Session],
    holder: Account,
    staff: Account,
) -> None:
    credential_id = issued_credential(loaded, live.settings, holder)
    page = person(browser, contexts, live, holder, javascript=False, width=375)
    page.get_by_role("link", name="My credentials").click()
    card = page.locator(f"#credential-{credential_id}")
    expect(card.get_by_role("heading", name="Other")).to_be_visible()
    expect(card.locator(".badge")).to_have_text("valid")
    expect(page.get_by_label("Link to its public page")).to_have_value(
        f"{live.settings.public_url}/credentials/{credential_id}"
    )
    expect(page.get_by_label("Link to its public page")).to_have_attribute("readonly", "")
    linkedin = card.get_by_role("link", name="Add it to your LinkedIn profile").get_attribute("href")
    issued = card.locator("time").first.get_attribute("datetime")
    assert linkedin is not None and issued is not None
    assert linkedin.startswith("https://www.linkedin.com/profile/add?")
    assert parse_qs(urlsplit(linkedin).query) == {
        "startTask": ["CERTIFICATION_NAME"],
        "name": ["Other"],
        "organizationName": [live.settings.issuer_name],
        "issueYear": [issued[:4]],
        "issueMonth": [str(int(issued[5:7]))],
        "certUrl": [f"{live.settings.public_url}/credentials/{credential_id}"],
        "certId": [credential_id],
    }
    no_sideways_scroll(page, "credentials-mine-375-nojs")

    # Its public page, as whoever the link is shared with sees it: the result and its evidence hashes.
    card.get_by_role("link", name="Its public page").click()
    expect(page.get_by_role("heading", name="Other", level=1)).to_be_visible()
    expect(page.get_by_text("Valid: not revoked and not suspended.")).to_be_visible()
    expect(page.get_by_role("heading", name="HTTP basics")).to_be_visible()
    receipt = page.locator("dl.evidence dd").first.inner_text()
    assert len(receipt) == 64, receipt
    no_sideways_scroll(page, "credentials-public-375-nojs")

    # The learner keeps the quiz result off the public page; the form works without JavaScript.
    page.go_back()
    page.get_by_label("HTTP basics").uncheck()
    page.get_by_role("button", name="Save what the public page shows").click()
    expect(page.get_by_role("status")).to_have_text("Saved: the public page of Other shows 0 of 1 results.")
    expect(page.get_by_label("HTTP basics")).not_to_be_checked()
    page.goto(f"{live.url}/credentials/{credential_id}")
    expect(page.get_by_role("heading", name="HTTP basics")).to_have_count(0)
    expect(page.get_by_text("1 more result not shown here by the holder's choice")).to_be_visible()

    # The program's staff revoke it, on a phone, without JavaScript.
    desk = person(browser, contexts, live, staff, javascript=False, width=375)
    desk.goto(f"{live.url}/staff/programs/{PROGRAM}/gradebook")
    desk.get_by_role("link", name="Other program: credentials issued, and revoking one").click()
    expect(desk.get_by_role("heading", name="Credentials: Other program")).to_be_visible()
    no_sideways_scroll(desk, "credentials-staff-375-nojs")
    desk.get_by_label(f"Reason for revoking {holder.email.split('@')[0]}'s credential").fill(REASON)
    desk.get_by_role("button", name=f"Revoke {holder.email.split('@')[0]}'s credential").click()
    expect(desk.get_by_role("status").first).to_contain_text(REASON)
    expect(desk.locator(f"#credential-{credential_id} .badge")).to_have_text("revoked")

    page.reload()
    expect(page.get_by_text(f"Revoked by its issuer: {REASON}")).to_be_visible()
    no_sideways_scroll(page, "credentials-public-revoked-375-nojs")


def test_the_credential_pages_pass_axe_and_fit_at_both_widths(
    browser: Browser,
    contexts: list[BrowserContext],
    live: LiveApp,
    loaded: sessionmaker[Session],
    holder: Account,
    staff: Account,
) -> None:
    credential_id = issued_credential(loaded, live.settings, holder)
    page = person(browser, contexts, live, holder, javascript=True, width=1280)
    page.goto(f"{live.url}/me/credentials")
    check_page(page, "credentials-mine")
    page.goto(f"{live.url}/credentials/{credential_id}")
    check_page(page, "credentials-public")
    desk = person(browser, contexts, live, staff, javascript=True, width=1280)
    desk.goto(f"{live.url}/staff/programs/{PROGRAM}/credentials")
    check_page(desk, "credentials-staff")
    # A refused revocation: the reason's error beside its field, in a page that still passes.
    desk.locator("textarea[name=reason]").evaluate("field => field.removeAttribute('required')")
    desk.get_by_role("button", name=f"Revoke {holder.email.split('@')[0]}'s credential").click()
    expect(desk.locator(f"#reason-error-{credential_id}")).to_have_text(
        "The reason: give the reason for the revocation"
    )
    expect(desk.locator("textarea[name=reason]")).to_have_attribute("aria-invalid", "true")
    check_page(desk, "credentials-staff-refused")
