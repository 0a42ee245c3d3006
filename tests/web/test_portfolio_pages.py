"""The portfolio hand-in page as a learner meets it, through the Flask test client (so with JavaScript off):
a section per slot with its limits in words and a label on every input, a draft kept between visits,
files removed by their button, every kind of bad input refused with the slot named, the real status and
what was typed kept, uploads stopped while they stream, the hand-in (twice is once) and its receipt,
then the checks and the rubric once graded."""

from __future__ import annotations

import hashlib
import io
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Request
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog.loader import read_catalog
from grader.config import Settings
from grader.db import session_scope
from grader.interfaces import RecordingQueue
from grader.kinds import default_graders
from grader.models import DraftItem, Submission
from grader.services.catalog import load_catalog
from grader.services.grading import process_run
from tests.conftest import Account, make_account
from tests.support.catalogs import write_catalog
from tests.support.portfolio import PORTFOLIO, PROGRAM_SLUG, REFLECTION, pdf, png, write_portfolio_catalog
from tests.web.test_pages import csrf_token, log_in

MB = 1024 * 1024
PAGE = "/assessments/showcase/portfolio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # A request limit above the slots' own (1 MB, 512 KB), so the slots' guards are what refuses a file.
    return Settings(
        data_dir=tmp_path / "var",
        secret_key="test-secret-key",
        catalog_path=tmp_path / "catalog",
        submissions_per_hour=100,
        max_request_bytes=4 * MB,
    )


@pytest.fixture
def catalog_dir(settings: Settings) -> Path:
    write_catalog(settings.catalog_path)
    return write_portfolio_catalog(settings.catalog_path)


@pytest.fixture
def ada(loaded: sessionmaker[Session]) -> Account:
    return make_account(loaded, "ada@example.org", programs=(PROGRAM_SLUG, "test-program"))


@pytest.fixture
def page(client: FlaskClient, ada: Account) -> FlaskClient:
    log_in(client, ada)
    return client


def form_of(html: str) -> dict[str, str]:
    """The hidden fields a browser sends back with the form: the CSRF token, the draft's id, the nonce."""
    fields = dict(re.findall(r'<input type="hidden" name="(draft|nonce)" value="([^"]*)"', html))
    return {"csrf_token": csrf_token(html), **fields}


def post(client: FlaskClient, fields: dict[str, Any], *, html: str | None = None) -> Any:
    shown = html if html is not None else client.get(PAGE).get_data(as_text=True)
    return client.post(PAGE, data={**form_of(shown), **fields}, content_type="multipart/form-data")


def upload(data: bytes, name: str) -> tuple[io.BytesIO, str]:
    return io.BytesIO(data), name


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def held(sessions: sessionmaker[Session], kind: str | None = None) -> list[DraftItem]:
    with sessions() as session:
        query = select(DraftItem).order_by(DraftItem.id)
        if kind is not None:
            query = query.where(DraftItem.kind == kind)
        return list(session.scalars(query))


def full() -> dict[str, Any]:
    """Every required slot filled (a fresh file each time: the test client closes what it sends)."""
    return {
        "files.screenshot": upload(png(), "shot.png"),
        "links.repo": "https://github.com/ada/service",
        "statements.reflection": REFLECTION,
    }


class Controls(HTMLParser):
    """Every form control of a page, every label's target, and what CSP would refuse inline."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.labelled: set[str] = set()
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("input", "textarea", "select") and found.get("type") != "hidden":
            self.controls.append({"tag": tag, **found})
        if tag == "label" and found.get("for"):
            self.labelled.add(str(found["for"]))
        if tag == "script" and not found.get("src"):
            self.inline.append("a script without src")
        if tag == "style" or "style" in found:
            self.inline.append(f"style on <{tag}>")
        self.inline.extend(f"{name} on <{tag}>" for name in found if name.startswith("on"))


def controls(html: str) -> Controls:
    parser = Controls()
    parser.feed(html)
    return parser


# ---------------------------------------------------------------- the page and the draft


def test_the_page_has_a_section_per_slot_with_its_limits_in_words_and_a_label_on_every_input(
    page: FlaskClient,
) -> None:
    response = page.get(PAGE)
    assert response.status_code == 200
    html = text(response)
    for slot, title, need in [
        ("screenshot", "Screenshot", "required"),
        ("report", "Design report", "optional"),
        ("repo", "Repository", "required"),
        ("demo", "Live demo", "optional"),
        ("reflection", "Reflection", "required"),
    ]:
        section = re.search(rf'<section class="card slot[^"]*" id="slot-{slot}".*?</section>', html, re.S)
        assert section, slot
        assert title in section.group(0) and f">{need}</span>" in section.group(0)
    assert "A PNG image or a JPEG image, up to 1 MB each; up to 2 files." in html
    assert "A PDF, up to 512 KB." in html
    assert "The service answering a request." in html  # the slot's description
    assert "What would you test first, and why?" in html and "Between 3 and 40 words." in html
    assert "https only, on github.com." in html
    assert "at most 4 MB in one save" in html  # the request limit, in MB

    found = controls(html)
    by_name = {c["name"]: c for c in found.controls}
    assert by_name["files.screenshot"]["type"] == "file" and "multiple" in by_name["files.screenshot"]
    assert by_name["files.report"]["type"] == "file" and "multiple" not in by_name["files.report"]
    assert by_name["links.repo"]["type"] == "url" and by_name["statements.reflection"]["tag"] == "textarea"
    assert all(c["id"] in found.labelled for c in found.controls), "every input has a label"
    assert found.inline == []  # the CSP forbids inline scripts, styles and handlers
    assert '<script src="/static/portfolio.js" defer>' in html
    # Enter in a text field presses the form's first button: Save draft, never a Remove or Hand in.
    form = html[html.index('id="portfolio-form"') :]
    first_button = re.search(r"<button[^>]*>", form)
    assert first_button and 'value="save"' in first_button.group(0)


def test_a_saved_draft_is_kept_between_visits_with_each_file_its_size_and_detected_type(
    page: FlaskClient, loaded: sessionmaker[Session]
) -> None:
    saved = post(page, {**full(), "files.report": upload(pdf(3), "design.pdf"), "action": "save"})
    assert saved.status_code == 303 and saved.headers["Location"] == PAGE
    html = text(page.get(PAGE))
    assert "Your draft is saved." in html
    assert re.search(r"shot\.png</span>\s*<span[^>]*>77 bytes · a PNG image of 8 \u00d7 6 pixels", html)
    assert "a PDF of 3 pages" in html
    assert 'value="https://github.com/ada/service"' in html
    assert f">{REFLECTION}</textarea>" in html and "Saved in your draft: 12 words." in html
    assert [(i.slot, i.kind, i.media_type) for i in held(loaded)] == [
        ("screenshot", "file", "png"),
        ("report", "file", "pdf"),
        ("repo", "link", "link"),
        ("reflection", "statement", "text"),
    ]
    # Saving the page again as it is changes nothing: the same link and words are not stored twice.
    again = post(page, {"links.repo": "https://github.com/ada/service", "statements.reflection": REFLECTION})
    assert again.status_code == 303 and len(held(loaded)) == 4


def test_a_file_is_taken_out_by_its_remove_button_and_only_from_the_learners_own_draft(
    page: FlaskClient, app: Flask, loaded: sessionmaker[Session]
) -> None:
    post(page, {"files.screenshot": [upload(png(), "a.png"), upload(png(9, 9), "b.png")]})
    html = text(page.get(PAGE))
    first = held(loaded)[0]
    button = re.search(rf'<button type="submit" form="remove-{first.id}"[^>]*>Remove', html)
    target = re.search(rf'<form method="post" id="remove-{first.id}" hidden>(.*?)</form>', html, re.S)
    assert button and target and f'name="remove" value="{first.id}"' in target.group(1)

    removed = page.post(PAGE, data={"csrf_token": csrf_token(html), "remove": str(first.id)})
    assert removed.status_code == 303
    after = text(page.get(PAGE))
    assert "a.png was removed from your draft." in after and "b.png" in after
    assert [i.name for i in held(loaded)] == ["b.png"]

    bob = make_account(loaded, "bob@example.org", programs=(PROGRAM_SLUG,))
    other = app.test_client()
    log_in(other, bob)
    token = csrf_token(text(other.get(PAGE)))
    refused = other.post(PAGE, data={"csrf_token": token, "remove": str(held(loaded)[0].id)})
    assert refused.status_code == 404 and "Your draft holds no such file" in text(refused)
    assert [i.name for i in held(loaded)] == ["b.png"]


ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 200
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@pytest.mark.parametrize(
    ("field", "files", "status", "said"),
    [
        ("files.screenshot", [(ELF, "shot.png")], 400, "programs and scripts are never accepted"),
        ("files.report", [(b"<!doctype html><html><script>x()</script></html>", "design.pdf")], 400, "HTML"),
        ("files.screenshot", [(SVG, "logo.png")], 400, "SVG"),
        ("files.screenshot", [(png(), "../shot.png")], 400, "holds a slash"),
        (
            "files.screenshot",
            [(png(), "shot\u202egnp.exe")],
            400,
            "changes the order in which the name reads",
        ),
        (
            "files.screenshot",
            [(png(), "a.png"), (png(9, 9), "b.png"), (png(7, 7), "c.png")],
            409,
            "at most 2",
        ),
        ("files.report", [(pdf() + b"%" * 600_000, "big.pdf")], 413, "larger than 512 KB"),
    ],
    ids=["program-as-png", "html-as-pdf", "svg", "dot-dot-slash", "bidi", "too-many", "too-large"],
)
def test_a_bad_file_is_refused_naming_its_slot_with_its_status_and_keeping_the_rest(
    page: FlaskClient,
    loaded: sessionmaker[Session],
    settings: Settings,
    field: str,
    files: list[tuple[bytes, str]],
    status: int,
    said: str,
) -> None:
    slot = field.removeprefix("files.")
    title = {"screenshot": "Screenshot", "report": "Design report"}[slot]
    words = "The words I wrote stay here."
    response = post(page, {field: [upload(d, n) for d, n in files], "statements.reflection": words})
    html = text(response)
    assert response.status_code == status
    summary = re.search(r'<div class="flash bad problems" role="alert".*?</div>', html, re.S)
    assert summary and f'<a href="#slot-{slot}">{title}</a>:' in summary.group(0)
    assert said in summary.group(0)
    section = re.search(rf'id="slot-{slot}".*?</section>', html, re.S)
    assert section and 'class="field-error"' in section.group(0) and 'aria-invalid="true"' in section.group(0)
    assert f">{words}</textarea>" in html  # what was typed is kept...
    assert [i.kind for i in held(loaded)] == ["statement"]  # ...and saved; no file was kept
    blobs = settings.files_dir / "blobs"
    assert not blobs.exists() or not [p for p in blobs.rglob("*") if p.is_file()]


class CountingFile(io.BytesIO):
    """Where Werkzeug puts an uploaded part; counts what is read back out of it."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


def test_an_oversized_file_is_refused_while_it_streams_not_after_it_is_read_whole(
    page: FlaskClient, app: Flask, loaded: sessionmaker[Session], settings: Settings
) -> None:
    parts: list[CountingFile] = []

    class CountingRequest(Request):
        def _get_file_stream(self, *args: Any, **kwargs: Any) -> CountingFile:
            parts.append(CountingFile())
            return parts[-1]

    app.request_class = CountingRequest
    huge = png() + b"\0" * (3 * MB)
    response = post(page, {"files.screenshot": upload(huge, "huge.png")})
    assert response.status_code == 413
    assert "The screenshot &#34;huge.png&#34; is larger than 1 MB, the most it may be." in text(response)
    (part,) = parts
    # The slot's guard read its limit and one byte more, then stopped: the other 2 MB were never read.
    assert part.bytes_read == 1 * MB + 1 < len(huge)
    assert held(loaded) == [] and not (settings.files_dir / "blobs").exists()


def test_a_save_over_the_request_limit_is_answered_on_the_page_in_mb(page: FlaskClient) -> None:
    html = text(page.get(PAGE))
    response = post(page, {"files.screenshot": upload(b"\0" * (5 * MB), "x.png")}, html=html)
    assert response.status_code == 413
    body = text(response)
    assert "larger than 4 MB, the most one save can carry, so nothing of it was saved" in body
    assert 'id="portfolio-form"' in body  # the page itself, to try again, not a dead end


def test_statements_too_long_are_refused_with_the_count_and_kept_as_typed(
    page: FlaskClient, loaded: sessionmaker[Session]
) -> None:
    long = " ".join(["word"] * 41)
    response = post(page, {"statements.reflection": long})
    assert response.status_code == 400
    html = text(response)
    assert "The reflection has 41 words; the most is 40." in html
    assert f">{long}</textarea>" in html and held(loaded) == []


def test_a_link_to_a_private_address_is_kept_as_text_and_flagged(
    page: FlaskClient, loaded: sessionmaker[Session]
) -> None:
    assert post(page, {"links.demo": "https://127.0.0.1:8080/admin"}).status_code == 303
    (link,) = held(loaded)
    assert (link.text, link.details) == (
        "https://127.0.0.1:8080/admin",
        {"host": "127.0.0.1", "private": True},
    )
    html = text(page.get(PAGE))
    assert "Saved, but flagged: 127.0.0.1 is in a private or local network" in html
    refused = post(page, {"links.repo": "https://github.com.evil.example/ada"})
    assert refused.status_code == 400 and "github.com" in text(refused)


def test_the_file_store_down_answers_503_and_records_nothing(
    page: FlaskClient, loaded: sessionmaker[Session], settings: Settings
) -> None:
    settings.files_dir.mkdir(parents=True, exist_ok=True)
    (settings.files_dir / "blobs").write_text("not a folder")  # the store cannot create its folders
    response = post(page, {"files.screenshot": upload(png(), "shot.png")})
    assert response.status_code == 503
    assert "the file store is not answering, so nothing was saved for this part" in text(response).lower()
    assert held(loaded) == []


# ---------------------------------------------------------------- handing in


def test_a_required_slot_left_empty_stops_the_hand_in_by_its_name_and_keeps_the_rest(
    page: FlaskClient, loaded: sessionmaker[Session], queue: RecordingQueue
) -> None:
    response = post(page, {"files.screenshot": upload(png(), "shot.png"), "action": "hand_in"})
    assert response.status_code == 400
    assert '<a href="#slot-repo">Repository</a>: Repository is required and still empty.' in text(response)
    assert [i.name for i in held(loaded)] == ["shot.png"] and queue.sent == []


def test_hand_in_freezes_the_draft_once_and_the_receipt_lists_every_artifact(
    page: FlaskClient, loaded: sessionmaker[Session], queue: RecordingQueue
) -> None:
    html = text(page.get(PAGE))
    handed = post(page, {**full(), "links.demo": "https://10.0.0.7/", "action": "hand_in"}, html=html)
    assert handed.status_code == 303
    location = handed.headers["Location"]
    assert location.startswith("/submissions/")
    # The same page sent again (a double click before the first answer came back) is the same hand-in.
    again = post(page, {**full(), "action": "hand_in"}, html=html)
    assert again.status_code == 303 and again.headers["Location"] == location
    with loaded() as session:
        assert session.scalar(select(func.count(Submission.id))) == 1
    assert [q for _, q in queue.sent] == ["checks"]

    receipt = text(page.get(location))
    digest = hashlib.sha256(png()).hexdigest()
    row = re.search(r"<th scope=\"row\">Screenshot</th>(.*?)</tr>", receipt, re.S)
    assert row is not None
    assert all(
        part in row.group(1) for part in ("shot.png", "77 bytes", "a PNG image of 8 \u00d7 6 pixels", digest)
    )
    assert "<code>https://github.com/ada/service</code>" in receipt
    assert "<code>https://10.0.0.7/</code>" in receipt and "in a private or local network" in receipt
    assert REFLECTION in receipt and "(12 words)" in receipt
    assert controls(receipt).inline == []

    # A page left open from before the hand-in answers with that hand-in, and saves nothing new.
    stale = page.post(
        PAGE, data={**form_of(html), "action": "hand_in", "statements.reflection": "Other words here."}
    )
    assert stale.status_code == 303 and stale.headers["Location"] == location
    with loaded() as session:
        assert (
            session.scalar(select(func.count(DraftItem.id)).where(DraftItem.text == "Other words here.")) == 0
        )


def test_once_graded_the_result_shows_each_check_on_a_line_and_the_rubric(
    page: FlaskClient, loaded: sessionmaker[Session], queue: RecordingQueue, settings: Settings
) -> None:
    location = post(page, {**full(), "action": "hand_in"}).headers["Location"]
    run_id, _ = queue.sent.pop(0)
    process_run(loaded, run_id, default_graders(settings), worker="test", lease_seconds=30)
    html = text(page.get(location))
    checks = re.search(r'<ul class="checks".*?</ul>', html, re.S)
    assert checks is not None
    lines = re.findall(r"<li class=\"(good|bad)\">.*?</span>([^<]*)</li>", checks.group(0))
    assert ("good", "Screenshot: a PNG image of 8 \u00d7 6 pixels, 77 bytes") in lines
    assert ("good", "Reflection: 12 words (between 3 and 40 asked for)") in lines
    assert ("good", "Design report: nothing handed in (optional)") in lines
    assert "Waiting for a reviewer" in html
    rubric = re.search(r'<table class="rubric">.*?</table>', html, re.S)
    assert rubric and "Complete and well formed" in rubric.group(0) and "awaiting review" in rubric.group(0)
    assert 'id="portfolio-receipt"' in html  # the receipt stays below the result


def test_the_program_page_links_the_hand_in_page_and_other_kinds_have_none(
    page: FlaskClient, loaded: sessionmaker[Session]
) -> None:
    program = text(page.get(f"/programs/{PROGRAM_SLUG}"))
    assert f'<a href="{PAGE}">Hand in<span class="visually-hidden"> Showcase</span></a>' in program
    assert page.get("/assessments/basics/portfolio").status_code == 404  # a quiz has no portfolio page
    outsider = make_account(loaded, "olga@example.org", programs=("test-program",))
    page.post("/logout", data={"csrf_token": csrf_token(text(page.get("/account")))})
    log_in(page, outsider)
    assert page.get(PAGE).status_code == 403  # not enrolled in the portfolio's program


def test_staff_of_a_blind_portfolio_see_the_receipt_without_file_names(
    page: FlaskClient, app: Flask, loaded: sessionmaker[Session], settings: Settings
) -> None:
    blind = PORTFOLIO.replace("rubric: showcase-review\n", "rubric: showcase-review\nreview: {blind: true}\n")
    (settings.catalog_path / "assessments/showcase.yaml").write_text(blind)
    with session_scope(loaded) as session:
        load_catalog(session, read_catalog(settings.catalog_path))  # a new version, reviewed blind
    location = post(page, {**full(), "action": "hand_in"}).headers["Location"]
    assert "<code>shot.png</code>" in text(page.get(location))  # the learner sees their own names

    rui = make_account(loaded, "rui@example.org", "reviewer", reviews=(PROGRAM_SLUG,))
    staff = app.test_client()
    log_in(staff, rui)
    html = text(staff.get(location))
    assert "shot.png" not in html and "name hidden for blind review" in html
    assert hashlib.sha256(png()).hexdigest() in html
