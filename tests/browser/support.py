"""What the browser tests of the review loop share: people each in their own browser, the sample
repository as the archive a learner uploads, grading run in-process by the real service, the rubric's
points read from the sample catalog, and the review page's keys and score preview as a reviewer uses them.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Dialog, Locator, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from grader.kinds import default_graders
from grader.services.grading import RunOutcome, process_run
from rubrics.loader import load_rubric
from rubrics.model import Rubric
from tests.browser.conftest import WIDTHS, LiveApp, log_in
from tests.conftest import Account

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CATALOG = ROOT / "examples" / "catalog"
SAMPLE_REPOSITORY = ROOT / "examples" / "submissions" / "wsgi-todo-api-passing"
PROGRAM = "python-web-developer"
ASSESSMENT = "wsgi-todo-api"


def copy_sample_catalog(target: Path, review_policy: str = "") -> Path:
    """The sample catalog under `target`; `review_policy` (a `review:` YAML line) joins the todo API's."""
    shutil.copytree(SAMPLE_CATALOG, target, dirs_exist_ok=True)
    if review_policy:
        definition = target / "assessments" / ASSESSMENT / "assessment.yaml"
        definition.write_text(definition.read_text().rstrip("\n") + "\n" + review_policy)
    return target


def sample_rubric() -> Rubric:
    return load_rubric(SAMPLE_CATALOG / "rubrics" / "code-review.yaml")


def level_points(rubric: Rubric, criterion_id: str, label: str) -> float:
    criterion = next(c for c in rubric.criteria if c.id == criterion_id)
    level = criterion.level(label)
    assert level is not None, f"{criterion_id} has no level {label}"
    return level.points


def sample_archive(folder: Path) -> Path:
    """The sample passing repository as the .zip a learner would make of their work."""
    archive = folder / "wsgi-todo-api.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(SAMPLE_REPOSITORY.rglob("*")):
            if path.is_file():
                bundle.write(path, path.relative_to(SAMPLE_REPOSITORY).as_posix())
    return archive


def grade_queued(live: LiveApp, sessions: sessionmaker[Session]) -> list[RunOutcome]:
    """What a worker does with each run the app queued: the real graders, the real sandbox."""
    graders = default_graders(live.settings)
    outcomes = []
    while live.queue.sent:
        run_id, _ = live.queue.sent.pop(0)
        outcomes.append(process_run(sessions, run_id, graders, worker="browser-test", lease_seconds=120))
    return outcomes


@dataclass
class People:
    """Each person in a browser of their own (their own cookies), as on separate machines.

    Every page's script errors and console errors are kept: a page that breaks its own script, or
    whose script the Content-Security-Policy blocks, fails the test that used it."""

    browser: Browser
    live: LiveApp
    contexts: list[BrowserContext] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def log_in(self, account: Account) -> Page:
        context = self.browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
        self.contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: self.errors.append(f"{account.email}: {error}"))
        page.on("console", lambda message: self._console(account, message))
        log_in(page, self.live, account)
        expect(page.get_by_role("link", name="Log in")).to_have_count(0)
        return page

    def _console(self, account: Account, message: ConsoleMessage) -> None:
        # Chromium asks every page for /favicon.ico, which the app does not serve: not the page's fault.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            self.errors.append(f"{account.email}: {message.text}")

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def hand_in_sample(page: Page, live: LiveApp, archive: Path) -> str:
    """The learner opens the program, follows the todo API's hand-in link and uploads the archive;
    the address of the submission's page, where the browser lands."""
    page.goto(f"{live.url}/programs/{PROGRAM}")
    page.get_by_role("link", name="Hand in A JSON todo API as a WSGI application").click()
    expect(page.get_by_role("heading", name="Hand in your work")).to_be_visible()
    page.get_by_label(re.compile(r"^Archive")).set_input_files(archive)
    page.get_by_role("button", name="Hand in for grading").click()
    expect(page.get_by_role("heading", name="Grading")).to_be_visible()
    return page.url


# ---------------------------------------------------------------- the review page, by keyboard


def keys_ready(page: Page) -> None:
    """Wait until review.js runs on the page (it marks <html> with `js`): before that a key does nothing."""
    expect(page.locator("html")).to_have_class(re.compile(r"\bjs\b"))
    expect(page.locator("#preview-note")).to_be_visible()


def preview_total(page: Page) -> float:
    return float(page.locator("#preview-total").inner_text())


def preview_automatic(page: Page) -> float:
    return float(page.locator("#preview-automatic").inner_text())


def current_criterion(page: Page) -> Locator:
    return page.locator("fieldset.criterion.current")


def press(page: Page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)


def pick_level_by_key(page: Page, criterion_id: str, number: int) -> None:
    """Press a level's number in the current criterion, which must be `criterion_id`: it is picked."""
    expect(current_criterion(page)).to_have_attribute("data-criterion", criterion_id)
    page.keyboard.press(str(number))
    level = page.locator(f"#c-{criterion_id} input[type=radio][data-points]").nth(number - 1)
    expect(level).to_be_checked()
    expect(level).to_be_focused()


def toggle_item_by_key(page: Page, criterion_id: str, number: int) -> Locator:
    """Press an item's number in the current criterion, which must be `criterion_id`; the item's box."""
    expect(current_criterion(page)).to_have_attribute("data-criterion", criterion_id)
    page.keyboard.press(str(number))
    item = page.locator(f"#c-{criterion_id} input[type=checkbox]").nth(number - 1)
    expect(item).to_be_focused()
    return item


def submit_and_next_by_key(page: Page) -> str:
    """Press `s`, accept the confirmation the page asks for; the question it asked."""
    asked: list[str] = []

    def accept(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    with page.expect_navigation():
        page.keyboard.press("s")
    return asked[0] if asked else ""


def words(locator: Locator) -> str:
    """A region's text as a reader sees it: whitespace folded."""
    return re.sub(r"\s+", " ", locator.inner_text()).strip()
