"""Portfolio review in the reviewers' dashboard, as a reviewer meets it: a graded portfolio waits in the
queue; its task page shows each slot beside the criteria it serves (images and PDF pages as this service's
own PNG renditions, Markdown sanitised, archives listed, links as text with their host, statements beside
their prompt); pictures are served as images only; blind review hides the learner in names, links and
document details; and scoring the manual criteria settles the result and the learner's progress."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from PIL import Image
from pypdf import PdfReader
from sqlalchemy.orm import Session, sessionmaker

from grader.config import Settings
from grader.interfaces import RecordingQueue
from grader.services import renditions
from tests.conftest import Account, bearer, make_account
from tests.support.portfolio_review import (
    BLUE,
    GREEN,
    PHOTO,
    PUBLIC_DEMO,
    RED,
    REPORT,
    hand_in_and_grade,
    task_of,
    write_portfolio_catalog,
)
from tests.web.test_pages import csrf_token, log_in


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    return write_portfolio_catalog(settings.catalog_path)


@pytest.fixture
def ada(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "ada.lovelace@example.org", programs=("showcase-program", "blind-program"))


@pytest.fixture
def rui(loaded: sessionmaker[Session]) -> Account:
    return make_account(
        loaded, "rui@example.org", role="reviewer", reviews=("showcase-program", "blind-program")
    )


def claim(client: FlaskClient, task_id: int) -> str:
    token = csrf_token(client.get("/review").get_data(as_text=True))
    response = client.post(f"/review/tasks/{task_id}/claim", data={"csrf_token": token})
    assert response.status_code == 302
    page = client.get(f"/review/tasks/{task_id}")
    assert page.status_code == 200
    return page.get_data(as_text=True)


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def section(html: str, slot: str) -> str:
    """The task page's part about one slot."""
    start = html.index(f'<section class="slot" id="slot-{slot}"')
    return html[start : html.index("</section>", start)]


def pictures(html: str) -> list[str]:
    return [src.replace("&amp;", "&") for src in re.findall(r'<img class="picture[^"]*" src="([^"]+)"', html)]


@pytest.fixture
def graded(
    sandbox_ready: None,
    loaded: sessionmaker[Session],
    settings: Settings,
    queue: RecordingQueue,
    ada: Account,
) -> str:
    renditions.clear_cache()
    return hand_in_and_grade(loaded, settings, queue, ada, "showcase")


def test_a_graded_portfolio_waits_in_the_queue_and_shows_each_slot_beside_its_criteria(
    client: FlaskClient, loaded: sessionmaker[Session], graded: str, rui: Account
) -> None:
    log_in(client, rui)
    task_id = task_of(loaded, graded)
    queue_page = client.get("/review").get_data(as_text=True)
    row = queue_page[queue_page.index(f'id="task-{task_id}"') :]
    row = text(row[: row.index("</tr>")])
    assert "Showcase attempt 1" in row and "ada.lovelace" in row and "Claim" in row
    html = claim(client, task_id)

    # The rubric form offers the manual criteria, each naming the slots that are its evidence.
    design_field = html[html.index('id="c-design"') : html.index("</fieldset>", html.index('id="c-design"'))]
    assert 'href="#slot-screenshot">Screenshot</a>' in design_field
    assert 'href="#slot-report">Design report</a>' in design_field
    screenshot = section(html, "screenshot")
    assert 'Evidence for: <a href="#c-design">Design shown</a>' in screenshot
    assert "ada-lovelace-screen.jpg" in screenshot and "2400 \u00d7 1200 pixels" in screenshot
    assert "Automatic checks: " in screenshot

    # PDF: its first pages as images, its document details (not blind), the file itself a download.
    pdf_part = section(html, "report")
    assert "Every page, as images" in pdf_part and "3 pages" in text(pdf_part)
    assert "Lovelace design report" in pdf_part and "Ada Lovelace" in pdf_part
    assert len(pictures(pdf_part)) == 3 and "<embed" not in html and "<iframe" not in html

    # Markdown rendered and sanitised: the heading and emphasis, not the learner's markup or script link.
    notes = section(html, "notes")
    assert "<h2>What I changed</h2>" in notes and "<strong>cache</strong>" in notes
    assert "<img" not in notes and "&lt;img src=x onerror=" in notes  # the markup shown as words
    assert 'href="javascript:' not in notes and "[a trap](javascript:alert(2))" in notes

    # ZIP: the entries by name and size, nothing unpacked.
    code = text(section(html, "code"))
    assert "2 entries" in code and "engine/analytical.py" in code and "README.md" in code

    # Links as text with their host: a public one as a plain link, the private one never a link.
    repo = section(html, "repo")
    assert (
        '<a href="https://github.com/ada-lovelace/engine" rel="noopener noreferrer nofollow">' in repo
        and "Host: <strong>github.com</strong>" in repo
    )
    demo = section(html, "demo")
    assert "https://127.0.0.1:8080/admin" in demo and "<a " not in demo
    assert "a private or local address" in demo

    # The statement beside its prompt, with its word count.
    reflection = section(html, "reflection")
    assert "What would you do <strong>differently</strong> next time?" in reflection
    assert "(6 words)" in reflection and "I would measure the engine first." in reflection


def test_an_image_is_served_re_encoded_as_an_image_only(
    client: FlaskClient, loaded: sessionmaker[Session], graded: str, rui: Account
) -> None:
    log_in(client, rui)
    html = claim(client, task_of(loaded, graded))
    (src,) = pictures(section(html, "screenshot"))
    response = client.get(src)

    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"].startswith("sandbox")
    assert response.headers["Content-Disposition"].startswith("inline")
    data = response.get_data()
    shown = Image.open(io.BytesIO(data))
    assert data != PHOTO and shown.format == "PNG" and (shown.width, shown.height) == (1600, 800)
    assert dict(shown.getexif()) == {} and b"Lovelace" not in data
    # The download is the learner's file as handed in, as an attachment the browser will not render.
    link = re.search(r'href="([^"]+)">Download', section(html, "screenshot"))
    assert link is not None
    download = client.get(link.group(1).replace("&amp;", "&"))
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.mimetype == "application/octet-stream" and download.get_data() == PHOTO


def test_pdf_pages_are_images_and_the_pdf_is_never_served_inline(
    client: FlaskClient, loaded: sessionmaker[Session], graded: str, rui: Account
) -> None:
    log_in(client, rui)
    task_id = task_of(loaded, graded)
    html = claim(client, task_id)
    part = section(html, "report")
    colours = []
    for src in pictures(part):
        page = client.get(src)
        assert page.mimetype == "image/png" and page.headers["X-Content-Type-Options"] == "nosniff"
        colours.append(Image.open(io.BytesIO(page.get_data())).convert("RGB").getpixel((40, 40)))
    assert [
        max(abs(a - b) for a, b in zip(got, want, strict=True)) < 15
        for got, want in zip(colours, (RED, GREEN, BLUE), strict=True)
    ] == [True, True, True]

    # Asked for the PDF itself as a picture, or for a page it does not show: no bytes at all.
    assert client.get(f"/review/tasks/{task_id}/picture?file=report/1").status_code == 404
    assert client.get(f"/review/tasks/{task_id}/picture?file=report/1&page=4").status_code == 404
    assert client.get(f"/review/tasks/{task_id}/picture?file=notes/1").status_code == 404
    download = client.get(f"/review/tasks/{task_id}/download?file=report/1")
    assert download.status_code == 200 and download.mimetype == "application/octet-stream"
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.headers["X-Content-Type-Options"] == "nosniff" and download.get_data() == REPORT


def test_only_the_first_pages_are_rendered_and_the_page_says_so(
    sandbox_ready: None,
    client: FlaskClient,
    loaded: sessionmaker[Session],
    settings: Settings,
    queue: RecordingQueue,
    ada: Account,
    rui: Account,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renditions.clear_cache()
    monkeypatch.setattr(renditions, "MAX_PDF_PAGES", 2)
    submission_id = hand_in_and_grade(loaded, settings, queue, ada, "showcase")
    log_in(client, rui)
    part = section(claim(client, task_of(loaded, submission_id)), "report")
    assert "The first 2 of 3 pages" in part and len(pictures(part)) == 2


def test_blind_review_hides_the_learner_in_file_names_links_and_document_details(
    sandbox_ready: None,
    client: FlaskClient,
    loaded: sessionmaker[Session],
    settings: Settings,
    queue: RecordingQueue,
    ada: Account,
    rui: Account,
) -> None:
    renditions.clear_cache()
    submission_id = hand_in_and_grade(loaded, settings, queue, ada, "blind-showcase")
    log_in(client, rui)
    task_id = task_of(loaded, submission_id)
    html = claim(client, task_id)

    assert re.search(r"lovelace|ada\.lovelace@", html, re.IGNORECASE) is None
    assert "[learner]-[learner]-screen.jpg" in html and "[learner] report.pdf" in html
    repo = section(html, "repo")
    assert "https://github.com/[learner]-[learner]/engine" in repo and "<a " not in repo
    pdf_part = section(html, "report")
    assert "<dl" not in pdf_part and len(pictures(pdf_part)) == 3  # pages, but no title or author

    # The downloads carry no metadata either: the PDF without its document information, the photo
    # as its rendition; and they are named as the blind reviewer sees them.
    document = client.get(f"/review/tasks/{task_id}/download?file=report/1")
    assert document.status_code == 200 and b"Lovelace" not in document.get_data()
    assert "Lovelace" not in document.headers["Content-Disposition"]
    assert PdfReader(io.BytesIO(document.get_data())).metadata is None
    image = client.get(f"/review/tasks/{task_id}/download?file=screenshot/1")
    assert image.status_code == 200 and b"Lovelace" not in image.get_data()
    assert "%5Blearner%5D-%5Blearner%5D-screen.png" in image.headers["Content-Disposition"]


def test_pictures_are_for_the_reviewer_holding_the_task(
    client: FlaskClient, loaded: sessionmaker[Session], graded: str, rui: Account, ada: Account
) -> None:
    task_id = task_of(loaded, graded)
    src = f"/review/tasks/{task_id}/picture?file=screenshot/1"
    outsider = make_account(loaded, "olga@example.org", role="reviewer", reviews=("blind-program",))
    other = make_account(loaded, "vera@example.org", role="reviewer", reviews=("showcase-program",))
    log_in(client, rui)
    claim(client, task_id)
    assert client.get(src).status_code == 200
    for account, status in ((ada, 403), (outsider, 403), (other, 409)):
        client.post("/logout", data={"csrf_token": csrf_token(client.get("/account").get_data(as_text=True))})
        log_in(client, account)
        response = client.get(src)
        assert response.status_code == status and response.mimetype != "image/png"


def test_scoring_the_manual_criteria_settles_the_result_and_the_program_progress(
    sandbox_ready: None,
    client: FlaskClient,
    loaded: sessionmaker[Session],
    settings: Settings,
    queue: RecordingQueue,
    rui: Account,
    ada: Account,
) -> None:
    graded = hand_in_and_grade(loaded, settings, queue, ada, "showcase", demo=PUBLIC_DEMO)
    before = client.get("/api/v1/programs/showcase-program/progress", headers=bearer(ada)).get_json()
    assert [r["status"] for r in before["requirements"]] != ["passed"]
    log_in(client, rui)
    task_id = task_of(loaded, graded)
    html = claim(client, task_id)
    response = client.post(
        f"/review/tasks/{task_id}/submit",
        data={"csrf_token": csrf_token(html), "c-design-level": "shown", "c-writing-level": "clear"},
    )
    assert response.status_code == 302
    result = client.get(f"/api/v1/submissions/{graded}", headers=bearer(ada)).get_json()["result"]
    assert (result["score"], result["max_score"], result["passed"]) == (10.0, 10.0, True)
    after = client.get("/api/v1/programs/showcase-program/progress", headers=bearer(ada)).get_json()
    assert [(r["assessment"], r["status"]) for r in after["requirements"]] == [("showcase", "passed")]
    assert after["complete"] is True


def test_a_portfolio_that_misses_the_pass_mark_fails_once_reviewed(
    sandbox_ready: None,
    client: FlaskClient,
    loaded: sessionmaker[Session],
    settings: Settings,
    queue: RecordingQueue,
    ada: Account,
    rui: Account,
) -> None:
    renditions.clear_cache()
    submission_id = hand_in_and_grade(loaded, settings, queue, ada, "showcase", demo=PUBLIC_DEMO)
    log_in(client, rui)
    task_id = task_of(loaded, submission_id)
    html = claim(client, task_id)
    client.post(
        f"/review/tasks/{task_id}/submit",
        data={"csrf_token": csrf_token(html), "c-design-level": "missing", "c-writing-level": "weak"},
    )
    result = client.get(f"/api/v1/submissions/{submission_id}", headers=bearer(ada)).get_json()["result"]
    assert (result["score"], result["max_score"], result["passed"]) == (2.0, 10.0, False)
    progress = client.get("/api/v1/programs/showcase-program/progress", headers=bearer(ada)).get_json()
    assert [r["status"] for r in progress["requirements"]] != ["passed"] and progress["complete"] is False
