"""Browser tests: the real app served on loopback, driven through Playwright in Debian's Chromium.

Chromium is the system's (`/usr/bin/chromium`, installed by scripts/setup-test-env.sh): Playwright's
own browser download does not work here, and a missing browser fails the suite, never skips it.
Each main page is checked at 1280 px and 375 px (no horizontal scrolling) and with axe-core (no
serious or critical violation); screenshots are written to test-artifacts/screenshots/.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from grader.config import Settings
from grader.interfaces import RecordingQueue
from tests.conftest import PASSWORD, Account

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
WIDTHS = (1280, 375)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail("Chromium is missing: apt-get install chromium (make test installs it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@dataclass
class LiveApp:
    url: str
    queue: RecordingQueue
    settings: Settings


@pytest.fixture
def live(settings: Settings, loaded: sessionmaker[Session], queue: RecordingQueue) -> Iterator[LiveApp]:
    """The app on a free loopback port, in a thread, on the test's database and queue."""
    from grader.web import create_app

    app = create_app(settings, queue=queue)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveApp(f"http://127.0.0.1:{server.server_port}", queue, settings)
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


def log_in(page: Page, live: LiveApp, account: Account) -> None:
    page.goto(f"{live.url}/login")
    page.get_by_label("Email").fill(account.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


_AXE = Axe()


def check_page(page: Page, name: str) -> None:
    """The checks every main page passes: axe-core (no serious or critical violation), no horizontal
    scrolling at 1280 px and 375 px, and a screenshot at each width for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        overflow: Any = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{name} scrolls sideways by {overflow} px at {width} px"
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})
    results = _AXE.run(page)
    serious = [
        violation
        for violation in results.response.get("violations", [])
        if violation.get("impact") in ("serious", "critical")
    ]
    assert not serious, f"{name}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}" for v in serious
    )
