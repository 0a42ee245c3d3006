"""The portfolio hand-in page in Chromium: with JavaScript on, files dropped onto a slot (no more than it
has room for), the live word count as the server counts, a save over the request limit named before it
is sent; with JavaScript off, the same hand-in through plain inputs. Each state passes axe-core and fits
375 px (`check_page`; axe needs JavaScript, so the pages without it are checked by their content)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.intake.artifacts import count_words
from grader.models import DraftItem, Submission
from tests.browser.conftest import LiveApp, check_page, log_in
from tests.conftest import make_account
from tests.support.catalogs import write_catalog
from tests.support.portfolio import PROGRAM_SLUG, REFLECTION, png, write_portfolio_catalog

PAGE = "/assessments/showcase/portfolio"
# Texts whose words are easy to count wrongly: kanji and kana (one word each), apostrophes, hyphens and
# decimals inside words, a zero-width space between words, accents, and dashes standing alone.
SAMPLES = (
    "東京で テストを書きました",
    "don't stop, well-known 3.14 e.g.",
    "zero\u200bwidth space",
    "Ünïcödé wörds \u2014 and dashes \u2013",
)
# Three files dropped at once onto the screenshot slot, which takes two.
DROP = """(data) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const files = new DataTransfer();
  for (const name of ["first.png", "second.png", "third.png"]) {
    files.items.add(new File([bytes], name, {type: "image/png"}));
  }
  return files;
}"""


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    write_catalog(settings.catalog_path)
    return write_portfolio_catalog(settings.catalog_path)


def test_with_javascript_files_are_dropped_words_counted_and_the_draft_handed_in(
    page: Page, live: LiveApp, loaded: sessionmaker[Session]
) -> None:
    log_in(page, live, make_account(loaded, "ada@example.org", programs=(PROGRAM_SLUG,)))
    page.goto(f"{live.url}{PAGE}")
    check_page(page, "portfolio-handin-empty")

    dropped = page.evaluate_handle(DROP, base64.b64encode(png()).decode())
    page.dispatch_event("#slot-screenshot", "dragenter", {"dataTransfer": dropped})
    assert "dragging" in (page.get_attribute("#slot-screenshot", "class") or "")
    page.dispatch_event("#slot-screenshot", "drop", {"dataTransfer": dropped})
    assert page.evaluate("document.getElementById('files-screenshot').files.length") == 2
    chosen = page.text_content("#files-screenshot-chosen") or ""
    assert "first.png (77 bytes), second.png (77 bytes)" in chosen and "third.png" not in chosen

    page.fill("#statements-reflection", "Too short")
    assert page.text_content("#statements-reflection-count") == "2 words: 1 more word needed"
    page.fill("#statements-reflection", "word " * 41)
    assert page.text_content("#statements-reflection-count") == "41 words: 1 word over the limit"
    for written in SAMPLES:  # the page counts as the server will
        page.fill("#statements-reflection", written)
        shown = page.text_content("#statements-reflection-count") or ""
        assert shown.startswith(f"{count_words(written)} word"), (written, shown)
    page.fill("#statements-reflection", REFLECTION)
    # Said to a screen reader once typing pauses, not at every key.
    expect(page.locator("#statements-reflection-announce")).to_have_text("12 words: within the limits")
    page.fill("#links-repo", "https://github.com/ada/service")
    page.get_by_role("button", name="Save draft").click()
    page.wait_for_load_state()
    assert page.locator("ul.held .held-name").all_text_contents() == ["first.png", "second.png"]
    check_page(page, "portfolio-handin-draft")

    page.get_by_role("button", name="Hand in").click()
    page.wait_for_url("**/submissions/*")
    assert page.locator("#portfolio-receipt tbody tr").count() == 2
    check_page(page, "portfolio-handin-receipt")


def test_a_save_over_the_request_limit_is_named_before_anything_is_sent(
    page: Page, live: LiveApp, loaded: sessionmaker[Session]
) -> None:
    log_in(page, live, make_account(loaded, "ada@example.org", programs=(PROGRAM_SLUG,)))
    page.goto(f"{live.url}{PAGE}")
    limit = live.settings.max_request_bytes
    big = {"name": "big.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-" + b"\0" * limit}
    page.set_input_files("#files-report", files=[big])
    assert "larger than 512 KB and will be refused" in (page.text_content("#files-report-chosen") or "")
    page.get_by_role("button", name="Save draft").click()
    note = page.locator("#request-size-note")
    assert "more than the 2 MB one save can carry" in (note.text_content() or "")
    assert page.url.endswith(PAGE)  # still the page: nothing was sent
    with loaded() as session:
        assert session.scalar(select(func.count(DraftItem.id))) == 0


def test_with_javascript_off_the_page_hands_in_and_shows_refusals(
    browser: Browser, live: LiveApp, loaded: sessionmaker[Session]
) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 375, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        log_in(page, live, make_account(loaded, "bob@example.org", programs=(PROGRAM_SLUG,)))
        page.goto(f"{live.url}{PAGE}")
        assert not page.locator(".js-only").first.is_visible()
        script = {"name": "shot.png", "mimeType": "image/png", "buffer": b"#!/bin/sh\nrm -rf /\n"}
        page.set_input_files("#files-screenshot", files=[script])
        page.fill("#statements-reflection", REFLECTION)
        page.get_by_role("button", name="Save draft").click()
        page.wait_for_load_state()
        assert "programs and scripts are never accepted" in (page.text_content("#form-error") or "")
        assert page.input_value("#statements-reflection") == REFLECTION

        page.set_input_files(
            "#files-screenshot", files=[{"name": "a.png", "mimeType": "image/png", "buffer": png()}]
        )
        page.fill("#links-repo", "https://github.com/bob/service")
        page.get_by_role("button", name="Hand in").click()
        page.wait_for_url("**/submissions/*")
        assert "a PNG image of 8 \u00d7 6 pixels" in page.locator("#portfolio-receipt").inner_text()
        with loaded() as session:
            assert session.scalar(select(func.count(Submission.id))) == 1
    finally:
        context.close()
