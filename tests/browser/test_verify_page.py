"""The verification page in Chromium: a visitor with JavaScript off, on a 375 px screen, uploads the baked
badge a learner shared and reads every check; a badge with nothing baked in is refused at the file field;
the page and its verdict pass axe-core at both widths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from grader.services.credential_files import badge_png
from tests.browser.conftest import SCREENSHOTS, LiveApp, check_page
from tests.support.issued_credentials import issued_credential

CHECKS = ("Structure", "Signature", "Dates", "Status")


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


def visitor(browser: Browser, contexts: list[BrowserContext], *, javascript: bool, width: int) -> Page:
    context = browser.new_context(java_script_enabled=javascript, viewport={"width": width, "height": 900})
    contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def the_baked_badge(page: Page, live: LiveApp, credential_id: str, folder: Path) -> Path:
    """The badge as the holder downloads it from their credential's link."""
    response = page.request.get(f"{live.url}/credentials/{credential_id}/badge.png")
    assert response.ok
    assert response.headers["content-disposition"] == 'attachment; filename="other-program-credential.png"'
    path = folder / "other-program-credential.png"
    path.write_bytes(response.body())
    return path


def upload(page: Page, live: LiveApp, path: Path) -> None:
    page.goto(f"{live.url}/verify")
    page.get_by_label("Credential file").set_input_files(path)
    page.get_by_role("button", name="Verify").click()
    page.wait_for_load_state()


def no_sideways_scroll(page: Page) -> None:
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"the page scrolls sideways by {overflow} px"


def test_a_visitor_without_javascript_verifies_a_baked_badge_on_a_phone(
    browser: Browser,
    contexts: list[BrowserContext],
    live: LiveApp,
    loaded: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    credential_id = issued_credential(loaded, live.settings)
    page = visitor(browser, contexts, javascript=False, width=375)
    upload(page, live, the_baked_badge(page, live, credential_id, tmp_path))

    expect(page.get_by_role("heading", name="Verified", exact=True)).to_be_visible()
    expect(page.get_by_text("Read as a baked PNG badge, signed as a VC-JWT (RS256).")).to_be_visible()
    for name in CHECKS:
        row = page.locator("ol.checks li").filter(has=page.get_by_role("heading", name=name))
        expect(row.locator(".badge")).to_have_text("passed")
    expect(page.get_by_role("link", name="Its page on this service")).to_have_attribute(
        "href", f"{live.settings.public_url}/credentials/{credential_id}"
    )
    no_sideways_scroll(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "verify-verified-375-nojs.png"), full_page=True)

    plain = tmp_path / "badge.png"
    plain.write_bytes(badge_png("Other"))
    upload(page, live, plain)
    expect(page.get_by_role("heading", name="Verified", exact=True)).to_have_count(0)
    expect(page.locator("#file-error")).to_have_text(
        "Credential file: the PNG image holds no baked credential: it has no iTXt chunk with the keyword "
        "openbadgecredential"
    )
    expect(page.get_by_label("Credential file")).to_have_attribute("aria-invalid", "true")
    no_sideways_scroll(page)
    page.screenshot(path=str(SCREENSHOTS / "verify-refused-375-nojs.png"), full_page=True)


def test_the_page_and_its_verdict_pass_axe_at_both_widths(
    browser: Browser,
    contexts: list[BrowserContext],
    live: LiveApp,
    loaded: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    credential_id = issued_credential(loaded, live.settings)
    page = visitor(browser, contexts, javascript=True, width=1280)
    page.goto(f"{live.url}/verify")
    check_page(page, "verify")
    upload(page, live, the_baked_badge(page, live, credential_id, tmp_path))
    expect(page.get_by_role("heading", name="Verified", exact=True)).to_be_visible()
    check_page(page, "verify-verified")
