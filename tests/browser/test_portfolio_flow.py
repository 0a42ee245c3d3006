"""The portfolio requirement end to end in real Chromium: a learner fills every slot of the sample
portfolio ("Deployed web service write-up", Python Web Developer) on its page and hands it in; a real
Celery worker, fed through a real Redis, runs its automatic checks and renders the PDF's pages in the
sandbox; a reviewer claims it in the dashboard, reads each slot and scores the manual criteria; the
learner's result shows the pass and the program shows the requirement passed.

Unlike the review loop's tests, nothing is graded in the test's own process: the app enqueues the run
as in production and the worker process is the only one that grades it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grader.broker import CeleryTaskQueue
from grader.config import Settings
from grader.intake.artifacts import count_words
from grader.models import GradingRun
from rubrics.loader import load_rubric
from rubrics.model import Rubric
from tests.browser.conftest import LiveApp, check_page
from tests.browser.support import PROGRAM, SAMPLE_CATALOG, People, copy_sample_catalog, words
from tests.conftest import Account, make_account
from tests.support.portfolio_review import report
from tests.support.services import RedisServer, WorkerProcess, redis_server

pytestmark = [pytest.mark.redis, pytest.mark.slow]

SLUG = "deployed-web-service-writeup"
TITLE = "Deployed web service write-up"
REPOSITORY = "https://github.com/zelda-quigley/todo-service"
DEMO = "https://todo-service.zelda.dev/todos"
ACCESS_LOG = (
    '127.0.0.1 - - [02/Dec/2026:10:14:03 +0000] "GET /todos HTTP/1.1" 200 512\n'
    '127.0.0.1 - - [02/Dec/2026:10:14:09 +0000] "POST /todos HTTP/1.1" 201 87\n'
    '127.0.0.1 - - [02/Dec/2026:10:14:12 +0000] "POST /todos HTTP/1.1" 400 64\n'
)
REFLECTION = (
    "The first deployment answered every request with a 502 from the proxy, because gunicorn listened "
    "on the loopback address inside the container while the proxy connected from outside it. I had "
    "assumed the default bind address was fine. I changed the service to read its bind address from the "
    "environment, added a health check that the platform calls before sending traffic, and wrote the "
    "steps down in the README so that the next person does not lose an afternoon to the same mistake."
)
# The levels the reviewer picks; professional practice keeps its full points (no problem ticked).
PICKS = {
    "evidence": "proficient",
    "analysis": "proficient",
    "decisions": "developing",
    "communication": "clear",
    "reflection": "exemplary",
}


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, redis: RedisServer, sandbox_ready: None) -> Settings:
    data_dir = tmp_path / "var"
    return Settings(
        data_dir=data_dir,
        # Named, not defaulted: the worker process must open the very same file.
        database_url=f"sqlite:///{data_dir / 'grader.db'}",
        broker_url=redis.url,
        secret_key="test-secret-key",
        catalog_path=tmp_path / "catalog",
        submissions_per_hour=100,
        sandbox_backend="bwrap",
    )


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    return copy_sample_catalog(settings.catalog_path)


@pytest.fixture
def queue(settings: Settings) -> CeleryTaskQueue:  # type: ignore[override]
    """The app enqueues on Redis, as in production: the worker process below takes the run from there."""
    return CeleryTaskQueue(settings)


@pytest.fixture
def worker(settings: Settings, loaded: sessionmaker[Session], tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(env=settings.to_env(), log_path=tmp_path / "worker.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def people(browser: Browser, live: LiveApp) -> Iterator[People]:
    crowd = People(browser, live)
    yield crowd
    crowd.close()
    assert not crowd.errors, "script or console errors in the pages:\n" + "\n".join(crowd.errors)


def screenshot() -> bytes:
    """A terminal's worth of pixels: what `curl -i` against the service would look like, roughly."""
    image = Image.new("RGB", (960, 540), (24, 24, 28))
    for row in range(6):
        image.paste((120, 220, 140), (24, 24 + row * 40, 24 + 600 - row * 70, 44 + row * 40))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def sample_rubric() -> Rubric:
    return load_rubric(SAMPLE_CATALOG / "rubrics" / "portfolio-review.yaml")


def expected_total(rubric: Rubric) -> float:
    """What the picks are worth: every automatic check passes, professional practice keeps its points."""
    total = 0.0
    for criterion in rubric.criteria:
        if criterion.id in PICKS:
            level = criterion.level(PICKS[criterion.id])
            assert level is not None, f"{criterion.id} has no level {PICKS[criterion.id]}"
            total += criterion.weight * level.points
        else:
            total += criterion.weight * criterion.top_points
    return total


def fill_every_slot(page: Page) -> None:
    """Each of the portfolio's six slots, the optional ones too, through the page's own inputs."""
    page.set_input_files(
        "#files-design-note",
        files=[{"name": "design-note.pdf", "mimeType": "application/pdf", "buffer": report()}],
    )
    page.set_input_files(
        "#files-request-screenshot",
        files=[{"name": "curl-todos.png", "mimeType": "image/png", "buffer": screenshot()}],
    )
    page.set_input_files(
        "#files-access-log-excerpt",
        files=[{"name": "access.log", "mimeType": "text/plain", "buffer": ACCESS_LOG.encode()}],
    )
    page.get_by_label("Address for Source repository").fill(REPOSITORY)
    page.get_by_label("Address for Live service (optional)").fill(DEMO)
    page.get_by_label("Your answer for What surprised you").fill(REFLECTION)
    expect(page.locator("#statements-reflection-count")).to_have_text(
        f"{count_words(REFLECTION)} words: within the limits"
    )


def test_a_learner_hands_in_the_sample_portfolio_a_worker_checks_it_a_reviewer_passes_it(
    people: People, live: LiveApp, loaded: sessionmaker[Session], worker: WorkerProcess
) -> None:
    rubric = sample_rubric()
    learner: Account = make_account(loaded, "zelda.quigley@example.org", programs=(PROGRAM,))
    reviewer_account = make_account(loaded, "rui.okafor@example.org", role="reviewer", reviews=(PROGRAM,))

    # The learner: from the program page to the portfolio's page, every slot filled, handed in.
    zelda = people.log_in(learner)
    zelda.goto(f"{live.url}/programs/{PROGRAM}")
    zelda.get_by_role("link", name=f"Hand in {TITLE}").click()
    expect(zelda.get_by_role("heading", name=TITLE, level=1)).to_be_visible()
    fill_every_slot(zelda)
    zelda.get_by_role("button", name="Hand in").click()
    zelda.wait_for_url("**/submissions/*")
    result_url = zelda.url
    receipt = zelda.locator("#portfolio-receipt")
    expect(receipt.locator("tbody tr")).to_have_count(3)
    expect(receipt).to_contain_text("a PDF of 3 pages")
    expect(receipt).to_contain_text("a PNG image of 960 \u00d7 540 pixels")
    expect(receipt).to_contain_text(REPOSITORY)

    # The worker process checks it; the learner's open page notices by itself.
    expect(zelda.get_by_role("heading", name="Waiting for a reviewer")).to_be_visible(timeout=90_000)
    checks = zelda.locator("ul.checks li")
    assert checks.count() >= 6, worker.log_tail()
    expect(zelda.locator("ul.checks li.bad")).to_have_count(0)
    expect(zelda.locator(".result .score")).to_contain_text(f"2 / {rubric.max_score:g}")
    with loaded() as session:
        run = session.scalars(
            select(GradingRun).where(GradingRun.submission_id == result_url.rsplit("/", 1)[-1])
        ).one()
        # Graded on the checks queue by the worker process (its Celery hostname), not by this process.
        assert (run.queue, run.tries) == ("checks", 1) and (run.worker or "").startswith("test-"), run.worker

    # The reviewer: claims it in the dashboard and reads each slot as the viewer shows it.
    reviewer = people.log_in(reviewer_account)
    reviewer.goto(f"{live.url}/review")
    row = reviewer.locator("table.tasks tbody tr", has_text=TITLE)
    expect(row).to_contain_text("zelda.quigley")
    row.get_by_role("button", name="Claim").click()
    portfolio = reviewer.get_by_role("region", name="The portfolio")
    expect(portfolio).to_be_visible()
    note = reviewer.locator("#slot-design-note")
    expect(note.locator("img.page")).to_have_count(3)  # rendered by pdftoppm in the worker's sandbox
    shot = reviewer.locator("#slot-request-screenshot img.picture")
    for picture in [*note.locator("img.page").all(), shot]:
        picture.scroll_into_view_if_needed()
        expect(picture).to_have_js_property("complete", True)
        assert picture.evaluate("img => img.naturalWidth") > 0
    expect(reviewer.get_by_role("region", name="The text of access.log")).to_contain_text("POST /todos")
    links = reviewer.locator("#slot-source-repository")
    repository = links.get_by_role("link", name=REPOSITORY)
    expect(repository).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(links).to_contain_text("Host: github.com")
    statement = reviewer.locator("#slot-reflection")
    expect(statement.locator(".prompt")).to_contain_text("went wrong or surprised you")
    expect(statement.locator("blockquote")).to_have_text(REFLECTION)
    expect(statement.locator("details.checks summary")).to_have_text(re.compile(r"(\d+) of \1 passed"))

    for criterion_id, label in PICKS.items():
        reviewer.locator(f"#c-{criterion_id}").get_by_role("radio", name=re.compile(rf"^{label} ")).check()
    total = expected_total(rubric)
    expect(reviewer.locator("#preview-total")).to_have_text(f"{total:g}")
    reviewer.locator("#comment").fill("A clear note; the log shows the 400s.")
    reviewer.get_by_role("button", name="Submit", exact=True).click()
    expect(reviewer.locator("p.flash").first).to_have_text(
        f"Review submitted: {total:g} of {rubric.max_score:g} points, passed."
    )

    # The learner: the pass on the result, then the requirement passed on the program's page.
    zelda.goto(result_url)
    expect(zelda.locator("#result-title")).to_have_text(re.compile(r"Passed$"))
    expect(zelda.locator(".result .score")).to_contain_text(f"{total:g} / {rubric.max_score:g}")
    expect(zelda.locator("#criterion-reflection td").nth(0)).to_have_text("exemplary")
    check_page(zelda, "portfolio-flow-result")
    zelda.goto(f"{live.url}/programs/{PROGRAM}")
    requirement = zelda.locator("tbody tr", has_text=TITLE)
    expect(requirement.locator(".badge")).to_have_text("passed")
    assert words(zelda.locator("main")).startswith("Python Web Developer 1 of 5 requirements passed.")
    check_page(zelda, "portfolio-flow-program")
